"""SQLite adapter of the monitoring port (inbox, alerts, incidents, problems).

Alerts, incidents and problems live in the graph's file and share its write lock. The
event inbox is a file of its own (``<name>-inbox.sqlite3``, synchronous=FULL so that an
accepted event survives a power cut): webhooks append to it without ever waiting for a
correlation batch or an import holding the graph's lock.

Exactly once: the inbox is append-only and ordered by sequence number; the graph file
keeps ``inbox_cursor``, the last sequence whose effects are committed, and a correlation
unit advances it in the same transaction as the effects, and records the keys of the
events it claimed (``inbox_seen``: a redelivery is dropped, see sqlite/inbox.py). A unit
that dies commits neither. ``inbox_processed`` in the inbox file is written after the
commit, for latency figures only (without an fsync).
"""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from servicegraph.cmdb.errors import StoreError
from servicegraph.correlation.ports import Claim
from servicegraph.events.model import Alert, Event
from servicegraph.storage.sqlite import inbox as inbox_file
from servicegraph.storage.sqlite.file import SqliteFile, to_us
from servicegraph.storage.sqlite.inbox import (
    INBOX_VERSION,
    InboxWriter,
    event_key,
    migrate_inbox,
)
from servicegraph.storage.sqlite.incident_rows import (
    ALERT_COLUMNS,
    INCIDENT_COLUMNS,
    PROBLEM_COLUMNS,
    SAVE_ALERT,
    SAVE_INCIDENT,
    alert_row,
    dumps,
    incident_row,
    problem_incidents,
    problem_row,
    to_alert,
    to_incident,
    to_problem,
)
from servicegraph.storage.sqlite.store import SqliteGraphStore
from servicegraph.ticketing.model import Incident, IncidentStatus, Problem


class _Unit:
    def __init__(self, conn: sqlite3.Connection, inbox: SqliteFile) -> None:
        self._conn = conn
        self._inbox = inbox
        self._claimed: tuple[int, int] | None = None  # (cursor before, last seq claimed)
        self.processed: tuple[int, dt.datetime] | None = None

    def state_version(self) -> int:
        row = self._conn.execute(
            "SELECT value FROM meta WHERE key = 'correlation_version'"
        ).fetchone()
        return 0 if row is None else int(row[0])

    def advance_state_version(self) -> int:
        row = self._conn.execute(
            "INSERT INTO meta (key, value) VALUES ('correlation_version', 1) "
            "ON CONFLICT (key) DO UPDATE SET value = value + 1 RETURNING value"
        ).fetchone()
        return int(row[0])

    def claim_pending(self, limit: int) -> Claim:
        cursor = _cursor(self._conn)
        claimed = inbox_file.read_events(self._inbox._read(), cursor, limit)
        if not claimed:
            return Claim(0, [])
        self._claimed = (cursor, claimed[-1][0])
        keys = [event_key(event.event_id) for _, event in claimed]
        # the keys not seen before: a redelivery the webhook did not recognise is dropped
        first = {
            key
            for (key,) in self._conn.execute(
                "INSERT OR IGNORE INTO inbox_seen (key, seq) "
                "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') "
                "FROM json_each(?) RETURNING key",
                (dumps([(key, seq) for key, (seq, _) in zip(keys, claimed, strict=True)]),),
            )
        }
        events = []
        for key, (_, event) in zip(keys, claimed, strict=True):
            if key in first:
                first.discard(key)  # the same event twice in one claim counts once
                events.append(event)
        return Claim(len(claimed), events)

    def mark_processed(self, at: dt.datetime) -> None:
        to_us(at)  # a naive time fails here, inside the unit, not after it committed
        if self._claimed is None:
            return
        claimed_after, last = self._claimed
        if _cursor(self._conn) != claimed_after:
            raise StoreError("inbox events were processed twice; another worker raced this one")
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES ('inbox_cursor', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (last,),
        )
        self.processed = (last, at)

    def forget_unprocessed(self) -> None:
        """Before the unit commits: a claim it did not mark processed leaves its events
        pending, so the keys it recorded as correlated go (or the next claim would drop the
        events as redeliveries)."""
        if self._claimed is not None and self.processed is None:
            claimed_after, last = self._claimed
            self._conn.execute(
                "DELETE FROM inbox_seen WHERE seq > ? AND seq <= ?", (claimed_after, last)
            )

    def load_alerts(self, fingerprints: Iterable[str]) -> dict[str, Alert]:
        rows = self._conn.execute(
            f"SELECT {ALERT_COLUMNS} FROM alert "
            "WHERE fingerprint IN (SELECT value FROM json_each(?))",
            (dumps(list(fingerprints)),),
        )
        return {r[0]: to_alert(r) for r in rows}

    def active_incidents(self, resolved_since: dt.datetime) -> list[Incident]:
        rows = self._conn.execute(
            f"SELECT {INCIDENT_COLUMNS} FROM incident WHERE status = 'open' "
            f"UNION SELECT {INCIDENT_COLUMNS} FROM incident WHERE resolved_at >= ?",
            (to_us(resolved_since),),
        )
        return [to_incident(r) for r in rows]

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

    def save_alerts(self, alerts: Sequence[Alert]) -> None:
        self._conn.executemany(SAVE_ALERT, [alert_row(a) for a in alerts])

    def save_incidents(self, incidents: Sequence[Incident]) -> None:
        self._conn.executemany(
            SAVE_INCIDENT, [(*incident_row(i), i.root_fingerprint) for i in incidents]
        )

    def next_incident_number(self) -> int:
        row = self._conn.execute("SELECT coalesce(max(number), 0) + 1 FROM incident").fetchone()
        return int(row[0])

    def incidents_with_root(self, ci_ids: Iterable[str], since: dt.datetime) -> list[Incident]:
        rows = self._conn.execute(
            f"SELECT {INCIDENT_COLUMNS} FROM incident "
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

    def find_problem(self, signature: str) -> Problem | None:
        row = self._conn.execute(
            f"SELECT {PROBLEM_COLUMNS} FROM problem WHERE signature = ?", (signature,)
        ).fetchone()
        return None if row is None else to_problem(row, [])

    def save_problem(self, problem: Problem) -> None:
        self._conn.execute(
            f"INSERT OR REPLACE INTO problem ({PROBLEM_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            problem_row(problem),
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

    def next_problem_number(self) -> int:
        row = self._conn.execute("SELECT coalesce(max(number), 0) + 1 FROM problem").fetchone()
        return int(row[0])


def _cursor(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'inbox_cursor'").fetchone()
    return 0 if row is None else int(row[0])


def _inbox_needs_migration(inbox: SqliteFile) -> bool:
    """Whether the inbox file is missing or not at ``INBOX_VERSION`` (read, not written)."""
    if not inbox.path.exists():
        return True
    with inbox.errors("reading the inbox version"):
        return int(inbox._read().execute("PRAGMA user_version").fetchone()[0]) != INBOX_VERSION


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _reading(
    method: Callable[Concatenate[SqliteIncidentStore, _P], _R],
) -> Callable[Concatenate[SqliteIncidentStore, _P], _R]:
    """Driver errors of a read become ``StoreError``; a damaged file says what to do
    (``SqliteFile.error``), so that `servicegraph incidents` on it prints one line."""

    @functools.wraps(method)
    def read(self: SqliteIncidentStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise self.file.error(exc, f"reading ({method.__name__})") from exc

    return read


class SqliteIncidentStore:
    def __init__(self, graph_store: SqliteGraphStore, inbox_path: Path | None = None) -> None:
        self._graph = graph_store
        path = inbox_path or graph_store.path.with_name(f"{graph_store.path.stem}-inbox.sqlite3")
        # a read-only graph store (a command that only reads) reads the inbox read-only too
        read_only = graph_store.read_only
        self._inbox = SqliteFile(
            path, lock_timeout=graph_store.lock_timeout, synchronous="FULL", read_only=read_only
        )
        # the same file for what need not survive a power cut: when batches were processed
        # (a statistic), without an fsync per correlation batch
        self._inbox_stats = SqliteFile(
            path, lock_timeout=graph_store.lock_timeout, synchronous="NORMAL", read_only=read_only
        )
        if not read_only or _inbox_needs_migration(self._inbox):
            self._inbox.make_writable()
            self._inbox_stats.make_writable()
            migrate_inbox(self._inbox, graph_store)
        self._writer = InboxWriter(self._inbox)

    def close(self) -> None:
        self._inbox_stats.close()
        self._inbox.close()

    @property
    def file(self) -> SqliteGraphStore:
        """The SQLite file holding alerts and incidents (ticketing and tokens share it)."""
        return self._graph

    def append_inbox(self, events: Sequence[Event], received_at: dt.datetime) -> int:
        return self._writer.append(events, received_at)

    def ping(self) -> None:
        try:
            _cursor(self._read())
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self._graph.path}: {exc}") from exc

    def check_inbox(self, timeout: float) -> None:
        if self._writer.failure is not None:
            raise StoreError(f"the last append failed: {self._writer.failure}")
        inbox_file.probe_writable(self._inbox.path, timeout)

    @contextmanager
    def unit(self) -> Iterator[_Unit]:
        with self._graph._transaction() as conn:
            unit = _Unit(conn, self._inbox)
            yield unit
            unit.forget_unprocessed()
        if unit.processed is not None:
            last, at = unit.processed
            try:
                with self._inbox_stats._transaction() as inbox:
                    inbox.execute(
                        "INSERT OR REPLACE INTO inbox_processed (last_seq, processed_at) "
                        "VALUES (?, ?)",
                        (last, to_us(at)),
                    )
            except StoreError:
                pass  # only a latency statistic; the cursor is what counts

    def _read(self) -> sqlite3.Connection:
        return self._graph._read()

    @_reading
    def pending_count(self) -> int:
        return self.inbox_lag()[0]

    @_reading
    def latest_events(self, limit: int) -> list[tuple[int, Event, bool]]:
        cursor = _cursor(self._read())
        return [
            (seq, event, seq <= cursor)
            for seq, event in inbox_file.latest(self._inbox._read(), limit)
        ]

    @_reading
    def inbox_lag(self) -> tuple[int, dt.datetime | None]:
        return inbox_file.waiting(self._inbox._read(), _cursor(self._read()))

    def prune_inbox(self, before: dt.datetime) -> int:
        cursor = _cursor(self._read())
        with self._inbox._transaction() as conn:
            deleted, through = inbox_file.prune(conn, cursor, before)
        # what the graph file remembers of them goes with them: a pruned event is new again
        with self._graph._transaction() as graph:
            graph.execute("DELETE FROM inbox_seen WHERE seq <= ?", (through,))
        self._writer.forget()
        return deleted

    @_reading
    def get_incident(self, incident_id: str) -> Incident | None:
        row = (
            self._read()
            .execute(f"SELECT {INCIDENT_COLUMNS} FROM incident WHERE id = ?", (incident_id,))
            .fetchone()
        )
        return None if row is None else to_incident(row)

    @_reading
    def list_incidents(
        self,
        *,
        status: IncidentStatus | None = None,
        ci_id: str | None = None,
        since: dt.datetime | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        clauses: list[str] = []
        params: list[Any] = []
        if status is not None:
            clauses.append("status = ?")
            params.append(status.value)
        if ci_id is not None:
            clauses.append(
                "(root_ci_id = ? OR id IN (SELECT incident_id FROM alert WHERE ci_id = ?))"
            )
            params.extend((ci_id, ci_id))
        if since is not None:
            clauses.append("opened_at >= ?")
            params.append(to_us(since))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read().execute(
            f"SELECT {INCIDENT_COLUMNS} FROM incident {where} ORDER BY number DESC LIMIT ?",
            (*params, limit),
        )
        return [to_incident(r) for r in rows]

    @_reading
    def incident_alerts(self, incident_id: str) -> list[Alert]:
        rows = self._read().execute(
            f"SELECT {ALERT_COLUMNS} FROM alert WHERE incident_id = ? ORDER BY first_seen",
            (incident_id,),
        )
        return [to_alert(r) for r in rows]

    @_reading
    def unmapped_alerts(self, limit: int = 100) -> list[Alert]:
        rows = self._read().execute(
            f"SELECT {ALERT_COLUMNS} FROM alert WHERE ci_id IS NULL "
            "ORDER BY last_seen DESC LIMIT ?",
            (limit,),
        )
        return [to_alert(r) for r in rows]

    @_reading
    def list_problems(self, limit: int = 100) -> list[Problem]:
        conn = self._read()
        rows = conn.execute(
            f"SELECT {PROBLEM_COLUMNS} FROM problem ORDER BY number DESC LIMIT ?", (limit,)
        ).fetchall()
        links = problem_incidents(conn, [r[0] for r in rows])
        return [to_problem(r, links.get(r[0], [])) for r in rows]

    @_reading
    def counts(self) -> dict[str, int]:
        conn = self._read()

        def one(sql: str) -> int:
            return int(conn.execute(sql).fetchone()[0])

        return {
            "inbox_pending": self.pending_count(),
            "events": inbox_file.stored(self._inbox._read()),
            "alerts": one("SELECT count(*) FROM alert"),
            "alerts_firing": one("SELECT count(*) FROM alert WHERE status = 'firing'"),
            "alerts_unmapped": one("SELECT count(*) FROM alert WHERE ci_id IS NULL"),
            "incidents": one("SELECT count(*) FROM incident"),
            "incidents_open": one("SELECT count(*) FROM incident WHERE status = 'open'"),
            "problems": one("SELECT count(*) FROM problem"),
        }
