"""The behaviour every backend of the leader lease owes its holders, as documented in
``servicegraph.storage.neo4j.leases.Leases``: one holder at a time among every process
that shares the backend, renewal, release, expiry by time, a takeover after it, and races.

A backend's test module subclasses ``LeaseContract``, sets ``__test__ = True`` and provides
the fixtures: ``make_leases()``, a store over the same, initially empty, migrated data as
another process (another host) would open it, closed by the fixture; ``let_time_pass(s)``,
which makes ``s`` seconds pass for the leases (a real wait when the backend's clock is its
own); ``spawn_holder(name, holder, ttl_s)``, a child process that takes the lease, prints
``held`` and sleeps (the test kills it with SIGKILL); and ``failing_leases``, a store
whose backend fails underneath. A backend whose leases lapse only when their holder's
process exits (a ``flock``) sets ``LAPSES_BY_TIME = False``: the tests of a live holder's
lease running out skip. A backend that cannot run here is skipped, never faked.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import threading
import time
from collections.abc import Callable

import pytest

from servicegraph.cmdb.errors import StoreError, StoreUnavailable
from servicegraph.storage.neo4j.leases import Leases

LEADER = "background-jobs"
LONG = dt.timedelta(seconds=60)
SHORT = dt.timedelta(seconds=1)

MakeLeases = Callable[[], Leases]
SpawnHolder = Callable[[str, str, float], "subprocess.Popen[str]"]


class LeaseContract:
    """Subclass per backend; override ``make_leases``, ``let_time_pass``,
    ``spawn_holder`` and ``failing_leases``."""

    __test__ = False
    LAPSES_BY_TIME = True

    @pytest.fixture
    def make_leases(self) -> MakeLeases:
        raise NotImplementedError("a backend's test class provides make_leases")

    @pytest.fixture
    def let_time_pass(self) -> Callable[[float], None]:
        raise NotImplementedError("a backend's test class provides let_time_pass")

    @pytest.fixture
    def spawn_holder(self) -> SpawnHolder:
        raise NotImplementedError("a backend's test class provides spawn_holder")

    @pytest.fixture
    def failing_leases(self) -> Leases:
        raise NotImplementedError("a backend's test class provides failing_leases")

    @pytest.fixture
    def leases(self, make_leases: MakeLeases) -> Leases:
        return make_leases()

    @pytest.fixture
    def other_leases(self, leases: Leases, make_leases: MakeLeases) -> Leases:
        return make_leases()

    def _lapses_by_time(self) -> None:
        if not self.LAPSES_BY_TIME:
            pytest.skip("this backend's leases lapse when their holder's process exits")

    # -- holding -------------------------------------------------------------------------

    def test_a_free_lease_is_taken(self, leases: Leases) -> None:
        assert leases.try_acquire(LEADER, "a", LONG) is True

    def test_exclusive_while_held(self, leases: Leases, other_leases: Leases) -> None:
        assert leases.try_acquire(LEADER, "a", LONG) is True
        assert other_leases.try_acquire(LEADER, "b", LONG) is False, "another process"
        assert leases.try_acquire(LEADER, "b", LONG) is False, "another holder, same process"
        assert other_leases.renew(LEADER, "b", LONG) is False, "renewing is not taking"
        assert leases.try_acquire(LEADER, "a", LONG) is True, "the holder holds it still"

    def test_leases_are_independent_by_name(self, leases: Leases, other_leases: Leases) -> None:
        assert leases.try_acquire(LEADER, "a", LONG) is True
        assert other_leases.try_acquire("snmp-poller", "b", LONG) is True
        assert leases.try_acquire("snmp-poller", "a", LONG) is False
        assert other_leases.try_acquire(LEADER, "b", LONG) is False

    def test_renewal_keeps_the_lease_past_its_first_ttl(
        self, leases: Leases, other_leases: Leases, let_time_pass: Callable[[float], None]
    ) -> None:
        ttl = dt.timedelta(seconds=1.5)
        assert leases.try_acquire(LEADER, "a", ttl) is True
        for _ in range(3):  # 3 s in all: twice the ttl, renewed every half of it
            let_time_pass(0.75)
            assert leases.renew(LEADER, "a", ttl) is True
            assert other_leases.try_acquire(LEADER, "b", ttl) is False

    def test_renewing_a_lease_never_taken_is_false(self, leases: Leases) -> None:
        assert leases.renew(LEADER, "a", LONG) is False
        assert leases.try_acquire(LEADER, "a", LONG) is True, "renew did not take it"

    # -- releasing -----------------------------------------------------------------------

    def test_release_frees_the_lease_at_once(self, leases: Leases, other_leases: Leases) -> None:
        assert leases.try_acquire(LEADER, "a", LONG) is True
        leases.release(LEADER, "a")
        assert leases.renew(LEADER, "a", LONG) is False, "released: no longer held"
        assert other_leases.try_acquire(LEADER, "b", LONG) is True

    def test_only_the_holder_releases(self, leases: Leases, other_leases: Leases) -> None:
        assert leases.try_acquire(LEADER, "a", LONG) is True
        other_leases.release(LEADER, "b")
        other_leases.release("never-taken", "b")
        assert other_leases.try_acquire(LEADER, "b", LONG) is False
        assert leases.renew(LEADER, "a", LONG) is True

    # -- expiry --------------------------------------------------------------------------

    def test_an_unrenewed_lease_expires(
        self, leases: Leases, other_leases: Leases, let_time_pass: Callable[[float], None]
    ) -> None:
        self._lapses_by_time()
        assert leases.try_acquire(LEADER, "a", SHORT) is True
        let_time_pass(1.3)
        assert leases.renew(LEADER, "a", LONG) is False, "expired is lost, taken or not"
        assert other_leases.try_acquire(LEADER, "b", LONG) is True

    def test_a_second_holder_takes_over_after_expiry(
        self, leases: Leases, other_leases: Leases, let_time_pass: Callable[[float], None]
    ) -> None:
        self._lapses_by_time()
        assert leases.try_acquire(LEADER, "a", SHORT) is True
        assert other_leases.try_acquire(LEADER, "b", LONG) is False
        let_time_pass(1.3)
        assert other_leases.try_acquire(LEADER, "b", LONG) is True
        assert leases.renew(LEADER, "a", LONG) is False, "the old holder learns it lost it"
        assert leases.try_acquire(LEADER, "a", LONG) is False
        leases.release(LEADER, "a")  # the old holder's late release frees nothing
        assert other_leases.renew(LEADER, "b", LONG) is True
        assert leases.try_acquire(LEADER, "a", LONG) is False

    def test_a_killed_holders_lease_lapses_after_its_ttl(
        self, leases: Leases, spawn_holder: SpawnHolder
    ) -> None:
        """``kill -9``: no release, no renewal; the lease is someone else's after its ttl,
        not before."""
        ttl_s = 3.0
        child = spawn_holder(LEADER, "child", ttl_s)
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.strip() == "held", f"the child did not take the lease: {line!r}"
            held_at = time.monotonic()
        finally:
            child.kill()
            child.wait(10)
        assert leases.try_acquire(LEADER, "survivor", LONG) is False, "within its ttl"
        while not leases.try_acquire(LEADER, "survivor", LONG):
            assert time.monotonic() - held_at < ttl_s + 5, "the lease never lapsed"
            time.sleep(0.2)
        assert time.monotonic() - held_at > 0.5

    # -- races ---------------------------------------------------------------------------

    def test_racing_holders_one_wins(self, make_leases: MakeLeases) -> None:
        """Holders in threads, each with a store of its own (another process, another
        host), try for the same free lease at once, five times over: one wins each time."""
        racers = 4
        stores = [make_leases() for _ in range(racers)]
        for round_ in range(5):
            name = f"race-{round_}"
            start = threading.Barrier(racers)
            won: list[int] = []
            errors: list[BaseException] = []

            def race(
                n: int,
                name: str = name,
                start: threading.Barrier = start,
                won: list[int] = won,
                errors: list[BaseException] = errors,
            ) -> None:
                try:
                    start.wait(10)
                    if stores[n].try_acquire(name, f"racer-{n}", LONG):
                        won.append(n)
                except BaseException as exc:  # reported below, not lost in the thread
                    errors.append(exc)

            threads = [threading.Thread(target=race, args=(n,)) for n in range(racers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert errors == []
            assert len(won) == 1, f"round {round_}: {won} won"
            assert stores[won[0]].renew(name, f"racer-{won[0]}", LONG) is True

    # -- input and failures --------------------------------------------------------------

    @pytest.mark.parametrize("ttl", [dt.timedelta(0), dt.timedelta(seconds=-1)])
    def test_a_ttl_must_be_positive(self, leases: Leases, ttl: dt.timedelta) -> None:
        with pytest.raises(ValueError, match="ttl"):
            leases.try_acquire(LEADER, "a", ttl)
        with pytest.raises(ValueError, match="ttl"):
            leases.renew(LEADER, "a", ttl)
        assert leases.try_acquire(LEADER, "b", LONG) is True, "nothing was taken"

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda s: s.try_acquire(LEADER, "a", LONG), id="try_acquire"),
            pytest.param(lambda s: s.renew(LEADER, "a", LONG), id="renew"),
            pytest.param(lambda s: s.release(LEADER, "a"), id="release"),
        ],
    )
    def test_backend_failures_raise_store_errors_chained(
        self, failing_leases: Leases, call: Callable[[Leases], object]
    ) -> None:
        with pytest.raises((StoreUnavailable, StoreError)) as info:
            call(failing_leases)
        assert info.value.__cause__ is not None  # chained to the driver's or OS's error
