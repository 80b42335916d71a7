"""SQLite adapter of the ticketing repository port (``servicegraph.ticketing.ports``):
the reads, and units of people's work (``ticket_unit.py``).

Tickets live in the graph's file with alerts and incidents (with Neo4j, in its database:
``storage/neo4j/tickets.py``) and share its write lock, so a unit of ticket work is
serialised with correlation batches; ``touched`` advances the correlation state version
(see ``event_inbox.py``) so that workers reload the incidents people changed.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from servicegraph.cmdb.errors import StoreError
from servicegraph.events.model import Alert, AlertCycle
from servicegraph.storage.sqlite import change_rows, sla_rows
from servicegraph.storage.sqlite.change_rows import CHANGE_COLUMNS, select_changes
from servicegraph.storage.sqlite.dump import open_snapshot_connection
from servicegraph.storage.sqlite.file import from_us, to_us
from servicegraph.storage.sqlite.incident_rows import (
    ALERT_COLUMNS,
    INCIDENT_FIELDS,
    PROBLEM_COLUMNS,
    opt_dt,
    to_alert,
    to_incident,
)
from servicegraph.storage.sqlite.store import SqliteGraphStore
from servicegraph.storage.sqlite.ticket_dump import SqliteTicketSnapshot
from servicegraph.storage.sqlite.ticket_unit import (
    ACTIVE,
    IN,
    SqliteTicketUnit,
    ids_json,
    select_incidents,
    select_problems,
)
from servicegraph.ticketing.change_model import FreezeWindow
from servicegraph.ticketing.model import (
    Change,
    Incident,
    LinkKind,
    Problem,
    TicketLink,
    WorklogEntry,
    WorklogKind,
)
from servicegraph.ticketing.ports import (
    NO_DUE,
    ChangeFilter,
    IncidentFilter,
    ProblemFilter,
    TicketOrder,
)
from servicegraph.ticketing.sla_projection import SlaProjector, SlaRecord

_I_COLUMNS = ", ".join(f"i.{c.strip()}" for c in INCIDENT_FIELDS.split(","))
# tickets whose root, an alert or an affected CI people named is one of a set of CIs (the
# parameter three times: ``_on``)
_INCIDENTS_ON = (
    f"SELECT root_ci_id AS ci, id AS incident_id FROM incident WHERE root_ci_id IN {IN} "
    f"UNION SELECT ci_id, incident_id FROM alert WHERE ci_id IN {IN} "
    "AND incident_id IS NOT NULL "
    f"UNION SELECT ci_id, ticket_id FROM ticket_ci WHERE ci_id IN {IN}"
)


def _on(ids: str) -> tuple[str, str, str]:
    return (ids, ids, ids)


def _key(after: tuple[int, ...], size: int) -> tuple[int, ...]:
    if len(after) != size:
        raise ValueError(f"a cursor of this order has {size} parts, not {len(after)}")
    return after


def _where(query: IncidentFilter) -> tuple[list[str], list[Any]]:
    """The conditions of a ticket listing but its order and cursor."""
    clauses: list[str] = []
    params: list[Any] = []
    equal = {
        "status": query.status.value if query.status is not None else None,
        "assignee": query.assignee,
        "assignment_group": query.assignment_group,
        "type": query.type.value if query.type is not None else None,
        "channel": query.channel.value if query.channel is not None else None,
        "requester": query.requester,
        "organisation": query.organisation,
        "service": query.service,
    }
    for column, value in equal.items():
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.open is not None:
        if query.status is None:
            # ACTIVE is said the way the queues' partial indexes say it, so that SQLite
            # reads a group's or an agent's queue page through them
            clauses.append(f"status {'' if query.open else 'NOT '}IN {ACTIVE}")
        elif query.status.active is not query.open:
            clauses.append("0")  # a status that ``open`` excludes: every field set must hold
    if query.unassigned is not None:
        clauses.append("assignee IS NULL" if query.unassigned else "assignee IS NOT NULL")
    if query.max_priority is not None:
        clauses.append("priority <= ?")
        params.append(query.max_priority)
    if query.category is not None:
        clauses.append("(category = ? OR category LIKE ? ESCAPE '\\')")
        params.extend((query.category, _like_prefix(query.category) + "/%"))
    if query.tag is not None:
        clauses.append("EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?)")
        params.append(query.tag)
    if query.text is not None:
        clauses.append("title LIKE ? ESCAPE '\\'")
        params.append(f"%{_like_prefix(query.text)}%")
    if query.opened_since is not None:
        clauses.append("opened_at >= ?")
        params.append(to_us(query.opened_since))
    if query.resolved_before is not None:
        clauses.append("resolved_at < ?")
        params.append(to_us(query.resolved_before))
    if query.ci_ids is not None:
        clauses.append(f"id IN (SELECT incident_id FROM ({_INCIDENTS_ON}))")
        params.extend(_on(ids_json(query.ci_ids)))
    return clauses, params


def listing(query: IncidentFilter) -> tuple[str, list[Any]]:
    """The SELECT of ``find_incidents`` and its parameters: the filter, then the keyset
    cursor as a row-value comparison on the order's key (which the queue indexes end
    with, so that a page after the cursor starts where the index does)."""
    where, params = _where(query)
    if query.order is TicketOrder.QUEUE:
        order = "priority, opened_at, number"
        if query.after is not None:
            where.append("(priority, opened_at, number) > (?, ?, ?)")
            params.extend(_key(query.after, 3))
    elif query.order is TicketOrder.DUE:
        # word for word the expression migration 12's due-queue indexes hold
        order = f"coalesce(sla_due_at, {NO_DUE}), number"
        if query.after is not None:
            where.append(f"(coalesce(sla_due_at, {NO_DUE}), number) > (?, ?)")
            params.extend(_key(query.after, 2))
    else:
        order = "number DESC"
        if query.after is not None:
            where.append("number < ?")
            params.extend(_key(query.after, 1))
    sql = f"SELECT {INCIDENT_FIELDS} FROM incident"
    if where:
        sql += f" WHERE {' AND '.join(where)}"
    return f"{sql} ORDER BY {order} LIMIT ?", [*params, query.limit]


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqliteTicketStore:
    def __init__(self, file: SqliteGraphStore) -> None:
        self._file = file
        self._sla: SlaProjector | None = None

    def keep_sla(self, projector: SlaProjector) -> None:
        self._sla = projector

    def ping(self) -> None:
        try:
            self._file._read().execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self._file.path}: {exc}") from exc

    @contextmanager
    def unit(self) -> Iterator[SqliteTicketUnit]:
        try:
            with self._file._transaction() as conn:
                unit = SqliteTicketUnit(conn, self._sla)
                yield unit
                unit.flush_sla()
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
            return select_incidents(conn, ids)

    def find_incidents(self, query: IncidentFilter) -> list[Incident]:
        sql, params = listing(query)
        with self._reading() as conn:
            return [to_incident(r) for r in conn.execute(sql, params)]

    def query_plan(self, query: IncidentFilter) -> list[str]:
        """How SQLite reads ``find_incidents(query)`` (``EXPLAIN QUERY PLAN``, one line per
        step): the tests and the desk benchmark check that queue pages use the queues'
        indexes and sort nothing."""
        sql, params = listing(query)
        with self._reading() as conn:
            return [str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]

    def open_incidents_of(self, ci_ids: Iterable[str]) -> dict[str, list[Incident]]:
        ids = ids_json(ci_ids)
        result: dict[str, list[Incident]] = {}
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT on_ci.ci, {_I_COLUMNS} FROM ({_INCIDENTS_ON}) AS on_ci "
                f"JOIN incident AS i ON i.id = on_ci.incident_id WHERE i.status IN {ACTIVE} "
                "ORDER BY i.number DESC",
                _on(ids),
            )
            for r in rows:
                result.setdefault(r[0], []).append(to_incident(r[1:]))
        return result

    def incidents_of(self, ci_ids: Iterable[str]) -> list[Incident]:
        ids = ids_json(ci_ids)
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {INCIDENT_FIELDS} FROM incident "
                f"WHERE id IN (SELECT incident_id FROM ({_INCIDENTS_ON})) ORDER BY number",
                _on(ids),
            )
            return [to_incident(r) for r in rows]

    def incident_alerts(self, incident_ids: Iterable[str]) -> dict[str, list[Alert]]:
        result: dict[str, list[Alert]] = {}
        with self._reading() as conn:
            for r in conn.execute(
                f"SELECT {ALERT_COLUMNS} FROM alert WHERE incident_id IN {IN} "
                "ORDER BY first_seen, fingerprint",
                (ids_json(incident_ids),),
            ):
                alert = to_alert(r)
                result.setdefault(alert.incident_id or "", []).append(alert)
        return result

    def alerts_on(self, ci_ids: Iterable[str]) -> list[Alert]:
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {ALERT_COLUMNS} FROM alert WHERE ci_id IN {IN} "
                "ORDER BY first_seen, fingerprint",
                (ids_json(ci_ids),),
            )
            return [to_alert(r) for r in rows]

    def incidents_updated_since(self, since: dt.datetime, limit: int) -> list[Incident]:
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {INCIDENT_FIELDS} FROM incident WHERE updated_at >= ? "
                "ORDER BY updated_at, id LIMIT ?",
                (to_us(since), limit),
            )
            return [to_incident(r) for r in rows]

    def last_incident_number(self) -> int:
        with self._reading() as conn:
            return int(conn.execute("SELECT coalesce(max(number), 0) FROM incident").fetchone()[0])

    # -- history import --------------------------------------------------------------------

    def refs_known(self, refs: Iterable[str]) -> set[str]:
        # through incident_external_ref, a partial index: its condition stated
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT external_ref FROM incident WHERE external_ref IN {IN} "
                "AND external_ref IS NOT NULL",
                (ids_json(refs),),
            )
            return {r[0] for r in rows}

    # -- problems -------------------------------------------------------------------------------

    def get_problems(self, ids: Iterable[str]) -> dict[str, Problem]:
        with self._reading() as conn:
            problems = select_problems(
                conn, f"SELECT {PROBLEM_COLUMNS} FROM problem WHERE id IN {IN}", (ids_json(ids),)
            )
        return {p.id: p for p in problems}

    def find_problems(self, query: ProblemFilter) -> list[Problem]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.status is not None:
            clauses.append("status = ?")
            params.append(query.status.value)
        if query.root_ci_ids is not None:
            clauses.append(f"root_ci_id IN {IN}")
            params.append(ids_json(query.root_ci_ids))
        if query.assignee is not None:
            clauses.append("assignee = ?")
            params.append(query.assignee)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._reading() as conn:
            return select_problems(
                conn,
                f"SELECT {PROBLEM_COLUMNS} FROM problem {where} ORDER BY number DESC LIMIT ?",
                (*params, query.limit),
            )

    def problems_of(self, ci_ids: Iterable[str]) -> list[Problem]:
        ids = ids_json(ci_ids)
        with self._reading() as conn:
            return select_problems(
                conn,
                f"SELECT {PROBLEM_COLUMNS} FROM problem WHERE root_ci_id IN {IN} "
                "OR id IN (SELECT problem_id FROM problem_incident WHERE incident_id IN "
                f"(SELECT incident_id FROM ({_INCIDENTS_ON}))) ORDER BY number",
                (ids, *_on(ids)),
            )

    # -- changes and worklog --------------------------------------------------------------------

    def problems_fixed_by(self, change_ids: Iterable[str]) -> list[Problem]:
        with self._reading() as conn:
            return select_problems(
                conn,
                f"SELECT {PROBLEM_COLUMNS} FROM problem WHERE fixing_change_id IN {IN} "
                "ORDER BY number",
                (ids_json(change_ids),),
            )

    def known_errors_for(self, ci_ids: Iterable[str], signatures: Iterable[str]) -> list[Problem]:
        with self._reading() as conn:
            return select_problems(
                conn,
                f"SELECT {PROBLEM_COLUMNS} FROM problem WHERE known_error IS NOT NULL AND "
                f"(root_ci_id IN {IN} OR signature IN {IN}) ORDER BY number",
                (ids_json(ci_ids), ids_json(signatures)),
            )

    # -- changes and worklog --------------------------------------------------------------------

    def get_changes(self, ids: Iterable[str]) -> dict[str, Change]:
        with self._reading() as conn:
            return change_rows.changes_by_id(conn, ids)

    def find_changes(self, query: ChangeFilter) -> list[Change]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.status is not None:
            clauses.append("status = ?")
            params.append(query.status.value)
        if query.ci_ids is not None:
            clauses.append(f"id IN (SELECT change_id FROM change_ci WHERE ci_id IN {IN})")
            params.append(ids_json(query.ci_ids))
        if query.assignee is not None:
            clauses.append("assignee = ?")
            params.append(query.assignee)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._reading() as conn:
            return select_changes(
                conn,
                f"SELECT {CHANGE_COLUMNS} FROM change_request {where} ORDER BY number DESC LIMIT ?",
                (*params, query.limit),
            )

    def changes_touching(self, start: dt.datetime, end: dt.datetime) -> list[Change]:
        with self._reading() as conn:
            return change_rows.changes_touching(conn, to_us(start), to_us(end))

    def freeze_windows(
        self, start: dt.datetime | None = None, end: dt.datetime | None = None
    ) -> list[FreezeWindow]:
        with self._reading() as conn:
            return change_rows.freeze_windows(
                conn, None if start is None else to_us(start), None if end is None else to_us(end)
            )

    def worklog(self, ticket_ids: Iterable[str]) -> dict[str, list[WorklogEntry]]:
        result: dict[str, list[WorklogEntry]] = {}
        with self._reading() as conn:
            for seq, ticket_id, at, actor, kind, text, field, old, new in conn.execute(
                "SELECT seq, ticket_id, at, actor, kind, text, field, old_value, new_value "
                "FROM worklog "
                f"WHERE ticket_id IN {IN} ORDER BY seq",
                (ids_json(ticket_ids),),
            ):
                result.setdefault(ticket_id, []).append(
                    WorklogEntry(
                        ticket_id=ticket_id,
                        at=from_us(at),
                        actor=actor,
                        kind=WorklogKind(kind),
                        text=text,
                        seq=seq,
                        field=field,
                        old=old,
                        new=new,
                    )
                )
        return result

    # -- SLA clocks (sla_rows) --------------------------------------------------------------

    def sla_of(self, ticket_ids: Iterable[str]) -> dict[str, SlaRecord]:
        with self._reading() as conn:
            return sla_rows.select_sla(conn, ticket_ids)

    def sla_due(self, now: dt.datetime, limit: int) -> list[str]:
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT ticket_id FROM ticket_sla WHERE next_check_at <= ? "
                "ORDER BY next_check_at, ticket_id LIMIT ?",
                (to_us(now), limit),
            )
            return [r[0] for r in rows]

    def sla_stale(self, config: str, limit: int) -> list[str]:
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT i.id FROM incident AS i "
                "LEFT JOIN ticket_sla AS s ON s.ticket_id = i.id "
                "LEFT JOIN ticket_sla_none AS n ON n.ticket_id = i.id "
                f"WHERE i.status IN {ACTIVE} "
                "AND coalesce(s.config, n.config, '') != ? ORDER BY i.number LIMIT ?",
                (config, limit),
            )
            return [r[0] for r in rows]

    # -- what correlation could not place, and totals ---------------------------------------------

    def unmapped_alerts(self, limit: int = 100) -> list[Alert]:
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {ALERT_COLUMNS} FROM alert WHERE ci_id IS NULL "
                "ORDER BY last_seen DESC LIMIT ?",
                (limit,),
            )
            return [to_alert(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._reading() as conn:

            def one(sql: str) -> int:
                return int(conn.execute(sql).fetchone()[0])

            return {
                "alerts": one("SELECT count(*) FROM alert"),
                "alerts_firing": one("SELECT count(*) FROM alert WHERE status = 'firing'"),
                "alerts_unmapped": one("SELECT count(*) FROM alert WHERE ci_id IS NULL"),
                "incidents": one("SELECT count(*) FROM incident"),
                "incidents_open": one(f"SELECT count(*) FROM incident WHERE status IN {ACTIVE}"),
                "problems": one("SELECT count(*) FROM problem"),
            }

    # -- links, alert cycles, load -------------------------------------------------------------

    def links_of(self, ticket_ids: Iterable[str]) -> dict[str, list[TicketLink]]:
        ids = ids_json(ticket_ids)
        wanted = set(json.loads(ids))
        result: dict[str, list[TicketLink]] = {}
        with self._reading() as conn:
            for source, kind, target, at, by in conn.execute(
                "SELECT source_id, kind, target_id, created_at, created_by FROM ticket_link "
                f"WHERE source_id IN {IN} UNION "
                "SELECT source_id, kind, target_id, created_at, created_by FROM ticket_link "
                f"WHERE target_id IN {IN} ORDER BY 4, 1, 2, 3",
                (ids, ids),
            ):
                link = TicketLink(source, target, LinkKind(kind), from_us(at), by)
                for end in {source, target} & wanted:
                    result.setdefault(end, []).append(link)
        return result

    def alert_cycles(self, fingerprints: Iterable[str]) -> dict[str, list[AlertCycle]]:
        result: dict[str, list[AlertCycle]] = {}
        with self._reading() as conn:
            for fingerprint, fired, cleared, incident_id in conn.execute(
                "SELECT fingerprint, fired_at, cleared_at, incident_id FROM alert_cycle "
                f"WHERE fingerprint IN {IN} ORDER BY fingerprint, fired_at",
                (ids_json(fingerprints),),
            ):
                result.setdefault(fingerprint, []).append(
                    AlertCycle(fingerprint, from_us(fired), opt_dt(cleared), incident_id)
                )
        return result

    def open_counts(self, logins: Iterable[str]) -> dict[str, int]:
        with self._reading() as conn:
            # one count per login, each through the partial index of the agents' queues
            # (a GROUP BY over the active tickets read all of them: 16 ms on 100,000)
            rows = conn.execute(
                "SELECT w.value, (SELECT count(*) FROM incident AS i WHERE i.assignee = w.value "
                f"AND i.status IN {ACTIVE}) FROM json_each(?) AS w",
                (ids_json(logins),),
            )
            return {login: int(n) for login, n in rows if n}

    # -- export (servicegraph export): see ticket_dump.py ---------------------------------------

    @contextmanager
    def snapshot(self) -> Iterator[SqliteTicketSnapshot]:
        """Export view: one read transaction on a connection of its own, so that WAL keeps
        it consistent while writers carry on."""
        with self._file.errors("opening a snapshot of the tickets for an export"):
            conn = open_snapshot_connection(self._file)
        try:
            with self._file.errors("reading tickets for an export"):
                yield SqliteTicketSnapshot(conn)
        finally:
            conn.close()
