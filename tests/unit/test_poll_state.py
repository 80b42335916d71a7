"""The SNMP poll state in the store: one cycle at a time, across processes and hosts."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.errors import StoreError
from servicegraph.collectors.snmp.poller import PollSample
from servicegraph.config import Settings
from servicegraph.storage.sqlite.poll_state import SqlitePollState

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def _sample(uptime: int) -> PollSample:
    return PollSample(
        at=T0, reachable=True, uptime_ticks=uptime, status={1: ("up", "down")}, names={1: "Gi0/1"}
    )


@pytest.fixture()
def services(tmp_path: Path) -> Iterator[Services]:
    svc = bootstrap(Settings(data_dir=tmp_path))
    yield svc
    svc.close()


def test_what_a_cycle_leaves_the_next_one_finds(services: Services, tmp_path: Path) -> None:
    with services.poll_state.cycle() as samples:
        assert samples == {}
        samples[("10.0.0.1", 161)] = _sample(100)
    other = bootstrap(Settings(data_dir=tmp_path))  # another process, as a worker would be
    try:
        with other.poll_state.cycle() as samples:
            assert samples == {("10.0.0.1", 161): _sample(100)}
    finally:
        other.close()


def test_a_failed_cycle_keeps_the_previous_samples(services: Services) -> None:
    with services.poll_state.cycle() as samples:
        samples[("10.0.0.1", 161)] = _sample(100)
    with pytest.raises(RuntimeError), services.poll_state.cycle() as samples:
        samples[("10.0.0.1", 161)] = _sample(5)
        raise RuntimeError("the poll failed")
    with services.poll_state.cycle() as samples:
        assert samples[("10.0.0.1", 161)].uptime_ticks == 100


def test_cycles_take_turns(services: Services) -> None:
    order: list[str] = []
    inside = threading.Event()

    def first() -> None:
        with services.poll_state.cycle():
            order.append("first in")
            inside.set()
            time.sleep(0.5)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait(5)
    with services.poll_state.cycle():
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]


def test_a_dead_cycle_is_overtaken_when_its_lease_expires(services: Services) -> None:
    file = services.inbox.file  # type: ignore[attr-defined]
    now = [T0]
    dead = SqlitePollState(file, lease_s=60, clock=lambda: now[0])
    cycle = dead.cycle()
    cycle.__enter__()  # its process dies inside the cycle: no exit, no release
    waiting = SqlitePollState(file, lease_s=0.5, clock=lambda: now[0])
    with pytest.raises(StoreError, match="holds the SNMP poll state"), waiting.cycle():
        pass
    now[0] = T0 + dt.timedelta(seconds=61)
    with waiting.cycle() as samples:
        samples[("10.0.0.2", 161)] = _sample(1)
    cycle.__exit__(None, None, None)  # the overtaken cycle ends late: it keeps nothing
    with waiting.cycle() as samples:
        assert list(samples) == [("10.0.0.2", 161)]
