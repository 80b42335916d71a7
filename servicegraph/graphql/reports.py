"""The desk's reports in GraphQL: ``report(name, from, to, by, per, timezone, filter)``,
the same reports as ``servicegraph report`` (``services.desk.reports``; every figure
defined in ``servicegraph.ticketing.reports``).

Who may read them: every token that may read tickets (``read``: viewers, agents, group
managers, engineers, admins), as the desk's other reads. A report shows counts and
durations of tickets that token can already list one by one, so it needs no right of its
own; integration tokens, which read nothing, cannot.

A bad argument is an error naming it (``from``, ``to``, ``by``, ``per``, ``timezone``,
``filter.priority``) with the code BAD_USER_INPUT.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.graphql.base import query_field
from servicegraph.graphql.context import Info
from servicegraph.graphql.reports_types import (
    ReportFilterInput,
    ReportGroupByEnum,
    ReportNameEnum,
    ReportPeriodEnum,
    ReportType,
)
from servicegraph.ticketing.reports import report_query


@strawberry.type
class ReportsQuery:
    @query_field(
        description="A report of the desk's tickets (README 'Reports' defines each figure): "
        "`from`/`to` are dates (2026-03-01; `to` includes that day) or ISO times, applied "
        "to the instant the report counts at (`countedAt`); `per` cuts it into days, ISO "
        "weeks or months of `timezone` (default UTC)."
    )
    def report(
        self,
        info: Info,
        name: ReportNameEnum,  # type: ignore[valid-type]
        start: Annotated[str | None, strawberry.argument(name="from")] = None,
        end: Annotated[str | None, strawberry.argument(name="to")] = None,
        by: ReportGroupByEnum | None = None,  # type: ignore[valid-type]
        per: ReportPeriodEnum | None = None,  # type: ignore[valid-type]
        timezone: str | None = None,
        filter: ReportFilterInput | None = None,
    ) -> ReportType:
        f = filter or ReportFilterInput()
        try:
            query = report_query(
                name,
                start=start,
                end=end,
                by=by,
                per=per,
                timezone=timezone,
                group=f.group,
                service=f.service,
                priority=f.priority,
                type=f.ticket_type,
                channel=f.channel,
            )
        except ValidationFailed as exc:
            if exc.field == "priority":  # the one filter that can be wrong: name its path
                raise ValidationFailed(exc.reason, field="filter.priority") from exc
            raise
        return ReportType.of(info.context.services.desk.reports.run(query))
