"""The outbox contract over the Neo4j adapter (``storage.neo4j.outbox``): messages queued
by ``outbox.enqueue`` in a transaction holding the desk lock, as the ticket unit queues
them; claimed by senders with a driver of their own each (another process: another host,
as far as the locks can tell).

Runs live on the session's Neo4j (the ``neo4j`` fixture). EVERY TEST EMPTIES THE DATABASE.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from servicegraph.storage.neo4j import Neo4jGraphStore, schema
from servicegraph.storage.neo4j.outbox import Neo4jOutboxStore, enqueue
from servicegraph.ticketing.outbox import OutboxMessage, OutboxStore
from tests.contract.outbox_contract import OutboxContract, claim_all
from tests.contract.test_neo4j_store import empty
from tests.neo4j_server import Neo4jAddress
from tests.support import free_port


def _claim_in_process(
    uri: str, settings: dict[str, Any], out: multiprocessing.Queue[list[int]]
) -> None:
    graph = Neo4jGraphStore(uri, **settings)
    try:
        mine = claim_all(Neo4jOutboxStore(graph), limit=5)
    finally:
        graph.close()
    out.put(mine)


class TestNeo4jOutbox(OutboxContract):
    __test__ = True

    @pytest.fixture
    def graph(self, neo4j: Neo4jAddress) -> Iterator[Neo4jGraphStore]:
        # small batches, so that the contract's data crosses batch boundaries
        graph = Neo4jGraphStore(neo4j.uri, **neo4j.store_settings(), batch_size=3)
        try:
            yield empty(graph)
        finally:
            graph.close()

    @pytest.fixture
    def outbox(self, graph: Neo4jGraphStore) -> OutboxStore:
        return Neo4jOutboxStore(graph)

    @pytest.fixture
    def enqueue(self, graph: Neo4jGraphStore) -> Callable[..., None]:
        def queue(*messages: OutboxMessage) -> None:
            with graph.locked("queueing messages", schema.DESK_LOCK) as tx:
                enqueue(tx, messages, batch_size=graph.batch_size)

        return queue

    @pytest.fixture
    def claim_in_process(
        self, graph: Neo4jGraphStore, neo4j: Neo4jAddress
    ) -> Callable[[Any], None]:
        return functools.partial(
            _claim_in_process, neo4j.uri, {**neo4j.store_settings(), "batch_size": 3}
        )

    @pytest.fixture
    def failing_outbox(self) -> Iterator[OutboxStore]:
        graph = Neo4jGraphStore(
            f"bolt://127.0.0.1:{free_port()}", max_retry_time=1, connect_timeout=1
        )
        try:
            yield Neo4jOutboxStore(graph)
        finally:
            graph.close()
