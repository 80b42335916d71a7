"""The behaviour every backend of the durable event inbox owes correlation, as documented
in ``servicegraph.correlation.ports.EventInbox`` (``append``, ``check_writable``,
``pending_count``, ``lag``, ``latest_events``, ``prune``) and the claim of a
``CorrelationUnit`` (``claim_pending``, ``mark_processed``): every event appended takes
effect once, redeliveries included, and a unit that fails leaves the inbox as it was.

A backend's test module subclasses ``InboxContract``, sets ``__test__ = True`` and provides
the fixtures: ``inbox``, an empty, migrated store that the fixture closes afterwards;
``other_inbox``, a second store over the same data, as another process (a webhook
server, a second worker) opens it; and ``failing_inbox``, a store whose backend fails
underneath (a damaged file, a lost server), with events received before it failed. A
backend that cannot run here is skipped with the reason, never faked.

Only SQLite implements this port today (``servicegraph.storage.sqlite.event_inbox`` and
``inbox``): with a Neo4j graph the inbox stays in the embedded file beside it, so there is
no Neo4j subclass; add one beside ``test_neo4j_store.py`` when ``servicegraph.storage.neo4j``
implements the port.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from servicegraph.cmdb.errors import StoreError, StoreUnavailable
from servicegraph.correlation.ports import EventInbox
from servicegraph.events.model import Event, EventStatus, Severity

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def make_event(n: int, **fields: Any) -> Event:
    return Event(
        source=fields.pop("source", "test"),
        name=fields.pop("name", "NodeDown"),
        status=fields.pop("status", EventStatus.FIRING),
        severity=fields.pop("severity", Severity.MAJOR),
        occurred_at=fields.pop("occurred_at", at(n)),
        fingerprint=fields.pop("fingerprint", f"fp-{n}"),
        event_id=fields.pop("event_id", f"event-{n}"),
        **fields,
    )


def events(*numbers: int) -> list[Event]:
    return [make_event(n) for n in numbers]


def ids(claimed: list[Event]) -> list[str]:
    return [e.event_id for e in claimed]


def claim(store: EventInbox, limit: int = 1000, *, processed: bool = True) -> list[Event]:
    """One unit: claim up to ``limit`` events and, if ``processed``, mark them processed."""
    with store.unit() as unit:
        claimed = unit.claim_pending(limit)
        if processed:
            unit.mark_processed(at(60))
    return claimed.events


def drain(store: EventInbox, limit: int = 1000) -> tuple[int, list[Event]]:
    """Claim and process until nothing is pending: (events read, events to correlate)."""
    read, correlate = 0, list[Event]()
    while True:
        with store.unit() as unit:
            claimed = unit.claim_pending(limit)
            unit.mark_processed(at(60))
        if claimed.read == 0:
            return read, correlate
        read += claimed.read
        correlate += claimed.events


class InboxContract:
    """Subclass per backend; override the ``inbox``, ``other_inbox`` and
    ``failing_inbox`` fixtures."""

    __test__ = False

    @pytest.fixture
    def inbox(self) -> EventInbox:
        raise NotImplementedError("a backend's test class provides the inbox fixture")

    @pytest.fixture
    def other_inbox(self, inbox: EventInbox) -> EventInbox:
        raise NotImplementedError("a backend's test class provides the other_inbox fixture")

    @pytest.fixture
    def failing_inbox(self) -> EventInbox:
        raise NotImplementedError("a backend's test class provides the failing_inbox fixture")

    # -- an empty inbox ------------------------------------------------------------------

    def test_empty_inbox(self, inbox: EventInbox) -> None:
        assert inbox.pending_count() == 0
        assert inbox.lag() == (0, None)
        assert inbox.latest_events(10) == []
        assert inbox.append([], at(0)) == 0
        with inbox.unit() as unit:
            claimed = unit.claim_pending(10)
            unit.mark_processed(at(1))  # nothing claimed: nothing to mark
        assert (claimed.read, claimed.events) == (0, [])
        assert inbox.prune(at(1000)) == 0
        inbox.check_writable(1.0)

    # -- appending -----------------------------------------------------------------------

    def test_events_round_trip_every_field_received_when_appended(self, inbox: EventInbox) -> None:
        cet = dt.timezone(dt.timedelta(hours=1))
        sent = [
            make_event(
                1,
                status=EventStatus.RESOLVED,
                severity=Severity.CRITICAL,
                occurred_at=dt.datetime(2024, 3, 1, 13, 0, 0, 123_456, tzinfo=cet),
                labels={"ci_id": "ci-a", "é": "ü", "empty": ""},
                summary="disk /var is full: 99 % (über)",
                reported_at=at(30),
            ),
            make_event(2, source="zabbix", name="Trigger 7", severity=Severity.INFO),
        ]
        received = at(5)
        assert inbox.append(sent, received) == 2
        expected = [replace(e, received_at=received) for e in sent]
        assert [e for _, e, _ in reversed(inbox.latest_events(10))] == expected
        assert claim(inbox) == expected

    def test_append_returns_how_many_were_stored_and_they_wait(self, inbox: EventInbox) -> None:
        assert inbox.append(events(1, 2, 3), at(0)) == 3
        assert inbox.append(events(4), at(1)) == 1
        assert inbox.pending_count() == 4
        assert inbox.lag() == (4, at(0))

    def test_appended_events_are_seen_at_once_by_another_process(
        self, inbox: EventInbox, other_inbox: EventInbox
    ) -> None:
        """Durable before ``append`` returns: a worker in another process claims
        them."""
        assert inbox.append(events(1, 2), at(0)) == 2
        assert other_inbox.pending_count() == 2
        assert other_inbox.lag() == (2, at(0))
        assert ids(claim(other_inbox)) == ["event-1", "event-2"]
        assert inbox.pending_count() == 0

    @pytest.mark.parametrize("field", ["occurred_at", "received_at"])
    def test_naive_times_are_refused_and_nothing_is_stored(
        self, inbox: EventInbox, field: str
    ) -> None:
        """A naive time would be read back in another zone than it was meant in: refused
        with ``ValueError`` (the rule of every adapter's time encoding)."""
        naive = dt.datetime(2024, 3, 1, 12, 0)
        event, received = make_event(1), at(0)
        if field == "occurred_at":
            event = make_event(1, occurred_at=naive)
        else:
            received = naive
        with pytest.raises(ValueError, match="naive"):
            inbox.append([make_event(2), event], received)
        assert inbox.pending_count() == 0
        assert inbox.latest_events(10) == []
        assert inbox.append(events(1, 2), at(0)) == 2, "refused: no duplicates"

    # -- claiming ------------------------------------------------------------------------

    def test_claims_are_oldest_first_and_bounded(self, inbox: EventInbox) -> None:
        inbox.append(events(1, 2, 3), at(0))
        inbox.append(events(4, 5), at(1))
        with inbox.unit() as unit:
            first = unit.claim_pending(2)
            unit.mark_processed(at(2))
        assert first.read == 2
        assert ids(first.events) == ["event-1", "event-2"]
        assert inbox.pending_count() == 3
        assert ids(claim(inbox, 10)) == ["event-3", "event-4", "event-5"]
        assert inbox.pending_count() == 0
        assert claim(inbox) == []

    def test_a_claim_may_end_inside_what_one_append_stored(self, inbox: EventInbox) -> None:
        inbox.append(events(*range(10)), at(0))
        inbox.append(events(10, 11, 12), at(1))
        seen = []
        while inbox.pending_count():
            before = inbox.pending_count()
            claimed = claim(inbox, 4)
            assert inbox.pending_count() == before - len(claimed)
            seen.append(ids(claimed))
        assert [len(batch) for batch in seen] == [4, 4, 4, 1]
        assert [e for batch in seen for e in batch] == [f"event-{n}" for n in range(13)], (
            "each once, in order"
        )

    def test_claimed_but_not_marked_stays_pending(self, inbox: EventInbox) -> None:
        inbox.append(events(1, 2), at(0))
        assert ids(claim(inbox, processed=False)) == ["event-1", "event-2"]
        assert inbox.pending_count() == 2
        assert [done for _, _, done in inbox.latest_events(10)] == [False, False]
        assert inbox.lag() == (2, at(0))

    def test_claimed_but_not_marked_is_claimed_again(self, inbox: EventInbox) -> None:
        inbox.append(events(1, 2), at(0))
        assert ids(claim(inbox, processed=False)) == ["event-1", "event-2"]
        assert ids(claim(inbox)) == ["event-1", "event-2"], "claimed again, once"
        assert inbox.pending_count() == 0

    def test_a_failed_unit_leaves_the_inbox_as_it_was(
        self, inbox: EventInbox, other_inbox: EventInbox
    ) -> None:
        """A worker that dies mid-unit: its events are processed again, once, by whoever
        comes next."""
        inbox.append(events(1, 2, 3), at(0))
        with pytest.raises(RuntimeError, match="worker died"), inbox.unit() as unit:
            assert unit.claim_pending(2).read == 2
            unit.mark_processed(at(1))
            raise RuntimeError("worker died")
        assert inbox.pending_count() == 3
        assert inbox.lag() == (3, at(0))
        assert not any(done for _, _, done in inbox.latest_events(10))
        read, correlated = drain(other_inbox)
        assert read == 3
        assert ids(correlated) == ["event-1", "event-2", "event-3"]

    def test_a_naive_processing_time_is_refused_and_nothing_is_processed(
        self, inbox: EventInbox
    ) -> None:
        inbox.append(events(1, 2), at(0))
        with pytest.raises(ValueError, match="naive"), inbox.unit() as unit:
            unit.claim_pending(10)
            unit.mark_processed(dt.datetime(2024, 3, 1, 12, 5))
        assert inbox.pending_count() == 2
        assert ids(claim(inbox)) == ["event-1", "event-2"]

    def test_units_are_serialised_so_no_event_is_claimed_twice(
        self, inbox: EventInbox, other_inbox: EventInbox
    ) -> None:
        """A second worker's unit waits for the first to commit before it claims, so the
        two never process the same event."""
        inbox.append(events(1, 2, 3, 4, 5), at(0))
        first_in = threading.Event()
        second: list[str] = []
        errors: list[BaseException] = []

        def other_worker() -> None:
            try:
                first_in.wait(5)
                second.extend(ids(claim(other_inbox, 10)))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=other_worker)
        thread.start()
        with inbox.unit() as unit:
            first = ids(unit.claim_pending(3).events)
            first_in.set()
            time.sleep(0.3)  # the other unit is waiting now
            unit.mark_processed(at(1))
        thread.join(10)
        assert not errors
        assert first == ["event-1", "event-2", "event-3"]
        assert second == ["event-4", "event-5"]
        assert inbox.pending_count() == 0

    # -- redeliveries --------------------------------------------------------------------

    def test_a_redelivery_takes_effect_once(self, inbox: EventInbox) -> None:
        """Recognised at once (not stored) or when claimed (dropped): either way the event
        is correlated once, and what was stored is read."""
        assert inbox.append(events(1), at(0)) == 1
        again = inbox.append(events(1), at(1))
        assert again in (0, 1)
        assert inbox.pending_count() == 1 + again
        read, correlated = drain(inbox)
        assert read == 1 + again, "what is read counts redeliveries"
        assert ids(correlated) == ["event-1"]

    def test_a_redelivery_of_a_processed_event_takes_no_effect(self, inbox: EventInbox) -> None:
        inbox.append(events(1, 2), at(0))
        drain(inbox)
        stored = inbox.append([make_event(2, summary="resent"), make_event(3)], at(5))
        assert stored in (1, 2)
        read, correlated = drain(inbox)
        assert read == stored
        assert ids(correlated) == ["event-3"]

    def test_a_redelivery_appended_by_another_process_counts_once(
        self, inbox: EventInbox, other_inbox: EventInbox
    ) -> None:
        """Two stores over one inbox may not recognise each other's events at once; the
        claim decides."""
        assert other_inbox.append(events(99), at(0)) == 1
        assert inbox.append(events(1), at(0)) == 1
        read, correlated = drain(inbox)
        assert (read, ids(correlated)) == (2, ["event-99", "event-1"])
        stored = other_inbox.append(events(1), at(1))
        read, correlated = drain(other_inbox)
        assert read == stored
        assert correlated == []

    def test_the_same_event_twice_in_one_claim_takes_effect_once(
        self, inbox: EventInbox, other_inbox: EventInbox
    ) -> None:
        """Two stores that both missed it append the same event; one claim reads both."""
        other_inbox.append(events(99), at(0))  # whatever it remembers, it has
        first = inbox.append(events(1), at(0))
        second = other_inbox.append(events(1), at(0))
        assert (first, second) in ((1, 1), (1, 0))
        read, correlated = drain(inbox)
        assert read == 1 + first + second
        assert sorted(ids(correlated)) == ["event-1", "event-99"]

    def test_the_same_event_twice_in_one_append_takes_effect_once(self, inbox: EventInbox) -> None:
        stored = inbox.append(events(1, 1, 2), at(0))
        assert stored in (2, 3)
        assert inbox.pending_count() == stored
        read, correlated = drain(inbox)
        assert read == stored
        assert ids(correlated) == ["event-1", "event-2"]

    def test_appends_from_many_threads_lose_nothing_and_repeat_nothing(
        self, inbox: EventInbox
    ) -> None:
        stored: list[int] = []
        errors: list[BaseException] = []

        def sender(k: int) -> None:
            try:
                for b in range(10):
                    # every batch shares half its events with the next sender's
                    batch = events(*(k * 1000 + b * 10 + i for i in range(10)))
                    batch += events(*((k + 1) % 6 * 1000 + b * 10 + i for i in range(10)))
                    stored.append(inbox.append(batch, at(0)))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=sender, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors
        assert inbox.pending_count() == sum(stored)
        read, correlated = drain(inbox, 250)
        assert read == sum(stored)
        assert len(correlated) == 600
        assert len(set(ids(correlated))) == 600, "each distinct event correlated once"

    # -- what the inbox tells ------------------------------------------------------------

    def test_latest_events_newest_first_with_numbers_and_whether_correlated(
        self, inbox: EventInbox
    ) -> None:
        inbox.append(events(1, 2, 3), at(0))
        inbox.append(events(4, 5), at(1))
        latest = inbox.latest_events(10)
        assert [ids([e]) for _, e, _ in latest] == [[f"event-{n}"] for n in (5, 4, 3, 2, 1)]
        numbers = [number for number, _, _ in latest]
        assert numbers == sorted(numbers, reverse=True)
        assert len(set(numbers)) == 5
        assert [done for _, _, done in latest] == [False] * 5
        claim(inbox, 3)
        assert [done for _, _, done in inbox.latest_events(10)] == [
            False,
            False,
            True,
            True,
            True,
        ]
        assert inbox.latest_events(2) == [(number, event, False) for number, event, _ in latest[:2]]

    def test_lag_tells_the_oldest_reception_waiting(self, inbox: EventInbox) -> None:
        inbox.append(events(1, 2), at(0))
        inbox.append(events(3), at(10))
        assert inbox.lag() == (3, at(0))
        claim(inbox, 2)
        assert inbox.lag() == (1, at(10))
        assert inbox.pending_count() == 1
        claim(inbox)
        assert inbox.lag() == (0, None)
        assert inbox.pending_count() == 0

    # -- pruning -------------------------------------------------------------------------

    def test_prune_deletes_processed_events_received_before(self, inbox: EventInbox) -> None:
        inbox.append(events(1, 2), at(0))
        inbox.append(events(3, 4), at(10))
        inbox.append(events(5), at(20))
        claim(inbox, 4)
        assert inbox.prune(at(0)) == 0, "received at, not before"
        assert inbox.prune(at(5)) == 2, "processed, received before"
        assert [ids([e]) for _, e, _ in inbox.latest_events(10)] == [
            ["event-5"],
            ["event-4"],
            ["event-3"],
        ]
        assert inbox.prune(at(100)) == 2, "never the one waiting"
        assert inbox.pending_count() == 1
        assert ids(claim(inbox)) == ["event-5"]
        assert inbox.prune(at(100)) == 1
        assert inbox.latest_events(10) == []
        assert inbox.prune(at(100)) == 0

    def test_prune_never_deletes_an_event_waiting(self, inbox: EventInbox) -> None:
        """Not even one that an append stored together with processed ones."""
        inbox.append(events(1, 2, 3, 4), at(0))
        claim(inbox, 2)
        deleted = inbox.prune(at(100))
        assert deleted in (0, 1, 2)
        assert len(inbox.latest_events(10)) == 4 - deleted
        assert inbox.lag() == (2, at(0))
        assert ids(claim(inbox)) == ["event-3", "event-4"]

    def test_an_emptied_inbox_keeps_counting_up(self, inbox: EventInbox) -> None:
        """After pruning removed every event, new ones still come after the cursor."""
        inbox.append(events(1, 2), at(0))
        drain(inbox)
        ((last, _, _), *_) = inbox.latest_events(1)
        assert inbox.prune(at(100)) == 2
        assert inbox.latest_events(10) == []
        assert inbox.append(events(3), at(101)) == 1
        ((number, event, done),) = inbox.latest_events(10)
        assert number > last and event.event_id == "event-3" and not done
        assert inbox.pending_count() == 1
        assert ids(claim(inbox)) == ["event-3"]

    def test_a_redelivery_of_a_pruned_event_is_processed_again(
        self, inbox: EventInbox, other_inbox: EventInbox
    ) -> None:
        """What the port warns about: retention must outlast any sender's retries."""
        inbox.append(events(1), at(0))
        drain(inbox)
        assert inbox.prune(at(100)) == 1
        assert inbox.append(events(1), at(101)) == 1, "pruned: new again"
        assert ids(drain(inbox)[1]) == ["event-1"]
        other_inbox.append(events(2), at(102))
        drain(other_inbox)
        assert other_inbox.prune(at(200)) == 2
        assert inbox.append(events(2), at(201)) == 1, "pruned by another process"
        assert ids(drain(inbox)[1]) == ["event-2"]

    def test_a_naive_prune_time_is_refused(self, inbox: EventInbox) -> None:
        inbox.append(events(1), at(0))
        drain(inbox)
        with pytest.raises(ValueError, match="naive"):
            inbox.prune(dt.datetime(2024, 3, 2))
        assert len(inbox.latest_events(10)) == 1

    # -- health and failures -------------------------------------------------------------

    def test_check_writable_passes_while_events_can_be_appended(
        self, inbox: EventInbox, other_inbox: EventInbox
    ) -> None:
        inbox.check_writable(1.0)
        inbox.append(events(1), at(0))
        inbox.check_writable(1.0)
        other_inbox.check_writable(1.0)
        drain(other_inbox)
        inbox.check_writable(1.0)

    def test_check_writable_fails_after_an_append_failed(self, failing_inbox: EventInbox) -> None:
        with pytest.raises((StoreUnavailable, StoreError)):
            failing_inbox.append(events(1), at(0))
        with pytest.raises(StoreError):
            failing_inbox.check_writable(1.0)

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda s: s.append(events(1), at(0)), id="append"),
            pytest.param(lambda s: s.pending_count(), id="pending_count"),
            pytest.param(lambda s: s.lag(), id="lag"),
            pytest.param(lambda s: s.latest_events(10), id="latest_events"),
            pytest.param(lambda s: s.prune(at(100)), id="prune"),
            pytest.param(lambda s: drain(s), id="claim"),
        ],
    )
    def test_backend_failures_raise_store_errors_chained(
        self, failing_inbox: EventInbox, call: Callable[[EventInbox], object]
    ) -> None:
        with pytest.raises((StoreUnavailable, StoreError)) as info:
            call(failing_inbox)
        assert info.value.__cause__ is not None  # chained to the driver's or OS's error
