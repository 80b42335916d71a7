"""Every request is bounded, and a token is checked before a large body is read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from fastapi.testclient import TestClient

from servicegraph.access.model import Role
from servicegraph.bootstrap import Services, bootstrap
from servicegraph.config import Settings
from servicegraph.http.app import create_app
from servicegraph.http.gate import ANONYMOUS_MAX_BODY
from tests.http.conftest import PATHS, valid_payloads


def _token(services: Services, role: Role = Role.VIEWER) -> dict[str, str]:
    _, secret = services.tokens.create(f"t-{role.value}", role, created_by="test")
    return {"Authorization": f"Bearer {secret}"}


def _query_of_size(size: int) -> bytes:
    """A GraphQL request body of ``size`` bytes: a query padded with a comment."""
    head = json.dumps({"query": "{ me { name } }\n#"})[:-2]
    return (head + "x" * (size - len(head) - 2) + '"}').encode()


def test_graphql_bodies_are_bounded_for_a_valid_token(
    client: TestClient, services: Services
) -> None:
    headers = {**_token(services), "Content-Type": "application/json"}
    ok = client.post("/graphql", content=_query_of_size(500_000), headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["data"]["me"]["name"] == "t-viewer"
    big = client.post("/graphql", content=_query_of_size(2 * 1024 * 1024), headers=headers)
    assert big.status_code == 413
    assert big.json() == {"error": "the request body is larger than 1 MiB"}


def test_a_chunked_body_is_cut_at_the_bound(client: TestClient, services: Services) -> None:
    """Without Content-Length the body is read only up to the bound."""
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(200):  # 200 x 64 KiB = 12.5 MiB offered
            sent += 1
            yield b" " * 65536

    headers = {**_token(services), "Content-Type": "application/json"}
    r = client.post("/graphql", content=chunks(), headers=headers)
    assert r.status_code == 413


def test_a_large_body_without_a_valid_token_is_refused_unread(
    client: TestClient, services: Services
) -> None:
    headers = {"Content-Type": "application/json"}
    small = client.post("/graphql", content=_query_of_size(2_000), headers=headers)
    assert small.status_code == 200  # answered: the fields say UNAUTHENTICATED
    large = client.post("/graphql", content=_query_of_size(ANONYMOUS_MAX_BODY + 1), headers=headers)
    assert large.status_code == 401
    assert "needs a valid API token" in large.json()["error"]
    assert large.headers["WWW-Authenticate"] == "Bearer"
    wrong = client.post(
        "/graphql",
        content=_query_of_size(500_000),
        headers={**headers, "Authorization": "Bearer sgt_000000000000_" + "x" * 43},
    )
    assert wrong.status_code == 401
    assert "not valid" in wrong.json()["error"]


def test_a_bad_content_length_is_a_client_error(client: TestClient) -> None:
    r = client.post("/graphql", content=b"{}", headers={"Content-Length": "lots"})
    assert r.status_code in (400, 413)  # the HTTP layer may refuse it first


def _break_the_token_store(services: Services, data_dir: Path) -> None:
    """The file holding tokens (the embedded store) cannot be opened any more: what a
    full disk or a lost mount looks like."""
    services.store.close()
    db = data_dir / "servicegraph.sqlite3"
    db.unlink()
    db.mkdir()


def test_a_failing_token_store_is_503_with_retry_after_everywhere(tmp_path: Path) -> None:
    services = bootstrap(Settings(data_dir=tmp_path, embedded_worker=False))
    graphql_token = _token(services)
    integration = _token(services, Role.INTEGRATION)
    try:
        with TestClient(create_app(services), raise_server_exceptions=False) as client:
            r = client.post(PATHS["generic"], json=valid_payloads()["generic"], headers=integration)
            assert r.status_code == 202, r.text
            _break_the_token_store(services, tmp_path)
            for source, path in PATHS.items():
                r = client.post(path, json=valid_payloads()[source], headers=integration)
                assert r.status_code == 503, (path, r.status_code, r.text)
                assert r.headers["Retry-After"] == "5"
            r = client.post("/graphql", json={"query": "{ me { name } }"}, headers=graphql_token)
            assert r.status_code == 503, r.text
            assert r.headers["Retry-After"] == "5"
            r = client.get("/graphql?query={__typename}", headers=graphql_token)
            assert r.status_code == 503, r.text
    finally:
        services.close()


def test_a_store_failing_under_a_query_is_503(tmp_path: Path) -> None:
    """A resolver whose store fails answers STORE_UNAVAILABLE in the errors and 503."""
    services = bootstrap(Settings(data_dir=tmp_path, embedded_worker=False))
    token = _token(services)
    try:
        with TestClient(create_app(services), raise_server_exceptions=False) as client:
            query = {"query": '{ ci(id: "db-1") { name } }'}
            assert client.post("/graphql", json=query, headers=token).status_code == 200
            # the token was checked (the gate has it): only the query's own read fails
            principal = services.tokens.authenticate(token["Authorization"].split()[1])
            services.tokens.authenticate = lambda _presented: principal  # type: ignore[method-assign]
            _break_the_token_store(services, tmp_path)
            r = client.post("/graphql", json=query, headers=token)
            assert r.status_code == 503, r.text
            assert r.headers["Retry-After"] == "5"
            assert r.json()["errors"][0]["extensions"]["code"] == "STORE_UNAVAILABLE"
    finally:
        services.close()


def test_graphql_json_nested_too_deep_is_a_client_error(
    client: TestClient, services: Services
) -> None:
    body = b'{"query": "{ me { name } }", "variables": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    headers = {**_token(services), "Content-Type": "application/json"}
    r = client.post("/graphql", content=body, headers=headers)
    assert r.status_code == 400, r.text
