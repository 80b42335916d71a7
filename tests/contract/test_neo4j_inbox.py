"""The inbox contract over the Neo4j adapter: batches, cursor and correlated keys as nodes
in the graph's database, shared by every host. Runs live on the session's Neo4j (the
``neo4j`` fixture). EVERY TEST EMPTIES THE DATABASE."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servicegraph.storage.neo4j import Neo4jGraphStore
from servicegraph.storage.neo4j.event_inbox import Neo4jEventInbox
from tests.contract.inbox_contract import InboxContract
from tests.contract.neo4j_stores import fresh_graph, open_graph, unreachable_graph
from tests.neo4j_server import Neo4jAddress


class TestNeo4jInbox(InboxContract):
    __test__ = True

    @pytest.fixture
    def graph(self, neo4j: Neo4jAddress) -> Iterator[Neo4jGraphStore]:
        graph = fresh_graph(neo4j)
        yield graph
        graph.close()

    @pytest.fixture
    def inbox(self, graph: Neo4jGraphStore) -> Iterator[Neo4jEventInbox]:
        inbox = Neo4jEventInbox(graph)
        yield inbox
        inbox.close()

    @pytest.fixture
    def other_inbox(self, inbox: Neo4jEventInbox, neo4j: Neo4jAddress) -> Iterator[Neo4jEventInbox]:
        # another process: a driver and an inbox of its own over the same database
        graph = open_graph(neo4j)
        other = Neo4jEventInbox(graph)
        yield other
        other.close()
        graph.close()

    @pytest.fixture
    def failing_inbox(self) -> Iterator[Neo4jEventInbox]:
        graph = unreachable_graph()
        inbox = Neo4jEventInbox(graph)
        yield inbox
        inbox.close()
        graph.close()
