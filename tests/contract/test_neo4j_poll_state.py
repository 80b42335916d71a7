"""The poll state contract over the Neo4j adapter (``storage.neo4j.poll_state``): samples
and the lease as nodes in the graph's database; each store a driver of its own, as a
poller on another host would have. The leases run on the Neo4j server's clock, so
``let_time_pass`` waits.

Runs live on the session's Neo4j (the ``neo4j`` fixture). EVERY TEST EMPTIES THE DATABASE.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from servicegraph.collectors.snmp.state import PollStateStore
from servicegraph.storage.neo4j import Neo4jGraphStore
from servicegraph.storage.neo4j.poll_state import Neo4jPollStateStore
from tests.contract.neo4j_stores import fresh_graph, open_graph, unreachable_graph
from tests.contract.poll_state_contract import MakePollState, PollStateContract
from tests.neo4j_server import Neo4jAddress


class TestNeo4jPollState(PollStateContract):
    __test__ = True

    @pytest.fixture
    def make_poll_state(self, neo4j: Neo4jAddress) -> Iterator[MakePollState]:
        graphs: list[Neo4jGraphStore] = [fresh_graph(neo4j)]

        def make(lease_s: float) -> PollStateStore:
            graph = open_graph(neo4j)
            graphs.append(graph)
            return Neo4jPollStateStore(graph, lease_s=lease_s)

        yield make
        for graph in graphs:
            graph.close()

    @pytest.fixture
    def let_time_pass(self) -> Callable[[float], None]:
        return time.sleep

    @pytest.fixture
    def failing_poll_state(self) -> Iterator[PollStateStore]:
        graph = unreachable_graph()
        try:
            yield Neo4jPollStateStore(graph, lease_s=1)
        finally:
            graph.close()
