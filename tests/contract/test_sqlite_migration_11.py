"""Migration 11 (routing's priority bounds on the ticket) on a store written by the release
before it: a file at schema version 10, built here by that release's migrations, whose
tickets carry the overrides its routing wrote when a rule's bound moved a priority
(``priority_set_by`` "routing", the bounds in words in the reason). Opened and migrated by
today's ``SqliteGraphStore``, each becomes the bounds its reason names, without the
override; an agent's override and a catalogue default stay as they were; the SQL reads
every text routing writes as ``tickets_routing.legacy_bounds`` does."""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.storage.sqlite import SqliteGraphStore
from servicegraph.storage.sqlite.migrations import MIGRATIONS
from servicegraph.storage.sqlite.tickets import SqliteTicketStore
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Incident
from servicegraph.ticketing.routing import RoutingDecision, RoutingRules
from servicegraph.ticketing.tickets_routing import apply_bounds, legacy_bounds

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
US = int(T0.timestamp()) * 1_000_000

# the incident columns of schema 10 a row needs (the others have defaults or are nullable)
V10_COLUMNS = (
    "id, number, title, status, opened_at, updated_at, last_alert_at, priority, impact, "
    "urgency, root_inferred, root_confidence, business_services, flapping, reopen_count, "
    "alert_count, channel, priority_reason, priority_set_by"
)
# id -> (priority, reason, set_by) as the release before wrote them, and what they become:
# (priority, reason, set_by, floor, ceiling)
Row = tuple[int, str | None, str | None]
Expected = tuple[int, str | None, str | None, int | None, int | None]
CASES: dict[str, tuple[Row, Expected]] = {
    "inc-1": (
        (2, "routing rule 'vpn': at least as urgent as P2 (P5 -> P2)", "routing"),
        (2, None, None, 2, None),
    ),
    "inc-2": (
        (3, "routing rule 'lab': at most as urgent as P3 (P1 -> P3)", "routing"),
        (3, None, None, None, 3),
    ),
    "inc-3": (  # two rules whose bounds disagreed: the floor won, and still does
        (
            2,
            "routing rule 'lab', 'vpn': at least as urgent as P2 and at most as urgent as P4 "
            "(P5 -> P2)",
            "routing",
        ),
        (2, None, None, 2, 2),
    ),
    "inc-4": (
        (
            3,
            "routing rule 'a', 'b': at least as urgent as P3 and at most as urgent as P2 "
            "(P5 -> P3)",
            "routing",
        ),
        (3, None, None, 3, 2),
    ),
    "inc-5": ((1, "the CEO's laptop", "frank"), (1, "the CEO's laptop", "frank", None, None)),
    "inc-6": (
        (1, "the catalogue's default priority for service 'payroll'", "catalogue"),
        (1, "the catalogue's default priority for service 'payroll'", "catalogue", None, None),
    ),
    "inc-7": ((4, None, None), (4, None, None, None, None)),
    "inc-8": ((3, "routing: P9 wanted", "routing"), (3, None, None, None, None)),
    "inc-9": (  # an agent's words that read like a bound are an agent's
        (1, "at least as urgent as P1: the board", "frank"),
        (1, "at least as urgent as P1: the board", "frank", None, None),
    ),
}


def build_version_10(path: Path, rows: dict[str, Row]) -> None:
    conn = sqlite3.connect(path)
    try:
        for script in MIGRATIONS[:10]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 10")
        marks = ", ".join("?" for _ in V10_COLUMNS.split(","))
        conn.executemany(
            f"INSERT INTO incident ({V10_COLUMNS}) VALUES ({marks})",
            [
                (ticket_id, n, f"ticket {n}", "new", US, US, US, priority, "low", "low",
                 0, 0.0, "[]", 0, 0, 0, "phone", reason, set_by)
                for n, (ticket_id, (priority, reason, set_by)) in enumerate(rows.items(), 1)
            ],
        )  # fmt: skip
        conn.commit()
    finally:
        conn.close()


def migrated(path: Path, rows: dict[str, Row]) -> dict[str, Incident]:
    build_version_10(path, rows)
    file = SqliteGraphStore(path, lock_timeout=10)
    try:
        file.migrate()
        return SqliteTicketStore(file).get_incidents(list(rows))
    finally:
        file.close()


@pytest.fixture
def found(tmp_path: Path) -> Iterator[dict[str, Incident]]:
    yield migrated(tmp_path / "servicegraph.sqlite3", {k: row for k, (row, _) in CASES.items()})


@pytest.mark.parametrize("ticket_id", list(CASES))
def test_a_routing_override_becomes_the_bounds_it_names(
    found: dict[str, Incident], ticket_id: str
) -> None:
    t = found[ticket_id]
    got = (t.priority, t.priority_reason, t.priority_set_by, t.priority_floor, t.priority_ceiling)
    assert got == CASES[ticket_id][1]
    assert t.status is TicketStatus.NEW and t.title.startswith("ticket ")


def test_the_store_is_at_the_current_version_and_a_second_open_changes_nothing(
    tmp_path: Path, found: dict[str, Incident]
) -> None:
    path = tmp_path / "servicegraph.sqlite3"
    file = SqliteGraphStore(path, lock_timeout=10)
    try:
        file.migrate()
        file.ping()
        assert SqliteTicketStore(file).get_incidents(list(CASES)) == found
    finally:
        file.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        conn.close()


def test_the_sql_reads_every_text_routing_writes_as_legacy_bounds_does(tmp_path: Path) -> None:
    """Every bound pair a decision can carry, moving a P1 and a P5: the words the ROUTED
    entry still writes (and the older release wrote as the override's reason)."""
    rules = RoutingRules.build([{"name": "r", "then": {"priority_floor": 2}}])
    rows: dict[str, Row] = {}
    bounds = [None, 1, 2, 3, 4, 5]
    for n, (floor, ceiling, before) in enumerate(itertools.product(bounds, bounds, (1, 5))):
        t = Incident(f"inc-{n}", n, "t", TicketStatus.NEW, T0, T0, T0, priority=before)
        note = apply_bounds(t, RoutingDecision("g", "r", floor, ceiling, matched=("r",)), rules)
        if note is not None:
            rows[t.id] = (t.priority, note, "routing")
    assert len(rows) > 40
    for ticket_id, t in migrated(tmp_path / "all.sqlite3", rows).items():
        reason = rows[ticket_id][1]
        assert (t.priority_floor, t.priority_ceiling) == legacy_bounds(reason), reason
        assert (t.priority_reason, t.priority, t.bounded(t.priority)) == (
            None, rows[ticket_id][0], rows[ticket_id][0],
        ), "the priority it had, within its bounds"  # fmt: skip
