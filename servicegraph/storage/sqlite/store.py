"""SQLite adapter of the store port.

Concurrency: WAL lets readers run beside one writer. Every unit of work starts with
``BEGIN IMMEDIATE``, which takes the write lock up front: a deferred transaction that reads
and later writes can fail with SQLITE_BUSY at once, whatever the busy timeout, when another
process wrote in between. Waiting writers sleep in SQLite's busy handler and, past it, in a
bounded retry loop here, so callers see a clear ``StoreError`` only after ``lock_timeout``.

Checkpoints (copying the write-ahead log into the database file) run in a thread of their
own (``_Checkpointer``), not in whichever commit crosses SQLite's threshold: that commit
would otherwise wait for 4 MB of pages to be written and synced, half a second here, in
the middle of a webhook or a correlation batch.

Read-only: a store opened with ``read_only=True`` (commands that only read) never writes:
no journal-mode switch, no migration, no checkpoint, and no ``-wal``/``-shm`` file where
the directory forbids creating one (see ``_Connections._open_read_only``). It turns
writable only to create or upgrade the schema, which every command did before.

Driver errors become ``StoreError`` (``SqliteFile.error``), and a corrupt file says so and
what to do about it, instead of "database disk image is malformed" with a traceback.

Sets of ids travel as one JSON array parameter (``IN (SELECT value FROM json_each(?))``):
no limit on the number of host parameters and one statement per batch.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from servicegraph.cmdb.errors import SchemaTooNew, StoreError, StoreUnavailable
from servicegraph.cmdb.identifiers import Identifier
from servicegraph.cmdb.model import (
    ConfigurationItem,
    Conflict,
    ConflictKind,
    HistoryEntry,
    HistoryKind,
    Lifecycle,
    OperationalState,
    Relationship,
    RelationshipKey,
    SourceSighting,
)
from servicegraph.cmdb.ports import (
    CIQuery,
    CISighting,
    CISummary,
    Direction,
    EdgeChange,
    GraphDelta,
    RelationshipSighting,
    SourceSweep,
    StoreCapabilities,
)
from servicegraph.storage.sqlite.migrations import MIGRATIONS

if TYPE_CHECKING:
    from servicegraph.storage.sqlite.dump import SqliteSnapshot

log = logging.getLogger(__name__)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode


def _dumps(value: Any) -> str:
    # Most relationship attribute maps are empty: skip the encoder for them (bulk loads
    # encode one map per relationship and per history entry).
    if type(value) is dict and not value:
        return "{}"
    return _encode(value)


def _loads(text: str) -> Any:
    if text == "{}":
        return {}
    return json.loads(text)


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


def _ids_param(ids: Iterable[str]) -> str:
    return _dumps(list(ids))


def _in_key_order(rows: list[tuple[Any, ...]], *key_columns: int) -> list[tuple[Any, ...]]:
    """``rows`` sorted by the columns of the table's primary key.

    A bulk write in key order fills each B-tree page once instead of jumping between
    pages at random, which halves the time of large upserts. The sort is stable: when a
    key appears twice, the later row still wins, as it would unsorted."""
    return sorted(rows, key=operator.itemgetter(*key_columns))


_CI_COLUMNS = (
    "id, class, name, attributes, attribute_sources, lifecycle, operational_state, stale, "
    "merged_into, created_at, updated_at, version"
)
_REL_COLUMNS = "from_id, type, to_id, attributes, created_at, updated_at, removed, stale"
_HISTORY_COLUMNS = "seq, at, ci_id, kind, field, old, new, source, actor, run_id, other_ci_id"


def _relationship(row: tuple[Any, ...]) -> Relationship:
    return Relationship(
        from_id=row[0],
        type=row[1],
        to_id=row[2],
        attributes=_loads(row[3]),
        created_at=from_us(row[4]),
        updated_at=from_us(row[5]),
        removed=bool(row[6]),
        stale=bool(row[7]),
    )


def _history(row: tuple[Any, ...]) -> HistoryEntry:
    return HistoryEntry(
        seq=row[0],
        at=from_us(row[1]),
        ci_id=row[2],
        kind=HistoryKind(row[3]),
        field=row[4],
        old=None if row[5] is None else _loads(row[5]),
        new=None if row[6] is None else _loads(row[6]),
        source=row[7],
        actor=row[8],
        run_id=row[9],
        other_ci_id=row[10],
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


class SqliteGraphStore(SqliteFile):
    """The embedded store. Safe to open from several processes and threads at once."""

    capabilities = StoreCapabilities(concurrent_writers=True, native_traversal=False)

    # -- lifecycle -----------------------------------------------------------------------

    def migrate(self) -> None:
        """Create or upgrade the schema. Read-only, only check it: a current schema needs no
        write, a missing or older one turns the file writable first."""
        if self.read_only:
            if self.path.exists():
                current = self._schema_version()
                self._refuse_newer(current)
                if current == len(MIGRATIONS):
                    return
            self.make_writable()
        with self._transaction() as conn:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            self._refuse_newer(current)
            for version in range(current, len(MIGRATIONS)):
                for statement in _split_sql(MIGRATIONS[version]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")

    def _refuse_newer(self, version: int) -> None:
        if version > len(MIGRATIONS):
            raise SchemaTooNew(
                f"{self.path} has schema version {version} but this servicegraph knows "
                f"only up to {len(MIGRATIONS)}; upgrade servicegraph"
            )

    def _schema_version(self) -> int:
        with self.errors("reading the schema version"):
            return int(self._read().execute("PRAGMA user_version").fetchone()[0])

    def ping(self) -> None:
        try:
            version = self._connections.get().execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            if is_corrupt(exc):
                raise StoreUnavailable(corrupt_message(self.path, exc)) from exc
            raise StoreUnavailable(f"SQLite store at {self.path} does not answer: {exc}") from exc
        if version < len(MIGRATIONS):
            raise StoreUnavailable(
                f"SQLite store at {self.path} is at schema {version}, expected "
                f"{len(MIGRATIONS)}; run migrations (servicegraph migrate)"
            )

    @contextmanager
    def write(self) -> Iterator[_SqliteWriter]:
        with self._transaction() as conn:
            yield _SqliteWriter(conn)

    # -- reads ---------------------------------------------------------------------------

    @_reading("reading CIs")
    def get_cis(self, ids: Iterable[str]) -> dict[str, ConfigurationItem]:
        return _load_cis(self._read(), ids)

    @_reading("reading CIs")
    def summaries(self, ids: Iterable[str]) -> dict[str, CISummary]:
        rows = self._read().execute(
            "SELECT id, name, json_extract(attributes, '$.criticality') FROM ci "
            "WHERE id IN (SELECT value FROM json_each(?))",
            (_ids_param(ids),),
        )
        return {ci_id: CISummary(name, criticality) for ci_id, name, criticality in rows}

    @_reading("looking up identifiers")
    def resolve_identifiers(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        # The writer's lookups only read; outside a transaction they see the last commit.
        return _SqliteWriter(self._read()).lookup_identifiers(identifiers)

    @_reading("looking up source keys")
    def resolve_keys(self, keys: Iterable[str], source: str | None = None) -> dict[str, set[str]]:
        sql = "SELECT key, ci_id FROM source_key WHERE key IN (SELECT value FROM json_each(?))"
        params: tuple[Any, ...] = (_ids_param(keys),)
        if source is not None:
            sql += " AND source = ?"
            params += (source,)
        result: dict[str, set[str]] = {}
        for key, ci_id in self._read().execute(sql, params):
            result.setdefault(key, set()).add(ci_id)
        return result

    @_reading("searching CIs")
    def find_cis(self, query: CIQuery) -> list[ConfigurationItem]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.ci_class is not None:
            clauses.append("class = ?")
            params.append(query.ci_class)
        if query.name_contains:
            clauses.append("instr(lower(name), lower(?)) > 0")
            params.append(query.name_contains)
        for attr, value in query.attributes.items():
            if isinstance(value, list | dict):  # json_extract gives compact JSON text
                value = _dumps(value)
            elif isinstance(value, bool):  # JSON true/false come back as 1/0
                value = int(value)
            clauses.append("json_extract(attributes, ?) IS ?")
            params.extend((f'$."{attr}"', value))
        if query.stale is not None:
            clauses.append("stale = ?")
            params.append(int(query.stale))
        if not query.include_merged:
            clauses.append("merged_into IS NULL")
        if query.after is not None:
            clauses.append("id > ?")
            params.append(query.after)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = (
            self._read()
            .execute(
                f"SELECT {_CI_COLUMNS} FROM ci {where} ORDER BY id LIMIT ?", (*params, query.limit)
            )
            .fetchall()
        )
        return _rows_to_cis(self._read(), rows)

    @_reading("reading relationships")
    def relationships(
        self,
        ci_ids: Iterable[str],
        *,
        direction: Direction = "both",
        types: Iterable[str] | None = None,
        include_removed: bool = False,
    ) -> list[Relationship]:
        ids = _ids_param(ci_ids)
        extra = "" if include_removed else " AND removed = 0"
        params: list[Any] = []
        if types is not None:
            extra += " AND type IN (SELECT value FROM json_each(?))"
            params.append(_dumps(list(types)))
        parts = []
        if direction in ("out", "both"):
            parts.append(
                f"SELECT {_REL_COLUMNS} FROM relationship "
                f"WHERE from_id IN (SELECT value FROM json_each(?)){extra}"
            )
        if direction in ("in", "both"):
            parts.append(
                f"SELECT {_REL_COLUMNS} FROM relationship "
                f"WHERE to_id IN (SELECT value FROM json_each(?)){extra}"
            )
        sql = " UNION ".join(parts) + " ORDER BY from_id, type, to_id"
        all_params: list[Any] = []
        for _ in parts:
            all_params.extend((ids, *params))
        return [_relationship(r) for r in self._read().execute(sql, all_params)]

    @_reading("reading history")
    def history(
        self,
        ci_ids: Iterable[str],
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[HistoryEntry]:
        ids = _ids_param(ci_ids)
        window = ""
        params: list[Any] = []
        if since is not None:
            window += " AND at >= ?"
            params.append(to_us(since))
        if until is not None:
            window += " AND at <= ?"
            params.append(to_us(until))
        sql = (
            f"SELECT {_HISTORY_COLUMNS} FROM history "
            f"WHERE ci_id IN (SELECT value FROM json_each(?)){window} "
            f"UNION SELECT {_HISTORY_COLUMNS} FROM history "
            f"WHERE other_ci_id IN (SELECT value FROM json_each(?)){window} ORDER BY seq"
        )
        rows = self._read().execute(sql, (ids, *params, ids, *params))
        return [_history(r) for r in rows]

    @_reading("reading merges")
    def merged_into(self, ci_id: str) -> list[str]:
        rows = self._read().execute(
            "WITH RECURSIVE m(id) AS (SELECT id FROM ci WHERE merged_into = ? "
            "UNION SELECT ci.id FROM ci JOIN m ON ci.merged_into = m.id) "
            "SELECT id FROM m ORDER BY id",
            (ci_id,),
        )
        return [r[0] for r in rows]

    @_reading("reading sightings")
    def sightings(self, ci_id: str) -> list[SourceSighting]:
        rows = self._read().execute(
            "SELECT source, first_seen, last_seen, last_run, missed_runs, stale "
            "FROM ci_sighting WHERE ci_id = ? ORDER BY source",
            (ci_id,),
        )
        return [
            SourceSighting(r[0], from_us(r[1]), from_us(r[2]), r[3], r[4], bool(r[5])) for r in rows
        ]

    @_reading("reading conflicts")
    def conflicts(self, *, limit: int = 1000) -> list[Conflict]:
        rows = self._read().execute(
            "SELECT id, detected_at, kind, source, item, identifier_kind, identifier_value, "
            "ci_id, other_ci_id, detail, run_id FROM conflict ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            Conflict(
                id=r[0],
                detected_at=from_us(r[1]),
                kind=ConflictKind(r[2]),
                source=r[3],
                item=r[4],
                identifier=(r[5], r[6]) if r[5] is not None else None,
                ci_id=r[7],
                other_ci_id=r[8],
                detail=r[9],
                run_id=r[10],
            )
            for r in rows
        ]

    @_reading("reading the change sequence")
    def change_seq(self) -> int:
        row = self._read().execute("SELECT value FROM meta WHERE key = 'change_seq'").fetchone()
        return int(row[0])

    @_reading("reading the graph")
    def graph_delta(self, since_seq: int) -> GraphDelta:
        conn = self._read()
        # One read transaction, so that the sequence number matches the rows returned
        # (inside a caller's unit of work, that transaction already is one).
        own_transaction = not conn.in_transaction
        if own_transaction:
            conn.execute("BEGIN")
        try:
            seq = int(conn.execute("SELECT value FROM meta WHERE key = 'change_seq'").fetchone()[0])
            edges = [
                EdgeChange(r[0], r[1], r[2], r[3], r[4], bool(r[5]))
                for r in conn.execute(
                    "SELECT from_id, type, to_id, json_extract(attributes, '$.redundancy_group'),"
                    " json_extract(attributes, '$.min_healthy'), removed FROM relationship"
                    + (" WHERE change_seq > ?" if since_seq else ""),
                    (since_seq,) if since_seq else (),
                )
            ]
            cis: dict[str, tuple[str, str | None]] = {}
            cluster_min_healthy: dict[str, int | None] = {}
            for ci_id, ci_class, merged_into, min_healthy in conn.execute(
                "SELECT id, class, merged_into, json_extract(attributes, '$.min_healthy') FROM ci"
                + (" WHERE change_seq > ?" if since_seq else ""),
                (since_seq,) if since_seq else (),
            ):
                cis[ci_id] = (ci_class, merged_into)
                if since_seq or min_healthy is not None:
                    cluster_min_healthy[ci_id] = min_healthy
        finally:
            if own_transaction:  # a read transaction: a rollback ends it and cannot fail it
                _rollback(conn)
        return GraphDelta(seq=seq, cis=cis, edges=edges, cluster_min_healthy=cluster_min_healthy)

    @_reading("counting")
    def counts(self) -> dict[str, int]:
        conn = self._read()
        return {
            "cis": conn.execute("SELECT count(*) FROM ci WHERE merged_into IS NULL").fetchone()[0],
            "relationships": conn.execute(
                "SELECT count(*) FROM relationship WHERE removed = 0"
            ).fetchone()[0],
            "history_entries": conn.execute("SELECT count(*) FROM history").fetchone()[0],
            "conflicts": conn.execute("SELECT count(*) FROM conflict").fetchone()[0],
        }

    @contextmanager
    def snapshot(self) -> Iterator[SqliteSnapshot]:
        """Export view: one read transaction on a connection of its own (see dump.py)."""
        from servicegraph.storage.sqlite import dump

        with self.errors("opening a snapshot for an export"):
            conn = dump.open_snapshot_connection(self)
        try:
            with self.errors("reading for an export"):
                yield dump.SqliteSnapshot(conn)
        finally:
            conn.close()


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _rows_to_cis(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[ConfigurationItem]:
    if not rows:
        return []
    identifiers: dict[str, list[Identifier]] = {}
    for ci_id, kind, value in conn.execute(
        "SELECT ci_id, kind, value FROM ci_identifier "
        "WHERE ci_id IN (SELECT value FROM json_each(?))",
        (_ids_param(r[0] for r in rows),),
    ):
        identifiers.setdefault(ci_id, []).append((kind, value))
    return [
        ConfigurationItem(
            id=r[0],
            ci_class=r[1],
            name=r[2],
            attributes=_loads(r[3]),
            attribute_sources=_loads(r[4]),
            lifecycle=Lifecycle(r[5]),
            operational_state=OperationalState(r[6]),
            stale=bool(r[7]),
            merged_into=r[8],
            created_at=from_us(r[9]),
            updated_at=from_us(r[10]),
            version=r[11],
            identifiers=tuple(sorted(identifiers.get(r[0], ()))),
        )
        for r in rows
    ]


def _load_cis(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, ConfigurationItem]:
    rows = conn.execute(
        f"SELECT {_CI_COLUMNS} FROM ci WHERE id IN (SELECT value FROM json_each(?))",
        (_ids_param(ids),),
    ).fetchall()
    return {ci.id: ci for ci in _rows_to_cis(conn, rows)}


def _ci_row(ci: ConfigurationItem, seq: int) -> tuple[Any, ...]:
    return (
        ci.id,
        ci.ci_class,
        ci.name,
        _dumps(ci.attributes),
        _dumps(ci.attribute_sources),
        ci.lifecycle.value,
        ci.operational_state.value,
        int(ci.stale),
        ci.merged_into,
        to_us(ci.created_at),
        to_us(ci.updated_at),
        ci.version,
        seq,
    )


class _SqliteWriter:
    """The unit of work handed out by ``SqliteGraphStore.write``; lives inside one
    ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._seq: int | None = None

    @property
    def seq(self) -> int:
        """This transaction's change sequence number, taken on first use."""
        if self._seq is None:
            self._seq = int(
                self._conn.execute(
                    "UPDATE meta SET value = value + 1 WHERE key = 'change_seq' RETURNING value"
                ).fetchone()[0]
            )
        return self._seq

    def lookup_identifiers(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        rows = [[k, v] for k, v in identifiers]
        if not rows:
            return {}
        result: dict[Identifier, str] = {}
        for kind, value, ci_id in self._conn.execute(
            "SELECT i.kind, i.value, i.ci_id FROM json_each(?) AS j "
            "JOIN ci_identifier AS i ON i.kind = json_extract(j.value, '$[0]') "
            "AND i.value = json_extract(j.value, '$[1]')",
            (_dumps(rows),),
        ):
            result[(kind, value)] = ci_id
        return result

    def lookup_keys(self, source: str, keys: Iterable[str]) -> dict[str, str]:
        return dict(
            self._conn.execute(
                "SELECT key, ci_id FROM source_key "
                "WHERE source = ? AND key IN (SELECT value FROM json_each(?))",
                (source, _ids_param(keys)),
            ).fetchall()
        )

    def load_cis(self, ids: Iterable[str]) -> dict[str, ConfigurationItem]:
        return _load_cis(self._conn, ids)

    def load_relationships(
        self, keys: Iterable[RelationshipKey]
    ) -> dict[RelationshipKey, Relationship]:
        rows = [list(k) for k in keys]
        if not rows:
            return {}
        result: dict[RelationshipKey, Relationship] = {}
        for row in self._conn.execute(
            f"SELECT {', '.join('r.' + c.strip() for c in _REL_COLUMNS.split(','))} "
            "FROM json_each(?) AS j JOIN relationship AS r "
            "ON r.from_id = json_extract(j.value, '$[0]') "
            "AND r.type = json_extract(j.value, '$[1]') "
            "AND r.to_id = json_extract(j.value, '$[2]')",
            (_dumps(rows),),
        ):
            rel = _relationship(row)
            result[rel.key] = rel
        return result

    def relationships_of(self, ci_ids: Iterable[str]) -> list[Relationship]:
        ids = _ids_param(ci_ids)
        return [
            _relationship(r)
            for r in self._conn.execute(
                f"SELECT {_REL_COLUMNS} FROM relationship WHERE removed = 0 AND "
                "from_id IN (SELECT value FROM json_each(?)) UNION "
                f"SELECT {_REL_COLUMNS} FROM relationship WHERE removed = 0 AND "
                "to_id IN (SELECT value FROM json_each(?))",
                (ids, ids),
            )
        ]

    def insert_cis(self, cis: Sequence[ConfigurationItem]) -> None:
        if not cis:
            return
        seq = self.seq
        try:
            self._conn.executemany(
                f"INSERT INTO ci ({_CI_COLUMNS}, change_seq) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _in_key_order([_ci_row(ci, seq) for ci in cis], 0),
            )
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"CI id already exists: {exc}") from exc
        self.add_identifiers([(ident, ci.id) for ci in cis for ident in ci.identifiers])

    def update_cis(self, cis: Sequence[ConfigurationItem]) -> None:
        if not cis:
            return
        seq = self.seq
        self._conn.executemany(
            "UPDATE ci SET class = ?, name = ?, attributes = ?, attribute_sources = ?, "
            "lifecycle = ?, operational_state = ?, stale = ?, merged_into = ?, created_at = ?, "
            "updated_at = ?, version = ?, change_seq = ? WHERE id = ?",
            _in_key_order([(*_ci_row(ci, seq)[1:], ci.id) for ci in cis], 12),
        )

    def add_identifiers(self, rows: Sequence[tuple[Identifier, str]]) -> None:
        if not rows:
            return
        try:
            self._conn.executemany(
                "INSERT INTO ci_identifier (kind, value, ci_id) VALUES (?, ?, ?)",
                _in_key_order([(kind, value, ci_id) for (kind, value), ci_id in rows], 0, 1),
            )
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"identifier already held by another CI: {exc}") from exc

    def remove_identifiers(self, identifiers: Sequence[Identifier]) -> None:
        self._conn.executemany(
            "DELETE FROM ci_identifier WHERE kind = ? AND value = ?", list(identifiers)
        )

    def move_keys_and_sightings(self, from_ci: str, to_ci: str) -> None:
        self._conn.execute("UPDATE source_key SET ci_id = ? WHERE ci_id = ?", (to_ci, from_ci))
        self._conn.execute(
            "INSERT OR IGNORE INTO ci_sighting "
            "(ci_id, source, first_seen, last_seen, last_run, missed_runs, stale) "
            "SELECT ?, source, first_seen, last_seen, last_run, missed_runs, stale "
            "FROM ci_sighting WHERE ci_id = ?",
            (to_ci, from_ci),
        )
        self._conn.execute("DELETE FROM ci_sighting WHERE ci_id = ?", (from_ci,))

    def set_keys(self, source: str, rows: Sequence[tuple[str, str]]) -> None:
        self._conn.executemany(
            "INSERT INTO source_key (source, key, ci_id) VALUES (?, ?, ?) "
            "ON CONFLICT (source, key) DO UPDATE SET ci_id = excluded.ci_id",
            _in_key_order([(source, key, ci_id) for key, ci_id in rows], 1),
        )

    def save_relationships(
        self, new: Sequence[Relationship], changed: Sequence[Relationship]
    ) -> None:
        if not new and not changed:
            return
        seq = self.seq
        rows = [
            (
                r.from_id,
                r.type,
                r.to_id,
                _dumps(r.attributes),
                to_us(r.created_at),
                to_us(r.updated_at),
                int(r.removed),
                int(r.stale),
                seq,
            )
            for r in (*new, *changed)
        ]
        self._conn.executemany(
            f"INSERT INTO relationship ({_REL_COLUMNS}, change_seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (from_id, type, to_id) DO UPDATE SET "
            "attributes = excluded.attributes, updated_at = excluded.updated_at, "
            "removed = excluded.removed, stale = excluded.stale, change_seq = excluded.change_seq",
            _in_key_order(rows, 0, 1, 2),
        )

    def record_sightings(
        self,
        source: str,
        run_id: str,
        at: dt.datetime,
        ci_ids: Iterable[str],
        relationship_keys: Iterable[RelationshipKey],
    ) -> tuple[list[str], list[RelationshipKey]]:
        ids = list(ci_ids)
        keys = list(relationship_keys)
        when = to_us(at)
        was_stale_cis = [
            r[0]
            for r in self._conn.execute(
                "SELECT ci_id FROM ci_sighting WHERE source = ? AND stale = 1 "
                "AND ci_id IN (SELECT value FROM json_each(?))",
                (source, _ids_param(ids)),
            )
        ]
        self._conn.executemany(
            "INSERT INTO ci_sighting (ci_id, source, first_seen, last_seen, last_run) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (ci_id, source) DO UPDATE SET "
            "last_seen = excluded.last_seen, last_run = excluded.last_run, "
            "missed_runs = 0, stale = 0",
            _in_key_order([(ci_id, source, when, when, run_id) for ci_id in ids], 0),
        )
        was_stale_rels: list[RelationshipKey] = []
        if keys:
            was_stale_rels = [
                (r[0], r[1], r[2])
                for r in self._conn.execute(
                    "SELECT s.from_id, s.type, s.to_id FROM json_each(?) AS j "
                    "JOIN relationship_sighting AS s ON s.from_id = json_extract(j.value, '$[0]')"
                    " AND s.type = json_extract(j.value, '$[1]') "
                    "AND s.to_id = json_extract(j.value, '$[2]') "
                    "WHERE s.source = ? AND s.stale = 1",
                    (_dumps([list(k) for k in keys]), source),
                )
            ]
            self._conn.executemany(
                "INSERT INTO relationship_sighting "
                "(from_id, type, to_id, source, first_seen, last_seen, last_run) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (from_id, type, to_id, source) "
                "DO UPDATE SET last_seen = excluded.last_seen, last_run = excluded.last_run, "
                "missed_runs = 0, stale = 0",
                _in_key_order(
                    [(f, t, to, source, when, when, run_id) for f, t, to in keys], 0, 1, 2
                ),
            )
        return was_stale_cis, was_stale_rels

    def sweep_unseen(
        self, source: str, run_id: str, stale_after: int
    ) -> tuple[list[str], list[RelationshipKey]]:
        # A run delivered twice (a retried task) counts one missed run, not two.
        if (
            self._conn.execute(
                "INSERT INTO source_sweep (source, run_id) VALUES (?, ?) "
                "ON CONFLICT (source) DO UPDATE SET run_id = excluded.run_id "
                "WHERE run_id IS NOT excluded.run_id RETURNING run_id",
                (source, run_id),
            ).fetchone()
            is None
        ):
            return [], []
        newly_stale = [
            r[0]
            for r in self._conn.execute(
                "UPDATE ci_sighting SET missed_runs = missed_runs + 1, "
                "stale = (missed_runs + 1 >= ?) "
                "WHERE source = ? AND last_run IS NOT ? RETURNING ci_id, missed_runs",
                (stale_after, source, run_id),
            ).fetchall()
            if r[1] == stale_after
        ]
        newly_stale_rels = [
            [r[0], r[1], r[2]]
            for r in self._conn.execute(
                "UPDATE relationship_sighting SET missed_runs = missed_runs + 1, "
                "stale = (missed_runs + 1 >= ?) "
                "WHERE source = ? AND last_run IS NOT ? "
                "RETURNING from_id, type, to_id, missed_runs",
                (stale_after, source, run_id),
            ).fetchall()
            if r[3] == stale_after
        ]
        return self._stale_everywhere(newly_stale, newly_stale_rels)

    def expire_sightings(self, before: dt.datetime) -> tuple[list[str], list[RelationshipKey]]:
        cutoff = to_us(before)
        expired = [
            r[0]
            for r in self._conn.execute(
                "UPDATE ci_sighting SET stale = 1 WHERE stale = 0 AND last_seen < ? "
                "RETURNING ci_id",
                (cutoff,),
            ).fetchall()
        ]
        expired_rels = [
            [r[0], r[1], r[2]]
            for r in self._conn.execute(
                "UPDATE relationship_sighting SET stale = 1 WHERE stale = 0 AND last_seen < ? "
                "RETURNING from_id, type, to_id",
                (cutoff,),
            ).fetchall()
        ]
        return self._stale_everywhere(expired, expired_rels)

    def _stale_everywhere(
        self, ci_ids: list[str], relationship_keys: list[list[str]]
    ) -> tuple[list[str], list[RelationshipKey]]:
        """Those of the given CIs and relationships that no source reports any more: an
        item another source still reports is not stale."""
        stale_cis = [
            r[0]
            for r in self._conn.execute(
                "SELECT DISTINCT value FROM json_each(?) WHERE NOT EXISTS (SELECT 1 FROM "
                "ci_sighting WHERE ci_id = value AND stale = 0)",
                (_ids_param(ci_ids),),
            )
        ]
        stale_rels = [
            (r[0], r[1], r[2])
            for r in self._conn.execute(
                "SELECT DISTINCT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), "
                "json_extract(j.value, '$[2]') FROM json_each(?) AS j WHERE NOT EXISTS "
                "(SELECT 1 FROM relationship_sighting AS s "
                "WHERE s.from_id = json_extract(j.value, '$[0]') "
                "AND s.type = json_extract(j.value, '$[1]') "
                "AND s.to_id = json_extract(j.value, '$[2]') AND s.stale = 0)",
                (_dumps(relationship_keys),),
            )
        ]
        return stale_cis, stale_rels

    def append_history(self, entries: Sequence[HistoryEntry]) -> None:
        if not entries:
            return
        self.seq  # noqa: B018 - history is a change: advance the sequence
        self._conn.executemany(
            "INSERT INTO history (at, ci_id, kind, field, old, new, source, actor, run_id, "
            "other_ci_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    to_us(e.at),
                    e.ci_id,
                    e.kind.value,
                    e.field,
                    None if e.old is None else _dumps(e.old),
                    None if e.new is None else _dumps(e.new),
                    e.source,
                    e.actor,
                    e.run_id,
                    e.other_ci_id,
                )
                for e in entries
            ],
        )

    def add_conflicts(self, conflicts: Sequence[Conflict]) -> None:
        self._conn.executemany(
            "INSERT INTO conflict (detected_at, kind, source, item, identifier_kind, "
            "identifier_value, ci_id, other_ci_id, detail, run_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    to_us(c.detected_at),
                    c.kind.value,
                    c.source,
                    c.item,
                    c.identifier[0] if c.identifier else None,
                    c.identifier[1] if c.identifier else None,
                    c.ci_id,
                    c.other_ci_id,
                    c.detail,
                    c.run_id,
                )
                for c in conflicts
            ],
        )

    # -- restore (see dump.py) -----------------------------------------------------------

    def restore_sightings(
        self, cis: Sequence[CISighting], relationships: Sequence[RelationshipSighting]
    ) -> None:
        from servicegraph.storage.sqlite import dump

        dump.restore_sightings(self._conn, cis, relationships)

    def restore_source_sweeps(self, sweeps: Sequence[SourceSweep]) -> None:
        from servicegraph.storage.sqlite import dump

        dump.restore_source_sweeps(self._conn, sweeps)

    def restore_history(self, entries: Sequence[HistoryEntry]) -> None:
        from servicegraph.storage.sqlite import dump

        if entries:
            self.seq  # noqa: B018 - history is a change: advance the sequence
            try:
                dump.restore_history(self._conn, entries)
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"history seq already taken: {exc}") from exc

    def restore_conflicts(self, conflicts: Sequence[Conflict]) -> None:
        from servicegraph.storage.sqlite import dump

        try:
            dump.restore_conflicts(self._conn, conflicts)
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"conflict id already taken: {exc}") from exc

    def restore_change_seq(self, seq: int) -> None:
        from servicegraph.storage.sqlite import dump

        dump.restore_change_seq(self._conn, seq)
