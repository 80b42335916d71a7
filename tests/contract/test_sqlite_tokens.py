"""The token store contract over the SQLite adapter: tokens in the file that holds
incidents (the graph's file, or the embedded file beside a Neo4j graph)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.storage.sqlite import SqliteGraphStore
from servicegraph.storage.sqlite.tokens import SqliteTokenStore
from tests.contract.sqlite_files import damage
from tests.contract.token_contract import TokenContract, make_token


class TestSqliteTokens(TokenContract):
    __test__ = True

    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        return tmp_path / "servicegraph.sqlite3"

    @pytest.fixture
    def tokens(self, path: Path) -> Iterator[SqliteTokenStore]:
        file = SqliteGraphStore(path, lock_timeout=10)
        file.migrate()
        yield SqliteTokenStore(file)
        file.close()

    @pytest.fixture
    def other_tokens(self, tokens: SqliteTokenStore, path: Path) -> Iterator[SqliteTokenStore]:
        file = SqliteGraphStore(path, lock_timeout=10)
        file.migrate()
        yield SqliteTokenStore(file)
        file.close()

    @pytest.fixture
    def failing_tokens(self, tmp_path: Path) -> Iterator[SqliteTokenStore]:
        path = tmp_path / "damaged.sqlite3"
        file = SqliteGraphStore(path, lock_timeout=10)
        file.migrate()
        SqliteTokenStore(file).add_token(make_token("tok-a", name="grafana"))
        file.close()
        damage(path)
        damaged = SqliteGraphStore(path, lock_timeout=10)
        yield SqliteTokenStore(damaged)
        damaged.close()
