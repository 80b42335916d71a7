"""The HTTP entry point: FastAPI app with health, the ingestion webhooks and /graphql. Services are
created by ``bootstrap`` when the app starts, never at import; without a broker the
correlation worker runs in-process."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.telemetry import TelemetryConfig
from starlette.types import Receive, Scope, Send

from servicegraph import __version__
from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.errors import RETRY_AFTER_S, CmdbError
from servicegraph.cmdb.model import utcnow
from servicegraph.config import Settings
from servicegraph.graphql.router import graphql_router
from servicegraph.http import ingestion
from servicegraph.http.gate import RequestGate
from servicegraph.http.health import Correlation, check_health
from servicegraph.runtime import jobs, metrics
from servicegraph.runtime.heap import settle_heap
from servicegraph.runtime.leader import Election, FileElection, Leadership, LeaseElection
from servicegraph.runtime.scheduler import EmbeddedScheduler
from servicegraph.runtime.worker import CorrelationWorker
from servicegraph.runtime.worker_process import CorrelationProcess

log = logging.getLogger(__name__)

# the lease of the background jobs in Neo4j mode: renewed every 2 s (``Leadership``), so a
# leader killed with SIGKILL hands over within 15 s
_JOBS_LEASE = "background-jobs"
_JOBS_TTL = dt.timedelta(seconds=15)


class _Background:
    """What runs beside the API. Without a broker: the correlation worker (a thread, or a
    child process with ``embedded_worker_process``) and the embedded scheduler, in one of
    the API processes when there are several (``api_workers``; ``leader.py``). With a
    broker: Celery workers do the work, and ingestion enqueues a correlation task (at most
    one per ``_TRIGGER_INTERVAL``) so events need not wait for the next beat."""

    _TRIGGER_INTERVAL = 0.1

    def __init__(self, services: Services) -> None:
        settings = services.settings
        self._settings = settings
        self._services = services
        self._leadership: Leadership | None = None
        self._jobs_lock = threading.Lock()  # the election thread may start them late
        self._jobs_running = False
        self.worker: CorrelationWorker | CorrelationProcess | None = None
        self._scheduler: EmbeddedScheduler | None = None
        self._celery_correlate: Any = None
        self._last_trigger = 0.0
        if settings.broker_url:
            from servicegraph import tasks

            tasks.configure(settings)
            self._celery_correlate = tasks.correlate
        elif settings.embedded_worker:
            if settings.embedded_worker_process:  # None (unset): a thread
                self.worker = CorrelationProcess(settings, on_batch=jobs.WorkerMetrics(services))
            else:
                self.worker = CorrelationWorker(
                    services.correlator,
                    poll_interval=settings.correlation.poll_interval_s,
                    on_batch=jobs.WorkerMetrics(services),
                )
            periodic = {k: v for k, v in settings.schedule.items() if k != "correlate"}
            erp = jobs.erp_jobs(services)  # each ERP feed on its own schedule
            periodic.update({name: interval for name, (interval, _) in erp.items()})
            runnable = {**jobs.PERIODIC, **{name: job for name, (_, job) in erp.items()}}
            self._scheduler = EmbeddedScheduler(services, periodic, runnable)

    def start(self) -> None:
        if self.worker is None and self._scheduler is None:
            return
        election = self._election()
        if election is None:
            self._start_jobs()
            return
        self._leadership = Leadership(election, self._start_jobs, on_lost=self._stop_jobs)
        self._leadership.start()

    def _election(self) -> Election | None:
        """Who runs the jobs among the API processes that could: with Neo4j, one among
        every host (a lease in the shared database); otherwise one of several workers of
        this host's ``serve`` (a lock file in DATA_DIR); a lone process needs none."""
        if self._settings.store == "neo4j":
            from servicegraph.bootstrap import open_leases

            return LeaseElection(open_leases(self._services.store), _JOBS_LEASE, _JOBS_TTL)
        if self._settings.api_workers > 1:
            return FileElection(self._settings.data_dir / "serve-leader.lock")
        return None

    def _stop_jobs(self) -> None:
        with self._jobs_lock:
            if self._jobs_running:
                if self.worker is not None:
                    self.worker.stop()
                if self._scheduler is not None:
                    self._scheduler.stop()
                self._jobs_running = False

    def _start_jobs(self) -> None:
        with self._jobs_lock:
            if self.worker is not None:
                self.worker.start()
            if self._scheduler is not None:
                self._scheduler.start()
            self._jobs_running = True

    def stop(self) -> None:
        if self._leadership is not None:
            self._leadership.stop()
        self._stop_jobs()
        if self._leadership is not None:
            self._leadership.release()

    def correlation(self) -> Correlation:
        """Where correlation runs, for /healthz."""
        if self._celery_correlate is not None:
            return Correlation("celery")
        if self.worker is None:
            return Correlation("elsewhere")  # `servicegraph worker` processes, or nowhere
        if not self._jobs_running:
            return Correlation("another API process")
        where = "process" if isinstance(self.worker, CorrelationProcess) else "thread"
        return Correlation(where, self.worker)

    def on_ingest(self) -> None:
        if self.worker is not None:
            self.worker.notify()  # not started here (another API process leads): a no-op
        elif self._celery_correlate is not None:
            now = time.monotonic()
            if now - self._last_trigger >= self._TRIGGER_INTERVAL:
                self._last_trigger = now
                self._celery_correlate.delay()


class ServiceGraphAPI(FastAPI):
    """FastAPI, with the ingestion endpoints (``webhooks``) answered before its middleware
    and routing: they take most of the traffic, and need neither. Every other request
    passes the gate first (``http.gate``: a bounded body, the token checked before a large
    one is read)."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingestion = ingestion.IngestionEndpoints(
            self.state, max_body_bytes=settings.ingest_max_body_bytes
        )
        self.gate = RequestGate(lambda: self.state.services.tokens, settings.api_max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"] in ingestion.ENDPOINTS:
                await self.ingestion(scope, receive, send)
                return
            admitted = await self.gate.admit(scope, receive, send)
            if admitted is None:
                return  # refused, or the client went away
            receive = admitted
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()
            schema.setdefault("paths", {}).update(ingestion.openapi_paths())
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(ingestion.openapi_components())
            components.setdefault("securitySchemes", {})["bearer"] = {
                "type": "http",
                "scheme": "bearer",
                "description": "an API token (servicegraph token create), or a source's own "
                "ingestion token (SERVICEGRAPH_INGEST_TOKENS__<SOURCE>)",
            }
            self.openapi_schema = schema
        return self.openapi_schema


def app_from_environment() -> FastAPI:
    """The app of one of ``serve --workers N``'s processes (uvicorn imports it by name):
    settings from the environment, which ``serve`` prepared."""
    return create_app(settings=Settings())


def create_app(services: Services | None = None, settings: Settings | None = None) -> FastAPI:
    """The app. Pass ``services`` to share them with the caller (tests, ``serve``);
    otherwise they are bootstrapped from ``settings`` at startup and closed at shutdown."""
    config = services.settings if services is not None else (settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        svc = services or bootstrap(config)
        app.state.services = svc
        background = _Background(svc)
        # Load the topology projection before traffic arrives, not with the first event or
        # impact query (seconds on a large graph). A store that is down is reported by
        # /healthz; the projection then loads on first use.
        try:
            svc.impact.refresh()
        except CmdbError as exc:
            log.warning("topology projection not loaded at startup: %s", exc)
        settle_heap()
        app.state.inbox_threads = ThreadPoolExecutor(8, thread_name_prefix="inbox")
        quiet = ingestion.QuietAcceptedEvents()
        logging.getLogger("uvicorn.access").addFilter(quiet)
        background.start()
        app.state.background = background
        app.state.on_ingest = background.on_ingest
        try:
            yield
        finally:
            background.stop()
            app.state.inbox_threads.shutdown()
            logging.getLogger("uvicorn.access").removeFilter(quiet)
            if owned:
                svc.close()

    telemetry: TelemetryConfig | None = None
    if not config.opentelemetry:
        telemetry = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    app = ServiceGraphAPI(
        config, title="servicegraph", version=__version__, lifespan=lifespan, telemetry=telemetry
    )
    app.include_router(graphql_router(config.graphql), prefix="/graphql")

    @app.get("/metrics")
    def prometheus_metrics(request: Request) -> Response:
        # the desk's ticket gauges are read from the store at each scrape
        body, content_type = metrics.render(request.app.state.services.desk.reports.gauges)
        return Response(body, media_type=content_type)

    @app.get("/healthz")
    def healthz(request: Request) -> JSONResponse:
        """200 when every part works; 503 naming the parts that do not (``http.health``)."""
        state = request.app.state
        health = check_health(state.services, state.background.correlation(), utcnow)
        headers = {"Retry-After": str(RETRY_AFTER_S)} if health.failing else None
        return JSONResponse(
            health.body(__version__), status_code=health.status_code, headers=headers
        )

    return app
