"""The storage port of monitoring: the durable event inbox, alerts, incidents, problems.

Same rules as the graph store: coarse batch operations; adapters raise ``StoreUnavailable``
or ``StoreError`` chained to the driver's exception.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import NamedTuple, Protocol

from servicegraph.events.model import Alert, Event
from servicegraph.ticketing.model import Incident, IncidentStatus, Problem


class Claim(NamedTuple):
    read: int  # inbox events consumed, redeliveries included
    events: list[Event]  # those to correlate


class CorrelationUnit(Protocol):
    """One atomic step of the correlator. Units are serialised across processes, so two
    workers never process the same event, and a worker killed mid-unit leaves the inbox
    as it was: its events are processed again, once, by whoever comes next."""

    def state_version(self) -> int:
        """A counter every unit that changes alerts or incidents advances; a worker whose
        cached state was written at another version must reload it."""

    def advance_state_version(self) -> int: ...

    def claim_pending(self, limit: int) -> Claim:
        """The next ``limit`` unprocessed inbox events, oldest first, less redeliveries of
        events already correlated."""

    def mark_processed(self, at: dt.datetime) -> None:
        """Everything claimed in this unit is processed (committed with the unit)."""

    def load_alerts(self, fingerprints: Iterable[str]) -> dict[str, Alert]: ...

    def active_incidents(self, resolved_since: dt.datetime) -> list[Incident]:
        """Open incidents, and those resolved at or after ``resolved_since`` (which may
        reopen)."""

    def alerts_of(self, incident_ids: Iterable[str]) -> dict[str, list[Alert]]: ...

    def save_alerts(self, alerts: Sequence[Alert]) -> None: ...

    def save_incidents(self, incidents: Sequence[Incident]) -> None:
        """Insert or replace. Save an incident's root alert first (in this unit or an
        earlier one): the SQLite adapter files the incident under its root alert's
        ``source/name`` when it is saved, which ``incidents_named`` and
        ``count_roots_named`` search (the contract suite's strict xfail shows the gap)."""

    def next_incident_number(self) -> int: ...

    def incidents_with_root(self, ci_ids: Iterable[str], since: dt.datetime) -> list[Incident]:
        """Incidents whose root CI is one of ``ci_ids``, opened at or after ``since``."""

    def incidents_named(self, signature: str, since: dt.datetime) -> list[str]:
        """Ids of incidents opened since ``since`` whose root alert has ``signature`` and
        whose root CI is known."""

    def count_roots_named(self, signature: str, since: dt.datetime) -> int:
        """How many distinct root CIs the incidents of ``incidents_named`` have."""

    def find_problem(self, signature: str) -> Problem | None:
        """The problem with ``signature``, without its ``incident_ids`` (not needed here,
        and a recurring problem collects many)."""

    def save_problem(self, problem: Problem) -> None: ...

    def link_problem(self, problem_id: str, incident_ids: Sequence[str], at: dt.datetime) -> None:
        """Link incidents to a problem (idempotent) and set their ``problem_id``."""

    def next_problem_number(self) -> int: ...


class IncidentStore(Protocol):
    def close(self) -> None: ...

    def ping(self) -> None:
        """Raise StoreUnavailable or StoreError unless incidents (and the tickets and
        tokens kept beside them) can be read now."""

    def check_inbox(self, timeout: float) -> None:
        """Raise StoreError unless events can be appended now: the last append did not
        fail (a full disk, a corrupt file), and the inbox can be locked for writing within
        ``timeout`` seconds."""

    def append_inbox(self, events: Sequence[Event], received_at: dt.datetime) -> int:
        """Persist events durably before returning; returns how many were stored.
        Redeliveries (an ``event_id`` seen before) recognised at once are not stored; the
        others are dropped when claimed, so that every event takes effect once."""

    def unit(self) -> AbstractContextManager[CorrelationUnit]: ...

    def pending_count(self) -> int: ...

    def latest_events(self, limit: int) -> list[tuple[int, Event, bool]]:
        """The last events received, newest first: (number, event, correlated yet)."""

    def inbox_lag(self) -> tuple[int, dt.datetime | None]:
        """Events waiting, and when the oldest of them was received."""

    def prune_inbox(self, before: dt.datetime) -> int:
        """Delete processed events received before ``before``; returns how many. A
        redelivery of a pruned event would be processed again: keep the retention longer
        than any sender retries."""

    def get_incident(self, incident_id: str) -> Incident | None: ...

    def list_incidents(
        self,
        *,
        status: IncidentStatus | None = None,
        ci_id: str | None = None,
        since: dt.datetime | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        """Newest first. ``ci_id`` matches the root CI or any alert's CI."""

    def incident_alerts(self, incident_id: str) -> list[Alert]: ...

    def unmapped_alerts(self, limit: int = 100) -> list[Alert]:
        """Alerts whose event named no known CI, newest first: kept, never dropped."""

    def list_problems(self, limit: int = 100) -> list[Problem]: ...

    def counts(self) -> dict[str, int]: ...
