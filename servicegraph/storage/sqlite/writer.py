"""The graph's unit of work on SQLite (``SqliteGraphStore.write``)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Sequence

from servicegraph.cmdb.errors import StoreError
from servicegraph.cmdb.identifiers import Identifier
from servicegraph.cmdb.model import (
    ConfigurationItem,
    Conflict,
    HistoryEntry,
    Relationship,
    RelationshipKey,
)
from servicegraph.cmdb.ports import (
    CISighting,
    RelationshipSighting,
    SourceSweep,
)
from servicegraph.storage.sqlite import dump
from servicegraph.storage.sqlite.file import to_us
from servicegraph.storage.sqlite.rows import (
    CI_COLUMNS,
    REL_COLUMNS,
    ci_row,
    dumps,
    ids_param,
    in_key_order,
    load_cis,
    to_relationship,
)


class SqliteWriter:
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
            (dumps(rows),),
        ):
            result[(kind, value)] = ci_id
        return result

    def lookup_keys(self, source: str, keys: Iterable[str]) -> dict[str, str]:
        return dict(
            self._conn.execute(
                "SELECT key, ci_id FROM source_key "
                "WHERE source = ? AND key IN (SELECT value FROM json_each(?))",
                (source, ids_param(keys)),
            ).fetchall()
        )

    def load_cis(self, ids: Iterable[str]) -> dict[str, ConfigurationItem]:
        return load_cis(self._conn, ids)

    def load_relationships(
        self, keys: Iterable[RelationshipKey]
    ) -> dict[RelationshipKey, Relationship]:
        rows = [list(k) for k in keys]
        if not rows:
            return {}
        result: dict[RelationshipKey, Relationship] = {}
        for row in self._conn.execute(
            f"SELECT {', '.join('r.' + c.strip() for c in REL_COLUMNS.split(','))} "
            "FROM json_each(?) AS j JOIN relationship AS r "
            "ON r.from_id = json_extract(j.value, '$[0]') "
            "AND r.type = json_extract(j.value, '$[1]') "
            "AND r.to_id = json_extract(j.value, '$[2]')",
            (dumps(rows),),
        ):
            rel = to_relationship(row)
            result[rel.key] = rel
        return result

    def relationships_of(self, ci_ids: Iterable[str]) -> list[Relationship]:
        ids = ids_param(ci_ids)
        return [
            to_relationship(r)
            for r in self._conn.execute(
                f"SELECT {REL_COLUMNS} FROM relationship WHERE removed = 0 AND "
                "from_id IN (SELECT value FROM json_each(?)) UNION "
                f"SELECT {REL_COLUMNS} FROM relationship WHERE removed = 0 AND "
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
                f"INSERT INTO ci ({CI_COLUMNS}, change_seq) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                in_key_order([ci_row(ci, seq) for ci in cis], 0),
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
            in_key_order([(*ci_row(ci, seq)[1:], ci.id) for ci in cis], 12),
        )

    def add_identifiers(self, rows: Sequence[tuple[Identifier, str]]) -> None:
        if not rows:
            return
        try:
            self._conn.executemany(
                "INSERT INTO ci_identifier (kind, value, ci_id) VALUES (?, ?, ?)",
                in_key_order([(kind, value, ci_id) for (kind, value), ci_id in rows], 0, 1),
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
            in_key_order([(source, key, ci_id) for key, ci_id in rows], 1),
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
                dumps(r.attributes),
                to_us(r.created_at),
                to_us(r.updated_at),
                int(r.removed),
                int(r.stale),
                seq,
            )
            for r in (*new, *changed)
        ]
        self._conn.executemany(
            f"INSERT INTO relationship ({REL_COLUMNS}, change_seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (from_id, type, to_id) DO UPDATE SET "
            "attributes = excluded.attributes, updated_at = excluded.updated_at, "
            "removed = excluded.removed, stale = excluded.stale, change_seq = excluded.change_seq",
            in_key_order(rows, 0, 1, 2),
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
                (source, ids_param(ids)),
            )
        ]
        self._conn.executemany(
            "INSERT INTO ci_sighting (ci_id, source, first_seen, last_seen, last_run) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (ci_id, source) DO UPDATE SET "
            "last_seen = excluded.last_seen, last_run = excluded.last_run, "
            "missed_runs = 0, stale = 0",
            in_key_order([(ci_id, source, when, when, run_id) for ci_id in ids], 0),
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
                    (dumps([list(k) for k in keys]), source),
                )
            ]
            self._conn.executemany(
                "INSERT INTO relationship_sighting "
                "(from_id, type, to_id, source, first_seen, last_seen, last_run) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (from_id, type, to_id, source) "
                "DO UPDATE SET last_seen = excluded.last_seen, last_run = excluded.last_run, "
                "missed_runs = 0, stale = 0",
                in_key_order(
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

    def record_first_sightings(
        self,
        source: str,
        run_id: str,
        at: dt.datetime,
        ci_ids: Iterable[str],
        relationship_keys: Iterable[RelationshipKey],
    ) -> None:
        # An upsert costs SQLite no more than an insert.
        self.record_sightings(source, run_id, at, ci_ids, relationship_keys)

    def sweep_unseen_part(
        self, source: str, run_id: str, stale_after: int, limit: int | None
    ) -> tuple[list[str], list[RelationshipKey], bool]:
        # SQLite has no transaction memory ceiling: the whole sweep is the first part.
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        stale_cis, stale_rels = self.sweep_unseen(source, run_id, stale_after)
        return stale_cis, stale_rels, True

    def expire_sightings(
        self, before: dt.datetime, limit: int | None = None
    ) -> tuple[list[str], list[RelationshipKey], bool]:
        # SQLite has no transaction memory ceiling: the whole expiry is the first part.
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
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
        stale_cis, stale_rels = self._stale_everywhere(expired, expired_rels)
        return stale_cis, stale_rels, True

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
                (ids_param(ci_ids),),
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
                (dumps(relationship_keys),),
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
                    None if e.old is None else dumps(e.old),
                    None if e.new is None else dumps(e.new),
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
        dump.restore_sightings(self._conn, cis, relationships)

    def restore_source_sweeps(self, sweeps: Sequence[SourceSweep]) -> None:
        dump.restore_source_sweeps(self._conn, sweeps)

    def restore_history(self, entries: Sequence[HistoryEntry]) -> None:
        if entries:
            self.seq  # noqa: B018 - history is a change: advance the sequence
            try:
                dump.restore_history(self._conn, entries)
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"history seq already taken: {exc}") from exc

    def restore_conflicts(self, conflicts: Sequence[Conflict]) -> None:
        try:
            dump.restore_conflicts(self._conn, conflicts)
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"conflict id already taken: {exc}") from exc

    def restore_change_seq(self, seq: int) -> None:
        dump.restore_change_seq(self._conn, seq)
