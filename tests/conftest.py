"""Fixtures shared by every test: settings isolated from the environment and a wired-up
set of services over a real SQLite store in a temporary directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.config import Settings
from tests.neo4j_server import (
    Neo4jAddress,
    Neo4jServer,
    address_from_environment,
    launcher_unavailable,
)
from tests.support import missing_external


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's SERVICEGRAPH_* variables must not change what the tests see."""
    import os

    for name in list(os.environ):
        if name.startswith("SERVICEGRAPH_"):
            monkeypatch.delenv(name)


@pytest.fixture
def make_services(tmp_path: Path) -> Iterator[Callable[..., Services]]:
    """Build services over a fresh SQLite file; keyword arguments go to ``Settings``."""
    opened: list[Services] = []

    def make(**settings: Any) -> Services:
        data_dir = tmp_path / f"data{len(opened)}"
        services = bootstrap(Settings(data_dir=data_dir, **settings))
        opened.append(services)
        return services

    yield make
    for services in opened:
        services.close()


@pytest.fixture
def services(make_services: Callable[..., Services]) -> Services:
    return make_services()


@pytest.fixture(scope="session")
def neo4j(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jAddress]:
    """A live Neo4j for the whole session: ``NEO4J_URI``'s, or one this run starts from
    tools/neo4j (tests/neo4j_server.py). Tests that use it empty its database first.
    Without Java and Maven it skips, and fails under SG_REQUIRE_EXTERNAL=1."""
    given = address_from_environment()
    if given is not None:
        yield given
        return
    reason = launcher_unavailable()
    if reason is not None:
        missing_external(reason)
    server = Neo4jServer(home=tmp_path_factory.mktemp("neo4j"))
    address = server.start()
    try:
        yield address
    finally:
        server.stop()
