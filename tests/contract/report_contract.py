"""The behaviour every backend of the reports' read port owes the report service, as
documented in ``servicegraph.ticketing.report_ports``, against a plain reference: a few
hundred varied tickets (every status, reopened ones, closed without a resolution,
cancelled, CIs as root and affected, the source's made_sla verdict or none) and SLA clocks
in every state are saved in a real store (the clocks written straight as ``ticket_sla``
rows, as the projection would write them); then every report, by every field, per day,
week and month (UTC and Berlin), over windows and with filters, and the desk's gauges,
must give exactly what the definitions in ``ticketing.reports`` say, computed here in
plain Python from the same tickets.

A backend's test module subclasses ``ReportContract``, sets ``__test__ = True`` and
provides the fixtures: ``seed`` (class scope), a callable that saves the tickets (as a
ticket unit's ``save_incidents`` does) and the clock rows (``ticket_sla`` rows, its
columns in order) into an empty, migrated backend and returns the ``ReportStore`` over it;
``failing_reports``, a store whose backend fails underneath.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from servicegraph.cmdb.errors import StoreError, StoreUnavailable
from servicegraph.storage.sqlite.file import to_us
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Channel, Incident, TicketType
from servicegraph.ticketing.report_periods import Per, label
from servicegraph.ticketing.report_ports import ReportStore
from servicegraph.ticketing.report_service import ReportService, measuring_points
from servicegraph.ticketing.reports import (
    AGEING_BOUNDS_S,
    GroupBy,
    ReportName,
    ReportQuery,
    flat,
    report_query,
    summarise,
)

T0 = dt.datetime(2026, 2, 20, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(days=70)
ACTIVE = (TicketStatus.NEW, TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS, TicketStatus.PENDING)
SOLVED = (TicketStatus.RESOLVED, TicketStatus.CLOSED)


@dataclass
class Clock:
    state: str
    elapsed_s: float
    due_at: dt.datetime
    paused: bool
    stopped_at: dt.datetime | None
    breached_at: dt.datetime | None


Seed = Callable[[list[Incident], list[list[Any]]], ReportStore]


@dataclass
class World:
    tickets: list[Incident]
    clocks: dict[tuple[str, str], Clock]  # (ticket id, clock) -> clock
    service: ReportService


def _minutes(rng: random.Random, most: int) -> dt.timedelta:
    return dt.timedelta(minutes=rng.randint(0, most), seconds=rng.randint(0, 59))


def _ticket(rng: random.Random, n: int) -> Incident:
    opened = T0 + _minutes(rng, 60 * 24 * 60)
    status = rng.choice([*ACTIVE, *SOLVED, *SOLVED, TicketStatus.CANCELLED])
    later = opened + _minutes(rng, 60 * 24 * 12)
    resolved_at = closed_at = None
    if status is TicketStatus.RESOLVED:
        resolved_at = later
    elif status is TicketStatus.CLOSED:
        resolved_at = later if rng.random() < 0.8 else None  # closed without a resolution
        closed_at = later + _minutes(rng, 60 * 24 * 3)
    elif status is TicketStatus.CANCELLED and rng.random() < 0.5:
        closed_at = later
    made_sla: dict[str, Any] = rng.choice(
        [{}, {"made_sla": True}, {"made_sla": False}, {"made_sla": "true"}]
    )
    affected = rng.sample(["ci-1", "ci-2", "ci-3", "ci-4"], rng.choice([0, 0, 1, 2]))
    return Incident(
        id=f"inc-{n}",
        number=n,
        title="t",
        status=status,
        opened_at=opened,
        updated_at=later + _minutes(rng, 600),
        last_alert_at=opened,
        priority=rng.randint(1, 5),
        resolved_at=resolved_at,
        closed_at=closed_at,
        first_response_at=(
            opened + _minutes(rng, 600) if rng.random() < 0.7 else None
        ),  # may be later than a resolution: imported data
        reopen_count=rng.choice([0, 0, 0, 1, 2]),
        reassignment_count=rng.choice([0, 0, 1, 3]),
        assignment_group=rng.choice(["noc", "desk", None]),
        assignee=rng.choice(["ann", "bo", None]),
        service=rng.choice(["mail", "vpn", None]),
        category=rng.choice(["network/vpn", "hardware", None]),
        channel=rng.choice(list(Channel)),
        type=rng.choice(list(TicketType)),
        organisation=rng.choice(["acme", None]),
        root_ci_id=rng.choice(["ci-1", "ci-5", None]),
        affected_ci_ids=affected,
        custom_fields=made_sla,
    )


def _clock(rng: random.Random, t: Incident, kind: str) -> Clock:
    stopped = (
        t.first_response_at if kind == "response" else (t.resolved_at or t.closed_at)
    ) or t.updated_at
    due = t.opened_at + _minutes(rng, 60 * 24 * 10)
    state = rng.choice(["met", "missed", "ok", "at_risk", "breached"])
    running = state in ("ok", "at_risk", "breached")
    return Clock(
        state=state,
        elapsed_s=rng.uniform(0, 400_000),
        due_at=due,
        paused=rng.random() < 0.3,
        stopped_at=None if running else stopped,
        breached_at=due if state in ("breached", "missed") else None,
    )


def clock_rows(clocks: dict[tuple[str, str], Clock]) -> list[list[Any]]:
    """The ``ticket_sla`` rows of the clocks, one per ticket, the table's columns in order."""
    ids = sorted({ticket for ticket, _ in clocks})
    rows = []
    for ticket in ids:
        row: list[Any] = [ticket, "standard", "24x7", 3]
        for kind in ("response", "resolution"):
            c = clocks[(ticket, kind)]
            row += [
                3600.0,
                c.elapsed_s,
                to_us(c.due_at),
                c.state,
                int(c.paused),
                to_us(c.stopped_at) if c.stopped_at else None,
                to_us(c.breached_at) if c.breached_at else None,
            ]
        rows.append([*row, None, to_us(T0), "test"])
    return rows


def make_world(seed: Seed) -> World:
    rng = random.Random(17)
    tickets = [_ticket(rng, n) for n in range(1, 401)]
    clocks = {}
    for t in tickets:
        if rng.random() < 0.75:  # the others: no policy covers them
            for kind in ("response", "resolution"):
                clocks[(t.id, kind)] = _clock(rng, t, kind)
    store = seed(tickets, clock_rows(clocks))
    return World(tickets, clocks, ReportService(store, clock=lambda: NOW))


# -- the reference: the definitions, plainly -------------------------------------------------


def resolution_at(t: Incident) -> dt.datetime | None:
    return (t.resolved_at or t.closed_at) if t.status in SOLVED else None


def left_at(t: Incident) -> dt.datetime | None:
    if t.status in ACTIVE:
        return None
    if t.status in SOLVED:
        return resolution_at(t)
    return t.closed_at or t.updated_at


def keys(t: Incident, by: GroupBy | None) -> list[str | None]:
    if by is None:
        return [None]
    if by is GroupBy.CI:
        return list(t.ci_ids()) or [None]
    value = {
        GroupBy.SERVICE: t.service,
        GroupBy.CATEGORY: t.category,
        GroupBy.GROUP: t.assignment_group,
        GroupBy.AGENT: t.assignee,
        GroupBy.CHANNEL: t.channel.value,
        GroupBy.PRIORITY: str(t.priority),
        GroupBy.TYPE: t.type.value,
        GroupBy.ORGANISATION: t.organisation,
    }[by]
    return [value]


def kept(t: Incident, q: ReportQuery) -> bool:
    f = q.filter
    return (
        (f.group is None or t.assignment_group == f.group)
        and (f.service is None or t.service == f.service)
        and (f.priority is None or t.priority == f.priority)
        and (f.type is None or t.type is f.type)
        and (f.channel is None or t.channel is f.channel)
    )


def within(moment: dt.datetime | None, q: ReportQuery) -> bool:
    return (
        moment is not None
        and (q.start is None or moment >= q.start)
        and (q.end is None or moment < q.end)
    )


def period(moment: dt.datetime, q: ReportQuery) -> str | None:
    return label(moment, q.per, q.tz) if q.per is not None else None


Groups = dict[tuple[str | None, str | None], list[Any]]


def grouped(
    w: World, q: ReportQuery, instant: Callable[[Incident], dt.datetime | None]
) -> Iterator[tuple[tuple[str | None, str | None], Incident]]:
    for t in w.tickets:
        moment = instant(t)
        if kept(t, q) and within(moment, q):
            assert moment is not None
            for key in keys(t, q.by):
                yield (period(moment, q), key), t


def seconds(a: dt.datetime, b: dt.datetime) -> float:
    return max((a - b).total_seconds(), 0.0)


def reference(w: World, q: ReportQuery) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    groups: Groups = defaultdict(list)
    name = q.name
    if name in (ReportName.VOLUME, ReportName.REASSIGNMENTS, ReportName.SOURCE_SLA):
        for g, t in grouped(w, q, lambda t: t.opened_at):
            if name is not ReportName.SOURCE_SLA or isinstance(
                t.custom_fields.get("made_sla"), bool
            ):
                groups[g].append(t)
        for (p, k), ts in groups.items():
            if name is ReportName.VOLUME:
                rows.append({"period": p, "key": k, "opened": len(ts)})
            elif name is ReportName.REASSIGNMENTS:
                counts = [t.reassignment_count for t in ts]
                rows.append(
                    {"period": p, "key": k, "tickets": len(ts),
                     "reassigned": sum(c > 0 for c in counts),
                     "mean": sum(counts) / len(counts), "max": max(counts)}
                )  # fmt: skip
            else:
                made = sum(t.custom_fields["made_sla"] is True for t in ts)
                rows.append(
                    {"period": p, "key": k, "tickets": len(ts), "made": made,
                     "share": made / len(ts)}
                )  # fmt: skip
    elif name is ReportName.REOPENS:
        for g, t in grouped(w, q, resolution_at):
            groups[g].append(t)
        for (p, k), ts in groups.items():
            reopened = sum(t.reopen_count > 0 for t in ts)
            rows.append(
                {"period": p, "key": k, "resolved": len(ts), "reopened": reopened,
                 "rate": reopened / len(ts)}
            )  # fmt: skip
    elif name in (ReportName.MTTA, ReportName.MTTR):
        kind = "response" if name is ReportName.MTTA else "resolution"
        instant = (lambda t: t.first_response_at) if kind == "response" else resolution_at
        for g, t in grouped(w, q, instant):
            groups[g].append(t)
        for (p, k), ts in groups.items():
            calendar = [seconds(instant(t), t.opened_at) for t in ts]  # type: ignore[arg-type]
            business = [
                c.elapsed_s
                for t in ts
                if (c := w.clocks.get((t.id, kind))) is not None and c.state in ("met", "missed")
            ]
            row = {"period": p, "key": k}
            for part, values in (("", calendar), ("business_", business)):
                d = summarise(values)
                row |= {f"{part}count": d.count, f"{part}mean_s": d.mean_s,
                        f"{part}median_s": d.median_s, f"{part}p90_s": d.p90_s,
                        f"{part}max_s": d.max_s}  # fmt: skip
            rows.append(row)
    elif name is ReportName.SLA:
        counts: dict[tuple[str | None, str | None], dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        for kind in ("response", "resolution"):
            for t in w.tickets:
                c = w.clocks.get((t.id, kind))
                if c is None or not kept(t, q):
                    continue
                if c.state in ("met", "missed") and resolution_at(t) is not None:
                    moment = resolution_at(t)  # both clocks of the tickets resolved
                    figure = f"{kind}_{c.state}"
                elif t.status in ACTIVE and (
                    c.state == "breached"
                    or (c.state in ("ok", "at_risk") and not c.paused and c.due_at <= NOW)
                ):
                    moment = c.breached_at or c.due_at
                    figure = f"{kind}_breached_running"
                else:
                    continue
                if not within(moment, q):
                    continue
                assert moment is not None
                for key in keys(t, q.by):
                    counts[(period(moment, q), key)][figure] += 1
        for (p, k), c in counts.items():
            row = {"period": p, "key": k}
            for kind in ("response", "resolution"):
                met, missed = c[f"{kind}_met"], c[f"{kind}_missed"]
                row |= {f"{kind}_met": met, f"{kind}_missed": missed,
                        f"{kind}_compliance": met / (met + missed) if met + missed else None,
                        f"{kind}_breached_running": c[f"{kind}_breached_running"]}  # fmt: skip
            rows.append(row)
    else:
        rows = backlog_reference(w, q)
    return sorted(rows, key=lambda r: (r["period"] or "", r["key"] is None, r["key"] or ""))


def backlog_reference(w: World, q: ReportQuery) -> list[dict[str, Any]]:
    firsts = [t.opened_at for t in w.tickets if kept(t, q)]
    points = measuring_points(q, NOW, lambda: min(firsts, default=None))
    rows = []
    for p, moment in points:
        buckets: dict[str | None, list[int]] = defaultdict(lambda: [0] * 5)
        for t in w.tickets:
            ended = left_at(t)
            if not kept(t, q) or t.opened_at > moment or (ended is not None and ended <= moment):
                continue
            age = (moment - t.opened_at).total_seconds()
            bucket = max(b for b, lower in enumerate(AGEING_BOUNDS_S) if age >= lower)
            for key in keys(t, q.by):
                buckets[key][bucket] += 1
        for key, counts in buckets.items():
            rows.append(
                {"period": p, "key": key, "at": moment, "open": sum(counts),
                 "under_1d": counts[0], "d1_to_3": counts[1], "d3_to_7": counts[2],
                 "d7_to_30": counts[3], "over_30d": counts[4]}
            )  # fmt: skip
    return rows


def same(got: list[dict[str, Any]], expected: list[dict[str, Any]], what: str) -> None:
    assert [(r["period"], r["key"]) for r in got] == [(r["period"], r["key"]) for r in expected], (
        what
    )
    for g, e in zip(got, expected, strict=True):
        for name, value in e.items():
            if isinstance(value, float):
                assert g[name] == pytest.approx(value, rel=1e-9), f"{what}: {name} of {g}"
            else:
                assert g[name] == value, f"{what}: {name} of {g}"


def running_breached(c: Clock) -> bool:
    return c.state == "breached" or (
        c.state in ("ok", "at_risk") and not c.paused and c.due_at <= NOW
    )


def gauges_reference(w: World) -> tuple[dict[Any, int], dict[Any, int], dict[str, int]]:
    opened: dict[Any, int] = defaultdict(int)
    breached: dict[Any, int] = defaultdict(int)
    ever = {"response": 0, "resolution": 0}
    for t in w.tickets:
        if t.status in ACTIVE:
            opened[(t.assignment_group, t.priority)] += 1
        for kind in ("response", "resolution"):
            c = w.clocks.get((t.id, kind))
            if c is None:
                continue
            if t.status in ACTIVE and running_breached(c):
                breached[(kind, t.assignment_group)] += 1
            if c.breached_at is not None or running_breached(c):
                ever[kind] += 1
    return dict(opened), dict(breached), ever


# -- the tests -------------------------------------------------------------------------------

WINDOWS: list[dict[str, str]] = [
    {},
    {"start": "2026-03-01", "end": "2026-03-31"},
    {"start": "2026-03-10T06:30:00Z"},
    {"end": "2026-04-15"},
]


class ReportContract:
    """Subclass per backend; override the ``seed`` and ``failing_reports`` fixtures."""

    __test__ = False

    @pytest.fixture(scope="class")
    @classmethod
    def seed(cls) -> Seed:
        raise NotImplementedError("a backend's test class provides the seed fixture")

    @pytest.fixture
    def failing_reports(self) -> ReportStore:
        raise NotImplementedError("a backend's test class provides failing_reports")

    @pytest.fixture(scope="class")
    @classmethod
    def world(cls, seed: Seed) -> World:
        return make_world(seed)

    @pytest.mark.parametrize("name", list(ReportName))
    def test_every_report_by_every_field_equals_the_reference(
        self, world: World, name: ReportName
    ) -> None:
        for by in [None, *GroupBy]:
            for window in WINDOWS:
                q = report_query(name, by=by, **window)
                got = [flat(r) for r in world.service.run(q).rows]
                same(got, reference(world, q), f"{name} by {by} {window}")
                assert got, f"{name} by {by} {window}: no rows, nothing compared"

    @pytest.mark.parametrize("name", list(ReportName))
    @pytest.mark.parametrize("per", list(Per))
    @pytest.mark.parametrize("timezone", [None, "Europe/Berlin"])
    def test_every_report_per_period_equals_the_reference(
        self, world: World, name: ReportName, per: Per, timezone: str | None
    ) -> None:
        for by in (None, GroupBy.GROUP, GroupBy.CI):
            window = (
                {"start": "2026-03-01", "end": "2026-04-12"} if name is ReportName.BACKLOG else {}
            )
            q = report_query(name, by=by, per=per, timezone=timezone, **window)
            got = [flat(r) for r in world.service.run(q).rows]
            same(got, reference(world, q), f"{name} by {by} per {per} in {timezone}")
            assert len({r["period"] for r in got}) > 1

    @pytest.mark.parametrize(
        "filters",
        [
            {"group": "noc"},
            {"service": "vpn", "priority": "3"},
            {"type": "service_request", "channel": "email"},
            {"group": "nobody"},
        ],
    )
    def test_filters_keep_only_their_tickets(self, world: World, filters: dict[str, str]) -> None:
        for name in ReportName:
            q = report_query(name, by="agent", per="week", start="2026-03-01", **filters)
            got = [flat(r) for r in world.service.run(q).rows]
            same(got, reference(world, q), f"{name} {filters}")
            if filters == {"group": "nobody"}:
                assert got == []

    def test_the_gauges_equal_the_reference(self, world: World) -> None:
        gauges = world.service.gauges()
        opened, breached, ever = gauges_reference(world)
        assert dict(gauges.open) == opened
        assert dict(gauges.breached_running) == breached
        assert dict(gauges.breached_tickets) == ever
        assert opened and breached and all(ever.values())

    def test_a_failing_backend_raises_store_errors(self, failing_reports: ReportStore) -> None:
        service = ReportService(failing_reports, clock=lambda: NOW)
        with pytest.raises((StoreError, StoreUnavailable)) as info:
            service.run(report_query("sla"))
        assert info.value.__cause__ is not None
