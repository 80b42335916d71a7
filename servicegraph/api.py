"""The HTTP entry point: FastAPI app with health, and (in later releases) GraphQL and
webhooks. Services are created by ``bootstrap`` when the app starts, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from servicegraph import __version__
from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.errors import CmdbError, StoreUnavailable
from servicegraph.config import Settings


def create_app(services: Services | None = None, settings: Settings | None = None) -> FastAPI:
    """The app. Pass ``services`` to share them with the caller (tests, ``serve``);
    otherwise they are bootstrapped from ``settings`` at startup and closed at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or bootstrap(settings or Settings())
        try:
            yield
        finally:
            if owned:
                app.state.services.close()

    app = FastAPI(title="servicegraph", version=__version__, lifespan=lifespan)

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
