"""Ingestion endpoints: Alertmanager, Zabbix and the generic event API.

Each source authenticates with its own bearer token (``ingest_tokens`` setting) or with an
API token of the ``integration`` role (``servicegraph token create``). The body
is validated completely before anything is stored; valid events are persisted in the
durable inbox before the answer (202); an invalid body gets 400 naming the field and
stores nothing; if the inbox cannot persist, 503 tells the sender to retry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
from collections.abc import Callable
from concurrent.futures import Executor

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from servicegraph import metrics
from servicegraph.access.model import Permission
from servicegraph.bootstrap import Services
from servicegraph.cmdb.errors import CmdbError, StoreError, StoreUnavailable, ValidationFailed
from servicegraph.collectors.monitoring import alertmanager, generic, zabbix
from servicegraph.correlation.model import Event

Parser = Callable[[bytes, dt.datetime], list[Event]]

PATHS = ("/api/v1/webhooks/", "/api/v1/events")

router = APIRouter(prefix="/api/v1", tags=["ingestion"])


def _authorised(request: Request, source: str) -> JSONResponse | None:
    """The source's own token (``ingest_tokens``) or an API token whose role may ingest
    (``integration``, ``admin``) lets the request in."""
    services: Services = request.app.state.services
    expected = services.settings.ingest_tokens.get(source)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        if expected and hmac.compare_digest(token.encode(), expected.encode()):
            return None
        principal = services.tokens.authenticate(token)
        if principal is not None:
            if principal.can(Permission.INGEST):
                return None
            return JSONResponse(
                {
                    "error": f"the API token '{principal.name}' has the role "
                    f"'{principal.role.value}', which cannot post events; use an integration "
                    "token"
                },
                status_code=403,
            )
    if not expected:
        return JSONResponse(
            {
                "error": f"ingestion from '{source}' needs a token: set "
                f"SERVICEGRAPH_INGEST_TOKENS__{source.upper()}, or send an API token with the "
                "integration role (servicegraph token create --role integration)"
            },
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return JSONResponse(
        {"error": f"missing or wrong bearer token for source '{source}'"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def _ingest(request: Request, source: str, parse: Parser) -> JSONResponse:
    denied = _authorised(request, source)
    if denied is not None:
        return denied
    body = await request.body()
    services: Services = request.app.state.services
    received = dt.datetime.now(dt.UTC)
    try:
        events = parse(body, received)
    except ValidationFailed as exc:
        return JSONResponse(
            {"error": str(exc), "field": exc.field, "reason": exc.reason}, status_code=400
        )
    threads: Executor = request.app.state.inbox_threads
    try:
        # The inbox commit waits on the disk: off the event loop, to threads of its own,
        # which cost half of what Starlette's general thread pool takes per call.
        # Concurrent requests commit together (the inbox's group commit).
        accepted = await asyncio.get_running_loop().run_in_executor(
            threads, services.correlator.ingest, events
        )
    except (StoreUnavailable, StoreError, CmdbError) as exc:
        return JSONResponse(
            {"error": f"events not stored, retry later: {exc}"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    metrics.INGESTED.labels(source).inc(accepted)
    on_ingest = getattr(request.app.state, "on_ingest", None)
    if on_ingest is not None and accepted:
        on_ingest()
    return JSONResponse(
        {"accepted": accepted, "duplicates": len(events) - accepted}, status_code=202
    )


@router.post("/webhooks/alertmanager", status_code=202)
async def alertmanager_webhook(request: Request) -> JSONResponse:
    """Prometheus Alertmanager webhook receiver (payload version 4)."""
    return await _ingest(request, alertmanager.SOURCE, alertmanager.parse)


@router.post("/webhooks/zabbix", status_code=202)
async def zabbix_webhook(request: Request) -> JSONResponse:
    """Zabbix webhook media type (contrib/zabbix/servicegraph_media_type.js)."""
    return await _ingest(request, zabbix.SOURCE, zabbix.parse)


@router.post("/events", status_code=202)
async def post_event(request: Request) -> JSONResponse:
    """One event in the generic JSON format."""
    return await _ingest(request, generic.SOURCE, generic.parse_one)


@router.post("/events/batch", status_code=202)
async def post_events(request: Request) -> JSONResponse:
    """Up to 10,000 events: ``{"events": [...]}``; all valid or none stored."""
    return await _ingest(request, generic.SOURCE, generic.parse_batch)


class QuietAcceptedEvents(logging.Filter):
    """Keeps accepted event POSTs out of uvicorn's access log; rejected ones stay in it.

    A monitoring storm is thousands of POSTs a minute: a line for each would bury the
    log and cost as much CPU as storing their events (``servicegraph_events_ingested_total``
    counts them instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn's access record: (client, method, path, http version, status)
        if isinstance(args, tuple) and len(args) == 5 and args[1] == "POST":
            path, status = args[2], args[4]
            if isinstance(status, int) and status < 300 and str(path).startswith(PATHS):
                return False
        return True
