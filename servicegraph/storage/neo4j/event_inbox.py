"""Neo4j adapter of correlation's port: the durable event inbox, and the unit that claims
its events and writes their effects through the ticket unit (``ticket_unit.py``).

Why the inbox lives in Neo4j in this mode: hosts share nothing but Neo4j and Redis, and an
event must be persisted before its sender hears 2xx. In Neo4j, the claim, the effects and
the cursor commit in one transaction — exactly once with no second store to reconcile —
and a commit is durable (the transaction log is flushed before it returns). Redis would
need ``appendfsync always`` for the same promise and a two-store handshake for exactly
once; ``benchmarks/inbox_append.py`` measures both appends side by side.

The batches, the cursor and the keys of correlated events are the SQLite inbox's, as nodes
(``inbox_cypher.py``). Appends from several threads of one process commit together
(``sqlite.inbox.InboxWriter``, which is backend-neutral); a redelivery it recognises (by
the keys of the events this process appended lately) is not stored, and one it does not
(another API host received it) is dropped when claimed. While Neo4j is down an append
raises ``StoreUnavailable``: the webhook answers 503 with Retry-After, and the sender keeps
the event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import neo4j
from neo4j import ManagedTransaction

from servicegraph.cmdb.errors import StoreError, StoreUnavailable
from servicegraph.correlation.ports import Claim
from servicegraph.events.model import Event
from servicegraph.storage.neo4j import inbox_cypher as q
from servicegraph.storage.neo4j import schema
from servicegraph.storage.neo4j.records import Tx, run
from servicegraph.storage.neo4j.store import Neo4jGraphStore
from servicegraph.storage.neo4j.ticket_unit import Neo4jTicketUnit
from servicegraph.storage.sqlite.file import from_us, to_us
from servicegraph.storage.sqlite.inbox import InboxWriter, event_key, row_events
from servicegraph.ticketing.sla_projection import SlaProjector

# batches read per statement when claiming or listing (an append holds a webhook's alerts)
_PAGE = 100


def _counter(tx: Tx, name: str) -> int:
    record = run(tx, q.READ_COUNTER, name=name).single()
    if record is None:
        raise StoreError(
            f"the Neo4j database has no '{name}' counter; run migrations (servicegraph migrate)"
        )
    return int(record["value"])


def _read_events(tx: Tx, after: int, limit: int) -> list[tuple[int, Event]]:
    """Up to ``limit`` events numbered above ``after``, in sequence, with their numbers
    (``sqlite.inbox.read_events``)."""
    result: list[tuple[int, Event]] = []
    cursor = after
    while len(result) < limit:
        rows = list(run(tx, q.BATCHES_AFTER, after=cursor, limit=_PAGE))
        for r in rows:
            last, count = int(r["seq"]), int(r["events"])
            events = row_events(last, count, int(r["received_at"]), bytes(r["body"]))
            first = last - count + 1
            skip = max(0, after - first + 1)  # the batch's first events were claimed before
            for offset in range(skip, min(count, skip + limit - len(result))):
                result.append((first + offset, events[offset]))
            if len(result) >= limit:
                break
        if len(rows) < _PAGE:
            break
        cursor = int(rows[-1]["seq"])
    return result


class Neo4jCorrelationUnit(Neo4jTicketUnit):
    """A ticket unit that also claims inbox events and advances the cursor with them."""

    def __init__(self, tx: neo4j.Transaction, sla: SlaProjector | None, batch_size: int) -> None:
        super().__init__(tx, sla, batch_size)
        self._claimed: tuple[int, int] | None = None  # (cursor before, last number claimed)
        self.processed: tuple[int, dt.datetime] | None = None

    def claim_pending(self, limit: int) -> Claim:
        cursor = _counter(self._tx, q.SEQUENCE_CURSOR)
        claimed = _read_events(self._tx, cursor, limit)
        if not claimed:
            return Claim(0, [])
        self._claimed = (cursor, claimed[-1][0])
        keys = [event_key(event.event_id) for _, event in claimed]
        seen = {int(r["key"]) for r in run(self._tx, q.SEEN_KEYS, keys=list(set(keys)))}
        events: list[Event] = []
        fresh: list[dict[str, int]] = []
        for key, (seq, event) in zip(keys, claimed, strict=True):
            if key not in seen:  # a redelivery the webhook did not recognise is dropped
                seen.add(key)  # the same event twice in one claim counts once
                fresh.append({"key": key, "seq": seq})
                events.append(event)
        if fresh:
            run(self._tx, q.REMEMBER_KEYS, rows=fresh).consume()
        return Claim(len(claimed), events)

    def mark_processed(self, at: dt.datetime) -> None:
        to_us(at)  # a naive time fails here, inside the unit, not after it committed
        if self._claimed is None:
            return
        claimed_after, last = self._claimed
        if _counter(self._tx, q.SEQUENCE_CURSOR) != claimed_after:
            raise StoreError("inbox events were processed twice; another worker raced this one")
        run(self._tx, q.SET_CURSOR, value=last).consume()
        self.processed = (last, at)

    def forget_unprocessed(self) -> None:
        """Before the unit commits: a claim it did not mark processed leaves its events
        pending, so the keys it recorded as correlated go (or the next claim would drop the
        events as redeliveries)."""
        if self._claimed is not None and self.processed is None:
            claimed_after, last = self._claimed
            run(self._tx, q.FORGET_KEYS, after=claimed_after, through=last).consume()


class Neo4jEventInbox:
    """The inbox in the graph's Neo4j database (``graph``), shared by every host."""

    def __init__(self, graph: Neo4jGraphStore) -> None:
        self._graph = graph
        self._writer = InboxWriter(self._store_rows, self._newest_rows)
        self._sla: SlaProjector | None = None

    def close(self) -> None:
        """Nothing of its own to close: the graph store owns the driver."""

    @property
    def graph(self) -> Neo4jGraphStore:
        """The Neo4j store holding the inbox (and the desk's records beside the graph)."""
        return self._graph

    # -- appending -----------------------------------------------------------------------

    def _store_rows(self, rows: list[tuple[int, int, bytes]]) -> None:
        """One transaction: take the numbers, then create the batches. Not retried by the
        driver (``write_auto`` would be): a commit whose answer was lost may have stored
        the batches, and storing them again would number the events twice."""
        total = sum(count for count, _, _ in rows)
        with self._graph.transaction("appending events to the inbox") as tx:
            record = run(tx, q.TAKE_NUMBERS, count=total).single()
            if record is None:
                raise StoreError(
                    "the Neo4j database has no inbox counter; run migrations (servicegraph migrate)"
                )
            seq = int(record["value"]) - total
            batches: list[dict[str, Any]] = []
            for count, received_us, body in rows:
                seq += count
                batches.append(
                    {"seq": seq, "events": count, "received_at": received_us, "body": body}
                )
            run(tx, q.APPEND_BATCHES, rows=batches).consume()

    def _newest_rows(self) -> Iterator[tuple[int, bytes]]:
        before = 2**63 - 1
        while True:

            def page(tx: ManagedTransaction, after: int = before) -> list[tuple[int, int, bytes]]:
                rows = run(tx, q.NEWEST_BATCHES, after=after, limit=_PAGE)
                return [(int(r["seq"]), int(r["events"]), bytes(r["body"])) for r in rows]

            rows = self._graph.read("reading the latest inbox events", page)
            for _, count, body in rows:
                yield count, body
            if len(rows) < _PAGE:
                return
            before = rows[-1][0]

    def append(self, events: Sequence[Event], received_at: dt.datetime) -> int:
        return self._writer.append(events, received_at)

    def check_writable(self, timeout: float) -> None:
        if self._writer.failure is not None:
            raise StoreError(f"the last append failed: {self._writer.failure}")
        try:
            with self._graph.transaction("checking the inbox can be written", timeout) as tx:
                _counter(tx, q.SEQUENCE_INBOX)
        except StoreUnavailable as exc:
            raise StoreError(f"the inbox cannot be written: {exc}") from exc

    def keep_sla(self, projector: SlaProjector) -> None:
        self._sla = projector

    # -- correlation units -----------------------------------------------------------------

    @contextmanager
    def unit(self) -> Iterator[Neo4jCorrelationUnit]:
        with self._graph.locked("a correlation batch", schema.DESK_LOCK) as tx:
            unit = Neo4jCorrelationUnit(tx, self._sla, self._graph.batch_size)
            yield unit
            unit.flush_sla()
            unit.forget_unprocessed()

    # -- reading -------------------------------------------------------------------------

    def pending_count(self) -> int:
        return self.lag()[0]

    def latest_events(self, limit: int) -> list[tuple[int, Event, bool]]:
        def work(tx: ManagedTransaction) -> list[tuple[int, Event, bool]]:
            cursor = _counter(tx, q.SEQUENCE_CURSOR)
            result: list[tuple[int, Event, bool]] = []
            before = 2**63 - 1
            while len(result) < limit:
                rows = list(run(tx, q.NEWEST_BATCHES, after=before, limit=_PAGE))
                for r in rows:
                    last, count = int(r["seq"]), int(r["events"])
                    events = row_events(last, count, int(r["received_at"]), bytes(r["body"]))
                    for offset, event in enumerate(reversed(events[-(limit - len(result)) :])):
                        result.append((last - offset, event, last - offset <= cursor))
                    if len(result) >= limit:
                        break
                if len(rows) < _PAGE:
                    break
                before = int(rows[-1]["seq"])
            return result

        return self._graph.read("reading the latest inbox events", work)

    def lag(self) -> tuple[int, dt.datetime | None]:
        def work(tx: ManagedTransaction) -> tuple[int, int | None]:
            cursor = _counter(tx, q.SEQUENCE_CURSOR)
            record = run(tx, q.WAITING, after=cursor).single()
            assert record is not None  # an aggregate always returns a row
            return int(record["count"]), record["oldest"]

        count, oldest = self._graph.read("reading the inbox lag", work)
        return count, None if oldest is None else from_us(oldest)

    def prune(self, before: dt.datetime) -> int:
        before_us = to_us(before)
        limit = self._graph.batch_size
        deleted = 0
        # Under the desk lock, so that no correlation unit claims while the prefix goes;
        # in bounded batches, one transaction each, so that a prune of millions of events
        # never holds them all in one transaction's memory.
        with self._graph.locked("pruning the inbox", schema.DESK_LOCK) as tx:
            cursor = _counter(tx, q.SEQUENCE_CURSOR)
            record = run(tx, q.FIRST_KEPT, after=cursor, before_us=before_us).single()
            through = cursor if record is None else min(cursor, int(record["through"]))
        while True:
            with self._graph.locked("pruning the inbox", schema.DESK_LOCK) as tx:
                pruned = run(tx, q.PRUNE_BATCHES, through=through, limit=limit).single()
            assert pruned is not None
            deleted += int(pruned["events"])
            if int(pruned["batches"]) < limit:
                break
        # what the desk remembers of them goes with them: a pruned event is new again
        while True:
            with self._graph.locked("pruning the inbox", schema.DESK_LOCK) as tx:
                seen = run(tx, q.PRUNE_SEEN, through=through, limit=limit).single()
            assert seen is not None
            if int(seen["deleted"]) < limit:
                break
        self._writer.forget()
        return deleted

    def counts(self) -> dict[str, int]:
        def work(tx: ManagedTransaction) -> int:
            record = run(tx, q.STORED).single()
            return 0 if record is None else int(record["count"])

        return {
            "inbox_pending": self.pending_count(),
            "events": self._graph.read("counting inbox events", work),
        }
