"""The storage port of ticketing: people's work on incidents, problems and changes.

Correlation writes alerts and incidents through ``servicegraph.correlation.ports``; this
port reads them and writes what people change. Both share one lock: a unit of work here is
serialised with correlation batches, and ``touched`` tells correlation workers that their
cached incidents are stale, so that neither side overwrites the other's changes.

Same rules as the other ports: coarse, batch-shaped operations; adapters raise
``StoreUnavailable`` or ``StoreError`` chained to the driver's exception.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from servicegraph.events.model import Alert
from servicegraph.ticketing.model import (
    Change,
    ChangeStatus,
    Incident,
    IncidentStatus,
    Problem,
    ProblemStatus,
    WorklogEntry,
)


@dataclass(frozen=True)
class IncidentFilter:
    status: IncidentStatus | None = None
    ci_ids: tuple[str, ...] | None = None  # the root CI or any alert's CI is one of these
    max_priority: int | None = None  # priority 1 is the highest: keeps 1..max_priority
    assignee: str | None = None
    opened_since: dt.datetime | None = None
    limit: int = 100


@dataclass(frozen=True)
class ProblemFilter:
    status: ProblemStatus | None = None
    root_ci_ids: tuple[str, ...] | None = None
    limit: int = 100


@dataclass(frozen=True)
class ChangeFilter:
    status: ChangeStatus | None = None
    ci_ids: tuple[str, ...] | None = None
    limit: int = 100


class TicketUnit(Protocol):
    """One atomic unit of ticket work, serialised with correlation batches."""

    def load_incidents(self, ids: Iterable[str]) -> dict[str, Incident]: ...

    def update_incidents(self, incidents: Sequence[Incident]) -> None:
        """Write what people change on incidents: status, resolved_at, updated_at,
        problem_id, acknowledged_at/by, assignee, resolved_by and resolution. The fields
        correlation maintains (alerts, root cause, priority) are left as they are."""

    def load_problems(self, ids: Iterable[str]) -> dict[str, Problem]: ...

    def save_problem(self, problem: Problem) -> None:
        """Insert or replace the problem record (its incident links are separate)."""

    def next_problem_number(self) -> int: ...

    def link_incidents(self, problem_id: str, incident_ids: Sequence[str], at: dt.datetime) -> None:
        """Record incidents as instances of the problem (idempotent); it does not touch the
        incidents' own ``problem_id`` (``update_incidents`` does)."""

    def save_change(self, change: Change) -> None:
        """Insert or replace the change with its CIs."""

    def next_change_number(self) -> int: ...

    def append_worklog(self, entries: Sequence[WorklogEntry]) -> None: ...

    def touched(self) -> None:
        """Tell correlation workers that incidents or problems changed under them."""


class TicketStore(Protocol):
    def unit(self) -> AbstractContextManager[TicketUnit]: ...

    def get_incidents(self, ids: Iterable[str]) -> dict[str, Incident]: ...

    def find_incidents(self, query: IncidentFilter) -> list[Incident]:
        """Newest (highest number) first, at most ``query.limit``."""

    def open_incidents_of(self, ci_ids: Iterable[str]) -> dict[str, list[Incident]]:
        """For each CI, the open incidents whose root or any alert is on it, newest first;
        CIs without any are absent."""

    def incidents_of(self, ci_ids: Iterable[str]) -> list[Incident]:
        """Every incident (open or not) whose root or any alert is on one of the CIs."""

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

    def get_changes(self, ids: Iterable[str]) -> dict[str, Change]: ...

    def find_changes(self, query: ChangeFilter) -> list[Change]:
        """Newest first, at most ``query.limit``."""

    def worklog(self, ticket_ids: Iterable[str]) -> dict[str, list[WorklogEntry]]:
        """Each ticket's worklog in order; tickets without entries are absent."""

    def incidents_updated_since(self, since: dt.datetime, limit: int) -> list[Incident]:
        """Incidents whose ``updated_at`` is at or after ``since``, oldest update first."""

    def last_incident_number(self) -> int:
        """The highest incident number so far (0 before the first)."""
