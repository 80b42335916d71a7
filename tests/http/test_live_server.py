"""The hostile requests of the hardening review, against `servicegraph serve` itself: the
numbers (stack depth, buffering) differ from the in-process test client's."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import TOKENS, am_alert, auth, serving, valid_payloads


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data: Path = tmp_path_factory.mktemp("live") / "data"
    with serving(data, ingest_tokens=json.dumps(TOKENS), embedded_worker="false") as base:
        yield base


def test_the_review_s_malformed_events_are_400(server: str) -> None:
    payload = valid_payloads()["alertmanager"]
    payload["alerts"] = [am_alert(startsAt="9999-12-31T23:59:59-23:59")]
    url = f"{server}/api/v1/webhooks/alertmanager"
    r = httpx.post(url, json=payload, headers=auth("alertmanager"))
    assert (r.status_code, r.json()["field"]) == (400, "alerts.0.startsAt")
    nested = json.dumps(valid_payloads()["alertmanager"])[:-1] + ', "x": ' + "[" * 975
    nested += "]" * 975 + "}"
    r = httpx.post(url, content=nested, headers=auth("alertmanager"))
    assert (r.status_code, r.json()["field"]) == (400, "body"), r.text
    r = httpx.post(
        f"{server}/api/v1/events",
        json={"name": "x", "occurred_at": "9999-12-31T23:59:59-23:59"},
        headers=auth("generic"),
    )
    assert (r.status_code, r.json()["field"]) == (400, "occurred_at")


def _post_raw(base: str, path: str, head: dict[str, str], offer: int) -> tuple[int, int]:
    """POST up to ``offer`` bytes of body; the status and how many bytes went out before
    the server answered (and stopped reading)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in head.items())]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sock.setblocking(False)
        chunk = b" " * 65536
        sent = 0
        answer = b""
        while sent < offer:
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            if answer:
                break
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        while b"\r\n" not in answer:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    status = int(answer.split(b" ", 2)[1])
    return status, sent


def test_a_huge_graphql_body_without_a_token_is_refused_before_it_is_read(server: str) -> None:
    offer = 300 * 1024 * 1024
    head = {"Content-Type": "application/json", "Content-Length": str(offer)}
    status, sent = _post_raw(server, "/graphql", head, offer)
    assert status == 413  # over the bound whoever sends it
    # the answer came before the body was sent: what went out is what the sockets buffer
    assert sent < 32 * 1024 * 1024, sent
    under = {"Content-Type": "application/json", "Content-Length": str(1000 * 1024)}
    status, _ = _post_raw(server, "/graphql", under, 1000 * 1024)
    assert status == 401  # within the bound, but large: a token first
    chunked = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    status, sent = _post_raw(server, "/graphql", chunked, offer)
    assert status in (400, 401), status  # spaces are not chunk sizes: h11 may refuse first
    assert sent < 32 * 1024 * 1024, sent
    # the server is still there, and quick
    assert httpx.get(f"{server}/healthz", timeout=5).status_code == 200


def test_a_huge_webhook_body_is_refused_before_it_is_read(server: str) -> None:
    offer = 300 * 1024 * 1024
    head = {**auth("alertmanager"), "Content-Length": str(offer)}
    status, sent = _post_raw(server, "/api/v1/webhooks/alertmanager", head, offer)
    assert status == 413
    assert sent < 64 * 1024 * 1024, sent
    anonymous = {"Content-Length": str(offer)}
    status, sent = _post_raw(server, "/api/v1/webhooks/alertmanager", anonymous, offer)
    assert status == 401
    assert sent < 32 * 1024 * 1024, sent
