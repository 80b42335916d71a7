"""Business calendars: table-driven clock cases, every refused declaration naming its path,
and a property test against a plain minute-by-minute reference."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.calendar import TWENTY_FOUR_SEVEN, WEEKDAYS, BusinessCalendar

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAY_HOURS = {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
OFFICE = BusinessCalendar.build({"timezone": "Europe/Berlin", "hours": WEEKDAY_HOURS})
BAVARIA = BusinessCalendar.build(
    {
        "timezone": "Europe/Berlin",
        "hours": WEEKDAY_HOURS,
        "holidays": {"country": "DE", "subdivision": "BY", "dates": ["2026-12-24"]},
    }
)
EVERY_DAY = BusinessCalendar.build(
    {"timezone": "Europe/Berlin", "hours": {d: [["08:00", "18:00"]] for d in WEEKDAYS}}
)
ROUND_CLOCK_BERLIN = BusinessCalendar.build({"timezone": "Europe/Berlin"})
# a night shift Mon 22:00 - Tue 06:00, and a Wednesday split by lunch
NIGHT_AND_SPLIT = BusinessCalendar.build(
    {
        "timezone": "Europe/Berlin",
        "hours": {
            "mon": [["22:00", "24:00"]],
            "tue": [["00:00", "06:00"]],
            "wed": [["13:00", "18:00"], ["08:00", "12:00"]],
        },
    }
)
# wall-clock intervals inside the DST gap (spring) and the repeated hour (autumn)
TRANSITION_HOURS = BusinessCalendar.build(
    {"timezone": "Europe/Berlin", "hours": {"sun": [["01:30", "03:30"]]}}
)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


H = timedelta(hours=1)

ELAPSED = [
    # name, calendar, start, end, business time
    ("within a day", OFFICE, local(2026, 6, 1, 9), local(2026, 6, 1, 17), 8 * H),
    ("over a weekend", OFFICE, local(2026, 6, 5, 16), local(2026, 6, 8, 10), 4 * H),
    ("whole weeks", OFFICE, local(2026, 6, 1), local(2026, 6, 29), 200 * H),
    ("opened at night", OFFICE, local(2026, 6, 1, 20), local(2026, 6, 2, 9), 1 * H),
    ("end before start", OFFICE, local(2026, 6, 2), local(2026, 6, 1), timedelta(0)),
    # 2026-06-04 is Corpus Christi in Bavaria, not in Berlin's federal list
    ("Bavarian holiday", BAVARIA, local(2026, 6, 3, 12), local(2026, 6, 5, 12), 10 * H),
    ("same days elsewhere", OFFICE, local(2026, 6, 3, 12), local(2026, 6, 5, 12), 20 * H),
    ("explicit date", BAVARIA, local(2026, 12, 23), local(2026, 12, 25), 10 * H),
    ("spring DST day", EVERY_DAY, local(2026, 3, 29), local(2026, 3, 30), 10 * H),
    ("autumn DST day", EVERY_DAY, local(2026, 10, 25), local(2026, 10, 26), 10 * H),
    ("spring 24h day", ROUND_CLOCK_BERLIN, local(2026, 3, 29), local(2026, 3, 30), 23 * H),
    ("autumn 24h day", ROUND_CLOCK_BERLIN, local(2026, 10, 25), local(2026, 10, 26), 25 * H),
    # 01:30-03:30 wall time: 02:00-03:00 never shows in spring, shows twice in autumn
    ("gap hour", TRANSITION_HOURS, local(2026, 3, 29), local(2026, 3, 30), 1 * H),
    ("repeated hour", TRANSITION_HOURS, local(2026, 10, 25), local(2026, 10, 26), 3 * H),
    ("overnight shift", NIGHT_AND_SPLIT, local(2026, 6, 1, 23), local(2026, 6, 2, 12), 7 * H),
    ("split day", NIGHT_AND_SPLIT, local(2026, 6, 3, 7), local(2026, 6, 3, 20), 9 * H),
    (
        "24x7",
        TWENTY_FOUR_SEVEN,
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC),
        timedelta(days=90, seconds=1),
    ),
]


@pytest.mark.parametrize(
    ("calendar", "start", "end", "expected"), [c[1:] for c in ELAPSED], ids=[c[0] for c in ELAPSED]
)
def test_elapsed(
    calendar: BusinessCalendar, start: datetime, end: datetime, expected: timedelta
) -> None:
    assert calendar.elapsed(start, end) == expected


ADD = [
    # name, calendar, start, duration, due (local)
    ("zero is the start", OFFICE, local(2026, 6, 6, 3), timedelta(0), local(2026, 6, 6, 3)),
    ("within the day", OFFICE, local(2026, 6, 1, 9), 4 * H, local(2026, 6, 1, 13)),
    ("to the day's end", OFFICE, local(2026, 6, 1, 9), 9 * H, local(2026, 6, 1, 18)),
    ("over a weekend", OFFICE, local(2026, 6, 5, 16), 4 * H, local(2026, 6, 8, 10)),
    ("opened on Saturday", OFFICE, local(2026, 6, 6, 11), 2 * H, local(2026, 6, 8, 10)),
    ("opened at night", OFFICE, local(2026, 6, 1, 20), 1 * H, local(2026, 6, 2, 9)),
    ("many weeks", OFFICE, local(2026, 6, 1, 8), 200 * H, local(2026, 6, 26, 18)),
    ("Bavarian holiday", BAVARIA, local(2026, 6, 3, 17), 2 * H, local(2026, 6, 5, 9)),
    ("Christmas Eve", BAVARIA, local(2026, 12, 23, 17), 2 * H, local(2026, 12, 28, 9)),
    ("spring DST", EVERY_DAY, local(2026, 3, 28, 17), 2 * H, local(2026, 3, 29, 9)),
    ("autumn DST", EVERY_DAY, local(2026, 10, 24, 17), 2 * H, local(2026, 10, 25, 9)),
    ("through the gap", ROUND_CLOCK_BERLIN, local(2026, 3, 29, 1), 2 * H, local(2026, 3, 29, 4)),
    ("overnight", NIGHT_AND_SPLIT, local(2026, 6, 1, 23), 3 * H, local(2026, 6, 2, 2)),
    ("over lunch", NIGHT_AND_SPLIT, local(2026, 6, 3, 11), 2 * H, local(2026, 6, 3, 14)),
]


@pytest.mark.parametrize(
    ("calendar", "start", "duration", "due"), [c[1:] for c in ADD], ids=[c[0] for c in ADD]
)
def test_add(
    calendar: BusinessCalendar, start: datetime, duration: timedelta, due: datetime
) -> None:
    result = calendar.add(start, duration)
    assert result == due
    assert result.tzinfo is UTC
    assert calendar.elapsed(start, result) == duration


def test_autumn_repeated_hour_counts_twice_in_add() -> None:
    # 01:30 CEST + 2 h of wall-clock 01:30-03:30 time: 01:30-02:59 CEST, 02:00-02:30 CET
    due = TRANSITION_HOURS.add(local(2026, 10, 25, 1, 30), 2 * H)
    assert due == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET


@pytest.mark.parametrize(
    ("calendar", "at", "working", "next_working"),
    [
        (OFFICE, local(2026, 6, 1, 8), True, local(2026, 6, 1, 8)),
        (OFFICE, local(2026, 6, 1, 18), False, local(2026, 6, 2, 8)),
        (OFFICE, local(2026, 6, 6, 12), False, local(2026, 6, 8, 8)),
        (BAVARIA, local(2026, 1, 6, 9), False, local(2026, 1, 7, 8)),  # Epiphany
        (EVERY_DAY, local(2026, 3, 29, 7), False, local(2026, 3, 29, 8)),
        (TRANSITION_HOURS, local(2026, 3, 29, 1, 45), True, local(2026, 3, 29, 1, 45)),
        (TWENTY_FOUR_SEVEN, local(2026, 12, 25, 3), True, local(2026, 12, 25, 3)),
    ],
)
def test_working_and_next_working(
    calendar: BusinessCalendar, at: datetime, working: bool, next_working: datetime
) -> None:
    assert calendar.working(at) is working
    assert calendar.next_working(at) == next_working


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: OFFICE.working(datetime(2026, 6, 1)), "at"),
        (lambda: OFFICE.next_working(datetime(2026, 6, 1)), "at"),
        (lambda: OFFICE.elapsed(datetime(2026, 6, 1), local(2026, 6, 2)), "start"),
        (lambda: OFFICE.elapsed(local(2026, 6, 1), datetime(2026, 6, 2)), "end"),
        (lambda: OFFICE.add(datetime(2026, 6, 1), H), "start"),
        (lambda: OFFICE.add(local(2026, 6, 1), -H), "duration"),
    ],
)
def test_naive_or_negative_refused(call: Any, field: str) -> None:
    with pytest.raises(ValidationFailed) as failure:
        call()
    assert failure.value.field == field


BAD = [
    ("not a mapping", ["Europe/Berlin"], "calendar"),
    ("unknown key", {"timezone": "UTC", "hour": {}}, "calendar.hour"),
    ("unknown zone", {"timezone": "Mars/Olympus"}, "calendar.timezone"),
    ("zone not a string", {"timezone": 1}, "calendar.timezone"),
    ("hours not a mapping", {"hours": [["08:00", "18:00"]]}, "calendar.hours"),
    ("unknown weekday", {"hours": {"monday": [["08:00", "18:00"]]}}, "calendar.hours.monday"),
    ("no working time", {"hours": {"mon": []}}, "calendar.hours"),
    ("day not a list", {"hours": {"mon": "08:00-18:00"}}, "calendar.hours.mon"),
    ("not a pair", {"hours": {"tue": [["08:00", "12:00"], ["13:00"]]}}, "calendar.hours.tue.1"),
    (
        "bad time",
        {"hours": {"tue": [["08:00", "12:00"], ["13:00", "18h"]]}},
        "calendar.hours.tue.1",
    ),
    ("hour 25", {"hours": {"wed": [["08:00", "25:00"]]}}, "calendar.hours.wed.0"),
    ("minute 60", {"hours": {"wed": [["08:60", "12:00"]]}}, "calendar.hours.wed.0"),
    ("24:00 as a start", {"hours": {"wed": [["24:00", "24:00"]]}}, "calendar.hours.wed.0"),
    ("inverted", {"hours": {"thu": [["18:00", "08:00"]]}}, "calendar.hours.thu.0"),
    ("empty", {"hours": {"thu": [["08:00", "08:00"]]}}, "calendar.hours.thu.0"),
    (
        "overlapping",
        {"hours": {"fri": [["12:00", "18:00"], ["08:00", "12:30"]]}},
        "calendar.hours.fri.0",
    ),
    ("unknown country", {"holidays": {"country": "XX"}}, "calendar.holidays.country"),
    (
        "unknown subdivision",
        {"holidays": {"country": "DE", "subdivision": "ZZ"}},
        "calendar.holidays.subdivision",
    ),
    ("subdivision alone", {"holidays": {"subdivision": "BY"}}, "calendar.holidays.subdivision"),
    ("unknown holiday key", {"holidays": {"region": "BY"}}, "calendar.holidays.region"),
    (
        "bad date",
        {"holidays": {"dates": ["2026-12-24", "2026-02-30"]}},
        "calendar.holidays.dates.1",
    ),
    ("date not a string", {"holidays": {"dates": [20261224]}}, "calendar.holidays.dates.0"),
    ("dates not a list", {"holidays": {"dates": "2026-12-24"}}, "calendar.holidays.dates"),
]


@pytest.mark.parametrize(("declaration", "field"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_declaration_names_its_path(declaration: Any, field: str) -> None:
    with pytest.raises(ValidationFailed) as failure:
        BusinessCalendar.build(declaration)
    assert failure.value.field == field


def test_path_prefix_and_yaml_dates() -> None:
    with pytest.raises(ValidationFailed) as failure:
        BusinessCalendar.build({"timezone": "Nowhere"}, path="sla.gold.calendar")
    assert failure.value.field == "sla.gold.calendar.timezone"
    calendar = BusinessCalendar.build({"holidays": {"dates": [date(2026, 12, 24)]}})
    assert calendar.is_holiday(date(2026, 12, 24))
    assert not calendar.working(datetime(2026, 12, 24, 12, tzinfo=UTC))


def test_ninety_days_without_stepping() -> None:
    import time

    start = local(2026, 1, 1, 7, 13)
    began = time.perf_counter()
    for _ in range(50):
        due = BAVARIA.add(start, 600 * H)
        BAVARIA.elapsed(start, start + timedelta(days=90))
    per_call = (time.perf_counter() - began) / 100
    assert BAVARIA.elapsed(start, due) == 600 * H
    assert per_call < 0.005  # milliseconds, where stepping minutes would take ~0.5 s


# -- property: against a plain minute-by-minute reference ---------------------------------


def reference_working(calendar: BusinessCalendar, moment: datetime) -> bool:
    """Plainly, the documented semantics: the local wall clock in a declared interval of a
    non-holiday local day."""
    wall = moment.astimezone(calendar.timezone)
    if calendar.is_holiday(wall.date()):
        return False
    seconds = wall.hour * 3600 + wall.minute * 60 + wall.second
    return any(s <= seconds < e for s, e in calendar.hours.get(wall.weekday(), ()))


def reference_elapsed(calendar: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    minutes, moment = 0, start
    while moment < end:
        minutes += reference_working(calendar, moment)
        moment += timedelta(minutes=1)
    return timedelta(minutes=minutes)


def reference_add(calendar: BusinessCalendar, start: datetime, minutes: int) -> datetime:
    moment = start
    while minutes:
        if reference_working(calendar, moment):
            minutes -= 1
        moment += timedelta(minutes=1)
    return moment


CALENDARS = [OFFICE, BAVARIA, EVERY_DAY, NIGHT_AND_SPLIT, TRANSITION_HOURS, ROUND_CLOCK_BERLIN]
# around the DST changes, Corpus Christi, Christmas and ordinary weeks of 2026
ANCHORS = [
    datetime(2026, 3, 27, tzinfo=UTC),
    datetime(2026, 6, 2, tzinfo=UTC),
    datetime(2026, 10, 23, tzinfo=UTC),
    datetime(2026, 12, 22, tzinfo=UTC),
]
PROPERTY = settings(max_examples=60, deadline=None, database=None)


@PROPERTY
@given(
    calendar=st.sampled_from(CALENDARS),
    anchor=st.sampled_from(ANCHORS),
    offset=st.integers(0, 4 * 24 * 60),
    span=st.integers(0, 3 * 24 * 60),
)
def test_elapsed_matches_minute_reference(
    calendar: BusinessCalendar, anchor: datetime, offset: int, span: int
) -> None:
    start = anchor + timedelta(minutes=offset)
    end = start + timedelta(minutes=span)
    assert calendar.elapsed(start, end) == reference_elapsed(calendar, start, end)


@PROPERTY
@given(
    calendar=st.sampled_from(CALENDARS),
    anchor=st.sampled_from(ANCHORS),
    offset=st.integers(0, 4 * 24 * 60),
    minutes=st.integers(1, 2 * 24 * 60),
)
def test_add_matches_minute_reference(
    calendar: BusinessCalendar, anchor: datetime, offset: int, minutes: int
) -> None:
    start = anchor + timedelta(minutes=offset)
    due = calendar.add(start, timedelta(minutes=minutes))
    assert due == reference_add(calendar, start, minutes)
    assert calendar.elapsed(start, due) == timedelta(minutes=minutes)
