"""Checkpoints run in a thread of their own, not inside whichever commit crosses SQLite's
threshold."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from servicegraph.storage.sqlite.file import SqliteFile


def test_the_log_is_checkpointed_beside_the_writers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SqliteFile, "checkpoint_interval", 0.01)
    file = SqliteFile(tmp_path / "x.sqlite3")
    with file._transaction() as conn:
        conn.execute("CREATE TABLE t (b BLOB)")
    with file._read() as conn:
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    for i in range(2000):
        with file._transaction() as conn:
            conn.execute("INSERT INTO t VALUES (zeroblob(4000))")
        if i % 100 == 0:
            time.sleep(0.03)  # the checkpointer's turn
    # 2000 commits of a page or two: over 8 MB of log had nothing checkpointed it
    assert (tmp_path / "x.sqlite3-wal").stat().st_size < 4 * 1024 * 1024
    file.close()
    assert not [t for t in threading.enumerate() if t.name == "checkpoint x.sqlite3"]


def test_a_file_only_read_starts_no_checkpointer(tmp_path: Path) -> None:
    file = SqliteFile(tmp_path / "y.sqlite3")
    file._read().execute("SELECT 1").fetchone()
    assert not [t for t in threading.enumerate() if t.name == "checkpoint y.sqlite3"]
    file.close()
