"""GraphQL types of the desk's reports (``servicegraph.ticketing.reports``): a report and
its rows, one row type per report behind the ``ReportRow`` interface (its period and
group), durations in seconds and shares between 0 and 1, null where no ticket counts."""

from __future__ import annotations

import datetime as dt

import strawberry

from servicegraph.graphql.desk_types import ChannelEnum, TicketTypeEnum
from servicegraph.ticketing.report_periods import Per
from servicegraph.ticketing.reports import (
    BacklogRow,
    ClockCompliance,
    ComplianceRow,
    DurationRow,
    Durations,
    GroupBy,
    ReassignmentRow,
    ReopenRow,
    Report,
    ReportName,
    Row,
    SourceSlaRow,
    VolumeRow,
)

ReportNameEnum = strawberry.enum(
    ReportName,
    name="ReportName",
    description="VOLUME, BACKLOG, MTTA, MTTR, SLA (compliance), REASSIGNMENTS, REOPENS, "
    "SOURCE_SLA (the source tool's made_sla verdict); README 'Reports' defines each figure.",
)
ReportGroupByEnum = strawberry.enum(GroupBy, name="ReportGroupBy")
ReportPeriodEnum = strawberry.enum(
    Per, name="ReportPeriod", description="Days, ISO weeks (Monday to Sunday) or months."
)


@strawberry.input(description="Which tickets a report counts; every field given must hold.")
class ReportFilterInput:
    group: str | None = strawberry.field(default=None, description="An assignment group.")
    service: str | None = None
    priority: int | None = None
    ticket_type: TicketTypeEnum | None = strawberry.field(default=None, name="type")  # type: ignore[valid-type]
    channel: ChannelEnum | None = None  # type: ignore[valid-type]


@strawberry.interface(description="One row of a report: its period and group.")
class ReportRow:
    period: str | None = strawberry.field(
        description="2026-03-02 (a day), 2026-W10 (an ISO week), 2026-03 (a month); null "
        "without `per`."
    )
    key: str | None = strawberry.field(
        description="The value of the `by` field; null: the tickets without one (or no `by`)."
    )


@strawberry.type(description="A distribution of durations, in seconds.")
class DurationFigures:
    count: int
    mean_seconds: float | None
    median_seconds: float | None
    p90_seconds: float | None = strawberry.field(
        description="90th percentile, linear between the closest ranks."
    )
    max_seconds: float | None

    @classmethod
    def of(cls, d: Durations) -> DurationFigures:
        return cls(
            count=d.count,
            mean_seconds=d.mean_s,
            median_seconds=d.median_s,
            p90_seconds=d.p90_s,
            max_seconds=d.max_s,
        )


@strawberry.type(description="Tickets opened.")
class VolumeReportRow(ReportRow):
    opened: int


@strawberry.type(description="Tickets open at `at`, by age then.")
class BacklogReportRow(ReportRow):
    at: dt.datetime = strawberry.field(description="The instant the backlog is taken at.")
    open: int
    under_1d: int
    d1_to_3: int
    d3_to_7: int
    d7_to_30: int
    over_30d: int


@strawberry.type(description="MTTA or MTTR: calendar time and the SLA clock's business time.")
class DurationReportRow(ReportRow):
    calendar: DurationFigures
    business: DurationFigures = strawberry.field(
        description="The SLA clock's elapsed business time (pauses excluded), of the tickets "
        "a policy covers."
    )


@strawberry.type(description="One clock's compliance.")
class ClockComplianceFigures:
    met: int
    missed: int
    compliance: float | None = strawberry.field(description="met / (met + missed).")
    breached_running: int = strawberry.field(
        description="Clocks still running that have breached (neither met nor missed yet)."
    )

    @classmethod
    def of(cls, c: ClockCompliance) -> ClockComplianceFigures:
        return cls(
            met=c.met, missed=c.missed, compliance=c.compliance, breached_running=c.breached_running
        )


@strawberry.type(description="SLA compliance of the response and the resolution clocks.")
class ComplianceReportRow(ReportRow):
    response: ClockComplianceFigures
    resolution: ClockComplianceFigures


@strawberry.type(description="Reassignments (group changes after the first assignment).")
class ReassignmentReportRow(ReportRow):
    tickets: int
    reassigned: int = strawberry.field(description="Tickets reassigned at least once.")
    mean: float | None
    max: int | None


@strawberry.type(description="Resolved tickets and those of them ever reopened.")
class ReopenReportRow(ReportRow):
    resolved: int
    reopened: int
    rate: float | None


@strawberry.type(description="Tickets carrying the source tool's made_sla verdict.")
class SourceSlaReportRow(ReportRow):
    tickets: int
    made: int
    share: float | None


ROW_TYPES = (
    VolumeReportRow,
    BacklogReportRow,
    DurationReportRow,
    ComplianceReportRow,
    ReassignmentReportRow,
    ReopenReportRow,
    SourceSlaReportRow,
)


def row_of(r: Row) -> ReportRow:
    if isinstance(r, VolumeRow):
        return VolumeReportRow(period=r.period, key=r.key, opened=r.opened)
    if isinstance(r, BacklogRow):
        return BacklogReportRow(
            period=r.period,
            key=r.key,
            at=r.at,
            open=r.open,
            under_1d=r.under_1d,
            d1_to_3=r.d1_to_3,
            d3_to_7=r.d3_to_7,
            d7_to_30=r.d7_to_30,
            over_30d=r.over_30d,
        )
    if isinstance(r, DurationRow):
        return DurationReportRow(
            period=r.period,
            key=r.key,
            calendar=DurationFigures.of(r.calendar),
            business=DurationFigures.of(r.business),
        )
    if isinstance(r, ComplianceRow):
        return ComplianceReportRow(
            period=r.period,
            key=r.key,
            response=ClockComplianceFigures.of(r.response),
            resolution=ClockComplianceFigures.of(r.resolution),
        )
    if isinstance(r, ReassignmentRow):
        return ReassignmentReportRow(
            period=r.period,
            key=r.key,
            tickets=r.tickets,
            reassigned=r.reassigned,
            mean=r.mean,
            max=r.max,
        )
    if isinstance(r, ReopenRow):
        return ReopenReportRow(
            period=r.period, key=r.key, resolved=r.resolved, reopened=r.reopened, rate=r.rate
        )
    assert isinstance(r, SourceSlaRow)
    return SourceSlaReportRow(
        period=r.period, key=r.key, tickets=r.tickets, made=r.made, share=r.share
    )


@strawberry.type(name="Report", description="A report of the desk's tickets and its rows.")
class ReportType:
    name: ReportNameEnum  # type: ignore[valid-type]
    title: str
    counted_at: str = strawberry.field(
        description="The instant the window and periods apply to (opened, resolved, ...)."
    )
    start: dt.datetime | None = strawberry.field(name="from", description="Inclusive.")
    end: dt.datetime | None = strawberry.field(name="to", description="Exclusive.")
    by: ReportGroupByEnum | None  # type: ignore[valid-type]
    per: ReportPeriodEnum | None  # type: ignore[valid-type]
    timezone: str
    generated_at: dt.datetime
    rows: list[ReportRow] = strawberry.field(description="By period, then group.")

    @classmethod
    def of(cls, report: Report) -> ReportType:
        q = report.query
        return cls(
            name=q.name,
            title=report.definition.title,
            counted_at=report.definition.instant,
            start=q.start,
            end=q.end,
            by=q.by,
            per=q.per,
            timezone=q.timezone,
            generated_at=report.generated_at,
            rows=[row_of(r) for r in report.rows],
        )
