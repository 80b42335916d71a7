"""A real desk that notifies: ``desk_world``'s SQLite desk (the example site, people,
catalogue, a controllable clock) with ``notifications:`` settings, and the messages its
outbox holds."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from servicegraph.bootstrap import bootstrap
from servicegraph.cmdb.importer import read_files
from servicegraph.config import CorrelationSettings, DeskSettings, Settings
from servicegraph.ticketing.outbox import OutboxEntry
from servicegraph.ticketing.people import Contact, Directory
from tests.ticketing.desk_world import (
    CUSTOM_FIELDS,
    ROUTING,
    Clock,
    Desk,
    people,
    save_directory,
    write_site,
)

SECRET = "s3cret-webhook-key-0123456789"
FAR_FUTURE = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)  # every message is due by then


def notifying_people() -> Directory:
    """``desk_world``'s people, with a mailbox for the network team and a German contact."""
    base = people()
    network = dataclasses.replace(base.groups["network"], email="network@desk.example")
    return base.merged(
        groups=[network],
        contacts=[Contact("c-hans", "Hans", email="hans@example.de")],
    )


def notifications(**overrides: Any) -> dict[str, Any]:
    """Mail through a server that is never contacted unless a test sends; a webhook."""
    settings: dict[str, Any] = {
        "smtp": {"host": "127.0.0.1", "port": 2, "security": "none", "from": "desk@example.org"},
        "webhooks": [{"name": "chatops", "url": "http://127.0.0.1:9/hook", "secret": SECRET}],
        "languages": {"acme": "de", "bob": "de", "example.de": "de"},
        "ticket_url": "https://desk.example/t/{id}",
    }
    settings.update(overrides)
    return settings


def make_notifying_desk(
    tmp_path: Path,
    notify: dict[str, Any] | None,
    directory: Directory | None = None,
    settings: dict[str, Any] | None = None,
    **desk: Any,
) -> Iterator[Desk]:
    """``notify``: the notifications section (None: none); ``settings``: more Settings
    fields; ``desk``: DeskSettings fields."""
    clock = Clock()
    desk.setdefault("routing", ROUTING)
    desk.setdefault("custom_fields", CUSTOM_FIELDS)
    extra: dict[str, Any] = {} if notify is None else {"notifications": notify}
    services = bootstrap(
        Settings(
            data_dir=tmp_path,
            desk=DeskSettings(**desk),
            correlation=CorrelationSettings(hold_time_s=60),
            **extra,
            **(settings or {}),
        )
    )
    for service in (services.desk.tickets, services.desk.incidents, services.correlator):
        service.clock = clock
    batch = read_files([write_site(tmp_path)], services.classes, source="import")
    report = services.reconciler.apply(batch)
    ids = {str(o.key): ci for o, ci in zip(batch.cis, report.ci_ids, strict=True) if ci}
    save_directory(services, directory or notifying_people(), ids["web-shop"])
    yield Desk(services, clock, ids)
    services.close()


def queued(desk: Desk) -> list[OutboxEntry]:
    """Every message waiting in the outbox, oldest first (claimed, so a later claim in the
    same test sees none of them: they are leased for a century)."""
    return desk.services.outbox.claim(
        FAR_FUTURE, limit=100_000, lease=dt.timedelta(days=36500), max_attempts=100
    )
