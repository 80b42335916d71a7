"""A small real topology on a real SQLite store, and a controllable clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.importer import read_files
from servicegraph.config import CorrelationSettings, Settings
from servicegraph.events.model import Event, EventStatus, Severity, digest
from servicegraph.ticketing.ports import IncidentFilter

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


@dataclass
class Clock:
    now: dt.datetime = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw: float) -> dt.datetime:
        self.now += dt.timedelta(**kw)
        return self.now


@dataclass
class World:
    services: Services
    clock: Clock
    ids: dict[str, str] = field(default_factory=dict)
    _n: int = 0

    def event(
        self,
        name: str,
        key: str | None,
        status: str = "firing",
        *,
        severity: Severity = Severity.CRITICAL,
        at: dt.datetime | None = None,
        labels: dict[str, str] | None = None,
    ) -> Event:
        self._n += 1
        all_labels = dict(labels or {})
        if key is not None:
            all_labels["ci_id"] = self.ids[key]
        when = at or self.clock.now
        return Event(
            source="test",
            name=name,
            status=EventStatus(status),
            severity=severity,
            occurred_at=when,
            fingerprint=digest("test", name, key, all_labels.get("host")),
            event_id=digest("test", self._n, name, key, status, when),
            labels=all_labels,
        )

    def send(self, *events: Event) -> None:
        self.services.correlator.ingest(list(events))
        self.services.correlator.drain()

    def incidents(self, status: str | None = None) -> list:
        from servicegraph.ticketing.lifecycle import TicketStatus

        return self.services.tickets.find_incidents(
            IncidentFilter(
                status=TicketStatus(status) if status and status != "open" else None,
                open=True if status == "open" else None,
                limit=1000,
            )
        )


def make_world(tmp_path: Path, **policy: float) -> Iterator[World]:
    clock = Clock()
    settings = Settings(
        data_dir=tmp_path,
        correlation=CorrelationSettings(**policy),  # type: ignore[arg-type]
    )
    services = bootstrap(settings)
    services.correlator.clock = clock
    batch = read_files([EXAMPLES / "small-site.json"], services.classes, source="import")
    report = services.reconciler.apply(batch)
    ids = {obs.key: ci_id for obs, ci_id in zip(batch.cis, report.ci_ids, strict=True)}
    assert all(ids.values())
    yield World(services, clock, ids)  # type: ignore[arg-type]
    services.close()


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, hold_time_s=60)
