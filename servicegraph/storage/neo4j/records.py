"""Neo4j records to domain objects and back, and the transaction helpers the store, its
unit of work and its export share (every statement comes from ``cypher.py``)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import neo4j
from neo4j import ManagedTransaction, Transaction
from neo4j.exceptions import (
    DriverError,
    Neo4jError,
)

from servicegraph.cmdb.errors import StoreError, StoreUnavailable
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
    Direction,
)
from servicegraph.storage.neo4j import cypher
from servicegraph.storage.neo4j.catalogue import Statement

T = TypeVar("T")
Tx = ManagedTransaction | Transaction

dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode
INT64 = (-(2**63), 2**63 - 1)
LOCK_RETRY_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

# The driver logs connection failures at WARNING; with no logging configured Python would
# print them to stderr next to the one line the CLI promises. Configured handlers still
# receive them.
logging.getLogger("neo4j").addHandler(logging.NullHandler())


# -- conversions -----------------------------------------------------------------------


def to_neo4j_time(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; use timezone-aware UTC times")
    return value.astimezone(dt.UTC)


def time_text(value: dt.datetime) -> str:
    """``value`` as ISO 8601 text in UTC, for the bulk rows: the statement turns it back
    into a DATETIME with ``datetime()``. The driver dehydrates a datetime object in Python
    (tens of microseconds each, most of a load's client time, since a 100k-CI load sends
    about 800,000 of them), where text is packed natively by ``neo4j-rust-ext``."""
    return to_neo4j_time(value).isoformat()


def from_neo4j_time(value: Any) -> dt.datetime:
    native = value.to_native() if isinstance(value, neo4j.time.DateTime) else value
    if not isinstance(native, dt.datetime) or native.tzinfo is None:
        raise StoreError(f"expected a zoned DATETIME from Neo4j, got {value!r}")
    return native.astimezone(dt.UTC)


def json_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value)


def loads_or_none(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def storable(value: Any) -> bool:
    """Whether Neo4j can hold ``value`` as a property (for the attr_* projection)."""
    if isinstance(value, bool | str | float):
        return True
    if isinstance(value, int):
        return INT64[0] <= value <= INT64[1]
    if isinstance(value, list):
        if not value:
            return True  # Neo4j stores empty lists too
        kind = type(value[0])
        return kind in (bool, str, float, int) and all(
            type(v) is kind and storable(v) for v in value
        )
    return False


def ci_properties(ci: ConfigurationItem, change_seq: int) -> dict[str, Any]:
    """The complete property map of a (:CI) node (see ``cypher.CI_PROPERTIES``)."""
    props: dict[str, Any] = {
        "id": ci.id,
        "class": ci.ci_class,
        "name": ci.name,
        "attributes": dumps(dict(ci.attributes)),
        "attribute_sources": dumps(dict(ci.attribute_sources)),
        "lifecycle": ci.lifecycle.value,
        "operational_state": ci.operational_state.value,
        "stale": ci.stale,
        "merged_into": ci.merged_into,
        "created_at": time_text(ci.created_at),  # made DATETIMEs by the statement
        "updated_at": time_text(ci.updated_at),
        "version": ci.version,
        "change_seq": change_seq,
    }
    for name, value in ci.attributes.items():
        if storable(value):
            props[cypher.ATTRIBUTE_PREFIX + name] = value
    return props


def to_ci(r: Mapping[str, Any]) -> ConfigurationItem:
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


def to_relationship(r: Mapping[str, Any]) -> Relationship:
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


def relationship_row(rel: Relationship) -> dict[str, Any]:
    return {
        "from_id": rel.from_id,
        "to_id": rel.to_id,
        # unique per type: the (from, to) pair, unambiguous whatever the ids contain
        "key": dumps([rel.from_id, rel.to_id]),
        "attributes": dumps(dict(rel.attributes)),
        "created_at": time_text(rel.created_at),
        "updated_at": time_text(rel.updated_at),
        "removed": rel.removed,
        "stale": rel.stale,
    }


def to_history_entry(r: Mapping[str, Any]) -> HistoryEntry:
    return HistoryEntry(
        seq=r["seq"],
        at=from_neo4j_time(r["at"]),
        ci_id=r["ci_id"],
        kind=HistoryKind(r["kind"]),
        field=r["field"],
        old=loads_or_none(r["old"]),
        new=loads_or_none(r["new"]),
        source=r["source"],
        actor=r["actor"],
        run_id=r["run_id"],
        other_ci_id=r["other_ci_id"],
    )


def history_row(e: HistoryEntry, seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "at": time_text(e.at),
        "ci_id": e.ci_id,
        "kind": e.kind.value,
        "field": e.field,
        "old": json_or_none(e.old),
        "new": json_or_none(e.new),
        "source": e.source,
        "actor": e.actor,
        "run_id": e.run_id,
        "other_ci_id": e.other_ci_id,
    }


def to_conflict(r: Mapping[str, Any]) -> Conflict:
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


def conflict_row(c: Conflict, conflict_id: int) -> dict[str, Any]:
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


def to_sighting(r: Mapping[str, Any]) -> SourceSighting:
    return SourceSighting(
        source=r["source"],
        first_seen=from_neo4j_time(r["first_seen"]),
        last_seen=from_neo4j_time(r["last_seen"]),
        last_run=r["last_run"],
        missed_runs=r["missed_runs"],
        stale=bool(r["stale"]),
    )


def sighting_row(s: SourceSighting) -> dict[str, Any]:
    return {
        "source": s.source,
        "first_seen": time_text(s.first_seen),
        "last_seen": time_text(s.last_seen),
        "last_run": s.last_run,
        "missed_runs": s.missed_runs,
        "stale": s.stale,
    }


def rel_key_row(key: RelationshipKey) -> dict[str, str]:
    return {"from_id": key[0], "type": key[1], "to_id": key[2]}


def unique(items: Iterable[T]) -> list[T]:
    return list(dict.fromkeys(items))


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def one_line(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, Neo4jError) and exc.message else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def run(tx: Tx, statement: Statement, **params: Any) -> neo4j.Result:
    """Run one declared statement with exactly its declared parameters."""
    if set(params) != statement.parameters:
        raise ValueError(
            f"{statement.name} takes {sorted(statement.parameters)}, got {sorted(params)}"
        )
    return tx.run(statement.text, params)


def consume(
    statement: Statement, params: Mapping[str, Any]
) -> Callable[[ManagedTransaction], None]:
    def work(tx: ManagedTransaction) -> None:
        run(tx, statement, **params).consume()

    return work


def rollback_quietly(tx: Transaction) -> None:
    try:
        if not tx.closed():
            tx.rollback()
    except (Neo4jError, DriverError):
        pass  # the transaction is gone with the connection: nothing was committed


def read_change_seq(tx: Tx) -> int:
    record = run(tx, cypher.READ_SEQUENCE, name=cypher.SEQUENCE_CHANGE).single()
    if record is None:
        raise StoreUnavailable("the Neo4j database has no servicegraph schema; run migrations")
    return int(record["value"])


def load_cis(tx: Tx, ids: Sequence[str], batch_size: int) -> dict[str, ConfigurationItem]:
    result: dict[str, ConfigurationItem] = {}
    for batch in batches(ids, batch_size):
        for r in run(tx, cypher.LOAD_CIS, ids=list(batch)):
            ci = to_ci(r)
            result[ci.id] = ci
    return result


def lookup_identifiers(
    tx: Tx, identifiers: Sequence[Identifier], batch_size: int
) -> dict[Identifier, str]:
    result: dict[Identifier, str] = {}
    for batch in batches(identifiers, batch_size):
        rows = [{"kind": kind, "value": value} for kind, value in batch]
        for r in run(tx, cypher.LOOKUP_IDENTIFIERS, rows=rows):
            result[(r["kind"], r["value"])] = r["ci_id"]
    return result


def relationships_of(
    tx: Tx,
    ids: Sequence[str],
    direction: Direction,
    types: list[str] | None,
    include_removed: bool,
    batch_size: int,
) -> list[Relationship]:
    found: dict[RelationshipKey, Relationship] = {}
    for batch in batches(ids, batch_size):
        for r in run(
            tx,
            cypher.RELATIONSHIPS,
            ids=list(batch),
            outgoing=direction in ("out", "both"),
            incoming=direction in ("in", "both"),
            types=types,
            include_removed=include_removed,
        ):
            rel = to_relationship(r)
            found[rel.key] = rel
    return [found[key] for key in sorted(found)]
