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
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

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
    SourceKey,
    SourceSweep,
    StoreCapabilities,
)
from servicegraph.redaction import redact_in, redact_uri
from servicegraph.storage.neo4j import cypher
from servicegraph.storage.neo4j.cypher import Statement

T = TypeVar("T")
Tx = ManagedTransaction | Transaction

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode
_INT64 = (-(2**63), 2**63 - 1)
_LOCK_RETRY_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

# The driver logs connection failures at WARNING; with no logging configured Python would
# print them to stderr next to the one line the CLI promises. Configured handlers still
# receive them.
logging.getLogger("neo4j").addHandler(logging.NullHandler())


# -- conversions -----------------------------------------------------------------------


def to_neo4j_time(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; use timezone-aware UTC times")
    return value.astimezone(dt.UTC)


def from_neo4j_time(value: Any) -> dt.datetime:
    native = value.to_native() if isinstance(value, neo4j.time.DateTime) else value
    if not isinstance(native, dt.datetime) or native.tzinfo is None:
        raise StoreError(f"expected a zoned DATETIME from Neo4j, got {value!r}")
    return native.astimezone(dt.UTC)


def _json_or_none(value: Any) -> str | None:
    return None if value is None else _dumps(value)


def _loads_or_none(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _storable(value: Any) -> bool:
    """Whether Neo4j can hold ``value`` as a property (for the attr_* projection)."""
    if isinstance(value, bool | str | float):
        return True
    if isinstance(value, int):
        return _INT64[0] <= value <= _INT64[1]
    if isinstance(value, list):
        if not value:
            return True  # Neo4j stores empty lists too
        kind = type(value[0])
        return kind in (bool, str, float, int) and all(
            type(v) is kind and _storable(v) for v in value
        )
    return False


def ci_properties(ci: ConfigurationItem, change_seq: int) -> dict[str, Any]:
    """The complete property map of a (:CI) node (see ``cypher.CI_PROPERTIES``)."""
    props: dict[str, Any] = {
        "id": ci.id,
        "class": ci.ci_class,
        "name": ci.name,
        "attributes": _dumps(dict(ci.attributes)),
        "attribute_sources": _dumps(dict(ci.attribute_sources)),
        "lifecycle": ci.lifecycle.value,
        "operational_state": ci.operational_state.value,
        "stale": ci.stale,
        "merged_into": ci.merged_into,
        "created_at": to_neo4j_time(ci.created_at),
        "updated_at": to_neo4j_time(ci.updated_at),
        "version": ci.version,
        "change_seq": change_seq,
    }
    for name, value in ci.attributes.items():
        if _storable(value):
            props[cypher.ATTRIBUTE_PREFIX + name] = value
    return props


def _ci(r: Mapping[str, Any]) -> ConfigurationItem:
    return ConfigurationItem(
        id=r["id"],
        ci_class=r["class"],
        name=r["name"],
        attributes=json.loads(r["attributes"]),
        identifiers=tuple(sorted((kind, value) for kind, value in r["identifiers"])),
        lifecycle=Lifecycle(r["lifecycle"]),
        operational_state=OperationalState(r["operational_state"]),
        stale=bool(r["stale"]),
        merged_into=r["merged_into"],
        created_at=from_neo4j_time(r["created_at"]),
        updated_at=from_neo4j_time(r["updated_at"]),
        version=r["version"],
        attribute_sources=json.loads(r["attribute_sources"]),
    )


def _relationship(r: Mapping[str, Any]) -> Relationship:
    return Relationship(
        from_id=r["from_id"],
        type=r["type"],
        to_id=r["to_id"],
        attributes=json.loads(r["attributes"]),
        created_at=from_neo4j_time(r["created_at"]),
        updated_at=from_neo4j_time(r["updated_at"]),
        removed=bool(r["removed"]),
        stale=bool(r["stale"]),
    )


def _relationship_row(rel: Relationship) -> dict[str, Any]:
    return {
        "from_id": rel.from_id,
        "to_id": rel.to_id,
        # unique per type: the (from, to) pair, unambiguous whatever the ids contain
        "key": _dumps([rel.from_id, rel.to_id]),
        "attributes": _dumps(dict(rel.attributes)),
        "created_at": to_neo4j_time(rel.created_at),
        "updated_at": to_neo4j_time(rel.updated_at),
        "removed": rel.removed,
        "stale": rel.stale,
    }


def _history(r: Mapping[str, Any]) -> HistoryEntry:
    return HistoryEntry(
        seq=r["seq"],
        at=from_neo4j_time(r["at"]),
        ci_id=r["ci_id"],
        kind=HistoryKind(r["kind"]),
        field=r["field"],
        old=_loads_or_none(r["old"]),
        new=_loads_or_none(r["new"]),
        source=r["source"],
        actor=r["actor"],
        run_id=r["run_id"],
        other_ci_id=r["other_ci_id"],
    )


def _history_row(e: HistoryEntry, seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "at": to_neo4j_time(e.at),
        "ci_id": e.ci_id,
        "kind": e.kind.value,
        "field": e.field,
        "old": _json_or_none(e.old),
        "new": _json_or_none(e.new),
        "source": e.source,
        "actor": e.actor,
        "run_id": e.run_id,
        "other_ci_id": e.other_ci_id,
    }


def _conflict(r: Mapping[str, Any]) -> Conflict:
    kind, value = r["identifier_kind"], r["identifier_value"]
    return Conflict(
        id=r["id"],
        detected_at=from_neo4j_time(r["detected_at"]),
        kind=ConflictKind(r["kind"]),
        source=r["source"],
        item=r["item"],
        identifier=(kind, value) if kind is not None else None,
        ci_id=r["ci_id"],
        other_ci_id=r["other_ci_id"],
        detail=r["detail"],
        run_id=r["run_id"],
    )


def _conflict_row(c: Conflict, conflict_id: int) -> dict[str, Any]:
    return {
        "id": conflict_id,
        "detected_at": to_neo4j_time(c.detected_at),
        "kind": c.kind.value,
        "source": c.source,
        "item": c.item,
        "identifier_kind": c.identifier[0] if c.identifier else None,
        "identifier_value": c.identifier[1] if c.identifier else None,
        "ci_id": c.ci_id,
        "other_ci_id": c.other_ci_id,
        "detail": c.detail,
        "run_id": c.run_id,
    }


def _sighting(r: Mapping[str, Any]) -> SourceSighting:
    return SourceSighting(
        source=r["source"],
        first_seen=from_neo4j_time(r["first_seen"]),
        last_seen=from_neo4j_time(r["last_seen"]),
        last_run=r["last_run"],
        missed_runs=r["missed_runs"],
        stale=bool(r["stale"]),
    )


def _sighting_row(s: SourceSighting) -> dict[str, Any]:
    return {
        "source": s.source,
        "first_seen": to_neo4j_time(s.first_seen),
        "last_seen": to_neo4j_time(s.last_seen),
        "last_run": s.last_run,
        "missed_runs": s.missed_runs,
        "stale": s.stale,
    }


def _rel_key_row(key: RelationshipKey) -> dict[str, str]:
    return {"from_id": key[0], "type": key[1], "to_id": key[2]}


def _unique(items: Iterable[T]) -> list[T]:
    return list(dict.fromkeys(items))


def _batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _one_line(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, Neo4jError) and exc.message else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def _run(tx: Tx, statement: Statement, **params: Any) -> neo4j.Result:
    """Run one declared statement with exactly its declared parameters."""
    if set(params) != statement.parameters:
        raise ValueError(
            f"{statement.name} takes {sorted(statement.parameters)}, got {sorted(params)}"
        )
    return tx.run(statement.text, params)


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
                f"cannot use Neo4j URI '{redact_uri(uri)}': {redact_in(_one_line(exc), uri)}; "
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
        detail = redact_in(_one_line(exc), self.uri)
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
            record = _run(tx, cypher.READ_SCHEMA_VERSION, name=cypher.SCHEMA_VERSION_NAME).single()
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
                self._write_auto(action, _consume(statement, {}))
            for statement, params in migration.data:
                self._write_auto(action, _consume(statement, params))
            # on the leader, where the indexes were created
            self._write_auto(action, _consume(cypher.AWAIT_INDEXES, {"timeout": self.index_wait}))
            version = {"name": cypher.SCHEMA_VERSION_NAME, "version": migration.version}
            self._write_auto(action, _consume(cypher.SET_SCHEMA_VERSION, version))

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
        for attempt in range(len(_LOCK_RETRY_DELAYS) + 1):
            tx: Transaction | None = None
            try:
                tx = session.begin_transaction(metadata={"app": "servicegraph", "unit": purpose})
                record = _run(
                    tx, cypher.TAKE_WRITE_LOCK, name=cypher.WRITE_LOCK_NAME, holder=holder
                ).single()
            except (TransientError, SessionExpired, ServiceUnavailable):
                if tx is not None:
                    _rollback_quietly(tx)
                if attempt == len(_LOCK_RETRY_DELAYS) or time.monotonic() >= deadline:
                    raise
                time.sleep(_LOCK_RETRY_DELAYS[attempt])
                continue
            except BaseException:
                if tx is not None:
                    _rollback_quietly(tx)
                raise
            if record is None:
                _rollback_quietly(tx)
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
                _rollback_quietly(tx)
                raise
            try:
                tx.commit()
            except (Neo4jError, DriverError) as exc:
                raise self._error(exc, f"committing {purpose}") from exc
        finally:
            session.close()

    @contextmanager
    def write(self) -> Iterator[_Neo4jWriter]:
        with self._locked_transaction("a unit of work") as tx:
            yield _Neo4jWriter(self, tx)

    @contextmanager
    def snapshot(self) -> Iterator[_Neo4jSnapshot]:
        # Read committed gives no snapshot; holding the write lock does: no unit can
        # commit while the export reads. Nothing is written, so it ends in a rollback.
        session = self._session(neo4j.WRITE_ACCESS)
        try:
            try:
                tx = self._begin_locked(session, "an export")
            except (Neo4jError, DriverError) as exc:
                raise self._error(exc, "starting an export") from exc
            try:
                yield _Neo4jSnapshot(self, tx)
            finally:
                _rollback_quietly(tx)
        finally:
            session.close()

    # -- reads ---------------------------------------------------------------------------

    def get_cis(self, ids: Iterable[str]) -> dict[str, ConfigurationItem]:
        wanted = _unique(ids)
        return self._read("reading CIs", lambda tx: _load_cis(tx, wanted, self.batch_size))

    def summaries(self, ids: Iterable[str]) -> dict[str, CISummary]:
        wanted = _unique(ids)

        def read(tx: Tx) -> dict[str, CISummary]:
            result: dict[str, CISummary] = {}
            for batch in _batches(wanted, self.batch_size):
                for r in _run(tx, cypher.CI_SUMMARIES, ids=list(batch)):
                    attributes = json.loads(r["attributes"])
                    result[r["id"]] = CISummary(r["name"], attributes.get("criticality"))
            return result

        return self._read("reading CI summaries", read)

    def resolve_identifiers(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        wanted = _unique(identifiers)
        return self._read(
            "resolving identifiers", lambda tx: _lookup_identifiers(tx, wanted, self.batch_size)
        )

    def resolve_keys(self, keys: Iterable[str], source: str | None = None) -> dict[str, set[str]]:
        wanted = _unique(keys)

        def work(tx: ManagedTransaction) -> dict[str, set[str]]:
            result: dict[str, set[str]] = {}
            for batch in _batches(wanted, self.batch_size):
                if source is None:
                    records = _run(tx, cypher.LOOKUP_KEYS_ANY_SOURCE, keys=list(batch))
                else:
                    records = _run(tx, cypher.LOOKUP_KEYS, source=source, keys=list(batch))
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
            "finding CIs", lambda tx: [_ci(r) for r in _run(tx, cypher.FIND_CIS, **params)]
        )

    def relationships(
        self,
        ci_ids: Iterable[str],
        *,
        direction: Direction = "both",
        types: Iterable[str] | None = None,
        include_removed: bool = False,
    ) -> list[Relationship]:
        ids = _unique(ci_ids)
        type_list = None if types is None else list(types)
        return self._read(
            "reading relationships",
            lambda tx: _relationships(
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
        ids = _unique(ci_ids)
        window = {
            "since": None if since is None else to_neo4j_time(since),
            "until": None if until is None else to_neo4j_time(until),
        }

        def work(tx: ManagedTransaction) -> list[HistoryEntry]:
            entries: dict[int, HistoryEntry] = {}
            for batch in _batches(ids, self.batch_size):
                for r in _run(tx, cypher.HISTORY, ids=list(batch), **window):
                    entries[r["seq"]] = _history(r)
            return [entries[seq] for seq in sorted(entries)]

        return self._read("reading history", work)

    def merged_into(self, ci_id: str) -> list[str]:
        def work(tx: ManagedTransaction) -> list[str]:
            found: set[str] = set()
            frontier = [ci_id]
            while frontier:
                level = [r["id"] for r in _run(tx, cypher.MERGED_INTO, ids=frontier)]
                frontier = [i for i in level if i not in found and i != ci_id]
                found.update(frontier)
            return sorted(found)

        return self._read("reading merges", work)

    def sightings(self, ci_id: str) -> list[SourceSighting]:
        return self._read(
            "reading sightings",
            lambda tx: [_sighting(r) for r in _run(tx, cypher.SIGHTINGS, ci_id=ci_id)],
        )

    def conflicts(self, *, limit: int = 1000) -> list[Conflict]:
        return self._read(
            "reading conflicts",
            lambda tx: [_conflict(r) for r in _run(tx, cypher.CONFLICTS, limit=limit)],
        )

    def change_seq(self) -> int:
        return self._read("reading the change sequence", _read_change_seq)

    def graph_delta(self, since_seq: int) -> GraphDelta:
        def work(tx: ManagedTransaction) -> GraphDelta:
            seq = _read_change_seq(tx)  # before the rows: see the module docstring
            edges = []
            for r in _run(tx, cypher.DELTA_RELATIONSHIPS, since_seq=since_seq):
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
            for r in _run(tx, cypher.DELTA_CIS, since_seq=since_seq):
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
                record = _run(tx, statement).single()
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
            record = _run(tx, cypher.DELETE_BATCH, limit=self.batch_size).single()
            return int(record["deleted"]) if record else 0

        total = 0
        while True:
            deleted = self._write_auto("emptying the database", work)
            total += deleted
            if deleted == 0:
                return total


def _consume(
    statement: Statement, params: Mapping[str, Any]
) -> Callable[[ManagedTransaction], None]:
    def work(tx: ManagedTransaction) -> None:
        _run(tx, statement, **params).consume()

    return work


def _rollback_quietly(tx: Transaction) -> None:
    try:
        if not tx.closed():
            tx.rollback()
    except (Neo4jError, DriverError):
        pass  # the transaction is gone with the connection: nothing was committed


def _read_change_seq(tx: Tx) -> int:
    record = _run(tx, cypher.READ_SEQUENCE, name=cypher.SEQUENCE_CHANGE).single()
    if record is None:
        raise StoreUnavailable("the Neo4j database has no servicegraph schema; run migrations")
    return int(record["value"])


def _load_cis(tx: Tx, ids: Sequence[str], batch_size: int) -> dict[str, ConfigurationItem]:
    result: dict[str, ConfigurationItem] = {}
    for batch in _batches(ids, batch_size):
        for r in _run(tx, cypher.LOAD_CIS, ids=list(batch)):
            ci = _ci(r)
            result[ci.id] = ci
    return result


def _lookup_identifiers(
    tx: Tx, identifiers: Sequence[Identifier], batch_size: int
) -> dict[Identifier, str]:
    result: dict[Identifier, str] = {}
    for batch in _batches(identifiers, batch_size):
        rows = [{"kind": kind, "value": value} for kind, value in batch]
        for r in _run(tx, cypher.LOOKUP_IDENTIFIERS, rows=rows):
            result[(r["kind"], r["value"])] = r["ci_id"]
    return result


def _relationships(
    tx: Tx,
    ids: Sequence[str],
    direction: Direction,
    types: list[str] | None,
    include_removed: bool,
    batch_size: int,
) -> list[Relationship]:
    found: dict[RelationshipKey, Relationship] = {}
    for batch in _batches(ids, batch_size):
        for r in _run(
            tx,
            cypher.RELATIONSHIPS,
            ids=list(batch),
            outgoing=direction in ("out", "both"),
            incoming=direction in ("in", "both"),
            types=types,
            include_removed=include_removed,
        ):
            rel = _relationship(r)
            found[rel.key] = rel
    return [found[key] for key in sorted(found)]


# -- the unit of work ------------------------------------------------------------------


class _Neo4jWriter:
    """The unit of work handed out by ``Neo4jGraphStore.write``: one explicit transaction
    that holds the write lock. Reads see this unit's own writes."""

    def __init__(self, store: Neo4jGraphStore, tx: Transaction) -> None:
        self._store = store
        self._tx = tx
        self._size = store.batch_size
        self._seq: int | None = None

    def _do(self, action: str, work: Callable[[], T]) -> T:
        try:
            return work()
        except (Neo4jError, DriverError) as exc:
            raise self._store._error(exc, action) from exc

    def _advance(self, sequence: str, count: int) -> int:
        record = _run(self._tx, cypher.ADVANCE_SEQUENCE, name=sequence, count=count).single()
        if record is None:
            raise StoreUnavailable("the Neo4j database has no servicegraph schema; run migrations")
        return int(record["value"])

    def _raise_sequence(self, sequence: str, value: int) -> None:
        _run(self._tx, cypher.RAISE_SEQUENCE, name=sequence, value=value).consume()

    @property
    def seq(self) -> int:
        """This unit's change sequence number, taken on first use."""
        if self._seq is None:
            self._seq = self._do(
                "advancing the change sequence", lambda: self._advance(cypher.SEQUENCE_CHANGE, 1)
            )
        return self._seq

    # -- reads ---------------------------------------------------------------------------

    def lookup_identifiers(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        wanted = _unique(identifiers)
        return self._do(
            "looking up identifiers", lambda: _lookup_identifiers(self._tx, wanted, self._size)
        )

    def lookup_keys(self, source: str, keys: Iterable[str]) -> dict[str, str]:
        wanted = _unique(keys)

        def work() -> dict[str, str]:
            result: dict[str, str] = {}
            for batch in _batches(wanted, self._size):
                for r in _run(self._tx, cypher.LOOKUP_KEYS, source=source, keys=list(batch)):
                    result[r["key"]] = r["ci_id"]
            return result

        return self._do("looking up source keys", work)

    def load_cis(self, ids: Iterable[str]) -> dict[str, ConfigurationItem]:
        wanted = _unique(ids)
        return self._do("loading CIs", lambda: _load_cis(self._tx, wanted, self._size))

    def load_relationships(
        self, keys: Iterable[RelationshipKey]
    ) -> dict[RelationshipKey, Relationship]:
        wanted = _unique(keys)

        def work() -> dict[RelationshipKey, Relationship]:
            result: dict[RelationshipKey, Relationship] = {}
            for batch in _batches(wanted, self._size):
                rows = [_rel_key_row(k) for k in batch]
                for r in _run(self._tx, cypher.LOAD_RELATIONSHIPS, rows=rows):
                    rel = _relationship(r)
                    result[rel.key] = rel
            return result

        return self._do("loading relationships", work)

    def relationships_of(self, ci_ids: Iterable[str]) -> list[Relationship]:
        ids = _unique(ci_ids)
        return self._do(
            "loading relationships",
            lambda: _relationships(self._tx, ids, "both", None, False, self._size),
        )

    # -- CIs and identifiers -------------------------------------------------------------

    def insert_cis(self, cis: Sequence[ConfigurationItem]) -> None:
        if not cis:
            return
        seq = self.seq
        rows = [{"props": ci_properties(ci, seq)} for ci in cis]

        def work() -> None:
            for batch in _batches(rows, self._size):
                _run(self._tx, cypher.INSERT_CIS, rows=list(batch)).consume()

        self._do("creating CIs (is the CI id new?)", work)
        self.add_identifiers([(ident, ci.id) for ci in cis for ident in ci.identifiers])

    def update_cis(self, cis: Sequence[ConfigurationItem]) -> None:
        if not cis:
            return
        seq = self.seq
        rows = [{"props": ci_properties(ci, seq)} for ci in cis]

        def work() -> None:
            for batch in _batches(rows, self._size):
                _run(self._tx, cypher.UPDATE_CIS, rows=list(batch)).consume()

        self._do("updating CIs", work)

    def add_identifiers(self, rows: Sequence[tuple[Identifier, str]]) -> None:
        if not rows:
            return
        wanted = [ident for ident, _ in rows]
        twice = (
            sorted({i for i in wanted if wanted.count(i) > 1})
            if len(set(wanted)) < len(wanted)
            else []
        )
        if twice:
            raise StoreError(f"identifiers given twice in one batch: {twice}")
        held = self.lookup_identifiers(wanted)
        if held:
            shown = ", ".join(f"{k}={v} (held by {ci})" for (k, v), ci in sorted(held.items()))
            raise StoreError(f"identifier already held by another CI: {shown}")
        params = [{"kind": k, "value": v, "ci_id": ci_id} for (k, v), ci_id in rows]

        def work() -> None:
            for batch in _batches(params, self._size):
                _run(self._tx, cypher.CREATE_IDENTIFIERS, rows=list(batch)).consume()

        self._do("adding identifiers", work)

    def remove_identifiers(self, identifiers: Sequence[Identifier]) -> None:
        params = [{"kind": k, "value": v} for k, v in identifiers]

        def work() -> None:
            for batch in _batches(params, self._size):
                _run(self._tx, cypher.DELETE_IDENTIFIERS, rows=list(batch)).consume()

        self._do("removing identifiers", work)

    def move_keys_and_sightings(self, from_ci: str, to_ci: str) -> None:
        def work() -> None:
            moves = (cypher.MOVE_KEYS, cypher.DROP_SHADOWED_SIGHTINGS, cypher.MOVE_SIGHTINGS)
            for statement in moves:
                _run(self._tx, statement, from_ci=from_ci, to_ci=to_ci).consume()

        self._do("moving source keys and sightings", work)

    def set_keys(self, source: str, rows: Sequence[tuple[str, str]]) -> None:
        params = [{"key": key, "ci_id": ci_id} for key, ci_id in rows]

        def work() -> None:
            for batch in _batches(params, self._size):
                _run(self._tx, cypher.SET_KEYS, source=source, rows=list(batch)).consume()

        self._do("setting source keys", work)

    # -- relationships -------------------------------------------------------------------

    def save_relationships(
        self, new: Sequence[Relationship], changed: Sequence[Relationship]
    ) -> None:
        if not new and not changed:
            return
        by_type: dict[str, list[Relationship]] = {}
        for rel in (*new, *changed):
            if rel.type not in cypher.SAVE_RELATIONSHIPS:
                raise StoreError(
                    f"relationship type '{rel.type}' is not one of "
                    f"{', '.join(cypher.RELATIONSHIP_TYPES)}"
                )
            by_type.setdefault(rel.type, []).append(rel)
        seq = self.seq

        def work() -> None:
            for rel_type, rels in by_type.items():
                statement = cypher.SAVE_RELATIONSHIPS[rel_type]
                for batch in _batches(rels, self._size):
                    rows = [_relationship_row(r) for r in batch]
                    record = _run(self._tx, statement, rows=rows, change_seq=seq).single()
                    saved = int(record["saved"]) if record else 0
                    if saved != len(rows):
                        ends = _unique(i for r in batch for i in (r.from_id, r.to_id))
                        missing = sorted(set(ends) - set(_load_cis(self._tx, ends, self._size)))
                        raise StoreError(
                            f"relationships name CIs that do not exist: {', '.join(missing)}"
                        )

        self._do("saving relationships", work)

    # -- sightings and staleness ---------------------------------------------------------

    def record_sightings(
        self,
        source: str,
        run_id: str,
        at: dt.datetime,
        ci_ids: Iterable[str],
        relationship_keys: Iterable[RelationshipKey],
    ) -> tuple[list[str], list[RelationshipKey]]:
        ids = _unique(ci_ids)
        keys = _unique(relationship_keys)
        when = to_neo4j_time(at)

        def work() -> tuple[list[str], list[RelationshipKey]]:
            was_stale_cis: list[str] = []
            for batch in _batches(ids, self._size):
                for r in _run(
                    self._tx,
                    cypher.RECORD_CI_SIGHTINGS,
                    ids=list(batch),
                    source=source,
                    at=when,
                    run_id=run_id,
                ):
                    if r["was_stale"]:
                        was_stale_cis.append(r["ci_id"])
            was_stale_rels: list[RelationshipKey] = []
            for key_batch in _batches(keys, self._size):
                for r in _run(
                    self._tx,
                    cypher.RECORD_RELATIONSHIP_SIGHTINGS,
                    rows=[_rel_key_row(k) for k in key_batch],
                    source=source,
                    at=when,
                    run_id=run_id,
                ):
                    if r["was_stale"]:
                        was_stale_rels.append((r["from_id"], r["type"], r["to_id"]))
            return was_stale_cis, was_stale_rels

        return self._do("recording sightings", work)

    def sweep_unseen(
        self, source: str, run_id: str, stale_after: int
    ) -> tuple[list[str], list[RelationshipKey]]:
        def work() -> tuple[list[str], list[RelationshipKey]]:
            record = _run(self._tx, cypher.CLAIM_SWEEP, source=source, run_id=run_id).single()
            if record is not None and record["previous"] == run_id:
                return [], []  # a replayed run counts once
            params = {"source": source, "run_id": run_id, "stale_after": stale_after}
            newly_stale = [r["ci_id"] for r in _run(self._tx, cypher.SWEEP_CI_SIGHTINGS, **params)]
            newly_stale_rels = [
                _rel_key_row((r["from_id"], r["type"], r["to_id"]))
                for r in _run(self._tx, cypher.SWEEP_RELATIONSHIP_SIGHTINGS, **params)
            ]
            return self._stale_everywhere(newly_stale, newly_stale_rels)

        return self._do("sweeping unseen items", work)

    def expire_sightings(self, before: dt.datetime) -> tuple[list[str], list[RelationshipKey]]:
        cutoff = to_neo4j_time(before)

        def work() -> tuple[list[str], list[RelationshipKey]]:
            expired = [
                r["ci_id"] for r in _run(self._tx, cypher.EXPIRE_CI_SIGHTINGS, before=cutoff)
            ]
            expired_rels = [
                _rel_key_row((r["from_id"], r["type"], r["to_id"]))
                for r in _run(self._tx, cypher.EXPIRE_RELATIONSHIP_SIGHTINGS, before=cutoff)
            ]
            return self._stale_everywhere(expired, expired_rels)

        return self._do("expiring old sightings", work)

    def _stale_everywhere(
        self, ci_ids: list[str], relationship_rows: list[dict[str, str]]
    ) -> tuple[list[str], list[RelationshipKey]]:
        """Those of the given CIs and relationships that no source reports any more (inside
        the caller's transaction)."""
        stale_cis: list[str] = []
        for batch in _batches(ci_ids, self._size):
            stale_cis.extend(
                r["ci_id"] for r in _run(self._tx, cypher.STALE_EVERYWHERE_CIS, ids=list(batch))
            )
        stale_rels: list[RelationshipKey] = []
        for rows in _batches(relationship_rows, self._size):
            stale_rels.extend(
                (r["from_id"], r["type"], r["to_id"])
                for r in _run(self._tx, cypher.STALE_EVERYWHERE_RELATIONSHIPS, rows=list(rows))
            )
        return stale_cis, stale_rels

    # -- history and conflicts -----------------------------------------------------------

    def append_history(self, entries: Sequence[HistoryEntry]) -> None:
        if not entries:
            return
        self.seq  # noqa: B018 - history is a change: advance the sequence

        def work() -> None:
            last = self._advance(cypher.SEQUENCE_HISTORY, len(entries))
            first = last - len(entries) + 1
            rows = [_history_row(e, first + i) for i, e in enumerate(entries)]
            for batch in _batches(rows, self._size):
                _run(self._tx, cypher.CREATE_HISTORY, rows=list(batch)).consume()

        self._do("appending history", work)

    def add_conflicts(self, conflicts: Sequence[Conflict]) -> None:
        if not conflicts:
            return

        def work() -> None:
            last = self._advance(cypher.SEQUENCE_CONFLICT, len(conflicts))
            first = last - len(conflicts) + 1
            rows = [_conflict_row(c, first + i) for i, c in enumerate(conflicts)]
            for batch in _batches(rows, self._size):
                _run(self._tx, cypher.CREATE_CONFLICTS, rows=list(batch)).consume()

        self._do("recording conflicts", work)

    # -- restore -------------------------------------------------------------------------

    def restore_source_keys(self, keys: Sequence[SourceKey]) -> None:
        by_source: dict[str, list[tuple[str, str]]] = {}
        for k in keys:
            by_source.setdefault(k.source, []).append((k.key, k.ci_id))
        for source, rows in by_source.items():
            self.set_keys(source, rows)

    def restore_sightings(
        self, cis: Sequence[CISighting], relationships: Sequence[RelationshipSighting]
    ) -> None:
        ci_rows = [{"ci_id": s.ci_id, **_sighting_row(s.sighting)} for s in cis]
        rel_rows = [{**_rel_key_row(s.key), **_sighting_row(s.sighting)} for s in relationships]

        def work() -> None:
            for batch in _batches(ci_rows, self._size):
                _run(self._tx, cypher.RESTORE_CI_SIGHTINGS, rows=list(batch)).consume()
            for batch in _batches(rel_rows, self._size):
                _run(self._tx, cypher.RESTORE_RELATIONSHIP_SIGHTINGS, rows=list(batch)).consume()

        self._do("restoring sightings", work)

    def restore_source_sweeps(self, sweeps: Sequence[SourceSweep]) -> None:
        rows = [{"source": s.source, "run_id": s.run_id} for s in sweeps]
        self._do(
            "restoring source sweeps",
            lambda: _run(self._tx, cypher.RESTORE_SOURCE_SWEEPS, rows=rows).consume(),
        )

    def restore_history(self, entries: Sequence[HistoryEntry]) -> None:
        if not entries:
            return
        self.seq  # noqa: B018 - history is a change: advance the sequence
        rows = [_history_row(e, e.seq) for e in entries]

        def work() -> None:
            for batch in _batches(rows, self._size):
                _run(self._tx, cypher.CREATE_HISTORY, rows=list(batch)).consume()
            self._raise_sequence(cypher.SEQUENCE_HISTORY, max(e.seq for e in entries))

        self._do("restoring history (are the seqs new?)", work)

    def restore_conflicts(self, conflicts: Sequence[Conflict]) -> None:
        if not conflicts:
            return
        rows = [_conflict_row(c, c.id) for c in conflicts]

        def work() -> None:
            for batch in _batches(rows, self._size):
                _run(self._tx, cypher.CREATE_CONFLICTS, rows=list(batch)).consume()
            self._raise_sequence(cypher.SEQUENCE_CONFLICT, max(c.id for c in conflicts))

        self._do("restoring conflicts (are the ids new?)", work)

    def restore_change_seq(self, seq: int) -> None:
        self._do(
            "restoring the change sequence",
            lambda: self._raise_sequence(cypher.SEQUENCE_CHANGE, seq),
        )


# -- export ----------------------------------------------------------------------------


class _Neo4jSnapshot:
    """What ``Neo4jGraphStore.snapshot`` yields: every record, streamed from one
    transaction that holds the write lock."""

    def __init__(self, store: Neo4jGraphStore, tx: Transaction) -> None:
        self._store = store
        self._tx = tx

    def _stream(self, statement: Statement, convert: Callable[[neo4j.Record], T]) -> Iterator[T]:
        try:
            for record in _run(self._tx, statement):
                yield convert(record)
        except (Neo4jError, DriverError) as exc:
            raise self._store._error(exc, f"exporting ({statement.name})") from exc

    def change_seq(self) -> int:
        try:
            return _read_change_seq(self._tx)
        except (Neo4jError, DriverError) as exc:
            raise self._store._error(exc, "exporting the change sequence") from exc

    def cis(self) -> Iterator[ConfigurationItem]:
        return self._stream(cypher.DUMP_CIS, _ci)

    def source_keys(self) -> Iterator[SourceKey]:
        return self._stream(
            cypher.DUMP_SOURCE_KEYS, lambda r: SourceKey(r["source"], r["key"], r["ci_id"])
        )

    def ci_sightings(self) -> Iterator[CISighting]:
        return self._stream(
            cypher.DUMP_CI_SIGHTINGS, lambda r: CISighting(r["ci_id"], _sighting(r))
        )

    def relationships(self) -> Iterator[Relationship]:
        return self._stream(cypher.DUMP_RELATIONSHIPS, _relationship)

    def relationship_sightings(self) -> Iterator[RelationshipSighting]:
        return self._stream(
            cypher.DUMP_RELATIONSHIP_SIGHTINGS,
            lambda r: RelationshipSighting((r["from_id"], r["type"], r["to_id"]), _sighting(r)),
        )

    def source_sweeps(self) -> Iterator[SourceSweep]:
        return self._stream(
            cypher.DUMP_SOURCE_SWEEPS, lambda r: SourceSweep(r["source"], r["run_id"])
        )

    def history(self) -> Iterator[HistoryEntry]:
        return self._stream(cypher.DUMP_HISTORY, _history)

    def conflicts(self) -> Iterator[Conflict]:
        return self._stream(cypher.DUMP_CONFLICTS, _conflict)
