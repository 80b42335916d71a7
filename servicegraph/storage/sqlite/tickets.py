"""SQLite adapter of the ticketing port (``servicegraph.ticketing.ports``).

Tickets live in the file that holds alerts and incidents (the graph's file, or the
embedded file beside a Neo4j graph) and share its write lock, so a unit of ticket work is
serialised with correlation batches; ``touched`` advances the correlation state version
(see ``sqlite/incidents.py``) so that workers reload the incidents people changed.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from servicegraph.cmdb.errors import StoreError
from servicegraph.events.model import Alert
from servicegraph.storage.sqlite.file import from_us, to_us
from servicegraph.storage.sqlite.incident_rows import (
    ALERT_COLUMNS,
    INCIDENT_COLUMNS,
    PROBLEM_COLUMNS,
    opt_dt,
    opt_us,
    problem_incidents,
    problem_row,
    to_alert,
    to_incident,
    to_problem,
)
from servicegraph.storage.sqlite.store import SqliteGraphStore
from servicegraph.ticketing.model import (
    Change,
    ChangeRisk,
    ChangeStatus,
    Incident,
    Problem,
    WorklogEntry,
    WorklogKind,
)
from servicegraph.ticketing.ports import ChangeFilter, IncidentFilter, ProblemFilter

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_IN = "(SELECT value FROM json_each(?))"
_I_COLUMNS = ", ".join(f"i.{c.strip()}" for c in INCIDENT_COLUMNS.split(","))
_CHANGE_COLUMNS = (
    "id, number, title, description, status, risk, planned_start, planned_end, created_at, "
    "created_by, updated_at"
)
# incidents whose root or an alert is on one of a set of CIs (the parameter, twice)
_INCIDENTS_ON = (
    f"SELECT root_ci_id AS ci, id AS incident_id FROM incident WHERE root_ci_id IN {_IN} "
    f"UNION SELECT ci_id, incident_id FROM alert WHERE ci_id IN {_IN} "
    "AND incident_id IS NOT NULL"
)


def _ids(values: Iterable[str]) -> str:
    return _dumps(list(values))


def _change(r: tuple[Any, ...], ci_ids: list[str]) -> Change:
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
    )


def _load_incidents(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, Incident]:
    rows = conn.execute(f"SELECT {INCIDENT_COLUMNS} FROM incident WHERE id IN {_IN}", (_ids(ids),))
    return {r[0]: to_incident(r) for r in rows}


def _load_problems(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Problem]:
    rows = conn.execute(sql, params).fetchall()
    links = problem_incidents(conn, [r[0] for r in rows])
    return [to_problem(r, links.get(r[0], [])) for r in rows]


def _load_changes(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Change]:
    rows = conn.execute(sql, params).fetchall()
    cis: dict[str, list[str]] = {}
    for change_id, ci_id in conn.execute(
        f"SELECT change_id, ci_id FROM change_ci WHERE change_id IN {_IN} "
        "ORDER BY change_id, position",
        (_ids(r[0] for r in rows),),
    ):
        cis.setdefault(change_id, []).append(ci_id)
    return [_change(r, cis.get(r[0], [])) for r in rows]


class _TicketUnit:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def load_incidents(self, ids: Iterable[str]) -> dict[str, Incident]:
        return _load_incidents(self._conn, ids)

    def update_incidents(self, incidents: Sequence[Incident]) -> None:
        self._conn.executemany(
            "UPDATE incident SET status = ?, resolved_at = ?, updated_at = ?, problem_id = ?, "
            "acknowledged_at = ?, acknowledged_by = ?, assignee = ?, resolved_by = ?, "
            "resolution = ? WHERE id = ?",
            [
                (
                    i.status.value,
                    opt_us(i.resolved_at),
                    to_us(i.updated_at),
                    i.problem_id,
                    opt_us(i.acknowledged_at),
                    i.acknowledged_by,
                    i.assignee,
                    i.resolved_by,
                    i.resolution,
                    i.id,
                )
                for i in incidents
            ],
        )

    def load_problems(self, ids: Iterable[str]) -> dict[str, Problem]:
        problems = _load_problems(
            self._conn, f"SELECT {PROBLEM_COLUMNS} FROM problem WHERE id IN {_IN}", (_ids(ids),)
        )
        return {p.id: p for p in problems}

    def save_problem(self, problem: Problem) -> None:
        self._conn.execute(
            f"INSERT OR REPLACE INTO problem ({PROBLEM_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            problem_row(problem),
        )

    def next_problem_number(self) -> int:
        return int(
            self._conn.execute("SELECT coalesce(max(number), 0) + 1 FROM problem").fetchone()[0]
        )

    def link_incidents(self, problem_id: str, incident_ids: Sequence[str], at: dt.datetime) -> None:
        self._conn.executemany(
            "INSERT OR IGNORE INTO problem_incident (problem_id, incident_id, linked_at) "
            "VALUES (?, ?, ?)",
            [(problem_id, i, to_us(at)) for i in incident_ids],
        )

    def save_change(self, change: Change) -> None:
        self._conn.execute(
            f"INSERT OR REPLACE INTO change_request ({_CHANGE_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                change.id,
                change.number,
                change.title,
                change.description,
                change.status.value,
                change.risk.value,
                opt_us(change.planned_start),
                opt_us(change.planned_end),
                to_us(change.created_at),
                change.created_by,
                to_us(change.updated_at),
            ),
        )
        self._conn.execute("DELETE FROM change_ci WHERE change_id = ?", (change.id,))
        self._conn.executemany(
            "INSERT INTO change_ci (change_id, ci_id, position) VALUES (?, ?, ?)",
            [(change.id, ci_id, n) for n, ci_id in enumerate(change.ci_ids)],
        )

    def next_change_number(self) -> int:
        return int(
            self._conn.execute(
                "SELECT coalesce(max(number), 0) + 1 FROM change_request"
            ).fetchone()[0]
        )

    def append_worklog(self, entries: Sequence[WorklogEntry]) -> None:
        self._conn.executemany(
            "INSERT INTO worklog (ticket_id, at, actor, kind, text) VALUES (?, ?, ?, ?, ?)",
            [(e.ticket_id, to_us(e.at), e.actor, e.kind.value, e.text) for e in entries],
        )

    def touched(self) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES ('correlation_version', 1) "
            "ON CONFLICT (key) DO UPDATE SET value = value + 1"
        )


class SqliteTicketStore:
    def __init__(self, file: SqliteGraphStore) -> None:
        self._file = file

    @contextmanager
    def unit(self) -> Iterator[_TicketUnit]:
        try:
            with self._file._transaction() as conn:
                yield _TicketUnit(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"ticket update failed in {self._file.path}: {exc}") from exc

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._file._read()
        except sqlite3.Error as exc:
            raise self._file.error(exc, "reading tickets") from exc

    # -- incidents and alerts -----------------------------------------------------------------

    def get_incidents(self, ids: Iterable[str]) -> dict[str, Incident]:
        with self._reading() as conn:
            return _load_incidents(conn, ids)

    def find_incidents(self, query: IncidentFilter) -> list[Incident]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.status is not None:
            clauses.append("status = ?")
            params.append(query.status.value)
        if query.max_priority is not None:
            clauses.append("priority <= ?")
            params.append(query.max_priority)
        if query.assignee is not None:
            clauses.append("assignee = ?")
            params.append(query.assignee)
        if query.opened_since is not None:
            clauses.append("opened_at >= ?")
            params.append(to_us(query.opened_since))
        if query.ci_ids is not None:
            clauses.append(f"id IN (SELECT incident_id FROM ({_INCIDENTS_ON}))")
            params.extend((_ids(query.ci_ids), _ids(query.ci_ids)))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {INCIDENT_COLUMNS} FROM incident {where} ORDER BY number DESC LIMIT ?",
                (*params, query.limit),
            )
            return [to_incident(r) for r in rows]

    def open_incidents_of(self, ci_ids: Iterable[str]) -> dict[str, list[Incident]]:
        ids = _ids(ci_ids)
        result: dict[str, list[Incident]] = {}
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT on_ci.ci, {_I_COLUMNS} FROM ({_INCIDENTS_ON}) AS on_ci "
                "JOIN incident AS i ON i.id = on_ci.incident_id WHERE i.status = 'open' "
                "ORDER BY i.number DESC",
                (ids, ids),
            )
            for r in rows:
                result.setdefault(r[0], []).append(to_incident(r[1:]))
        return result

    def incidents_of(self, ci_ids: Iterable[str]) -> list[Incident]:
        ids = _ids(ci_ids)
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {INCIDENT_COLUMNS} FROM incident "
                f"WHERE id IN (SELECT incident_id FROM ({_INCIDENTS_ON})) ORDER BY number",
                (ids, ids),
            )
            return [to_incident(r) for r in rows]

    def incident_alerts(self, incident_ids: Iterable[str]) -> dict[str, list[Alert]]:
        result: dict[str, list[Alert]] = {}
        with self._reading() as conn:
            for r in conn.execute(
                f"SELECT {ALERT_COLUMNS} FROM alert WHERE incident_id IN {_IN} "
                "ORDER BY first_seen, fingerprint",
                (_ids(incident_ids),),
            ):
                alert = to_alert(r)
                result.setdefault(alert.incident_id or "", []).append(alert)
        return result

    def alerts_on(self, ci_ids: Iterable[str]) -> list[Alert]:
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {ALERT_COLUMNS} FROM alert WHERE ci_id IN {_IN} "
                "ORDER BY first_seen, fingerprint",
                (_ids(ci_ids),),
            )
            return [to_alert(r) for r in rows]

    def incidents_updated_since(self, since: dt.datetime, limit: int) -> list[Incident]:
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {INCIDENT_COLUMNS} FROM incident WHERE updated_at >= ? "
                "ORDER BY updated_at, id LIMIT ?",
                (to_us(since), limit),
            )
            return [to_incident(r) for r in rows]

    def last_incident_number(self) -> int:
        with self._reading() as conn:
            return int(conn.execute("SELECT coalesce(max(number), 0) FROM incident").fetchone()[0])

    # -- problems -------------------------------------------------------------------------------

    def get_problems(self, ids: Iterable[str]) -> dict[str, Problem]:
        with self._reading() as conn:
            problems = _load_problems(
                conn, f"SELECT {PROBLEM_COLUMNS} FROM problem WHERE id IN {_IN}", (_ids(ids),)
            )
        return {p.id: p for p in problems}

    def find_problems(self, query: ProblemFilter) -> list[Problem]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.status is not None:
            clauses.append("status = ?")
            params.append(query.status.value)
        if query.root_ci_ids is not None:
            clauses.append(f"root_ci_id IN {_IN}")
            params.append(_ids(query.root_ci_ids))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._reading() as conn:
            return _load_problems(
                conn,
                f"SELECT {PROBLEM_COLUMNS} FROM problem {where} ORDER BY number DESC LIMIT ?",
                (*params, query.limit),
            )

    def problems_of(self, ci_ids: Iterable[str]) -> list[Problem]:
        ids = _ids(ci_ids)
        with self._reading() as conn:
            return _load_problems(
                conn,
                f"SELECT {PROBLEM_COLUMNS} FROM problem WHERE root_ci_id IN {_IN} "
                "OR id IN (SELECT problem_id FROM problem_incident WHERE incident_id IN "
                f"(SELECT incident_id FROM ({_INCIDENTS_ON}))) ORDER BY number",
                (ids, ids, ids),
            )

    # -- changes and worklog --------------------------------------------------------------------

    def get_changes(self, ids: Iterable[str]) -> dict[str, Change]:
        with self._reading() as conn:
            changes = _load_changes(
                conn,
                f"SELECT {_CHANGE_COLUMNS} FROM change_request WHERE id IN {_IN}",
                (_ids(ids),),
            )
        return {c.id: c for c in changes}

    def find_changes(self, query: ChangeFilter) -> list[Change]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.status is not None:
            clauses.append("status = ?")
            params.append(query.status.value)
        if query.ci_ids is not None:
            clauses.append(f"id IN (SELECT change_id FROM change_ci WHERE ci_id IN {_IN})")
            params.append(_ids(query.ci_ids))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._reading() as conn:
            return _load_changes(
                conn,
                f"SELECT {_CHANGE_COLUMNS} FROM change_request {where} "
                "ORDER BY number DESC LIMIT ?",
                (*params, query.limit),
            )

    def worklog(self, ticket_ids: Iterable[str]) -> dict[str, list[WorklogEntry]]:
        result: dict[str, list[WorklogEntry]] = {}
        with self._reading() as conn:
            for seq, ticket_id, at, actor, kind, text in conn.execute(
                "SELECT seq, ticket_id, at, actor, kind, text FROM worklog "
                f"WHERE ticket_id IN {_IN} ORDER BY seq",
                (_ids(ticket_ids),),
            ):
                result.setdefault(ticket_id, []).append(
                    WorklogEntry(
                        ticket_id=ticket_id,
                        at=from_us(at),
                        actor=actor,
                        kind=WorklogKind(kind),
                        text=text,
                        seq=seq,
                    )
                )
        return result
