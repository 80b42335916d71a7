"""The HTTP entry point: FastAPI app with health and the ingestion webhooks. Services are
created by ``bootstrap`` when the app starts, never at import; without a broker the
correlation worker runs in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from servicegraph import __version__, webhooks
from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.errors import CmdbError, StoreUnavailable
from servicegraph.config import Settings
from servicegraph.correlation.worker import CorrelationWorker


def create_app(services: Services | None = None, settings: Settings | None = None) -> FastAPI:
    """The app. Pass ``services`` to share them with the caller (tests, ``serve``);
    otherwise they are bootstrapped from ``settings`` at startup and closed at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        svc = services or bootstrap(settings or Settings())
        app.state.services = svc
        worker = None
        if svc.settings.embedded_worker:
            worker = CorrelationWorker(
                svc.correlator, poll_interval=svc.settings.correlation.poll_interval_s
            )
            worker.start()
        app.state.worker = worker
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            if owned:
                svc.close()

    app = FastAPI(title="servicegraph", version=__version__, lifespan=lifespan)
    app.include_router(webhooks.router)

    @app.get("/healthz")
    def healthz(request: Request) -> JSONResponse:
        svc: Services = request.app.state.services
        body: dict[str, Any] = {"version": __version__, "store": {"backend": svc.settings.store}}
        try:
            svc.store.ping()
            body["store"]["status"] = "up"
            body["store"]["counts"] = svc.store.counts()
        except (StoreUnavailable, CmdbError) as exc:
            body["status"] = "down"
            body["store"]["status"] = "down"
            body["store"]["error"] = str(exc)
            return JSONResponse(body, status_code=503)
        body["status"] = "ok"
        return JSONResponse(body)

    return app
