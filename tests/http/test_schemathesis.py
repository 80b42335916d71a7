"""schemathesis against the OpenAPI description of a running `servicegraph serve`:
generated requests to every operation (valid ones, and ones that break the schema) never
get a server error, and the ingestion endpoints answer as they are described (status
codes, content types, response bodies and headers).

Bounded by ``SG_SCHEMATHESIS_EXAMPLES`` (default 40) examples per operation and phase;
the census of statuses answered is printed (``-s``) from schemathesis's HAR report.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.access.model import Role
from servicegraph.bootstrap import bootstrap
from servicegraph.config import Settings
from tests.http.conftest import serving
from tests.support import require_executable

EXAMPLES = os.environ.get("SG_SCHEMATHESIS_EXAMPLES", "40")
CONFORMANCE = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)


def _schemathesis() -> str:
    beside = Path(sys.executable).with_name("schemathesis")
    if beside.is_file():
        return str(beside)
    return require_executable("schemathesis", install_hint="pip install -e '.[dev]'")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    data = tmp_path_factory.mktemp("schemathesis") / "data"
    services = bootstrap(Settings(data_dir=data))
    _, token = services.tokens.create("schemathesis", Role.ADMIN, created_by="test")
    services.close()
    with serving(data) as base:
        yield base, token


def _run(
    base: str, token: str, report: Path, *options: str, schema: str = "/openapi.json"
) -> collections.Counter[int]:
    command = [
        _schemathesis(),
        "run",
        f"{base}{schema}",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        EXAMPLES,
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "har",
        "--report-har-path",
        str(report),
        *options,
    ]
    # in the test's folder: schemathesis keeps files of its own in the working directory
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=report.parent)
    if schema == "/openapi.json":
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert report.is_file(), done.stdout[-6000:] + done.stderr[-2000:]
    entries = json.loads(report.read_text())["log"]["entries"]
    census = collections.Counter(int(e["response"]["status"]) for e in entries)
    print(f"\nschemathesis {schema} {' '.join(options)}: {len(entries)} requests, ", end="")
    print(dict(sorted(census.items())))
    return census


def _internal_errors(report: Path) -> list[str]:
    """GraphQL errors raised while executing a field that carry no code: ours, not the
    client's (a NOT_FOUND or BAD_USER_INPUT has a code; a query that does not validate
    has no path)."""
    found = []
    for entry in json.loads(report.read_text())["log"]["entries"]:
        body = json.loads(entry["response"]["content"].get("text") or "{}")
        for error in body.get("errors") or ():
            if "path" in error and not (error.get("extensions") or {}).get("code"):
                found.append(f"{error['message']}: {entry['request']['postData']['text']}")
    return found


def test_no_operation_answers_a_server_error(served: tuple[str, str], tmp_path: Path) -> None:
    census = _run(*served, tmp_path / "all.har", "--checks", "not_a_server_error")
    assert census and not [s for s in census if s >= 500], census


def test_the_ingestion_endpoints_answer_as_described(
    served: tuple[str, str], tmp_path: Path
) -> None:
    census = _run(
        *served, tmp_path / "ingestion.har", "--include-tag", "ingestion", "--checks", CONFORMANCE
    )
    assert census[202] > 0 and census[400] > 0, census  # valid and invalid bodies were sent


def test_graphql_operations_never_fail_on_our_side(served: tuple[str, str], tmp_path: Path) -> None:
    """schemathesis's GraphQL mode sends generated queries and mutations for every root
    field. Its own check counts any error as a server error (NOT_FOUND for an id it made
    up, too), so the report is read here instead."""
    report = tmp_path / "graphql.har"
    census = _run(*served, report, "--checks", "not_a_server_error", schema="/graphql")
    assert census and not [s for s in census if s >= 500], census
    assert _internal_errors(report) == []
