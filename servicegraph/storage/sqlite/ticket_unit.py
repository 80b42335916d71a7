"""The SQLite unit of ticket work (``servicegraph.ticketing.ports.TicketUnit``): one
write transaction on the file that holds alerts, incidents, problems, changes and the
worklog. People's work (``tickets.py``) and correlation batches (``event_inbox.py``, which
adds the inbox claim) both write through it, so both leave the same records.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from servicegraph.events.model import Alert, AlertCycle
from servicegraph.storage.sqlite import change_rows, sla_rows
from servicegraph.storage.sqlite.file import to_us
from servicegraph.storage.sqlite.incident_rows import (
    ALERT_COLUMNS,
    INCIDENT_FIELDS,
    NAME_INCIDENTS_OF_ALERT,
    PROBLEM_COLUMNS,
    SAVE_ALERT,
    SAVE_INCIDENT,
    UPDATE_INCIDENT,
    alert_row,
    dumps,
    incident_row,
    opt_us,
    people_row,
    problem_incidents,
    problem_row,
    to_alert,
    to_incident,
    to_problem,
)
from servicegraph.ticketing.change_model import FreezeWindow
from servicegraph.ticketing.model import (
    Change,
    Incident,
    Problem,
    TicketLink,
    WorklogEntry,
)
from servicegraph.ticketing.outbox import OutboxMessage
from servicegraph.ticketing.ports import ProblemLink
from servicegraph.ticketing.sla_projection import Fired, SlaProjector, SlaRecord

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
IN = "(SELECT value FROM json_each(?))"
# The lifecycle's active statuses as an SQL list, word for word as migration 9's partial
# indexes (incident_group_queue, incident_agent_queue) say it: SQLite reads a partial index
# only for a query whose WHERE holds the index's condition as written, and the same
# statuses in another order are another expression to it (a queue page then sorts every
# active ticket). tests/contract/test_sqlite_tickets.py checks both.
ACTIVE = "('new', 'assigned', 'in_progress', 'pending')"


def outbox_row(m: OutboxMessage) -> tuple[Any, ...]:
    """A new message's row; the Neo4j adapter writes its nodes from it too."""
    at = to_us(m.created_at)  # due at once
    return (m.key, m.event, m.ticket_id, m.channel.value, m.target, m.subject, m.body, at, at)


def ids_json(values: Iterable[str]) -> str:
    return _dumps(list(values))


def select_incidents(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, Incident]:
    rows = conn.execute(
        f"SELECT {INCIDENT_FIELDS} FROM incident WHERE id IN {IN}", (ids_json(ids),)
    )
    return {r[0]: to_incident(r) for r in rows}


def select_problems(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Problem]:
    rows = conn.execute(sql, params).fetchall()
    links = problem_incidents(conn, [r[0] for r in rows])
    return [to_problem(r, links.get(r[0], [])) for r in rows]


class SqliteTicketUnit:
    def __init__(self, conn: sqlite3.Connection, sla: SlaProjector | None = None) -> None:
        self._conn = conn
        self._sla = sla if sla is not None and sla.enabled else None
        # the tickets whose clocks ``flush_sla`` evaluates again, as last saved
        self._changed: dict[str, Incident] = {}
        self._fresh: set[str] = set()  # of those, the ones this unit inserted
        self._appended: dict[str, list[WorklogEntry]] = {}  # ... and their entries

    def state_version(self) -> int:
        row = self._conn.execute(
            "SELECT value FROM meta WHERE key = 'correlation_version'"
        ).fetchone()
        return 0 if row is None else int(row[0])

    def load_incidents(self, ids: Iterable[str]) -> dict[str, Incident]:
        return select_incidents(self._conn, ids)

    def active_incidents(self, resolved_since: dt.datetime) -> list[Incident]:
        rows = self._conn.execute(
            f"SELECT {INCIDENT_FIELDS} FROM incident WHERE status IN {ACTIVE} "
            "AND channel = 'monitoring' "
            f"UNION SELECT {INCIDENT_FIELDS} FROM incident WHERE resolved_at >= ? "
            "AND channel = 'monitoring'",
            (to_us(resolved_since),),
        )
        return [to_incident(r) for r in rows]

    def incidents_with_root(self, ci_ids: Iterable[str], since: dt.datetime) -> list[Incident]:
        rows = self._conn.execute(
            f"SELECT {INCIDENT_FIELDS} FROM incident "
            "WHERE root_ci_id IN (SELECT value FROM json_each(?)) AND opened_at >= ? "
            "ORDER BY opened_at",
            (dumps(list(ci_ids)), to_us(since)),
        )
        return [to_incident(r) for r in rows]

    def incidents_named(self, signature: str, since: dt.datetime) -> list[str]:
        rows = self._conn.execute(
            "SELECT id FROM incident WHERE root_signature = ? AND opened_at >= ? "
            "AND root_ci_id IS NOT NULL ORDER BY opened_at",
            (signature, to_us(since)),
        )
        return [r[0] for r in rows]

    def count_roots_named(self, signature: str, since: dt.datetime) -> int:
        row = self._conn.execute(
            "SELECT count(DISTINCT root_ci_id) FROM incident "
            "WHERE root_signature = ? AND opened_at >= ?",
            (signature, to_us(since)),
        ).fetchone()
        return int(row[0])

    def load_alerts(self, fingerprints: Iterable[str]) -> dict[str, Alert]:
        rows = self._conn.execute(
            f"SELECT {ALERT_COLUMNS} FROM alert "
            "WHERE fingerprint IN (SELECT value FROM json_each(?))",
            (dumps(list(fingerprints)),),
        )
        return {r[0]: to_alert(r) for r in rows}

    def alerts_of(self, incident_ids: Iterable[str]) -> dict[str, list[Alert]]:
        result: dict[str, list[Alert]] = {}
        for r in self._conn.execute(
            f"SELECT {ALERT_COLUMNS} FROM alert "
            "WHERE incident_id IN (SELECT value FROM json_each(?))",
            (dumps(list(incident_ids)),),
        ):
            alert = to_alert(r)
            result.setdefault(alert.incident_id or "", []).append(alert)
        return result

    def load_problems(self, ids: Iterable[str]) -> dict[str, Problem]:
        problems = select_problems(
            self._conn, f"SELECT {PROBLEM_COLUMNS} FROM problem WHERE id IN {IN}", (ids_json(ids),)
        )
        return {p.id: p for p in problems}

    def find_problem(self, signature: str) -> Problem | None:
        row = self._conn.execute(
            f"SELECT {PROBLEM_COLUMNS} FROM problem WHERE signature = ?", (signature,)
        ).fetchone()
        return None if row is None else to_problem(row, [])

    def save_alerts(self, alerts: Sequence[Alert]) -> None:
        self._conn.executemany(SAVE_ALERT, [alert_row(a) for a in alerts])
        self._conn.executemany(
            NAME_INCIDENTS_OF_ALERT, [(f"{a.source}/{a.name}", a.fingerprint) for a in alerts]
        )

    def save_incidents(self, incidents: Sequence[Incident]) -> None:
        if self._sla is not None:  # which are new: their whole history is in this unit
            known = self._known(incidents)
            self._fresh.update(i.id for i in incidents if i.id not in known)
        self._conn.executemany(
            SAVE_INCIDENT, [(*incident_row(i), i.root_fingerprint) for i in incidents]
        )
        self._index_affected(incidents)
        if self._sla is not None:
            self._changed.update((i.id, i) for i in incidents)

    def _known(self, incidents: Sequence[Incident]) -> set[str]:
        rows = self._conn.execute(
            f"SELECT id FROM incident WHERE id IN {IN}", (ids_json(i.id for i in incidents),)
        )
        return {r[0] for r in rows}

    def update_incidents(self, incidents: Sequence[Incident]) -> None:
        self._conn.executemany(UPDATE_INCIDENT, [people_row(i) for i in incidents])
        self._index_affected(incidents)
        if self._sla is not None:  # not those absent from the store, which it did not update
            known = self._known(incidents)
            self._changed.update((i.id, i) for i in incidents if i.id in known)

    # -- SLA clocks (ticketing.sla_projection) ----------------------------------------------

    def flush_sla(self) -> None:
        """Re-evaluate the clocks of the tickets this unit saved, from their history, as
        the last step before the commit (the stores' ``unit`` call it): every write path,
        people's and correlation's, keeps them current without knowing of them."""
        if self._sla is None or not self._changed:
            return
        # the records as saved (not read back: an import of a thousand tickets a unit
        # would read each again); a caller changes a record only to save it again
        incidents = dict(sorted(self._changed.items()))
        self._changed.clear()
        # a ticket new in this unit has its whole history here (an import, a creation);
        # the others' is read, as are the levels fired for them
        older = [i for i in incidents if i not in self._fresh]
        worklog = sla_rows.clock_worklog(self._conn, older) if older else {}
        worklog.update((i, self._appended.get(i, [])) for i in incidents if i in self._fresh)
        fired = sla_rows.select_fired(self._conn, older) if older else {}
        fresh, self._fresh = self._fresh, set()
        self._appended.clear()
        records, drop = self._sla.project_all(incidents, worklog, fired)
        sla_rows.save_sla(self._conn, records, drop, fresh, self._sla.config.version)

    def load_sla(self, ids: Iterable[str]) -> dict[str, SlaRecord]:
        return sla_rows.select_sla(self._conn, ids)

    def save_sla(
        self, records: Sequence[SlaRecord], drop: Sequence[str] = (), config: str = ""
    ) -> None:
        sla_rows.save_sla(self._conn, records, drop, config=config)

    def fired_levels(self, ids: Iterable[str]) -> dict[str, Fired]:
        return sla_rows.select_fired(self._conn, ids)

    def claim_escalation(self, ticket_id: str, clock: str, level: int, at: dt.datetime) -> bool:
        return sla_rows.claim_level(self._conn, ticket_id, clock, level, at)

    def clock_worklog(self, ids: Iterable[str]) -> dict[str, list[WorklogEntry]]:
        return sla_rows.clock_worklog(self._conn, ids)

    def reevaluate_sla(self, ids: Iterable[str]) -> bool:
        if self._sla is None:
            return False
        self._changed.update(select_incidents(self._conn, ids))
        return True

    def _index_affected(self, incidents: Sequence[Incident]) -> None:
        """``ticket_ci`` mirrors each ticket's ``affected_ci_ids`` (migration 10), so that
        a CI's ticket lists find the tickets people raised against it; one statement
        clears the batch's rows, which costs a storm nothing while the table is empty."""
        self._conn.execute(
            f"DELETE FROM ticket_ci WHERE ticket_id IN {IN}", (ids_json(i.id for i in incidents),)
        )
        rows = [(ci_id, i.id) for i in incidents for ci_id in i.affected_ci_ids]
        if rows:
            self._conn.executemany(
                "INSERT OR IGNORE INTO ticket_ci (ci_id, ticket_id) VALUES (?, ?)", rows
            )

    def next_incident_number(self) -> int:
        row = self._conn.execute("SELECT coalesce(max(number), 0) + 1 FROM incident").fetchone()
        return int(row[0])

    def save_problem(self, problem: Problem) -> None:
        self._conn.execute(
            f"INSERT OR REPLACE INTO problem ({PROBLEM_COLUMNS}) "
            f"VALUES ({', '.join('?' for _ in PROBLEM_COLUMNS.split(','))})",
            problem_row(problem),
        )

    def next_problem_number(self) -> int:
        return int(
            self._conn.execute("SELECT coalesce(max(number), 0) + 1 FROM problem").fetchone()[0]
        )

    def link_problem(self, problem_id: str, incident_ids: Sequence[str], at: dt.datetime) -> None:
        self._conn.executemany(
            "INSERT OR IGNORE INTO problem_incident (problem_id, incident_id, linked_at) "
            "VALUES (?, ?, ?)",
            [(problem_id, i, to_us(at)) for i in incident_ids],
        )
        self._conn.execute(
            "UPDATE incident SET problem_id = ? WHERE id IN (SELECT value FROM json_each(?)) "
            "AND problem_id IS NULL",
            (problem_id, dumps(list(incident_ids))),
        )

    def save_change(self, change: Change) -> None:
        change_rows.save_change(self._conn, change)

    def load_changes(self, ids: Iterable[str]) -> dict[str, Change]:
        return change_rows.changes_by_id(self._conn, ids)

    def changes_touching(self, start: dt.datetime, end: dt.datetime) -> list[Change]:
        return change_rows.changes_touching(self._conn, to_us(start), to_us(end))

    def freeze_windows(
        self, start: dt.datetime | None, end: dt.datetime | None
    ) -> list[FreezeWindow]:
        return change_rows.freeze_windows(self._conn, opt_us(start), opt_us(end))

    def save_freeze_window(self, window: FreezeWindow) -> None:
        self._conn.execute(change_rows.SAVE_FREEZE, change_rows.freeze_row(window))

    def delete_freeze_window(self, window_id: str) -> bool:
        cursor = self._conn.execute("DELETE FROM freeze_window WHERE id = ?", (window_id,))
        return cursor.rowcount > 0

    def next_change_number(self) -> int:
        return int(
            self._conn.execute(
                "SELECT coalesce(max(number), 0) + 1 FROM change_request"
            ).fetchone()[0]
        )

    def _remember(self, entries: Sequence[WorklogEntry]) -> None:
        if self._fresh:
            for e in entries:
                if e.ticket_id in self._fresh:
                    self._appended.setdefault(e.ticket_id, []).append(e)

    def append_worklog(self, entries: Sequence[WorklogEntry]) -> None:
        self._remember(entries)
        self._conn.executemany(
            "INSERT INTO worklog (ticket_id, at, actor, kind, text, field, old_value, new_value) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (e.ticket_id, to_us(e.at), e.actor, e.kind.value, e.text, e.field, e.old, e.new)
                for e in entries
            ],
        )

    def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        self._conn.executemany(
            "INSERT OR IGNORE INTO notification_outbox (key, event, ticket_id, channel, target, "
            "subject, body, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [outbox_row(m) for m in messages],
        )

    def save_links(self, links: Sequence[TicketLink]) -> None:
        self._conn.executemany(
            "INSERT OR IGNORE INTO ticket_link "
            "(source_id, kind, target_id, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
            [
                (k.source_id, k.kind.value, k.target_id, to_us(k.created_at), k.created_by)
                for k in links
            ],
        )

    def delete_links(self, links: Sequence[TicketLink]) -> None:
        self._conn.executemany(
            "DELETE FROM ticket_link WHERE source_id = ? AND kind = ? AND target_id = ?",
            [(k.source_id, k.kind.value, k.target_id) for k in links],
        )

    def record_cycles(self, cycles: Sequence[AlertCycle]) -> None:
        self._conn.executemany(
            "INSERT INTO alert_cycle (fingerprint, fired_at, cleared_at, incident_id) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (fingerprint, fired_at) DO UPDATE SET "
            "cleared_at = excluded.cleared_at, incident_id = excluded.incident_id",
            [
                (c.fingerprint, to_us(c.fired_at), opt_us(c.cleared_at), c.incident_id)
                for c in cycles
            ],
        )

    def touched(self) -> int:
        row = self._conn.execute(
            "INSERT INTO meta (key, value) VALUES ('correlation_version', 1) "
            "ON CONFLICT (key) DO UPDATE SET value = value + 1 RETURNING value"
        ).fetchone()
        return int(row[0])

    # -- restoring an export (servicegraph import --from-export) -----------------------------

    def restore_problem_links(self, links: Sequence[ProblemLink]) -> None:
        self._conn.executemany(
            "INSERT INTO problem_incident (problem_id, incident_id, linked_at) VALUES (?, ?, ?)",
            [(k.problem_id, k.incident_id, to_us(k.linked_at)) for k in links],
        )

    def restore_worklog(self, entries: Sequence[WorklogEntry]) -> None:
        # ``seq`` is the INTEGER PRIMARY KEY: later entries are numbered after the highest
        unnumbered = next((e for e in entries if e.seq < 1), None)
        if unnumbered is not None:
            raise ValueError(f"a restored worklog entry of {unnumbered.ticket_id} has no seq")
        self._remember(entries)
        self._conn.executemany(
            "INSERT INTO worklog (seq, ticket_id, at, actor, kind, text, field, old_value, "
            "new_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    e.seq,
                    e.ticket_id,
                    to_us(e.at),
                    e.actor,
                    e.kind.value,
                    e.text,
                    e.field,
                    e.old,
                    e.new,
                )
                for e in entries
            ],
        )
