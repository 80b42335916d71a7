"""The durable event inbox: a SQLite file of its own (``<name>-inbox.sqlite3``,
synchronous=FULL so that an accepted event survives a power cut), appended to by the
webhooks and read in sequence by correlation units.

Appending is the webhooks' hot path, so the inbox table has no index beside its sequence:
a UNIQUE index on event ids, which senders derive from hashes (Alertmanager's
fingerprints), dirties another page for almost every event, and every commit writes and
fsyncs all of them (4 ms for 100 events, where the rows alone take well under 1 ms).
Redeliveries are recognised twice instead:

- at once, against the keys of the events appended lately (``RecentKeys``, in memory,
  loaded from the end of the file on first use): the sender is told they are duplicates
  and nothing is stored;
- for certain, when correlated: the graph file keeps the key of every event correlated
  (``inbox_seen``), and the correlation unit that claims a redelivery the first check
  missed (another process appended it, or it is older than the memory reaches) drops it
  in the transaction that advances the cursor.

An event key is the 64-bit BLAKE2b digest of the event id: two different ids share one
with a probability of about 3e-6 among ten million retained events.

Appends from several threads commit together (``InboxWriter``): the first thread in
commits what the others queued meanwhile, one transaction and one fsync for all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

import msgspec

from servicegraph.cmdb.errors import SchemaTooNew, StoreError
from servicegraph.cmdb.store.sqlite.store import SqliteFile, SqliteGraphStore, from_us, to_us
from servicegraph.correlation.model import Event, EventStatus, Severity

INBOX_VERSION = 1

# version 1; version 0 (before the version was kept) had a UNIQUE event_id and a
# processed_at stamp per event
_SCHEMA = (
    """
CREATE TABLE inbox (
    -- AUTOINCREMENT: a sequence never restarts below the correlation cursor, not even
    -- after pruning has emptied the table
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_key    INTEGER NOT NULL,
    event_id     TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    source       TEXT NOT NULL,
    name         TEXT NOT NULL,
    status       TEXT NOT NULL,
    severity     INTEGER NOT NULL,
    occurred_at  INTEGER NOT NULL,
    fingerprint  TEXT NOT NULL,
    labels       TEXT NOT NULL,
    summary      TEXT NOT NULL
)""",
    # when each correlation batch committed: one row per batch, not an update per event
    """
CREATE TABLE inbox_processed (
    last_seq     INTEGER PRIMARY KEY,
    processed_at INTEGER NOT NULL
)""",
)

_EVENT_COLUMNS = (
    "event_id, received_at, source, name, status, severity, occurred_at, fingerprint, labels, "
    "summary"
)
INSERT_EVENTS = (
    f"INSERT INTO inbox (event_key, {_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_EVENTS = f"SELECT seq, event_key, {_EVENT_COLUMNS} FROM inbox"


# Labels are stored as compact JSON (UTF-8, keys in order); msgspec's encoder takes a
# sixth of the time of the standard library's on a handful of labels, its decoder half.
_encode_json = msgspec.json.Encoder().encode
# untyped: a row written by an older version decodes whatever it holds
_decode_labels = msgspec.json.Decoder().decode


def event_key(event_id: str) -> int:
    """The 64-bit key an event is deduplicated by (a signed SQLite integer)."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def event_row(e: Event, received_us: int) -> tuple[Any, ...]:
    return (
        event_key(e.event_id),
        e.event_id,
        received_us,
        e.source,
        e.name,
        e.status.value,
        int(e.severity),
        to_us(e.occurred_at),
        e.fingerprint,
        _encode_json(e.labels).decode(),
        e.summary,
    )


def row_event(r: Sequence[Any]) -> Event:
    """An event from the columns after ``seq`` and ``event_key`` of ``SELECT_EVENTS``."""
    return Event(
        event_id=r[0],
        received_at=from_us(r[1]),
        source=r[2],
        name=r[3],
        status=EventStatus(r[4]),
        severity=Severity(r[5]),
        occurred_at=from_us(r[6]),
        fingerprint=r[7],
        labels=_decode_labels(r[8]),
        summary=r[9],
    )


def migrate_inbox(inbox: SqliteFile, graph: SqliteGraphStore) -> None:
    """Create the inbox, or bring an older one to ``INBOX_VERSION``."""
    with inbox._transaction() as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > INBOX_VERSION:
            raise SchemaTooNew(
                f"{inbox.path} has inbox version {version} but this servicegraph knows only up "
                f"to {INBOX_VERSION}; upgrade servicegraph"
            )
        if version == INBOX_VERSION:
            return
        old = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'inbox'"
        ).fetchone()
    if old is not None:
        _remember_correlated(inbox, graph)
    with inbox._transaction() as conn:
        if conn.execute("PRAGMA user_version").fetchone()[0] == INBOX_VERSION:
            return  # another process migrated it meanwhile
        if old is not None:
            conn.execute("ALTER TABLE inbox RENAME TO inbox_v0")
        for statement in _SCHEMA:
            conn.execute(statement)
        if old is not None:
            conn.create_function("event_key", 1, event_key, deterministic=True)
            conn.execute(
                f"INSERT INTO inbox (seq, event_key, {_EVENT_COLUMNS}) "
                f"SELECT seq, event_key(event_id), {_EVENT_COLUMNS} FROM inbox_v0"
            )
            conn.execute(
                "INSERT INTO inbox_processed (last_seq, processed_at) "
                "SELECT max(seq), processed_at FROM inbox_v0 WHERE processed_at IS NOT NULL "
                "GROUP BY processed_at"
            )
            conn.execute("DROP TABLE inbox_v0")
        conn.execute(f"PRAGMA user_version = {INBOX_VERSION}")


def _remember_correlated(inbox: SqliteFile, graph: SqliteGraphStore) -> None:
    """Before a version-0 inbox loses its unique event ids: the keys of the events already
    correlated go to ``inbox_seen``, so that their redeliveries stay recognised."""
    with graph._transaction() as conn:
        has_seen = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'inbox_seen'"
        ).fetchone()
        if has_seen is None:
            return  # the graph file is not migrated yet; nothing was correlated with it
        row = conn.execute("SELECT value FROM meta WHERE key = 'inbox_cursor'").fetchone()
        cursor = 0 if row is None else int(row[0])
        rows = inbox._read().execute(
            "SELECT seq, event_id FROM inbox WHERE seq <= ? ORDER BY seq", (cursor,)
        )
        conn.executemany(
            "INSERT OR IGNORE INTO inbox_seen (key, seq) VALUES (?, ?)",
            ((event_key(event_id), seq) for seq, event_id in rows),
        )


class RecentKeys:
    """The keys of the last events appended: two generations of at most ``capacity`` each,
    so memory stays bounded and a lookup is one or two set probes."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._new: set[int] = set()
        self._old: set[int] = set()

    def __contains__(self, key: int) -> bool:
        return key in self._new or key in self._old

    def update(self, keys: set[int]) -> None:
        self._new |= keys
        if len(self._new) >= self.capacity:
            self._old, self._new = self._new, set()


class _Append:
    __slots__ = ("error", "rows", "stored")

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.stored = -1
        self.error: BaseException | None = None


class InboxWriter:
    """Appends events: redeliveries it recognises are left out, and what threads append
    at the same time is committed in one transaction (group commit)."""

    RECENT_KEYS = 100_000

    def __init__(self, inbox: SqliteFile) -> None:
        self._inbox = inbox
        self._queue: list[_Append] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._recent: RecentKeys | None = None  # loaded on first use: CLI runs never need it

    def append(self, events: Sequence[Event], received_at: dt.datetime) -> int:
        """Persist events durably before returning; returns how many were stored."""
        if not events:
            return 0
        when = to_us(received_at)
        job = _Append([event_row(e, when) for e in events])
        with self._queue_lock:
            self._queue.append(job)
        with self._commit_lock:
            if job.stored < 0 and job.error is None:  # no other thread committed it yet
                with self._queue_lock:
                    jobs, self._queue = self._queue, []
                self._commit(jobs)
        if job.error is not None:
            raise job.error
        return job.stored

    def forget(self) -> None:
        """Drop the remembered keys (after pruning: a pruned event is new again)."""
        with self._commit_lock:
            self._recent = None

    def _commit(self, jobs: list[_Append]) -> None:
        try:
            recent = self._recent if self._recent is not None else self._load_recent()
            self._recent = recent
            fresh: set[int] = set()
            rows: list[tuple[Any, ...]] = []
            stored: list[int] = []
            for job in jobs:
                before = len(rows)
                for row in job.rows:
                    key = row[0]
                    if key not in recent and key not in fresh:
                        fresh.add(key)
                        rows.append(row)
                stored.append(len(rows) - before)
            if rows:
                with self._inbox._transaction() as conn:
                    conn.executemany(INSERT_EVENTS, rows)
        except BaseException as exc:  # each sender of the group gets it; none waits on
            error = exc  # a commit that will not come (CmdbError: the store's own errors)
            if isinstance(exc, sqlite3.Error):
                error = StoreError(f"cannot persist events to the inbox: {exc}")
            for job in jobs:
                job.error = error
            return
        recent.update(fresh)  # only once committed: a failed append is no duplicate later
        for job, count in zip(jobs, stored, strict=True):
            job.stored = count

    def _load_recent(self) -> RecentKeys:
        recent = RecentKeys(self.RECENT_KEYS)
        rows = (
            self._inbox._read()
            .execute(
                "SELECT event_key FROM (SELECT seq, event_key FROM inbox ORDER BY seq DESC "
                "LIMIT ?) ORDER BY seq",
                (self.RECENT_KEYS,),
            )
            .fetchall()
        )
        step = max(1, self.RECENT_KEYS // 2)
        for start in range(0, len(rows), step):
            recent.update({key for (key,) in rows[start : start + step]})
        return recent
