"""``SQLITE_LOCK_TIMEOUT`` bounds the wait for another process's write lock, also when it
is shorter than SQLite's own busy handler would wait."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from servicegraph.bootstrap import bootstrap
from servicegraph.cmdb.errors import StoreError
from servicegraph.cmdb.model import utcnow
from servicegraph.config import Settings
from servicegraph.events.model import Event, EventStatus, Severity
from servicegraph.storage.sqlite.file import SqliteFile

LOCK_TIMEOUT = 1.0
# Not a speed requirement: only "gave up near the timeout", far below the 10 s SQLite's
# busy handler waited regardless of the setting, and the 120 s default.
GAVE_UP_WITHIN = LOCK_TIMEOUT + 7.0

_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@contextmanager
def write_locked(path: Path) -> Iterator[None]:
    """Another process holds the write lock of ``path`` until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)


def _gives_up(work: object) -> tuple[float, str]:
    assert callable(work)
    start = time.monotonic()
    with pytest.raises(StoreError) as caught:
        work()
    return time.monotonic() - start, str(caught.value)


def test_a_writer_gives_up_after_the_lock_timeout(tmp_path: Path) -> None:
    file = SqliteFile(tmp_path / "x.sqlite3", lock_timeout=LOCK_TIMEOUT)
    with file._transaction() as conn:
        conn.execute("CREATE TABLE t (v INTEGER)")

    def write() -> None:
        with file._transaction() as conn:
            conn.execute("INSERT INTO t VALUES (1)")

    with write_locked(file.path):
        elapsed, message = _gives_up(write)
    assert elapsed < GAVE_UP_WITHIN
    assert "stayed locked" in message and "1 s" in message
    write()  # the lock released, writing works again
    file.close()


def test_the_setting_reaches_the_graph_and_the_inbox(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, sqlite_lock_timeout=LOCK_TIMEOUT)
    services = bootstrap(settings)
    try:

        def write_graph() -> None:
            with services.store.write():
                pass

        event = Event(
            source="test",
            name="down",
            status=EventStatus.FIRING,
            severity=Severity.MAJOR,
            occurred_at=utcnow(),
            fingerprint="f-1",
            event_id="e-1",
        )
        with write_locked(settings.sqlite_file):
            elapsed, message = _gives_up(write_graph)
        assert elapsed < GAVE_UP_WITHIN and "stayed locked" in message
        inbox = settings.sqlite_file.with_name(f"{settings.sqlite_file.stem}-inbox.sqlite3")
        with write_locked(inbox):
            elapsed, message = _gives_up(lambda: services.inbox.append([event], utcnow()))
        assert elapsed < GAVE_UP_WITHIN and "stayed locked" in message
    finally:
        services.close()
