"""The reports contract over the Neo4j adapter (``storage.neo4j.reports``), plus the
period buckets only Neo4j has.

The tickets are ``(:Incident)`` nodes saved by part T's ``Neo4jTicketStore`` unit when
``storage.neo4j.tickets`` exists, else written here as that unit writes them (node = the
``incident`` row: its columns as properties); the clocks are ``(:SlaRecord)`` nodes
written straight from the ``ticket_sla`` rows with part C's ``SAVE_SLA`` statement, as the
SQLite suite writes its rows into ``ticket_sla``.

Runs live on the session's Neo4j (the ``neo4j`` fixture). EVERY TEST EMPTIES THE DATABASE
(the class's world is saved once, into the emptied database, before its first test).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import itertools
import random
from collections.abc import Iterator
from typing import Any

import pytest

from servicegraph.storage.neo4j import Neo4jGraphStore, change_cypher, schema
from servicegraph.storage.neo4j.records import batches, run
from servicegraph.storage.neo4j.reports import Neo4jReportStore, _cuts
from servicegraph.storage.sqlite.file import from_us, to_us
from servicegraph.storage.sqlite.incident_rows import INCIDENT_COLUMNS, incident_row
from servicegraph.ticketing.model import Incident
from servicegraph.ticketing.report_periods import Per, label, zone
from servicegraph.ticketing.report_ports import ReportStore
from tests.contract.report_contract import ReportContract, Seed
from tests.contract.test_neo4j_store import empty
from tests.neo4j_server import Neo4jAddress
from tests.support import free_port

BATCH = 50  # crosses batch boundaries with the 400 tickets, without a round trip each
_COLUMNS = tuple(name.strip() for name in INCIDENT_COLUMNS.split(","))
# test-only: the nodes part T's unit writes, while ``storage.neo4j.tickets`` is not there
_WRITE_INCIDENTS = "UNWIND $rows AS row CREATE (i:Incident) SET i = row"
TICKETS_BY_PART_T = importlib.util.find_spec("servicegraph.storage.neo4j.tickets") is not None


def save_incidents(graph: Neo4jGraphStore, tickets: list[Incident]) -> None:
    if TICKETS_BY_PART_T:
        from servicegraph.storage.neo4j.tickets import Neo4jTicketStore

        with Neo4jTicketStore(graph).unit() as unit:
            unit.save_incidents(tickets)
        return
    rows = [dict(zip(_COLUMNS, incident_row(t), strict=True)) for t in tickets]
    with graph.locked("saving tickets", schema.DESK_LOCK) as tx:
        for batch in batches(rows, BATCH):
            tx.run(_WRITE_INCIDENTS, {"rows": list(batch)}).consume()


def save_clocks(graph: Neo4jGraphStore, clocks: list[list[Any]]) -> None:
    rows = [dict(zip(change_cypher.SLA_PROPERTIES, row, strict=True)) for row in clocks]
    with graph.locked("saving clocks", schema.DESK_LOCK) as tx:
        for batch in batches(rows, BATCH):
            run(tx, change_cypher.SAVE_SLA, rows=list(batch)).consume()


class TestNeo4jReports(ReportContract):
    __test__ = True

    @pytest.fixture(scope="class")
    @classmethod
    def seed(cls, neo4j: Neo4jAddress) -> Iterator[Seed]:
        graphs: list[Neo4jGraphStore] = []

        def seed(tickets: list[Incident], clocks: list[list[Any]]) -> ReportStore:
            graph = Neo4jGraphStore(neo4j.uri, **neo4j.store_settings(), batch_size=BATCH)
            graphs.append(graph)
            empty(graph)
            save_incidents(graph, tickets)
            save_clocks(graph, clocks)
            return Neo4jReportStore(graph)

        yield seed
        for graph in graphs:
            graph.close()

    @pytest.fixture
    def failing_reports(self) -> Iterator[ReportStore]:
        graph = Neo4jGraphStore(
            f"bolt://127.0.0.1:{free_port()}", max_retry_time=1, connect_timeout=1
        )
        try:
            yield Neo4jReportStore(graph)
        finally:
            graph.close()


@pytest.mark.parametrize("per", list(Per))
@pytest.mark.parametrize(
    "timezone", ["Europe/Berlin", "Asia/Kolkata", "America/Sao_Paulo", "Pacific/Apia"]
)
def test_every_instant_of_a_piece_has_its_label(per: Per, timezone: str) -> None:
    """The period boundaries inside each UTC day (``_cuts``) cut it into pieces that hold
    one label each, the piece's first instant's: checked at random instants of six years,
    and around every boundary; days on which the offset changes are left out."""
    tz = zone(timezone)
    first = to_us(dt.datetime(2010, 1, 1, tzinfo=dt.UTC)) // 86_400_000_000
    last = first + 366 * 6
    cuts = _cuts(per, tz, first, last)
    days = last - first + 1
    if timezone == "Asia/Kolkata":  # no daylight saving time: every day is cut
        assert len(cuts) == days
    else:  # two days a year change their offset
        assert days - 20 < len(cuts) < days
    rng = random.Random(5)
    for day_key, bounds in cuts.items():
        lo = int(day_key) * 86_400_000_000
        pieces = [lo, *bounds, lo + 86_400_000_000]
        for start, stop in itertools.pairwise(pieces):
            expected = label(from_us(start), per, tz)
            for moment in (start, stop - 1, rng.randrange(start, stop)):
                assert label(from_us(moment), per, tz) == expected, (day_key, moment)
        if bounds:
            assert label(from_us(bounds[0] - 1), per, tz) != label(from_us(bounds[0]), per, tz)
