"""The two backends the end-to-end tests run over: the embedded default (SQLite files under
DATA_DIR) and Neo4j (the session's live server, emptied first), as the environment a
``servicegraph`` process and ``Settings()`` read."""

from __future__ import annotations

import pytest

from tests.contract.neo4j_stores import fresh_graph

STORES = ("sqlite", "neo4j")


def store_environment(request: pytest.FixtureRequest, store: str) -> dict[str, str]:
    """``SERVICEGRAPH_*`` settings for ``store``. For Neo4j: EMPTIES THE SESSION'S DATABASE
    (and migrates it), so that each test starts from nothing as with a new DATA_DIR."""
    if store == "sqlite":
        return {"SERVICEGRAPH_STORE": "sqlite"}
    address = request.getfixturevalue("neo4j")
    fresh_graph(address).close()
    return address.environment()
