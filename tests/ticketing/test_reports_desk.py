"""The reports on a real desk: tickets worked through the ticket service at chosen times,
their SLA clocks kept by the SLA projection on an office calendar (Mon-Fri 08:00-18:00
UTC), then every report read through ``services.desk.reports`` and checked against the
figures the walk implies, worked out by hand below."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servicegraph.cmdb.context import change_context
from servicegraph.ticketing.reports import (
    BacklogRow,
    ComplianceRow,
    DurationRow,
    ReopenRow,
    report_query,
)
from tests.ticketing.desk_world import Desk, make_desk

MONDAY = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)  # desk_world's T0, a Monday
H = 3600.0
OFFICE = {
    "timezone": "UTC",
    "hours": {d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
}
SLA: dict[str, Any] = {
    "policies": [
        {
            "name": "standard",
            "calendar": "office",
            "targets": {
                1: {"response": "15m", "resolution": "4h"},
                3: {"response": "1h", "resolution": "8h"},
            },
        }
    ]
}


@pytest.fixture()
def desk(tmp_path: Path) -> Iterator[Desk]:
    for d in make_desk(tmp_path, calendars={"office": OFFICE}, sla=SLA):
        d.services.desk.reports.clock = d.clock
        yield d


def at(desk: Desk, moment: dt.datetime) -> None:
    desk.clock.now = moment


def walk(desk: Desk) -> dict[str, str]:
    """Four tickets of the noc group, P3 but the last:

    - a: opened Mon 09:00, started 09:30 (the response), pending awaiting the requester
      10:00-11:00 (paused), resolved 13:00: calendar 4 h, business 3 h, met;
    - b: opened Mon 10:00, resolved Tue 10:00 with no response before (the resolution
      answers: response 10 h business, missed), reopened Tue 12:00, resolved Tue 14:00:
      calendar 28 h by its last resolution, business 8 + 2 + 2 = 12 h (the two hours it
      was resolved are not counted), missed;
    - c: opened Mon 11:00, cancelled Mon 12:00;
    - d: P1, opened Mon 09:00, still open: its response clock breached at 09:15.
    """
    tickets = desk.tickets
    with change_context("alice"):
        at(desk, MONDAY)
        a = desk.create(priority=3, priority_reason="test", assignment_group="noc")
        d = desk.create(priority=1, priority_reason="test", assignment_group="noc")
        at(desk, MONDAY + dt.timedelta(hours=1))
        b = desk.create(priority=3, priority_reason="test", assignment_group="noc")
        at(desk, MONDAY + dt.timedelta(hours=2))
        c = desk.create(priority=3, priority_reason="test", assignment_group="noc")
    with change_context("bob"):
        at(desk, MONDAY + dt.timedelta(minutes=20))
        tickets.assign(a.id, agent="bob")
        at(desk, MONDAY + dt.timedelta(minutes=30))
        tickets.transition(a.id, "start")
        at(desk, MONDAY + dt.timedelta(hours=1))
        tickets.transition(a.id, "pend", pending_reason="awaiting_requester")
        at(desk, MONDAY + dt.timedelta(hours=2))
        tickets.transition(a.id, "resume")
        at(desk, MONDAY + dt.timedelta(hours=3))
        tickets.transition(c.id, "cancel", reason="raised twice")
        at(desk, MONDAY + dt.timedelta(hours=4))
        tickets.transition(a.id, "resolve", resolution_code="fixed")
        at(desk, MONDAY + dt.timedelta(hours=25))
        tickets.transition(b.id, "resolve", resolution_code="fixed")
        at(desk, MONDAY + dt.timedelta(hours=27))
        tickets.transition(b.id, "reopen", reason="still broken")
        at(desk, MONDAY + dt.timedelta(hours=29))
        tickets.transition(b.id, "resolve", resolution_code="fixed")
    at(desk, MONDAY + dt.timedelta(days=3))
    return {"a": a.id, "b": b.id, "c": c.id, "d": d.id}


def run(desk: Desk, name: str, **options: Any) -> list[Any]:
    return list(desk.services.desk.reports.run(report_query(name, **options)).rows)


def test_time_to_resolve_counts_the_last_resolution_and_business_time(desk: Desk) -> None:
    walk(desk)
    (row,) = run(desk, "mttr", by="group")
    assert isinstance(row, DurationRow) and row.key == "noc"
    assert row.calendar.count == 2
    assert (row.calendar.mean_s, row.calendar.max_s) == (16 * H, 28 * H)
    assert row.business.count == 2
    assert (row.business.mean_s, row.business.median_s) == (7.5 * H, 7.5 * H)
    # per day: a resolved on Monday, b (by its last resolution) on Tuesday
    days = run(desk, "mttr", per="day")
    assert [(r.period, r.calendar.count, r.business.mean_s) for r in days] == [
        ("2026-11-02", 1, 3 * H),
        ("2026-11-03", 1, 12 * H),
    ]


def test_time_to_respond(desk: Desk) -> None:
    walk(desk)
    (row,) = run(desk, "mtta")
    # a at 30 minutes, b at its first resolution (24 hours); nobody answered c or d
    assert isinstance(row, DurationRow)
    assert row.calendar.count == 2
    assert sorted([row.calendar.median_s, row.calendar.max_s]) == [12.25 * H, 24 * H]
    assert row.business.count == 2
    assert row.business.mean_s == pytest.approx((0.5 * H + 10 * H) / 2)


def test_compliance_met_missed_and_breached_still_running(desk: Desk) -> None:
    walk(desk)
    rows = {r.key: r for r in run(desk, "sla", by="priority")}
    p3, p1 = rows["3"], rows["1"]
    assert isinstance(p3, ComplianceRow) and isinstance(p1, ComplianceRow)
    # a met both targets; b missed both; c, cancelled, does not count
    assert (p3.response.met, p3.response.missed, p3.response.compliance) == (1, 1, 0.5)
    assert (p3.resolution.met, p3.resolution.missed) == (1, 1)
    # d's clocks still run: response breached at 09:15, resolution at 13:00
    assert (p1.response.breached_running, p1.resolution.breached_running) == (1, 1)
    assert (p1.response.met, p1.response.compliance) == (0, None)

    # both clocks count by the ticket's resolution, running breaches by their breach: by
    # noon nothing is resolved and only d's response has breached; by 14:00 a is resolved
    # (both met) and d's resolution clock breached at 13:00
    def window(end: str) -> list[tuple[int, ...]]:
        rows = run(desk, "sla", start="2026-11-02T09:00Z", end=end)
        return [
            (r.response.met, r.resolution.met, r.response.breached_running,
             r.resolution.breached_running)
            for r in rows
        ]  # fmt: skip

    assert window("2026-11-02T12:00Z") == [(0, 0, 1, 0)]
    assert window("2026-11-02T14:00Z") == [(1, 1, 1, 1)]


def test_reopen_rate_volume_reassignments(desk: Desk) -> None:
    ids = walk(desk)
    (reopens,) = run(desk, "reopens")
    assert isinstance(reopens, ReopenRow)
    assert (reopens.resolved, reopens.reopened, reopens.rate) == (2, 1, 0.5)
    (volume,) = run(desk, "volume", by="group")
    assert (volume.key, volume.opened) == ("noc", 4)
    with change_context("alice"):
        desk.tickets.assign(ids["d"], group="network")  # a reassignment: noc -> network
    rows = {r.key: r for r in run(desk, "reassignments", by="group")}
    assert (rows["network"].tickets, rows["network"].reassigned, rows["network"].max) == (1, 1, 1)
    assert (rows["noc"].tickets, rows["noc"].mean) == (3, 0.0)


def test_backlog_at_instants_with_ages(desk: Desk) -> None:
    walk(desk)
    # Monday 12:30: a, b, d open (c cancelled at 12:00)
    (noon,) = run(desk, "backlog", end="2026-11-02T12:30:00Z")
    assert isinstance(noon, BacklogRow)
    assert (noon.open, noon.under_1d) == (3, 3)
    # each day's end: Monday b and d; Tuesday (b resolved at 14:00) d alone, a day old
    days = run(desk, "backlog", start="2026-11-02", end="2026-11-03", per="day")
    assert [(r.period, r.open, r.under_1d, r.d1_to_3) for r in days] == [
        ("2026-11-02", 2, 2, 0),
        ("2026-11-03", 1, 0, 1),
    ]
    # now (Thursday 09:00): d, three days old
    (now,) = run(desk, "backlog", by="priority")
    assert (now.key, now.open, now.d3_to_7) == ("1", 1, 1)


def test_gauges_of_metrics(desk: Desk) -> None:
    walk(desk)
    g = desk.services.desk.reports.gauges()
    assert dict(g.open) == {("noc", 1): 1}
    assert dict(g.breached_running) == {("response", "noc"): 1, ("resolution", "noc"): 1}
    # a met both; b missed both (stopped); d breached both (running)
    assert dict(g.breached_tickets) == {"response": 2, "resolution": 2}
