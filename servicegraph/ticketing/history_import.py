"""Importing another tool's ticket history: each incident with its state changes,
assignments, reopens and times, saved as the desk's own tickets and worklog.

Why a service of its own rather than ``TicketService.create_many``: a historical ticket
is not raised now, routed and checked against today's lifecycle; it happened, with the
times, actors and steps the old tool recorded (a ServiceNow ticket may go from New to
Awaiting User Info, which the desk's lifecycle would refuse). So the rebuilt tickets
(``servicenow_log``) are saved as they are, through the same ``TicketStore`` unit and in
the same shapes as the live desk's, so that SLA clocks, reports and timelines read them
like any other ticket.

- **Idempotent.** A ticket keeps its number in the old tool as ``external_ref``; an
  incident whose ref is already stored is skipped (``TicketStore.refs_known``), so a
  re-run, or a run over a longer log, imports only what is new. (Two imports of the same
  log at the same instant could both save an incident: run one at a time.)
- **Batches.** Incidents are saved ``batch_size`` at a time, each batch one unit: the
  write lock is held briefly (live work goes on between batches, and the SLA projection
  each unit computes at its commit stays bounded), numbers continue the desk's sequence.
- **People.** The groups, agents and contacts the tickets name are created in the
  directory (``DirectoryStore.save_people``, checked by ``Directory.merged``) before the
  batch that names them is saved, so the imported desk is navigable: a group with its
  members, an agent in the groups that assigned it tickets, a contact per caller. Agents
  the import creates get the address ``<login>@imported.invalid``; while they have it
  they are the import's, and a later import adds them to further groups; an agent with
  another address is the desk's, and its memberships are left as they are.
- **Bad rows** (``servicenow_log``: file:line and column) refuse their incident and are
  all reported; the rest is imported. ``strict`` reads the whole log first and writes
  nothing when any row is bad; ``dry_run`` reads it, checks what is already stored and
  counts what would be created, writing nothing.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.model import utcnow
from servicegraph.ticketing.desk_directory import SAVE_ATTEMPTS, DirectoryBusy
from servicegraph.ticketing.people import MAX_NAME, Agent, Contact, Directory, Group
from servicegraph.ticketing.ports import DirectoryStore, PeopleBatch, TicketStore
from servicegraph.ticketing.servicenow_log import EventLogReader, Rebuilt, Refused, zone_of

BATCH_SIZE = 1_000  # incidents per unit (about 7,000 log rows and 10,000 worklog entries)
PROGRESS_EVERY = 1_000  # rows between two calls of ``progress``
IMPORTED_EMAIL_DOMAIN = "imported.invalid"  # RFC 2606: never delivered
IMPORTED = f"@{IMPORTED_EMAIL_DOMAIN}"  # an agent with such an address is the import's
Source = Path | str | TextIO | Iterable[str]
# told the phase ("checking": a strict run's first reading; "importing"; "reading": a dry
# run) and the rows read so far in it
Progress = Callable[[str, int], None]


class LogFormat(enum.StrEnum):
    """The formats of history the desk reads (``servicegraph import-tickets --format``)."""

    SERVICENOW_EVENT_LOG = "servicenow-event-log"


@dataclass(frozen=True)
class PeopleCount:
    groups: int = 0
    agents: int = 0
    contacts: int = 0


@dataclass(frozen=True)
class ImportReport:
    """What an import did (with ``dry_run``: would do). ``written`` is false for a dry run
    and for a strict run that found problems; ``problems`` lists each bad row."""

    format: LogFormat
    dry_run: bool
    strict: bool
    written: bool
    rows_read: int
    incidents_read: int  # rebuilt from the log (created + skipped)
    created: int
    skipped_existing: int  # their external_ref was already stored
    refused_incidents: int
    refused_rows: int
    problems: tuple[ValidationFailed, ...]
    first_number: int | None  # the numbers the created tickets were given
    last_number: int | None
    people_created: PeopleCount


@dataclass
class _Run:
    dry_run: bool
    rows_read: int = 0
    incidents_read: int = 0
    created: int = 0
    skipped: int = 0
    refused_incidents: int = 0
    refused_rows: int = 0
    problems: list[ValidationFailed] = field(default_factory=list)
    first_number: int | None = None
    last_number: int | None = None
    groups: int = 0
    agents: int = 0
    contacts: int = 0

    def refused(self, item: Refused) -> None:
        self.problems.extend(item.problems)
        self.refused_rows += item.rows
        if item.number is not None:
            self.refused_incidents += 1


class HistoryImport:
    """Imports ticket history (see the module docstring) into a ticket store and the
    directory; ``clock`` dates the directory records it creates."""

    def __init__(
        self,
        store: TicketStore,
        directory: DirectoryStore,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.store = store
        self.directory = directory
        self.clock = clock
        self.batch_size = batch_size

    def run(
        self,
        source: Source,
        *,
        format: LogFormat = LogFormat.SERVICENOW_EVENT_LOG,
        name: str | None = None,
        timezone: str | dt.tzinfo | None = None,
        dry_run: bool = False,
        strict: bool = False,
        progress: Progress | None = None,
    ) -> ImportReport:
        """Import the log ``source`` (a path, text, an open file or lines; ``name`` labels
        problems, the path by default), its times read in ``timezone`` (UTC by default).
        Raises ValidationFailed (field ``timezone`` or ``format``) before reading anything
        for an unknown zone or format; every problem of the log itself is in the report."""
        if not isinstance(format, LogFormat):
            try:
                format = LogFormat(format)
            except ValueError:
                known = ", ".join(f.value for f in LogFormat)
                raise ValidationFailed(
                    f"unknown format '{format}' (known: {known})", field="format"
                ) from None
        zone = zone_of(timezone)
        label = name or (str(source) if isinstance(source, Path) else "<text>")
        if strict and not isinstance(source, Path | str):
            source = list(source)  # read twice: checked whole, then imported
        if strict:
            check = _Run(dry_run=True)
            self._pass(source, label, zone, check, save=False, write=False, progress=progress)
            if check.problems:
                return _report(format, check, dry_run=dry_run, strict=True, written=False)
        run = _Run(dry_run=dry_run)
        self._pass(source, label, zone, run, save=True, write=not dry_run, progress=progress)
        return _report(format, run, dry_run=dry_run, strict=strict, written=not dry_run)

    def _pass(
        self,
        source: Source,
        label: str,
        zone: dt.tzinfo,
        run: _Run,
        *,
        save: bool,
        write: bool,
        progress: Progress | None,
    ) -> None:
        """Read the log into ``run``; with ``save``, each batch goes to ``_save``."""
        people = _People(self.directory, self.clock, write=write)
        phase = "importing" if write else "reading" if save else "checking"

        def hand(batch: list[Rebuilt]) -> None:
            self._save(batch, run, people, write)

        self._read(source, label, zone, run, phase, progress, hand if save else None)

    def _read(
        self,
        source: Source,
        label: str,
        zone: dt.tzinfo,
        run: _Run,
        phase: str,
        progress: Progress | None,
        hand: Callable[[list[Rebuilt]], None] | None,
    ) -> None:
        reader = EventLogReader(name=label, zone=zone)
        batch: list[Rebuilt] = []
        told = 0
        for item in reader.read(source):
            if isinstance(item, Refused):
                run.refused(item)
            else:
                run.incidents_read += 1
                if hand is not None:
                    batch.append(item)
                    if len(batch) >= self.batch_size:
                        hand(batch)
                        batch = []
            if progress is not None and reader.rows_read >= told + PROGRESS_EVERY:
                told = reader.rows_read
                progress(phase, told)
        if batch and hand is not None:
            hand(batch)
        run.rows_read = reader.rows_read
        if progress is not None:
            progress(phase, reader.rows_read)

    def _save(self, batch: list[Rebuilt], run: _Run, people: _People, write: bool) -> None:
        known = self.store.refs_known(i.incident.external_ref or "" for i in batch)
        fresh = [i for i in batch if i.incident.external_ref not in known]
        run.skipped += len(batch) - len(fresh)
        if not fresh:
            return
        added = people.ensure(fresh)
        run.groups += added.groups
        run.agents += added.agents
        run.contacts += added.contacts
        run.created += len(fresh)
        if not write:
            return
        with self.store.unit() as unit:
            first = unit.next_incident_number()
            for n, item in enumerate(fresh, start=first):
                item.incident.number = n
            unit.save_incidents([i.incident for i in fresh])
            unit.append_worklog([e for i in fresh for e in i.worklog])
        if run.first_number is None:
            run.first_number = first
        run.last_number = first + len(fresh) - 1


def _report(
    format: LogFormat, run: _Run, *, dry_run: bool, strict: bool, written: bool
) -> ImportReport:
    return ImportReport(
        format=format,
        dry_run=dry_run,
        strict=strict,
        written=written,
        rows_read=run.rows_read,
        incidents_read=run.incidents_read,
        created=run.created,
        skipped_existing=run.skipped,
        refused_incidents=run.refused_incidents,
        refused_rows=run.refused_rows,
        problems=tuple(run.problems),
        first_number=run.first_number,
        last_number=run.last_number,
        people_created=PeopleCount(run.groups, run.agents, run.contacts),
    )


class _People:
    """The directory as the import has it: what it holds, and what the import added."""

    def __init__(
        self, store: DirectoryStore, clock: Callable[[], dt.datetime], *, write: bool
    ) -> None:
        self.store = store
        self.clock = clock
        self.write = write
        self.version = -1
        self.current = Directory()

    def ensure(self, items: Sequence[Rebuilt]) -> PeopleCount:
        """Create the groups, agents and contacts ``items`` name that the directory lacks
        (and add the import's agents to the groups they now appear in); the counts created."""
        groups: dict[str, str] = {}
        agents: dict[str, tuple[str, set[str]]] = {}
        contacts: dict[str, str] = {}
        for item in items:
            for key, name in item.groups.items():
                groups.setdefault(key, name)
            for login, (name, held) in item.agents.items():
                agents.setdefault(login, (name, set()))[1].update(held)
            for key, name in item.contacts.items():
                contacts.setdefault(key, name)
        for _ in range(SAVE_ATTEMPTS):
            version = self.store.version()
            if version != self.version:
                self.current = self.store.load_directory()
                self.version = version
            batch, count = self._missing(groups, agents, contacts)
            if not batch:
                return count
            merged = self.current.merged(
                agents=batch.agents, groups=batch.groups, contacts=batch.contacts
            )
            # both sides of the new memberships, as the merged directory holds them
            batch = PeopleBatch(
                agents=tuple(merged.agents[a.login] for a in batch.agents),
                groups=tuple(merged.groups[g.id] for g in batch.groups),
                contacts=batch.contacts,
            )
            if not self.write:
                self.current = merged
                return count
            saved = self.store.save_people(batch, self.clock(), expected=version)
            if saved is not None:
                self.current, self.version = merged, saved
                return count
        raise DirectoryBusy("the directory kept changing while the import added people; retry")

    def _missing(
        self,
        groups: dict[str, str],
        agents: dict[str, tuple[str, set[str]]],
        contacts: dict[str, str],
    ) -> tuple[PeopleBatch, PeopleCount]:
        d = self.current
        new_groups = [Group(id=k, name=_name(n, k)) for k, n in groups.items() if k not in d.groups]
        new_agents: list[Agent] = []
        created = 0
        for login, (name, held) in agents.items():
            found = d.agents.get(login)
            if found is None:
                created += 1
                new_agents.append(
                    Agent(
                        login=login,
                        name=_name(name, login),
                        email=f"{login}@{IMPORTED_EMAIL_DOMAIN}",
                        groups=tuple(sorted(held)),
                    )
                )
            elif found.email.endswith(IMPORTED) and not held <= set(found.groups):
                new_agents.append(replace(found, groups=tuple(sorted(held | set(found.groups)))))
        new_contacts = [
            Contact(id=k, name=_name(n, k)) for k, n in contacts.items() if k not in d.contacts
        ]
        batch = PeopleBatch(
            agents=tuple(new_agents), groups=tuple(new_groups), contacts=tuple(new_contacts)
        )
        return batch, PeopleCount(len(new_groups), created, len(new_contacts))


def _name(name: str, key: str) -> str:
    return (name.strip() or key)[:MAX_NAME]
