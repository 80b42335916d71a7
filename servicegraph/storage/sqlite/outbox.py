"""SQLite adapter of the notification outbox's sender side (``ticketing.outbox.OutboxStore``).

The messages are rows of ``notification_outbox`` (migration 12) in the file that holds
tickets: ``TicketUnit.enqueue`` writes them in the transaction of the change that causes
them. Here each operation is one short ``BEGIN IMMEDIATE`` transaction: a claim leases
the due rows it returns (``claimed_until``) inside the write lock, so two senders, in
this process or another, never hold the same message; a delivery is ended one row at a
time. No transaction is open while a message is on the wire, so a slow SMTP server never
holds the lock that ticket work needs.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from servicegraph.storage.sqlite.file import SqliteFile, from_us, to_us
from servicegraph.ticketing.outbox import (
    OutboxChannel,
    OutboxCounts,
    OutboxEntry,
    OutboxMessage,
    RetryPolicy,
)

_COLUMNS = (
    "id, key, event, ticket_id, channel, target, subject, body, created_at, attempts, "
    "next_attempt_at, claimed_until, sent_at, dead_at, last_error"
)
# word for word the condition of the partial index notification_outbox_due (migration 12):
# SQLite reads a partial index only for a query that says its condition as written
_WAITING = "sent_at IS NULL AND dead_at IS NULL"
MAX_ERROR = 2000  # characters of an error kept in last_error


def _opt(value: int | None) -> dt.datetime | None:
    return None if value is None else from_us(value)


def outbox_entry(r: tuple[Any, ...]) -> OutboxEntry:
    """The entry of a row; the Neo4j adapter reads its nodes through it too."""
    message = OutboxMessage(
        key=r[1],
        event=r[2],
        ticket_id=r[3],
        channel=OutboxChannel(r[4]),
        target=r[5],
        subject=r[6],
        body=r[7],
        created_at=from_us(r[8]),
    )
    return OutboxEntry(
        id=r[0],
        message=message,
        attempts=r[9],
        next_attempt_at=from_us(r[10]),
        claimed_until=_opt(r[11]),
        sent_at=_opt(r[12]),
        dead_at=_opt(r[13]),
        last_error=r[14],
    )


def _ids(values: Sequence[int]) -> str:
    return json.dumps([int(v) for v in values])


class SqliteOutboxStore:
    def __init__(self, file: SqliteFile) -> None:
        self._file = file

    def claim(
        self, now: dt.datetime, *, limit: int, lease: dt.timedelta, max_attempts: int
    ) -> list[OutboxEntry]:
        at = to_us(now)
        with self._file._transaction() as conn:
            # a message whose lease ran out after its last allowed attempt: its sender
            # died while sending it, each time; tried no more
            conn.execute(
                f"UPDATE notification_outbox SET dead_at = ?, claimed_until = NULL, "
                "last_error = 'the sender stopped while sending it, ' || attempts || "
                "' times' || coalesce('; before: ' || last_error, '') "
                f"WHERE {_WAITING} AND next_attempt_at <= ? AND attempts >= ? "
                "AND claimed_until IS NOT NULL AND claimed_until <= ?",
                (at, at, max_attempts, at),
            )
            rows = conn.execute(
                f"UPDATE notification_outbox SET attempts = attempts + 1, claimed_until = ? "
                f"WHERE id IN (SELECT id FROM notification_outbox WHERE {_WAITING} "
                "AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?) "
                "AND attempts < ? ORDER BY next_attempt_at, id LIMIT ?) "
                f"RETURNING {_COLUMNS}",
                (to_us(now + lease), at, at, max_attempts, limit),
            ).fetchall()
        return sorted((outbox_entry(r) for r in rows), key=lambda e: (e.next_attempt_at, e.id))

    def mark_sent(self, entry_id: int, at: dt.datetime) -> None:
        with self._file._transaction() as conn:
            conn.execute(
                "UPDATE notification_outbox SET sent_at = ?, claimed_until = NULL "
                "WHERE id = ? AND sent_at IS NULL",
                (to_us(at), entry_id),
            )

    def mark_failed(
        self, entry_id: int, at: dt.datetime, error: str, *, retry: RetryPolicy
    ) -> dt.datetime | None:
        with self._file._transaction() as conn:
            row = conn.execute(
                f"SELECT attempts FROM notification_outbox WHERE id = ? AND {_WAITING}",
                (entry_id,),
            ).fetchone()
            if row is None:  # sent or dead-lettered meanwhile (a retry from the CLI)
                return None
            attempts = int(row[0])
            due = retry.next_attempt(attempts, at)
            conn.execute(
                "UPDATE notification_outbox SET claimed_until = NULL, last_error = ?, "
                "next_attempt_at = coalesce(?, next_attempt_at), dead_at = ? WHERE id = ?",
                (
                    error[:MAX_ERROR],
                    None if due is None else to_us(due),
                    to_us(at) if due is None else None,
                    entry_id,
                ),
            )
        return due

    def release(self, entry_ids: Sequence[int]) -> None:
        if not entry_ids:
            return
        with self._file._transaction() as conn:
            conn.execute(
                "UPDATE notification_outbox SET claimed_until = NULL, "
                "attempts = max(attempts - 1, 0) "
                f"WHERE id IN (SELECT value FROM json_each(?)) AND {_WAITING}",
                (_ids(entry_ids),),
            )

    def dead_letters(self, *, limit: int = 100) -> list[OutboxEntry]:
        with self._file.errors("reading dead letters"):
            rows = (
                self._file._read()
                .execute(
                    f"SELECT {_COLUMNS} FROM notification_outbox WHERE dead_at IS NOT NULL "
                    "ORDER BY dead_at DESC, id DESC LIMIT ?",
                    (limit,),
                )
                .fetchall()
            )
        return [outbox_entry(r) for r in rows]

    def retry(self, entry_ids: Sequence[int] | None, now: dt.datetime) -> int:
        which = "" if entry_ids is None else " AND id IN (SELECT value FROM json_each(?))"
        params: tuple[Any, ...] = (to_us(now),) + (() if entry_ids is None else (_ids(entry_ids),))
        with self._file._transaction() as conn:
            cursor = conn.execute(
                "UPDATE notification_outbox SET dead_at = NULL, attempts = 0, "
                "claimed_until = NULL, next_attempt_at = ? "
                f"WHERE dead_at IS NOT NULL AND sent_at IS NULL{which}",
                params,
            )
            return cursor.rowcount

    def get(self, entry_ids: Sequence[int]) -> dict[int, OutboxEntry]:
        with self._file.errors("reading the outbox"):
            rows = (
                self._file._read()
                .execute(
                    f"SELECT {_COLUMNS} FROM notification_outbox "
                    "WHERE id IN (SELECT value FROM json_each(?))",
                    (_ids(entry_ids),),
                )
                .fetchall()
            )
        return {r[0]: outbox_entry(r) for r in rows}

    def counts(self) -> OutboxCounts:
        with self._file.errors("counting the outbox"):
            row = (
                self._file._read()
                .execute(
                    "SELECT coalesce(sum(sent_at IS NULL AND dead_at IS NULL), 0), "
                    "coalesce(sum(sent_at IS NOT NULL), 0), coalesce(sum(dead_at IS NOT NULL), 0) "
                    "FROM notification_outbox"
                )
                .fetchone()
            )
        return OutboxCounts(pending=int(row[0]), sent=int(row[1]), dead=int(row[2]))

    def prune_sent(self, before: dt.datetime) -> int:
        with self._file._transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM notification_outbox WHERE sent_at IS NOT NULL AND sent_at < ?",
                (to_us(before),),
            )
            return cursor.rowcount
