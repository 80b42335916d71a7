"""Moving a whole configuration graph between stores: a streaming JSON Lines export and
its restore, through the store port only (so any backend to any backend).

The format (header, record sections, trailer) and the JSON object of each record are
defined in ``export_format``. This module writes a store's snapshot as such a file
(``export_graph``), checks a whole file before anything is written (``read_export``:
header, section order, every record, the trailer's counts) and restores it into an empty
store in bounded transactions (``import_graph``). A restore
keeps every id, time, ``seq`` and conflict id, so the history of every item reads the
same in the new store, in the same order.

Other domains add sections of their own after the graph's (the desk's tickets, people and
catalogue: format version 2). cmdb knows none of them: a file's layout is a list of
``Part`` (sections and their decoder) per version, which ``servicegraph.runtime.export``
composes, writing through ``ExportWriter`` and checking with ``read_export(path, layouts)``;
the graph's own part is ``GRAPH``, and this module alone writes and reads version 1.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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

# -- the parts of a file ----------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """The sections one domain writes into an export file, in order, and how to decode one
    record of them (which is how ``read_export`` checks it: the decoder raises ValueError,
    or ValidationFailed naming the field). With ``order_key``, each section's records must
    come in strictly increasing order of it: one pass finds a duplicated record without
    keeping every key in memory; ``key_name`` says what the key is."""

    sections: tuple[str, ...]
    decode: Callable[[Mapping[str, Any]], object]
    order_key: Callable[[str, Any], tuple[Any, ...]] | None = None
    key_name: Callable[[str], str] = lambda section: "key"


GRAPH = Part(SECTIONS, decode)
# what each version of the file holds: cmdb writes and reads version 1, the graph alone
GRAPH_LAYOUTS: Mapping[int, Sequence[Part]] = {FORMAT_VERSION: (GRAPH,)}


# -- export ----------------------------------------------------------------------------

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=False).encode


def graph_records(snapshot: GraphSnapshot) -> Iterator[Record]:
    """Every record of a snapshot, in section order."""
    yield from snapshot.cis()
    yield from snapshot.source_keys()
    yield from snapshot.ci_sightings()
    yield from snapshot.relationships()
    yield from snapshot.relationship_sightings()
    yield from snapshot.source_sweeps()
    yield from snapshot.history()
    yield from snapshot.conflicts()


class ExportWriter:
    """Writes one export file: the header line, then records in section order, then (by
    ``end``) the trailer with the count of each section, which ``read_export`` checks.
    ``progress`` is told the number of records written every 10,000."""

    def __init__(
        self,
        out: IO[str],
        version: int,
        sections: Sequence[str],
        *,
        store_name: str,
        change_seq: int,
        progress: Callable[[int], None] | None = None,
        **header: Any,
    ) -> None:
        self.out = out
        self.sections = tuple(sections)
        self.counts = dict.fromkeys(self.sections, 0)
        self.progress = progress
        self._written = 0
        self._section = 0
        line = {
            "format": FORMAT,
            "version": version,
            "exported_at": format_time(dt.datetime.now(dt.UTC)),
            "servicegraph": __version__,
            "store": store_name,
            "change_seq": change_seq,
            **header,
        }
        out.write(_dumps(line) + "\n")

    def write(self, obj: Mapping[str, Any]) -> None:
        """One record's JSON object (its ``type`` is its section)."""
        kind = obj["type"]
        position = self.sections.index(kind)
        if position < self._section:  # the caller's bug: the reader would refuse the file
            raise ValueError(f"a '{kind}' record after '{self.sections[self._section]}' ones")
        self._section = position
        self.counts[kind] += 1
        self.out.write(_dumps(obj) + "\n")
        self._written += 1
        if self.progress is not None and self._written % 10_000 == 0:
            self.progress(self._written)

    def end(self) -> dict[str, int]:
        """Write the trailer; returns the count of each section."""
        self.out.write(_dumps({"type": "end", "counts": self.counts}) + "\n")
        return dict(self.counts)


def export_graph(
    store: GraphStore,
    out: IO[str],
    *,
    store_name: str = "",
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write everything ``store`` holds to ``out`` (version 1: the graph alone); returns
    the count of each record type."""
    with store.snapshot() as snapshot:
        writer = ExportWriter(
            out,
            FORMAT_VERSION,
            SECTIONS,
            store_name=store_name,
            change_seq=snapshot.change_seq(),
            progress=progress,
        )
        for record in graph_records(snapshot):
            writer.write(encode(record))
    return writer.end()


# -- import ----------------------------------------------------------------------------


@dataclass
class ExportFile:
    """A checked export: its header, and the record counts its trailer promises (every
    section of its version's layout)."""

    path: Path
    header: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def change_seq(self) -> int:
        return int(self.header["change_seq"])

    @property
    def version(self) -> int:
        return int(self.header["version"])

    def records(self) -> Iterator[Record]:
        """The graph's records, in file order."""
        for _, obj in _lines(self.path):
            if obj.get("type") in SECTIONS:
                yield decode(obj)

    def records_of(self, part: Part) -> Iterator[object]:
        """The records of ``part``'s sections, in file order (the file was checked
        whole: they decode)."""
        for _, obj in _lines(self.path):
            if obj.get("type") in part.sections:
                yield part.decode(obj)


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


def read_export(path: Path, layouts: Mapping[int, Sequence[Part]] = GRAPH_LAYOUTS) -> ExportFile:
    """Read and check the whole file before anything is written: format and version (one
    of ``layouts``), every record, section order (and each part's key order), and the
    trailer's counts."""
    try:
        return _read_export(path, layouts)
    except OSError as exc:
        raise ValidationFailed(f"cannot read the export: {exc.strerror}", item=str(path)) from exc


def _header(path: Path, first: tuple[int, dict[str, Any]] | None, readable: Iterable[int]) -> int:
    """The header's version, checked with the rest of the header."""
    if first is None:
        raise ValidationFailed("the file is empty", item=str(path))
    number, header = first
    if header.get("format") != FORMAT:
        raise ValidationFailed(
            f'not a servicegraph export (first line must have "format": "{FORMAT}")',
            item=f"{path}:{number}",
        )
    version = header.get("version")
    known = sorted(readable)
    if version not in known or isinstance(version, bool):
        newer = isinstance(version, int) and version > known[-1]
        raise ValidationFailed(
            f"export format version {version!r}; this servicegraph reads version "
            f"{', '.join(map(str, known))}" + ("; upgrade servicegraph" if newer else ""),
            item=f"{path}:{number}",
        )
    if not isinstance(header.get("change_seq"), int):
        raise ValidationFailed("the header has no change_seq", item=f"{path}:{number}")
    assert isinstance(version, int)
    return version


class _Checker:
    """Checks records one at a time against a layout: known type, section order, each
    part's key order, and that the record decodes; counts them."""

    def __init__(self, parts: Sequence[Part]) -> None:
        self.part_of = {section: part for part in parts for section in part.sections}
        self.sections = tuple(self.part_of)
        self.counts = dict.fromkeys(self.sections, 0)
        self.section = 0
        self.last_key: tuple[Any, ...] | None = None

    def check(self, obj: Mapping[str, Any], where: str) -> None:
        kind = obj.get("type")
        if not isinstance(kind, str) or kind not in self.part_of:
            raise ValidationFailed(f"unknown record type {kind!r}", item=where, field="type")
        position = self.sections.index(kind)
        if position < self.section:
            raise ValidationFailed(
                f"a '{kind}' record after '{self.sections[self.section]}' records; sections "
                f"must come in the order {', '.join(self.sections)}",
                item=where,
            )
        if position > self.section:
            self.section, self.last_key = position, None
        part = self.part_of[kind]
        try:
            record = part.decode(obj)
        except ValidationFailed as exc:
            raise ValidationFailed(exc.reason, item=where, field=exc.field or kind) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationFailed(str(exc), item=where, field=kind) from None
        if part.order_key is not None:
            key = part.order_key(kind, record)
            if self.last_key is not None and key <= self.last_key:
                raise ValidationFailed(
                    f"'{kind}' records must come in increasing order of "
                    f"{part.key_name(kind)}, each once: "
                    f"{_shown(key)} after {_shown(self.last_key)}",
                    item=where,
                    field=kind,
                )
            self.last_key = key
        self.counts[kind] += 1


def _shown(key: tuple[Any, ...]) -> str:
    return ", ".join(str(k) for k in key)


def _read_export(path: Path, layouts: Mapping[int, Sequence[Part]]) -> ExportFile:
    lines = _lines(path)
    first = next(lines, None)
    version = _header(path, first, layouts)
    assert first is not None
    header = first[1]
    checker = _Checker(layouts[version])
    trailer: dict[str, Any] | None = None
    for number, obj in lines:
        where = f"{path}:{number}"
        if trailer is not None:
            raise ValidationFailed("records after the end line", item=where)
        if obj.get("type") == "end":
            trailer = obj
            continue
        checker.check(obj, where)
    if trailer is None:
        raise ValidationFailed(
            "no end line: the export is incomplete (was it cut short?)", item=str(path)
        )
    if trailer.get("counts") != checker.counts:
        raise ValidationFailed(
            f"the end line promises {trailer.get('counts')} but the file holds {checker.counts}",
            item=str(path),
        )
    return ExportFile(path, header, checker.counts)


def graph_is_empty(store: GraphStore) -> bool:
    """Whether ``store`` holds no CI, history entry or conflict (a restore's target)."""
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
    if not graph_is_empty(store):
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
    return {kind: export.counts.get(kind, 0) for kind in SECTIONS}


def _chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
