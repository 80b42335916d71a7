"""The repository port of ticketing: incidents (the aggregate correlation opens and people
work), their alerts, problems, changes and the worklog.

Ticketing owns this port; correlation writes through it too: a correlation batch is a
``TicketUnit`` that also claims inbox events (``servicegraph.correlation.ports``), so both
sides write the same records through the same operations and share one lock. A unit of
people's work is serialised with correlation batches, and ``touched`` tells correlation
workers that their cached incidents are stale, so that neither side overwrites the
other's changes.

Same rules as the other ports: coarse, batch-shaped operations; adapters raise
``StoreUnavailable`` or ``StoreError`` chained to the driver's exception.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from servicegraph.events.model import Alert, AlertCycle
from servicegraph.ticketing.catalogue import Catalogue, Category, Service
from servicegraph.ticketing.change_model import FreezeWindow
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import (
    Change,
    ChangeStatus,
    Channel,
    Incident,
    Problem,
    ProblemStatus,
    TicketLink,
    TicketType,
    WorklogEntry,
)
from servicegraph.ticketing.outbox import OutboxMessage
from servicegraph.ticketing.people import Agent, Contact, Directory, Group, Organisation
from servicegraph.ticketing.sla_projection import Fired, SlaProjector, SlaRecord

NO_DUE = 9223372036854775807  # the DUE order's key of a ticket without clocks: last


class TicketOrder(enum.StrEnum):
    NEWEST = "newest"  # number, highest first
    QUEUE = "queue"  # priority (1 first), then age (oldest first), then number
    DUE = "due"  # SLA due time (soonest, and breached, first; no clock last), then number


@dataclass(frozen=True)
class IncidentFilter:
    """Which tickets to list; every field set must hold. ``after`` continues a listing:
    the sort key of the last ticket of the previous page in ``order`` (``(number,)`` for
    NEWEST, ``(priority, opened_at in microseconds, number)`` for QUEUE, ``(sla_due_at in
    microseconds or NO_DUE, number)`` for DUE); see
    ``ticketing.paging`` for the opaque cursors the entry points hand out."""

    status: TicketStatus | None = None
    open: bool | None = None  # True: an active status (new .. pending); False: any other
    ci_ids: tuple[str, ...] | None = None  # the root CI, an alert's or an affected CI is one
    max_priority: int | None = None  # priority 1 is the highest: keeps 1..max_priority
    assignee: str | None = None
    unassigned: bool | None = None  # True: no agent holds it
    assignment_group: str | None = None
    type: TicketType | None = None
    channel: Channel | None = None
    requester: str | None = None
    organisation: str | None = None
    service: str | None = None
    category: str | None = None  # this category or one below it ("network" has "network/vpn")
    tag: str | None = None
    opened_since: dt.datetime | None = None
    resolved_before: dt.datetime | None = None  # (the auto-close job's question)
    text: str | None = None  # in the title, case-insensitive
    order: TicketOrder = TicketOrder.NEWEST
    after: tuple[int, ...] | None = None
    limit: int = 100


@dataclass(frozen=True)
class ProblemFilter:
    status: ProblemStatus | None = None
    root_ci_ids: tuple[str, ...] | None = None
    assignee: str | None = None
    limit: int = 100


@dataclass(frozen=True)
class ChangeFilter:
    status: ChangeStatus | None = None
    ci_ids: tuple[str, ...] | None = None
    assignee: str | None = None
    limit: int = 100


class TicketUnit(Protocol):
    """One atomic unit of ticket work, serialised with correlation batches."""

    # -- read inside the unit -------------------------------------------------------------------

    def state_version(self) -> int:
        """A counter every unit that changes alerts, incidents or problems advances
        (``touched``); a correlation worker whose cached state was read at another version
        must reload it."""

    def load_incidents(self, ids: Iterable[str]) -> dict[str, Incident]: ...

    def active_incidents(self, resolved_since: dt.datetime) -> list[Incident]:
        """Monitoring incidents (channel monitoring) that are active, or resolved at or
        after ``resolved_since`` (which may reopen): what correlation tracks; tickets
        people raised have no alerts for it to clear."""

    def incidents_with_root(self, ci_ids: Iterable[str], since: dt.datetime) -> list[Incident]:
        """Incidents whose root CI is one of ``ci_ids``, opened at or after ``since``."""

    def incidents_named(self, signature: str, since: dt.datetime) -> list[str]:
        """Ids of incidents opened since ``since`` whose root alert has ``signature`` and
        whose root CI is known."""

    def count_roots_named(self, signature: str, since: dt.datetime) -> int:
        """How many distinct root CIs the incidents of ``incidents_named`` have."""

    def load_alerts(self, fingerprints: Iterable[str]) -> dict[str, Alert]: ...

    def alerts_of(self, incident_ids: Iterable[str]) -> dict[str, list[Alert]]: ...

    def load_problems(self, ids: Iterable[str]) -> dict[str, Problem]: ...

    def find_problem(self, signature: str) -> Problem | None:
        """The problem with ``signature``, without its ``incident_ids`` (not needed here,
        and a recurring problem collects many)."""

    # -- write ----------------------------------------------------------------------------------

    def save_alerts(self, alerts: Sequence[Alert]) -> None:
        """Insert or replace whole alerts; the incidents whose root alert one is, saved
        before it, are filed under its ``source/name`` now."""

    def save_incidents(self, incidents: Sequence[Incident]) -> None:
        """Insert or replace whole incidents (correlation's write), each filed under its
        root alert's ``source/name`` (which ``incidents_named`` and ``count_roots_named``
        search) if that alert is saved, else when it is."""

    def update_incidents(self, incidents: Sequence[Incident]) -> None:
        """Write what people change on incidents: status, resolved_at, updated_at,
        problem_id, acknowledged_at/by, assignee, resolved_by and resolution. The fields
        correlation maintains (alerts, root cause, priority) are left as they are."""

    def next_incident_number(self) -> int: ...

    def save_problem(self, problem: Problem) -> None:
        """Insert or replace the problem record (its incident links are separate)."""

    def next_problem_number(self) -> int: ...

    def link_problem(self, problem_id: str, incident_ids: Sequence[str], at: dt.datetime) -> None:
        """Record incidents as instances of the problem (idempotent) and set the
        ``problem_id`` of those that have none."""

    def load_changes(self, ids: Iterable[str]) -> dict[str, Change]:
        """The changes with these ids, as stored now (the unit's own writes included)."""

    def changes_touching(self, start: dt.datetime, end: dt.datetime) -> list[Change]:
        """Changes planned or carried out within ``[start, end)`` (planned window, or
        actual start to actual end, open while implementing), and every change
        implementing now; any status: the caller keeps those it counts. By number."""

    def freeze_windows(
        self, start: dt.datetime | None, end: dt.datetime | None
    ) -> list[FreezeWindow]:
        """Freeze windows overlapping ``[start, end)`` (None: unbounded), by start."""

    def save_freeze_window(self, window: FreezeWindow) -> None:
        """Insert or replace the freeze window."""

    def delete_freeze_window(self, window_id: str) -> bool:
        """Delete it; False when there was none with that id."""

    def save_change(self, change: Change) -> None:
        """Insert or replace the change with its CIs."""

    def next_change_number(self) -> int: ...

    def append_worklog(self, entries: Sequence[WorklogEntry]) -> None: ...

    # -- SLA clocks (ticketing.sla_projection): the store re-evaluates the clocks of every
    # ticket a unit saves, before it commits, with the projector ``keep_sla`` gave it ----

    def load_sla(self, ids: Iterable[str]) -> dict[str, SlaRecord]: ...

    def save_sla(
        self, records: Sequence[SlaRecord], drop: Sequence[str] = (), config: str = ""
    ) -> None:
        """Keep the records (and each ticket's ``sla_due_at``); forget ``drop``'s clocks,
        tickets no policy of the SLA configuration ``config`` covers (which ``sla_stale``
        does not name again until the configuration changes)."""

    def fired_levels(self, ids: Iterable[str]) -> dict[str, Fired]: ...

    def claim_escalation(self, ticket_id: str, clock: str, level: int, at: dt.datetime) -> bool:
        """Record an escalation level as fired; False when it already was (by any job)."""

    def clock_worklog(self, ids: Iterable[str]) -> dict[str, list[WorklogEntry]]:
        """The entries the clocks read (status steps, pending reasons), in ``seq`` order."""

    def reevaluate_sla(self, ids: Iterable[str]) -> bool:
        """Evaluate these tickets' clocks again from their history when this unit commits
        (after a restore wrote their history after them); False when the store keeps no
        clocks (no SLA policy), and nothing is done."""

    def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        """Queue notifications to be sent once this unit commits (``ticketing.outbox``); a
        message whose ``key`` is already queued (or was sent) is not queued again."""

    def save_links(self, links: Sequence[TicketLink]) -> None:
        """Record links between tickets (idempotent: a link is its source, kind, target)."""

    def delete_links(self, links: Sequence[TicketLink]) -> None: ...

    def record_cycles(self, cycles: Sequence[AlertCycle]) -> None:
        """Insert or update fire/clear cycles of alerts (one per fingerprint and firing
        time: a clear updates the cycle it ends)."""

    def touched(self) -> int:
        """Advance the state version (see ``state_version``) and return the new one: tell
        correlation workers that incidents or problems changed under them."""

    # -- restoring an export (servicegraph import --from-export) ------------------------------
    # An export is restored through the writes above (alerts, cycles, incidents after their
    # alerts, problems, changes, links), which keep every id, number and time given, and
    # these two. Numbers continue after the highest restored: ``next_*_number`` (an adapter
    # that keeps counters instead of reading the highest raises them on these writes).

    def restore_problem_links(self, links: Sequence[ProblemLink]) -> None:
        """Record incidents as instances of problems exactly as given, with the time of
        each link (``Problem.incident_ids`` lists them in that order); unlike
        ``link_problem``, no incident's ``problem_id`` is touched (it was saved as it was)."""

    def restore_worklog(self, entries: Sequence[WorklogEntry]) -> None:
        """Store entries with their own ``seq`` (positive, and new to the store): entries
        appended later are numbered after the highest, so every ticket's worklog reads in
        the same order in the new store."""


class TicketStore(Protocol):
    def ping(self) -> None:
        """Raise StoreUnavailable or StoreError unless tickets can be read now."""

    def keep_sla(self, projector: SlaProjector) -> None:
        """Keep the SLA clocks of the tickets units save (``TicketUnit.load_sla``)."""

    def sla_of(self, ticket_ids: Iterable[str]) -> dict[str, SlaRecord]: ...

    def sla_due(self, now: dt.datetime, limit: int) -> list[str]:
        """Tickets whose ``next_check_at`` has come, the earliest first."""

    def sla_stale(self, config: str, limit: int) -> list[str]:
        """Active tickets whose clocks were evaluated under another SLA configuration, or
        never: what the sweep re-evaluates after the configuration changed."""

    def unit(self) -> AbstractContextManager[TicketUnit]: ...

    def get_incidents(self, ids: Iterable[str]) -> dict[str, Incident]: ...

    def find_incidents(self, query: IncidentFilter) -> list[Incident]:
        """At most ``query.limit`` tickets in ``query.order``, after ``query.after``.
        A page of a group's or an agent's active tickets in QUEUE order is read through an
        index, whatever the number of tickets (the desk benchmark's target)."""

    def open_incidents_of(self, ci_ids: Iterable[str]) -> dict[str, list[Incident]]:
        """For each CI, the active tickets whose root, any alert or an affected CI people
        named (``affected_ci_ids``) is on it, newest first; CIs without any are absent."""

    def incidents_of(self, ci_ids: Iterable[str]) -> list[Incident]:
        """Every ticket (active or not) whose root, any alert or an affected CI is one of
        the CIs."""

    def incident_alerts(self, incident_ids: Iterable[str]) -> dict[str, list[Alert]]:
        """The alerts of each incident, oldest first."""

    def alerts_on(self, ci_ids: Iterable[str]) -> list[Alert]:
        """Every alert mapped to one of the CIs."""

    def get_problems(self, ids: Iterable[str]) -> dict[str, Problem]: ...

    def find_problems(self, query: ProblemFilter) -> list[Problem]:
        """Newest first, at most ``query.limit``."""

    def problems_of(self, ci_ids: Iterable[str]) -> list[Problem]:
        """Problems whose root CI is one of the CIs or that one of their incidents is an
        instance of."""

    def problems_fixed_by(self, change_ids: Iterable[str]) -> list[Problem]:
        """Problems whose fixing change is one of these, by number."""

    def known_errors_for(self, ci_ids: Iterable[str], signatures: Iterable[str]) -> list[Problem]:
        """Problems with a known error recorded (any status: a resolved problem's known
        error is still knowledge) whose root CI is one of ``ci_ids`` or whose signature
        (``alert:<source>/<name>``, ``ci:<id>``) is one of ``signatures``; by number."""

    def changes_touching(self, start: dt.datetime, end: dt.datetime) -> list[Change]:
        """As ``TicketUnit.changes_touching``, outside a unit."""

    def freeze_windows(
        self, start: dt.datetime | None = None, end: dt.datetime | None = None
    ) -> list[FreezeWindow]:
        """As ``TicketUnit.freeze_windows``, outside a unit."""

    def get_changes(self, ids: Iterable[str]) -> dict[str, Change]: ...

    def find_changes(self, query: ChangeFilter) -> list[Change]:
        """Newest first, at most ``query.limit``."""

    def worklog(self, ticket_ids: Iterable[str]) -> dict[str, list[WorklogEntry]]:
        """Each ticket's worklog in order; tickets without entries are absent."""

    def incidents_updated_since(self, since: dt.datetime, limit: int) -> list[Incident]:
        """Incidents whose ``updated_at`` is at or after ``since``, oldest update first."""

    def links_of(self, ticket_ids: Iterable[str]) -> dict[str, list[TicketLink]]:
        """The links whose source or target is one of the tickets, for each of them;
        tickets without links are absent."""

    def alert_cycles(self, fingerprints: Iterable[str]) -> dict[str, list[AlertCycle]]:
        """Every fire/clear cycle of each alert, oldest first."""

    def open_counts(self, logins: Iterable[str]) -> dict[str, int]:
        """How many active tickets each agent holds (agents holding none are absent)."""

    def last_incident_number(self) -> int:
        """The highest incident number so far (0 before the first)."""

    # -- history import (ticketing.history_import) ---------------------------------------

    def refs_known(self, refs: Iterable[str]) -> set[str]:
        """Those of ``refs`` that are the ``external_ref`` of a stored ticket: what a history
        import skips, so that running it again imports nothing twice."""

    def unmapped_alerts(self, limit: int = 100) -> list[Alert]:
        """Alerts whose event named no known CI, newest first: kept, never dropped."""

    def counts(self) -> dict[str, int]:
        """How many alerts (firing, unmapped), incidents (open) and problems are stored."""

    # -- export (servicegraph export) ----------------------------------------------------------

    def snapshot(self) -> AbstractContextManager[TicketSnapshot]:
        """A consistent, read-only view of every ticket record, for export; writers carry on
        meanwhile (and do not show in it)."""


# -- people and the service catalogue ------------------------------------------------------------


@dataclass(frozen=True)
class PeopleBatch:
    """Records to upsert into the directory in one unit: each replaces the stored record
    with its key (an agent's login, the others' ids), or adds it. Membership is one
    relation seen from both sides: a saved agent's ``groups`` become that agent's whole
    membership, then a saved group's ``members`` that group's whole membership (the
    service saves both sides of a ``Directory`` in agreement, so the order only matters
    to a caller that disagrees with itself)."""

    agents: tuple[Agent, ...] = ()
    groups: tuple[Group, ...] = ()
    organisations: tuple[Organisation, ...] = ()
    contacts: tuple[Contact, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.agents or self.groups or self.organisations or self.contacts)


class DirectoryStore(Protocol):
    """The desk's people (agents, groups with their members, organisations, contacts) and
    its service catalogue (services, the category tree).

    Nothing is ever deleted: an agent who left, a contact who moved on, a retired service
    are saved again with ``active`` false, so the tickets and worklogs that name them keep
    meaning something. Each save is one unit, all or nothing, and advances ``version``;
    readers cache what they loaded (a desk has 15,000 contacts: loaded once per version,
    not once per request) and reload when the version moved. The store does not check
    references (a member that is no agent): ``Directory.build`` and ``Catalogue.build``
    do, before anything is saved. Adapters raise ``StoreUnavailable`` or ``StoreError``
    chained to the driver's exception, and ``StoreError`` for stored rows that no longer
    read as valid records."""

    def version(self) -> int:
        """A counter every ``save_people`` and ``save_catalogue`` advances (0 before the
        first save); equal versions mean equal contents, across processes."""

    def load_directory(self) -> Directory:
        """Every agent, group, organisation and contact, as of one moment (one read
        snapshot: a save running meanwhile is seen whole or not at all), membership on
        both sides."""

    def load_catalogue(self) -> Catalogue:
        """Every service and category, as of one moment."""

    def save_people(
        self, batch: PeopleBatch, at: dt.datetime, *, expected: int | None = None
    ) -> int | None:
        """Upsert the batch in one unit (see ``PeopleBatch``) and return the new version.
        ``at`` is recorded as the records' update time; a naive time raises ValueError and
        saves nothing. With ``expected`` (the version the caller computed the batch from),
        nothing is saved and None returned when the stored version is another: someone
        saved in between, and the caller recomputes from a fresh load (optimistic
        concurrency; the write lock is not held while the caller thinks)."""

    def save_catalogue(
        self,
        services: Sequence[Service],
        categories: Sequence[Category],
        at: dt.datetime,
        *,
        expected: int | None = None,
    ) -> int | None:
        """Upsert services (by id) and categories (by path) in one unit; return the new
        version, or None as ``save_people`` does."""

    # -- export and restore (servicegraph export / import --from-export) ---------------------

    def export_records(self) -> DirectoryRecords:
        """Every record as stored, each section ordered by key (login, id, path), with the
        time each was last saved and the version, as of one moment (one read snapshot);
        membership on both sides, only pairs whose both ends exist (as ``load_directory``).
        Records are not checked against each other: an export restores what is there."""

    def restore_records(self, records: DirectoryRecords) -> int:
        """Write an export's records into an empty directory in one unit, each with its own
        ``updated_at``; membership is the union of both sides. Returns the new version:
        the exported one, or one past the stored one when that is not lower (so readers
        that cached the empty directory reload). Raises StoreError, writing nothing, when
        the directory holds any record; ValueError for a naive time."""


# -- export and restore: the records that travel in an export file ------------------------------

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class ProblemLink:
    """An incident recorded as an instance of a problem (``problem_incident``), and when."""

    problem_id: str
    incident_id: str
    linked_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Stamped(Generic[R]):
    """A directory record with the time it was last saved (kept by a restore)."""

    record: R
    updated_at: dt.datetime


@dataclass(frozen=True)
class DirectoryRecords:
    """Everything a directory holds, for export and restore (``DirectoryStore``)."""

    agents: tuple[Stamped[Agent], ...] = ()
    groups: tuple[Stamped[Group], ...] = ()
    organisations: tuple[Stamped[Organisation], ...] = ()
    contacts: tuple[Stamped[Contact], ...] = ()
    services: tuple[Stamped[Service], ...] = ()
    categories: tuple[Stamped[Category], ...] = ()
    version: int = 0

    def __len__(self) -> int:
        return (
            len(self.agents)
            + len(self.groups)
            + len(self.organisations)
            + len(self.contacts)
            + len(self.services)
            + len(self.categories)
        )


class TicketSnapshot(Protocol):
    """A consistent, read-only view of every record of the ticket repository, for export;
    valid only inside the ``with`` block of ``TicketStore.snapshot``.

    Each method streams its records in pages of bounded size, in the order it states (a
    desk of a million tickets and ten million worklog entries is exported in bounded
    memory). Records come whole: incidents with every desk field, problems with empty
    ``incident_ids`` (``problem_links`` carry them, with their times), changes with their
    CIs in order."""

    def counts(self) -> dict[str, int]:
        """How many records each method below yields, by the method's name."""

    def alerts(self) -> Iterator[Alert]:
        """By fingerprint."""

    def alert_cycles(self) -> Iterator[AlertCycle]:
        """By fingerprint, then firing time."""

    def incidents(self) -> Iterator[Incident]:
        """By number."""

    def problems(self) -> Iterator[Problem]:
        """By number."""

    def problem_links(self) -> Iterator[ProblemLink]:
        """By problem id, then incident id."""

    def freeze_windows(self) -> Iterator[FreezeWindow]:
        """By id."""

    def changes(self) -> Iterator[Change]:
        """By number."""

    def links(self) -> Iterator[TicketLink]:
        """By source id, kind, target id."""

    def worklog(self) -> Iterator[WorklogEntry]:
        """Every entry of every ticket, by ``seq``."""
