"""The directory contract over the Neo4j adapter (``storage.neo4j.directory``): people and
the catalogue as nodes in the graph's database; ``other_store`` has a driver of its own, as
another process (another host) would; plus the export and restore of the records.

Runs live on the session's Neo4j (the ``neo4j`` fixture). EVERY TEST EMPTIES THE DATABASE.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servicegraph.cmdb.errors import StoreError
from servicegraph.storage.neo4j import Neo4jGraphStore
from servicegraph.storage.neo4j.directory import Neo4jDirectoryStore
from tests.contract.directory_contract import DirectoryContract, seed
from tests.contract.neo4j_stores import fresh_graph, open_graph, unreachable_graph
from tests.neo4j_server import Neo4jAddress


@pytest.fixture
def graph(neo4j: Neo4jAddress) -> Iterator[Neo4jGraphStore]:
    graph = fresh_graph(neo4j)
    try:
        yield graph
    finally:
        graph.close()


class TestNeo4jDirectory(DirectoryContract):
    __test__ = True

    @pytest.fixture
    def store(self, graph: Neo4jGraphStore) -> Neo4jDirectoryStore:
        return Neo4jDirectoryStore(graph)

    @pytest.fixture
    def other_store(
        self, store: Neo4jDirectoryStore, neo4j: Neo4jAddress
    ) -> Iterator[Neo4jDirectoryStore]:
        graph = open_graph(neo4j)
        try:
            yield Neo4jDirectoryStore(graph)
        finally:
            graph.close()

    @pytest.fixture
    def failing_store(self) -> Iterator[Neo4jDirectoryStore]:
        graph = unreachable_graph()
        try:
            yield Neo4jDirectoryStore(graph)
        finally:
            graph.close()


def test_export_then_restore_into_an_empty_directory(graph: Neo4jGraphStore) -> None:
    store = Neo4jDirectoryStore(graph)
    seed(store)
    exported = store.export_records()
    assert exported.version == store.version() > 0
    with pytest.raises(StoreError, match="not empty"):
        store.restore_records(exported)
    graph.delete_everything()
    graph.migrate()
    assert store.restore_records(exported) == exported.version
    assert store.export_records() == exported
