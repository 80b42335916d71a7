"""The reports' pure parts: validated queries (each bad part named), the time axis (ISO
weeks across years, time zones, the window's dates), the distribution figures against
the statistics module, and the backlog at many instants against a direct count."""

from __future__ import annotations

import datetime as dt
import statistics
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.model import Channel, TicketType
from servicegraph.ticketing.report_periods import (
    MAX_PERIODS,
    Per,
    cut,
    following,
    label,
    start_of,
)
from servicegraph.ticketing.report_ports import Interval
from servicegraph.ticketing.report_service import backlog_rows, measuring_points
from servicegraph.ticketing.reports import (
    AGEING,
    AGEING_BOUNDS_S,
    BacklogRow,
    ClockCompliance,
    ComplianceRow,
    DurationRow,
    Durations,
    GroupBy,
    ReportName,
    ReportQuery,
    flat,
    quantile,
    report_query,
    summarise,
)

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# -- queries ---------------------------------------------------------------------------------


def test_a_query_from_what_a_user_typed() -> None:
    q = report_query(
        "MTTR",
        start="2026-01-01",
        end="2026-12-31",
        by="Group",
        per="week",
        group="network",
        priority="P2",
        type="incident",
        channel="email",
    )
    assert q.name is ReportName.MTTR
    assert q.by is GroupBy.GROUP and q.per is Per.WEEK
    # a date in --to includes that day: the window is the whole year
    assert (q.start, q.end) == (at(2026, 1, 1), at(2027, 1, 1))
    assert q.filter.group == "network" and q.filter.priority == 2
    assert q.filter.type is TicketType.INCIDENT and q.filter.channel is Channel.EMAIL
    assert q.timezone == "UTC"


def test_dates_are_days_of_the_reports_time_zone_and_times_are_instants() -> None:
    q = report_query("volume", start="2026-07-01", end="2026-07-01", timezone="Europe/Berlin")
    assert (q.start, q.end) == (at(2026, 6, 30, 22), at(2026, 7, 1, 22))
    q = report_query("volume", start="2026-07-01T12:00", end="2026-07-01T13:00Z")
    assert (q.start, q.end) == (at(2026, 7, 1, 12), at(2026, 7, 1, 13))
    q = report_query("volume", start="2026-07-01T12:00", timezone="Europe/Berlin")
    assert q.start == at(2026, 7, 1, 10)
    assert report_query("volume", start=dt.date(2026, 7, 1)).start == at(2026, 7, 1)


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"name": "mttx"}, "name", "unknown report 'mttx'"),
        ({"by": "colour"}, "by", "unknown field 'colour'"),
        ({"per": "fortnight"}, "per", "unknown period 'fortnight'"),
        ({"start": "2026-02-01", "end": "2026-01-01"}, "from", "is not before to"),
        ({"start": "2026-01-01T00:00Z", "end": "2026-01-01T00:00Z"}, "from", "the window is empty"),
        ({"start": "yesterday"}, "from", "not a date"),
        ({"end": "2026-02-30"}, "to", "not a valid date"),
        ({"timezone": "Mars/Olympus"}, "timezone", "not a time zone"),
        ({"priority": "6"}, "priority", "not a priority 1..5"),
        ({"priority": "high"}, "priority", "not a priority"),
        ({"type": "problem"}, "type", "unknown ticket type"),
        ({"channel": "pigeon"}, "channel", "unknown channel"),
    ],
)
def test_each_bad_part_of_a_query_is_named(kwargs: dict[str, str], field: str, words: str) -> None:
    args = {"name": "volume", **kwargs}
    with pytest.raises(ValidationFailed) as caught:
        report_query(args.pop("name"), **args)
    assert caught.value.field == field
    assert words in caught.value.reason
    assert "known:" in caught.value.reason or field not in ("name", "by", "per")


# -- periods ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "per", "tz", "expected"),
    [
        (at(2026, 3, 2, 23, 30), Per.DAY, UTC, "2026-03-02"),
        (at(2026, 3, 2, 23, 30), Per.DAY, BERLIN, "2026-03-03"),
        (at(2026, 1, 1), Per.WEEK, UTC, "2026-W01"),  # a Thursday: week 1
        (at(2027, 1, 1), Per.WEEK, UTC, "2026-W53"),  # a Friday: the last week of 2026
        (at(2027, 1, 4), Per.WEEK, UTC, "2027-W01"),
        (at(2024, 12, 30), Per.WEEK, UTC, "2025-W01"),  # a Monday of 2024 in 2025's week 1
        (at(2026, 3, 1, 23, 30), Per.WEEK, BERLIN, "2026-W10"),  # Monday already in Berlin
        (at(2026, 3, 31, 22, 30), Per.MONTH, UTC, "2026-03"),
        (at(2026, 3, 31, 22, 30), Per.MONTH, BERLIN, "2026-04"),
    ],
)
def test_period_labels(moment: dt.datetime, per: Per, tz: dt.tzinfo, expected: str) -> None:
    assert label(moment, per, tz) == expected
    begins = start_of(expected, per, tz)
    assert begins <= moment < start_of(following(expected, per), per, tz)
    assert label(begins, per, tz) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2040, 1, 1)),
    st.sampled_from(list(Per)),
    st.sampled_from([UTC, BERLIN, ZoneInfo("America/New_York")]),
)
def test_every_instant_lies_in_its_labelled_period(
    naive: dt.datetime, per: Per, tz: dt.tzinfo
) -> None:
    moment = naive.replace(tzinfo=UTC)
    name = label(moment, per, tz)
    assert start_of(name, per, tz) <= moment < start_of(following(name, per), per, tz)


def test_cut_gives_the_periods_meeting_the_window() -> None:
    periods = cut(at(2026, 3, 1, 12), at(2026, 3, 4), Per.DAY, UTC)
    assert [p[0] for p in periods] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert periods[0][1:] == (at(2026, 3, 1), at(2026, 3, 2))
    # Berlin's day of the clock change is 23 hours long
    (day,) = cut(at(2026, 3, 28, 23), at(2026, 3, 29, 22), Per.DAY, BERLIN)
    assert day == ("2026-03-29", at(2026, 3, 28, 23), at(2026, 3, 29, 22))
    weeks = cut(at(2026, 12, 28), at(2027, 1, 5), Per.WEEK, UTC)
    assert [w[0] for w in weeks] == ["2026-W53", "2027-W01"]
    assert cut(at(2026, 3, 1), at(2026, 3, 1), Per.MONTH, UTC) == []
    with pytest.raises(ValidationFailed) as caught:
        cut(at(2000, 1, 1), at(2000, 1, 1) + dt.timedelta(days=MAX_PERIODS + 5), Per.DAY, UTC)
    assert caught.value.field == "per"


# -- distributions -----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e7, allow_nan=False), min_size=2))
def test_median_and_p90_are_the_statistics_modules(values: list[float]) -> None:
    d = summarise(values)
    assert d.count == len(values)
    assert d.median_s == pytest.approx(statistics.median(values))
    # the "inclusive" method is linear interpolation between closest ranks (type 7)
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    assert d.p90_s == pytest.approx(deciles[8], abs=1e-6)
    assert d.mean_s == pytest.approx(statistics.fmean(values))
    assert d.max_s == max(values)


def test_distribution_of_one_and_of_none() -> None:
    assert summarise([]) == Durations()
    assert summarise([5.0]) == Durations(1, 5.0, 5.0, 5.0, 5.0)
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([0.0, 10.0], 0.9) == 9.0


# -- the backlog --------------------------------------------------------------------------------

T0 = at(2026, 3, 1)
DAY = dt.timedelta(days=1)


def _reference(
    intervals: list[Interval], points: list[tuple[str | None, dt.datetime]]
) -> list[BacklogRow]:
    """The backlog at each point counted directly: open = opened <= at < ended."""
    rows = []
    for key in {iv.key for iv in intervals}:
        for period, moment in points:
            buckets = [0] * len(AGEING)
            for iv in intervals:
                if iv.key != key or iv.opened > moment:
                    continue
                if iv.ended is not None and iv.ended <= moment:
                    continue
                age = (moment - iv.opened).total_seconds()
                bucket = max(b for b, lower in enumerate(AGEING_BOUNDS_S) if age >= lower)
                buckets[bucket] += 1
            if sum(buckets):
                rows.append(BacklogRow(period, key, moment, sum(buckets), *buckets))
    return rows


def _order(rows: list[BacklogRow]) -> list[BacklogRow]:
    return sorted(rows, key=lambda r: (r.at, r.key or ""))


def test_backlog_by_age_at_each_point() -> None:
    intervals = [
        Interval("a", T0, T0 + 2 * DAY),  # gone at 2d: open at 1d (1-3 days old)
        Interval("a", T0 - 40 * DAY, None),  # over 30 days old
        Interval("b", T0 + DAY, T0 + DAY),  # opened and resolved at the same instant: never open
        Interval("b", T0 + 1.5 * DAY, None),
    ]
    points: list[tuple[str | None, dt.datetime]] = [
        ("d1", T0 + DAY),
        ("d2", T0 + 2 * DAY),
        ("d5", T0 + 5 * DAY),
    ]
    got = _order(backlog_rows(intervals, points))
    assert got == _order(_reference(intervals, points))
    first = [r for r in got if r.period == "d1"]
    assert [(r.key, r.open, r.d1_to_3, r.over_30d) for r in first] == [("a", 2, 1, 1)]
    assert [(r.key, r.open) for r in got if r.period == "d2"] == [("a", 1), ("b", 1)]
    d5 = next(r for r in got if r.period == "d5" and r.key == "b")
    assert (d5.open, d5.d3_to_7) == (1, 1)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", None]),
            st.integers(min_value=-50 * 24, max_value=60 * 24),  # opened, hours from T0
            st.one_of(st.none(), st.integers(min_value=0, max_value=60 * 24)),  # open for
        ),
        max_size=40,
    ),
    st.lists(st.integers(min_value=-10 * 24, max_value=90 * 24), min_size=1, max_size=12),
)
def test_backlog_against_a_direct_count(
    raw: list[tuple[str | None, int, int | None]], hours: list[int]
) -> None:
    intervals = [
        Interval(
            key, T0 + dt.timedelta(hours=o), None if d is None else T0 + dt.timedelta(hours=o + d)
        )
        for key, o, d in raw
    ]
    points: list[tuple[str | None, dt.datetime]] = [
        (str(h), T0 + dt.timedelta(hours=h)) for h in sorted(set(hours))
    ]
    assert _order(backlog_rows(intervals, points)) == _order(_reference(intervals, points))


def test_where_a_backlog_is_taken() -> None:
    now = at(2026, 3, 10, 12)
    q = report_query("backlog")
    assert measuring_points(q, now, lambda: None) == [(None, now)]
    q = report_query("backlog", end="2026-03-05")
    assert measuring_points(q, now, lambda: None) == [(None, at(2026, 3, 6))]
    q = report_query("backlog", start="2026-03-08", per="day")
    points = measuring_points(q, now, lambda: None)
    assert points == [
        ("2026-03-08", at(2026, 3, 9)),
        ("2026-03-09", at(2026, 3, 10)),
        ("2026-03-10", now),  # the day not over yet: now
    ]
    # no start: from the first ticket's opening; no ticket: nothing to say
    q = report_query("backlog", per="week")
    assert [p for p, _ in measuring_points(q, now, lambda: at(2026, 3, 3))] == [
        "2026-W10",
        "2026-W11",
    ]
    assert measuring_points(q, now, lambda: None) == []


# -- rows ---------------------------------------------------------------------------------------


def test_rows_flatten_to_named_figures() -> None:
    row = ComplianceRow("2026-03", "network", ClockCompliance(3, 1, 2), ClockCompliance(0, 0, 1))
    figures = flat(row)
    assert figures["response_compliance"] == 0.75
    assert figures["resolution_compliance"] is None  # no clock stopped: no share
    assert figures["resolution_breached_running"] == 1
    d = flat(DurationRow(None, None, summarise([60.0, 120.0]), Durations()))
    assert (d["median_s"], d["business_count"], d["business_median_s"]) == (90.0, 0, None)
    assert list(d)[:2] == ["period", "key"]


def test_a_query_default() -> None:
    q = ReportQuery(ReportName.VOLUME)
    assert q.tz is UTC and q.by is None and q.filter.priority is None
