"""The outbox contract over the SQLite adapter (``storage.sqlite.outbox``): the messages in
the file that holds tickets, queued through the ticket store's units as the desk queues
them; plus the retry policy, which is the same whatever stores the messages."""

from __future__ import annotations

import datetime as dt
import functools
import multiprocessing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.config import Settings
from servicegraph.storage.sqlite import SqliteGraphStore
from servicegraph.storage.sqlite.outbox import SqliteOutboxStore
from servicegraph.ticketing.outbox import OutboxMessage, OutboxStore, RetryPolicy
from tests.contract.outbox_contract import T0, OutboxContract, claim_all
from tests.contract.sqlite_files import damage


def _claim_in_process(data_dir: str, out: multiprocessing.Queue[list[int]]) -> None:
    services = bootstrap(Settings(data_dir=Path(data_dir)))
    try:
        mine = claim_all(services.outbox, limit=5)
    finally:
        services.close()
    out.put(mine)


class TestSqliteOutbox(OutboxContract):
    __test__ = True

    @pytest.fixture
    def services(self, tmp_path: Path) -> Iterator[Services]:
        services = bootstrap(Settings(data_dir=tmp_path))
        yield services
        services.close()

    @pytest.fixture
    def outbox(self, services: Services) -> OutboxStore:
        return services.outbox

    @pytest.fixture
    def enqueue(self, services: Services) -> Callable[..., None]:
        def enqueue(*messages: OutboxMessage) -> None:
            with services.tickets.unit() as unit:
                unit.enqueue(messages)

        return enqueue

    @pytest.fixture
    def claim_in_process(self, services: Services, tmp_path: Path) -> Callable[[Any], None]:
        return functools.partial(_claim_in_process, str(tmp_path))

    @pytest.fixture
    def failing_outbox(self, tmp_path: Path) -> Iterator[OutboxStore]:
        path = tmp_path / "damaged.sqlite3"
        file = SqliteGraphStore(path, lock_timeout=10)
        file.migrate()
        file.close()
        damage(path)
        damaged = SqliteGraphStore(path, lock_timeout=10)
        yield SqliteOutboxStore(damaged)
        damaged.close()


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
