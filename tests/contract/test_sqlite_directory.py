"""The directory contract over the SQLite adapter: people and the catalogue in the file
that holds tickets, plus what only a file can suffer (a row edited by hand)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.cmdb.errors import StoreError
from servicegraph.storage.sqlite import SqliteGraphStore
from servicegraph.storage.sqlite.directory import SqliteDirectoryStore
from tests.contract.directory_contract import DirectoryContract, seed
from tests.contract.sqlite_files import damage


def open_store(
    path: Path, *, migrate: bool = True
) -> tuple[SqliteGraphStore, SqliteDirectoryStore]:
    file = SqliteGraphStore(path, lock_timeout=10)
    if migrate:
        file.migrate()
    return file, SqliteDirectoryStore(file)


class TestSqliteDirectory(DirectoryContract):
    __test__ = True

    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        return tmp_path / "servicegraph.sqlite3"

    @pytest.fixture
    def store(self, path: Path) -> Iterator[SqliteDirectoryStore]:
        file, store = open_store(path)
        yield store
        file.close()

    @pytest.fixture
    def other_store(
        self, store: SqliteDirectoryStore, path: Path
    ) -> Iterator[SqliteDirectoryStore]:
        file, other = open_store(path)
        yield other
        file.close()

    @pytest.fixture
    def failing_store(self, tmp_path: Path) -> Iterator[SqliteDirectoryStore]:
        path = tmp_path / "damaged.sqlite3"
        file, store = open_store(path)
        seed(store)
        file.close()
        damage(path)
        damaged, store = open_store(path, migrate=False)
        yield store
        damaged.close()


@pytest.mark.parametrize(
    ("sql", "table", "key"),
    [
        ("UPDATE desk_agent SET email = 'not an address' WHERE login = 'bob'", "desk_agent", "bob"),
        ("UPDATE desk_agent SET roles = '[\"boss\"]' WHERE login = 'alice'", "desk_agent", "alice"),
        ("UPDATE desk_contact SET vip = 1, name = '' WHERE id = 'c2'", "desk_contact", "c2"),
        (
            "UPDATE desk_organisation SET domains = 'acme' WHERE id = 'acme'",
            "desk_organisation",
            "acme",
        ),
        (
            "UPDATE desk_service SET defaults = '{\"colour\": 1}' WHERE id = 'email'",
            "desk_service",
            "email",
        ),
        (
            "UPDATE desk_category SET types = '[\"memo\"]' WHERE path = 'network'",
            "desk_category",
            "network",
        ),
    ],
)
def test_a_row_edited_into_nonsense_is_a_store_error_naming_it(
    tmp_path: Path, sql: str, table: str, key: str
) -> None:
    path = tmp_path / "servicegraph.sqlite3"
    file, store = open_store(path)
    seed(store)
    with sqlite3.connect(path) as raw:
        raw.execute(sql)
    raw.close()
    load = (
        store.load_catalogue if table in ("desk_service", "desk_category") else store.load_directory
    )
    with pytest.raises(StoreError) as info:
        load()
    assert f"{table} row '{key}'" in str(info.value)
    assert info.value.__cause__ is not None
    file.close()


def test_a_membership_row_naming_no_agent_is_ignored(tmp_path: Path) -> None:
    """The store keeps no foreign keys; a pair left behind names nobody and is not shown."""
    file, store = open_store(tmp_path / "servicegraph.sqlite3")
    seed(store)
    with sqlite3.connect(file.path) as raw:
        raw.execute("INSERT INTO desk_group_member (group_id, login) VALUES ('noc', 'ghost')")
    raw.close()
    assert store.load_directory().groups["noc"].members == ("alice", "bob")
    file.close()
