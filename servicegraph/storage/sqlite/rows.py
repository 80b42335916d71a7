"""Rows of the graph's tables to domain objects and back, shared by the store, its
writer and the export (``dump``).

Sets of ids travel as one JSON array parameter (``IN (SELECT value FROM json_each(?))``):
no limit on the number of host parameters and one statement per batch.
"""

from __future__ import annotations

import json
import operator
import sqlite3
from collections.abc import Iterable
from typing import Any

from servicegraph.cmdb.identifiers import Identifier
from servicegraph.cmdb.model import (
    ConfigurationItem,
    HistoryEntry,
    HistoryKind,
    Lifecycle,
    OperationalState,
    Relationship,
)
from servicegraph.storage.sqlite.file import from_us, to_us

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode


def dumps(value: Any) -> str:
    # Most relationship attribute maps are empty: skip the encoder for them (bulk loads
    # encode one map per relationship and per history entry).
    if type(value) is dict and not value:
        return "{}"
    return _encode(value)


def loads(text: str) -> Any:
    if text == "{}":
        return {}
    return json.loads(text)


def ids_param(ids: Iterable[str]) -> str:
    return dumps(list(ids))


def in_key_order(rows: list[tuple[Any, ...]], *key_columns: int) -> list[tuple[Any, ...]]:
    """``rows`` sorted by the columns of the table's primary key.

    A bulk write in key order fills each B-tree page once instead of jumping between
    pages at random, which halves the time of large upserts. The sort is stable: when a
    key appears twice, the later row still wins, as it would unsorted."""
    return sorted(rows, key=operator.itemgetter(*key_columns))


CI_COLUMNS = (
    "id, class, name, attributes, attribute_sources, lifecycle, operational_state, stale, "
    "merged_into, created_at, updated_at, version"
)
REL_COLUMNS = "from_id, type, to_id, attributes, created_at, updated_at, removed, stale"
HISTORY_COLUMNS = "seq, at, ci_id, kind, field, old, new, source, actor, run_id, other_ci_id"


def to_relationship(row: tuple[Any, ...]) -> Relationship:
    return Relationship(
        from_id=row[0],
        type=row[1],
        to_id=row[2],
        attributes=loads(row[3]),
        created_at=from_us(row[4]),
        updated_at=from_us(row[5]),
        removed=bool(row[6]),
        stale=bool(row[7]),
    )


def to_history_entry(row: tuple[Any, ...]) -> HistoryEntry:
    return HistoryEntry(
        seq=row[0],
        at=from_us(row[1]),
        ci_id=row[2],
        kind=HistoryKind(row[3]),
        field=row[4],
        old=None if row[5] is None else loads(row[5]),
        new=None if row[6] is None else loads(row[6]),
        source=row[7],
        actor=row[8],
        run_id=row[9],
        other_ci_id=row[10],
    )


def rows_to_cis(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[ConfigurationItem]:
    if not rows:
        return []
    identifiers: dict[str, list[Identifier]] = {}
    for ci_id, kind, value in conn.execute(
        "SELECT ci_id, kind, value FROM ci_identifier "
        "WHERE ci_id IN (SELECT value FROM json_each(?))",
        (ids_param(r[0] for r in rows),),
    ):
        identifiers.setdefault(ci_id, []).append((kind, value))
    return [
        ConfigurationItem(
            id=r[0],
            ci_class=r[1],
            name=r[2],
            attributes=loads(r[3]),
            attribute_sources=loads(r[4]),
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


def load_cis(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, ConfigurationItem]:
    rows = conn.execute(
        f"SELECT {CI_COLUMNS} FROM ci WHERE id IN (SELECT value FROM json_each(?))",
        (ids_param(ids),),
    ).fetchall()
    return {ci.id: ci for ci in rows_to_cis(conn, rows)}


def ci_row(ci: ConfigurationItem, seq: int) -> tuple[Any, ...]:
    return (
        ci.id,
        ci.ci_class,
        ci.name,
        dumps(ci.attributes),
        dumps(ci.attribute_sources),
        ci.lifecycle.value,
        ci.operational_state.value,
        int(ci.stale),
        ci.merged_into,
        to_us(ci.created_at),
        to_us(ci.updated_at),
        ci.version,
        seq,
    )
