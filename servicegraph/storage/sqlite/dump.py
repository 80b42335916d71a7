"""Export and restore for the SQLite store: a snapshot of every table of the graph, and
the writes that put records back with their own ids, seqs and times.

A snapshot is one read transaction on a connection of its own: WAL gives it a consistent
view while writers carry on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from servicegraph.cmdb.model import (
    ConfigurationItem,
    Conflict,
    ConflictKind,
    HistoryEntry,
    Relationship,
    SourceSighting,
)
from servicegraph.cmdb.ports import (
    CISighting,
    RelationshipSighting,
    SourceKey,
    SourceSweep,
)
from servicegraph.storage.sqlite.file import SqliteFile, from_us, to_us
from servicegraph.storage.sqlite.rows import (
    CI_COLUMNS,
    HISTORY_COLUMNS,
    REL_COLUMNS,
    dumps,
    rows_to_cis,
    to_history_entry,
    to_relationship,
)

_FETCH = 1000


class SqliteSnapshot:
    """What ``SqliteGraphStore.snapshot`` yields."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _rows(self, sql: str) -> Iterator[list[tuple[Any, ...]]]:
        cursor = self._conn.execute(sql)
        while rows := cursor.fetchmany(_FETCH):
            yield rows

    def change_seq(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'change_seq'").fetchone()
        return int(row[0])

    def cis(self) -> Iterator[ConfigurationItem]:
        for rows in self._rows(f"SELECT {CI_COLUMNS} FROM ci ORDER BY id"):
            yield from rows_to_cis(self._conn, rows)

    def source_keys(self) -> Iterator[SourceKey]:
        for rows in self._rows("SELECT source, key, ci_id FROM source_key ORDER BY source, key"):
            yield from (SourceKey(*r) for r in rows)

    def ci_sightings(self) -> Iterator[CISighting]:
        for rows in self._rows(
            "SELECT ci_id, source, first_seen, last_seen, last_run, missed_runs, stale "
            "FROM ci_sighting ORDER BY ci_id, source"
        ):
            yield from (CISighting(r[0], self._sighting(r[1:])) for r in rows)

    def relationships(self) -> Iterator[Relationship]:
        for rows in self._rows(
            f"SELECT {REL_COLUMNS} FROM relationship ORDER BY from_id, type, to_id"
        ):
            yield from (to_relationship(r) for r in rows)

    def relationship_sightings(self) -> Iterator[RelationshipSighting]:
        for rows in self._rows(
            "SELECT from_id, type, to_id, source, first_seen, last_seen, last_run, missed_runs, "
            "stale FROM relationship_sighting ORDER BY from_id, type, to_id, source"
        ):
            yield from (
                RelationshipSighting((r[0], r[1], r[2]), self._sighting(r[3:])) for r in rows
            )

    def source_sweeps(self) -> Iterator[SourceSweep]:
        for rows in self._rows("SELECT source, run_id FROM source_sweep ORDER BY source"):
            yield from (SourceSweep(*r) for r in rows)

    def history(self) -> Iterator[HistoryEntry]:
        for rows in self._rows(f"SELECT {HISTORY_COLUMNS} FROM history ORDER BY seq"):
            yield from (to_history_entry(r) for r in rows)

    def conflicts(self) -> Iterator[Conflict]:
        for rows in self._rows(
            "SELECT id, detected_at, kind, source, item, identifier_kind, identifier_value, "
            "ci_id, other_ci_id, detail, run_id FROM conflict ORDER BY id"
        ):
            yield from (
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
            )

    def _sighting(self, r: Sequence[Any]) -> SourceSighting:
        return SourceSighting(r[0], from_us(r[1]), from_us(r[2]), r[3], r[4], bool(r[5]))


def open_snapshot_connection(store: SqliteFile) -> sqlite3.Connection:
    """A connection of the snapshot's own, inside a read transaction."""
    conn = store._connections._open()
    conn.execute("BEGIN")
    # A deferred transaction takes its snapshot at the first read: read now.
    conn.execute("SELECT value FROM meta WHERE key = 'change_seq'").fetchone()
    return conn


# -- restore ---------------------------------------------------------------------------


def _sighting_values(s: SourceSighting) -> tuple[Any, ...]:
    return (
        s.source,
        to_us(s.first_seen),
        to_us(s.last_seen),
        s.last_run,
        s.missed_runs,
        int(s.stale),
    )


def restore_sightings(
    conn: sqlite3.Connection,
    cis: Sequence[CISighting],
    relationships: Sequence[RelationshipSighting],
) -> None:
    conn.executemany(
        "INSERT INTO ci_sighting (ci_id, source, first_seen, last_seen, last_run, missed_runs, "
        "stale) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(s.ci_id, *_sighting_values(s.sighting)) for s in cis],
    )
    conn.executemany(
        "INSERT INTO relationship_sighting (from_id, type, to_id, source, first_seen, "
        "last_seen, last_run, missed_runs, stale) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*s.key, *_sighting_values(s.sighting)) for s in relationships],
    )


def restore_source_sweeps(conn: sqlite3.Connection, sweeps: Sequence[SourceSweep]) -> None:
    conn.executemany(
        "INSERT INTO source_sweep (source, run_id) VALUES (?, ?) "
        "ON CONFLICT (source) DO UPDATE SET run_id = excluded.run_id",
        [(s.source, s.run_id) for s in sweeps],
    )


def restore_history(conn: sqlite3.Connection, entries: Sequence[HistoryEntry]) -> None:
    # ``seq`` is the INTEGER PRIMARY KEY: later inserts are numbered after the highest.
    conn.executemany(
        "INSERT INTO history (seq, at, ci_id, kind, field, old, new, source, actor, run_id, "
        "other_ci_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                e.seq,
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


def restore_conflicts(conn: sqlite3.Connection, conflicts: Sequence[Conflict]) -> None:
    conn.executemany(
        "INSERT INTO conflict (id, detected_at, kind, source, item, identifier_kind, "
        "identifier_value, ci_id, other_ci_id, detail, run_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                c.id,
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


def restore_change_seq(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute(
        "UPDATE meta SET value = max(value, ?) WHERE key = 'change_seq'",
        (seq,),
    )
