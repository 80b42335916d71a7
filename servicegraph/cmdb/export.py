"""Moving a whole configuration graph between stores: a streaming JSON Lines export and
its restore, through the store port only (so any backend to any backend).

Format (version 1), one JSON object per line:

* first line, the header: ``{"format": "servicegraph-export", "version": 1,
  "exported_at": ..., "servicegraph": ..., "store": ..., "change_seq": N}``;
* then records, each with ``"type"``, in this section order: ``ci`` (with identifiers),
  ``source_key``, ``ci_sighting``, ``relationship``, ``relationship_sighting``,
  ``source_sweep``, ``history`` (with its ``seq``), ``conflict`` (with its ``id``);
* last line, the trailer: ``{"type": "end", "counts": {"ci": n, ...}}``. A file without
  it is incomplete and is refused.

Times are ISO 8601 in UTC with microseconds; attribute maps and history values are JSON.
A restore keeps every id, time, ``seq`` and conflict id, so the history of every item
reads the same in the new store, in the same order.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from servicegraph import __version__
from servicegraph.cmdb.errors import CmdbError, StoreError, ValidationFailed
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
from servicegraph.cmdb.ports import (
    CIQuery,
    CISighting,
    GraphSnapshot,
    GraphStore,
    GraphWriter,
    RelationshipSighting,
    SourceKey,
    SourceSweep,
)

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


def _time(value: dt.datetime) -> str:
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
        "first_seen": _time(s.first_seen),
        "last_seen": _time(s.last_seen),
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
            "created_at": _time(record.created_at),
            "updated_at": _time(record.updated_at),
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
            "created_at": _time(record.created_at),
            "updated_at": _time(record.updated_at),
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
            "at": _time(record.at),
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
        "detected_at": _time(record.detected_at),
        "kind": record.kind.value,
        "source": record.source,
        "item": record.item,
        "identifier": list(record.identifier) if record.identifier else None,
        "ci_id": record.ci_id,
        "other_ci_id": record.other_ci_id,
        "detail": record.detail,
        "run_id": record.run_id,
    }


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
    if kind == "ci":
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
    if kind == "source_key":
        return SourceKey(_str(obj, "source"), _str(obj, "key"), _str(obj, "ci_id"))
    if kind == "ci_sighting":
        return CISighting(_str(obj, "ci_id"), _sighting(obj))
    if kind == "relationship":
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
    if kind == "relationship_sighting":
        key = (_str(obj, "from"), _str(obj, "rel"), _str(obj, "to"))
        return RelationshipSighting(key, _sighting(obj))
    if kind == "source_sweep":
        return SourceSweep(_str(obj, "source"), _str(obj, "run_id"))
    if kind == "history":
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
    if kind == "conflict":
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
    raise ValueError(f"unknown record type {kind!r}; known: {', '.join(SECTIONS)}")


# -- export ----------------------------------------------------------------------------

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=False).encode


def _records(snapshot: GraphSnapshot) -> Iterator[Record]:
    yield from snapshot.cis()
    yield from snapshot.source_keys()
    yield from snapshot.ci_sightings()
    yield from snapshot.relationships()
    yield from snapshot.relationship_sightings()
    yield from snapshot.source_sweeps()
    yield from snapshot.history()
    yield from snapshot.conflicts()


def export_graph(
    store: GraphStore,
    out: IO[str],
    *,
    store_name: str = "",
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write everything ``store`` holds to ``out``; returns the count of each record type."""
    counts = dict.fromkeys(SECTIONS, 0)
    with store.snapshot() as snapshot:
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "exported_at": _time(dt.datetime.now(dt.UTC)),
            "servicegraph": __version__,
            "store": store_name,
            "change_seq": snapshot.change_seq(),
        }
        out.write(_dumps(header) + "\n")
        for written, record in enumerate(_records(snapshot), start=1):
            obj = encode(record)
            counts[obj["type"]] += 1
            out.write(_dumps(obj) + "\n")
            if progress is not None and written % 10_000 == 0:
                progress(written)
    out.write(_dumps({"type": "end", "counts": counts}) + "\n")
    return counts


# -- import ----------------------------------------------------------------------------


@dataclass
class ExportFile:
    """A checked export: its header, and the record counts its trailer promises."""

    path: Path
    header: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def change_seq(self) -> int:
        return int(self.header["change_seq"])

    def records(self) -> Iterator[Record]:
        for _, obj in _lines(self.path):
            if obj.get("type") in SECTIONS:
                yield decode(obj)


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValidationFailed(f"not JSON: {exc.msg}", item=f"{path}:{number}") from None
            if not isinstance(obj, dict):
                raise ValidationFailed("each line must be a JSON object", item=f"{path}:{number}")
            yield number, obj


def read_export(path: Path) -> ExportFile:
    """Read and check the whole file before anything is written: format and version,
    every record, section order, and the trailer's counts."""
    try:
        return _read_export(path)
    except OSError as exc:
        raise ValidationFailed(f"cannot read the export: {exc.strerror}", item=str(path)) from exc


def _read_export(path: Path) -> ExportFile:
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise ValidationFailed("the file is empty", item=str(path))
    number, header = first
    if header.get("format") != FORMAT:
        raise ValidationFailed(
            f'not a servicegraph export (first line must have "format": "{FORMAT}")',
            item=f"{path}:{number}",
        )
    version = header.get("version")
    if version != FORMAT_VERSION:
        raise ValidationFailed(
            f"export format version {version!r}; this servicegraph reads version "
            f"{FORMAT_VERSION}" + ("; upgrade servicegraph" if isinstance(version, int) else ""),
            item=f"{path}:{number}",
        )
    if not isinstance(header.get("change_seq"), int):
        raise ValidationFailed("the header has no change_seq", item=f"{path}:{number}")
    counts = dict.fromkeys(SECTIONS, 0)
    section = 0
    trailer: dict[str, Any] | None = None
    for number, obj in lines:
        where = f"{path}:{number}"
        if trailer is not None:
            raise ValidationFailed("records after the end line", item=where)
        kind = obj.get("type")
        if kind == "end":
            trailer = obj
            continue
        if kind not in SECTIONS:
            raise ValidationFailed(f"unknown record type {kind!r}", item=where)
        position = SECTIONS.index(kind)
        if position < section:
            raise ValidationFailed(
                f"a '{kind}' record after '{SECTIONS[section]}' records; sections must come "
                f"in the order {', '.join(SECTIONS)}",
                item=where,
            )
        section = position
        try:
            decode(obj)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationFailed(str(exc), item=where, field=kind) from None
        counts[kind] += 1
    if trailer is None:
        raise ValidationFailed(
            "no end line: the export is incomplete (was it cut short?)", item=str(path)
        )
    if trailer.get("counts") != counts:
        raise ValidationFailed(
            f"the end line promises {trailer.get('counts')} but the file holds {counts}",
            item=str(path),
        )
    return ExportFile(path, header, counts)


def _target_is_empty(store: GraphStore) -> bool:
    counts = store.counts()
    return (
        not store.find_cis(CIQuery(include_merged=True, limit=1))
        and counts.get("history_entries", 0) == 0
        and counts.get("conflicts", 0) == 0
    )


class _Loader:
    """Buffers records and applies them through one writer in section order."""

    def __init__(self, writer: GraphWriter) -> None:
        self.writer = writer
        self.buffer: dict[str, list[Any]] = {kind: [] for kind in SECTIONS}

    def add(self, record: Record) -> None:
        self.buffer[encode_type(record)].append(record)

    def flush(self) -> None:
        b, w = self.buffer, self.writer
        w.insert_cis(b["ci"])
        by_source: dict[str, list[tuple[str, str]]] = {}
        for key in b["source_key"]:
            by_source.setdefault(key.source, []).append((key.key, key.ci_id))
        for source, rows in by_source.items():
            w.set_keys(source, rows)
        w.save_relationships(b["relationship"], [])
        w.restore_sightings(b["ci_sighting"], b["relationship_sighting"])
        w.restore_source_sweeps(b["source_sweep"])
        w.restore_history(b["history"])
        w.restore_conflicts(b["conflict"])
        self.buffer = {kind: [] for kind in SECTIONS}


def encode_type(record: Record) -> str:
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


def import_graph(
    store: GraphStore,
    export: ExportFile,
    *,
    commit_every: int = 20_000,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Restore a checked export into ``store``, which must hold no CIs, history or
    conflicts. Records are committed ``commit_every`` at a time (Neo4j keeps a whole
    transaction in memory); a failure part-way leaves the records committed so far, and
    says so."""
    if commit_every < 1:
        raise ValueError("commit_every must be at least 1")
    if not _target_is_empty(store):
        raise StoreError(
            "the target store is not empty; an export is restored into a new, empty store "
            "(another data directory or an empty Neo4j database)"
        )
    done = 0
    try:
        for chunk in _chunks(export.records(), commit_every):
            with store.write() as writer:
                loader = _Loader(writer)
                for record in chunk:
                    loader.add(record)
                loader.flush()
            done += len(chunk)
            if progress is not None:
                progress(done)
        with store.write() as writer:
            writer.restore_change_seq(export.change_seq)
    except CmdbError as exc:
        if done:
            raise StoreError(
                f"{exc}; the import stopped after {done:,} records, which stay in the target "
                "store: empty it before importing again"
            ) from exc
        raise
    return dict(export.counts)


def _chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
