"""SQLite adapter of correlation's port: the event inbox, and the unit that claims its
events and writes their effects through the ticket unit (``ticket_unit.py``).

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from servicegraph.cmdb.errors import StoreError
from servicegraph.correlation.ports import Claim
from servicegraph.events.model import Event
from servicegraph.storage.sqlite import inbox as inbox_file
from servicegraph.storage.sqlite.file import SqliteFile, to_us
from servicegraph.storage.sqlite.inbox import (
    INBOX_VERSION,
    event_key,
    migrate_inbox,
    sqlite_writer,
)
from servicegraph.storage.sqlite.incident_rows import dumps
from servicegraph.storage.sqlite.store import SqliteGraphStore
from servicegraph.storage.sqlite.ticket_unit import SqliteTicketUnit
from servicegraph.ticketing.sla_projection import SlaProjector


class _CorrelationUnit(SqliteTicketUnit):
    """A ticket unit that also claims inbox events and advances the cursor with them."""

    def __init__(
        self, conn: sqlite3.Connection, inbox: SqliteFile, sla: SlaProjector | None
    ) -> None:
        super().__init__(conn, sla)
        self._inbox = inbox
        self._claimed: tuple[int, int] | None = None  # (cursor before, last seq claimed)
        self.processed: tuple[int, dt.datetime] | None = None

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
    method: Callable[Concatenate[SqliteEventInbox, _P], _R],
) -> Callable[Concatenate[SqliteEventInbox, _P], _R]:
    """Driver errors of a read become ``StoreError``; a damaged file says what to do
    (``SqliteFile.error``), so that `servicegraph incidents` on it prints one line."""

    @functools.wraps(method)
    def read(self: SqliteEventInbox, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise self.file.error(exc, f"reading ({method.__name__})") from exc

    return read


class SqliteEventInbox:
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
        self._writer = sqlite_writer(self._inbox)
        self._sla: SlaProjector | None = None

    def close(self) -> None:
        self._inbox_stats.close()
        self._inbox.close()

    @property
    def file(self) -> SqliteGraphStore:
        """The SQLite file holding alerts and incidents (ticketing and tokens share it)."""
        return self._graph

    def append(self, events: Sequence[Event], received_at: dt.datetime) -> int:
        return self._writer.append(events, received_at)

    def check_writable(self, timeout: float) -> None:
        if self._writer.failure is not None:
            raise StoreError(f"the last append failed: {self._writer.failure}")
        inbox_file.probe_writable(self._inbox.path, timeout)

    def keep_sla(self, projector: SlaProjector) -> None:
        self._sla = projector

    @contextmanager
    def unit(self) -> Iterator[_CorrelationUnit]:
        with self._graph._transaction() as conn:
            unit = _CorrelationUnit(conn, self._inbox, self._sla)
            yield unit
            unit.flush_sla()
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
        return self.lag()[0]

    @_reading
    def latest_events(self, limit: int) -> list[tuple[int, Event, bool]]:
        cursor = _cursor(self._read())
        return [
            (seq, event, seq <= cursor)
            for seq, event in inbox_file.latest(self._inbox._read(), limit)
        ]

    @_reading
    def lag(self) -> tuple[int, dt.datetime | None]:
        return inbox_file.waiting(self._inbox._read(), _cursor(self._read()))

    def prune(self, before: dt.datetime) -> int:
        cursor = _cursor(self._read())
        with self._inbox._transaction() as conn:
            deleted, through = inbox_file.prune(conn, cursor, before)
        # what the graph file remembers of them goes with them: a pruned event is new again
        with self._graph._transaction() as graph:
            graph.execute("DELETE FROM inbox_seen WHERE seq <= ?", (through,))
        self._writer.forget()
        return deleted

    @_reading
    def counts(self) -> dict[str, int]:
        return {
            "inbox_pending": self.pending_count(),
            "events": inbox_file.stored(self._inbox._read()),
        }
