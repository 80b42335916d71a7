"""Neo4j adapter of the store port, on the official driver.

Every statement comes from ``cypher.py`` (named, linted); this module only binds
parameters, batches rows and maps records to the domain model.

Units of work and the write lock
--------------------------------
Neo4j runs transactions at *read committed*: two units that both look up serial number
``FOC1`` before either commits would both find nothing and both create a CI, and no
constraint can stop the second one when the two CIs get different ids. SQLite avoids this
with ``BEGIN IMMEDIATE``; here every unit of work (``write``) starts by setting a property
on the one ``(:WriteLock {name: 'graph'})`` node. That takes Neo4j's exclusive lock on the
node, held until commit or rollback, so units run one at a time across every process and
host, and whatever a unit reads stays true until it commits. Readers take no locks and
are never blocked. Waiting writers queue inside Neo4j; set the server's
``db.lock.acquisition.timeout`` to bound the wait (docker-compose.yml sets 120 s).

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
sequence before the rows: rows committed after the read may be returned early (and again
next time), never missed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import neo4j
from neo4j import GraphDatabase, ManagedTransaction, Transaction
from neo4j.exceptions import (
    AuthError,
    ClientError,
    ConstraintError,
    DatabaseUnavailable,
    DriverError,
    Forbidden,
    IncompleteCommit,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from servicegraph import __version__
from servicegraph.cmdb.errors import CmdbError, SchemaTooNew, StoreError, StoreUnavailable
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
    EdgeChange,
    GraphDelta,
    StoreCapabilities,
)
from servicegraph.redaction import redact_in, redact_uri
from servicegraph.storage.neo4j import cypher
from servicegraph.storage.neo4j.cypher import Statement
from servicegraph.storage.neo4j.dump import Neo4jSnapshot
from servicegraph.storage.neo4j.records import (
    LOCK_RETRY_DELAYS,
    T,
    Tx,
    batches,
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
    to_history_entry,
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
        batch_size: int = 1000,
        connect_timeout: float = 10.0,
        max_retry_time: float = 15.0,
        index_wait: int = 300,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
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

    def __repr__(self) -> str:
        return f"Neo4jGraphStore({self.shown_uri!r}, database={self.database!r})"

    @property
    def shown_uri(self) -> str:
        """The URI for messages: without the password it may hold."""
        return redact_uri(self.uri)

    # -- errors and sessions -------------------------------------------------------------

    def _error(self, exc: Exception, action: str) -> CmdbError:
        """The domain error for a driver error (callers chain it: ``from exc``)."""
        where = f"Neo4j at {self.shown_uri} (database '{self.database}')"
        detail = redact_in(one_line(exc), self.uri)
        if isinstance(exc, AuthError):
            return StoreUnavailable(
                f"{where} rejected the credentials of user '{self.user}' ({detail}); "
                "check SERVICEGRAPH_NEO4J_USER and SERVICEGRAPH_NEO4J_PASSWORD"
            )
        if isinstance(exc, IncompleteCommit):
            return StoreError(
                f"{action}: the connection to {where} broke while committing, so the change "
                "may or may not have been saved; check before repeating it"
            )
        if isinstance(exc, ServiceUnavailable | SessionExpired | DatabaseUnavailable):
            return StoreUnavailable(
                f"{where} is unreachable ({detail}); check SERVICEGRAPH_NEO4J_URI and that "
                "the server is running"
            )
        if isinstance(exc, ClientError) and exc.code == "Neo.ClientError.Database.DatabaseNotFound":
            return StoreUnavailable(
                f"{where}: the database does not exist; create it or set "
                "SERVICEGRAPH_NEO4J_DATABASE"
            )
        if isinstance(exc, Forbidden):
            return StoreError(f"{action}: user '{self.user}' is not allowed to: {detail}")
        if isinstance(exc, ConstraintError):
            return StoreError(f"{action}: {detail}")
        if isinstance(exc, TransientError):
            return StoreError(f"{action}: a transient Neo4j error, safe to retry: {detail}")
        return StoreError(f"{action} failed on {where}: {detail}")

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

    def _verify(self) -> None:
        """Fail fast (no retries) when the server cannot be reached or refuses us."""
        try:
            self._driver.verify_connectivity()
        except (Neo4jError, DriverError) as exc:
            raise self._error(exc, "connecting") from exc

    # -- lifecycle -----------------------------------------------------------------------

    def _schema_version(self) -> int:
        def work(tx: ManagedTransaction) -> int:
            record = run(tx, cypher.READ_SCHEMA_VERSION, name=cypher.SCHEMA_VERSION_NAME).single()
            return int(record["version"] or 0) if record else 0

        return self._read("reading the schema version", work)

    def migrate(self) -> None:
        self._verify()
        current = self._schema_version()
        known = len(cypher.MIGRATIONS)
        if current > known:
            raise SchemaTooNew(
                f"Neo4j database '{self.database}' has schema version {current} but this "
                f"servicegraph knows only up to {known}; upgrade servicegraph"
            )
        for migration in cypher.MIGRATIONS[current:]:
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
        if version < len(cypher.MIGRATIONS):
            raise StoreUnavailable(
                f"Neo4j database '{self.database}' at {self.shown_uri} is at schema {version}, "
                f"expected {len(cypher.MIGRATIONS)}; run migrations (servicegraph migrate)"
            )

    # -- units of work -------------------------------------------------------------------

    def _begin_locked(self, session: neo4j.Session, purpose: str) -> Transaction:
        """Begin a transaction holding the write lock, retrying what fails before any work."""
        holder = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        deadline = time.monotonic() + self.max_retry_time
        for attempt in range(len(LOCK_RETRY_DELAYS) + 1):
            tx: Transaction | None = None
            try:
                tx = session.begin_transaction(metadata={"app": "servicegraph", "unit": purpose})
                record = run(
                    tx, cypher.TAKE_WRITE_LOCK, name=cypher.WRITE_LOCK_NAME, holder=holder
                ).single()
            except (TransientError, SessionExpired, ServiceUnavailable):
                if tx is not None:
                    rollback_quietly(tx)
                if attempt == len(LOCK_RETRY_DELAYS) or time.monotonic() >= deadline:
                    raise
                time.sleep(LOCK_RETRY_DELAYS[attempt])
                continue
            except BaseException:
                if tx is not None:
                    rollback_quietly(tx)
                raise
            if record is None:
                rollback_quietly(tx)
                raise StoreUnavailable(
                    f"Neo4j database '{self.database}' at {self.shown_uri} has no servicegraph "
                    "schema; run migrations (servicegraph migrate)"
                )
            return tx
        raise AssertionError("unreachable")

    @contextmanager
    def _locked_transaction(self, purpose: str) -> Iterator[Transaction]:
        try:
            session = self._session(neo4j.WRITE_ACCESS)
        except (Neo4jError, DriverError) as exc:
            raise self._error(exc, purpose) from exc
        try:
            try:
                tx = self._begin_locked(session, purpose)
            except (Neo4jError, DriverError) as exc:
                raise self._error(exc, f"starting {purpose}") from exc
            try:
                yield tx
            except BaseException:
                rollback_quietly(tx)
                raise
            try:
                tx.commit()
            except (Neo4jError, DriverError) as exc:
                raise self._error(exc, f"committing {purpose}") from exc
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

        def read(tx: Tx) -> dict[str, CISummary]:
            result: dict[str, CISummary] = {}
            for batch in batches(wanted, self.batch_size):
                for r in run(tx, cypher.CI_SUMMARIES, ids=list(batch)):
                    attributes = json.loads(r["attributes"])
                    result[r["id"]] = CISummary(r["name"], attributes.get("criticality"))
            return result

        return self._read("reading CI summaries", read)

    def resolve_identifiers(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        wanted = unique(identifiers)
        return self._read(
            "resolving identifiers", lambda tx: lookup_identifiers(tx, wanted, self.batch_size)
        )

    def resolve_keys(self, keys: Iterable[str], source: str | None = None) -> dict[str, set[str]]:
        wanted = unique(keys)

        def work(tx: ManagedTransaction) -> dict[str, set[str]]:
            result: dict[str, set[str]] = {}
            for batch in batches(wanted, self.batch_size):
                if source is None:
                    records = run(tx, cypher.LOOKUP_KEYS_ANY_SOURCE, keys=list(batch))
                else:
                    records = run(tx, cypher.LOOKUP_KEYS, source=source, keys=list(batch))
                for r in records:
                    result.setdefault(r["key"], set()).add(r["ci_id"])
            return result

        return self._read("resolving source keys", work)

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

        def work(tx: ManagedTransaction) -> list[HistoryEntry]:
            entries: dict[int, HistoryEntry] = {}
            for batch in batches(ids, self.batch_size):
                for r in run(tx, cypher.HISTORY, ids=list(batch), **window):
                    entries[r["seq"]] = to_history_entry(r)
            return [entries[seq] for seq in sorted(entries)]

        return self._read("reading history", work)

    def merged_into(self, ci_id: str) -> list[str]:
        def work(tx: ManagedTransaction) -> list[str]:
            found: set[str] = set()
            frontier = [ci_id]
            while frontier:
                level = [r["id"] for r in run(tx, cypher.MERGED_INTO, ids=frontier)]
                frontier = [i for i in level if i not in found and i != ci_id]
                found.update(frontier)
            return sorted(found)

        return self._read("reading merges", work)

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
        return self._read("reading the change sequence", read_change_seq)

    def graph_delta(self, since_seq: int) -> GraphDelta:
        def work(tx: ManagedTransaction) -> GraphDelta:
            seq = read_change_seq(tx)  # before the rows: see the module docstring
            edges = []
            for r in run(tx, cypher.DELTA_RELATIONSHIPS, since_seq=since_seq):
                attributes = json.loads(r["attributes"])
                edges.append(
                    EdgeChange(
                        r["from_id"],
                        r["type"],
                        r["to_id"],
                        attributes.get("redundancy_group"),
                        attributes.get("min_healthy"),
                        bool(r["removed"]),
                    )
                )
            cis: dict[str, tuple[str, str | None]] = {}
            cluster_min_healthy: dict[str, int | None] = {}
            for r in run(tx, cypher.DELTA_CIS, since_seq=since_seq):
                cis[r["id"]] = (r["class"], r["merged_into"])
                min_healthy = json.loads(r["attributes"]).get("min_healthy")
                if since_seq or min_healthy is not None:
                    cluster_min_healthy[r["id"]] = min_healthy
            return GraphDelta(
                seq=seq, cis=cis, edges=edges, cluster_min_healthy=cluster_min_healthy
            )

        return self._read("reading graph changes", work)

    def counts(self) -> dict[str, int]:
        def work(tx: ManagedTransaction) -> dict[str, int]:
            def count(statement: Statement) -> int:
                record = run(tx, statement).single()
                return int(record["n"]) if record else 0

            return {
                "cis": count(cypher.COUNT_CIS),
                "relationships": count(cypher.COUNT_RELATIONSHIPS),
                "history_entries": count(cypher.COUNT_HISTORY),
                "conflicts": count(cypher.COUNT_CONFLICTS),
            }

        return self._read("counting", work)

    # -- administration ------------------------------------------------------------------

    def delete_everything(self) -> int:
        """Delete every node and relationship of the database (not the schema), in batches.

        For tests and for starting over; the store must be migrated again afterwards."""
        self._verify()

        def work(tx: ManagedTransaction) -> int:
            record = run(tx, cypher.DELETE_BATCH, limit=self.batch_size).single()
            return int(record["deleted"]) if record else 0

        total = 0
        while True:
            deleted = self._write_auto("emptying the database", work)
            total += deleted
            if deleted == 0:
                return total
