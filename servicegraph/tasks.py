"""Celery: the jobs of ``servicegraph.runtime.jobs`` as tasks on Redis, for more than one machine.

Queues: ``correlate`` (correlation, ingestion of trap/poll batches), ``collect`` (discovery
and polling, added by the collectors), ``default`` (housekeeping, stale cleanup, closing
resolved tickets). Tasks are acknowledged after they finish (``acks_late``) and re-queued
if their worker dies (``task_reject_on_worker_lost``; with Redis, after
``broker_visibility_timeout_s``), so a killed worker loses nothing; every job is
idempotent, so a redelivered task repeats nothing.

The app object exists at import (Celery's command line needs it) but is configured from
settings only by ``configure``; each worker process bootstraps its own services when it
starts.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init, worker_process_shutdown

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.errors import StoreError, StoreUnavailable
from servicegraph.config import Settings
from servicegraph.runtime import jobs
from servicegraph.runtime.heap import BatchHeap

log = logging.getLogger(__name__)

app = Celery("servicegraph")

QUEUES = ("correlate", "collect", "default")
ROUTES = {
    "servicegraph.correlate": {"queue": "correlate"},
    "servicegraph.ingest": {"queue": "correlate"},
    "servicegraph.housekeeping": {"queue": "default"},
    "servicegraph.stale_cleanup": {"queue": "default"},
    "servicegraph.auto_close": {"queue": "default"},
    "servicegraph.notifications": {"queue": "default"},
    "servicegraph.sla_escalation": {"queue": "default"},
    "servicegraph.discover": {"queue": "collect"},
    "servicegraph.poll": {"queue": "collect"},
    "servicegraph.erp_sync": {"queue": "collect"},
}
# transient failures worth a retry with backoff: the store busy or briefly unreachable
TRANSIENT = (StoreError, StoreUnavailable)

_services: Services | None = None
_heap = BatchHeap()  # see `correlate`


def configure(settings: Settings) -> Celery:
    """Point the app at the broker and set the beat schedule from ``settings``."""
    if not settings.broker_url:
        raise ValueError(
            "no broker configured: set SERVICEGRAPH_BROKER_URL (e.g. redis://127.0.0.1:6379/0)"
            ", or run `servicegraph serve`, which runs the jobs in-process"
        )
    unknown = sorted(set(settings.schedule) - set(jobs.PERIODIC))
    if unknown:
        raise ValueError(
            f"schedule names unknown jobs {unknown}; known: {', '.join(sorted(jobs.PERIODIC))}"
        )
    timeout = settings.broker_visibility_timeout_s
    app.conf.update(
        broker_url=settings.broker_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout_s,
            # Look for abandoned tasks a few times per timeout, not kombu's default of
            # every ~100 s, so that a dead worker's task comes back soon after it expires.
            "unacked_restore_interval": max(1.0, min(10.0, timeout / 3)),
            "unacked_restore_throttle": 1,
        },
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="default",
        task_routes=ROUTES,
        beat_schedule={
            f"{name} every {interval:g} s": {"task": f"servicegraph.{name}", "schedule": interval}
            for name, interval in settings.schedule.items()
            if interval > 0
        }
        | {
            # each ERP feed on its own schedule (erp.sources.<name>.schedule)
            f"erp_sync {name} every {source.schedule_s:g} s": {
                "task": "servicegraph.erp_sync",
                "schedule": source.schedule_s,
                "args": [name],
            }
            for name, source in settings.erp.built_sources().items()
            if source.schedule_s > 0
        },
        worker_hijack_root_logger=False,
    )
    return app


def services() -> Services:
    global _services
    if _services is None:
        _services = bootstrap(Settings())
    return _services


@worker_process_init.connect
def _open_services(**_: Any) -> None:
    services()


@worker_process_shutdown.connect
def _close_services(**_: Any) -> None:
    global _services
    if _services is not None:
        _services.close()
        _services = None


# Declared once for every task: a transient store failure is retried by Celery after 1, 2,
# 4 ... 60 s, ten times at most (Celery logs each retry).
_RETRIED: dict[str, Any] = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 1,
    "retry_backoff_max": 60,
    "retry_jitter": False,
    "max_retries": 10,
}


@app.task(name="servicegraph.correlate", **_RETRIED)
def correlate() -> dict[str, Any]:
    result = jobs.correlate(services())
    # The first correlation loaded the topology projection, and settles the heap (workers
    # that never correlate never load it); later ones freeze what their batches left.
    _heap.after_batch()
    return result


@app.task(name="servicegraph.ingest", **_RETRIED)
def ingest(events: list[dict[str, Any]]) -> dict[str, int]:
    """``events`` in their wire form: ``servicegraph.events.wire.events_to_dicts``."""
    result = jobs.ingest(services(), events)
    correlate.delay()
    return result


@app.task(name="servicegraph.housekeeping", **_RETRIED)
def housekeeping() -> dict[str, int]:
    return jobs.housekeeping(services())


@app.task(name="servicegraph.stale_cleanup", **_RETRIED)
def stale_cleanup() -> dict[str, int]:
    return jobs.stale_cleanup(services())


@app.task(name="servicegraph.auto_close", **_RETRIED)
def auto_close() -> dict[str, int]:
    return jobs.auto_close(services())


@app.task(name="servicegraph.notifications", **_RETRIED)
def notifications() -> dict[str, Any]:
    """The outbox's due notifications; a redelivered task claims only what is still due."""
    return jobs.notifications(services())


@app.task(name="servicegraph.sla_escalation", **_RETRIED)
def sla_escalation() -> dict[str, int]:
    return jobs.sla_escalation(services())


@app.task(name="servicegraph.discover", bind=True, **_RETRIED)
def discover(self: Task) -> dict[str, Any]:
    # the task id names the run: a redelivered or retried task replays the same run
    result = jobs.discover(services(), run_id=self.request.id)
    correlate.delay()
    return result


@app.task(name="servicegraph.erp_sync", **_RETRIED)
def erp_sync(source: str) -> dict[str, Any]:
    return jobs.erp_sync(services(), source)


@app.task(name="servicegraph.poll", **_RETRIED)
def poll() -> dict[str, int]:
    result = jobs.poll(services())
    if result["accepted"]:
        correlate.delay()
    return result
