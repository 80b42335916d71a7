"""The background jobs, as plain functions of the services.

Celery tasks (``tasks.py``) and the embedded scheduler (``scheduler.py``) run these same
functions; each only calls a service, so what a job does is tested without a broker.
Every job is safe to run twice: correlation advances the inbox cursor in the same
transaction as its effects, housekeeping deletes only what is already processed, the
auto-close job closes only what is still resolved.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from servicegraph.bootstrap import Services
from servicegraph.correlation.policy import BatchResult
from servicegraph.runtime import metrics

if TYPE_CHECKING:
    from servicegraph.collectors.snmp.client import SessionOptions
    from servicegraph.collectors.snmp.credentials import CredentialSet
    from servicegraph.collectors.snmp.discovery import DiscoveryOptions, ResultCallback, RunReport
    from servicegraph.collectors.snmp.metrics import SnmpMetrics
    from servicegraph.collectors.snmp.poller import PollSample
    from servicegraph.collectors.snmp.targets import Target
    from servicegraph.events.device import MonitoringEvent


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
        return {**asdict(total), "pending": services.inbox.pending_count()}


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
    """Persist events given in their wire form (``events.wire.events_to_dicts``: a trap or
    poll batch) in the inbox.

    Idempotent: each event's ``event_id`` is stored once. Raises msgspec.ValidationError
    naming the field of an event that is not in the wire form."""
    from servicegraph.events.wire import events_from_dicts

    with metrics.timed_job("ingest"):
        batch = events_from_dicts(events)
        accepted = services.correlator.ingest(batch)
        if batch:
            metrics.INGESTED.labels(batch[0].source).inc(accepted)
        return {"accepted": accepted, "duplicates": len(batch) - accepted}


def housekeeping(services: Services) -> dict[str, int]:
    """Delete inbox events processed longer ago than the retention period."""
    with metrics.timed_job("housekeeping"):
        retention = dt.timedelta(days=services.settings.inbox_retention_days)
        removed = services.inbox.prune(dt.datetime.now(dt.UTC) - retention)
        observe_inbox(services)
        return {"inbox_events_removed": removed}


def observe_inbox(services: Services) -> None:
    pending, oldest = services.inbox.lag()
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


def auto_close(services: Services, *, limit: int = 10_000) -> dict[str, int]:
    """Close resolved tickets nobody reopened within ``desk.auto_close_days`` (close code
    ``auto_closed``, by the system). Idempotent: a closed ticket is no longer resolved; a
    backlog larger than ``limit`` is closed by the next runs."""
    with metrics.timed_job("auto_close"):
        return {"tickets_closed": services.desk.tickets.auto_close(limit=limit)}


def notifications(services: Services, *, budget_s: float = 60.0) -> dict[str, Any]:
    """Send the notifications due in the outbox (``delivery.sender``: claimed with a lease,
    each marked right after it is sent, failures retried with backoff, then dead letters).
    Safe to run twice at once: two runs never claim the same message."""
    with metrics.timed_job("notifications"):
        if services.sender is None:
            return {"skipped": "no notification channel: set notifications.smtp or .webhooks"}
        return asdict(services.sender.drain(budget_s=budget_s))


def _snmp_inventory(services: Services) -> list[Any]:
    from servicegraph.collectors.snmp.targets import parse_targets

    snmp = services.settings.snmp
    return parse_targets(snmp.targets, default_port=snmp.port, max_sweep_hosts=snmp.max_sweep_hosts)


def discovery_run(
    services: Services,
    targets: Sequence[Target] | None = None,
    *,
    credentials: CredentialSet | None = None,
    session_options: SessionOptions | None = None,
    options: DiscoveryOptions | None = None,
    complete: bool = True,
    run_id: str | None = None,
    snmp_metrics: SnmpMetrics | None = None,
    on_result: ResultCallback | None = None,
) -> RunReport | None:
    """One SNMP discovery run and its report: of ``targets``, or of the inventory
    (``snmp.targets``) when none are given; None when there is nothing to discover.

    What is not given comes from the settings. ``discover`` runs the inventory; the command
    line gives its own targets, options and a progress callback (``on_result``)."""
    import asyncio

    from servicegraph.collectors.snmp.discovery import run_discovery

    snmp = services.settings.snmp
    targets = _snmp_inventory(services) if targets is None else targets
    if not targets:
        return None
    return asyncio.run(
        run_discovery(
            services.reconciler,
            targets,
            credentials=snmp.credential_set() if credentials is None else credentials,
            session_options=session_options or snmp.session_options(),
            options=options or snmp.discovery_options(),
            complete=complete,
            engine=snmp.engine,
            metrics=snmp_metrics,
            on_result=on_result,
            run_id=run_id,
        )
    )


def discover(services: Services, *, run_id: str | None = None) -> dict[str, Any]:
    """A complete SNMP discovery run of the inventory (``snmp.targets``).

    Giving the same ``run_id`` again (a redelivered task) replays the run: reconciliation
    changes nothing twice and the run counts one missed run towards staleness, not two."""
    with metrics.timed_job("discover"):
        report = discovery_run(services, run_id=run_id)
        if report is None:
            return {"skipped": "no SNMP inventory: list devices in the snmp.targets setting"}
        return {
            "run_id": report.run_id,
            "devices": report.devices,
            "interfaces": report.interfaces,
            "links": report.links,
            "outcomes": report.outcomes(),
        }


def poll(
    services: Services,
    targets: Sequence[Target] | None = None,
    *,
    credentials: CredentialSet | None = None,
    samples: dict[tuple[str, int], PollSample] | None = None,
    ingest: bool = True,
    on_events: Callable[[list[MonitoringEvent]], None] | None = None,
) -> dict[str, int]:
    """One poll cycle: changes since the last cycle become events, handed to correlation.

    By default the inventory (``snmp.targets``) is polled, compared with the poll state
    (the last cycle's samples, whichever process ran it), which the cycle then updates. A
    caller may give ``targets`` with their ``credentials``, and ``samples``, its own memory
    of its last cycle, to use instead of the poll state: the command line does when it does
    not ``ingest``, so that a change correlation was not told of is still news to the next
    scheduled cycle. ``on_events`` sees the events (when there are any) before ingestion."""
    import asyncio
    import contextlib

    from servicegraph.collectors.snmp.client import SessionFactory
    from servicegraph.collectors.snmp.poller import Poller

    with metrics.timed_job("poll"):
        snmp = services.settings.snmp
        targets = _snmp_inventory(services) if targets is None else targets
        if not targets:
            return {"devices": 0, "events": 0, "accepted": 0}
        if credentials is None:
            credentials = snmp.credential_set()
        memory = services.poll_state.cycle() if samples is None else contextlib.nullcontext(samples)
        with memory as last:
            factory = SessionFactory(snmp.session_options(), engine=snmp.engine)
            try:
                poller = Poller(factory, credentials, concurrency=snmp.concurrency)
                poller.samples = last
                found = asyncio.run(poller.poll_once(targets))
            finally:
                factory.close()
        if found and on_events is not None:
            on_events(found)
        accepted = 0
        if ingest:
            now = dt.datetime.now(dt.UTC)
            accepted = services.correlator.ingest([e.to_event(now) for e in found])
        return {"devices": len(targets), "events": len(found), "accepted": accepted}


def sla_escalation(services: Services, *, limit: int = 10_000) -> dict[str, int]:
    """Fire the SLA escalation levels tickets' clocks have reached (each once per ticket,
    clock and level, however often and wherever the job runs), after evaluating again the
    clocks of tickets evaluated under another SLA configuration."""
    with metrics.timed_job("sla_escalation"):
        report = services.desk.escalation.run(limit=limit)
        return {
            "evaluated": report.evaluated,
            "reevaluated": report.reevaluated,
            "fired": report.fired,
        }


def erp_sync(services: Services, source: str) -> dict[str, Any]:
    """One scheduled run of an ERP feed (``erp.sources.<source>.schedule``). A feed with bad
    records writes nothing unless it declares ``allow_partial``; the ERP unreachable
    raises FeedError, and the next run tries again."""
    with metrics.timed_job("erp_sync"):
        declared = services.erp_sync.source(source)
        result = services.erp_sync.sync(source, allow_partial=declared.allow_partial)
        return {**result.summary, "records": result.records, "complete": result.complete}


def erp_jobs(services: Services) -> dict[str, tuple[float, Callable[[Services], Any]]]:
    """The ERP feeds with a schedule: entry name -> (interval, job)."""

    def job(name: str) -> Callable[[Services], Any]:
        return lambda s: erp_sync(s, name)

    return {
        f"erp_sync:{name}": (source.schedule_s, job(name))
        for name, source in services.erp_sync.sources.items()
        if source.schedule_s > 0
    }


# name -> job taking only the services; what the beat schedule and scheduler may run
PERIODIC: dict[str, Callable[[Services], Any]] = {
    "correlate": correlate,
    "housekeeping": housekeeping,
    "stale_cleanup": stale_cleanup,
    "auto_close": auto_close,
    "notifications": notifications,
    "sla_escalation": sla_escalation,
    "discover": discover,
    "poll": poll,
}
