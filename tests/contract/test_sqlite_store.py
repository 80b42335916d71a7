"""The store contract over the SQLite adapter, plus what only SQLite has: a file, WAL and a
schema version in ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.cmdb.errors import SchemaTooNew, StoreUnavailable
from servicegraph.storage.sqlite import SqliteGraphStore
from servicegraph.storage.sqlite.migrations import MIGRATIONS
from tests.contract.store_contract import StoreContract, make_ci


class TestSqliteStore(StoreContract):
    __test__ = True

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqliteGraphStore]:
        store = SqliteGraphStore(tmp_path / "graph.sqlite3", lock_timeout=10)
        store.migrate()
        yield store
        store.close()


def test_capabilities() -> None:
    caps = SqliteGraphStore.capabilities
    assert caps.concurrent_writers is True
    assert caps.native_traversal is False


def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "graph.sqlite3"
    first = SqliteGraphStore(path)
    first.migrate()
    with first.write() as w:
        w.insert_cis([make_ci("ci-a", identifiers=[("serial_number", "S1")])])
    first.close()
    second = SqliteGraphStore(path)
    second.migrate()
    try:
        assert second.get_cis(["ci-a"])["ci-a"] == make_ci(
            "ci-a", identifiers=[("serial_number", "S1")]
        )
    finally:
        second.close()


def test_uses_wal(tmp_path: Path) -> None:
    store = SqliteGraphStore(tmp_path / "graph.sqlite3")
    store.migrate()
    store.close()
    with sqlite3.connect(tmp_path / "graph.sqlite3") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_ping_before_migrate_says_what_to_do(tmp_path: Path) -> None:
    store = SqliteGraphStore(tmp_path / "graph.sqlite3")
    try:
        with pytest.raises(StoreUnavailable, match="migrat"):
            store.ping()
    finally:
        store.close()


def test_schema_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "graph.sqlite3"
    store = SqliteGraphStore(path)
    store.migrate()
    store.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    newer = SqliteGraphStore(path)
    try:
        with pytest.raises(SchemaTooNew, match="upgrade"):
            newer.migrate()
    finally:
        newer.close()


def test_unopenable_path_raises_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    store = SqliteGraphStore(blocker / "graph.sqlite3")
    with pytest.raises(StoreUnavailable) as info:
        store.migrate()
    assert info.value.__cause__ is not None  # chained to the driver's or OS's error
    store.close()
