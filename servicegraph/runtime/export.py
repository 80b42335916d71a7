"""``servicegraph export`` and ``servicegraph import --from-export`` of everything: the
configuration graph, then the desk (tickets, people, catalogue), in one file.

The file is JSON Lines: one header, the graph's sections (``cmdb.export_format``), the
desk's sections (``ticketing.export_format``), one trailer with the count of every
section. Format version 5 is that file; version 4 (the same, without freeze windows and
the fields of change and problem management: ``ticketing.export_format.decode_v4``),
version 3 (nor the incidents' SLA fields: ``decode_v3``), version 2 (nor routing's
priority bounds: ``decode_v2``) and version 1, the graph alone (what releases before the
desk wrote, and ``cmdb.export.export_graph`` still writes), still restore. The header of
version 2 and later also names the directory's version (``directory_version``).

cmdb knows nothing of the desk (an import-linter contract) and the desk nothing of the
file, so they are composed here, where both may be imported: this module writes through
``cmdb.export.ExportWriter``, checks with ``cmdb.export.read_export`` and the layout of
each version, and restores through each domain's restore (``cmdb.export.import_graph``,
``ticketing.desk_export.restore_desk``), which go through the ports only: the same code
serves any backend.

A restore checks the whole file first (nothing is written for a bad one), then refuses a
target that holds anything of what the file carries (the graph, for version 1; the graph
or any of the desk, for later versions), then restores the graph, then the desk, in units of
``commit_every`` records. A failure part-way says how many records stay in the target.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from servicegraph.bootstrap import Services
from servicegraph.cmdb import export_format as graph_format
from servicegraph.cmdb.errors import CmdbError, StoreError, ValidationFailed
from servicegraph.cmdb.export import (
    GRAPH,
    ExportFile,
    ExportWriter,
    Part,
    graph_is_empty,
    graph_records,
    import_graph,
    read_export,
)
from servicegraph.cmdb.ports import GraphStore
from servicegraph.ticketing import export_format as desk_format
from servicegraph.ticketing.desk_export import desk_contents, desk_snapshot, restore_desk
from servicegraph.ticketing.ports import DirectoryStore, TicketStore

FORMAT_VERSION = 5
# the desk's part of each version of the file (its sections and records, as that version
# wrote them)
DESKS: Mapping[int, Part] = {
    version: Part(
        desk_format.VERSION_SECTIONS[version],
        decode,
        desk_format.order_key,
        desk_format.key_name,
    )
    for version, decode in desk_format.DECODERS.items()
}
DESK = DESKS[FORMAT_VERSION]
LAYOUTS: Mapping[int, Sequence[Part]] = {
    1: (GRAPH,),
    **{version: (GRAPH, desk) for version, desk in DESKS.items()},
}
SECTIONS = GRAPH.sections + DESK.sections


@dataclass(frozen=True)
class Stores:
    """What an export reads and a restore writes: the graph, the tickets, the directory;
    ``name`` is the configured backend, written in the header."""

    graph: GraphStore
    tickets: TicketStore
    directory: DirectoryStore
    name: str = ""

    @classmethod
    def of(cls, services: Services) -> Stores:
        return cls(
            services.store, services.tickets, services.directory.store, services.settings.store
        )


def export_all(
    stores: Stores, out: IO[str], *, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Write the graph and the desk to ``out`` (version 5); returns the count of each
    section. The graph's snapshot is opened first, the desk's right after, both before
    any record is written: a ticket opened meanwhile may name a CI the graph's snapshot
    does not hold yet (export a quiet store to rule it out)."""
    with (
        stores.graph.snapshot() as graph,
        desk_snapshot(stores.tickets, stores.directory) as desk,
    ):
        writer = ExportWriter(
            out,
            FORMAT_VERSION,
            SECTIONS,
            store_name=stores.name,
            change_seq=graph.change_seq(),
            directory_version=desk.directory.version,
            progress=progress,
        )
        for record in graph_records(graph):
            writer.write(graph_format.encode(record))
        for desk_record in desk.records():
            writer.write(desk_format.encode(desk_record))
    return writer.end()


def read_all(path: Path) -> ExportFile:
    """Read and check a whole export of version 1 to 5 (``cmdb.export.read_export``)."""
    export = read_export(path, LAYOUTS)
    if export.version >= 2:
        version = export.header.get("directory_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise ValidationFailed(
                "the header's directory_version must be a count (0 or more)",
                item=f"{path}:1",
                field="directory_version",
            )
    return export


def target_contents(stores: Stores, export: ExportFile) -> list[str]:
    """What the target holds of what ``export`` carries (empty: it may be restored)."""
    held = [] if graph_is_empty(stores.graph) else ["CIs, history or conflicts"]
    if export.version >= 2:
        desk = desk_contents(stores.tickets, stores.directory)
        held += [f"{kind.replace('_', ' ')}: {n:,}" for kind, n in desk.items()]
    return held


def import_all(
    stores: Stores,
    export: ExportFile,
    *,
    commit_every: int = 20_000,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Restore a checked export (``read_all``) into empty stores: the graph, then (version
    2 and later) the desk; returns the count of each section restored."""
    if commit_every < 1:
        raise ValueError("commit_every must be at least 1")
    held = target_contents(stores, export)
    if held:
        raise StoreError(
            f"the target store is not empty (it holds {'; '.join(held)}); an export is "
            "restored into a new, empty store (another data directory or an empty Neo4j "
            "database)"
        )
    counts = import_graph(stores.graph, export, commit_every=commit_every, progress=progress)
    if export.version < 2:
        return counts
    done = committed = sum(counts.values())

    def desk_progress(n: int) -> None:
        nonlocal committed
        committed = done + n
        if progress is not None:
            progress(committed)

    try:
        restore_desk(
            stores.tickets,
            stores.directory,
            cast(Iterator[desk_format.Record], export.records_of(DESKS[export.version])),
            directory_version=int(export.header["directory_version"]),
            commit_every=commit_every,
            progress=desk_progress,
        )
    except CmdbError as exc:
        raise StoreError(
            f"{exc}; the import stopped after {committed:,} records, which stay in the "
            "target store: empty it before importing again"
        ) from exc
    return {kind: export.counts.get(kind, 0) for kind in SECTIONS}


# what the CLI says a file or a restore held, section by section
_NAMES = {
    "ci": "CIs",
    "relationship": "relationships",
    "history": "history entries",
    "conflict": "conflicts",
    "incident": "tickets",
    "worklog": "worklog entries",
    "alert": "alerts",
    "alert_cycle": "alert cycles",
    "problem": "problems",
    "change": "changes",
    "freeze_window": "freeze windows",
    "ticket_link": "ticket links",
    "agent": "agents",
    "group": "groups",
    "organisation": "organisations",
    "contact": "contacts",
    "service": "services",
    "category": "categories",
}


def summary(counts: Mapping[str, int]) -> str:
    """The counts people look for ("12 CIs, ...; 3 tickets, ...; 5 agents, ..."): the
    graph's, then the desk's when the file carries it."""
    graph = ["ci", "relationship", "history", "conflict"]
    desk = ["incident", "worklog", "alert", "alert_cycle", "problem", "change", "ticket_link"]
    desk += ["freeze_window"] if "freeze_window" in counts else []
    people = ["agent", "group", "organisation", "contact", "service", "category"]
    parts = [", ".join(f"{counts[k]:,} {_NAMES[k]}" for k in graph)]
    if "incident" in counts:
        parts += [", ".join(f"{counts[k]:,} {_NAMES[k]}" for k in keys) for keys in (desk, people)]
    return "; ".join(parts)
