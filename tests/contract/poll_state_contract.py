"""The behaviour every backend of the SNMP poll state owes the poller, as documented in
``servicegraph.collectors.snmp.state.PollStateStore``: what a cycle leaves the next one
finds, whichever process or host runs it; one cycle at a time; a cycle whose process died
is overtaken when its lease expires.

A backend's test module subclasses ``PollStateContract``, sets ``__test__ = True`` and
provides the fixtures: ``make_poll_state(lease_s)``, a store over the same, initially
empty, migrated data as another process (another host) would open it, whose cycles hold
their lease for ``lease_s`` seconds and wait as long for another's; ``let_time_pass(s)``,
which makes ``s`` seconds pass for the leases (a fake clock advanced, or a real wait when
the backend's clock is not the caller's); and ``failing_poll_state``, a store whose
backend fails underneath (a damaged file, a lost server). The fixtures close what they
open. A backend that cannot run here is skipped with the reason, never faked.

Moved here from ``tests/unit/test_poll_state.py`` (same assertions; the dead cycle's
lease is 2 s instead of 60 s, so that a backend on a real clock waits 2 s, not a minute).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

import pytest

from servicegraph.cmdb.errors import StoreError, StoreUnavailable
from servicegraph.collectors.snmp.poller import PollSample
from servicegraph.collectors.snmp.state import Key, PollStateStore

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)

MakePollState = Callable[[float], PollStateStore]


def _sample(uptime: int) -> PollSample:
    return PollSample(
        at=T0, reachable=True, uptime_ticks=uptime, status={1: ("up", "down")}, names={1: "Gi0/1"}
    )


class PollStateContract:
    """Subclass per backend; override ``make_poll_state``, ``let_time_pass`` and
    ``failing_poll_state``."""

    __test__ = False

    @pytest.fixture
    def make_poll_state(self) -> MakePollState:
        raise NotImplementedError("a backend's test class provides make_poll_state")

    @pytest.fixture
    def let_time_pass(self) -> Callable[[float], None]:
        raise NotImplementedError("a backend's test class provides let_time_pass")

    @pytest.fixture
    def failing_poll_state(self) -> PollStateStore:
        raise NotImplementedError("a backend's test class provides failing_poll_state")

    @pytest.fixture
    def poll_state(self, make_poll_state: MakePollState) -> PollStateStore:
        return make_poll_state(600.0)

    def test_what_a_cycle_leaves_the_next_one_finds(
        self, poll_state: PollStateStore, make_poll_state: MakePollState
    ) -> None:
        with poll_state.cycle() as samples:
            assert samples == {}
            samples[("10.0.0.1", 161)] = _sample(100)
        other = make_poll_state(600.0)  # another process, as a worker would be
        with other.cycle() as samples:
            assert samples == {("10.0.0.1", 161): _sample(100)}

    def test_a_cycle_keeps_exactly_what_the_mapping_holds(self, poll_state: PollStateStore) -> None:
        """Devices added, replaced and dropped by one cycle, across batches."""
        with poll_state.cycle() as samples:
            for n in range(7):
                samples[(f"10.0.0.{n}", 161)] = _sample(n)
        with poll_state.cycle() as samples:
            del samples[("10.0.0.0", 161)]
            samples[("10.0.0.1", 161)] = _sample(1000)
            samples[("10.0.0.1", 1161)] = _sample(5)
        with poll_state.cycle() as samples:
            assert sorted(samples) == sorted(
                [(f"10.0.0.{n}", 161) for n in range(1, 7)] + [("10.0.0.1", 1161)]
            )
            assert samples[("10.0.0.1", 161)].uptime_ticks == 1000
            assert samples[("10.0.0.6", 161)] == _sample(6)
            samples.clear()
        with poll_state.cycle() as samples:
            assert samples == {}

    def test_a_failed_cycle_keeps_the_previous_samples(self, poll_state: PollStateStore) -> None:
        with poll_state.cycle() as samples:
            samples[("10.0.0.1", 161)] = _sample(100)
        with pytest.raises(RuntimeError), poll_state.cycle() as samples:
            samples[("10.0.0.1", 161)] = _sample(5)
            raise RuntimeError("the poll failed")
        with poll_state.cycle() as samples:
            assert samples[("10.0.0.1", 161)].uptime_ticks == 100

    def test_cycles_take_turns(self, poll_state: PollStateStore) -> None:
        order: list[str] = []
        inside = threading.Event()

        def first() -> None:
            with poll_state.cycle():
                order.append("first in")
                inside.set()
                time.sleep(0.5)
                order.append("first out")

        thread = threading.Thread(target=first)
        thread.start()
        inside.wait(5)
        with poll_state.cycle():
            order.append("second in")
        thread.join()
        assert order == ["first in", "first out", "second in"]

    def test_pollers_of_two_hosts_never_poll_in_the_same_cycle(
        self, make_poll_state: MakePollState
    ) -> None:
        """Each poller (a store of its own: another process, another host) runs three
        cycles; no two cycles overlap, and each finds what the cycle before it left."""
        pollers = [make_poll_state(60.0) for _ in range(2)]
        inside: list[int] = []
        overlaps: list[str] = []
        found: list[int] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def poll(n: int) -> None:
            try:
                for _ in range(3):
                    with pollers[n].cycle() as samples:
                        with lock:
                            if inside:
                                overlaps.append(f"{n} entered while {inside} polled")
                            inside.append(n)
                        key: Key = ("10.0.0.1", 161)
                        seen = samples[key].uptime_ticks if key in samples else 0
                        found.append(seen or 0)
                        time.sleep(0.05)
                        samples[key] = _sample((seen or 0) + 1)
                        with lock:
                            inside.remove(n)
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=poll, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert overlaps == []
        assert sorted(found) == list(range(6)), "each cycle saw the one before it"

    def test_a_dead_cycle_is_overtaken_when_its_lease_expires(
        self, make_poll_state: MakePollState, let_time_pass: Callable[[float], None]
    ) -> None:
        dead = make_poll_state(2.0)
        cycle = dead.cycle()
        cycle.__enter__()  # its process dies inside the cycle: no exit, no release
        waiting = make_poll_state(0.5)
        with pytest.raises(StoreError, match="holds the SNMP poll state"), waiting.cycle():
            pass
        let_time_pass(2.1)
        with waiting.cycle() as samples:
            samples[("10.0.0.2", 161)] = _sample(1)
        cycle.__exit__(None, None, None)  # the overtaken cycle ends late: it keeps nothing
        with waiting.cycle() as samples:
            assert list(samples) == [("10.0.0.2", 161)]

    def test_backend_failures_raise_store_errors_chained(
        self, failing_poll_state: PollStateStore
    ) -> None:
        with pytest.raises((StoreUnavailable, StoreError)) as info, failing_poll_state.cycle():
            pass
        assert info.value.__cause__ is not None  # chained to the driver's or OS's error
