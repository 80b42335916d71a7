"""Property-based: mutated payloads on every ingestion endpoint and in the import parsers
never cause a server error, and a refused body stores nothing.

Bounded (``FUZZ_EXAMPLES`` examples per target, 150 by default) so that the suite stays
fast; ``SG_FUZZ_EXAMPLES=5000`` runs a longer campaign.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.errors import CmdbError
from servicegraph.cmdb.importer import read_files
from servicegraph.config import Settings
from servicegraph.http.app import create_app
from tests.http.conftest import PATHS, TOKENS, auth, stored_events, valid_payloads

FUZZ_EXAMPLES = int(os.environ.get("SG_FUZZ_EXAMPLES", "150"))
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,  # no example database in the checkout: every run draws afresh
)

# stands for JSON nested too deep to build in Python: replaced in the encoded text
DEEP = "__deeply_nested__"
DEEP_JSON = ("[" * 5000 + "]" * 5000).encode()

# values senders get wrong, beside random ones
TRICKY = st.sampled_from(
    [
        DEEP,
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59Z",
        "2026-13-45T25:61:61Z",
        "0001-01-01T00:00:00Z",
        "",
        "\x00",
        "\ud7ff" * 50,
        "x" * 5000,
        10**30,
        -(10**30),
        1e308,
        -0.0,
        [],
        {},
        None,
        True,
    ]
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
JSON_VALUES = TRICKY | st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _mutate(document: Any, path: tuple[Any, ...], kind: str, value: Any, key: str) -> Any:
    if not path:
        return value if kind == "replace" else document
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if kind == "replace":
        parent[last] = value
    elif kind == "delete":
        del parent[last]
    elif kind == "add" and isinstance(parent, dict):
        parent[key] = value
    elif kind == "repeat" and isinstance(parent, list):
        parent.extend([parent[last]] * 50)
    return document


def _encode(document: Any) -> bytes:
    return json.dumps(document, allow_nan=True).encode().replace(f'"{DEEP}"'.encode(), DEEP_JSON)


@st.composite
def mutated_bodies(draw: st.DrawFn, source: str) -> bytes:
    document = valid_payloads()[source]
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(document))
        path = draw(st.sampled_from(paths))
        kind = draw(st.sampled_from(["replace", "replace", "delete", "add", "repeat"]))
        document = _mutate(document, path, kind, draw(JSON_VALUES), draw(st.text(max_size=10)))
    body = _encode(document)
    damage = draw(st.sampled_from(["none", "none", "truncate", "insert", "flip"]))
    if damage == "none" or not body:
        return body
    at = draw(st.integers(0, len(body) - 1))
    if damage == "truncate":
        return body[:at]
    if damage == "insert":
        return body[:at] + draw(st.binary(min_size=1, max_size=8)) + body[at:]
    return body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, TestClient]]:
    data = tmp_path_factory.mktemp("fuzz")
    services = bootstrap(Settings(data_dir=data, ingest_tokens=TOKENS, embedded_worker=False))
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        yield services, client
    services.close()


census: dict[int, int] = {}


@pytest.mark.parametrize("source", list(PATHS))
def test_mutated_events_never_get_a_server_error(
    api: tuple[Services, TestClient], source: str
) -> None:
    services, client = api

    @FUZZ
    @given(body=mutated_bodies(source))
    def post(body: bytes) -> None:
        before = stored_events(services)
        r = client.post(PATHS[source], content=body, headers=auth(source))
        census[r.status_code] = census.get(r.status_code, 0) + 1
        assert r.status_code < 500, (r.status_code, r.text[:500], body[:500])
        after = stored_events(services)
        if r.status_code == 202:
            assert after - before == r.json()["accepted"]
        else:
            assert r.status_code in (400, 413), (r.status_code, r.text)
            assert "error" in r.json()
            assert after == before, "a refused body stored events"

    post()


def test_report_the_census() -> None:
    """What the fuzzing above answered (shown with -s; -rA lists it)."""
    print(f"\nfuzz census ({FUZZ_EXAMPLES} examples per endpoint): {dict(sorted(census.items()))}")
    if census:
        assert set(census) <= {202, 400, 413}


# -- the import parsers --------------------------------------------------------------------


@st.composite
def mutated_import(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["json", "json", "csv-cis", "csv-relationships"]))
    if kind == "json":
        document = json.loads((EXAMPLES / "small-site.json").read_text())
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(list(_paths(document))))
            kind_of = draw(st.sampled_from(["replace", "delete", "add", "repeat"]))
            value, key = draw(JSON_VALUES), draw(st.text(max_size=10))
            document = _mutate(document, path, kind_of, value, key)
        body = _encode(document)
        if draw(st.booleans()):
            at = draw(st.integers(0, len(body)))
            body = body[:at] + draw(st.binary(max_size=8)) + body[at:]
        return ".json", body
    name = "cis.csv" if kind == "csv-cis" else "relationships.csv"
    text = (EXAMPLES / name).read_bytes()
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 20))
        insert = draw(
            st.binary(max_size=12)
            | st.sampled_from([b",", b'"', b"\n", b"\r\n", b";", b"\x00", b"\xff\xfe"])
        )
        text = text[:at] + insert + text[at + cut :]
    return ".csv", text


@FUZZ
@given(case=mutated_import())
def test_mutated_import_files_are_refused_with_an_error_that_names_them(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[str, bytes]
) -> None:
    suffix, content = case
    folder = tmp_path_factory.mktemp("import")
    path = folder / f"input{suffix}"
    path.write_bytes(content)
    services = bootstrap(Settings(data_dir=folder / "data", embedded_worker=False))
    try:
        before = services.store.counts()
        try:
            batch = read_files([path], services.classes, source="import")
            services.reconciler.apply(batch)
        except CmdbError as exc:
            assert str(exc), "an error says what is wrong"
            assert services.store.counts() == before, "a refused import wrote something"
    finally:
        services.close()
