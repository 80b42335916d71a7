"""Rows of change management in SQLite: ``change_request`` with its CIs (``change_ci``)
and ``freeze_window``. A change's approvals, tasks and accepted conflicts are JSON lists
on its row (migration 13): they are read and written with the change, never alone."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from servicegraph.storage.sqlite.file import from_us, to_us
from servicegraph.storage.sqlite.incident_rows import dumps, opt_dt, opt_us
from servicegraph.ticketing.change_model import (
    ApprovalDecision,
    Change,
    ChangeApproval,
    ChangeRisk,
    ChangeStatus,
    ChangeTask,
    ChangeType,
    ConflictOverride,
    FreezeWindow,
    TaskStatus,
)

IN = "(SELECT value FROM json_each(?))"

CHANGE_COLUMNS = (
    "id, number, title, description, status, risk, planned_start, planned_end, created_at, "
    "created_by, updated_at, "
    # migration 13
    "change_type, template, assignee, risk_reasons, risk_assessed_at, approvals_required, "
    "approvals, tasks, conflict_overrides, implementation_plan, backout_plan, actual_start, "
    "actual_end, close_code, close_notes"
)
SAVE_CHANGE = (
    f"INSERT OR REPLACE INTO change_request ({CHANGE_COLUMNS}) "
    f"VALUES ({', '.join('?' for _ in CHANGE_COLUMNS.split(','))})"
)

FREEZE_COLUMNS = "id, name, starts_at, ends_at, reason, ci_ids, created_at, created_by"
SAVE_FREEZE = (
    f"INSERT OR REPLACE INTO freeze_window ({FREEZE_COLUMNS}) "
    f"VALUES ({', '.join('?' for _ in FREEZE_COLUMNS.split(','))})"
)


def change_row(c: Change) -> tuple[Any, ...]:
    return (
        c.id,
        c.number,
        c.title,
        c.description,
        c.status.value,
        c.risk.value,
        opt_us(c.planned_start),
        opt_us(c.planned_end),
        to_us(c.created_at),
        c.created_by,
        to_us(c.updated_at),
        c.change_type.value,
        c.template,
        c.assignee,
        dumps(c.risk_reasons),
        opt_us(c.risk_assessed_at),
        c.approvals_required,
        dumps([[a.approver, a.decision.value, to_us(a.at), a.comment] for a in c.approvals]),
        dumps(
            [
                [t.number, t.title, t.assignee, t.status.value, opt_us(t.done_at), t.done_by]
                for t in c.tasks
            ]
        ),
        dumps([[o.other, o.reason, o.by, to_us(o.at)] for o in c.conflict_overrides]),
        c.implementation_plan,
        c.backout_plan,
        opt_us(c.actual_start),
        opt_us(c.actual_end),
        c.close_code,
        c.close_notes,
    )


def change_of(r: tuple[Any, ...], ci_ids: list[str]) -> Change:
    return Change(
        id=r[0],
        number=r[1],
        title=r[2],
        description=r[3],
        status=ChangeStatus(r[4]),
        risk=ChangeRisk(r[5]),
        planned_start=opt_dt(r[6]),
        planned_end=opt_dt(r[7]),
        created_at=from_us(r[8]),
        created_by=r[9],
        updated_at=from_us(r[10]),
        ci_ids=ci_ids,
        change_type=ChangeType(r[11]),
        template=r[12],
        assignee=r[13],
        risk_reasons=json.loads(r[14]),
        risk_assessed_at=opt_dt(r[15]),
        approvals_required=r[16],
        approvals=[
            ChangeApproval(approver, ApprovalDecision(decision), from_us(at), comment)
            for approver, decision, at, comment in json.loads(r[17])
        ],
        tasks=[
            ChangeTask(number, title, assignee, TaskStatus(status), opt_dt(done_at), done_by)
            for number, title, assignee, status, done_at, done_by in json.loads(r[18])
        ],
        conflict_overrides=[
            ConflictOverride(other, reason, by, from_us(at))
            for other, reason, by, at in json.loads(r[19])
        ],
        implementation_plan=r[20],
        backout_plan=r[21],
        actual_start=opt_dt(r[22]),
        actual_end=opt_dt(r[23]),
        close_code=r[24],
        close_notes=r[25],
    )


def save_change(conn: sqlite3.Connection, change: Change) -> None:
    conn.execute(SAVE_CHANGE, change_row(change))
    conn.execute("DELETE FROM change_ci WHERE change_id = ?", (change.id,))
    conn.executemany(
        "INSERT INTO change_ci (change_id, ci_id, position) VALUES (?, ?, ?)",
        [(change.id, ci_id, n) for n, ci_id in enumerate(change.ci_ids)],
    )


def select_changes(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Change]:
    """The changes ``sql`` selects (it must select ``CHANGE_COLUMNS``), with their CIs."""
    rows = conn.execute(sql, params).fetchall()
    cis: dict[str, list[str]] = {}
    for change_id, ci_id in conn.execute(
        f"SELECT change_id, ci_id FROM change_ci WHERE change_id IN {IN} "
        "ORDER BY change_id, position",
        (dumps([r[0] for r in rows]),),
    ):
        cis.setdefault(change_id, []).append(ci_id)
    return [change_of(r, cis.get(r[0], [])) for r in rows]


def changes_by_id(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, Change]:
    found = select_changes(
        conn, f"SELECT {CHANGE_COLUMNS} FROM change_request WHERE id IN {IN}", (dumps(list(ids)),)
    )
    return {c.id: c for c in found}


# A change whose planned window touches [start, end), or whose actual window does (from
# its start to its end, once it has one), or that is implementing whatever its windows
# say (its actual window is open while it is), in any status: what conflicts and
# correlation look at. One indexed lookup per way (status, change_request_window,
# change_request_ended) instead of an OR, which SQLite answers by scanning every change.
_TOUCHING = (
    f"SELECT {CHANGE_COLUMNS} FROM change_request WHERE id IN ("
    "SELECT id FROM change_request WHERE status = 'implementing' "
    "UNION SELECT id FROM change_request WHERE planned_end > ? AND planned_start < ? "
    "UNION SELECT id FROM change_request WHERE actual_end > ? AND actual_start < ?"
    ") ORDER BY number"
)


def changes_touching(conn: sqlite3.Connection, start_us: int, end_us: int) -> list[Change]:
    """Changes planned or carried out within ``[start, end)`` (microseconds), and every
    change implementing now, ended ones included (the caller filters by status)."""
    return select_changes(conn, _TOUCHING, (start_us, end_us, start_us, end_us))


def freeze_row(w: FreezeWindow) -> tuple[Any, ...]:
    return (
        w.id,
        w.name,
        to_us(w.starts_at),
        to_us(w.ends_at),
        w.reason,
        dumps(list(w.ci_ids)),
        to_us(w.created_at),
        w.created_by,
    )


def freeze_of(r: tuple[Any, ...]) -> FreezeWindow:
    return FreezeWindow(
        id=r[0],
        name=r[1],
        starts_at=from_us(r[2]),
        ends_at=from_us(r[3]),
        reason=r[4],
        ci_ids=tuple(json.loads(r[5])),
        created_at=from_us(r[6]),
        created_by=r[7],
    )


def freeze_windows(
    conn: sqlite3.Connection, start_us: int | None, end_us: int | None
) -> list[FreezeWindow]:
    """Freeze windows overlapping ``[start, end)`` (either end open: unbounded)."""
    rows = conn.execute(
        f"SELECT {FREEZE_COLUMNS} FROM freeze_window WHERE ends_at > ? AND starts_at < ? "
        "ORDER BY starts_at, id",
        (start_us if start_us is not None else -(2**62), end_us if end_us is not None else 2**62),
    )
    return [freeze_of(r) for r in rows]
