"""Moving a whole configuration graph between stores: a streaming JSON Lines export and
its restore, through the store port only (so any backend to any backend).

The format (header, record sections, trailer) and the JSON object of each record are
defined in ``export_format``. This module writes a store's snapshot as such a file
(``export_graph``), checks a whole file before anything is written (``read_export``:
header, section order, every record, the trailer's counts) and restores it into an empty
store in bounded transactions (``import_graph``). A restore
keeps every id, time, ``seq`` and conflict id, so the history of every item reads the
same in the new store, in the same order.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from servicegraph import __version__
from servicegraph.cmdb.errors import CmdbError, StoreError, ValidationFailed
from servicegraph.cmdb.export_format import (
    FORMAT,
    FORMAT_VERSION,
    SECTIONS,
    Record,
    decode,
    encode,
    encode_type,
    format_time,
)
from servicegraph.cmdb.ports import CIQuery, GraphSnapshot, GraphStore, GraphWriter

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
            "exported_at": format_time(dt.datetime.now(dt.UTC)),
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
