"""Prometheus metrics for jobs and ingestion, and the desk's ticket gauges.

With several worker processes (Celery prefork, or API plus workers), set
``PROMETHEUS_MULTIPROC_DIR`` to a directory shared by all of them, empty at start: every
process then writes its samples there and ``/metrics`` aggregates them (prometheus-client's
multi-process mode). Without it, each process serves its own registry.

The desk's gauges (open tickets, breached SLA clocks) are read from the store at scrape
time (``DeskCollector``), so every process shows the same figures whatever its role.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from servicegraph.cmdb.errors import CmdbError
from servicegraph.ticketing.report_ports import TicketGauges

log = logging.getLogger(__name__)

JOBS = Counter(
    "servicegraph_jobs_total", "Jobs run, by job and outcome (ok, failed).", ["job", "outcome"]
)
JOB_SECONDS = Histogram(
    "servicegraph_job_duration_seconds",
    "Wall time of jobs.",
    ["job"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
EVENTS = Counter(
    "servicegraph_events_correlated_total", "Inbox events correlated (each exactly once)."
)
REDELIVERED = Counter(
    "servicegraph_events_redelivered_total",
    "Inbox events correlation dropped: redeliveries of events correlated before that the "
    "ingestion endpoint did not recognise.",
)
INBOX_PENDING = Gauge(
    "servicegraph_inbox_pending",
    "Events waiting in the inbox when last measured (the queue lag in events).",
    multiprocess_mode="livemax",
)
INBOX_LAG = Gauge(
    "servicegraph_inbox_lag_seconds",
    "Age of the oldest event waiting in the inbox when last measured.",
    multiprocess_mode="livemax",
)
CLAMPED = Counter(
    "servicegraph_events_clock_clamped_total",
    "Events correlated that were dated more than max_clock_skew_s after their reception "
    "(a sender's clock ahead): dated at the reception instead.",
)
INGESTED = Counter(
    "servicegraph_events_ingested_total",
    "Events stored by the ingestion endpoints, by source (redeliveries it recognised excluded).",
    ["source"],
)


@contextmanager
def timed_job(job: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        JOBS.labels(job, "failed").inc()
        raise
    finally:
        JOB_SECONDS.labels(job).observe(time.perf_counter() - started)
    JOBS.labels(job, "ok").inc()


class DeskCollector(Collector):
    """The desk's tickets as gauges, read when scraped (``ReportService.gauges``):

    - ``servicegraph_tickets_open{group, priority}``: tickets in an active status;
    - ``servicegraph_sla_clocks_breached{clock, group}``: SLA clocks of open tickets still
      running past their target;
    - ``servicegraph_sla_breached_tickets{clock}``: tickets whose clock breached, running
      or stopped (missed), of all tickets: it grows as breaches happen and falls only when
      a ticket's clocks are re-evaluated (a priority lowered, a policy changed) or tickets
      are deleted, so it is a gauge, not a counter that would reset with the process.
    """

    def __init__(self, gauges: Callable[[], TicketGauges]) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            g = self._gauges()
        except CmdbError as exc:  # the store is down: the other metrics still answer
            log.warning("desk gauges not read: %s", exc)
            return
        opened = GaugeMetricFamily(
            "servicegraph_tickets_open",
            "Tickets in an active status (new, assigned, in progress, pending), by assignment "
            "group and priority.",
            labels=["group", "priority"],
        )
        for (group, priority), n in sorted(g.open.items(), key=lambda i: (i[0][0] or "", i[0][1])):
            opened.add_metric([group or "", str(priority)], n)
        yield opened
        breached = GaugeMetricFamily(
            "servicegraph_sla_clocks_breached",
            "SLA clocks of open tickets running past their target, by clock (response, "
            "resolution) and assignment group.",
            labels=["clock", "group"],
        )
        for (clock, group), n in sorted(
            g.breached_running.items(), key=lambda i: (i[0][0], i[0][1] or "")
        ):
            breached.add_metric([clock, group or ""], n)
        yield breached
        ever = GaugeMetricFamily(
            "servicegraph_sla_breached_tickets",
            "Tickets whose SLA clock breached (still running or stopped), by clock.",
            labels=["clock"],
        )
        for clock, n in sorted(g.breached_tickets.items()):
            ever.add_metric([clock], n)
        yield ever


def render(desk: Callable[[], TicketGauges] | None = None) -> tuple[bytes, str]:
    """The metrics page: aggregated over processes in multi-process mode; with ``desk``,
    the desk's gauges read now (``DeskCollector``)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest()
    if desk is not None:
        own = CollectorRegistry()
        own.register(DeskCollector(desk))
        body += generate_latest(own)
    return body, CONTENT_TYPE_LATEST
