"""The read port of the desk's reports (``ticketing.reports`` defines every figure).

Kept apart from ``ports.py``: reports only read, from the ticket table and the SLA
projection's ``ticket_sla`` rows, and never write anything. An adapter aggregates in its
query language what it can (counts, sums, shares: one row per period and group) and hands
back only the durations a median needs, grouped.

Every method takes a validated ``ReportQuery`` and applies its window (to the instant the
report's definition names), filters and grouping; ``period`` is the label of
``report_periods.label`` for the query's ``per`` and time zone, ``None`` without ``per``.
Adapters raise ``StoreError`` chained to the driver's exception.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from servicegraph.ticketing.reports import (
    ComplianceRow,
    ReassignmentRow,
    ReopenRow,
    ReportFilter,
    ReportQuery,
    SourceSlaRow,
    VolumeRow,
)

Group = tuple[str | None, str | None]  # (period, key)


@dataclass
class DurationSamples:
    """The durations of one group, in seconds, unsorted: calendar time of every ticket
    that counts, business time of those an SLA clock measured."""

    calendar: list[float] = field(default_factory=list)
    business: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Interval:
    """A ticket's time in the backlog: from ``opened`` to ``ended`` (None: still open)."""

    key: str | None
    opened: dt.datetime
    ended: dt.datetime | None


@dataclass(frozen=True)
class TicketGauges:
    """What ``/metrics`` shows of the desk, as of one reading."""

    # (assignment group, priority) -> open tickets
    open: Mapping[tuple[str | None, int], int]
    # (clock, assignment group) -> running clocks of open tickets that have breached
    breached_running: Mapping[tuple[str, str | None], int]
    # clock -> tickets whose clock breached (running or stopped), of every ticket
    breached_tickets: Mapping[str, int]


class ReportReader(Protocol):
    """One consistent reading of the store (``ReportStore.reading``)."""

    def volume(self, query: ReportQuery) -> list[VolumeRow]:
        """Tickets opened, per period and group."""
        ...

    def durations(self, query: ReportQuery, clock: str) -> dict[Group, DurationSamples]:
        """``clock`` "response" (MTTA) or "resolution" (MTTR): the durations per period
        and group (``reports`` module docstring)."""
        ...

    def compliance(self, query: ReportQuery, now: dt.datetime) -> list[ComplianceRow]:
        """Met and missed stopped clocks, and running clocks breached as of ``now``."""
        ...

    def reassignments(self, query: ReportQuery) -> list[ReassignmentRow]: ...

    def reopens(self, query: ReportQuery) -> list[ReopenRow]: ...

    def source_sla(self, query: ReportQuery) -> list[SourceSlaRow]: ...

    def earliest_opened(self, filter: ReportFilter) -> dt.datetime | None:
        """When the first ticket the filter keeps was opened (None: no such ticket)."""
        ...

    def intervals(
        self, query: ReportQuery, since: dt.datetime, until: dt.datetime
    ) -> Iterator[Interval]:
        """The backlog intervals, per group key, of the tickets opened before ``until``
        that had not left the backlog at ``since``, in no particular order."""
        ...

    def gauges(self, now: dt.datetime) -> TicketGauges: ...


class ReportStore(Protocol):
    def reading(self) -> AbstractContextManager[ReportReader]:
        """A reader whose queries all see the same committed state (one read
        transaction), so that the parts of one report agree."""
        ...
