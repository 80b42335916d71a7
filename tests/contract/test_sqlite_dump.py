"""Export and restore over the SQLite adapter (the contract in dump_contract.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.cmdb.ports import GraphStore
from servicegraph.storage.sqlite import SqliteGraphStore
from tests.contract.dump_contract import DumpContract, EmptyTarget


class TestSqliteDump(DumpContract):
    __test__ = True

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqliteGraphStore]:
        store = SqliteGraphStore(tmp_path / "graph.sqlite3", lock_timeout=10)
        store.migrate()
        yield store
        store.close()

    @pytest.fixture
    def empty_target(self, tmp_path: Path) -> Iterator[EmptyTarget]:
        opened: list[SqliteGraphStore] = []

        def make(_: GraphStore) -> GraphStore:
            target = SqliteGraphStore(tmp_path / f"target{len(opened)}.sqlite3", lock_timeout=10)
            target.migrate()
            opened.append(target)
            return target

        yield make
        for target in opened:
            target.close()
