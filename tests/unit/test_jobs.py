"""The background jobs as plain functions (Celery and the scheduler run these)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from servicegraph.bootstrap import Services
from servicegraph.cmdb.model import HistoryKind
from servicegraph.cmdb.observation import CIObservation, ObservationBatch
from servicegraph.events.model import Event, EventStatus, Severity
from servicegraph.events.wire import events_to_dicts
from servicegraph.runtime import jobs


def test_stale_cleanup_marks_what_no_source_reported_for_long_and_deletes_nothing(
    make_services: Callable[..., Services],
) -> None:
    services = make_services(stale_after_days=30)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=45)
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    report = services.reconciler.apply(
        ObservationBatch(
            "erp",
            [
                CIObservation("server", "gone", {"serial_number": "OLD"}, key="gone"),
                CIObservation("server", "here", {"serial_number": "NEW"}, key="here"),
            ],
            observed_at=old,
        )
    )
    gone, here = report.ci_ids
    services.reconciler.apply(
        ObservationBatch(
            "snmp", [CIObservation("server", "here", {"serial_number": "NEW"})], observed_at=recent
        )
    )
    assert jobs.stale_cleanup(services) == {"cis_marked_stale": 1, "relationships_marked_stale": 0}
    cis = services.store.get_cis([gone, here])  # type: ignore[list-item]
    assert cis[gone].stale and not cis[here].stale  # type: ignore[index]
    entry = services.history.timeline(gone)[-1]  # type: ignore[arg-type]
    assert (entry.kind, entry.source) == (HistoryKind.STALE, "stale-cleanup")
    assert jobs.stale_cleanup(services)["cis_marked_stale"] == 0, "idempotent"
    # seen again: fresh
    services.reconciler.apply(
        ObservationBatch("erp", [CIObservation("server", "gone", {"serial_number": "OLD"})])
    )
    assert not services.store.get_cis([gone])[gone].stale  # type: ignore[index, list-item]
    with pytest.raises(ValueError, match="part_size"):
        services.reconciler.expire(dt.timedelta(days=1), part_size=0)


def test_correlate_and_housekeeping_jobs(make_services: Callable[..., Services]) -> None:
    services = make_services(inbox_retention_days=1)
    now = dt.datetime.now(dt.UTC)
    event = Event(
        source="test",
        name="Ping",
        status=EventStatus.FIRING,
        severity=Severity.MAJOR,
        occurred_at=now,
        fingerprint="fp",
        event_id="e1",
    )
    assert jobs.ingest(services, events_to_dicts([event])) == {"accepted": 1, "duplicates": 0}
    result = jobs.correlate(services)
    assert (result["events"], result["pending"], result["incidents_opened"]) == (1, 0, 1)
    assert jobs.housekeeping(services) == {"inbox_events_removed": 0}, "within retention"
    services.settings.inbox_retention_days = 1e-9
    assert jobs.housekeeping(services) == {"inbox_events_removed": 1}
    assert jobs.ingest(services, events_to_dicts([event]))["accepted"] == 1, "pruned: new again"
