"""The inbox contract over the SQLite adapter: the inbox a file of its own beside the
graph's file, which keeps the correlation cursor and the keys of the events correlated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.storage.sqlite import SqliteGraphStore
from servicegraph.storage.sqlite.event_inbox import SqliteEventInbox
from tests.contract.inbox_contract import InboxContract, at, drain, events
from tests.contract.sqlite_files import damage


def open_incidents(path: Path, *, migrate: bool = True) -> SqliteEventInbox:
    file = SqliteGraphStore(path, lock_timeout=10)
    if migrate:
        file.migrate()
    return SqliteEventInbox(file)


def close(store: SqliteEventInbox) -> None:
    store.close()
    store.file.close()


class TestSqliteInbox(InboxContract):
    __test__ = True

    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        return tmp_path / "servicegraph.sqlite3"

    @pytest.fixture
    def inbox(self, path: Path) -> Iterator[SqliteEventInbox]:
        store = open_incidents(path)
        yield store
        close(store)

    @pytest.fixture
    def other_inbox(self, inbox: SqliteEventInbox, path: Path) -> Iterator[SqliteEventInbox]:
        store = open_incidents(path)
        yield store
        close(store)

    @pytest.fixture
    def failing_inbox(self, tmp_path: Path) -> Iterator[SqliteEventInbox]:
        path = tmp_path / "damaged.sqlite3"
        store = open_incidents(path)
        store.append(events(*range(100, 150)), at(0))
        store.append(events(*range(150, 200)), at(1))
        drain(store, 60)
        close(store)
        damage(path)
        damage(path.with_name(f"{path.stem}-inbox.sqlite3"))
        damaged = open_incidents(path, migrate=False)
        yield damaged
        close(damaged)
