"""The poll state contract over the SQLite adapter (``storage.sqlite.poll_state``): the
samples and the lease in the file that holds incidents; each store a connection of its
own, as another process would open the file; the leases on a fake clock that
``let_time_pass`` advances."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from servicegraph.collectors.snmp.state import PollStateStore
from servicegraph.storage.sqlite import SqliteGraphStore
from servicegraph.storage.sqlite.poll_state import SqlitePollState
from tests.contract.poll_state_contract import T0, MakePollState, PollStateContract, _sample
from tests.contract.sqlite_files import damage


class TestSqlitePollState(PollStateContract):
    __test__ = True

    @pytest.fixture
    def now(self) -> list[dt.datetime]:
        return [T0]

    @pytest.fixture
    def make_poll_state(self, tmp_path: Path, now: list[dt.datetime]) -> Iterator[MakePollState]:
        path = tmp_path / "servicegraph.sqlite3"
        files: list[SqliteGraphStore] = []

        def make(lease_s: float) -> PollStateStore:
            file = SqliteGraphStore(path, lock_timeout=10)
            file.migrate()
            files.append(file)
            return SqlitePollState(file, lease_s=lease_s, clock=lambda: now[0])

        yield make
        for file in files:
            file.close()

    @pytest.fixture
    def let_time_pass(self, now: list[dt.datetime]) -> Callable[[float], None]:
        def advance(seconds: float) -> None:
            now[0] += dt.timedelta(seconds=seconds)

        return advance

    @pytest.fixture
    def failing_poll_state(self, tmp_path: Path) -> Iterator[PollStateStore]:
        path = tmp_path / "damaged.sqlite3"
        file = SqliteGraphStore(path, lock_timeout=10)
        file.migrate()
        with SqlitePollState(file).cycle() as samples:
            samples[("10.0.0.1", 161)] = _sample(1)
        file.close()
        damage(path)
        damaged = SqliteGraphStore(path, lock_timeout=10)
        yield SqlitePollState(damaged, lease_s=1)
        damaged.close()
