"""The export format (version 1): its constants and each record as one JSON object, both
ways.

One JSON object per line:

* first line, the header: ``{"format": "servicegraph-export", "version": 1,
  "exported_at": ..., "servicegraph": ..., "store": ..., "change_seq": N}``;
* then records, each with ``"type"``, in this section order: ``ci`` (with identifiers),
  ``source_key``, ``ci_sighting``, ``relationship``, ``relationship_sighting``,
  ``source_sweep``, ``history`` (with its ``seq``), ``conflict`` (with its ``id``);
* last line, the trailer: ``{"type": "end", "counts": {"ci": n, ...}}``. A file without
  it is incomplete and is refused.

Times are ISO 8601 in UTC with microseconds; attribute maps and history values are JSON.
``encode`` and ``decode`` keep every id, time, ``seq`` and conflict id, so that a restore
reads the same as the store it came from. The file as a whole (header, section order,
trailer) is written and checked by ``export``. Versions 2 and 3 of the file (written by
``servicegraph export`` since the desk) have these sections first, then the desk's
(``servicegraph.ticketing.export_format``), composed by ``servicegraph.runtime.export``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from servicegraph.cmdb.model import (
    ConfigurationItem,
    Conflict,
    ConflictKind,
    HistoryEntry,
    HistoryKind,
    Lifecycle,
    OperationalState,
    Relationship,
    SourceSighting,
)
from servicegraph.cmdb.ports import CISighting, RelationshipSighting, SourceKey, SourceSweep

FORMAT = "servicegraph-export"
FORMAT_VERSION = 1

# Record types in the order they must appear: a relationship's ends, a sighting's item
# are in the file before it.
SECTIONS = (
    "ci",
    "source_key",
    "ci_sighting",
    "relationship",
    "relationship_sighting",
    "source_sweep",
    "history",
    "conflict",
)

Record = (
    ConfigurationItem
    | SourceKey
    | CISighting
    | Relationship
    | RelationshipSighting
    | SourceSweep
    | HistoryEntry
    | Conflict
)


def format_time(value: dt.datetime) -> str:
    """A time as the format writes it: ISO 8601 in UTC, with microseconds."""
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _parse_time(value: Any, name: str) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError(f"'{name}' must be an ISO 8601 time")
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"'{name}' has no time zone")
    return parsed.astimezone(dt.UTC)


# -- encoding --------------------------------------------------------------------------


def _sighting_fields(s: SourceSighting) -> dict[str, Any]:
    return {
        "source": s.source,
        "first_seen": format_time(s.first_seen),
        "last_seen": format_time(s.last_seen),
        "last_run": s.last_run,
        "missed_runs": s.missed_runs,
        "stale": s.stale,
    }


def encode(record: Record) -> dict[str, Any]:
    """The JSON object of one record."""
    if isinstance(record, ConfigurationItem):
        return {
            "type": "ci",
            "id": record.id,
            "class": record.ci_class,
            "name": record.name,
            "attributes": dict(record.attributes),
            "attribute_sources": dict(record.attribute_sources),
            "identifiers": [list(i) for i in record.identifiers],
            "lifecycle": record.lifecycle.value,
            "operational_state": record.operational_state.value,
            "stale": record.stale,
            "merged_into": record.merged_into,
            "created_at": format_time(record.created_at),
            "updated_at": format_time(record.updated_at),
            "version": record.version,
        }
    if isinstance(record, SourceKey):
        return {
            "type": "source_key",
            "source": record.source,
            "key": record.key,
            "ci_id": record.ci_id,
        }
    if isinstance(record, CISighting):
        return {"type": "ci_sighting", "ci_id": record.ci_id, **_sighting_fields(record.sighting)}
    if isinstance(record, Relationship):
        return {
            "type": "relationship",
            "from": record.from_id,
            "rel": record.type,
            "to": record.to_id,
            "attributes": dict(record.attributes),
            "created_at": format_time(record.created_at),
            "updated_at": format_time(record.updated_at),
            "removed": record.removed,
            "stale": record.stale,
        }
    if isinstance(record, RelationshipSighting):
        from_id, rel_type, to_id = record.key
        return {
            "type": "relationship_sighting",
            "from": from_id,
            "rel": rel_type,
            "to": to_id,
            **_sighting_fields(record.sighting),
        }
    if isinstance(record, SourceSweep):
        return {"type": "source_sweep", "source": record.source, "run_id": record.run_id}
    if isinstance(record, HistoryEntry):
        return {
            "type": "history",
            "seq": record.seq,
            "at": format_time(record.at),
            "ci_id": record.ci_id,
            "kind": record.kind.value,
            "field": record.field,
            "old": record.old,
            "new": record.new,
            "source": record.source,
            "actor": record.actor,
            "run_id": record.run_id,
            "other_ci_id": record.other_ci_id,
        }
    return {
        "type": "conflict",
        "id": record.id,
        "detected_at": format_time(record.detected_at),
        "kind": record.kind.value,
        "source": record.source,
        "item": record.item,
        "identifier": list(record.identifier) if record.identifier else None,
        "ci_id": record.ci_id,
        "other_ci_id": record.other_ci_id,
        "detail": record.detail,
        "run_id": record.run_id,
    }


def encode_type(record: Record) -> str:
    """The section (record type) ``record`` belongs in."""
    if isinstance(record, ConfigurationItem):
        return "ci"
    if isinstance(record, SourceKey):
        return "source_key"
    if isinstance(record, CISighting):
        return "ci_sighting"
    if isinstance(record, Relationship):
        return "relationship"
    if isinstance(record, RelationshipSighting):
        return "relationship_sighting"
    if isinstance(record, SourceSweep):
        return "source_sweep"
    if isinstance(record, HistoryEntry):
        return "history"
    return "conflict"


# -- decoding --------------------------------------------------------------------------


def _sighting(obj: Mapping[str, Any]) -> SourceSighting:
    return SourceSighting(
        source=_str(obj, "source"),
        first_seen=_parse_time(obj.get("first_seen"), "first_seen"),
        last_seen=_parse_time(obj.get("last_seen"), "last_seen"),
        last_run=_opt_str(obj, "last_run"),
        missed_runs=_int(obj, "missed_runs"),
        stale=_bool(obj, "stale"),
    )


def _str(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise ValueError(f"'{name}' must be a string")
    return value


def _opt_str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"'{name}' must be a string or null")
    return value


def _int(obj: Mapping[str, Any], name: str) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"'{name}' must be an integer")
    return value


def _bool(obj: Mapping[str, Any], name: str) -> bool:
    value = obj.get(name)
    if not isinstance(value, bool):
        raise ValueError(f"'{name}' must be true or false")
    return value


def _map(obj: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = obj.get(name)
    if not isinstance(value, dict):
        raise ValueError(f"'{name}' must be an object")
    return value


def decode(obj: Mapping[str, Any]) -> Record:
    """The record of one JSON object; ValueError says what is wrong with it."""
    kind = obj.get("type")
    decoder = _DECODERS.get(kind) if isinstance(kind, str) else None
    if decoder is None:
        raise ValueError(f"unknown record type {kind!r}; known: {', '.join(SECTIONS)}")
    return decoder(obj)


def _decode_ci(obj: Mapping[str, Any]) -> ConfigurationItem:
    identifiers = obj.get("identifiers")
    if not isinstance(identifiers, list) or not all(
        isinstance(i, list) and len(i) == 2 and all(isinstance(p, str) for p in i)
        for i in identifiers
    ):
        raise ValueError("'identifiers' must be a list of [kind, value] pairs")
    return ConfigurationItem(
        id=_str(obj, "id"),
        ci_class=_str(obj, "class"),
        name=_str(obj, "name"),
        attributes=_map(obj, "attributes"),
        attribute_sources=_map(obj, "attribute_sources"),
        identifiers=tuple(sorted((k, v) for k, v in identifiers)),
        lifecycle=Lifecycle(_str(obj, "lifecycle")),
        operational_state=OperationalState(_str(obj, "operational_state")),
        stale=_bool(obj, "stale"),
        merged_into=_opt_str(obj, "merged_into"),
        created_at=_parse_time(obj.get("created_at"), "created_at"),
        updated_at=_parse_time(obj.get("updated_at"), "updated_at"),
        version=_int(obj, "version"),
    )


def _decode_source_key(obj: Mapping[str, Any]) -> SourceKey:
    return SourceKey(_str(obj, "source"), _str(obj, "key"), _str(obj, "ci_id"))


def _decode_ci_sighting(obj: Mapping[str, Any]) -> CISighting:
    return CISighting(_str(obj, "ci_id"), _sighting(obj))


def _decode_relationship(obj: Mapping[str, Any]) -> Relationship:
    return Relationship(
        from_id=_str(obj, "from"),
        type=_str(obj, "rel"),
        to_id=_str(obj, "to"),
        attributes=_map(obj, "attributes"),
        created_at=_parse_time(obj.get("created_at"), "created_at"),
        updated_at=_parse_time(obj.get("updated_at"), "updated_at"),
        removed=_bool(obj, "removed"),
        stale=_bool(obj, "stale"),
    )


def _decode_relationship_sighting(obj: Mapping[str, Any]) -> RelationshipSighting:
    key = (_str(obj, "from"), _str(obj, "rel"), _str(obj, "to"))
    return RelationshipSighting(key, _sighting(obj))


def _decode_source_sweep(obj: Mapping[str, Any]) -> SourceSweep:
    return SourceSweep(_str(obj, "source"), _str(obj, "run_id"))


def _decode_history(obj: Mapping[str, Any]) -> HistoryEntry:
    seq = _int(obj, "seq")
    if seq < 1:
        raise ValueError("'seq' must be positive")
    return HistoryEntry(
        seq=seq,
        at=_parse_time(obj.get("at"), "at"),
        ci_id=_str(obj, "ci_id"),
        kind=HistoryKind(_str(obj, "kind")),
        field=_opt_str(obj, "field"),
        old=obj.get("old"),
        new=obj.get("new"),
        source=_opt_str(obj, "source"),
        actor=_opt_str(obj, "actor"),
        run_id=_opt_str(obj, "run_id"),
        other_ci_id=_opt_str(obj, "other_ci_id"),
    )


def _decode_conflict(obj: Mapping[str, Any]) -> Conflict:
    identifier = obj.get("identifier")
    if identifier is not None and not (
        isinstance(identifier, list)
        and len(identifier) == 2
        and all(isinstance(p, str) for p in identifier)
    ):
        raise ValueError("'identifier' must be a [kind, value] pair or null")
    conflict_id = _int(obj, "id")
    if conflict_id < 1:
        raise ValueError("'id' must be positive")
    return Conflict(
        id=conflict_id,
        detected_at=_parse_time(obj.get("detected_at"), "detected_at"),
        kind=ConflictKind(_str(obj, "kind")),
        source=_str(obj, "source"),
        item=_str(obj, "item"),
        identifier=(identifier[0], identifier[1]) if identifier else None,
        ci_id=_opt_str(obj, "ci_id"),
        other_ci_id=_opt_str(obj, "other_ci_id"),
        detail=_str(obj, "detail"),
        run_id=_opt_str(obj, "run_id"),
    )


# one per section
_DECODERS: dict[str, Callable[[Mapping[str, Any]], Record]] = {
    "ci": _decode_ci,
    "source_key": _decode_source_key,
    "ci_sighting": _decode_ci_sighting,
    "relationship": _decode_relationship,
    "relationship_sighting": _decode_relationship_sighting,
    "source_sweep": _decode_source_sweep,
    "history": _decode_history,
    "conflict": _decode_conflict,
}
