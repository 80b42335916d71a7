"""Opening Neo4j stores for the contract suites: over the session's live server (the
``neo4j`` fixture), emptied and migrated, or over a port nothing listens on, for the
``failing_*`` fixtures. EVERY STORE OPENED WITH ``fresh_graph`` EMPTIES THE DATABASE."""

from __future__ import annotations

import socket
from typing import Any

from servicegraph.cmdb.errors import SchemaTooNew
from servicegraph.storage.neo4j import Neo4jGraphStore
from tests.neo4j_server import Neo4jAddress


def open_graph(address: Neo4jAddress, **overrides: Any) -> Neo4jGraphStore:
    settings: dict[str, Any] = {
        **address.store_settings(),
        # small batches, so that the contracts' data crosses batch boundaries
        "batch_size": 3,
        **overrides,
    }
    return Neo4jGraphStore(address.uri, **settings)


def fresh_graph(address: Neo4jAddress, **overrides: Any) -> Neo4jGraphStore:
    """A store over an emptied, migrated database."""
    graph = open_graph(address, **overrides)
    # the schema stays from one test to the next: creating a hundred constraints and
    # indexes again would take seconds per test
    graph.delete_everything(keep_schema=True)
    try:
        graph.migrate()
    except SchemaTooNew:  # a test left a newer schema version behind
        graph.delete_everything()
        graph.migrate()
    return graph


def unreachable_graph() -> Neo4jGraphStore:
    """A store whose server is gone: a port that was free a moment ago, short timeouts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return Neo4jGraphStore(
        f"bolt://127.0.0.1:{port}", password="unused", connect_timeout=1, max_retry_time=1
    )
