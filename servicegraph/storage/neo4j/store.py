"""Neo4j adapter of the store port, on the official driver.

Every statement comes from ``cypher.py`` (named, linted); this module only binds
parameters, batches rows and maps records to the domain model. Its parts: the unit of
work (``writer``), the export (``dump``), the write lock (``lock``), the reads of more
than a statement or need a conversion (``reads``), the translation of driver errors
(``errors``).

Units of work and the write lock
--------------------------------
Neo4j runs transactions at *read committed*, so every unit of work (``write``) starts by
taking one exclusive lock, held until commit or rollback: units run one at a time across
every process and host, and readers are never blocked. Why, and how, is in ``lock``.

Retries
-------
Reads run in managed transactions (``execute_read``), which the driver retries on
transient errors and lost connections for ``max_retry_time`` seconds. A unit of work runs
the caller's code, which the store cannot replay: the start of a unit (begin and lock) is
retried, a failure after that is reported as ``StoreError`` and everything is rolled
back, so the caller (a job with its own retry policy, a user) can run it again.

Consistency of reads
--------------------
Every session of one store shares a bookmark manager, so a read sees every unit this
process committed before, also on a cluster's followers. ``graph_delta`` reads the change
sequence before the rows (``reads.graph_delta``): rows committed after the read may be
returned early (and again next time), never missed.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager

import neo4j
from neo4j import GraphDatabase, ManagedTransaction, Transaction
from neo4j.exceptions import DriverError, Neo4jError

from servicegraph import __version__
from servicegraph.access.redaction import redact_in, redact_uri
from servicegraph.cmdb.errors import CmdbError, SchemaTooNew, StoreUnavailable
from servicegraph.cmdb.identifiers import Identifier
from servicegraph.cmdb.model import (
    ConfigurationItem,
    Conflict,
    HistoryEntry,
    Relationship,
    SourceSighting,
)
from servicegraph.cmdb.ports import (
    CIQuery,
    CISummary,
    Direction,
    GraphDelta,
    StoreCapabilities,
)
from servicegraph.storage.neo4j import cypher, reads, schema
from servicegraph.storage.neo4j.dump import Neo4jSnapshot
from servicegraph.storage.neo4j.errors import driver_error
from servicegraph.storage.neo4j.lock import begin_locked
from servicegraph.storage.neo4j.records import (
    T,
    consume,
    load_cis,
    lookup_identifiers,
    one_line,
    read_change_seq,
    relationships_of,
    rollback_quietly,
    run,
    to_ci,
    to_conflict,
    to_neo4j_time,
    to_sighting,
    unique,
)
from servicegraph.storage.neo4j.writer import Neo4jWriter

# -- the store -------------------------------------------------------------------------


class Neo4jGraphStore:
    """The production store: one Neo4j database (a single server, a cluster or Aura)."""

    capabilities = StoreCapabilities(concurrent_writers=True, native_traversal=False)

    def __init__(
        self,
        uri: str,
        *,
        user: str = "neo4j",
        password: str = "",
        database: str = "neo4j",
        batch_size: int = 5000,
        connect_timeout: float = 10.0,
        max_retry_time: float = 15.0,
        index_wait: int = 300,
        change_poll_interval: float = 0.1,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if change_poll_interval < 0:
            raise ValueError("change_poll_interval must be at least 0")
        self.uri = uri
        self.user = user
        self.database = database
        self.batch_size = batch_size
        self.max_retry_time = max_retry_time
        self.index_wait = index_wait
        try:
            self._driver = GraphDatabase.driver(
                uri,
                auth=(user, password) if user else None,
                connection_timeout=connect_timeout,
                max_transaction_retry_time=max_retry_time,
                user_agent=f"servicegraph/{__version__}",
            )
        except (ValueError, DriverError) as exc:
            raise StoreUnavailable(
                f"cannot use Neo4j URI '{redact_uri(uri)}': {redact_in(one_line(exc), uri)}; "
                "SERVICEGRAPH_NEO4J_URI takes neo4j://host:7687 or neo4j+s://host"
            ) from exc
        self._bookmarks = GraphDatabase.bookmark_manager()
        # change_seq() is asked before every impact query and every correlation batch; on
        # Neo4j that is a Bolt round trip (~2 ms, 50x the query itself). So the sequence
        # read is kept for ``change_poll_interval`` seconds: this process's own commits
        # drop it at once (read-your-writes), other hosts' commits are seen within the
        # interval. The generation keeps a read that raced a commit from being kept.
        self.change_poll_interval = change_poll_interval
        self._seq_lock = threading.Lock()
        self._seq_generation = 0
        self._seq_cached: tuple[int, float] | None = None  # (seq, monotonic time read)

    def __repr__(self) -> str:
        return f"Neo4jGraphStore({self.shown_uri!r}, database={self.database!r})"

    @property
    def shown_uri(self) -> str:
        """The URI for messages: without the password it may hold."""
        return redact_uri(self.uri)

    # -- errors and sessions -------------------------------------------------------------

    def _error(self, exc: Exception, action: str) -> CmdbError:
        """The domain error for a driver error (callers chain it: ``from exc``)."""
        return driver_error(exc, action, uri=self.uri, database=self.database, user=self.user)

    def _session(self, access_mode: str) -> neo4j.Session:
        return self._driver.session(
            database=self.database,
            default_access_mode=access_mode,
            bookmark_manager=self._bookmarks,
        )

    def _read(self, action: str, work: Callable[[ManagedTransaction], T]) -> T:
        try:
            with self._session(neo4j.READ_ACCESS) as session:
                return session.execute_read(work)
        except (Neo4jError, DriverError) as exc:
            raise self._error(exc, action) from exc

    def _write_auto(self, action: str, work: Callable[[ManagedTransaction], T]) -> T:
        try:
            with self._session(neo4j.WRITE_ACCESS) as session:
                return session.execute_write(work)
        except (Neo4jError, DriverError) as exc:
            raise self._error(exc, action) from exc
        finally:
            self._forget_change_seq()  # emptying and migrating reset the sequence

    def _verify(self) -> None:
        """Fail fast (no retries) when the server cannot be reached or refuses us."""
        try:
            self._driver.verify_connectivity()
        except (Neo4jError, DriverError) as exc:
            raise self._error(exc, "connecting") from exc

    # -- what the desk's adapters share (``desk.py``) ---------------------------------------

    def error(self, exc: Exception, action: str) -> CmdbError:
        """The domain error for a driver error met while doing ``action``."""
        return self._error(exc, action)

    def read(self, action: str, work: Callable[[ManagedTransaction], T]) -> T:
        """Run ``work`` in a managed read transaction (retried by the driver)."""
        return self._read(action, work)

    def write_auto(self, action: str, work: Callable[[ManagedTransaction], T]) -> T:
        """Run ``work`` in a managed write transaction without a lock (retried by the
        driver, so ``work`` must be idempotent)."""
        return self._write_auto(action, work)

    def locked(self, purpose: str, lock: str) -> AbstractContextManager[Transaction]:
        """A transaction holding the write lock named ``lock``, committed when the block
        ends, rolled back when it raises (``_locked_transaction``)."""
        return self._locked_transaction(purpose, lock)

    def run_locked(self, purpose: str, lock: str, work: Callable[[Transaction], T]) -> T:
        """``work`` in one transaction holding the write lock ``lock`` (``locked``), its
        driver errors mapped to domain errors; returns what ``work`` returns."""
        with self._locked_transaction(purpose, lock) as tx:
            return work(tx)

    @contextmanager
    def transaction(self, purpose: str, timeout: float | None = None) -> Iterator[Transaction]:
        """An explicit write transaction without a lock, committed when the block ends,
        rolled back when it raises; never retried (the caller's work may not be
        idempotent). ``timeout`` bounds it on the server, in seconds."""
        try:
            with self._session(neo4j.WRITE_ACCESS) as session:
                tx = session.begin_transaction(
                    metadata={"app": "servicegraph", "unit": purpose}, timeout=timeout
                )
                try:
                    yield tx
                except BaseException:
                    rollback_quietly(tx)
                    raise
                tx.commit()
        except (Neo4jError, DriverError) as exc:
            raise self._error(exc, purpose) from exc

    # -- lifecycle -----------------------------------------------------------------------

    def _schema_version(self) -> int:
        def work(tx: ManagedTransaction) -> int:
            record = run(tx, cypher.READ_SCHEMA_VERSION, name=cypher.SCHEMA_VERSION_NAME).single()
            return int(record["version"] or 0) if record else 0

        return self._read("reading the schema version", work)

    def migrate(self) -> None:
        self._verify()
        current = self._schema_version()
        known = len(schema.MIGRATIONS)
        if current > known:
            raise SchemaTooNew(
                f"Neo4j database '{self.database}' has schema version {current} but this "
                f"servicegraph knows only up to {known}; upgrade servicegraph"
            )
        for migration in schema.MIGRATIONS[current:]:
            action = f"migrating to schema {migration.version} ({migration.description})"
            # Schema commands cannot share a transaction with each other or with data.
            for statement in migration.schema:
                self._write_auto(action, consume(statement, {}))
            for statement, params in migration.data:
                self._write_auto(action, consume(statement, params))
            # on the leader, where the indexes were created
            self._write_auto(action, consume(cypher.AWAIT_INDEXES, {"timeout": self.index_wait}))
            version = {"name": cypher.SCHEMA_VERSION_NAME, "version": migration.version}
            self._write_auto(action, consume(cypher.SET_SCHEMA_VERSION, version))

    def close(self) -> None:
        self._driver.close()

    def ping(self) -> None:
        self._verify()
        version = self._schema_version()
        if version < len(schema.MIGRATIONS):
            raise StoreUnavailable(
                f"Neo4j database '{self.database}' at {self.shown_uri} is at schema {version}, "
                f"expected {len(schema.MIGRATIONS)}; run migrations (servicegraph migrate)"
            )

    # -- units of work -------------------------------------------------------------------

    def _begin_locked(
        self, session: neo4j.Session, purpose: str, lock: str = cypher.WRITE_LOCK_NAME
    ) -> Transaction:
        """Begin a transaction holding the write lock (``lock``)."""
        return begin_locked(
            session,
            purpose,
            max_retry_time=self.max_retry_time,
            database=self.database,
            shown_uri=self.shown_uri,
            lock=lock,
        )

    @contextmanager
    def _locked_transaction(
        self, purpose: str, lock: str = cypher.WRITE_LOCK_NAME
    ) -> Iterator[Transaction]:
        try:
            session = self._session(neo4j.WRITE_ACCESS)
        except (Neo4jError, DriverError) as exc:
            raise self._error(exc, purpose) from exc
        try:
            try:
                tx = self._begin_locked(session, purpose, lock)
            except (Neo4jError, DriverError) as exc:
                raise self._error(exc, f"starting {purpose}") from exc
            try:
                yield tx
            except (Neo4jError, DriverError) as exc:  # met by the caller's work
                rollback_quietly(tx)
                raise self._error(exc, purpose) from exc
            except BaseException:
                rollback_quietly(tx)
                raise
            try:
                tx.commit()
            except (Neo4jError, DriverError) as exc:
                raise self._error(exc, f"committing {purpose}") from exc
            finally:
                self._forget_change_seq()  # even a failed commit may have landed
        finally:
            session.close()

    @contextmanager
    def write(self) -> Iterator[Neo4jWriter]:
        with self._locked_transaction("a unit of work") as tx:
            yield Neo4jWriter(tx, batch_size=self.batch_size, error=self._error)

    @contextmanager
    def snapshot(self) -> Iterator[Neo4jSnapshot]:
        # Read committed gives no snapshot; holding the write lock does: no unit can
        # commit while the export reads. Nothing is written, so it ends in a rollback.
        session = self._session(neo4j.WRITE_ACCESS)
        try:
            try:
                tx = self._begin_locked(session, "an export")
            except (Neo4jError, DriverError) as exc:
                raise self._error(exc, "starting an export") from exc
            try:
                yield Neo4jSnapshot(tx, error=self._error)
            finally:
                rollback_quietly(tx)
        finally:
            session.close()

    # -- reads ---------------------------------------------------------------------------

    def get_cis(self, ids: Iterable[str]) -> dict[str, ConfigurationItem]:
        wanted = unique(ids)
        return self._read("reading CIs", lambda tx: load_cis(tx, wanted, self.batch_size))

    def summaries(self, ids: Iterable[str]) -> dict[str, CISummary]:
        wanted = unique(ids)
        return self._read(
            "reading CI summaries", lambda tx: reads.ci_summaries(tx, wanted, self.batch_size)
        )

    def resolve_identifiers(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        wanted = unique(identifiers)
        return self._read(
            "resolving identifiers", lambda tx: lookup_identifiers(tx, wanted, self.batch_size)
        )

    def resolve_keys(self, keys: Iterable[str], source: str | None = None) -> dict[str, set[str]]:
        wanted = unique(keys)
        return self._read(
            "resolving source keys",
            lambda tx: reads.source_keys(tx, wanted, source, self.batch_size),
        )

    def find_cis(self, query: CIQuery) -> list[ConfigurationItem]:
        params = {
            "after": query.after or "",
            "ci_class": query.ci_class,
            "name_contains": query.name_contains or None,
            "stale": query.stale,
            "include_merged": query.include_merged,
            "attributes": dict(query.attributes),
            "limit": query.limit,
        }
        return self._read(
            "finding CIs", lambda tx: [to_ci(r) for r in run(tx, cypher.FIND_CIS, **params)]
        )

    def relationships(
        self,
        ci_ids: Iterable[str],
        *,
        direction: Direction = "both",
        types: Iterable[str] | None = None,
        include_removed: bool = False,
    ) -> list[Relationship]:
        ids = unique(ci_ids)
        type_list = None if types is None else list(types)
        return self._read(
            "reading relationships",
            lambda tx: relationships_of(
                tx, ids, direction, type_list, include_removed, self.batch_size
            ),
        )

    def history(
        self,
        ci_ids: Iterable[str],
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[HistoryEntry]:
        ids = unique(ci_ids)
        window = {
            "since": None if since is None else to_neo4j_time(since),
            "until": None if until is None else to_neo4j_time(until),
        }
        return self._read(
            "reading history", lambda tx: reads.history_of(tx, ids, window, self.batch_size)
        )

    def merged_into(self, ci_id: str) -> list[str]:
        return self._read("reading merges", lambda tx: reads.merged_into(tx, ci_id))

    def sightings(self, ci_id: str) -> list[SourceSighting]:
        return self._read(
            "reading sightings",
            lambda tx: [to_sighting(r) for r in run(tx, cypher.SIGHTINGS, ci_id=ci_id)],
        )

    def conflicts(self, *, limit: int = 1000) -> list[Conflict]:
        return self._read(
            "reading conflicts",
            lambda tx: [to_conflict(r) for r in run(tx, cypher.CONFLICTS, limit=limit)],
        )

    def change_seq(self) -> int:
        """The change sequence: at most ``change_poll_interval`` seconds old for other
        hosts' commits, never older than this process's own."""
        with self._seq_lock:
            cached, generation = self._seq_cached, self._seq_generation
        now = time.monotonic()
        if cached is not None and now - cached[1] < self.change_poll_interval:
            return cached[0]
        seq = self._read("reading the change sequence", read_change_seq)
        with self._seq_lock:
            if generation == self._seq_generation:
                self._seq_cached = (seq, now)
        return seq

    def _forget_change_seq(self) -> None:
        with self._seq_lock:
            self._seq_generation += 1
            self._seq_cached = None

    def graph_delta(self, since_seq: int) -> GraphDelta:
        return self._read("reading graph changes", lambda tx: reads.graph_delta(tx, since_seq))

    def counts(self) -> dict[str, int]:
        return self._read("counting", reads.counts)

    # -- administration ------------------------------------------------------------------

    def delete_everything(self, *, keep_schema: bool = False) -> int:
        """Delete every node and relationship of the database (not the constraints and
        indexes), in batches.

        For tests and for starting over: the store must be migrated again afterwards. With
        ``keep_schema`` the schema version stays and the migrations' data (counters, locks)
        is created again at once, so no migration needs to run: what a test suite does
        before each test, without a hundred schema transactions each time."""
        self._verify()
        statement = cypher.DELETE_DATA_BATCH if keep_schema else cypher.DELETE_BATCH

        def work(tx: ManagedTransaction) -> int:
            record = run(tx, statement, limit=self.batch_size).single()
            return int(record["deleted"]) if record else 0

        total = 0
        while True:
            deleted = self._write_auto("emptying the database", work)
            total += deleted
            if deleted == 0:
                break
        if keep_schema:
            current = self._schema_version()
            for migration in schema.MIGRATIONS[:current]:
                for data, params in migration.data:
                    self._write_auto("emptying the database", consume(data, params))
        return total
