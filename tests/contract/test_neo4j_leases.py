"""The lease contract over the Neo4j adapter (``storage.neo4j.leases``): ``(:Lease)``
nodes in the graph's database; each store a driver of its own, as a process on another
host would have. Leases run on the Neo4j server's clock, so ``let_time_pass`` waits.

Runs live on the session's Neo4j (the ``neo4j`` fixture). EVERY TEST EMPTIES THE DATABASE.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from servicegraph.storage.neo4j import Neo4jGraphStore
from servicegraph.storage.neo4j.leases import Leases, Neo4jLeases
from tests.contract.lease_contract import LeaseContract, MakeLeases, SpawnHolder
from tests.contract.neo4j_stores import fresh_graph, open_graph, unreachable_graph
from tests.neo4j_server import Neo4jAddress

ROOT = Path(__file__).resolve().parents[2]

# The child: takes the lease, says so, and sleeps until it is killed.
_HOLDER = """
import datetime as dt, json, sys, time
from servicegraph.storage.neo4j import Neo4jGraphStore
from servicegraph.storage.neo4j.leases import Neo4jLeases
uri, settings, name, holder, ttl_s = json.loads(sys.argv[1])
graph = Neo4jGraphStore(uri, **settings)
held = Neo4jLeases(graph).try_acquire(name, holder, dt.timedelta(seconds=ttl_s))
print("held" if held else "refused", flush=True)
time.sleep(3600)
"""


class TestNeo4jLeases(LeaseContract):
    __test__ = True

    @pytest.fixture
    def make_leases(self, neo4j: Neo4jAddress) -> Iterator[MakeLeases]:
        graphs: list[Neo4jGraphStore] = [fresh_graph(neo4j)]

        def make() -> Leases:
            graph = open_graph(neo4j)
            graphs.append(graph)
            return Neo4jLeases(graph)

        yield make
        for graph in graphs:
            graph.close()

    @pytest.fixture
    def let_time_pass(self) -> Callable[[float], None]:
        return time.sleep

    @pytest.fixture
    def spawn_holder(self, neo4j: Neo4jAddress) -> Iterator[SpawnHolder]:
        children: list[subprocess.Popen[str]] = []

        def spawn(name: str, holder: str, ttl_s: float) -> subprocess.Popen[str]:
            args = json.dumps([neo4j.uri, neo4j.store_settings(), name, holder, ttl_s])
            child = subprocess.Popen(
                [sys.executable, "-c", _HOLDER, args],
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            children.append(child)
            return child

        yield spawn
        for child in children:  # only the children this fixture started
            if child.poll() is None:
                child.kill()
                child.wait(10)

    @pytest.fixture
    def failing_leases(self) -> Iterator[Leases]:
        graph = unreachable_graph()
        try:
            yield Neo4jLeases(graph)
        finally:
            graph.close()
