"""SQLite adapter of the reports' read port (``servicegraph.ticketing.report_ports``).

Every figure of ``ticketing.reports`` as SQL over the ``incident`` table and the SLA
projection's ``ticket_sla`` rows (read, never written here): one ``GROUP BY period, key``
query per figure where SQL can aggregate it, and for the medians of MTTA and MTTR only the
durations, streamed from the cursor into one compact array per group.

The window is applied to the instant the report's definition names, so that SQLite reads
it through an index: ``incident_opened`` for what counts by opening,
``incident_resolved`` (and ``incident_closing`` for tickets closed without a resolution,
the other half of an OR that SQLite answers with both indexes) for what counts by
resolution. UTC periods are labelled in SQL (``strftime``; an ISO week by its Thursday);
those of another time zone by ``report_periods.label``, registered as a function of the
connection for the query.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from servicegraph.storage.sqlite.file import from_us, to_us
from servicegraph.storage.sqlite.store import SqliteGraphStore
from servicegraph.ticketing.report_periods import Per, label
from servicegraph.ticketing.report_ports import DurationSamples, Group, Interval, TicketGauges
from servicegraph.ticketing.reports import (
    ClockCompliance,
    ComplianceRow,
    GroupBy,
    ReassignmentRow,
    ReopenRow,
    ReportFilter,
    ReportName,
    ReportQuery,
    SourceSlaRow,
    VolumeRow,
)

ACTIVE = "('new', 'assigned', 'in_progress', 'pending')"
SOLVED = "('resolved', 'closed')"
# the resolution instant of a resolved or closed ticket (``reports`` module docstring)
RESOLVED_AT = "coalesce(i.resolved_at, i.closed_at)"
# when a ticket left the backlog (NULL: it has not)
LEFT_AT = (
    f"CASE WHEN i.status IN {ACTIVE} THEN NULL "
    f"WHEN i.status IN {SOLVED} THEN {RESOLVED_AT} "
    "ELSE coalesce(i.closed_at, i.updated_at) END"
)
CLOCKS = ("response", "resolution")
US = 1_000_000

_KEYS: dict[GroupBy, str] = {
    GroupBy.SERVICE: "i.service",
    GroupBy.CATEGORY: "i.category",
    GroupBy.GROUP: "i.assignment_group",
    GroupBy.AGENT: "i.assignee",
    GroupBy.CHANNEL: "i.channel",
    GroupBy.CI: "c.value",
    GroupBy.PRIORITY: "CAST(i.priority AS TEXT)",
    GroupBy.TYPE: "i.type",
    GroupBy.ORGANISATION: "i.organisation",
}
# every CI a ticket concerns, once each: its root cause and those people said it affects
# (``Incident.ci_ids``); none: one row whose value is NULL
_CI_JOIN = (
    " LEFT JOIN json_each(CASE WHEN i.root_ci_id IS NULL OR i.root_ci_id IN "
    "(SELECT value FROM json_each(i.affected_ci_ids)) THEN i.affected_ci_ids "
    "ELSE json_insert(i.affected_ci_ids, '$[#]', i.root_ci_id) END) AS c"
)


def period_sql(per: Per, instant: str) -> str:
    """The UTC label of the ``per`` period holding ``instant`` (microseconds), in SQL:
    what ``report_periods.label`` gives in UTC."""
    seconds = f"{instant} / {US}"
    if per is Per.DAY:
        return f"strftime('%Y-%m-%d', {seconds}, 'unixepoch')"
    if per is Per.MONTH:
        return f"strftime('%Y-%m', {seconds}, 'unixepoch')"
    # the ISO week is numbered in the year of its Thursday: Sunday on or after, minus 3
    thursday = f"date({seconds}, 'unixepoch', 'weekday 0', '-3 days')"
    return (
        f"(strftime('%Y', {thursday}) || '-W' || "
        f"printf('%02d', (CAST(strftime('%j', {thursday}) AS INTEGER) - 1) / 7 + 1))"
    )


class _Query:
    """One report query's SQL parts: the period and key columns, the joins, and the
    conditions with their parameters (filters, window)."""

    def __init__(self, conn: sqlite3.Connection, query: ReportQuery, instant: str) -> None:
        self.query = query
        self.instant = instant
        self.joins = _CI_JOIN if query.by is GroupBy.CI else ""
        self.key = _KEYS[query.by] if query.by is not None else "NULL"
        if query.per is not None and query.timezone != "UTC":
            per, tz = query.per, query.tz
            conn.create_function(
                "sg_period",
                1,
                lambda us: None if us is None else label(from_us(us), per, tz),
                deterministic=True,
            )
        self.period = self.period_of(instant)
        self.where: list[str] = []
        self.params: list[Any] = []
        self._filters(query.filter)

    def period_of(self, instant: str) -> str:
        """The label of the period holding ``instant`` (NULL without ``per``)."""
        per = self.query.per
        if per is None:
            return "NULL"
        if self.query.timezone == "UTC":
            return period_sql(per, instant)
        return f"sg_period({instant})"

    def within(self, instant: str) -> tuple[str, list[int]]:
        """The window on ``instant`` as an expression, and its parameters."""
        clauses, params = ["1"], []
        if self.query.start is not None:
            clauses.append(f"{instant} >= ?")
            params.append(to_us(self.query.start))
        if self.query.end is not None:
            clauses.append(f"{instant} < ?")
            params.append(to_us(self.query.end))
        return " AND ".join(clauses), params

    def _filters(self, f: ReportFilter) -> None:
        for column, value in (
            ("i.assignment_group", f.group),
            ("i.service", f.service),
            ("i.priority", f.priority),
            ("i.type", f.type.value if f.type is not None else None),
            ("i.channel", f.channel.value if f.channel is not None else None),
        ):
            if value is not None:
                self.add(f"{column} = ?", value)

    def add(self, clause: str, *params: Any) -> None:
        self.where.append(clause)
        self.params.extend(params)

    def window(self) -> None:
        """The window on the instant (for instants that are one column)."""
        clause, params = self.within(self.instant)
        if params:
            self.add(clause, *params)

    def resolved(self, half: str) -> None:
        """Resolved or closed tickets whose resolution instant (the query's instant) is in
        the window: with ``half`` "resolved_at" those with a ``resolved_at`` (the
        ``incident_closing`` index, status then resolved_at), with "closed_at" those closed
        without one (the same index, then their ``closed_at``). Two queries rather than
        one OR: SQLite answers an OR of indexes by collecting every key first, a third
        slower on a year of a million-ticket desk."""
        if half == "resolved_at":
            self.add(f"i.status IN {SOLVED} AND i.resolved_at IS NOT NULL")
        else:
            self.add("i.status = 'closed' AND i.resolved_at IS NULL AND i.closed_at IS NOT NULL")
        self.window()

    def sql(
        self, figures: str, *, source: str = "incident AS i", group: bool = True, more: int = 0
    ) -> str:
        """The SELECT of period, key and ``figures``, grouped by period and key (and the
        ``more`` columns after them)."""
        where = f" WHERE {' AND '.join(self.where)}" if self.where else ""
        grouping = f" GROUP BY {', '.join(str(n) for n in range(1, 3 + more))}" if group else ""
        return (
            f"SELECT {self.period}, {self.key}, {figures} FROM {source}{self.joins}"
            f"{where}{grouping}"
        )


class SqliteReportReader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _rows(self, q: _Query, figures: str, **kwargs: Any) -> list[tuple[Any, ...]]:
        return self._conn.execute(q.sql(figures, **kwargs), q.params).fetchall()

    def _solved(
        self,
        query: ReportQuery,
        figures: Callable[[str], str],
        *,
        where: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of the resolved tickets (``_Query.resolved``): both halves, the
        figures given the resolution instant's column, grouped as ``kwargs`` say."""
        for half in ("resolved_at", "closed_at"):
            q = _Query(self._conn, query, f"i.{half}")
            q.resolved(half)
            for clause in where:
                q.add(clause)
            yield from self._conn.execute(q.sql(figures(f"i.{half}"), **kwargs), q.params)

    def volume(self, query: ReportQuery) -> list[VolumeRow]:
        q = _Query(self._conn, query, "i.opened_at")
        q.window()
        return [VolumeRow(p, k, n) for p, k, n in self._rows(q, "count(*)")]

    def durations(self, query: ReportQuery, clock: str) -> dict[Group, DurationSamples]:
        q = _Query(self._conn, query, "i.first_response_at")
        q.add("i.first_response_at IS NOT NULL")
        q.window()
        calendar = "max(i.first_response_at - i.opened_at, 0)"
        business = f"CASE WHEN s.{clock}_state IN ('met', 'missed') THEN s.{clock}_elapsed_s END"
        source = "incident AS i LEFT JOIN ticket_sla AS s ON s.ticket_id = i.id"
        if clock == "response":
            sql = q.sql(f"{calendar}, {business}", source=source, group=False)
            rows: Iterator[tuple[Any, ...]] = iter(self._conn.execute(sql, q.params))
        else:
            rows = self._solved(
                query,
                lambda at: f"max({at} - i.opened_at, 0), {business}",
                source=source,
                group=False,
            )
        groups: dict[Group, tuple[array[float], array[float]]] = {}
        for period, key, calendar_us, business_s in rows:
            samples = groups.get((period, key))
            if samples is None:
                samples = groups[(period, key)] = (array("d"), array("d"))
            samples[0].append(calendar_us / US)
            if business_s is not None:
                samples[1].append(business_s)
        return {
            g: DurationSamples(calendar=c.tolist(), business=b.tolist())
            for g, (c, b) in groups.items()
        }

    def compliance(self, query: ReportQuery, now: dt.datetime) -> list[ComplianceRow]:
        counts: dict[Group, dict[str, list[int]]] = {}
        # both clocks of the tickets resolved in the window (stopped: met or missed)
        stopped = ", ".join(
            f"sum(s.{c}_state = 'met'), sum(s.{c}_state = 'missed')" for c in CLOCKS
        )
        source = "incident AS i JOIN ticket_sla AS s ON s.ticket_id = i.id"
        either = " OR ".join(f"s.{c}_state IN ('met', 'missed')" for c in CLOCKS)
        solved = self._solved(query, lambda _: stopped, source=source, where=(f"({either})",))
        for period, key, *values in solved:
            per_clock = counts.setdefault((period, key), {c: [0, 0, 0] for c in CLOCKS})
            for n, clock in enumerate(CLOCKS):
                per_clock[clock][0] += values[2 * n] or 0
                per_clock[clock][1] += values[2 * n + 1] or 0
        # running clocks breached, by their breach instant: one pass over the open tickets
        at = to_us(now)
        q = _Query(self._conn, query, "NULL")
        q.add(f"i.status IN {ACTIVE}")
        q.add(f"({_running_breached('response')} OR {_running_breached('resolution')})", at, at)
        moments = {c: f"coalesce(s.{c}_breached_at, s.{c}_due_at)" for c in CLOCKS}
        columns = [q.period_of(moments[c]) for c in CLOCKS]
        params: list[Any] = []
        for c in CLOCKS:
            inside, bounds = q.within(moments[c])
            columns.append(f"sum({_running_breached(c)} AND {inside})")
            params += [at, *bounds]
        sql = q.sql(", ".join(columns), source=source, more=2)
        for _, key, *periods_and_counts in self._conn.execute(sql, [*params, *q.params]):
            periods, found = periods_and_counts[:2], periods_and_counts[2:]
            for clock, period, n in zip(CLOCKS, periods, found, strict=True):
                if n:
                    per_clock = counts.setdefault((period, key), {c: [0, 0, 0] for c in CLOCKS})
                    per_clock[clock][2] += n
        return [
            ComplianceRow(
                period,
                key,
                response=ClockCompliance(*c["response"]),
                resolution=ClockCompliance(*c["resolution"]),
            )
            for (period, key), c in counts.items()
        ]

    def reassignments(self, query: ReportQuery) -> list[ReassignmentRow]:
        q = _Query(self._conn, query, "i.opened_at")
        q.window()
        figures = (
            "count(*), sum(i.reassignment_count > 0), avg(i.reassignment_count), "
            "max(i.reassignment_count)"
        )
        return [
            ReassignmentRow(p, k, tickets=n, reassigned=r, mean=mean, max=top)
            for p, k, n, r, mean, top in self._rows(q, figures)
        ]

    def reopens(self, query: ReportQuery) -> list[ReopenRow]:
        counts: dict[Group, list[int]] = {}
        for p, k, n, r in self._solved(query, lambda _: "count(*), sum(i.reopen_count > 0)"):
            found = counts.setdefault((p, k), [0, 0])
            found[0] += n
            found[1] += r
        return [ReopenRow(p, k, resolved=n, reopened=r) for (p, k), (n, r) in counts.items()]

    def source_sla(self, query: ReportQuery) -> list[SourceSlaRow]:
        q = _Query(self._conn, query, "i.opened_at")
        q.add("json_type(i.custom_fields, '$.made_sla') IN ('true', 'false')")
        q.window()
        figures = "count(*), sum(json_type(i.custom_fields, '$.made_sla') = 'true')"
        return [SourceSlaRow(p, k, tickets=n, made=m) for p, k, n, m in self._rows(q, figures)]

    def earliest_opened(self, filter: ReportFilter) -> dt.datetime | None:
        q = _Query(self._conn, ReportQuery(ReportName.VOLUME, filter=filter), "i.opened_at")
        row = self._conn.execute(q.sql("min(i.opened_at)", group=False), q.params).fetchone()
        return from_us(row[2]) if row[2] is not None else None

    def intervals(
        self, query: ReportQuery, since: dt.datetime, until: dt.datetime
    ) -> Iterator[Interval]:
        q = _Query(self._conn, query, "i.opened_at")
        q.add("i.opened_at <= ?", to_us(until))
        # still open, or left after ``since``: said per status, so that each part of the OR
        # reads an index (the open ones, the resolved since, the closed without a
        # resolution, the cancelled)
        after = to_us(since)
        q.add(
            f"(i.status IN {ACTIVE} "
            f"OR (i.status IN {SOLVED} AND i.resolved_at > ?) "
            "OR (i.status = 'closed' AND i.resolved_at IS NULL AND i.closed_at > ?) "
            "OR (i.status = 'cancelled' AND coalesce(i.closed_at, i.updated_at) > ?))",
            after,
            after,
            after,
        )
        rows = self._conn.execute(q.sql(f"i.opened_at, {LEFT_AT}", group=False), q.params)
        for _, key, opened, left in rows:
            yield Interval(key, from_us(opened), from_us(left) if left is not None else None)

    def gauges(self, now: dt.datetime) -> TicketGauges:
        conn = self._conn
        opened = {
            (group, priority): n
            for group, priority, n in conn.execute(
                f"SELECT assignment_group, priority, count(*) FROM incident "
                f"WHERE status IN {ACTIVE} GROUP BY 1, 2"
            )
        }
        at = to_us(now)
        breached: dict[tuple[str, str | None], int] = {}
        for group, response, resolution in conn.execute(
            f"SELECT i.assignment_group, sum({_running_breached('response')}), "
            f"sum({_running_breached('resolution')}) FROM incident AS i "
            f"JOIN ticket_sla AS s ON s.ticket_id = i.id WHERE i.status IN {ACTIVE} GROUP BY 1",
            (at, at),
        ):
            for clock, n in (("response", response), ("resolution", resolution)):
                if n:
                    breached[(clock, group)] = n
        # every ticket whose clock breached: one scan of the clocks for both
        response, resolution = conn.execute(
            "SELECT "
            + ", ".join(
                f"count(*) FILTER (WHERE s.{c}_breached_at IS NOT NULL OR {_running_breached(c)})"
                for c in CLOCKS
            )
            + " FROM ticket_sla AS s",
            (at, at),
        ).fetchone()
        ever = {"response": response, "resolution": resolution}
        return TicketGauges(open=opened, breached_running=breached, breached_tickets=ever)


def _running_breached(clock: str) -> str:
    """A running ``clock`` that has breached as of the parameter (microseconds): so
    marked by the last evaluation, or overdue since (due passed, not paused)."""
    return (
        f"(s.{clock}_state = 'breached' OR (s.{clock}_state IN ('ok', 'at_risk') "
        f"AND s.{clock}_paused = 0 AND s.{clock}_due_at <= ?))"
    )


class SqliteReportStore:
    def __init__(self, file: SqliteGraphStore) -> None:
        self._file = file

    @contextmanager
    def reading(self) -> Iterator[SqliteReportReader]:
        """One read transaction on this thread's connection: every query of a report sees
        the same commit."""
        try:
            conn = self._file._read()
            began = not conn.in_transaction
            if began:
                conn.execute("BEGIN")
            try:
                yield SqliteReportReader(conn)
            finally:
                if began and conn.in_transaction:
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._file.error(exc, "reading a report") from exc
