"""The background jobs, as plain functions of the services.

Celery tasks (``tasks.py``) and the embedded scheduler (``scheduler.py``) run these same
functions; each only calls a service, so what a job does is tested without a broker.
Every job is safe to run twice: correlation advances the inbox cursor in the same
transaction as its effects, housekeeping deletes only what is already processed.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from servicegraph.bootstrap import Services
from servicegraph.correlation.correlator import BatchResult
from servicegraph.runtime import metrics


def correlate(services: Services, *, budget_s: float = 5.0) -> dict[str, Any]:
    """Correlate inbox batches until the inbox is empty or ``budget_s`` is spent."""
    with metrics.timed_job("correlate"):
        deadline = time.monotonic() + budget_s
        total = services.correlator.process_pending()
        while total.events and time.monotonic() < deadline:
            result = services.correlator.process_pending()
            total.merge(result)
            if result.events == 0:
                break
        record_batch(total)
        observe_inbox(services)
        return {**asdict(total), "pending": services.incidents.pending_count()}


def record_batch(result: BatchResult) -> None:
    metrics.EVENTS.inc(result.events - result.redeliveries)
    metrics.REDELIVERED.inc(result.redeliveries)
    metrics.CLAMPED.inc(result.clamped)


class WorkerMetrics:
    """What the embedded correlation worker reports after each batch: the event counters,
    and the inbox backlog gauges at most every ``interval`` seconds (counting the waiting
    events reads all of them)."""

    def __init__(self, services: Services, interval: float = 5.0) -> None:
        self._services = services
        self._interval = interval
        self._observed = -interval

    def __call__(self, result: BatchResult) -> None:
        record_batch(result)
        now = time.monotonic()
        if now - self._observed >= self._interval:
            self._observed = now
            observe_inbox(self._services)


def ingest(services: Services, events: list[dict[str, Any]]) -> dict[str, int]:
    """Persist events given as ``Event.to_json`` dicts (a trap or poll batch) in the inbox.

    Idempotent: each event's ``event_id`` is stored once."""
    from servicegraph.events.model import Event

    with metrics.timed_job("ingest"):
        batch = [Event.from_json(e) for e in events]
        accepted = services.correlator.ingest(batch)
        if batch:
            metrics.INGESTED.labels(batch[0].source).inc(accepted)
        return {"accepted": accepted, "duplicates": len(batch) - accepted}


def housekeeping(services: Services) -> dict[str, int]:
    """Delete inbox events processed longer ago than the retention period."""
    with metrics.timed_job("housekeeping"):
        retention = dt.timedelta(days=services.settings.inbox_retention_days)
        removed = services.incidents.prune_inbox(dt.datetime.now(dt.UTC) - retention)
        observe_inbox(services)
        return {"inbox_events_removed": removed}


def observe_inbox(services: Services) -> None:
    pending, oldest = services.incidents.inbox_lag()
    metrics.INBOX_PENDING.set(pending)
    metrics.INBOX_LAG.set(
        0.0 if oldest is None else (dt.datetime.now(dt.UTC) - oldest).total_seconds()
    )


def stale_cleanup(services: Services) -> dict[str, int]:
    """Mark stale what no source has reported for ``stale_after_days`` (never deletes)."""
    with metrics.timed_job("stale_cleanup"):
        report = services.reconciler.expire(dt.timedelta(days=services.settings.stale_after_days))
        return {
            "cis_marked_stale": report.cis_marked_stale,
            "relationships_marked_stale": report.relationships_marked_stale,
        }


def _snmp_inventory(services: Services) -> list[Any]:
    from servicegraph.collectors.snmp.targets import parse_targets

    snmp = services.settings.snmp
    return parse_targets(snmp.targets, default_port=snmp.port, max_sweep_hosts=snmp.max_sweep_hosts)


def discover(services: Services, *, run_id: str | None = None) -> dict[str, Any]:
    """A complete SNMP discovery run of the inventory (``snmp.targets``).

    Giving the same ``run_id`` again (a redelivered task) replays the run: reconciliation
    changes nothing twice and the run counts one missed run towards staleness, not two."""
    import asyncio

    from servicegraph.collectors.snmp.discovery import run_discovery

    with metrics.timed_job("discover"):
        snmp = services.settings.snmp
        targets = _snmp_inventory(services)
        if not targets:
            return {"skipped": "no SNMP inventory: list devices in the snmp.targets setting"}
        report = asyncio.run(
            run_discovery(
                services.reconciler,
                targets,
                credentials=snmp.credential_set(),
                session_options=snmp.session_options(),
                options=snmp.discovery_options(),
                complete=True,
                engine=snmp.engine,
                run_id=run_id,
            )
        )
        return {
            "run_id": report.run_id,
            "devices": report.devices,
            "interfaces": report.interfaces,
            "links": report.links,
            "outcomes": report.outcomes(),
        }


def poll(services: Services) -> dict[str, int]:
    """One poll cycle of the inventory: changes since the last cycle become events."""
    import asyncio

    from servicegraph.collectors.snmp.client import SessionFactory
    from servicegraph.collectors.snmp.poller import Poller
    from servicegraph.collectors.snmp.state import PollState

    with metrics.timed_job("poll"):
        snmp = services.settings.snmp
        targets = _snmp_inventory(services)
        if not targets:
            return {"devices": 0, "events": 0, "accepted": 0}
        state = PollState(services.settings.data_dir / "snmp-poll-state.json")
        with state.locked() as samples:
            factory = SessionFactory(snmp.session_options(), engine=snmp.engine)
            try:
                poller = Poller(factory, snmp.credential_set(), concurrency=snmp.concurrency)
                poller.samples = samples
                found = asyncio.run(poller.poll_once(targets))
            finally:
                factory.close()
        now = dt.datetime.now(dt.UTC)
        accepted = services.correlator.ingest([e.to_event(now) for e in found])
        return {"devices": len(targets), "events": len(found), "accepted": accepted}


# name -> job taking only the services; what the beat schedule and scheduler may run
PERIODIC: dict[str, Callable[[Services], Any]] = {
    "correlate": correlate,
    "housekeeping": housekeeping,
    "stale_cleanup": stale_cleanup,
    "discover": discover,
    "poll": poll,
}
