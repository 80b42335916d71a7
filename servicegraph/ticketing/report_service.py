"""Running the desk's reports (``ticketing.reports`` defines them) over the read port
(``report_ports.ReportStore``), and the ticket gauges of ``/metrics``.

The store aggregates what SQL can; here are the parts that need the whole distribution or
the time axis: medians and percentiles of the durations it streams, and the backlog at the
end of each period, which a ticket's interval in the backlog (opened .. left) says for
every period at once (``backlog_rows``: one pass over the intervals, a difference array
per group and age bucket, so a year of days costs what one day does).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Iterable, Sequence

from servicegraph.cmdb.model import utcnow
from servicegraph.ticketing.report_periods import cut
from servicegraph.ticketing.report_ports import Interval, ReportReader, ReportStore, TicketGauges
from servicegraph.ticketing.reports import (
    AGEING,
    AGEING_BOUNDS_S,
    BacklogRow,
    DurationRow,
    Report,
    ReportName,
    ReportQuery,
    Row,
    order_key,
    summarise,
)


class ReportService:
    def __init__(self, store: ReportStore, *, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._store = store
        self.clock = clock

    def run(self, query: ReportQuery) -> Report:
        """The report ``query`` names, its rows ordered by period, then group."""
        now = self.clock()
        with self._store.reading() as reader:
            rows = self._rows(reader, query, now)
        return Report(query=query, generated_at=now, rows=tuple(sorted(rows, key=order_key)))

    def gauges(self) -> TicketGauges:
        """Open tickets and breached clocks now (for ``/metrics``)."""
        with self._store.reading() as reader:
            return reader.gauges(self.clock())

    def _rows(self, reader: ReportReader, query: ReportQuery, now: dt.datetime) -> list[Row]:
        name = query.name
        if name is ReportName.VOLUME:
            return list(reader.volume(query))
        if name in (ReportName.MTTA, ReportName.MTTR):
            clock = "response" if name is ReportName.MTTA else "resolution"
            return [
                DurationRow(period, key, summarise(s.calendar), summarise(s.business))
                for (period, key), s in reader.durations(query, clock).items()
            ]
        if name is ReportName.SLA:
            return list(reader.compliance(query, now))
        if name is ReportName.REASSIGNMENTS:
            return list(reader.reassignments(query))
        if name is ReportName.REOPENS:
            return list(reader.reopens(query))
        if name is ReportName.SOURCE_SLA:
            return list(reader.source_sla(query))
        return list(self._backlog(reader, query, now))

    def _backlog(
        self, reader: ReportReader, query: ReportQuery, now: dt.datetime
    ) -> list[BacklogRow]:
        points = measuring_points(query, now, lambda: reader.earliest_opened(query.filter))
        if not points:
            return []
        intervals = reader.intervals(query, points[0][1], points[-1][1])
        return backlog_rows(intervals, points)


def measuring_points(
    query: ReportQuery, now: dt.datetime, earliest: Callable[[], dt.datetime | None]
) -> list[tuple[str | None, dt.datetime]]:
    """The (period, instant) pairs a backlog is taken at: without ``per`` the end of the
    window, or now; with ``per`` the end of each period of the window (from the first
    ticket's opening when the window has no start), or now for a period not over yet.
    Periods that begin after now are left out: nothing can be said of them yet."""
    end = min(query.end, now) if query.end is not None else now
    if query.per is None:
        return [(None, end)]
    start = query.start if query.start is not None else earliest()
    if start is None or start >= end:
        return []
    return [(label, min(stop, end)) for label, _, stop in cut(start, end, query.per, query.tz)]


def backlog_rows(
    intervals: Iterable[Interval], points: Sequence[tuple[str | None, dt.datetime]]
) -> list[BacklogRow]:
    """The backlog at each point: per group key, the intervals open then (opened at or
    before it, not ended at or before it) by age then (``reports.AGEING``)."""
    instants = [at for _, at in points]
    n = len(instants)
    bounds = [dt.timedelta(seconds=s) for s in AGEING_BOUNDS_S]
    diffs: dict[str | None, list[list[int]]] = {}
    for iv in intervals:
        diff = diffs.get(iv.key)
        if diff is None:
            diff = diffs[iv.key] = [[0] * (n + 1) for _ in AGEING]
        for b, lower in enumerate(bounds):
            # the points at which the ticket is open and its age is in bucket b
            first = bisect.bisect_left(instants, iv.opened + lower)
            limit = iv.opened + bounds[b + 1] if b + 1 < len(bounds) else None
            if iv.ended is not None and (limit is None or iv.ended <= limit):
                # open while at < ended; at == ended: it has left
                last = bisect.bisect_left(instants, iv.ended)
            elif limit is not None:
                last = bisect.bisect_left(instants, limit)
            else:
                last = n
            if first < last:
                diff[b][first] += 1
                diff[b][last] -= 1
    rows: list[BacklogRow] = []
    for key, diff in diffs.items():
        running = [0] * len(AGEING)
        for i, (period, at) in enumerate(points):
            for b in range(len(AGEING)):
                running[b] += diff[b][i]
            total = sum(running)
            if total:
                rows.append(BacklogRow(period, key, at, total, *running))
    return rows
