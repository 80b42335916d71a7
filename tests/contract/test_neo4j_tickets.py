"""The incident and ticket repository contract over the Neo4j adapter
(``servicegraph.storage.neo4j.tickets`` and ``ticket_unit``): alerts, incidents,
problems, changes and worklog as nodes in the graph's database, linked to the CIs they
concern, every unit under the desk lock; and what only Neo4j has, the graph projection.

Runs live on the session's Neo4j (the ``neo4j`` fixture). EVERY TEST EMPTIES THE
DATABASE.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from servicegraph.storage.neo4j import Neo4jGraphStore
from servicegraph.storage.neo4j.event_inbox import Neo4jEventInbox
from servicegraph.storage.neo4j.tickets import Neo4jTicketStore
from servicegraph.ticketing.model import TicketType
from tests.contract.neo4j_stores import fresh_graph, open_graph, unreachable_graph
from tests.contract.store_contract import make_ci
from tests.contract.ticket_contract import (
    ALERTS,
    INCIDENTS,
    Repository,
    TicketContract,
    at,
    make_problem,
)
from tests.neo4j_server import Neo4jAddress


def repository(graph: Neo4jGraphStore) -> Repository:
    return Repository(Neo4jEventInbox(graph), Neo4jTicketStore(graph))


class TestNeo4jTickets(TicketContract):
    __test__ = True

    @pytest.fixture
    def graph(self, neo4j: Neo4jAddress) -> Iterator[Neo4jGraphStore]:
        # batches of 7: the contract's few records cross batch boundaries, and its pages of
        # 10,000 tickets take 1,400 statements rather than 3,300
        graph = fresh_graph(neo4j, batch_size=7)
        yield graph
        graph.close()

    @pytest.fixture
    def repo(self, graph: Neo4jGraphStore) -> Repository:
        return repository(graph)

    @pytest.fixture
    def other_repo(self, repo: Repository, neo4j: Neo4jAddress) -> Iterator[Repository]:
        # another process: a driver of its own over the same database
        graph = open_graph(neo4j, batch_size=7)
        yield repository(graph)
        graph.close()

    @pytest.fixture
    def failing_repo(self) -> Iterator[Repository]:
        # a server that is gone (the seed records cannot be written to it first)
        graph = unreachable_graph()
        yield repository(graph)
        graph.close()


# -- what only Neo4j has: the graph projection ---------------------------------------------


@pytest.fixture
def graph(neo4j: Neo4jAddress) -> Iterator[Neo4jGraphStore]:
    graph = fresh_graph(neo4j)
    yield graph
    graph.close()


def _query(graph: Neo4jGraphStore, text: str, **params: Any) -> list[dict[str, Any]]:
    # a test's own question to the graph: what a problem manager would ask
    return graph.read("test", lambda tx: [r.data() for r in tx.run(text, params)])


def test_tickets_are_linked_to_the_cis_they_concern(graph: Neo4jGraphStore) -> None:
    with graph.write() as w:
        w.insert_cis([make_ci("ci-a"), make_ci("ci-b"), make_ci("ci-y")])
    tickets = Neo4jTicketStore(graph)
    with tickets.unit() as unit:
        unit.save_alerts([ALERTS["a1"], ALERTS["a2"]])
        unit.save_incidents([replace(INCIDENTS["inc-1"], affected_ci_ids=["ci-y", "ci-gone"])])
        unit.save_problem(make_problem(1, root_ci_id="ci-a"))
        unit.link_problem("prb-1", ["inc-1"], at(40))
    edges = _query(
        graph,
        "MATCH (x)-[r]->(y) WHERE NOT x:WriteLock RETURN labels(x)[0] AS x, type(r) AS r, "
        "coalesce(y.id, y.fingerprint) AS y ORDER BY x, r, y",
    )
    assert [(e["x"], e["r"], e["y"]) for e in edges] == [
        ("Alert", "GROUPED_IN", "inc-1"),
        ("Alert", "GROUPED_IN", "inc-1"),
        ("Alert", "RAISED_ON", "ci-a"),
        ("Alert", "RAISED_ON", "ci-b"),
        ("Incident", "AFFECTS", "ci-a"),
        ("Incident", "AFFECTS", "ci-y"),
        ("Incident", "INSTANCE_OF", "prb-1"),
        ("Incident", "ROOT_CAUSE", "ci-a"),
        ("Problem", "ROOT_CAUSE", "ci-a"),
    ], "no CI node, no relationship; none created"
    # rewritten: the relationships follow
    with tickets.unit() as unit:
        (incident,) = unit.load_incidents(["inc-1"]).values()
        unit.update_incidents([replace(incident, affected_ci_ids=["ci-b"])])
    affected = _query(
        graph, "MATCH (:Incident {id: 'inc-1'})-[:AFFECTS]->(c:CI) RETURN c.id AS id ORDER BY id"
    )
    assert [a["id"] for a in affected] == ["ci-a", "ci-b"]
    assert _query(graph, "MATCH (c:CI) RETURN count(c) AS n") == [{"n": 3}]


def test_service_requests_carry_their_label_in_step_with_the_type(
    graph: Neo4jGraphStore,
) -> None:
    tickets = Neo4jTicketStore(graph)
    request = replace(INCIDENTS["inc-2"], type=TicketType.SERVICE_REQUEST)
    with tickets.unit() as unit:
        unit.save_incidents([INCIDENTS["inc-1"], request])

    def requests() -> list[str]:
        rows = _query(graph, "MATCH (i:ServiceRequest) RETURN i.id AS id ORDER BY id")
        return [r["id"] for r in rows]

    assert requests() == ["inc-2"]
    with tickets.unit() as unit:
        unit.update_incidents([replace(request, type=TicketType.INCIDENT)])
        unit.update_incidents([replace(INCIDENTS["inc-1"], type=TicketType.SERVICE_REQUEST)])
    assert requests() == ["inc-1"]


def test_worklog_entries_are_logged_on_their_tickets(graph: Neo4jGraphStore) -> None:
    from servicegraph.ticketing.model import WorklogEntry, WorklogKind

    tickets = Neo4jTicketStore(graph)
    with tickets.unit() as unit:
        unit.save_incidents([INCIDENTS["inc-1"]])
        unit.save_problem(make_problem(1))
        unit.append_worklog(
            [
                WorklogEntry("inc-1", at(1), "alice", WorklogKind.COMMENT, "x"),
                WorklogEntry("prb-1", at(2), "bob", WorklogKind.COMMENT, "y"),
                WorklogEntry("inc-9", at(3), "bob", WorklogKind.COMMENT, "no such ticket"),
            ]
        )
    rows = _query(
        graph,
        "MATCH (w:WorklogEntry)-[:LOGGED_ON]->(t) RETURN w.text AS text, t.id AS id ORDER BY id",
    )
    assert rows == [{"text": "x", "id": "inc-1"}, {"text": "y", "id": "prb-1"}]
