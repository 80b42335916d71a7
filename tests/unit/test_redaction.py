"""A password in a Neo4j URI (``neo4j://user:secret@host``) never reaches a message, a log
line or a repr: it is shown as ``***``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from servicegraph.access.redaction import redact_in, redact_uri
from servicegraph.cmdb.errors import StoreUnavailable
from servicegraph.config import Settings
from servicegraph.storage.neo4j import Neo4jGraphStore

SECRET = "hunter2-s3cret"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("neo4j://user:secret@host:7687", "neo4j://user:***@host:7687"),
        (
            "neo4j+s://svc:p%40ss@abcd.databases.neo4j.io",
            "neo4j+s://svc:***@abcd.databases.neo4j.io",
        ),
        ("bolt://u:se/cr@et@host:7687?policy=eu", "bolt://u:***@host:7687?policy=eu"),
        ("neo4j://user:@host", "neo4j://user:@host"),  # an empty password: nothing to hide
        ("neo4j://user@host:7687", "neo4j://user@host:7687"),
        ("neo4j://host:7687", "neo4j://host:7687"),
        ("not a uri", "not a uri"),
        ("http://a:b@x", "http://a:***@x"),
    ],
)
def test_redact_uri(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown


def test_redact_in_hides_the_uri_and_the_password_inside_other_text() -> None:
    uri = f"neo4j://user:{SECRET}@host:7687"
    text = f"Given URI: '{uri}'; address user:{SECRET} did not resolve"
    assert redact_in(text, uri) == (
        "Given URI: 'neo4j://user:***@host:7687'; address user:*** did not resolve"
    )
    assert redact_in("nothing secret", "neo4j://host") == "nothing secret"


def test_the_settings_error_does_not_echo_the_password() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(neo4j_uri=f"http://user:{SECRET}@graph:7474")
    assert SECRET not in str(info.value)
    assert "http://user:***@graph:7474" in str(info.value)


def test_the_store_does_not_echo_the_password() -> None:
    uri = f"neo4j://user:{SECRET}@127.0.0.1:7687"
    with pytest.raises(StoreUnavailable) as info:
        Neo4jGraphStore(uri, password="pw")  # the driver refuses user information
    assert SECRET not in str(info.value)
    assert "neo4j://user:***@127.0.0.1:7687" in str(info.value)


def test_a_store_error_and_repr_show_the_redacted_uri() -> None:
    store = Neo4jGraphStore("neo4j://127.0.0.1:7687")
    try:
        store.uri = f"neo4j://user:{SECRET}@127.0.0.1:7687"  # as a future driver may accept
        error = store._error(RuntimeError(f"failed on {store.uri}"), "reading")
        assert SECRET not in str(error) and "user:***@" in str(error)
        assert SECRET not in repr(store)
    finally:
        store.close()


def test_the_cli_does_not_echo_the_password(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SERVICEGRAPH_")},
        "SERVICEGRAPH_DATA_DIR": str(tmp_path),
        "SERVICEGRAPH_STORE": "neo4j",
        "SERVICEGRAPH_NEO4J_URI": f"neo4j://user:{SECRET}@127.0.0.1:7687",
        "COLUMNS": "400",
    }
    for command in (["serve"], ["stats"]):
        proc = subprocess.run(
            [sys.executable, "-m", "servicegraph.cli", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 1, proc.stderr
        assert SECRET not in proc.stderr + proc.stdout
        assert "neo4j://user:***@127.0.0.1:7687" in proc.stderr
