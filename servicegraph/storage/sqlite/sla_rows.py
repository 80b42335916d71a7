"""The ``ticket_sla`` and ``sla_escalation`` tables (migration 12): each ticket's clocks as
last evaluated (``ticketing.sla_projection.SlaRecord``) and the escalation levels fired.

``incident.sla_due_at`` mirrors ``SlaRecord.due_at`` so that a queue ordered by due time
reads one index of the incident table (``incident_due_queue``, ``incident_group_due_queue``).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Container, Iterable, Sequence
from typing import Any

from servicegraph.storage.sqlite.file import from_us, to_us
from servicegraph.storage.sqlite.incident_rows import dumps, opt_dt, opt_us
from servicegraph.ticketing.model import WorklogEntry, WorklogKind
from servicegraph.ticketing.sla import Clock, ClockKind, ClockState
from servicegraph.ticketing.sla_projection import Fired, SlaRecord

IN = "(SELECT value FROM json_each(?))"
_CLOCK = ("target_s", "elapsed_s", "due_at", "state", "paused", "stopped_at", "breached_at")
SLA_COLUMNS = ", ".join(
    ["ticket_id", "policy", "calendar", "priority"]
    + [f"{kind}_{c}" for kind in ("response", "resolution") for c in _CLOCK]
    + ["next_check_at", "evaluated_at", "config"]
)
_SAVE = (
    f"INSERT OR REPLACE INTO ticket_sla ({SLA_COLUMNS}) "
    f"VALUES ({', '.join('?' for _ in SLA_COLUMNS.split(','))})"
)


def _clock_row(c: Clock) -> tuple[Any, ...]:
    return (
        c.target.total_seconds(),
        c.elapsed.total_seconds(),
        to_us(c.due),
        c.state.value,
        int(c.paused),
        opt_us(c.stopped_at),
        opt_us(c.breached_at),
    )


def _clock(kind: ClockKind, r: Sequence[Any]) -> Clock:
    target, elapsed = dt.timedelta(seconds=r[0]), dt.timedelta(seconds=r[1])
    return Clock(
        kind=kind,
        target=target,
        due=from_us(r[2]),
        elapsed=elapsed,
        remaining=max(target - elapsed, dt.timedelta(0)),
        paused=bool(r[4]),
        state=ClockState(r[3]),
        breached_at=opt_dt(r[6]),
        stopped_at=opt_dt(r[5]),
    )


def sla_row(r: SlaRecord) -> tuple[Any, ...]:
    return (
        r.ticket_id,
        r.policy,
        r.calendar,
        r.priority,
        *_clock_row(r.response),
        *_clock_row(r.resolution),
        opt_us(r.next_check_at),
        to_us(r.evaluated_at),
        r.config,
    )


def to_sla(r: Sequence[Any]) -> SlaRecord:
    n = len(_CLOCK)
    return SlaRecord(
        ticket_id=r[0],
        policy=r[1],
        calendar=r[2],
        priority=r[3],
        response=_clock(ClockKind.RESPONSE, r[4 : 4 + n]),
        resolution=_clock(ClockKind.RESOLUTION, r[4 + n : 4 + 2 * n]),
        next_check_at=opt_dt(r[4 + 2 * n]),
        evaluated_at=from_us(r[5 + 2 * n]),
        config=r[6 + 2 * n],
    )


def select_sla(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, SlaRecord]:
    rows = conn.execute(
        f"SELECT {SLA_COLUMNS} FROM ticket_sla WHERE ticket_id IN {IN}", (dumps(list(ids)),)
    )
    return {r[0]: to_sla(r) for r in rows}


def save_sla(
    conn: sqlite3.Connection,
    records: Sequence[SlaRecord],
    drop: Sequence[str],
    fresh: Container[str] = (),
    config: str = "",
) -> None:
    """Keep ``records`` (and each ticket's due time in ``incident.sla_due_at``); forget the
    clocks of ``drop``, tickets no policy covers under ``config`` (kept as such in
    ``ticket_sla_none``, so that they are not evaluated again until it changes).
    ``fresh``: tickets inserted in this transaction, whose due time is still NULL (an
    imported history is mostly closed tickets: no due time, nothing to update)."""
    if records:
        conn.executemany(_SAVE, [sla_row(r) for r in records])
        conn.executemany(
            "UPDATE incident SET sla_due_at = ? WHERE id = ?",
            [
                (opt_us(r.due_at), r.ticket_id)
                for r in records
                if r.due_at is not None or r.ticket_id not in fresh
            ],
        )
    if records:
        conn.execute(
            f"DELETE FROM ticket_sla_none WHERE ticket_id IN {IN}",
            (dumps([r.ticket_id for r in records]),),
        )
    if drop:
        conn.executemany(
            "INSERT OR REPLACE INTO ticket_sla_none (ticket_id, config) VALUES (?, ?)",
            [(ticket_id, config) for ticket_id in drop],
        )
        ids = dumps(list(drop))
        conn.execute(f"DELETE FROM ticket_sla WHERE ticket_id IN {IN}", (ids,))
        conn.execute(f"UPDATE incident SET sla_due_at = NULL WHERE id IN {IN}", (ids,))


def select_fired(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, Fired]:
    found: dict[str, set[tuple[str, int]]] = {}
    for ticket_id, clock, level in conn.execute(
        f"SELECT ticket_id, clock, level FROM sla_escalation WHERE ticket_id IN {IN}",
        (dumps(list(ids)),),
    ):
        found.setdefault(ticket_id, set()).add((clock, level))
    return {k: frozenset(v) for k, v in found.items()}


def claim_level(
    conn: sqlite3.Connection, ticket_id: str, clock: str, level: int, at: dt.datetime
) -> bool:
    """Record the level as fired; False when it already was (by this job or another)."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO sla_escalation (ticket_id, clock, level, fired_at) "
        "VALUES (?, ?, ?, ?)",
        (ticket_id, clock, level, to_us(at)),
    )
    return cur.rowcount == 1


def clock_worklog(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, list[WorklogEntry]]:
    """The entries the clocks read (status steps and pending reasons), in ``seq`` order."""
    result: dict[str, list[WorklogEntry]] = {}
    for seq, ticket_id, at, kind, field, old, new in conn.execute(
        "SELECT seq, ticket_id, at, kind, field, old_value, new_value FROM worklog "
        f"WHERE ticket_id IN {IN} AND (kind = 'transition' OR field = 'pending_reason') "
        "ORDER BY seq",
        (dumps(list(ids)),),
    ):
        result.setdefault(ticket_id, []).append(
            WorklogEntry(
                ticket_id=ticket_id,
                at=from_us(at),
                actor="",
                kind=WorklogKind(kind),
                seq=seq,
                field=field,
                old=old,
                new=new,
            )
        )
    return result
