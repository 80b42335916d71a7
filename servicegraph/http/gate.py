"""What every request other than an ingestion POST passes before FastAPI reads it.

A body is read only up to a bound (``api_max_body_bytes``, 1 MiB by default: the largest
GraphQL document a client sends is a few kilobytes), and a token is checked before a body
of more than ``ANONYMOUS_MAX_BODY`` is read at all: without the gate, a 300 MB POST to
``/graphql`` without a token was read whole (14 s, 1.1 GB of memory) before anything
looked at it, and stalled the webhooks meanwhile.

The body, once admitted, is handed to the app from memory; the principal the token names
is left in the request's state (``principal``) so that the GraphQL context does not look
it up again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from servicegraph.access.model import Principal
from servicegraph.access.service import TokenService, bearer
from servicegraph.cmdb.errors import RETRY_AFTER_S, CmdbError

# Enough for any document a request without a token can usefully send (an introspection
# query is 2 KB): past it, a body is read only for a valid token.
ANONYMOUS_MAX_BODY = 16 * 1024


Headers = tuple[tuple[bytes, bytes], ...]

RETRY: Headers = ((b"retry-after", str(RETRY_AFTER_S).encode()),)
CHALLENGE: Headers = ((b"www-authenticate", b"Bearer"),)


@dataclass(frozen=True)
class Answer:
    """A whole JSON answer of the endpoints ahead of FastAPI (the gate's, ingestion's)."""

    status: int
    body: dict[str, Any]
    headers: Headers = ()

    async def send(self, send: Send) -> None:
        await send_json(send, self.status, self.body, self.headers)


def refusal(status: int, error: str, headers: Headers = ()) -> Answer:
    return Answer(status, {"error": error}, headers)


def too_large(limit: int) -> Answer:
    return refusal(413, f"the request body is larger than {_size(limit)}")


def store_down(exc: CmdbError) -> Answer:
    """The store that holds the tokens failed: the client may retry."""
    return refusal(503, f"the token store cannot answer now, retry later: {exc}", RETRY)


def _size(limit: int) -> str:
    if limit >= 1024 * 1024 and limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit >= 1024 and limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"


class RequestGate:
    """Admits a request (``admit``) or answers it with a refusal."""

    def __init__(self, tokens: Callable[[], TokenService], max_body: int) -> None:
        self._tokens = tokens  # the app's, once started
        self._max_body = max_body

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """The receive channel the app reads the admitted request from; None when the
        request was refused (answered here) or the client went away."""
        refused, principal = self._check_headers(scope)
        if refused is not None:
            await refused.send(send)
            return None
        limit = self._max_body if principal is not None else ANONYMOUS_MAX_BODY
        read = await read_body(receive, limit)
        if read is None:
            return None  # disconnected
        if len(read) > limit:
            await (too_large(limit) if principal is not None else _needs_token(limit)).send(send)
            return None
        scope.setdefault("state", {})["principal"] = principal
        return _replay(read, receive)

    def _check_headers(self, scope: Scope) -> tuple[Answer | None, Principal | None]:
        length: int | None = None
        authorization: str | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return refusal(400, "the Content-Length header is not a number"), None
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        if length is not None and length > self._max_body:
            return too_large(self._max_body), None
        token = bearer(authorization)
        if token is None:
            if length is not None and length > ANONYMOUS_MAX_BODY:
                return _needs_token(ANONYMOUS_MAX_BODY), None
            return None, None
        try:
            principal = self._tokens().authenticate(token)
        except CmdbError as exc:
            return store_down(exc), None
        if principal is None:
            return refusal(401, "the API token is not valid (wrong, or revoked)", CHALLENGE), None
        return None, principal


def _needs_token(limit: int) -> Answer:
    return refusal(
        401,
        f"a request body over {_size(limit)} needs a valid API token "
        "(header 'Authorization: Bearer <token>')",
        CHALLENGE,
    )


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, read no further than ``limit`` bytes: past it, what was read
    (longer than ``limit``: the caller answers 413, and the rest is never read). None if
    the client disconnected."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"".join(chunks) + chunk
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_json(
    send: Send, status: int, body: object, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """A whole JSON answer, as the endpoints ahead of FastAPI give them."""
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive channel that gives ``body`` first, then what the client sends next (a
    disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
