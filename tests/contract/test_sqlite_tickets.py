"""The incident and ticket repository contract over the SQLite adapters: alerts, incidents,
problems, changes and worklog in the graph's file (or the embedded file beside a Neo4j
graph), sharing its write lock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.storage.sqlite import SqliteGraphStore
from servicegraph.storage.sqlite.event_inbox import SqliteEventInbox
from servicegraph.storage.sqlite.tickets import SqliteTicketStore
from tests.contract.sqlite_files import damage
from tests.contract.ticket_contract import Repository, TicketContract, seed


def open_repository(path: Path, *, migrate: bool = True) -> Repository:
    file = SqliteGraphStore(path, lock_timeout=10)
    if migrate:
        file.migrate()
    return Repository(SqliteEventInbox(file), SqliteTicketStore(file))


def close(repo: Repository) -> None:
    assert isinstance(repo.inbox, SqliteEventInbox)
    repo.inbox.close()
    repo.inbox.file.close()


class TestSqliteTickets(TicketContract):
    __test__ = True

    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        return tmp_path / "servicegraph.sqlite3"

    @pytest.fixture
    def repo(self, path: Path) -> Iterator[Repository]:
        repo = open_repository(path)
        yield repo
        close(repo)

    @pytest.fixture
    def other_repo(self, repo: Repository, path: Path) -> Iterator[Repository]:
        other = open_repository(path)
        yield other
        close(other)

    @pytest.fixture
    def failing_repo(self, tmp_path: Path) -> Iterator[Repository]:
        path = tmp_path / "damaged.sqlite3"
        repo = open_repository(path)
        seed(repo)
        close(repo)
        damage(path)
        damaged = open_repository(path, migrate=False)
        yield damaged
        close(damaged)
