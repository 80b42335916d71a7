"""Moving the desk between stores: its records for an export file, and their restore into
an empty desk, through the ports only (``TicketStore`` / ``TicketUnit`` and
``DirectoryStore``), so from any backend to any backend.

The records and their JSON objects are ``export_format``'s; the file around them (one
header, the graph's sections first, one trailer) is ``servicegraph.runtime.export``'s.

Export: the directory is read whole (``DirectoryStore.export_records``: a desk's people and
catalogue fit in memory, as every ticket check loads them anyway), the tickets stream from
a ``TicketSnapshot`` in bounded pages. Restore: the directory in one unit, then the tickets
``commit_every`` records per unit (Neo4j keeps a whole transaction in memory), in the
file's section order, so alerts are in the store before the incidents named after them.
Every id, number, time and worklog ``seq`` is kept: a ticket's history reads the same,
in the same order, and new tickets are numbered after the restored ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from servicegraph.ticketing.export_format import (
    DIRECTORY_SECTIONS,
    TICKET_SECTIONS,
    Record,
    codec_of,
)
from servicegraph.ticketing.ports import (
    DirectoryRecords,
    DirectoryStore,
    IncidentFilter,
    TicketSnapshot,
    TicketStore,
    TicketUnit,
)

# the directory's sections and the fields of DirectoryRecords that hold them
_DIRECTORY_FIELDS = {
    "organisation": "organisations",
    "agent": "agents",
    "group": "groups",
    "contact": "contacts",
    "service": "services",
    "category": "categories",
}
assert tuple(_DIRECTORY_FIELDS) == DIRECTORY_SECTIONS


@dataclass(frozen=True)
class DeskSnapshot:
    """The desk as of one moment: the directory read whole, the tickets as a snapshot
    (valid inside ``desk_snapshot``'s block)."""

    directory: DirectoryRecords
    tickets: TicketSnapshot

    def records(self) -> Iterator[Record]:
        """Every record, in the export's section order."""
        for name in _DIRECTORY_FIELDS.values():
            yield from getattr(self.directory, name)
        t = self.tickets
        yield from t.alerts()
        yield from t.alert_cycles()
        yield from t.incidents()
        yield from t.problems()
        yield from t.problem_links()
        yield from t.freeze_windows()
        yield from t.changes()
        yield from t.links()
        yield from t.worklog()


@contextmanager
def desk_snapshot(tickets: TicketStore, directory: DirectoryStore) -> Iterator[DeskSnapshot]:
    """The desk for an export: the tickets' snapshot taken, then the directory read, one
    right after the other (before any record is written out)."""
    with tickets.snapshot() as view:
        yield DeskSnapshot(directory.export_records(), view)


def desk_contents(tickets: TicketStore, directory: DirectoryStore) -> dict[str, int]:
    """What a store holds of the desk, by kind (kinds it holds none of are absent): a
    restore's target must hold nothing."""
    with tickets.snapshot() as view:
        held = {kind: n for kind, n in view.counts().items() if n}
    records = directory.export_records()
    held |= {name: n for name in _DIRECTORY_FIELDS.values() if (n := len(getattr(records, name)))}
    return held


def restore_desk(
    tickets: TicketStore,
    directory: DirectoryStore,
    records: Iterable[Record],
    *,
    directory_version: int,
    commit_every: int = 20_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Restore an export's desk records (in section order, as ``read_export`` checked
    them) into an empty desk; returns how many were restored. ``progress`` is told the
    number committed so far after each unit; a failure part-way leaves those committed
    (the caller says so)."""
    if commit_every < 1:
        raise ValueError("commit_every must be at least 1")
    stream = iter(records)
    people: dict[str, list[Any]] = {section: [] for section in DIRECTORY_SECTIONS}
    first_ticket: list[Record] = []
    for record in stream:
        section = codec_of(record).section
        if section in TICKET_SECTIONS:
            first_ticket.append(record)
            break
        people[section].append(record)
    directory.restore_records(
        DirectoryRecords(
            **{name: tuple(people[section]) for section, name in _DIRECTORY_FIELDS.items()},
            version=directory_version,
        )
    )
    done = sum(len(found) for found in people.values())
    if progress is not None:
        progress(done)
    rest = itertools.chain(first_ticket, stream)
    while chunk := list(itertools.islice(rest, commit_every)):
        with tickets.unit() as unit:
            _save(unit, chunk)
        done += len(chunk)
        if progress is not None:
            progress(done)
    _reevaluate_clocks(tickets)
    with tickets.unit() as unit:
        unit.touched()  # correlation workers reload: their cached incidents are stale
    return done


def _reevaluate_clocks(tickets: TicketStore, chunk: int = 1000) -> None:
    """The SLA clocks of every restored ticket, from its history: the units above saved
    each ticket before its history (the file's order), so their clocks saw none of it.
    The desk was empty, so every ticket is one restored; none when no policy applies."""
    after: tuple[int, ...] | None = None
    while page := tickets.find_incidents(IncidentFilter(after=after, limit=chunk)):
        with tickets.unit() as unit:
            if not unit.reevaluate_sla([t.id for t in page]):
                return
        after = (page[-1].number,)


def _save(unit: TicketUnit, chunk: list[Record]) -> None:
    """Write a chunk of ticket records through one unit, section by section in the file's
    order (a chunk holds the end of one section and the start of the next)."""
    by_section: dict[str, list[Any]] = {section: [] for section in TICKET_SECTIONS}
    for record in chunk:
        by_section[codec_of(record).section].append(record)
    unit.save_alerts(by_section["alert"])
    unit.record_cycles(by_section["alert_cycle"])
    unit.save_incidents(by_section["incident"])
    for problem in by_section["problem"]:
        unit.save_problem(problem)
    unit.restore_problem_links(by_section["problem_incident"])
    for window in by_section["freeze_window"]:
        unit.save_freeze_window(window)
    for change in by_section["change"]:
        unit.save_change(change)
    unit.save_links(by_section["ticket_link"])
    unit.restore_worklog(by_section["worklog"])
