"""SQLite adapter of the GraphStore port: reads here, the unit of work in ``writer``,
export and restore in ``dump``, the file's mechanics in ``file``."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from servicegraph.cmdb.errors import SchemaTooNew, StoreUnavailable
from servicegraph.cmdb.identifiers import Identifier
from servicegraph.cmdb.model import (
    ConfigurationItem,
    Conflict,
    ConflictKind,
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
from servicegraph.storage.sqlite import dump
from servicegraph.storage.sqlite.dump import SqliteSnapshot
from servicegraph.storage.sqlite.file import (
    SqliteFile,
    _reading,
    _rollback,
    corrupt_message,
    from_us,
    is_corrupt,
    to_us,
)
from servicegraph.storage.sqlite.migrations import MIGRATIONS
from servicegraph.storage.sqlite.rows import (
    CI_COLUMNS,
    HISTORY_COLUMNS,
    REL_COLUMNS,
    dumps,
    ids_param,
    load_cis,
    rows_to_cis,
    to_history_entry,
    to_relationship,
)
from servicegraph.storage.sqlite.writer import SqliteWriter


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
    def write(self) -> Iterator[SqliteWriter]:
        with self._transaction() as conn:
            yield SqliteWriter(conn)

    # -- reads ---------------------------------------------------------------------------

    @_reading("reading CIs")
    def get_cis(self, ids: Iterable[str]) -> dict[str, ConfigurationItem]:
        return load_cis(self._read(), ids)

    @_reading("reading CIs")
    def summaries(self, ids: Iterable[str]) -> dict[str, CISummary]:
        rows = self._read().execute(
            "SELECT id, name, json_extract(attributes, '$.criticality'), "
            "json_extract(attributes, '$.sla_tier'), json_extract(attributes, '$.service_hours') "
            "FROM ci WHERE id IN (SELECT value FROM json_each(?))",
            (ids_param(ids),),
        )
        return {r[0]: CISummary(*r[1:]) for r in rows}

    @_reading("looking up identifiers")
    def resolve_identifiers(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        # The writer's lookups only read; outside a transaction they see the last commit.
        return SqliteWriter(self._read()).lookup_identifiers(identifiers)

    @_reading("looking up source keys")
    def resolve_keys(self, keys: Iterable[str], source: str | None = None) -> dict[str, set[str]]:
        sql = "SELECT key, ci_id FROM source_key WHERE key IN (SELECT value FROM json_each(?))"
        params: tuple[Any, ...] = (ids_param(keys),)
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
                value = dumps(value)
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
                f"SELECT {CI_COLUMNS} FROM ci {where} ORDER BY id LIMIT ?", (*params, query.limit)
            )
            .fetchall()
        )
        return rows_to_cis(self._read(), rows)

    @_reading("reading relationships")
    def relationships(
        self,
        ci_ids: Iterable[str],
        *,
        direction: Direction = "both",
        types: Iterable[str] | None = None,
        include_removed: bool = False,
    ) -> list[Relationship]:
        ids = ids_param(ci_ids)
        extra = "" if include_removed else " AND removed = 0"
        params: list[Any] = []
        if types is not None:
            extra += " AND type IN (SELECT value FROM json_each(?))"
            params.append(dumps(list(types)))
        parts = []
        if direction in ("out", "both"):
            parts.append(
                f"SELECT {REL_COLUMNS} FROM relationship "
                f"WHERE from_id IN (SELECT value FROM json_each(?)){extra}"
            )
        if direction in ("in", "both"):
            parts.append(
                f"SELECT {REL_COLUMNS} FROM relationship "
                f"WHERE to_id IN (SELECT value FROM json_each(?)){extra}"
            )
        sql = " UNION ".join(parts) + " ORDER BY from_id, type, to_id"
        all_params: list[Any] = []
        for _ in parts:
            all_params.extend((ids, *params))
        return [to_relationship(r) for r in self._read().execute(sql, all_params)]

    @_reading("reading history")
    def history(
        self,
        ci_ids: Iterable[str],
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[HistoryEntry]:
        ids = ids_param(ci_ids)
        window = ""
        params: list[Any] = []
        if since is not None:
            window += " AND at >= ?"
            params.append(to_us(since))
        if until is not None:
            window += " AND at <= ?"
            params.append(to_us(until))
        sql = (
            f"SELECT {HISTORY_COLUMNS} FROM history "
            f"WHERE ci_id IN (SELECT value FROM json_each(?)){window} "
            f"UNION SELECT {HISTORY_COLUMNS} FROM history "
            f"WHERE other_ci_id IN (SELECT value FROM json_each(?)){window} ORDER BY seq"
        )
        rows = self._read().execute(sql, (ids, *params, ids, *params))
        return [to_history_entry(r) for r in rows]

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
        with self.errors("opening a snapshot for an export"):
            conn = dump.open_snapshot_connection(self)
        try:
            with self.errors("reading for an export"):
                yield dump.SqliteSnapshot(conn)
        finally:
            conn.close()


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
