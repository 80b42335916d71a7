"""The token store contract over the Neo4j adapter (``storage.neo4j.tokens``): tokens as
``(:ApiToken)`` nodes in the graph's database; ``other_tokens`` has a driver of its own, as
another process (another host, as far as the locks can tell) would.

Runs live on the session's Neo4j (the ``neo4j`` fixture). EVERY TEST EMPTIES THE DATABASE.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servicegraph.storage.neo4j import Neo4jGraphStore
from servicegraph.storage.neo4j.tokens import Neo4jTokenStore
from tests.contract.neo4j_stores import fresh_graph, open_graph, unreachable_graph
from tests.contract.token_contract import TokenContract
from tests.neo4j_server import Neo4jAddress


class TestNeo4jTokens(TokenContract):
    __test__ = True

    @pytest.fixture
    def graph(self, neo4j: Neo4jAddress) -> Iterator[Neo4jGraphStore]:
        graph = fresh_graph(neo4j)
        try:
            yield graph
        finally:
            graph.close()

    @pytest.fixture
    def tokens(self, graph: Neo4jGraphStore) -> Neo4jTokenStore:
        return Neo4jTokenStore(graph)

    @pytest.fixture
    def other_tokens(
        self, tokens: Neo4jTokenStore, neo4j: Neo4jAddress
    ) -> Iterator[Neo4jTokenStore]:
        graph = open_graph(neo4j)
        try:
            yield Neo4jTokenStore(graph)
        finally:
            graph.close()

    @pytest.fixture
    def failing_tokens(self) -> Iterator[Neo4jTokenStore]:
        graph = unreachable_graph()
        try:
            yield Neo4jTokenStore(graph)
        finally:
            graph.close()
