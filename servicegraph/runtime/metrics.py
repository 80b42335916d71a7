"""Prometheus metrics for jobs and ingestion.

With several worker processes (Celery prefork, or API plus workers), set
``PROMETHEUS_MULTIPROC_DIR`` to a directory shared by all of them, empty at start: every
process then writes its samples there and ``/metrics`` aggregates them (prometheus-client's
multi-process mode). Without it, each process serves its own registry.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
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


def render() -> tuple[bytes, str]:
    """The metrics page: aggregated over processes in multi-process mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
