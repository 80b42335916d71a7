"""SQLite files: connections per thread, transactions, checkpoints, driver errors.

Concurrency: WAL lets readers run beside one writer. Every unit of work starts with
``BEGIN IMMEDIATE``, which takes the write lock up front: a deferred transaction that reads
and later writes can fail with SQLITE_BUSY at once, whatever the busy timeout, when another
process wrote in between. Waiting writers sleep in SQLite's busy handler and, past it, in a
bounded retry loop here, so callers see a clear ``StoreError`` only after ``lock_timeout``.

Checkpoints (copying the write-ahead log into the database file) run in a thread of their
own (``_Checkpointer``), not in whichever commit crosses SQLite's threshold: that commit
would otherwise wait for 4 MB of pages to be written and synced, half a second here, in
the middle of a webhook or a correlation batch.

Read-only: a file opened with ``read_only=True`` (commands that only read) never writes:
no journal-mode switch, no migration, no checkpoint, and no ``-wal``/``-shm`` file where
the directory forbids creating one (see ``_Connections._open_read_only``). It turns
writable only to create or upgrade the schema, which every command did before.

Driver errors become ``StoreError`` (``SqliteFile.error``), and a corrupt file says so and
what to do about it, instead of "database disk image is malformed" with a traceback.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from servicegraph.cmdb.errors import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def to_us(value: dt.datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; use timezone-aware UTC times")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@functools.lru_cache(maxsize=4096)
def from_us(value: int) -> dt.datetime:
    # Cached: the rows of one batch share a handful of timestamps, and datetimes are
    # immutable, so sharing one object is safe.
    return _EPOCH + dt.timedelta(microseconds=value)


_CORRUPT = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def is_corrupt(exc: sqlite3.Error) -> bool:
    """Whether SQLite found the file damaged ("database disk image is malformed", "file is
    not a database"), not merely busy or unwritable."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _CORRUPT


def corrupt_message(path: Path, exc: sqlite3.Error) -> str:
    return (
        f"the database file {path} is corrupt (sqlite: {exc}); stop servicegraph and restore "
        "the file from a backup, or move it aside and restore an export "
        "(`servicegraph import --from-export FILE`)"
    )


class _Connections:
    """One connection per thread: sqlite3 connections must not be shared across threads."""

    def __init__(
        self,
        path: Path,
        busy_timeout_ms: int,
        synchronous: str = "NORMAL",
        *,
        read_only: bool = False,
    ) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._synchronous = synchronous
        self.read_only = read_only
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        if self.read_only and not self._writable():
            return self._open_read_only()
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=0
            )
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreUnavailable(f"{self._path}: cannot use WAL journaling (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the _Checkpointer's job
            conn.execute("PRAGMA cache_size = -65536")  # 64 MiB page cache per connection
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute("PRAGMA mmap_size = 268435456")
        except sqlite3.Error as exc:
            raise self._open_error(exc) from exc
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot create the data directory for {self._path}: {exc}"
            ) from exc
        return conn

    def _writable(self) -> bool:
        """Whether this process may write the file and create files beside it. Then even a
        reader opens it as usual (it writes nothing through it): SQLite creates the -wal
        and -shm files for any reader of a WAL file, and only a connection that may write
        deletes them on close; a read-only one would leave them behind."""
        return os.access(self._path.parent, os.W_OK | os.X_OK) and os.access(self._path, os.W_OK)

    def _open_read_only(self) -> sqlite3.Connection:
        """A connection that cannot write, for a data directory that may not be writable.

        SQLite reads a WAL database read-only when its ``-shm`` file exists (a process
        that writes has it open) or can be created; in a read-only directory after the
        last writer closed, neither holds (SQLITE_READONLY_DIRECTORY) and the file is
        opened ``immutable`` instead: no locks and no ``-shm`` (https://www.sqlite.org/wal.html,
        "Read-Only Databases"). That is only right when no ``-wal`` file holds commits the
        main file lacks, and nobody can write beside us, which a read-only directory
        guarantees for as long as it stays one.
        """
        uri = self._path.absolute().as_uri()
        try:
            conn = self._connect_read_only(f"{uri}?mode=ro")
            try:
                conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # opens -shm
            except sqlite3.OperationalError as exc:
                conn.close()
                code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
                if code not in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN):
                    raise
                if self._path.with_name(self._path.name + "-wal").exists():
                    raise StoreUnavailable(
                        f"cannot read {self._path} read-only: its write-ahead log holds "
                        "changes that only a process allowed to write to "
                        f"{self._path.parent} can recover; run servicegraph there once"
                    ) from exc
                conn = self._connect_read_only(f"{uri}?mode=ro&immutable=1")
                conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
            conn.execute("PRAGMA cache_size = -65536")
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute("PRAGMA mmap_size = 268435456")
        except sqlite3.Error as exc:
            raise self._open_error(exc) from exc
        return conn

    def _connect_read_only(self, uri: str) -> sqlite3.Connection:
        conn = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, timeout=0
        )
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        return conn

    def _open_error(self, exc: sqlite3.Error) -> StoreUnavailable:
        if is_corrupt(exc):
            return StoreUnavailable(corrupt_message(self._path, exc))
        return StoreUnavailable(f"cannot open the SQLite store at {self._path}: {exc}")

    def close_all(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


class _Checkpointer:
    """Checkpoints one SQLite file every ``interval`` seconds from a daemon thread, in
    PASSIVE mode: it never waits for, nor blocks, readers and writers. Another process's
    checkpointer may be at it: that one is simply skipped. The last connection to close
    checkpoints what is left."""

    def __init__(self, path: Path, interval: float) -> None:
        self._path = path
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"checkpoint {path.name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:  # the file went away before the thread started
            log.debug("no checkpoints of %s: %s", self._path, exc)
            return
        try:
            while not self._stop.wait(self._interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # busy, or the file is gone: next time
                    log.debug("checkpoint of %s skipped: %s", self._path, exc)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


# The longest SQLite's busy handler waits in one go; `_begin` retries after it.
_BUSY_HANDLER_MAX_S = 10.0


class SqliteFile:
    """One SQLite file shared by threads and processes: per-thread connections, and write
    transactions that take the lock up front and wait for it (see the module docstring).
    ``read_only``: the file is only read (see the module docstring)."""

    checkpoint_interval = 1.0  # seconds between background checkpoints

    def __init__(
        self,
        path: Path | str,
        *,
        lock_timeout: float = 120.0,
        synchronous: str = "NORMAL",
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        # SQLite's own busy handler waits first, the retry loop in `_begin` covers the rest.
        # The handler must not outwait ``lock_timeout`` (a fixed 10 s made every shorter
        # setting a 10 s one): `_begin` only looks at its deadline once the handler returns.
        # NORMAL survives a crash of the process; FULL also a crash of the machine.
        busy_timeout_ms = max(1, round(min(lock_timeout, _BUSY_HANDLER_MAX_S) * 1000))
        self._connections = _Connections(
            self.path, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous, read_only=read_only
        )
        self._checkpointer: _Checkpointer | None = None
        self._checkpointer_pid = 0  # a forked child starts its own
        self._checkpointer_lock = threading.Lock()

    @property
    def read_only(self) -> bool:
        return self._connections.read_only

    def make_writable(self) -> None:
        """Reopen a read-only file for writing (to create or upgrade its schema). Before
        other threads use it: their connections are closed."""
        if self.read_only:
            self._connections.close_all()
            self._connections.read_only = False

    def close(self) -> None:
        with self._checkpointer_lock:
            if self._checkpointer is not None and self._checkpointer_pid == os.getpid():
                self._checkpointer.stop()
            self._checkpointer = None
        self._connections.close_all()

    def error(self, exc: sqlite3.Error, action: str) -> StoreError:
        """The domain error for a driver error while doing ``action`` (callers chain it:
        ``raise file.error(exc, "reading CIs") from exc``)."""
        if is_corrupt(exc):
            return StoreError(corrupt_message(self.path, exc))
        return StoreError(f"{action} failed on {self.path}: {exc}")

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Driver errors in the block become ``StoreError`` (see ``error``)."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self.error(exc, action) from exc

    def _checkpoint_in_background(self) -> None:
        """Started with the first write: readers and short commands need no thread."""
        if self._checkpointer is not None and self._checkpointer_pid == os.getpid():
            return
        with self._checkpointer_lock:
            if self._checkpointer is None or self._checkpointer_pid != os.getpid():
                self._checkpointer = _Checkpointer(self.path, self.checkpoint_interval)
                self._checkpointer_pid = os.getpid()

    def _read(self) -> sqlite3.Connection:
        return self._connections.get()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:  # a command declared read-only that writes: a bug, not a lock
            raise StoreError(f"{self.path} is open read-only; this command cannot write")
        self._checkpoint_in_background()
        conn = self._connections.get()
        self._begin(conn)
        try:
            yield conn
        except sqlite3.Error as exc:
            _rollback(conn)
            raise self.error(exc, "a write") from exc
        except BaseException:
            _rollback(conn)
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            raise self.error(exc, "a commit") from exc

    def _begin(self, conn: sqlite3.Connection) -> None:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise self.error(exc, "starting a transaction") from exc
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"{self.path} stayed locked by another writer for {self.lock_timeout:g}"
                        " s; a long import may be running, retry when it finishes"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.25)


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back after a failure, which stays the error to report: a damaged file may fail
    the rollback too."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        log.debug("rollback failed: %s", exc)


_File = TypeVar("_File", bound=SqliteFile)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _reading(
    action: str,
) -> Callable[[Callable[Concatenate[_File, _P], _R]], Callable[Concatenate[_File, _P], _R]]:
    """Driver errors of a read method become ``StoreError`` (``SqliteFile.error``)."""

    def decorate(
        method: Callable[Concatenate[_File, _P], _R],
    ) -> Callable[Concatenate[_File, _P], _R]:
        @functools.wraps(method)
        def read(self: _File, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise self.error(exc, action) from exc

        return read

    return decorate
