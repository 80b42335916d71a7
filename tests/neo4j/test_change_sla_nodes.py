"""Changes, freeze windows and SLA clocks as Neo4j nodes (``storage/neo4j/change_nodes.py``,
``sla_nodes.py``), live on the session's Neo4j: every field round trips through the SQLite
codecs, and each query answers as its SQLite counterpart (``change_rows.py``,
``sla_rows.py``, the ``sla_due``/``sla_stale`` reads of ``tickets.py``) does. The ticket
contract exercises them again through the Neo4j ticket store.

The incidents, worklog entries and CIs these functions read belong to other parts of the
adapter; the tests create the few properties they read with Cypher of their own
(``_given``), not through those parts.

EVERY TEST EMPTIES THE DATABASE (see ``tests/contract/neo4j_stores.py``).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, LiteralString, TypeVar

import pytest

from servicegraph.storage.neo4j import (
    Neo4jGraphStore,
    change_cypher,
    change_nodes,
    schema,
    sla_nodes,
)
from servicegraph.storage.neo4j.records import Tx
from servicegraph.storage.sqlite import SqliteGraphStore, change_rows, sla_rows
from servicegraph.storage.sqlite.file import to_us
from servicegraph.storage.sqlite.incident_rows import opt_us
from servicegraph.storage.sqlite.tickets import SqliteTicketStore
from servicegraph.ticketing.change_model import (
    ApprovalDecision,
    ChangeApproval,
    ChangeTask,
    FreezeWindow,
    TaskStatus,
)
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Change, ChangeStatus, WorklogKind
from servicegraph.ticketing.ports import ChangeFilter
from servicegraph.ticketing.sla import Clock, ClockKind, ClockState
from servicegraph.ticketing.sla_projection import SlaRecord
from tests.contract.neo4j_stores import fresh_graph
from tests.contract.ticket_contract import (
    FULL_CHANGE,
    at,
    make_change,
    make_freeze,
    make_incident,
)
from tests.neo4j_server import Neo4jAddress

T = TypeVar("T")
S = ChangeStatus


@pytest.fixture
def graph(neo4j: Neo4jAddress) -> Iterator[Neo4jGraphStore]:
    store = fresh_graph(neo4j)
    try:
        yield store
    finally:
        store.close()


def write(graph: Neo4jGraphStore, work: Callable[[Tx], T]) -> T:
    """``work`` in a transaction holding the desk lock, as the ticket unit runs."""
    with graph.locked("test", schema.DESK_LOCK) as tx:
        return work(tx)


def read(graph: Neo4jGraphStore, work: Callable[[Tx], T]) -> T:
    """``work`` in a managed read transaction, as the ticket store reads."""
    return graph.read("test", work)


def call(graph: Neo4jGraphStore, function: Callable[..., T], *args: Any) -> T:
    """``function(tx, *args)`` in a managed read transaction."""
    return graph.read("test", lambda tx: function(tx, *args))


def _given(graph: Neo4jGraphStore, text: LiteralString, **params: Any) -> None:
    """Nodes of other parts (CIs, incidents, worklog entries) with what these tests read."""
    with graph.locked("test", schema.DESK_LOCK) as tx:
        tx.run(text, params).consume()


def _count(graph: Neo4jGraphStore, text: LiteralString, **params: Any) -> Any:
    def work(tx: Tx) -> Any:
        record = tx.run(text, params).single()
        assert record is not None
        return record[0]

    return read(graph, work)


def without_nulls(props: dict[str, Any]) -> dict[str, Any]:
    """A property map as Neo4j keeps it: a null value is no property."""
    return {k: v for k, v in props.items() if v is not None}


def save(graph: Neo4jGraphStore, *changes: Change, batch_size: int = 3) -> None:
    write(graph, lambda tx: change_nodes.save_changes(tx, changes, batch_size=batch_size))


def by_id(graph: Neo4jGraphStore, *ids: str) -> dict[str, Change]:
    return read(graph, lambda tx: change_nodes.changes_by_id(tx, ids, batch_size=2))


# -- changes ---------------------------------------------------------------------------


def test_every_field_of_a_change_round_trips(graph: Neo4jGraphStore) -> None:
    write(graph, lambda tx: change_nodes.save_change(tx, FULL_CHANGE))
    assert by_id(graph, "chg-5", "chg-9", "chg-5") == {"chg-5": FULL_CHANGE}
    # within the transaction that wrote it, too
    with graph.locked("test", schema.DESK_LOCK) as tx:
        change_nodes.save_change(tx, replace(FULL_CHANGE, title="again"))
        assert change_nodes.changes_by_id(tx, ["chg-5"])["chg-5"].title == "again"
        assert change_nodes.changes_by_id(tx, []) == {}


def test_a_change_is_replaced_whole(graph: Neo4jGraphStore) -> None:
    """Lists replaced in their order; cleared fields gone, not kept from before."""
    save(graph, FULL_CHANGE)
    (first, _) = FULL_CHANGE.approvals
    bare = replace(
        make_change(5, ["ci-a"], status=S.CLOSED),
        approvals=[ChangeApproval("frank", ApprovalDecision.APPROVED, at(30)), first],
        tasks=[ChangeTask(2, "swap", status=TaskStatus.DONE, done_at=at(90))],
    )
    save(graph, bare)
    assert by_id(graph, "chg-5") == {"chg-5": bare}
    keys = _count(graph, "MATCH (c:Change {id: 'chg-5'}) RETURN keys(c)")
    assert set(keys) <= {*change_cypher.CHANGE_PROPERTIES, "ci_ids"}
    assert "actual_start" not in keys and "template" not in keys, "null: no property"
    no_cis = replace(bare, ci_ids=[])
    save(graph, no_cis)
    assert by_id(graph, "chg-5") == {"chg-5": no_cis}


def test_the_properties_are_the_sqlite_row(graph: Neo4jGraphStore) -> None:
    save(graph, FULL_CHANGE)
    props = _count(graph, "MATCH (c:Change {id: 'chg-5'}) RETURN properties(c)")
    assert props == without_nulls(change_nodes.change_properties(FULL_CHANGE))
    assert props["planned_start"] == to_us(at(60)) and props["ci_ids"] == ["ci-b", "ci-a"]
    assert props["approvals"].startswith('[["dave","approved",')  # the SQLite JSON text


def test_changes_link_to_the_cis_that_exist(graph: Neo4jGraphStore) -> None:
    _given(graph, "UNWIND ['ci-a', 'ci-b', 'ci-c'] AS id CREATE (:CI {id: id})")

    def changed(change_id: str) -> list[str]:
        return sorted(
            _count(
                graph,
                "MATCH (:Change {id: $id}) OPTIONAL MATCH (:Change {id: $id})-[:CHANGES]->(c:CI) "
                "RETURN collect(c.id)",
                id=change_id,
            )
        )

    save(graph, make_change(1, ["ci-b", "ci-a", "ci-zz"]), make_change(2, []))
    assert changed("chg-1") == ["ci-a", "ci-b"], "no CI node, no relationship"
    assert by_id(graph, "chg-1")["chg-1"].ci_ids == ["ci-b", "ci-a", "ci-zz"], "all kept"
    assert changed("chg-2") == []
    save(graph, make_change(1, ["ci-c", "ci-c"]))
    assert changed("chg-1") == ["ci-c"], "replaced, once per CI"
    assert _count(graph, "MATCH (c:CI) RETURN count(c)") == 3, "no CI created"
    assert _count(graph, "MATCH ()-[r:CHANGES]->() RETURN count(r)") == 1


def test_a_naive_time_is_refused_before_anything_is_written(graph: Neo4jGraphStore) -> None:
    naive = replace(make_change(1, ["ci-a"]), planned_start=dt.datetime(2024, 3, 1, 12))
    with pytest.raises(ValueError, match="naive datetimes"):
        save(graph, make_change(2, []), naive)
    assert by_id(graph, "chg-1", "chg-2") == {}


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        pytest.param(-100, -50, [3], id="before-all:implementing-always"),
        pytest.param(0, 60, [3], id="ends-where-chg-1-starts"),
        pytest.param(59, 61, [1, 3], id="into-chg-1"),
        pytest.param(120, 121, [2, 3], id="chg-1-ended-chg-2-starts"),
        pytest.param(180, 200, [3], id="between-chg-2-and-chg-4s-actual"),
        pytest.param(249, 250, [3, 4], id="end-of-chg-4s-actual-window"),
        pytest.param(250, 300, [3], id="after-its-actual-before-its-planned"),
        pytest.param(330, 331, [3, 4], id="chg-4s-planned-window"),
        pytest.param(420, 500, [3, 6], id="a-failed-changes-actual-window"),
        pytest.param(0, 1000, [1, 2, 3, 4, 6], id="everything-but-the-unplanned"),
    ],
)
def test_changes_touching_a_period(
    graph: Neo4jGraphStore, start: float, end: float, expected: list[int]
) -> None:
    """As the contract's case: half-open windows, implementing whatever its window, the
    actual window counting in any status, each change once in number order."""
    save(
        graph,
        make_change(6, ["ci-f"], status=S.FAILED, actual_start=at(400), actual_end=at(430)),
        make_change(1, ["ci-a"], planned_start=at(60), planned_end=at(120)),
        make_change(2, ["ci-b"], status=S.SCHEDULED, planned_start=at(120), planned_end=at(180)),
        make_change(
            3,
            ["ci-c"],
            status=S.IMPLEMENTING,
            planned_start=at(0),
            planned_end=at(10),
            actual_start=at(5),
        ),
        make_change(
            4,
            ["ci-d"],
            status=S.CLOSED,
            planned_start=at(300),
            planned_end=at(360),
            actual_start=at(200),
            actual_end=at(250),
            close_code="successful",
        ),
        make_change(5, ["ci-e"], planned_start=at(60)),  # no end: no window
        # both windows overlap the whole range and it implements: still once
        make_change(
            7,
            [],
            status=S.IMPLEMENTING,
            planned_start=at(-1000),
            planned_end=at(2000),
            actual_start=at(-1000),
            actual_end=at(2000),
        ),
    )
    found = read(
        graph, lambda tx: change_nodes.changes_touching(tx, to_us(at(start)), to_us(at(end)))
    )
    assert [c.number for c in found] == sorted([*expected, 7])
    assert all(c == by_id(graph, c.id)[c.id] for c in found), "whole"


def test_find_changes_newest_first_with_filters(graph: Neo4jGraphStore) -> None:
    save(
        graph,
        make_change(1, ["ci-a", "ci-b"], assignee="bob"),
        make_change(2, ["ci-c"], status=S.CLOSED, close_code="successful"),
        make_change(3, [], assignee="bob"),
        make_change(4, ["ci-c"], assignee="carol"),
        make_change(12, ["ci-b"]),  # numbers order as numbers, not as text
    )

    def find(**kw: Any) -> list[str]:
        return [
            c.id for c in read(graph, lambda tx: change_nodes.find_changes(tx, ChangeFilter(**kw)))
        ]

    assert find() == ["chg-12", "chg-4", "chg-3", "chg-2", "chg-1"]
    assert find(status=S.CLOSED) == ["chg-2"]
    assert find(status=S.IMPLEMENTING) == []
    assert find(ci_ids=("ci-b", "ci-c")) == ["chg-12", "chg-4", "chg-2", "chg-1"]
    assert find(ci_ids=()) == [], "no CI: no change (SQLite's IN of nothing)"
    assert find(ci_ids=("ci-zz",)) == []
    assert find(assignee="bob") == ["chg-3", "chg-1"]
    assert find(assignee="nobody") == []
    assert find(assignee="carol", ci_ids=("ci-c",), status=S.DRAFT) == ["chg-4"]
    assert find(assignee="bob", limit=1) == ["chg-3"]
    assert find(limit=2) == ["chg-12", "chg-4"]
    full = read(graph, lambda tx: change_nodes.find_changes(tx, ChangeFilter(assignee="bob")))
    assert full == [
        make_change(3, [], assignee="bob"),
        make_change(1, ["ci-a", "ci-b"], assignee="bob"),
    ]


# -- freeze windows --------------------------------------------------------------------


def test_freeze_windows_by_period(graph: Neo4jGraphStore) -> None:
    windows = [
        make_freeze("c", 300, 400, reason="year end"),
        make_freeze("b", 100, 200, reason="launch «X»", ci_ids=("ci-shop", "ci-a")),
        make_freeze("a", 150, 160),
        make_freeze("d", 100, 120),  # starts with b: then by id
    ]
    write(graph, lambda tx: change_nodes.save_freeze_windows(tx, windows, batch_size=3))

    def between(start: float | None, end: float | None) -> list[str]:
        s = None if start is None else to_us(at(start))
        e = None if end is None else to_us(at(end))
        return [w.id for w in read(graph, lambda tx: change_nodes.freeze_windows(tx, s, e))]

    whole = read(graph, lambda tx: change_nodes.freeze_windows(tx, None, None))
    assert whole == [windows[1], windows[3], windows[2], windows[0]], "every field, by start"
    assert between(200, 300) == [], "half-open: b ends at 200, c starts at 300"
    assert between(199, 301) == ["frz-b", "frz-c"]
    assert between(155, 156) == ["frz-b", "frz-a"]
    assert between(None, 150) == ["frz-b", "frz-d"]
    assert between(160, None) == ["frz-b", "frz-c"]
    assert between(400, None) == []
    props = _count(graph, "MATCH (w:FreezeWindow {id: 'frz-b'}) RETURN properties(w)")
    assert props["ci_ids"] == '["ci-shop","ci-a"]', "the SQLite column's JSON text"


def test_freeze_windows_are_replaced_and_deleted(graph: Neo4jGraphStore) -> None:
    write(graph, lambda tx: change_nodes.save_freeze_window(tx, make_freeze("a", 0, 10)))
    write(graph, lambda tx: change_nodes.save_freeze_window(tx, make_freeze("b", 5, 15)))
    moved = make_freeze("a", 20, 30, name="moved", reason="r", ci_ids=("ci-z",))
    write(graph, lambda tx: change_nodes.save_freeze_window(tx, moved))
    windows = read(graph, lambda tx: change_nodes.freeze_windows(tx, None, None))
    assert windows == [make_freeze("b", 5, 15), moved]
    assert write(graph, lambda tx: change_nodes.delete_freeze_window(tx, "frz-b")) is True
    assert write(graph, lambda tx: change_nodes.delete_freeze_window(tx, "frz-b")) is False
    assert write(graph, lambda tx: change_nodes.delete_freeze_window(tx, "frz-no")) is False
    assert read(graph, lambda tx: change_nodes.freeze_windows(tx, None, None)) == [moved]


# -- export and restore ----------------------------------------------------------------


def test_export_pages_and_restore(graph: Neo4jGraphStore, neo4j: Neo4jAddress) -> None:
    assert read(graph, change_nodes.next_change_number) == 1, "none yet"
    assert read(graph, change_nodes.counts) == {"freeze_windows": 0, "changes": 0}
    changes = [replace(FULL_CHANGE, id=f"chg-{n}", number=n) for n in (11, 2, 7, 5, 1, 30, 4)]
    windows = [make_freeze(k, n, n + 5) for n, k in enumerate("gfedcba")]
    save(graph, *changes)
    write(graph, lambda tx: change_nodes.save_freeze_windows(tx, windows))
    assert read(graph, change_nodes.counts) == {"freeze_windows": 7, "changes": 7}
    assert read(graph, change_nodes.next_change_number) == 31

    def listed(size: int) -> tuple[list[Change], list[FreezeWindow]]:
        def work(tx: Tx) -> tuple[list[Change], list[FreezeWindow]]:
            return (
                list(change_nodes.all_changes(tx, batch_size=size)),
                list(change_nodes.all_freeze_windows(tx, batch_size=size)),
            )

        return read(graph, work)

    for size in (1, 3, 7, 100):  # pages that end exactly on the last record too
        got, frozen = listed(size)
        assert got == sorted(changes, key=lambda c: c.number)
        assert frozen == sorted(windows, key=lambda w: w.id)
    assert read(graph, lambda tx: list(change_nodes.all_changes(tx))) == got
    target = fresh_graph(neo4j)  # the same database, emptied, as the export's restore
    try:
        with target.locked("restore", schema.DESK_LOCK) as tx:
            change_nodes.restore_changes(tx, iter(got), batch_size=3)
            change_nodes.restore_freeze_windows(tx, iter(frozen), batch_size=3)
        assert read(target, lambda tx: list(change_nodes.all_changes(tx))) == got
        assert read(target, lambda tx: list(change_nodes.all_freeze_windows(tx))) == frozen
        assert read(target, change_nodes.next_change_number) == 31, "numbers continue"
    finally:
        target.close()


# -- SLA clocks ------------------------------------------------------------------------

H = dt.timedelta(hours=1)


def clock(kind: ClockKind, target: dt.timedelta, elapsed: dt.timedelta, **fields: Any) -> Clock:
    return Clock(
        kind=kind,
        target=target,
        due=fields.pop("due", at(0) + target),
        elapsed=elapsed,
        remaining=max(target - elapsed, dt.timedelta(0)),
        paused=fields.pop("paused", False),
        state=fields.pop("state", ClockState.OK),
        breached_at=fields.pop("breached_at", None),
        stopped_at=fields.pop("stopped_at", None),
    )


def record(ticket_id: str, **fields: Any) -> SlaRecord:
    return SlaRecord(
        ticket_id=ticket_id,
        policy=fields.pop("policy", "standard"),
        calendar=fields.pop("calendar", "24x7"),
        priority=fields.pop("priority", 3),
        response=fields.pop("response", clock(ClockKind.RESPONSE, H, dt.timedelta(0))),
        resolution=fields.pop("resolution", clock(ClockKind.RESOLUTION, 4 * H, 0.5 * H)),
        next_check_at=fields.pop("next_check_at", at(30)),
        evaluated_at=fields.pop("evaluated_at", at(10)),
        config=fields.pop("config", "v1"),
    )


# Every field away from its default: a met response, a breached, paused resolution with
# fractions of a second, a record without a next check.
FULL_RECORD = record(
    "inc-1",
    policy="vpn-office «gold»",
    calendar="office",
    priority=1,
    response=clock(
        ClockKind.RESPONSE,
        dt.timedelta(minutes=15),
        dt.timedelta(minutes=9, seconds=30.25),
        state=ClockState.MET,
        stopped_at=at(9.5),
    ),
    resolution=clock(
        ClockKind.RESOLUTION,
        H,
        dt.timedelta(hours=1, seconds=0.5),
        due=at(58),
        state=ClockState.BREACHED,
        paused=True,
        breached_at=at(58),
    ),
    next_check_at=None,
    evaluated_at=dt.datetime(2024, 3, 1, 13, 0, 0, 123456, tzinfo=dt.UTC),
    config="sha-1234",
)


def incidents(graph: Neo4jGraphStore, *spec: tuple[str, int, str]) -> None:
    """(:Incident) nodes (part T's) with the id, number and status the SLA reads use."""
    _given(
        graph,
        "UNWIND $rows AS row CREATE (:Incident {id: row[0], number: row[1], status: row[2]})",
        rows=[list(s) for s in spec],
    )


def due_at(graph: Neo4jGraphStore) -> dict[str, int | None]:
    rows = _count(
        graph, "MATCH (i:Incident) WITH i ORDER BY i.id RETURN collect([i.id, i.sla_due_at])"
    )
    return {ticket_id: due for ticket_id, due in rows}


def save_sla(graph: Neo4jGraphStore, records: list[SlaRecord], drop: list[str], **kw: Any) -> None:
    write(graph, lambda tx: sla_nodes.save_sla(tx, records, drop, **kw, batch_size=2))


def load_sla(graph: Neo4jGraphStore, *ids: str) -> dict[str, SlaRecord]:
    return read(graph, lambda tx: sla_nodes.select_sla(tx, ids, batch_size=2))


def nones(graph: Neo4jGraphStore) -> dict[str, str]:
    rows = _count(graph, "MATCH (n:SlaNone) RETURN collect([n.ticket_id, n.config])")
    return dict(rows)


def test_every_field_of_an_sla_record_round_trips(graph: Neo4jGraphStore) -> None:
    others = [record(f"inc-{n}", next_check_at=at(n)) for n in range(2, 6)]
    save_sla(graph, [FULL_RECORD, *others], [])
    assert load_sla(graph, "inc-1", "inc-9", "inc-1") == {"inc-1": FULL_RECORD}
    assert load_sla(graph, *(r.ticket_id for r in others)) == {r.ticket_id: r for r in others}
    props = _count(graph, "MATCH (s:SlaRecord {ticket_id: 'inc-1'}) RETURN properties(s)")
    assert props == without_nulls(sla_nodes.sla_properties(FULL_RECORD))
    assert "next_check_at" not in props, "null: no property"
    assert props["resolution_paused"] == 1 and props["response_elapsed_s"] == 570.25
    replaced = replace(FULL_RECORD, next_check_at=at(99), config="v2")
    save_sla(graph, [replaced], [])
    assert load_sla(graph, "inc-1") == {"inc-1": replaced}


def test_save_sla_keeps_the_due_time_on_the_incident(graph: Neo4jGraphStore) -> None:
    incidents(graph, ("inc-1", 1, "new"), ("inc-2", 2, "new"), ("inc-3", 3, "new"))
    running = record("inc-2")  # due: the response, at(60)
    save_sla(graph, [FULL_RECORD, running], [], config="v1")
    # inc-1's clocks are both stopped or breached: breached counts (not stopped)
    assert due_at(graph) == {"inc-1": to_us(at(58)), "inc-2": to_us(at(60)), "inc-3": None}
    stopped = replace(
        running,
        response=replace(running.response, stopped_at=at(1)),
        resolution=replace(running.resolution, stopped_at=at(2)),
    )
    assert stopped.due_at is None
    save_sla(graph, [stopped], [])
    assert due_at(graph)["inc-2"] is None, "no clock running: no due time"
    # a record of a ticket without an incident node sets nothing, and fails nothing
    save_sla(graph, [record("inc-404")], [])
    assert "inc-404" not in due_at(graph) and load_sla(graph, "inc-404")


def test_save_sla_skips_the_due_time_of_fresh_tickets_without_one(
    graph: Neo4jGraphStore,
) -> None:
    """``fresh``: created in this transaction, their due time still unset: a record
    without one writes nothing to the incident; one with a due time does."""
    incidents(graph, ("inc-1", 1, "new"), ("inc-2", 2, "new"))
    _given(graph, "MATCH (i:Incident {id: 'inc-1'}) SET i.sla_due_at = 42")
    stopped = replace(
        record("inc-1"),
        response=replace(record("inc-1").response, stopped_at=at(1)),
        resolution=replace(record("inc-1").resolution, stopped_at=at(1)),
    )
    save_sla(graph, [stopped, record("inc-2")], [], fresh={"inc-1", "inc-2"})
    assert due_at(graph) == {"inc-1": 42, "inc-2": to_us(at(60))}, "inc-1 left as it was"
    save_sla(graph, [stopped], [])  # not fresh: the due time goes
    assert due_at(graph)["inc-1"] is None


def test_save_sla_drops_the_clocks_of_tickets_no_policy_covers(graph: Neo4jGraphStore) -> None:
    incidents(graph, ("inc-1", 1, "new"), ("inc-2", 2, "new"), ("inc-3", 3, "new"))
    save_sla(graph, [record("inc-1"), record("inc-2"), record("inc-3")], [])
    save_sla(graph, [record("inc-3", config="v2")], ["inc-1", "inc-2", "inc-7"], config="v2")
    assert set(load_sla(graph, "inc-1", "inc-2", "inc-3")) == {"inc-3"}
    assert due_at(graph) == {"inc-1": None, "inc-2": None, "inc-3": to_us(at(60))}
    assert nones(graph) == {"inc-1": "v2", "inc-2": "v2", "inc-7": "v2"}
    save_sla(graph, [], ["inc-1"], config="v3")
    assert nones(graph)["inc-1"] == "v3", "marked again under the newer configuration"
    # covered again: the mark goes
    save_sla(graph, [record("inc-1", config="v3")], [], config="v3")
    assert nones(graph) == {"inc-2": "v2", "inc-7": "v2"}
    assert set(load_sla(graph, "inc-1", "inc-2", "inc-3")) == {"inc-1", "inc-3"}
    save_sla(graph, [], [])  # nothing: nothing happens


def test_a_level_is_claimed_once(graph: Neo4jGraphStore) -> None:
    def claim(ticket_id: str, clock_name: str, level: int, minutes: float) -> bool:
        return write(
            graph, lambda tx: sla_nodes.claim_level(tx, ticket_id, clock_name, level, at(minutes))
        )

    assert claim("inc-1", "resolution", 1, 10) is True
    assert claim("inc-1", "resolution", 1, 20) is False, "already fired"
    assert claim("inc-1", "resolution", 2, 20) is True
    assert claim("inc-1", "response", 1, 20) is True
    assert claim("inc-2", "resolution", 1, 20) is True
    with graph.locked("test", schema.DESK_LOCK) as tx:
        assert sla_nodes.claim_level(tx, "inc-3", "response", 1, at(1)) is True
        assert sla_nodes.claim_level(tx, "inc-3", "response", 1, at(2)) is False, "same tx"
    fired = read(graph, lambda tx: sla_nodes.select_fired(tx, ["inc-1", "inc-2", "inc-9"]))
    assert fired == {
        "inc-1": frozenset({("resolution", 1), ("resolution", 2), ("response", 1)}),
        "inc-2": frozenset({("resolution", 1)}),
    }
    first = _count(
        graph,
        "MATCH (e:SlaEscalation {ticket_id: 'inc-1', clock: 'resolution', level: 1}) "
        "RETURN e.fired_at",
    )
    assert first == to_us(at(10)), "the first claim's time stays"
    with pytest.raises(ValueError, match="naive"):
        write(
            graph,
            lambda tx: sla_nodes.claim_level(tx, "inc-4", "response", 1, dt.datetime(2024, 1, 1)),
        )


def test_clock_worklog_reads_the_steps_the_clocks_need(graph: Neo4jGraphStore) -> None:
    entries = [
        # seq, ticket, minutes, kind, field, old, new
        (1, "inc-1", 0, "created", None, None, None),
        (2, "inc-1", 1, "transition", "status", "new", "assigned"),
        (3, "inc-2", 1, "comment", None, None, None),
        (4, "inc-1", 2, "changed", "pending_reason", None, "customer"),
        (5, "inc-1", 2, "changed", "priority", "3", "2"),
        (6, "inc-2", 3, "transition", "status", "new", "pending"),
        (10, "inc-1", 1.5, "transition", "status", "assigned", "pending"),
        (7, "inc-3", 5, "transition", "status", "new", "assigned"),
    ]
    _given(
        graph,
        "UNWIND $rows AS row CREATE (:WorklogEntry {seq: row.seq, ticket_id: row.ticket_id, "
        "at: row.at, actor: 'alice', kind: row.kind, text: 'x', field: row.field, "
        "old_value: row.old, new_value: row.new})",
        rows=[
            {
                "seq": s,
                "ticket_id": t,
                "at": to_us(at(m)),
                "kind": k,
                "field": f,
                "old": o,
                "new": n,
            }
            for s, t, m, k, f, o, n in entries
        ],
    )
    got = read(
        graph,
        lambda tx: sla_nodes.clock_worklog(tx, ["inc-1", "inc-2", "inc-1", "inc-9"], batch_size=1),
    )
    assert {t: [e.seq for e in es] for t, es in got.items()} == {"inc-1": [2, 4, 10], "inc-2": [6]}
    (step, reason, later) = got["inc-1"]
    assert (step.kind, step.field, step.old, step.new) == (
        WorklogKind.TRANSITION,
        "status",
        "new",
        "assigned",
    )
    assert (step.at, step.actor, step.text) == (at(1), "", ""), "as SQLite reads them"
    assert (reason.kind, reason.old, reason.new) == (WorklogKind.CHANGED, None, "customer")
    assert later.at == at(1.5)


def test_sla_due_most_overdue_first(graph: Neo4jGraphStore) -> None:
    save_sla(
        graph,
        [
            record("inc-5", next_check_at=at(5)),
            record("inc-3", next_check_at=at(3)),
            record("inc-4", next_check_at=at(3)),  # same instant: by ticket id
            record("inc-1", next_check_at=at(10)),
            record("inc-9", next_check_at=None),  # nothing left to check
        ],
        [],
    )

    def due(minutes: float, limit: int = 100) -> list[str]:
        return read(graph, lambda tx: sla_nodes.sla_due(tx, to_us(at(minutes)), limit))

    assert due(2) == []
    assert due(3) == ["inc-3", "inc-4"], "inclusive"
    assert due(9) == ["inc-3", "inc-4", "inc-5"]
    assert due(100) == ["inc-3", "inc-4", "inc-5", "inc-1"]
    assert due(100, limit=2) == ["inc-3", "inc-4"]


def test_sla_stale_the_active_tickets_evaluated_under_another_configuration(
    graph: Neo4jGraphStore,
) -> None:
    incidents(
        graph,
        ("inc-1", 1, "new"),  # clocks under v1
        ("inc-2", 2, "assigned"),  # no policy under v1
        ("inc-3", 3, "in_progress"),  # clocks under v0
        ("inc-4", 4, "pending"),  # never evaluated
        ("inc-5", 5, "resolved"),  # inactive, whatever its clocks
        ("inc-6", 6, "closed"),
        ("inc-7", 7, "new"),  # no policy under v0
        ("inc-12", 12, "new"),  # clocks under v0: in number order, after inc-7
    )
    save_sla(graph, [record("inc-1"), record("inc-5", config="v0")], ["inc-2"], config="v1")
    save_sla(graph, [record("inc-3", config="v0"), record("inc-12", config="v0")], [])
    save_sla(graph, [], ["inc-7", "inc-6"], config="v0")

    def stale(config: str, limit: int = 100) -> list[str]:
        return read(graph, lambda tx: sla_nodes.sla_stale(tx, config, limit))

    assert stale("v1") == ["inc-3", "inc-4", "inc-7", "inc-12"]
    assert stale("v1", limit=2) == ["inc-3", "inc-4"]
    assert stale("v0") == ["inc-1", "inc-2", "inc-4"]
    assert stale("") == ["inc-1", "inc-2", "inc-3", "inc-7", "inc-12"], "never: ''"


# -- plans -----------------------------------------------------------------------------


def _operators(plan: dict[str, Any]) -> list[str]:
    details = plan.get("args", {}).get("Details", "")
    found = [f"{plan['operatorType'].split('@')[0]} {details}"]
    for child in plan.get("children", []):
        found.extend(_operators(child))
    return found


# the queries that stop at a limit: read in index order, never sorted whole
_PAGED = (
    change_cypher.FIND_CHANGES,
    change_cypher.DUMP_CHANGES,
    change_cypher.LAST_CHANGE_NUMBER,
    change_cypher.SLA_DUE,
)


@pytest.mark.parametrize(
    ("statement", "params", "reads"),
    [
        pytest.param(
            change_cypher.CHANGES_TOUCHING,
            {"start_us": 0, "end_us": 1},
            ["Change(status)", "Change(planned_end)", "Change(actual_end)"],
            id="changes-touching",
        ),
        pytest.param(
            change_cypher.FIND_CHANGES,
            {"status": "draft", "assignee": "bob", "ci_ids": ["ci-a"], "limit": 10},
            ["Change(number)"],
            id="find-changes",
        ),
        pytest.param(
            change_cypher.DUMP_CHANGES,
            {"after_number": 0, "limit": 10},
            ["Change(number)"],
            id="dump-changes",
        ),
        pytest.param(
            change_cypher.FREEZE_WINDOWS,
            {"start_us": 0, "end_us": 1},
            ["FreezeWindow(ends_at)"],
            id="freeze-windows",
        ),
        pytest.param(
            change_cypher.SLA_DUE,
            {"now_us": 0, "limit": 10},
            ["SlaRecord(next_check_at)"],
            id="sla-due",
        ),
        pytest.param(change_cypher.LAST_CHANGE_NUMBER, {}, ["Change(number)"], id="last-number"),
        pytest.param(
            change_cypher.LOAD_FIRED,
            {"ids": ["inc-1"]},
            ["SlaEscalation(ticket_id)"],
            id="fired",
        ),
    ],
)
def test_queries_read_their_indexes(
    graph: Neo4jGraphStore, statement: Any, params: dict[str, Any], reads: list[str]
) -> None:
    """As SQLite's ``change_request_*`` and ``ticket_sla_next`` indexes serve them: each
    way in through an index, never every node of the label, and in index order where the
    query pages (no sort of every match before the limit)."""
    save(graph, *(make_change(n, ["ci-a"], planned_end=at(n)) for n in range(1, 20)))

    def work(tx: Tx) -> list[str]:
        summary = tx.run("EXPLAIN " + statement.text, params).consume()
        assert summary.plan is not None
        return _operators(summary.plan)

    operators = read(graph, work)
    for index in reads:
        assert any(index in o and "Index" in o for o in operators), (index, operators)
    assert not any(o.startswith("NodeByLabelScan") for o in operators), operators
    if statement in _PAGED:
        assert not any(o.startswith(("Sort ", "Top ")) for o in operators), operators


# -- the same answers as SQLite's -------------------------------------------------------


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[SqliteGraphStore]:
    file = SqliteGraphStore(tmp_path / "servicegraph.sqlite3", lock_timeout=10)
    file.migrate()
    try:
        yield file
    finally:
        file.close()


def _random_change(rnd: random.Random, number: int) -> Change:
    def moment() -> dt.datetime | None:
        return None if rnd.random() < 0.3 else at(rnd.choice(range(0, 100, 5)))

    start, end = moment(), moment()
    return make_change(
        number,
        rnd.sample(["ci-a", "ci-b", "ci-c", "ci-d"], rnd.randint(0, 3)),
        status=rnd.choice(list(ChangeStatus)),
        assignee=rnd.choice([None, "bob", "carol"]),
        planned_start=start,
        planned_end=end,
        actual_start=moment(),
        actual_end=moment(),
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_changes_and_freeze_windows_answer_as_sqlite(
    graph: Neo4jGraphStore, sqlite_file: SqliteGraphStore, seed: int
) -> None:
    rnd = random.Random(seed)
    changes = [_random_change(rnd, n) for n in rnd.sample(range(1, 200), 40)]
    windows = []
    for key in range(15):
        start = rnd.choice(range(0, 100, 5))
        windows.append(make_freeze(f"{key:02}", start, start + rnd.choice([5, 10, 30])))
    with sqlite_file._transaction() as conn:
        for change in changes:
            change_rows.save_change(conn, change)
        conn.executemany(change_rows.SAVE_FREEZE, [change_rows.freeze_row(w) for w in windows])
    save(graph, *changes)
    write(graph, lambda tx: change_nodes.save_freeze_windows(tx, windows))
    sqlite = SqliteTicketStore(sqlite_file)
    periods: list[tuple[int | None, int | None]] = [(None, None)]
    for _ in range(25):
        low, high = sorted(rnd.sample(range(-5, 110, 5), 2))
        periods.extend([(low, high), (low, None), (None, high)])
    for a, b in periods:
        since, until = None if a is None else at(a), None if b is None else at(b)
        frozen = call(graph, change_nodes.freeze_windows, opt_us(since), opt_us(until))
        assert frozen == sqlite.freeze_windows(since, until), (a, b)
        if since is not None and until is not None:
            touching = call(graph, change_nodes.changes_touching, to_us(since), to_us(until))
            assert touching == sqlite.changes_touching(since, until), (a, b)
    for _ in range(40):
        query = ChangeFilter(
            status=rnd.choice([None, *ChangeStatus]),
            ci_ids=rnd.choice([None, (), ("ci-a",), ("ci-b", "ci-d"), ("ci-z",)]),
            assignee=rnd.choice([None, "bob", "carol", "nobody"]),
            limit=rnd.choice([1, 3, 100]),
        )
        assert call(graph, change_nodes.find_changes, query) == sqlite.find_changes(query), query
    ids = [c.id for c in rnd.sample(changes, 10)] + ["chg-none"]
    assert by_id(graph, *ids) == sqlite.get_changes(ids)


def _random_record(rnd: random.Random, ticket_id: str, config: str) -> SlaRecord:
    def stopped() -> dt.datetime | None:
        return None if rnd.random() < 0.6 else at(rnd.randint(0, 50))

    return record(
        ticket_id,
        response=clock(
            ClockKind.RESPONSE, H, rnd.randint(0, 5000) * dt.timedelta(seconds=1.5),
            due=at(rnd.randint(0, 90)), stopped_at=stopped(),
        ),
        resolution=clock(
            ClockKind.RESOLUTION, 4 * H, dt.timedelta(seconds=rnd.randint(0, 9000)),
            due=at(rnd.randint(0, 90)), stopped_at=stopped(),
        ),
        next_check_at=rnd.choice([None, at(rnd.randint(0, 20))]),
        config=config,
    )  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2])
def test_sla_records_answer_as_sqlite(
    graph: Neo4jGraphStore, sqlite_file: SqliteGraphStore, seed: int
) -> None:
    """Random rounds of save_sla (records, drops, fresh tickets, configurations): the
    records, the due times on the incidents, the marks, sla_due and sla_stale agree."""
    rnd = random.Random(seed)
    statuses = [*TicketStatus]
    tickets = [
        make_incident(n, n, status=rnd.choice(statuses)) for n in rnd.sample(range(1, 100), 20)
    ]
    ids = [t.id for t in tickets]
    sqlite = SqliteTicketStore(sqlite_file)
    with sqlite.unit() as unit:
        unit.save_incidents(tickets)
    incidents(graph, *((t.id, t.number, t.status.value) for t in tickets))
    configs = ["v1", "v2", "v3"]
    for _ in range(8):
        config = rnd.choice(configs)
        chosen = rnd.sample(ids, 8)
        records = [_random_record(rnd, i, config) for i in chosen[:5]]
        drop = chosen[5:]
        fresh = set(rnd.sample(chosen, 3))
        with sqlite_file._transaction() as conn:
            sla_rows.save_sla(conn, records, drop, fresh, config)
        save_sla(graph, records, drop, fresh=fresh, config=config)
        assert load_sla(graph, *ids) == sqlite.sla_of(ids)
        with sqlite_file._transaction() as conn:
            marks = dict(conn.execute("SELECT ticket_id, config FROM ticket_sla_none"))
        assert nones(graph) == marks
        expected_due = {i: opt_us(t.sla_due_at) for i, t in sqlite.get_incidents(ids).items()}
        assert due_at(graph) == expected_due
        for minutes, limit in ((0, 100), (10, 3), (20, 100)):
            due = call(graph, sla_nodes.sla_due, to_us(at(minutes)), limit)
            assert due == sqlite.sla_due(at(minutes), limit)
        for config_now, limit in (("v1", 100), ("v2", 4), ("", 100)):
            stale = call(graph, sla_nodes.sla_stale, config_now, limit)
            assert stale == sqlite.sla_stale(config_now, limit)
