"""Migration 13 (change and problem management) on a store written by the release before
it: a file at schema version 12, built here by that release's migrations, with changes in
each of its statuses, problems and an alert. Opened and migrated by today's
``SqliteGraphStore``, a change's status maps onto the new lifecycle (planned -> draft,
approved -> scheduled, in_progress -> implementing, completed -> closed with close code
"successful"; failed and cancelled stay), every new column of changes, problems and
alerts reads as its default, and the new indexes and the freeze window table exist."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from servicegraph.storage.sqlite import SqliteGraphStore, change_rows
from servicegraph.storage.sqlite.migrations import MIGRATIONS
from servicegraph.storage.sqlite.tickets import SqliteTicketStore
from servicegraph.ticketing.change_model import ChangeType
from servicegraph.ticketing.model import (
    Change,
    ChangeRisk,
    ChangeStatus,
    Problem,
    ProblemStatus,
)
from servicegraph.ticketing.ports import ChangeFilter

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def us(minutes: int) -> int:
    return int(T0.timestamp()) * 1_000_000 + minutes * 60_000_000


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


# the change_request, problem and alert columns of schema 12 (migrations 2, 4 and 7)
V12_CHANGE = (
    "id, number, title, description, status, risk, planned_start, planned_end, created_at, "
    "created_by, updated_at"
)
V12_PROBLEM = (
    "id, number, title, status, created_at, updated_at, root_ci_id, reason, signature, "
    "known_error, workaround"
)
V12_ALERT = (
    "fingerprint, source, name, severity, status, labels, summary, first_seen, last_seen, "
    "last_change, count, ci_id, incident_id, cleared_at, flapping, transitions, reported_at"
)
# the status a change of schema 12 had, and what it reads as now: (status, close code)
STATUSES: dict[str, tuple[ChangeStatus, str | None]] = {
    "planned": (ChangeStatus.DRAFT, None),
    "approved": (ChangeStatus.SCHEDULED, None),
    "in_progress": (ChangeStatus.IMPLEMENTING, None),
    "completed": (ChangeStatus.CLOSED, "successful"),
    "failed": (ChangeStatus.FAILED, None),
    "cancelled": (ChangeStatus.CANCELLED, None),
}
OLD_CHANGES = [
    (f"chg-{n}", n, f"change {n}", f"about {old}", old, ("low", "medium", "high")[n % 3],
     us(60 * n), us(60 * n + 30), us(n), "alice", us(n + 1))
    for n, old in enumerate(STATUSES, 1)
]  # fmt: skip
OLD_PROBLEMS = [
    ("prb-1", 1, "PSUs fail", "open", us(0), us(1), "ci-a", "recurrence", "ci:ci-a", None, None),
    ("prb-2", 2, "disk full", "known_error", us(2), us(3), None, "manual", "alert:z/DiskFull",
     "logs not rotated", "rotate by hand"),
    ("prb-3", 3, "old", "resolved", us(4), us(5), "ci-b", "recurrence", "ci:ci-b", None, None),
]  # fmt: skip
OLD_ALERT = (
    "fp-1", "zabbix", "DiskFull", 4, "firing", '{"ci_id": "ci-a"}', "full", us(0), us(1),
    us(0), 2, "ci-a", None, None, 0, "[]", None,
)  # fmt: skip
NEW_INDEXES = {
    "change_request_status",
    "change_request_window",
    "change_request_ended",
    "problem_status",
    "problem_fixing_change",
    "freeze_window_period",
    "alert_change",
}


def build_version_12(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        for script in MIGRATIONS[:12]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 12")

        def insert(table: str, columns: str, rows: Sequence[tuple[Any, ...]]) -> None:
            marks = ", ".join("?" for _ in columns.split(","))
            conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)

        insert("change_request", V12_CHANGE, OLD_CHANGES)
        insert(
            "change_ci",
            "change_id, ci_id, position",
            [("chg-1", "ci-b", 0), ("chg-1", "ci-a", 1), ("chg-4", "ci-c", 0)],
        )
        insert("problem", V12_PROBLEM, OLD_PROBLEMS)
        insert("alert", V12_ALERT, [OLD_ALERT])
        conn.commit()
    finally:
        conn.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "servicegraph.sqlite3"
    build_version_12(path)
    return path


@pytest.fixture
def tickets(path: Path) -> Iterator[SqliteTicketStore]:
    file = SqliteGraphStore(path, lock_timeout=10)
    try:
        file.migrate()
        yield SqliteTicketStore(file)
    finally:
        file.close()


def expected_change(row: tuple[object, ...]) -> Change:
    """A schema-12 change as it reads after migration 13: the new fields at their
    defaults (a normal change, nothing approved, no tasks, plans or actual times)."""
    number = row[1]
    assert isinstance(number, int)
    status, close_code = STATUSES[str(row[4])]
    return Change(
        id=f"chg-{number}",
        number=number,
        title=f"change {number}",
        description=str(row[3]),
        status=status,
        risk=ChangeRisk(str(row[5])),
        planned_start=at(60 * number),
        planned_end=at(60 * number + 30),
        created_at=at(number),
        created_by="alice",
        updated_at=at(number + 1),
        ci_ids={1: ["ci-b", "ci-a"], 4: ["ci-c"]}.get(number, []),
        close_code=close_code,
    )


@pytest.mark.parametrize("row", OLD_CHANGES, ids=[str(r[4]) for r in OLD_CHANGES])
def test_a_change_maps_onto_the_new_lifecycle_with_defaults(
    tickets: SqliteTicketStore, row: tuple[object, ...]
) -> None:
    change = tickets.get_changes([str(row[0])])[str(row[0])]
    assert change == expected_change(row)
    assert change.change_type is ChangeType.NORMAL and change.approvals_required == 0
    assert (change.approvals, change.tasks, change.conflict_overrides) == ([], [], [])


def test_only_completed_changes_are_closed_as_successful(tickets: SqliteTicketStore) -> None:
    closed = tickets.find_changes(ChangeFilter(status=ChangeStatus.CLOSED))
    assert [(c.id, c.close_code) for c in closed] == [("chg-4", "successful")]
    everything = tickets.find_changes(ChangeFilter())
    assert {c.status for c in everything} == {s for s, _ in STATUSES.values()}
    # the implementing one is what change-aware correlation sees whatever the period
    assert [c.id for c in tickets.changes_touching(at(-600), at(-500))] == ["chg-3"]


def test_problems_and_alerts_take_the_new_columns_defaults(tickets: SqliteTicketStore) -> None:
    problems = tickets.get_problems(["prb-1", "prb-2", "prb-3"])
    assert problems["prb-2"] == Problem(
        "prb-2", 2, "disk full", ProblemStatus.KNOWN_ERROR, at(2), at(3), None, "manual",
        "alert:z/DiskFull", known_error="logs not rotated", workaround="rotate by hand",
    )  # fmt: skip
    for problem in problems.values():
        assert (problem.assignee, problem.fixing_change_id, problem.resolved_at) == (None,) * 3
        assert (problem.description, problem.root_cause, problem.fix, problem.resolution) == (
            ("",) * 4
        )
    assert [p.id for p in tickets.known_errors_for([], ["alert:z/DiskFull"])] == ["prb-2"]
    assert tickets.problems_fixed_by(["chg-1"]) == []
    with tickets.unit() as unit:
        (alert,) = unit.load_alerts(["fp-1"]).values()
    assert alert.change_id is None and alert.count == 2
    assert tickets.freeze_windows() == []


def test_the_new_indexes_exist_and_a_second_open_changes_nothing(
    path: Path, tickets: SqliteTicketStore
) -> None:
    before = tickets.find_changes(ChangeFilter())
    file = SqliteGraphStore(path, lock_timeout=10)
    try:
        file.migrate()
        assert SqliteTicketStore(file).find_changes(ChangeFilter()) == before
    finally:
        file.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert names >= NEW_INDEXES

        def plan(sql: str, params: Sequence[Any] = ()) -> str:
            return " ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))

        assert "problem_fixing_change" in plan(
            "SELECT id FROM problem WHERE fixing_change_id = 'chg-1'"
        )
        # the changes touching a period: one index per way, never every change read
        touching = plan(change_rows._TOUCHING, (0, 1, 0, 1))
        for index in ("change_request_status", "change_request_window", "change_request_ended"):
            assert index in touching
        assert "SCAN change_request" not in touching
    finally:
        conn.close()
