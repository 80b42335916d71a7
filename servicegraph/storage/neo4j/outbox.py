"""Neo4j adapter of the notification outbox: the writer's side (``enqueue``, which the
ticket unit calls in its transaction) and the sender's (``Neo4jOutboxStore``, the
``ticketing.outbox.OutboxStore`` port), mirroring ``storage.sqlite.outbox``.

The messages are ``(:OutboxMessage)`` nodes in the database of the tickets, written in
the transaction of the change that causes them, so a message exists exactly when its
change committed. Each sender operation is one short transaction holding the desk lock
(``schema.DESK_LOCK``), as each is one ``BEGIN IMMEDIATE`` in SQLite: Neo4j runs read
committed, and the lock is what makes a claim's read-then-lease safe, so two senders on
two hosts never hold the same message. No transaction is open while a message is on the
wire, so a slow SMTP server never holds the lock that ticket work needs.

Every statement is in ``outbox_cypher.py``; the rows are SQLite's (``outbox_row``,
``outbox_entry``), so both adapters store and read the same values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from neo4j import ManagedTransaction, Transaction

from servicegraph.cmdb.errors import StoreUnavailable
from servicegraph.storage.neo4j import cypher, outbox_cypher, schema
from servicegraph.storage.neo4j.records import Tx, batches, run, unique
from servicegraph.storage.sqlite.file import to_us
from servicegraph.storage.sqlite.outbox import MAX_ERROR, outbox_entry
from servicegraph.storage.sqlite.ticket_unit import outbox_row
from servicegraph.ticketing.outbox import OutboxCounts, OutboxEntry, OutboxMessage, RetryPolicy

if TYPE_CHECKING:  # the store imports the schema, which imports the catalogues
    from servicegraph.storage.neo4j.store import Neo4jGraphStore

T = TypeVar("T")

# the columns ``outbox_row`` fills, in its order (the others: defaults or null)
_ROW_COLUMNS = (
    "key",
    "event",
    "ticket_id",
    "channel",
    "target",
    "subject",
    "body",
    "created_at",
    "next_attempt_at",
)
_BATCH = 500  # messages per statement when the caller gives no batch size


def _record_entry(record: Any) -> OutboxEntry:
    return outbox_entry(tuple(record[c] for c in outbox_cypher.COLUMNS))


def enqueue(tx: Tx, messages: Sequence[OutboxMessage], *, batch_size: int = _BATCH) -> None:
    """Queue ``messages`` in ``tx`` (a transaction holding the desk lock): a message whose
    key is already queued, or repeated in ``messages``, is not queued again (the first
    one wins, as SQLite's ``INSERT OR IGNORE``). Due at once (``next_attempt_at`` =
    ``created_at``); a naive ``created_at`` is refused before anything is written."""
    rows: dict[str, dict[str, Any]] = {}
    for m in messages:
        if m.key not in rows:
            rows[m.key] = {"attempts": 0, **dict(zip(_ROW_COLUMNS, outbox_row(m), strict=True))}
    if not rows:
        return
    keys = list(rows)
    for some_keys in batches(keys, batch_size):
        for queued in run(tx, outbox_cypher.QUEUED_KEYS, keys=list(some_keys)):
            rows.pop(queued["key"], None)
    fresh = list(rows.values())
    if not fresh:
        return
    counter = run(
        tx, cypher.ADVANCE_SEQUENCE, name=outbox_cypher.SEQUENCE_OUTBOX, count=len(fresh)
    ).single()
    if counter is None:
        raise StoreUnavailable("the Neo4j database has no outbox counter; run migrations")
    first = int(counter["value"]) - len(fresh) + 1
    for offset, row in enumerate(fresh):
        row["id"] = first + offset
    for batch in batches(fresh, batch_size):
        run(tx, outbox_cypher.ENQUEUE, rows=list(batch)).consume()


class Neo4jOutboxStore:
    """``ticketing.outbox.OutboxStore`` over a ``Neo4jGraphStore``'s database."""

    def __init__(self, graph: Neo4jGraphStore) -> None:
        self._graph = graph

    def _locked(self, purpose: str, work: Callable[[Transaction], T]) -> T:
        return self._graph.run_locked(purpose, schema.DESK_LOCK, work)

    def claim(
        self, now: dt.datetime, *, limit: int, lease: dt.timedelta, max_attempts: int
    ) -> list[OutboxEntry]:
        at, until = to_us(now), to_us(now + lease)

        def work(tx: Transaction) -> list[OutboxEntry]:
            run(tx, outbox_cypher.DEAD_LETTER_ABANDONED, at=at, max_attempts=max_attempts).consume()
            records = run(
                tx,
                outbox_cypher.CLAIM,
                at=at,
                max_attempts=max_attempts,
                limit=limit,
                until=until,
            )
            return [_record_entry(r) for r in records]

        entries = self._locked("claiming outbox messages", work)
        return sorted(entries, key=lambda e: (e.next_attempt_at, e.id))

    def mark_sent(self, entry_id: int, at: dt.datetime) -> None:
        sent = to_us(at)
        self._locked(
            "marking an outbox message sent",
            lambda tx: run(tx, outbox_cypher.MARK_SENT, id=entry_id, at=sent).consume(),
        )

    def mark_failed(
        self, entry_id: int, at: dt.datetime, error: str, *, retry: RetryPolicy
    ) -> dt.datetime | None:
        failed = to_us(at)

        def work(tx: Transaction) -> tuple[bool, dt.datetime | None]:
            record = run(tx, outbox_cypher.WAITING_ATTEMPTS, id=entry_id).single()
            if record is None:  # sent or dead-lettered meanwhile (a retry from the CLI)
                return False, None
            due = retry.next_attempt(int(record["attempts"]), at)
            if due is None:
                statement, params = outbox_cypher.DEAD_LETTER, {"dead": failed}
            else:
                statement, params = outbox_cypher.RESCHEDULE, {"due": to_us(due)}
            run(tx, statement, id=entry_id, error=error[:MAX_ERROR], **params).consume()
            return True, due

        _, due = self._locked("recording a failed delivery", work)
        return due

    def release(self, entry_ids: Sequence[int]) -> None:
        if not entry_ids:
            return
        ids = unique(int(i) for i in entry_ids)

        def work(tx: Transaction) -> None:
            for batch in batches(ids, self._graph.batch_size):
                run(tx, outbox_cypher.RELEASE, ids=list(batch)).consume()

        self._locked("releasing outbox messages", work)

    def dead_letters(self, *, limit: int = 100) -> list[OutboxEntry]:
        def work(tx: ManagedTransaction) -> list[OutboxEntry]:
            return [_record_entry(r) for r in run(tx, outbox_cypher.DEAD_LETTERS, limit=limit)]

        return self._graph.read("reading dead letters", work)

    def retry(self, entry_ids: Sequence[int] | None, now: dt.datetime) -> int:
        at = to_us(now)

        def work(tx: Transaction) -> int:
            if entry_ids is None:
                record = run(tx, outbox_cypher.RETRY_ALL, at=at).single()
                return 0 if record is None else int(record["count"])
            total = 0
            for batch in batches(unique(int(i) for i in entry_ids), self._graph.batch_size):
                record = run(tx, outbox_cypher.RETRY_IDS, ids=list(batch), at=at).single()
                total += 0 if record is None else int(record["count"])
            return total

        return self._locked("retrying dead letters", work)

    def get(self, entry_ids: Sequence[int]) -> dict[int, OutboxEntry]:
        ids = unique(int(i) for i in entry_ids)

        def work(tx: ManagedTransaction) -> dict[int, OutboxEntry]:
            found: dict[int, OutboxEntry] = {}
            for batch in batches(ids, self._graph.batch_size):
                for r in run(tx, outbox_cypher.GET, ids=list(batch)):
                    entry = _record_entry(r)
                    found[entry.id] = entry
            return found

        return self._graph.read("reading the outbox", work)

    def counts(self) -> OutboxCounts:
        def work(tx: ManagedTransaction) -> OutboxCounts:
            record = run(tx, outbox_cypher.COUNTS).single()
            if record is None:
                return OutboxCounts(pending=0, sent=0, dead=0)
            return OutboxCounts(
                pending=int(record["pending"]), sent=int(record["sent"]), dead=int(record["dead"])
            )

        return self._graph.read("counting the outbox", work)

    def prune_sent(self, before: dt.datetime) -> int:
        # In bounded batches, each its own short locked transaction: a long retention's
        # worth of sent messages never makes one huge transaction, and what one batch
        # deleted stays deleted (a prune is idempotent).
        cutoff, size = to_us(before), self._graph.batch_size

        def work(tx: Transaction) -> int:
            record = run(tx, outbox_cypher.PRUNE_SENT, before=cutoff, limit=size).single()
            return 0 if record is None else int(record["count"])

        total = 0
        while True:
            deleted = self._locked("pruning sent messages", work)
            total += deleted
            if deleted < size:
                return total
