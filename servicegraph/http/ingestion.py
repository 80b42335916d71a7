"""Ingestion endpoints: Alertmanager, Zabbix and the generic event API.

Each source authenticates with its own bearer token (``ingest_tokens`` setting) or with an
API token of the ``integration`` role (``servicegraph token create``). The body
is validated completely before anything is stored; valid events are persisted in the
durable inbox before the answer (202); an invalid body gets 400 naming the field and
stores nothing; if the inbox cannot persist, 503 tells the sender to retry.

These endpoints are the service's busiest by far, so they are a small ASGI app of their
own (``IngestionEndpoints``) that the API hands their requests to before FastAPI's
middleware and routing (``api.ServiceGraphAPI``): those took 0.15 ms of each POST, a tenth
of what storing 100 alerts takes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.types import Receive, Scope, Send

from servicegraph.access.model import Permission
from servicegraph.access.service import bearer
from servicegraph.bootstrap import Services
from servicegraph.cmdb.errors import CmdbError, ValidationFailed
from servicegraph.collectors.monitoring import alertmanager, generic, zabbix
from servicegraph.events.model import Event
from servicegraph.http.gate import CHALLENGE, RETRY, Answer, read_body, store_down
from servicegraph.runtime import metrics

Parser = Callable[[bytes, dt.datetime], list[Event]]


@dataclass(frozen=True)
class Endpoint:
    source: str
    parse: Parser
    summary: str
    body: type[msgspec.Struct]  # the payload's model, for the OpenAPI document


ENDPOINTS: dict[str, Endpoint] = {
    "/api/v1/webhooks/alertmanager": Endpoint(
        alertmanager.SOURCE,
        alertmanager.parse,
        "Prometheus Alertmanager webhook receiver (payload version 4)",
        alertmanager.AlertmanagerPayload,
    ),
    "/api/v1/webhooks/zabbix": Endpoint(
        zabbix.SOURCE,
        zabbix.parse,
        "Zabbix webhook media type (contrib/zabbix/servicegraph_media_type.js)",
        zabbix.ZabbixEvent,
    ),
    "/api/v1/events": Endpoint(
        generic.SOURCE,
        generic.parse_one,
        "One event in the generic JSON format",
        generic.GenericEvent,
    ),
    "/api/v1/events/batch": Endpoint(
        generic.SOURCE,
        generic.parse_batch,
        'Up to 10,000 events: {"events": [...]}; all valid or none stored',
        generic.GenericBatch,
    ),
}

_REF = "#/components/schemas/{name}"
_ERROR = "IngestionError"
_INVALID = "IngestionInvalid"


def _body_schema(model: type[msgspec.Struct]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request body's schema (a reference) and the component schemas it uses."""
    (ref,), components = msgspec.json.schema_components([model], ref_template=_REF)
    return ref, components


def openapi_components() -> dict[str, Any]:
    """The schemas ``openapi_paths`` refers to: payloads and answers."""
    components: dict[str, Any] = {
        "IngestionAccepted": {
            "type": "object",
            "properties": {
                "accepted": {"type": "integer", "minimum": 0},
                "duplicates": {"type": "integer", "minimum": 0},
            },
            "required": ["accepted", "duplicates"],
        },
        _INVALID: {
            "type": "object",
            "properties": {
                "error": {"type": "string"},
                "field": {"type": ["string", "null"], "description": "'body' for the whole"},
                "reason": {"type": "string"},
            },
            "required": ["error", "field", "reason"],
        },
        _ERROR: {
            "type": "object",
            "properties": {"error": {"type": "string"}},
            "required": ["error"],
        },
    }
    for endpoint in ENDPOINTS.values():
        components.update(_body_schema(endpoint.body)[1])
    return components


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(name=schema)}}},
    }


def openapi_paths() -> dict[str, Any]:
    """What FastAPI's /docs shows of these endpoints, which it does not route: enough for
    a client generator or schemathesis (CI runs it) to send and check them."""
    retry = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    responses = {
        "202": _answer("stored in the inbox", "IngestionAccepted"),
        "400": _answer("the field at fault named; nothing of the body stored", _INVALID),
        "401": _answer("missing or wrong bearer token", _ERROR),
        "403": _answer("an API token whose role cannot post events", _ERROR),
        "405": _answer("a method other than POST", _ERROR),
        "413": _answer("a body over ingest_max_body_bytes (32 MiB by default)", _ERROR),
        "503": {
            **_answer("the inbox or the token store cannot be used now: retry", _ERROR),
            "headers": retry,
        },
    }
    return {
        path: {
            "post": {
                "tags": ["ingestion"],
                "summary": endpoint.summary,
                "operationId": f"ingest_{path.rsplit('/', 1)[1]}",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _body_schema(endpoint.body)[0]}},
                },
                "responses": responses,
            }
        }
        for path, endpoint in ENDPOINTS.items()
    }


class IngestionEndpoints:
    """The ASGI app of ``ENDPOINTS``. ``state`` is the API's: ``services``,
    ``inbox_threads`` and ``on_ingest`` are set there when the API starts."""

    def __init__(self, state: Any, *, max_body_bytes: int) -> None:
        self._state = state
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = ENDPOINTS[scope["path"]]
        answer: Answer | None = Answer(405, {"error": "use POST"}, ((b"allow", b"POST"),))
        if scope["method"] == "POST":
            answer = await self._ingest(scope, receive, endpoint)
        if answer is None:
            return  # the client went away
        await answer.send(send)

    async def _ingest(self, scope: Scope, receive: Receive, endpoint: Endpoint) -> Answer | None:
        services: Services = self._state.services
        authorization = b""
        length = 0
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-length" and value.isdigit():
                length = int(value)
        try:
            denied = authorised(services, endpoint.source, authorization.decode("latin-1"))
        except CmdbError as exc:  # the store holding API tokens failed: the sender retries
            return store_down(exc)
        if denied is not None:
            return denied
        # a declared length over the bound is refused before a byte of it is read
        body = await read_body(receive, self._max_body) if length <= self._max_body else b""
        if body is None:
            return None
        if length > self._max_body or len(body) > self._max_body:
            return Answer(
                413,
                {
                    "error": f"the body is larger than {self._max_body} bytes "
                    "(ingest_max_body_bytes); send the events in smaller batches"
                },
            )
        received = dt.datetime.now(dt.UTC)
        try:
            events = endpoint.parse(body, received)
        except ValidationFailed as exc:
            return Answer(400, {"error": str(exc), "field": exc.field, "reason": exc.reason})
        threads: Executor = self._state.inbox_threads
        try:
            # The inbox commit waits on the disk: off the event loop, to threads of its
            # own, which cost half of what Starlette's general thread pool takes per call.
            # Concurrent requests commit together (the inbox's group commit).
            accepted = await asyncio.get_running_loop().run_in_executor(
                threads, services.correlator.ingest, events
            )
        except CmdbError as exc:  # the store could not take them: the sender retries
            return Answer(503, {"error": f"events not stored, retry later: {exc}"}, RETRY)
        metrics.INGESTED.labels(endpoint.source).inc(accepted)
        on_ingest = getattr(self._state, "on_ingest", None)
        if on_ingest is not None and accepted:
            on_ingest()
        return Answer(202, {"accepted": accepted, "duplicates": len(events) - accepted})


def authorised(services: Services, source: str, authorization: str) -> Answer | None:
    """The source's own token (``ingest_tokens``) or an API token whose role may ingest
    (``integration``, ``admin``) lets the request in; otherwise the answer that says why
    not. Raises CmdbError when the store holding API tokens fails."""
    expected = services.settings.ingest_tokens.get(source)
    token = bearer(authorization) if authorization.lower().startswith("bearer ") else None
    if token:
        if expected and hmac.compare_digest(token.encode(), expected.encode()):
            return None
        principal = services.tokens.authenticate(token)
        if principal is not None:
            if principal.can(Permission.INGEST):
                return None
            return Answer(
                403,
                {
                    "error": f"the API token '{principal.name}' has the role "
                    f"'{principal.role.value}', which cannot post events; use an integration "
                    "token"
                },
            )
    if not expected:
        return Answer(
            401,
            {
                "error": f"ingestion from '{source}' needs a token: set "
                f"SERVICEGRAPH_INGEST_TOKENS__{source.upper()}, or send an API token with the "
                "integration role (servicegraph token create --role integration)"
            },
            CHALLENGE,
        )
    return Answer(401, {"error": f"missing or wrong bearer token for source '{source}'"}, CHALLENGE)


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
            if isinstance(status, int) and status < 300 and str(path) in ENDPOINTS:
                return False
        return True
