"""The outbox's sender side on a real SQLite file (``storage.sqlite.outbox``) and the retry
policy: claims lease what they return (never the same message to two claimers, threads or
processes), attempts are counted at the claim, failures back off deterministically and
end as dead letters, a sender that died holding messages gives them up when the lease is
over (and dead-letters one that killed it every time), dead letters are listed and
retried, sent messages pruned."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.config import Settings
from servicegraph.ticketing.outbox import OutboxChannel, OutboxMessage, RetryPolicy

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(minutes=5)


@pytest.fixture()
def services(tmp_path: Path) -> Iterator[Services]:
    services = bootstrap(Settings(data_dir=tmp_path))
    yield services
    services.close()


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


def enqueue(services: Services, *messages: OutboxMessage) -> None:
    with services.tickets.unit() as unit:
        unit.enqueue(messages)


def test_the_retry_policy_doubles_up_to_its_cap_and_ends_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=5, base=dt.timedelta(seconds=30), cap=dt.timedelta(minutes=3))
    assert [policy.delay(n).total_seconds() for n in range(1, 6)] == [30, 60, 120, 180, 180]
    assert policy.next_attempt(1, T0) == T0 + dt.timedelta(seconds=30)
    assert policy.next_attempt(4, T0) == T0 + dt.timedelta(minutes=3)
    assert policy.next_attempt(5, T0) is None
    assert RetryPolicy(base=dt.timedelta(seconds=1), cap=dt.timedelta(days=1)).delay(500).days == 1
    for bad in ({"max_attempts": 0}, {"base": dt.timedelta(0)}, {"cap": dt.timedelta(seconds=1)}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)


def test_a_claim_leases_due_messages_oldest_first(services: Services) -> None:
    outbox = services.outbox
    enqueue(services, message(2, T0 + dt.timedelta(seconds=1)), message(1), message(3, T0 + LEASE))
    enqueue(services, message(1))  # the same key again: ignored
    assert outbox.counts().pending == 3
    first = outbox.claim(T0 + dt.timedelta(seconds=5), limit=10, lease=LEASE, max_attempts=3)
    assert [e.message.key for e in first] == ["inc-1.created.k1", "inc-2.created.k2"]
    assert all(e.attempts == 1 for e in first)
    assert first[0].claimed_until == T0 + dt.timedelta(seconds=5) + LEASE
    assert first[0].message == message(1)
    # leased: a second claim gets only what was not claimed and is due
    later = T0 + LEASE
    assert [e.message.key for e in outbox.claim(later, limit=10, lease=LEASE, max_attempts=3)] == [
        "inc-3.created.k3"
    ]
    # the lease over, unmarked messages are claimed again (their sender died)
    again = outbox.claim(later + LEASE, limit=10, lease=LEASE, max_attempts=3)
    assert [(e.message.key, e.attempts) for e in again] == [
        ("inc-1.created.k1", 2),
        ("inc-2.created.k2", 2),
        ("inc-3.created.k3", 2),
    ]


def test_failures_back_off_then_become_dead_letters_that_can_be_retried(
    services: Services,
) -> None:
    outbox = services.outbox
    policy = RetryPolicy(max_attempts=3, base=dt.timedelta(seconds=10), cap=dt.timedelta(hours=1))
    enqueue(services, message(1))
    now = T0
    schedule = []
    for _ in range(3):
        (entry,) = outbox.claim(now, limit=5, lease=LEASE, max_attempts=3)
        due = outbox.mark_failed(entry.id, now, f"451 try later ({entry.attempts})", retry=policy)
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


def test_a_message_whose_sender_died_every_time_is_a_dead_letter(services: Services) -> None:
    outbox = services.outbox
    enqueue(services, message(1))
    now = T0
    for attempt in (1, 2):
        (entry,) = outbox.claim(now, limit=5, lease=LEASE, max_attempts=2)
        assert entry.attempts == attempt
        now += LEASE  # nobody marked it: the sender was killed while sending
    assert outbox.claim(now, limit=5, lease=LEASE, max_attempts=2) == []
    (dead,) = outbox.dead_letters()
    assert dead.last_error == "the sender stopped while sending it, 2 times"


def test_released_messages_are_due_again_without_a_counted_attempt(services: Services) -> None:
    outbox = services.outbox
    enqueue(services, message(1), message(2))
    claimed = outbox.claim(T0, limit=5, lease=LEASE, max_attempts=3)
    outbox.release([e.id for e in claimed])
    again = outbox.claim(T0, limit=5, lease=LEASE, max_attempts=3)
    assert [e.attempts for e in again] == [1, 1]
    outbox.mark_sent(again[0].id, T0)
    outbox.release([again[0].id])  # sent: releasing it changes nothing
    assert outbox.get([again[0].id])[again[0].id].sent_at == T0


def test_sent_messages_are_pruned_after_their_retention(services: Services) -> None:
    outbox = services.outbox
    enqueue(services, message(1), message(2))
    first, second = outbox.claim(T0, limit=5, lease=LEASE, max_attempts=3)
    outbox.mark_sent(first.id, T0)
    outbox.mark_sent(second.id, T0 + dt.timedelta(days=2))
    assert outbox.prune_sent(T0 + dt.timedelta(days=1)) == 1
    assert outbox.counts().sent == 1 and set(outbox.get([first.id, second.id])) == {second.id}


def test_concurrent_claims_never_share_a_message(services: Services) -> None:
    enqueue(services, *(message(n) for n in range(400)))
    got: list[list[int]] = []
    lock = threading.Lock()

    def claimer() -> None:
        mine: list[int] = []
        while batch := services.outbox.claim(T0, limit=7, lease=LEASE, max_attempts=3):
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


def _claim_in_process(data_dir: str, out: multiprocessing.Queue[list[int]]) -> None:
    services = bootstrap(Settings(data_dir=Path(data_dir)))
    mine: list[int] = []
    try:
        while batch := services.outbox.claim(T0, limit=5, lease=LEASE, max_attempts=3):
            mine += [e.id for e in batch]
    finally:
        services.close()
    out.put(mine)


def test_claims_from_other_processes_never_share_a_message(
    services: Services, tmp_path: Path
) -> None:
    enqueue(services, *(message(n) for n in range(300)))
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[list[int]] = context.Queue()
    workers = [
        context.Process(target=_claim_in_process, args=(str(tmp_path), out)) for _ in range(3)
    ]
    for w in workers:
        w.start()
    got = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    every = [i for mine in got for i in mine]
    assert len(every) == len(set(every)) == 300
