"""The Neo4j adapter where no server is needed: configuration, the property maps it
writes, how driver errors become domain errors, and what users see when Neo4j is
configured but cannot be reached (checked against a closed local port)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from neo4j.exceptions import (
    AuthError,
    ClientError,
    ConstraintError,
    IncompleteCommit,
    ServiceUnavailable,
    TransientError,
)
from pydantic import ValidationError

from servicegraph.bootstrap import bootstrap, open_store
from servicegraph.cmdb.errors import StoreError, StoreUnavailable
from servicegraph.config import Settings
from servicegraph.storage.neo4j import Neo4jGraphStore, cypher
from servicegraph.storage.neo4j.records import (
    ci_properties,
    from_neo4j_time,
    time_text,
    to_neo4j_time,
)
from tests.contract.store_contract import make_ci


@pytest.fixture
def closed_port() -> int:
    """A local TCP port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def unreachable(closed_port: int) -> Iterator[Neo4jGraphStore]:
    store = Neo4jGraphStore(f"neo4j://127.0.0.1:{closed_port}", password="secret")
    yield store
    store.close()


# -- configuration ---------------------------------------------------------------------


def test_settings_select_and_configure_neo4j(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        store="neo4j",
        neo4j_uri="neo4j+s://abcd.databases.neo4j.io",
        neo4j_user="svc",
        neo4j_password="pw",
        neo4j_database="cmdb",
        neo4j_batch_size=250,
    )
    store = open_store(settings)
    try:
        assert isinstance(store, Neo4jGraphStore)
        assert (store.uri, store.user, store.database, store.batch_size) == (
            "neo4j+s://abcd.databases.neo4j.io",
            "svc",
            "cmdb",
            250,
        )
    finally:
        store.close()
    assert "pw" not in repr(settings)  # the password is a secret


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICEGRAPH_STORE", "neo4j")
    monkeypatch.setenv("SERVICEGRAPH_NEO4J_URI", "neo4j://graph:7687")
    monkeypatch.setenv("SERVICEGRAPH_NEO4J_PASSWORD", "pw")
    monkeypatch.setenv("SERVICEGRAPH_NEO4J_BATCH_SIZE", "2500")
    settings = Settings()
    assert settings.store == "neo4j"
    assert settings.neo4j_uri == "neo4j://graph:7687"
    assert settings.neo4j_password.get_secret_value() == "pw"
    assert settings.neo4j_batch_size == 2500


@pytest.mark.parametrize("uri", ["http://graph:7474", "graph:7687", "neo4j://", "bolt+x://h"])
def test_a_uri_that_is_not_neo4j_is_refused(uri: str) -> None:
    with pytest.raises(ValidationError, match="not a Neo4j URI"):
        Settings(neo4j_uri=uri)


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        Settings(neo4j_batch_size=0)


# -- what the adapter writes -----------------------------------------------------------


def test_ci_properties_hold_every_field_and_a_query_projection() -> None:
    ci = make_ci(
        "ci-a",
        attributes={
            "os": "linux",
            "cpu_count": 4,
            "load": 0.5,
            "virtual": True,
            "tags": ["a", "b"],
            "ports": [1, 2],
            "nothing": None,
            "mixed": [1, "a"],
            "empty": [],
            "nested": {"a": 1},
            "huge": 2**70,
        },
        merged_into="ci-b",
    )
    props = ci_properties(ci, 7)
    assert set(cypher.CI_PROPERTIES) <= set(props)
    assert props["change_seq"] == 7
    assert props["merged_into"] == "ci-b"
    projected = {k for k in props if k.startswith(cypher.ATTRIBUTE_PREFIX)}
    # only what Neo4j can store as a property; the JSON keeps everything
    assert projected == {
        f"attr_{k}" for k in ("os", "cpu_count", "load", "virtual", "tags", "ports", "empty")
    }
    assert '"nested":{"a":1}' in props["attributes"]
    assert str(2**70) in props["attributes"]
    # times travel as text (packed natively) that INSERT_CIS/UPDATE_CIS make DATETIMEs
    assert props["created_at"] == time_text(ci.created_at)
    assert "datetime(row.props.created_at)" in cypher.INSERT_CIS.text
    assert "datetime(row.props.updated_at)" in cypher.UPDATE_CIS.text


def test_times_must_be_zoned_and_come_back_in_utc() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_neo4j_time(dt.datetime(2024, 1, 1))
    paris = dt.timezone(dt.timedelta(hours=1))
    value = dt.datetime(2024, 1, 1, 13, 0, 0, 123456, tzinfo=paris)
    assert to_neo4j_time(value) == value
    assert to_neo4j_time(value).tzinfo == dt.UTC
    import neo4j.time

    back = from_neo4j_time(neo4j.time.DateTime.from_native(to_neo4j_time(value)))
    assert back == value and back.tzinfo == dt.UTC and back.microsecond == 123456
    assert time_text(value) == "2024-01-01T12:00:00.123456+00:00"
    with pytest.raises(ValueError, match="naive"):
        time_text(dt.datetime(2024, 1, 1))
    with pytest.raises(StoreError):
        from_neo4j_time(neo4j.time.DateTime(2024, 1, 1))  # a zoneless DATETIME


# -- driver errors become domain errors ------------------------------------------------


def _neo4j_error(cls: type[Any], code: str, message: str) -> Any:
    exc = cls(message)
    exc._neo4j_code = code  # what the driver fills in from the server's failure
    exc._message = message
    return exc


@pytest.mark.parametrize(
    ("exc", "expected", "words"),
    [
        (
            _neo4j_error(
                AuthError, "Neo.ClientError.Security.Unauthorized", "authentication failure"
            ),
            StoreUnavailable,
            ["credentials", "SERVICEGRAPH_NEO4J_PASSWORD"],
        ),
        (
            ServiceUnavailable("Unable to retrieve routing information"),
            StoreUnavailable,
            ["unreachable", "SERVICEGRAPH_NEO4J_URI"],
        ),
        (IncompleteCommit("gone"), StoreError, ["may or may not"]),
        (
            _neo4j_error(
                ClientError, "Neo.ClientError.Database.DatabaseNotFound", "no such database"
            ),
            StoreUnavailable,
            ["does not exist", "SERVICEGRAPH_NEO4J_DATABASE"],
        ),
        (
            _neo4j_error(
                ConstraintError,
                "Neo.ClientError.Schema.ConstraintValidationFailed",
                "Node(1) already exists with label `CI` and property `id` = 'ci-a'",
            ),
            StoreError,
            ["already exists", "creating"],
        ),
        (
            _neo4j_error(
                TransientError, "Neo.TransientError.Transaction.DeadlockDetected", "deadlock"
            ),
            StoreError,
            ["retry"],
        ),
    ],
)
def test_driver_errors_become_one_line_domain_errors(
    unreachable: Neo4jGraphStore, exc: Exception, expected: type[Exception], words: list[str]
) -> None:
    error = unreachable._error(exc, "creating CIs")
    assert type(error) is expected
    assert "\n" not in str(error)
    for word in words:
        assert word in str(error)


# -- Neo4j configured but unreachable ----------------------------------------------------


def test_store_calls_fail_fast_with_store_unavailable(unreachable: Neo4jGraphStore) -> None:
    for call in (unreachable.migrate, unreachable.ping):
        with pytest.raises(StoreUnavailable, match="unreachable") as info:
            call()
        assert info.value.__cause__ is not None  # chained to the driver's error


def test_commands_exit_non_zero_with_one_line(tmp_path: Path, closed_port: int) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SERVICEGRAPH_")},
        "SERVICEGRAPH_DATA_DIR": str(tmp_path),
        "SERVICEGRAPH_STORE": "neo4j",
        "SERVICEGRAPH_NEO4J_URI": f"neo4j://127.0.0.1:{closed_port}",
        "SERVICEGRAPH_NEO4J_PASSWORD": "secret",
        "COLUMNS": "400",
    }
    for command in (["stats"], ["migrate"], ["export", str(tmp_path / "x.jsonl")]):
        proc = subprocess.run(
            [sys.executable, "-m", "servicegraph.cli", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 1, proc.stderr
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("error: Neo4j at neo4j://127.0.0.1:")
        assert "unreachable" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.jsonl").exists()


def test_healthz_reports_the_store_down(tmp_path: Path, closed_port: int) -> None:
    from fastapi.testclient import TestClient

    from servicegraph.http.app import create_app

    settings = Settings(
        data_dir=tmp_path,
        store="neo4j",
        neo4j_uri=f"neo4j://127.0.0.1:{closed_port}",
        neo4j_password="secret",
        embedded_worker=False,
    )
    services = bootstrap(settings, migrate=False)  # the API is up, Neo4j is not
    try:
        with TestClient(create_app(services)) as client:
            response = client.get("/healthz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "down"
        assert body["graph"]["backend"] == "neo4j"
        assert body["graph"]["status"] == "down"
        assert "unreachable" in body["graph"]["error"]
    finally:
        services.close()
