"""The desk's reports: what each one counts, precisely, and the rows it answers with.

Every figure is defined here once (the README's "Reports" section says the same in prose);
``storage/sqlite/reports.py`` computes them in SQL and ``report_service.ReportService``
runs them. The tools this desk is measured against each define "first response" and
"time to resolve" their own way and rarely say how (desk-anchors §7); these definitions
name the instant each figure is taken at and how reopened and cancelled tickets count.

**Instants.**

- *Opened*: ``opened_at``.
- *Responded*: ``first_response_at``, the first instant the requester saw an agent act (a
  reply, work started, a question, the resolution; for monitoring incidents the
  acknowledgement: ``tickets_work.responded``).
- *Resolved* (the resolution instant): for a ticket whose status is resolved or closed,
  its **final** ``resolved_at``, or ``closed_at`` when it was closed without a resolution.
  A reopened ticket clears ``resolved_at``, so it counts once, by its last resolution, and
  not at all while it is open again. Cancelled tickets are never resolved: they count in
  volumes, backlogs, reassignments and the source's SLA share, and in nothing that is
  about resolving.
- *Left the backlog*: the resolution instant; for a cancelled ticket ``closed_at``, else
  its last update (the desk records no instant of its own for a cancellation).

**Reports** (``ReportName``) and the instant the window and the periods apply to:

- ``volume`` (opened): tickets opened.
- ``backlog`` (the end of each period, or the end of the window, or now): tickets open at
  that instant (opened at or before it, not yet out of the backlog), and how old they were
  then: under 1 day, 1-3, 3-7, 7-30 days, over 30 days (calendar time, each bucket
  including its lower bound). A ticket reopened counts as open from its opening to its
  last resolution, the time between a first resolution and the reopen included: the
  ticket row keeps only its last resolution.
- ``mtta`` (responded): time to respond, ``first_response_at - opened_at`` in calendar
  time; in business time the response clock's elapsed time (``ticket_sla``: the policy's
  calendar, pauses excluded) of the tickets whose response clock has stopped.
- ``mttr`` (resolved): time to resolve, resolution instant - ``opened_at`` in calendar
  time (time spent resolved before a reopen included); in business time the resolution
  clock's elapsed time (pauses and time spent resolved before a reopen excluded, as the
  clock continues on reopen) of the resolved tickets a policy covers.
- ``sla`` (resolved): for each clock, compliance = met / (met + missed) of the clocks of
  the tickets resolved in the window (both clocks of one population, as GLPI's statistics
  count solved tickets: "of the tickets resolved in March, how many were answered and
  resolved in time"; cancelled tickets are never resolved, so never count, as ServiceNow
  cancels their SLAs); beside it, ``breached_running`` (by the breach instant): clocks of
  open tickets still running that have breached, counted apart since they are neither met
  nor missed yet. A running clock counts as breached once its due instant has passed and
  it is not paused, even before the SLA job next evaluates it.
- ``reassignments`` (opened): tickets, mean and highest ``reassignment_count`` (group
  changes after the first assignment, ServiceNow's count) and how many were reassigned.
- ``reopens`` (resolved): resolved tickets, how many of them were ever reopened
  (``reopen_count > 0``) and that share (the reopen rate).
- ``source-sla`` (opened): for imported tickets, the share of those carrying the source
  tool's own verdict ``custom_fields["made_sla"]`` (a JSON boolean) for which it is true.

Durations are seconds: count, mean, median (the middle value, or the mean of the two
middle ones) and the 90th percentile (linear between the closest ranks, as pandas and
numpy compute it by default), highest; ``None`` where no ticket counts.

**Grouping** (``--by``): service, category (the full path), group, agent, channel, ci,
priority, type, organisation; a ticket without the field is in the ``None`` group. By
``ci`` a ticket counts once for each CI it concerns (its root cause and the CIs people
said it affects), so the groups may add up to more than the tickets. **Filters**: group,
service, priority, type, channel, each an exact value; every filter given must hold.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.model import Channel, TicketType
from servicegraph.ticketing.report_periods import Per, instant, zone


class ReportName(enum.StrEnum):
    VOLUME = "volume"
    BACKLOG = "backlog"
    MTTA = "mtta"
    MTTR = "mttr"
    SLA = "sla"
    REASSIGNMENTS = "reassignments"
    REOPENS = "reopens"
    SOURCE_SLA = "source-sla"


class GroupBy(enum.StrEnum):
    """What a report's rows are grouped by (``--by``)."""

    SERVICE = "service"
    CATEGORY = "category"
    GROUP = "group"  # the assignment group
    AGENT = "agent"  # the assignee
    CHANNEL = "channel"
    CI = "ci"
    PRIORITY = "priority"
    TYPE = "type"
    ORGANISATION = "organisation"


@dataclass(frozen=True)
class Definition:
    name: ReportName
    title: str
    instant: str  # what the window and the periods apply to
    summary: str


DEFINITIONS: dict[ReportName, Definition] = {
    d.name: d
    for d in (
        Definition(ReportName.VOLUME, "Tickets opened", "opened", "tickets opened"),
        Definition(
            ReportName.BACKLOG,
            "Backlog and ageing",
            "each period's end",
            "tickets open at the end of each period (or of the window, or now), by age",
        ),
        Definition(
            ReportName.MTTA,
            "Time to respond",
            "responded",
            "first response - opened, calendar and business time",
        ),
        Definition(
            ReportName.MTTR,
            "Time to resolve",
            "resolved",
            "final resolution - opened, calendar and business time",
        ),
        Definition(
            ReportName.SLA,
            "SLA compliance",
            "resolved (running breaches: breached)",
            "met / (met + missed) per clock of the tickets resolved, and running breaches",
        ),
        Definition(
            ReportName.REASSIGNMENTS,
            "Reassignments",
            "opened",
            "mean and highest reassignment count",
        ),
        Definition(
            ReportName.REOPENS, "Reopen rate", "resolved", "share of resolved tickets reopened"
        ),
        Definition(
            ReportName.SOURCE_SLA,
            "Source tool's SLA verdict",
            "opened",
            "share of tickets whose custom field made_sla is true",
        ),
    )
}


def _choice(kind: type[enum.StrEnum], value: object, field: str, what: str) -> Any:
    if isinstance(value, kind):
        return value
    text = str(value).strip().lower() if value is not None else ""
    try:
        return kind(text)
    except ValueError:
        known = ", ".join(k.value for k in kind)
        raise ValidationFailed(f"unknown {what} '{value}' (known: {known})", field=field) from None


@dataclass(frozen=True)
class ReportFilter:
    """Which tickets a report counts; every field given must hold."""

    group: str | None = None
    service: str | None = None
    priority: int | None = None
    type: TicketType | None = None
    channel: Channel | None = None


@dataclass(frozen=True)
class ReportQuery:
    """One report to run, validated (``report_query`` builds it from user input)."""

    name: ReportName
    start: dt.datetime | None = None  # UTC, inclusive
    end: dt.datetime | None = None  # UTC, exclusive
    by: GroupBy | None = None
    per: Per | None = None
    timezone: str = "UTC"
    filter: ReportFilter = field(default_factory=ReportFilter)

    @property
    def tz(self) -> dt.tzinfo:
        return zone(self.timezone)


def report_query(
    name: str | ReportName,
    *,
    start: str | dt.datetime | dt.date | None = None,
    end: str | dt.datetime | dt.date | None = None,
    by: str | GroupBy | None = None,
    per: str | Per | None = None,
    timezone: str | None = None,
    group: str | None = None,
    service: str | None = None,
    priority: int | str | None = None,
    type: str | TicketType | None = None,
    channel: str | Channel | None = None,
) -> ReportQuery:
    """A validated query from what a user typed; a bad part raises ``ValidationFailed``
    naming it: ``name`` (unknown report), ``by`` (unknown field), ``per``, ``timezone``,
    ``from`` / ``to`` (not a date or time, or from not before to), ``priority``, ``type``,
    ``channel``."""
    report = _choice(ReportName, name, "name", "report")
    tz = zone(timezone)
    begins = instant(start, tz, field="from", end=False) if start is not None else None
    ends = instant(end, tz, field="to", end=True) if end is not None else None
    if begins is not None and ends is not None and begins >= ends:
        raise ValidationFailed(
            f"from {_shown(start)} is not before to {_shown(end)}: the window is empty",
            field="from",
        )
    return ReportQuery(
        name=report,
        start=begins,
        end=ends,
        by=_choice(GroupBy, by, "by", "field") if by is not None else None,
        per=_choice(Per, per, "per", "period") if per is not None else None,
        timezone="UTC" if tz is dt.UTC else str(timezone).strip(),
        filter=ReportFilter(
            group=_text(group),
            service=_text(service),
            priority=_priority(priority),
            type=_choice(TicketType, type, "type", "ticket type") if type is not None else None,
            channel=_choice(Channel, channel, "channel", "channel")
            if channel is not None
            else None,
        ),
    )


def _shown(value: object) -> str:
    return value.isoformat() if isinstance(value, dt.date) else f"'{value}'"


def _text(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


def _priority(value: int | str | None) -> int | None:
    if value is None:
        return None
    text = str(value).strip().upper().removeprefix("P")
    if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= 5:
        raise ValidationFailed(f"'{value}' is not a priority 1..5", field="priority")
    return int(text)


# -- figures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Durations:
    """A distribution of durations in seconds (``None`` where no ticket counts)."""

    count: int = 0
    mean_s: float | None = None
    median_s: float | None = None
    p90_s: float | None = None
    max_s: float | None = None


def quantile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted values, linear between the closest ranks (pandas'
    and numpy's default, "type 7")."""
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(values: Iterable[float]) -> Durations:
    ordered = sorted(values)
    if not ordered:
        return Durations()
    return Durations(
        count=len(ordered),
        mean_s=math.fsum(ordered) / len(ordered),
        median_s=quantile(ordered, 0.5),
        p90_s=quantile(ordered, 0.9),
        max_s=ordered[-1],
    )


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# -- rows: one type per report, each keyed by its period and group -------------------------


@dataclass(frozen=True)
class VolumeRow:
    period: str | None
    key: str | None
    opened: int


AGEING = ("under_1d", "d1_to_3", "d3_to_7", "d7_to_30", "over_30d")
AGEING_BOUNDS_S = (0, 86_400, 3 * 86_400, 7 * 86_400, 30 * 86_400)  # each bucket's lower bound


@dataclass(frozen=True)
class BacklogRow:
    period: str | None
    key: str | None
    at: dt.datetime  # the instant the backlog is taken at
    open: int
    under_1d: int = 0
    d1_to_3: int = 0
    d3_to_7: int = 0
    d7_to_30: int = 0
    over_30d: int = 0


@dataclass(frozen=True)
class DurationRow:
    """MTTA or MTTR of a group: calendar time, and the SLA clock's business time."""

    period: str | None
    key: str | None
    calendar: Durations
    business: Durations


@dataclass(frozen=True)
class ClockCompliance:
    met: int = 0
    missed: int = 0
    breached_running: int = 0

    @property
    def compliance(self) -> float | None:
        """met / (met + missed); None when no clock stopped."""
        return share(self.met, self.met + self.missed)


@dataclass(frozen=True)
class ComplianceRow:
    period: str | None
    key: str | None
    response: ClockCompliance
    resolution: ClockCompliance


@dataclass(frozen=True)
class ReassignmentRow:
    period: str | None
    key: str | None
    tickets: int
    reassigned: int  # tickets reassigned at least once
    mean: float | None
    max: int | None


@dataclass(frozen=True)
class ReopenRow:
    period: str | None
    key: str | None
    resolved: int
    reopened: int

    @property
    def rate(self) -> float | None:
        return share(self.reopened, self.resolved)


@dataclass(frozen=True)
class SourceSlaRow:
    period: str | None
    key: str | None
    tickets: int  # carrying the source's made_sla verdict
    made: int

    @property
    def share(self) -> float | None:
        return share(self.made, self.tickets)


Row = (
    VolumeRow
    | BacklogRow
    | DurationRow
    | ComplianceRow
    | ReassignmentRow
    | ReopenRow
    | SourceSlaRow
)


@dataclass(frozen=True)
class Report:
    query: ReportQuery
    generated_at: dt.datetime
    rows: tuple[Row, ...]

    @property
    def definition(self) -> Definition:
        return DEFINITIONS[self.query.name]


def order_key(row: Row) -> tuple[str, bool, str]:
    """Rows by period, then group, the tickets without the field last."""
    return (row.period or "", row.key is None, row.key or "")


def flat(row: Row) -> dict[str, Any]:
    """The row as one level of named figures (CSV columns, table cells), in a fixed order."""
    head: dict[str, Any] = {"period": row.period, "key": row.key}
    if isinstance(row, VolumeRow):
        return head | {"opened": row.opened}
    if isinstance(row, BacklogRow):
        return head | {"at": row.at, "open": row.open} | {a: getattr(row, a) for a in AGEING}
    if isinstance(row, DurationRow):
        figures: dict[str, Any] = {}
        for part, d in (("", row.calendar), ("business_", row.business)):
            figures |= {
                f"{part}count": d.count,
                f"{part}mean_s": d.mean_s,
                f"{part}median_s": d.median_s,
                f"{part}p90_s": d.p90_s,
                f"{part}max_s": d.max_s,
            }
        return head | figures
    if isinstance(row, ComplianceRow):
        figures = {}
        for clock, c in (("response", row.response), ("resolution", row.resolution)):
            figures |= {
                f"{clock}_met": c.met,
                f"{clock}_missed": c.missed,
                f"{clock}_compliance": c.compliance,
                f"{clock}_breached_running": c.breached_running,
            }
        return head | figures
    if isinstance(row, ReassignmentRow):
        return head | {
            "tickets": row.tickets,
            "reassigned": row.reassigned,
            "mean": row.mean,
            "max": row.max,
        }
    if isinstance(row, ReopenRow):
        return head | {"resolved": row.resolved, "reopened": row.reopened, "rate": row.rate}
    return head | {"tickets": row.tickets, "made": row.made, "share": row.share}


_BLANK: dict[ReportName, Row] = {
    ReportName.VOLUME: VolumeRow(None, None, 0),
    ReportName.BACKLOG: BacklogRow(None, None, dt.datetime(1970, 1, 1, tzinfo=dt.UTC), 0),
    ReportName.MTTA: DurationRow(None, None, Durations(), Durations()),
    ReportName.MTTR: DurationRow(None, None, Durations(), Durations()),
    ReportName.SLA: ComplianceRow(None, None, ClockCompliance(), ClockCompliance()),
    ReportName.REASSIGNMENTS: ReassignmentRow(None, None, 0, 0, None, None),
    ReportName.REOPENS: ReopenRow(None, None, 0, 0),
    ReportName.SOURCE_SLA: SourceSlaRow(None, None, 0, 0),
}


def columns(name: ReportName) -> list[str]:
    """The names ``flat`` gives the figures of ``name``'s rows, in order."""
    return list(flat(_BLANK[name]))
