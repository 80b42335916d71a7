"""The desk's export and restore contract over the SQLite adapters (``ticket_dump.py``,
``directory_dump.py``, the restore writes of ``ticket_unit.py``): two data files, as a
source store and the empty store an export is restored into."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.storage.sqlite.directory import SqliteDirectoryStore
from tests.contract.desk_export_contract import DeskExportContract
from tests.contract.test_sqlite_directory import open_store
from tests.contract.test_sqlite_tickets import close, open_repository
from tests.contract.ticket_contract import Repository


class TestSqliteDeskExport(DeskExportContract):
    __test__ = True

    @pytest.fixture
    def repo(self, tmp_path: Path) -> Iterator[Repository]:
        repo = open_repository(tmp_path / "source.sqlite3")
        yield repo
        close(repo)

    @pytest.fixture
    def other_repo(self, tmp_path: Path) -> Iterator[Repository]:
        repo = open_repository(tmp_path / "target.sqlite3")
        yield repo
        close(repo)

    @pytest.fixture
    def directory(self, tmp_path: Path) -> Iterator[SqliteDirectoryStore]:
        file, store = open_store(tmp_path / "people.sqlite3")
        yield store
        file.close()

    @pytest.fixture
    def other_directory(self, tmp_path: Path) -> Iterator[SqliteDirectoryStore]:
        file, store = open_store(tmp_path / "people-copy.sqlite3")
        yield store
        file.close()
