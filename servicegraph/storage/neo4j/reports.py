"""Neo4j adapter of the reports' read port (``servicegraph.ticketing.report_ports``), the
counterpart of ``storage/sqlite/reports.py``: the same figures from the ``(:Incident)`` and
``(:SlaRecord)`` nodes (read, never written here).

Cypher aggregates each figure per *bucket* and *raw key* (``report_cypher``'s docstring),
and this module turns them into (period, key) groups, merging what lands in one group:

- a bucket is a UTC day, or a piece of one cut at the period boundaries inside it; its
  label is ``report_periods.label`` of its first instant, exact because every instant of
  the piece has the same label. The boundaries come from ``report_periods`` for the days
  of the window (at most ``SPAN_DAYS`` back from now without a start, ``AHEAD_DAYS``
  ahead without an end); a day outside that span, or one on which the zone's offset
  changes, is grouped per instant and labelled per instant. So labels are those of
  ``label`` (Python's time zone data, as SQLite's adapter uses), never the JVM's, and
  Cypher still aggregates: a year of a 190k-ticket desk comes back as a few rows per day
  and key (a few thousand rows) rather than a row per ticket;
- a raw key is the property the report is grouped by; grouped by CI, the JSON list of
  affected CIs and the root CI, which Python expands into one key per CI (each distinct
  pair once).

What cannot be aggregated is read as SQLite reads it: the durations a median needs (as
lists, one per bucket and key), the backlog's intervals (one record per ticket in the
backlog, kept as compact arrays until the report reads them), and the source's
``made_sla`` verdict, a key of the custom fields' JSON text, grouped by that text and
read in Python once per distinct text.

Each figure is one managed read (retried by the driver, answered by any cluster member).
Neo4j reads committed data, and only holding the desk's write lock would stop commits
between two reads; a report does not take it, so that reports never hold up ticket work:
the two reads of one figure (compliance, backlog) may see different commits, off by the
tickets changed in between.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import json
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from neo4j import ManagedTransaction

from servicegraph.storage.neo4j import report_cypher as q
from servicegraph.storage.neo4j.catalogue import Statement
from servicegraph.storage.neo4j.records import run
from servicegraph.storage.sqlite.file import from_us, to_us
from servicegraph.ticketing.report_periods import Per, cut, label
from servicegraph.ticketing.report_ports import DurationSamples, Group, Interval, TicketGauges
from servicegraph.ticketing.reports import (
    ClockCompliance,
    ComplianceRow,
    GroupBy,
    ReassignmentRow,
    ReopenRow,
    ReportFilter,
    ReportQuery,
    SourceSlaRow,
    VolumeRow,
)

if TYPE_CHECKING:  # the store imports the schema, which imports the catalogues
    from servicegraph.storage.neo4j.store import Neo4jGraphStore

T = TypeVar("T")

US = 1_000_000
DAY_US = q.DAY_US
INT64 = (-(2**63), 2**63 - 1)
SPAN_DAYS = 366 * 20  # period boundaries sent for at most this many days back ...
AHEAD_DAYS = 366 * 2  # ... and ahead of now, without a window saying otherwise
ACTION = "reading a report"

# the ticket property a report is grouped by (by CI: the affected list, and the root)
_PROPERTIES: dict[GroupBy, str] = {
    GroupBy.SERVICE: "service",
    GroupBy.CATEGORY: "category",
    GroupBy.GROUP: "assignment_group",
    GroupBy.AGENT: "assignee",
    GroupBy.CHANNEL: "channel",
    GroupBy.CI: "affected_ci_ids",
    GroupBy.PRIORITY: "priority",
    GroupBy.TYPE: "type",
    GroupBy.ORGANISATION: "organisation",
}


def _filters(f: ReportFilter) -> dict[str, Any]:
    return {
        "group": f.group,
        "service": f.service,
        "priority": f.priority,
        "type": f.type.value if f.type is not None else None,
        "channel": f.channel.value if f.channel is not None else None,
    }


def _key_params(by: GroupBy | None) -> dict[str, Any]:
    return {"by": _PROPERTIES[by] if by is not None else None, "ci": by is GroupBy.CI}


@functools.lru_cache(maxsize=4096)
def _ci_keys(affected: str | None, root: str | None) -> tuple[str | None, ...]:
    """Every CI a ticket concerns, once each (``Incident.ci_ids``); none: one None."""
    listed: list[str] = json.loads(affected) if affected else []
    ids = list(dict.fromkeys(([root] if root else []) + listed))
    return tuple(ids) or (None,)


@functools.lru_cache(maxsize=4096)
def _made_sla(fields: str) -> bool | None:
    """The source's verdict in a ticket's custom fields' JSON text (None: none)."""
    verdict = json.loads(fields).get("made_sla")
    return verdict if isinstance(verdict, bool) else None


@functools.lru_cache(maxsize=64)
def _cuts(per: Per, tz: dt.tzinfo, first_day: int, last_day: int) -> dict[str, list[int]]:
    """UTC day -> the boundaries of ``per`` periods in ``tz`` strictly inside that day
    (microseconds), for the days from ``first_day`` to ``last_day``; a day on which the
    zone's offset changes is left out (its instants are labelled one by one)."""
    start, end = from_us(first_day * DAY_US), from_us((last_day + 1) * DAY_US)
    bounds = [to_us(begins) for _, begins, _ in cut(start, end, per, tz)]
    cuts: dict[str, list[int]] = {}
    for day in range(first_day, last_day + 1):
        lo, hi = day * DAY_US, (day + 1) * DAY_US
        if from_us(lo).astimezone(tz).utcoffset() != from_us(hi - 1).astimezone(tz).utcoffset():
            continue
        cuts[str(day)] = bounds[bisect.bisect_right(bounds, lo) : bisect.bisect_left(bounds, hi)]
    return cuts


class _Figure:
    """One report query's parameters and how its rows' buckets and raw keys become
    (period, key) groups."""

    def __init__(self, query: ReportQuery, *, window: bool = True) -> None:
        self.query = query
        self.by = query.by
        per, tz = query.per, query.tz
        self.utc = query.timezone == "UTC"
        self.cuts: dict[str, list[int]] = {}
        start = to_us(query.start) if window and query.start is not None else INT64[0]
        end = to_us(query.end) if window and query.end is not None else INT64[1]
        if per is not None and not self.utc:
            today = to_us(dt.datetime.now(dt.UTC)) // DAY_US
            first = max(start // DAY_US, today - SPAN_DAYS)
            last = min((end - 1) // DAY_US, today + AHEAD_DAYS)
            if first <= last:
                self.cuts = _cuts(per, tz, first, last)
        self.params: dict[str, Any] = {
            **_filters(query.filter),
            **_key_params(query.by),
            "per": per is not None,
            "utc": self.utc,
            "cuts": self.cuts,
        }
        if window:
            self.params |= {"start": start, "end": end}
        self._labels: dict[int, str] = {}

    def period(self, r: Any) -> str | None:
        """The label of a row's bucket (None without ``per``)."""
        per = self.query.per
        if per is None or r["day"] is None:
            return None
        exact = r["exact"]
        if exact is not None:
            moment = int(exact)
        else:
            day, piece = int(r["day"]), int(r["piece"])
            moment = day * DAY_US if piece == 0 else self.cuts[str(day)][piece - 1]
        found = self._labels.get(moment)
        if found is None:
            found = self._labels[moment] = label(from_us(moment), per, self.query.tz)
        return found

    def keys(self, k1: Any, k2: Any) -> tuple[str | None, ...]:
        """The group keys of a raw key."""
        if self.by is None:
            return (None,)
        if self.by is GroupBy.CI:
            return _ci_keys(k1, k2)
        if self.by is GroupBy.PRIORITY:
            return (None if k1 is None else str(k1),)
        return (k1,)

    def groups(self, r: Any) -> Iterator[Group]:
        period = self.period(r)
        for key in self.keys(r["k1"], r["k2"]):
            yield period, key


class Neo4jReportReader:
    """``ReportReader`` over a ``Neo4jGraphStore`` (each figure one managed read)."""

    def __init__(self, graph: Neo4jGraphStore) -> None:
        self._graph = graph

    def _read(self, work: Callable[[ManagedTransaction], T]) -> T:
        return self._graph.read(ACTION, work)

    def _records(self, statement: Statement, params: dict[str, Any]) -> list[Any]:
        def work(tx: ManagedTransaction) -> list[Any]:
            return list(run(tx, statement, **params))

        return self._read(work)

    def _sums(
        self, statement: Statement, figure: _Figure, names: tuple[str, ...]
    ) -> dict[Group, list[Any]]:
        """Per (period, key), the sums of the row columns ``names`` (None counted as 0)."""
        sums: dict[Group, list[Any]] = {}
        for r in self._records(statement, figure.params):
            values = [r[name] or 0 for name in names]
            for g in figure.groups(r):
                found = sums.get(g)
                if found is None:
                    sums[g] = list(values)
                else:
                    for n, v in enumerate(values):
                        found[n] += v
        return sums

    def volume(self, query: ReportQuery) -> list[VolumeRow]:
        sums = self._sums(q.VOLUME, _Figure(query), ("n",))
        return [VolumeRow(p, k, n) for (p, k), (n,) in sums.items()]

    def durations(self, query: ReportQuery, clock: str) -> dict[Group, DurationSamples]:
        figure = _Figure(query)
        groups: dict[Group, tuple[array[float], array[float]]] = {}
        for r in self._records(q.DURATIONS[clock], figure.params):
            calendar = [us / US for us in r["calendar"]]
            business = [float(s) for s in r["business"]]
            for g in figure.groups(r):
                samples = groups.get(g)
                if samples is None:
                    samples = groups[g] = (array("d"), array("d"))
                samples[0].extend(calendar)
                samples[1].extend(business)
        return {
            g: DurationSamples(calendar=c.tolist(), business=b.tolist())
            for g, (c, b) in groups.items()
        }

    def compliance(self, query: ReportQuery, now: dt.datetime) -> list[ComplianceRow]:
        at = to_us(now)
        figure = _Figure(query)
        names = tuple(f"{c}_{state}" for c in q.CLOCKS for state in ("met", "missed"))
        counts: dict[Group, dict[str, list[int]]] = {}
        for g, values in self._sums(q.COMPLIANCE_STOPPED, figure, names).items():
            per_clock = counts.setdefault(g, {c: [0, 0, 0] for c in q.CLOCKS})
            for n, clock in enumerate(q.CLOCKS):
                per_clock[clock][0] += values[2 * n]
                per_clock[clock][1] += values[2 * n + 1]
        for r in self._records(q.COMPLIANCE_RUNNING, {**figure.params, "now": at}):
            for g in figure.groups(r):
                per_clock = counts.setdefault(g, {c: [0, 0, 0] for c in q.CLOCKS})
                per_clock[r["clock"]][2] += r["n"]
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
        figure = _Figure(query)
        found: dict[Group, list[int]] = {}
        for r in self._records(q.REASSIGNMENTS, figure.params):
            for g in figure.groups(r):
                row = found.get(g)
                if row is None:
                    found[g] = [r["n"], r["reassigned"], r["total"], r["top"]]
                else:
                    row[0] += r["n"]
                    row[1] += r["reassigned"]
                    row[2] += r["total"]
                    row[3] = max(row[3], r["top"])
        return [
            ReassignmentRow(p, k, tickets=n, reassigned=moved, mean=total / n, max=top)
            for (p, k), (n, moved, total, top) in found.items()
        ]

    def reopens(self, query: ReportQuery) -> list[ReopenRow]:
        sums = self._sums(q.REOPENS, _Figure(query), ("n", "reopened"))
        return [ReopenRow(p, k, resolved=n, reopened=r) for (p, k), (n, r) in sums.items()]

    def source_sla(self, query: ReportQuery) -> list[SourceSlaRow]:
        figure = _Figure(query)
        found: dict[Group, list[int]] = {}
        for r in self._records(q.SOURCE_SLA, figure.params):
            verdict = _made_sla(r["fields"])
            if verdict is None:
                continue
            for g in figure.groups(r):
                row = found.setdefault(g, [0, 0])
                row[0] += r["n"]
                row[1] += r["n"] if verdict else 0
        return [SourceSlaRow(p, k, tickets=n, made=m) for (p, k), (n, m) in found.items()]

    def earliest_opened(self, filter: ReportFilter) -> dt.datetime | None:
        def work(tx: ManagedTransaction) -> int | None:
            record = run(tx, q.EARLIEST_OPENED, **_filters(filter)).single()
            return None if record is None else record["opened"]

        opened = self._read(work)
        return from_us(opened) if opened is not None else None

    def intervals(
        self, query: ReportQuery, since: dt.datetime, until: dt.datetime
    ) -> Iterator[Interval]:
        figure = _Figure(query, window=False)
        params = {
            **_filters(query.filter),
            **_key_params(query.by),
            "since": to_us(since),
            "until": to_us(until),
        }

        # streamed from the result into compact arrays (a ticket: two integers and a
        # reference to its raw key), the intervals made only as the report reads them
        def work(tx: ManagedTransaction) -> tuple[list[tuple[Any, Any]], array[int], array[int]]:
            keys: list[tuple[Any, Any]] = []
            opened: array[int] = array("q")
            left: array[int] = array("q")
            shared: dict[tuple[Any, Any], tuple[Any, Any]] = {}
            for r in run(tx, q.INTERVALS, **params):
                raw = (r["k1"], r["k2"])
                keys.append(shared.setdefault(raw, raw))
                opened.append(r["opened"])
                left.append(INT64[0] if r["left"] is None else r["left"])
            return keys, opened, left

        keys, opened, left = self._read(work)
        for raw, start, end in zip(keys, opened, left, strict=True):
            ended = None if end == INT64[0] else from_us(end)
            for key in figure.keys(*raw):
                yield Interval(key, from_us(start), ended)

    def gauges(self, now: dt.datetime) -> TicketGauges:
        at = to_us(now)

        def work(tx: ManagedTransaction) -> TicketGauges:
            opened = {(r["group"], r["priority"]): r["n"] for r in run(tx, q.GAUGES_OPEN)}
            breached: dict[tuple[str, str | None], int] = {}
            for r in run(tx, q.GAUGES_BREACHED, now=at):
                for clock in q.CLOCKS:
                    if r[clock]:
                        breached[(clock, r["group"])] = r[clock]
            record = run(tx, q.GAUGES_EVER, now=at).single()
            ever = {c: (record[c] if record is not None else 0) for c in q.CLOCKS}
            return TicketGauges(open=opened, breached_running=breached, breached_tickets=ever)

        return self._read(work)


class Neo4jReportStore:
    """``ReportStore`` over a ``Neo4jGraphStore``'s database."""

    def __init__(self, graph: Neo4jGraphStore) -> None:
        self._graph = graph

    @contextmanager
    def reading(self) -> Iterator[Neo4jReportReader]:
        """A reader; each of its figures is one read (module docstring)."""
        yield Neo4jReportReader(self._graph)
