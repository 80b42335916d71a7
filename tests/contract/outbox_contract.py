"""The behaviour every backend of the outbox's sender side owes the sender job, as documented
in ``servicegraph.ticketing.outbox.OutboxStore``: claims lease what they return (never the
same message to two claimers, threads or processes), attempts are counted at the claim,
failures back off deterministically and end as dead letters, a sender that died holding
messages gives them up when the lease is over (and dead-letters one that killed it every
time), dead letters are listed and retried, sent messages pruned.

A backend's test module subclasses ``OutboxContract``, sets ``__test__ = True`` and
provides the fixtures: ``outbox``, the store over an empty, migrated backend;
``enqueue``, a callable that queues messages as a ticket unit does (``TicketUnit.enqueue``,
one unit per call); ``claim_in_process``, a picklable callable that another process runs
with a queue: it opens its own store over the same data, claims until nothing is left and
puts the ids it got on the queue; ``failing_outbox``, a store whose backend fails
underneath (a damaged file, a lost server).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

import pytest

from servicegraph.cmdb.errors import StoreError, StoreUnavailable
from servicegraph.ticketing.outbox import OutboxChannel, OutboxMessage, OutboxStore, RetryPolicy

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(minutes=5)

Enqueue = Callable[..., None]


def message(n: int, at: dt.datetime = T0) -> OutboxMessage:
    return OutboxMessage(
        key=f"inc-{n}.created.k{n}",
        event="created",
        ticket_id=f"inc-{n}",
        channel=OutboxChannel.EMAIL,
        target=f"user{n}@example.org",
        subject=f"subject {n}",
        body=f"body {n}",
        created_at=at,
    )


def claim_all(outbox: OutboxStore, *, limit: int) -> list[int]:
    """What a claimer in another process does: claim until nothing is due."""
    mine: list[int] = []
    while batch := outbox.claim(T0, limit=limit, lease=LEASE, max_attempts=3):
        mine += [e.id for e in batch]
    return mine


class OutboxContract:
    """Subclass per backend; override the fixtures (see the module's docstring)."""

    __test__ = False

    @pytest.fixture
    def outbox(self) -> OutboxStore:
        raise NotImplementedError("a backend's test class provides the outbox fixture")

    @pytest.fixture
    def enqueue(self) -> Enqueue:
        raise NotImplementedError("a backend's test class provides the enqueue fixture")

    @pytest.fixture
    def claim_in_process(self) -> Callable[[Any], None]:
        raise NotImplementedError("a backend's test class provides claim_in_process")

    @pytest.fixture
    def failing_outbox(self) -> OutboxStore:
        raise NotImplementedError("a backend's test class provides failing_outbox")

    def test_a_claim_leases_due_messages_oldest_first(
        self, outbox: OutboxStore, enqueue: Enqueue
    ) -> None:
        enqueue(message(2, T0 + dt.timedelta(seconds=1)), message(1), message(3, T0 + LEASE))
        enqueue(message(1))  # the same key again: ignored
        assert outbox.counts().pending == 3
        first = outbox.claim(T0 + dt.timedelta(seconds=5), limit=10, lease=LEASE, max_attempts=3)
        assert [e.message.key for e in first] == ["inc-1.created.k1", "inc-2.created.k2"]
        assert all(e.attempts == 1 for e in first)
        assert first[0].claimed_until == T0 + dt.timedelta(seconds=5) + LEASE
        assert first[0].message == message(1)
        # leased: a second claim gets only what was not claimed and is due
        later = T0 + LEASE
        assert [
            e.message.key for e in outbox.claim(later, limit=10, lease=LEASE, max_attempts=3)
        ] == ["inc-3.created.k3"]
        # the lease over, unmarked messages are claimed again (their sender died)
        again = outbox.claim(later + LEASE, limit=10, lease=LEASE, max_attempts=3)
        assert [(e.message.key, e.attempts) for e in again] == [
            ("inc-1.created.k1", 2),
            ("inc-2.created.k2", 2),
            ("inc-3.created.k3", 2),
        ]

    def test_a_repeated_key_in_one_unit_is_queued_once_the_first_wins(
        self, outbox: OutboxStore, enqueue: Enqueue
    ) -> None:
        other = OutboxMessage(**{**_fields(message(1)), "subject": "another subject"})
        enqueue(message(1), other, message(2))
        claimed = outbox.claim(T0, limit=10, lease=LEASE, max_attempts=3)
        assert [e.message for e in claimed] == [message(1), message(2)]
        assert len({e.id for e in claimed}) == 2
        enqueue()  # nothing to queue: nothing happens
        assert outbox.counts().pending == 2

    def test_a_message_without_a_ticket_keeps_its_fields(
        self, outbox: OutboxStore, enqueue: Enqueue
    ) -> None:
        hook = OutboxMessage(
            key="digest.2026-11-02",
            event="digest",
            ticket_id=None,
            channel=OutboxChannel.WEBHOOK,
            target="ops-hook",
            subject="",
            body='{"tickets": []}',
            created_at=T0 + dt.timedelta(microseconds=7),
        )
        enqueue(hook)
        (entry,) = outbox.claim(T0 + dt.timedelta(seconds=1), limit=5, lease=LEASE, max_attempts=3)
        assert entry.message == hook
        assert entry.next_attempt_at == hook.created_at
        assert entry.sent_at is None and entry.dead_at is None and entry.last_error is None

    def test_failures_back_off_then_become_dead_letters_that_can_be_retried(
        self, outbox: OutboxStore, enqueue: Enqueue
    ) -> None:
        policy = RetryPolicy(
            max_attempts=3, base=dt.timedelta(seconds=10), cap=dt.timedelta(hours=1)
        )
        enqueue(message(1))
        now = T0
        schedule = []
        for _ in range(3):
            (entry,) = outbox.claim(now, limit=5, lease=LEASE, max_attempts=3)
            due = outbox.mark_failed(
                entry.id, now, f"451 try later ({entry.attempts})", retry=policy
            )
            schedule.append(None if due is None else (due - now).total_seconds())
            assert outbox.claim(now, limit=5, lease=LEASE, max_attempts=3) == []  # not due yet
            now = due or now
        assert schedule == [10, 20, None]
        assert outbox.counts().dead == 1 and outbox.counts().pending == 0
        (dead,) = outbox.dead_letters()
        assert dead.attempts == 3 and dead.last_error == "451 try later (3)" and dead.dead_at == now
        assert outbox.claim(now + dt.timedelta(days=1), limit=5, lease=LEASE, max_attempts=3) == []
        assert outbox.retry([dead.id], now) == 1
        (back,) = outbox.claim(now, limit=5, lease=LEASE, max_attempts=3)
        assert back.attempts == 1 and back.dead_at is None
        outbox.mark_sent(back.id, now)
        assert outbox.counts().sent == 1
        assert outbox.retry(None, now) == 0  # sent: not a dead letter

    def test_a_failure_after_the_message_ended_changes_nothing(
        self, outbox: OutboxStore, enqueue: Enqueue
    ) -> None:
        policy = RetryPolicy(max_attempts=3)
        enqueue(message(1))
        (entry,) = outbox.claim(T0, limit=5, lease=LEASE, max_attempts=3)
        outbox.mark_sent(entry.id, T0)
        assert outbox.mark_failed(entry.id, T0, "too late", retry=policy) is None
        assert outbox.mark_failed(12345, T0, "no such message", retry=policy) is None
        kept = outbox.get([entry.id])[entry.id]
        assert kept.sent_at == T0 and kept.last_error is None and kept.claimed_until is None
        outbox.mark_sent(entry.id, T0 + dt.timedelta(hours=1))  # sent once: stays as it was
        assert outbox.get([entry.id])[entry.id].sent_at == T0

    def test_long_errors_are_cut_and_dead_letters_come_most_recent_first(
        self, outbox: OutboxStore, enqueue: Enqueue
    ) -> None:
        policy = RetryPolicy(max_attempts=1)
        enqueue(message(1), message(2), message(3))
        first, second, third = outbox.claim(T0, limit=5, lease=LEASE, max_attempts=1)
        outbox.mark_failed(first.id, T0, "x" * 5000, retry=policy)
        outbox.mark_failed(second.id, T0 + dt.timedelta(seconds=2), "second", retry=policy)
        outbox.mark_failed(third.id, T0 + dt.timedelta(seconds=1), "third", retry=policy)
        dead = outbox.dead_letters()
        assert [e.id for e in dead] == [second.id, third.id, first.id]
        assert dead[2].last_error == "x" * 2000
        assert [e.id for e in outbox.dead_letters(limit=1)] == [second.id]
        assert outbox.retry([first.id, third.id, 999], T0) == 2
        assert outbox.counts().dead == 1 and outbox.counts().pending == 2

    def test_a_message_whose_sender_died_every_time_is_a_dead_letter(
        self, outbox: OutboxStore, enqueue: Enqueue
    ) -> None:
        enqueue(message(1))
        now = T0
        for attempt in (1, 2):
            (entry,) = outbox.claim(now, limit=5, lease=LEASE, max_attempts=2)
            assert entry.attempts == attempt
            now += LEASE  # nobody marked it: the sender was killed while sending
        assert outbox.claim(now, limit=5, lease=LEASE, max_attempts=2) == []
        (dead,) = outbox.dead_letters()
        assert dead.last_error == "the sender stopped while sending it, 2 times"

    def test_a_dead_sender_message_keeps_its_last_error(
        self, outbox: OutboxStore, enqueue: Enqueue
    ) -> None:
        enqueue(message(1))
        (entry,) = outbox.claim(T0, limit=5, lease=LEASE, max_attempts=2)
        outbox.mark_failed(entry.id, T0, "421 busy", retry=RetryPolicy(base=LEASE, cap=LEASE))
        (entry,) = outbox.claim(T0 + LEASE, limit=5, lease=LEASE, max_attempts=2)
        now = T0 + 2 * LEASE  # claimed twice, then its sender died
        assert outbox.claim(now, limit=5, lease=LEASE, max_attempts=2) == []
        (dead,) = outbox.dead_letters()
        assert dead.last_error == "the sender stopped while sending it, 2 times; before: 421 busy"
        assert dead.dead_at == now and dead.claimed_until is None
        assert outbox.counts().pending == 0

    def test_released_messages_are_due_again_without_a_counted_attempt(
        self, outbox: OutboxStore, enqueue: Enqueue
    ) -> None:
        enqueue(message(1), message(2))
        claimed = outbox.claim(T0, limit=5, lease=LEASE, max_attempts=3)
        outbox.release([e.id for e in claimed])
        again = outbox.claim(T0, limit=5, lease=LEASE, max_attempts=3)
        assert [e.attempts for e in again] == [1, 1]
        outbox.mark_sent(again[0].id, T0)
        outbox.release([again[0].id])  # sent: releasing it changes nothing
        assert outbox.get([again[0].id])[again[0].id].sent_at == T0
        outbox.release([])

    def test_sent_messages_are_pruned_after_their_retention(
        self, outbox: OutboxStore, enqueue: Enqueue
    ) -> None:
        enqueue(message(1), message(2))
        first, second = outbox.claim(T0, limit=5, lease=LEASE, max_attempts=3)
        outbox.mark_sent(first.id, T0)
        outbox.mark_sent(second.id, T0 + dt.timedelta(days=2))
        assert outbox.prune_sent(T0 + dt.timedelta(days=1)) == 1
        assert outbox.counts().sent == 1 and set(outbox.get([first.id, second.id])) == {second.id}

    def test_a_pruned_key_can_be_queued_again(self, outbox: OutboxStore, enqueue: Enqueue) -> None:
        enqueue(*(message(n) for n in range(10)))
        claimed = outbox.claim(T0, limit=20, lease=LEASE, max_attempts=3)
        for entry in claimed:
            outbox.mark_sent(entry.id, T0)
        assert outbox.prune_sent(T0 + dt.timedelta(seconds=1)) == 10
        assert outbox.counts().sent == 0
        enqueue(message(1))
        (again,) = outbox.claim(T0, limit=5, lease=LEASE, max_attempts=3)
        assert again.message == message(1) and again.attempts == 1

    def test_naive_times_are_refused(self, outbox: OutboxStore, enqueue: Enqueue) -> None:
        naive = dt.datetime(2026, 11, 2, 9, 0)
        with pytest.raises(ValueError, match="naive"):
            enqueue(message(1, naive))
        with pytest.raises(ValueError, match="naive"):
            outbox.claim(naive, limit=5, lease=LEASE, max_attempts=3)
        assert outbox.counts().pending == 0

    def test_concurrent_claims_never_share_a_message(
        self, outbox: OutboxStore, enqueue: Enqueue
    ) -> None:
        enqueue(*(message(n) for n in range(400)))
        got: list[list[int]] = []
        lock = threading.Lock()

        def claimer() -> None:
            mine: list[int] = []
            while batch := outbox.claim(T0, limit=7, lease=LEASE, max_attempts=3):
                mine += [e.id for e in batch]
            with lock:
                got.append(mine)

        threads = [threading.Thread(target=claimer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        every = [i for mine in got for i in mine]
        assert len(every) == len(set(every)) == 400

    def test_claims_from_other_processes_never_share_a_message(
        self, enqueue: Enqueue, claim_in_process: Callable[[Any], None]
    ) -> None:
        enqueue(*(message(n) for n in range(300)))
        context = multiprocessing.get_context("spawn")
        out: multiprocessing.Queue[list[int]] = context.Queue()
        workers = [context.Process(target=claim_in_process, args=(out,)) for _ in range(3)]
        for w in workers:
            w.start()
        got = [out.get(timeout=120) for _ in workers]
        for w in workers:
            w.join(timeout=60)
        every = [i for mine in got for i in mine]
        assert len(every) == len(set(every)) == 300

    def test_a_failing_backend_raises_store_errors(self, failing_outbox: OutboxStore) -> None:
        with pytest.raises((StoreError, StoreUnavailable)) as info:
            failing_outbox.claim(T0, limit=5, lease=LEASE, max_attempts=3)
        assert info.value.__cause__ is not None
        with pytest.raises((StoreError, StoreUnavailable)):
            failing_outbox.counts()
        with pytest.raises((StoreError, StoreUnavailable)):
            failing_outbox.dead_letters()


def _fields(m: OutboxMessage) -> dict[str, Any]:
    return {name: getattr(m, name) for name in OutboxMessage.__slots__}
