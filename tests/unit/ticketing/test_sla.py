"""SLA policies and clocks: scenarios on a 24x7 and a Mon-Fri 08:00-18:00 UTC calendar,
bad policies naming the path, selection specificity, and a minute-stepping reference."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.calendar import BusinessCalendar
from servicegraph.ticketing.sla import (
    ClockEvent,
    ClockKind,
    ClockState,
    SlaPolicies,
    evaluate,
    parse_duration,
    running_spans,
)

UTC = dt.UTC
MIN = dt.timedelta(minutes=1)


class AllHours:
    """24x7: every instant counts."""

    def working(self, at: dt.datetime) -> bool:
        return True

    def elapsed(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        return max(end - start, dt.timedelta(0))

    def add(self, start: dt.datetime, duration: dt.timedelta) -> dt.datetime:
        return start + duration


class OfficeHours:
    """Mon-Fri 08:00-18:00 UTC, written plainly day by day."""

    def working(self, at: dt.datetime) -> bool:
        return at.weekday() < 5 and 8 <= at.hour < 18

    def _window(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        if day.weekday() >= 5:
            return None
        base = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
        return base + dt.timedelta(hours=8), base + dt.timedelta(hours=18)

    def elapsed(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        total = dt.timedelta(0)
        day = start.date()
        while day <= end.date():
            w = self._window(day)
            if w is not None:
                a, b = max(w[0], start), min(w[1], end)
                if b > a:
                    total += b - a
            day += dt.timedelta(days=1)
        return total

    def add(self, start: dt.datetime, duration: dt.timedelta) -> dt.datetime:
        left, day, at = duration, start.date(), start
        while True:
            w = self._window(day)
            if w is not None and at < w[1]:
                a = max(at, w[0])
                if a + left <= w[1]:
                    return a + left
                left -= w[1] - a
            day += dt.timedelta(days=1)
            at = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


CALENDARS = {"24x7": AllHours(), "office": OfficeHours()}


def t(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """An instant in January 2024: the 1st is a Monday, the 6th/7th a weekend."""
    return dt.datetime(2024, 1, day, hour, minute, tzinfo=UTC)


def policies(*raw: dict[str, Any]) -> SlaPolicies:
    return SlaPolicies.build(list(raw), calendars=CALENDARS)


BASE = {"name": "p", "targets": {2: {"response": "1h", "resolution": "8h"}}}
H = dt.timedelta(hours=1)


def ev(at: dt.datetime, status: str, reason: str | None = None) -> ClockEvent:
    return ClockEvent(at, status, reason)


# --- durations and bad policies ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30m", 30 * MIN), ("4h", 4 * H), ("2d", 48 * H), ("1h30m", 90 * MIN), (90, 90 * MIN / 60)],
)
def test_durations(text: object, expected: dt.timedelta) -> None:
    assert parse_duration(text, field="x") == expected


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"calendar": "moon"}, "sla.policies[0].calendar"),
        ({"targets": {}}, "sla.policies[0].targets"),
        ({"targets": None}, "sla.policies[0].targets"),
        (
            {"targets": {2: {"response": "4x", "resolution": "8h"}}},
            "sla.policies[0].targets.2.response",
        ),
        (
            {"targets": {2: {"response": "0m", "resolution": "8h"}}},
            "sla.policies[0].targets.2.response",
        ),
        ({"targets": {2: {"response": "1h"}}}, "sla.policies[0].targets.2.resolution"),
        ({"targets": {6: {"response": "1h", "resolution": "8h"}}}, "sla.policies[0].targets.6"),
        ({"targets": {0: {"response": "1h", "resolution": "8h"}}}, "sla.policies[0].targets.0"),
        ({"at_risk": 1.0}, "sla.policies[0].at_risk"),
        ({"at_risk": 0}, "sla.policies[0].at_risk"),
        ({"pausing_reasons": ["coffee"]}, "sla.policies[0].pausing_reasons[0]"),
        ({"colour": "red"}, "sla.policies[0].colour"),
        ({"name": ""}, "sla.policies[0].name"),
    ],
)
def test_bad_policy_names_the_path(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        SlaPolicies.build([{**BASE, **change}], calendars=CALENDARS)
    assert err.value.field == field


def test_duplicate_name_names_the_second() -> None:
    with pytest.raises(ValidationFailed) as err:
        SlaPolicies.build([BASE, BASE], calendars=CALENDARS, path="desk.sla")
    assert err.value.field == "desk.sla[1].name"


def test_defaults() -> None:
    p = policies({**BASE, "targets": {"2": {"response": 3600, "resolution": "8h"}}}).policies[0]
    assert p.at_risk == 0.75 and p.calendar == "24x7"
    assert p.pausing_reasons == {"awaiting_requester", "awaiting_vendor"}
    assert p.targets[2].response == H


# --- selection ---------------------------------------------------------------------------

ALL = {1: {"response": "1h", "resolution": "4h"}, 3: {"response": "4h", "resolution": "1d"}}
SELECTION = policies(
    {"name": "default", "targets": ALL},
    {"name": "type", "ticket_type": "service_request", "targets": ALL},
    {"name": "org", "organisation": "acme", "targets": ALL},
    {"name": "svc", "service": "mail", "targets": ALL},
    {"name": "svc-again", "service": "mail", "targets": ALL},
    {"name": "org-svc", "service": "mail", "organisation": "acme", "targets": ALL},
    {"name": "org-svc-p1", "service": "web", "organisation": "acme", "targets": {1: ALL[1]}},
)


@pytest.mark.parametrize(
    ("service", "org", "ticket_type", "priority", "expected"),
    [
        ("mail", "acme", "incident", 1, "org-svc"),
        ("mail", "globex", "incident", 1, "svc"),  # ties: declaration order
        ("web", "acme", "incident", 1, "org-svc-p1"),
        ("web", "acme", "incident", 3, "org"),  # no P3 targets there: the next one applies
        ("web", "globex", "service_request", 3, "type"),
        ("web", None, "incident", 3, "default"),
        ("web", None, "incident", 2, None),
    ],
)
def test_selection(
    service: str, org: str | None, ticket_type: str, priority: int, expected: str | None
) -> None:
    chosen = SELECTION.select(service, org, ticket_type, priority)
    assert (chosen.name if chosen else None) == expected


# --- clock scenarios ---------------------------------------------------------------------

OFFICE = policies({**BASE, "calendar": "office"}).policies[0]
ALWAYS = policies(BASE).policies[0]


@pytest.mark.parametrize(
    ("name", "policy", "created", "events", "response_at", "now", "kind", "expect"),
    [
        # Friday 16:00 + 8 business hours = Monday 14:00 across the weekend
        (
            "weekend",
            OFFICE,
            t(5, 16),
            [],
            None,
            t(8, 9),
            ClockKind.RESOLUTION,
            {"elapsed": 3 * H, "state": ClockState.OK, "due": t(8, 14)},
        ),
        # pending for the requester 2h: paused, due pushed by 2h
        (
            "pending pause",
            ALWAYS,
            t(1, 9),
            [ev(t(1, 10), "pending", "awaiting_requester"), ev(t(1, 12), "in_progress")],
            t(1, 9, 30),
            t(1, 13),
            ClockKind.RESOLUTION,
            {"elapsed": 2 * H, "due": t(1, 19), "paused": False},
        ),
        (
            "paused now",
            ALWAYS,
            t(1, 9),
            [ev(t(1, 10), "pending", "awaiting_vendor")],
            None,
            t(1, 13),
            ClockKind.RESOLUTION,
            {"elapsed": H, "paused": True, "due": t(1, 20)},
        ),
        # awaiting_change is not a pausing reason by default
        (
            "change runs",
            ALWAYS,
            t(1, 9),
            [ev(t(1, 10), "pending", "awaiting_change")],
            None,
            t(1, 13),
            ClockKind.RESOLUTION,
            {"elapsed": 4 * H, "paused": False},
        ),
        # resolved after 3h, reopened a day later: 3h + 2h continue
        (
            "reopen",
            ALWAYS,
            t(1, 9),
            [ev(t(1, 12), "resolved"), ev(t(2, 12), "in_progress")],
            t(1, 9, 10),
            t(2, 14),
            ClockKind.RESOLUTION,
            {"elapsed": 5 * H, "state": ClockState.OK},
        ),
        (
            "stopped met",
            ALWAYS,
            t(1, 9),
            [ev(t(1, 12), "resolved")],
            None,
            t(3, 0),
            ClockKind.RESOLUTION,
            {"elapsed": 3 * H, "state": ClockState.MET, "due": t(1, 17), "stopped_at": t(1, 12)},
        ),
        (
            "response met",
            ALWAYS,
            t(1, 9),
            [],
            t(1, 9, 45),
            t(1, 15),
            ClockKind.RESPONSE,
            {"elapsed": 45 * MIN, "state": ClockState.MET, "breached_at": None},
        ),
        (
            "response missed",
            ALWAYS,
            t(1, 9),
            [],
            t(1, 10, 30),
            t(1, 15),
            ClockKind.RESPONSE,
            {
                "elapsed": 90 * MIN,
                "state": ClockState.MISSED,
                "breached_at": t(1, 10),
                "due": t(1, 10),
            },
        ),
        (
            "response exact",
            ALWAYS,
            t(1, 9),
            [],
            t(1, 10),
            t(1, 15),
            ClockKind.RESPONSE,
            {"state": ClockState.MET, "breached_at": None},
        ),
        (
            "no response yet",
            ALWAYS,
            t(1, 9),
            [],
            None,
            t(1, 9, 40),
            ClockKind.RESPONSE,
            {"state": ClockState.OK, "remaining": 20 * MIN, "due": t(1, 10)},
        ),
        (
            "resolved unanswered",
            ALWAYS,
            t(1, 9),
            [ev(t(1, 9, 20), "resolved")],
            None,
            t(1, 15),
            ClockKind.RESPONSE,
            {"state": ClockState.MET, "stopped_at": t(1, 9, 20)},
        ),
        (
            "at risk 75%",
            ALWAYS,
            t(1, 9),
            [],
            None,
            t(1, 15),
            ClockKind.RESOLUTION,
            {"state": ClockState.AT_RISK, "remaining": 2 * H},
        ),
        (
            "just under 75%",
            ALWAYS,
            t(1, 9),
            [],
            None,
            t(1, 14, 59),
            ClockKind.RESOLUTION,
            {"state": ClockState.OK},
        ),
        # office: Mon 16:00 + 8h = Tue 14:00; pending Tue 09-11 moves it to 16:00
        (
            "breached exact",
            OFFICE,
            t(1, 16),
            [ev(t(2, 9), "pending", "awaiting_requester"), ev(t(2, 11), "assigned")],
            None,
            t(3, 9),
            ClockKind.RESOLUTION,
            {
                "state": ClockState.BREACHED,
                "breached_at": t(2, 16),
                "due": t(2, 16),
                "remaining": dt.timedelta(0),
            },
        ),
        (
            "missed after reopen",
            OFFICE,
            t(1, 16),
            [ev(t(2, 12), "resolved"), ev(t(2, 13), "in_progress"), ev(t(2, 17), "resolved")],
            None,
            t(4, 9),
            ClockKind.RESOLUTION,
            {"state": ClockState.MISSED, "breached_at": t(2, 15), "elapsed": 10 * H},
        ),
    ],
)
def test_clock_scenarios(
    name: str,
    policy: Any,
    created: dt.datetime,
    events: list[ClockEvent],
    response_at: dt.datetime | None,
    now: dt.datetime,
    kind: ClockKind,
    expect: dict[str, Any],
) -> None:
    response, resolution = evaluate(
        policy, CALENDARS[policy.calendar], 2, created, events, response_at, now
    )
    clock = response if kind is ClockKind.RESPONSE else resolution
    assert clock.kind is kind
    for attribute, value in expect.items():
        assert getattr(clock, attribute) == value, (name, attribute)


def test_priority_change_applies_new_target_to_whole_elapsed_time() -> None:
    """Raised from P3 to P1 after 3h: the P1 4h target now counts the 3h already spent."""
    policy = SELECTION.policies[0]
    _, p3 = evaluate(policy, AllHours(), 3, t(1, 9), [], None, t(1, 12))
    _, p1 = evaluate(policy, AllHours(), 1, t(1, 9), [], None, t(1, 12))
    assert p3.state is ClockState.OK and p1.state is ClockState.AT_RISK
    assert p1.elapsed == p3.elapsed == 3 * H and p1.due == t(1, 13)


def test_priority_without_targets_names_priority() -> None:
    with pytest.raises(ValidationFailed) as err:
        evaluate(ALWAYS, AllHours(), 4, t(1, 9), [], None, t(1, 10))
    assert err.value.field == "priority"


def test_unknown_status_names_the_event() -> None:
    with pytest.raises(ValidationFailed) as err:
        evaluate(ALWAYS, AllHours(), 2, t(1, 9), [ev(t(1, 9, 5), "lost")], None, t(1, 10))
    assert err.value.field == "events[0].status"


# --- property: evaluate's elapsed equals a plain minute-by-minute count -------------------

STATUSES = ["assigned", "in_progress", "pending", "resolved", "closed"]
REASONS = ["awaiting_requester", "awaiting_vendor", "awaiting_change"]


@st.composite
def histories(
    draw: st.DrawFn,
) -> tuple[dt.datetime, list[ClockEvent], dt.datetime | None, dt.datetime]:
    created = t(draw(st.integers(1, 7)), draw(st.integers(0, 23)), draw(st.integers(0, 59)))
    offsets = sorted(draw(st.lists(st.integers(0, 3000), max_size=6)))
    events = [
        ClockEvent(created + o * MIN, s, draw(st.sampled_from(REASONS)) if s == "pending" else None)
        for o, s in zip(
            offsets,
            draw(st.lists(st.sampled_from(STATUSES), min_size=len(offsets), max_size=len(offsets))),
            strict=True,
        )
    ]
    response = draw(st.none() | st.integers(0, 3000).map(lambda o: created + o * MIN))
    return created, events, response, created + draw(st.integers(0, 3200)) * MIN


def reference(
    created: dt.datetime,
    events: list[ClockEvent],
    response: dt.datetime | None,
    now: dt.datetime,
    calendar: Any,
    kind: ClockKind,
) -> dt.timedelta:
    """Step minute by minute, asking the status at each minute; no intervals, no cleverness."""
    counted, at, stopped = dt.timedelta(0), created, False
    while at < now:
        status, reason = "new", None
        for e in events:
            if e.at <= at:
                status, reason = str(e.status), e.pending_reason
        inactive = status in ("resolved", "closed")
        if kind is ClockKind.RESPONSE and (inactive or (response is not None and at >= response)):
            stopped = True
        paused = status == "pending" and reason in ("awaiting_requester", "awaiting_vendor")
        if not stopped and not inactive and not paused and calendar.working(at):
            counted += MIN
        at += MIN
    return counted


@settings(max_examples=60, deadline=None)
@given(history=histories(), calendar_name=st.sampled_from(["24x7", "office"]))
def test_elapsed_matches_minute_reference(history: Any, calendar_name: str) -> None:
    created, events, response, now = history
    calendar = CALENDARS[calendar_name]
    policy = {"24x7": ALWAYS, "office": OFFICE}[calendar_name]
    clocks = evaluate(policy, calendar, 2, created, events, response, now)
    for clock in clocks:
        assert clock.elapsed == reference(created, events, response, now, calendar, clock.kind)
        assert clock.remaining == max(clock.target - clock.elapsed, dt.timedelta(0))
        if clock.breached_at is not None:  # the breach instant is where the target was reached
            spans, _, _ = running_spans(
                created,
                events,
                now,
                kind=clock.kind,
                pausing_reasons=policy.pausing_reasons,
                first_response_at=response,
            )
            upto = sum(
                (
                    calendar.elapsed(a, min(b, clock.breached_at))
                    for a, b in spans
                    if a < clock.breached_at
                ),
                dt.timedelta(0),
            )
            assert upto == clock.target


def test_clocks_on_the_real_business_calendar_agree_with_the_plain_one() -> None:
    """The desk's BusinessCalendar (Mon-Fri 08:00-18:00 UTC) gives the clocks the same
    figures as the plain office calendar above, across a weekend and a pending pause."""
    from servicegraph.ticketing.calendar import BusinessCalendar

    day = [["08:00", "18:00"]]
    real = BusinessCalendar.build(
        {"timezone": "UTC", "hours": {d: day for d in ("mon", "tue", "wed", "thu", "fri")}}
    )
    calendars = {"24x7": AllHours(), "office": real}
    (policy,) = SlaPolicies.build([{**BASE, "calendar": "office"}], calendars=calendars).policies
    events = [
        ev(t(5, 9), "assigned"),
        ev(t(5, 10), "pending", "awaiting_requester"),
        ev(t(8, 9), "in_progress"),
    ]
    got = evaluate(policy, real, 2, t(5, 9), events, t(5, 9, 30), t(8, 12))
    want = evaluate(policy, OfficeHours(), 2, t(5, 9), events, t(5, 9, 30), t(8, 12))
    assert got == want
    response, resolution = got
    assert response.state is ClockState.MET
    assert resolution.elapsed == 4 * H  # Friday 09-10, then Monday 09-12; the weekend and
    # the pending hours do not count


# --- property: the real calendar across a weekend, holidays and the DST change ------------

BERLIN = ZoneInfo("Europe/Berlin")
# Good Friday (3 April 2026) and Easter Monday (6 April) are German holidays; summer time
# starts on Sunday 29 March; the window below holds two weekends
EASTER = {dt.date(2026, 4, 3), dt.date(2026, 4, 6)}
BERLIN_OFFICE = BusinessCalendar.build(
    {
        "timezone": "Europe/Berlin",
        "hours": {d: [["08:00", "12:00"], ["13:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},  # noqa: E501
        "holidays": {"country": "DE"},
    }
)  # fmt: skip
BERLIN_POLICY = SlaPolicies.build(
    [{**BASE, "calendar": "berlin"}], calendars={"berlin": BERLIN_OFFICE}
).policies[0]


class PlainBerlin:
    """Working minutes told from the local wall clock by zoneinfo, nothing else."""

    def working(self, at: dt.datetime) -> bool:
        local = at.astimezone(BERLIN)
        if local.weekday() >= 5 or local.date() in EASTER:
            return False
        minutes = local.hour * 60 + local.minute
        return 8 * 60 <= minutes < 12 * 60 or 13 * 60 <= minutes < 18 * 60


@st.composite
def easter_histories(
    draw: st.DrawFn,
) -> tuple[dt.datetime, list[ClockEvent], dt.datetime | None, dt.datetime]:
    # a Thursday or Friday before the DST change or before Easter, at any minute
    day = draw(st.sampled_from([26, 27, 28, 33, 34]))  # March 26.. (33 = 2 April)
    start = dt.datetime(2026, 3, 1, tzinfo=UTC) + dt.timedelta(days=day - 1)
    created = start + draw(st.integers(0, 24 * 60)) * MIN
    offsets = sorted(draw(st.lists(st.integers(0, 8000), max_size=6)))
    statuses = draw(
        st.lists(st.sampled_from(STATUSES), min_size=len(offsets), max_size=len(offsets))
    )
    events = [
        ClockEvent(created + o * MIN, s, draw(st.sampled_from(REASONS)) if s == "pending" else None)
        for o, s in zip(offsets, statuses, strict=True)
    ]
    response = draw(st.none() | st.integers(0, 8000).map(lambda o: created + o * MIN))
    return created, events, response, created + draw(st.integers(0, 9000)) * MIN


@settings(max_examples=40, deadline=None)
@given(history=easter_histories())
def test_clocks_across_a_weekend_holidays_and_dst_match_a_plain_reference(history: Any) -> None:
    created, events, response, now = history
    for clock in evaluate(BERLIN_POLICY, BERLIN_OFFICE, 2, created, events, response, now):
        assert clock.elapsed == reference(created, events, response, now, PlainBerlin(), clock.kind)
