"""The SLA projection: a record evaluated at a ticket's last change and advanced to a later
instant equals the clocks evaluated from the whole history at that instant (property, on
24x7 and on an office calendar with a holiday and a DST change), and ``next_check_at`` is
the instant the first level not yet fired is reached."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Incident, TicketType, WorklogEntry, WorklogKind
from servicegraph.ticketing.sla import ClockKind, clock_events, evaluate
from servicegraph.ticketing.sla_config import SlaConfig
from servicegraph.ticketing.sla_projection import SlaProjector

T0 = dt.datetime(2026, 3, 23, 7, 0, tzinfo=dt.UTC)  # a Monday, the week before DST in Berlin
MIN = dt.timedelta(minutes=1)
CALENDARS = {
    "office": {
        "timezone": "Europe/Berlin",
        "hours": {d: [["08:00", "12:00"], ["13:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},  # noqa: E501
        "holidays": {"dates": ["2026-03-25"]},
    }
}  # fmt: skip
TARGETS = {p: {"response": "2h", "resolution": "20h"} for p in range(1, 6)}


def config(calendar: str) -> SlaConfig:
    policy = {
        "name": "p",
        "calendar": calendar,
        "targets": TARGETS,
        "escalation": [{"clock": "resolution", "at": 0.5, "notify": ["group"]}],
    }
    return SlaConfig.build(CALENDARS, {"policies": [policy]})


def ticket(updated: dt.datetime, status: TicketStatus, responded: dt.datetime | None) -> Incident:
    return Incident(
        id="inc-1",
        number=1,
        title="t",
        status=status,
        opened_at=T0,
        updated_at=updated,
        last_alert_at=T0,
        priority=3,
        type=TicketType.INCIDENT,
        first_response_at=responded,
    )


STEPS = ["assigned", "in_progress", "pending", "resolved", "assigned", "in_progress"]
REASONS = ["awaiting_requester", "awaiting_change"]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[WorklogEntry], dt.datetime | None, int, int]:
    offsets = sorted(draw(st.lists(st.integers(0, 6000), max_size=5)))
    log: list[WorklogEntry] = []
    status = "new"
    for i, offset in enumerate(offsets):
        at = T0 + offset * MIN
        new = draw(st.sampled_from(STEPS))
        log.append(
            WorklogEntry("inc-1", at, "a", WorklogKind.TRANSITION, "", i * 2, "status", status, new)
        )
        if new == "pending":
            reason = draw(st.sampled_from(REASONS))
            log.append(
                WorklogEntry(
                    "inc-1", at, "a", WorklogKind.CHANGED, "", i * 2 + 1, "pending_reason",
                    None, reason,
                )
            )  # fmt: skip
        status = new
    responded = draw(st.none() | st.integers(0, 6000).map(lambda o: T0 + o * MIN))
    last = offsets[-1] if offsets else 0
    return log, responded, last, last + draw(st.integers(0, 8000))


@settings(max_examples=80, deadline=None)
@given(history=histories(), calendar=st.sampled_from(["24x7", "office"]))
def test_an_advanced_record_equals_the_history_evaluated_then(history: Any, calendar: str) -> None:
    log, responded, last, later = history
    cfg = config(calendar)
    projector = SlaProjector(cfg)
    steps = [e.new for e in log if e.field == "status"]
    status = TicketStatus(steps[-1]) if steps else TicketStatus.NEW
    changed_at = T0 + last * MIN
    if responded is not None and responded > changed_at:
        responded = None  # a response is a change: it cannot come after the last one
    record = projector.project(ticket(changed_at, status, responded), log)
    assert record is not None
    now = T0 + later * MIN
    advanced = projector.at(record, now)
    policy = cfg.policy("p")
    assert policy is not None
    expected = evaluate(policy, cfg.calendars[calendar], 3, T0, clock_events(log), responded, now)
    for got, want in zip(advanced.clocks, expected, strict=True):
        assert (got.elapsed, got.state, got.paused, got.breached_at, got.stopped_at) == (
            want.elapsed, want.state, want.paused, want.breached_at, want.stopped_at,
        )  # fmt: skip
        assert got.due == want.due


def test_next_check_is_the_first_unfired_level_and_now_for_one_already_reached() -> None:
    projector = SlaProjector(config("24x7"))
    record = projector.project(ticket(T0, TicketStatus.NEW, None), [])
    assert record is not None
    # levels: response at risk 75% of 2h (1h30), resolution at 50% (10h), 75%, breach
    assert record.next_check_at == T0 + dt.timedelta(minutes=90)
    later = projector.at(record, T0 + dt.timedelta(hours=11))
    assert later.next_check_at == later.evaluated_at, "reached levels not fired yet: now"
    fired = frozenset({("response", 0), ("response", 1), ("resolution", 2)})
    later = projector.at(record, T0 + dt.timedelta(hours=11), fired)
    assert later.next_check_at == T0 + dt.timedelta(hours=15), "the resolution at-risk notice"
    resolved = projector.project(
        ticket(T0 + dt.timedelta(hours=1), TicketStatus.RESOLVED, T0),
        [WorklogEntry("inc-1", T0 + dt.timedelta(hours=1), "a", WorklogKind.TRANSITION, "", 1,
                      "status", "new", "resolved")],
    )  # fmt: skip
    assert resolved is not None and resolved.next_check_at is None, "stopped clocks: no check"
    assert resolved.clock(ClockKind.RESOLUTION).stopped_at == T0 + dt.timedelta(hours=1)


def step(at: dt.datetime, seq: int, old: str, new: str) -> WorklogEntry:
    return WorklogEntry("inc-1", at, "a", WorklogKind.TRANSITION, "", seq, "status", old, new)


def test_a_closed_ticket_stopped_when_it_was_resolved_not_when_closed() -> None:
    projector = SlaProjector(config("24x7"))
    resolved, closed = T0 + 3 * dt.timedelta(hours=1), T0 + dt.timedelta(days=7)
    log = [step(T0, 1, "new", "in_progress"), step(resolved, 2, "in_progress", "resolved"),
           step(closed, 3, "resolved", "closed")]  # fmt: skip
    record = projector.project(ticket(closed, TicketStatus.CLOSED, T0), log)
    assert record is not None
    assert record.resolution.stopped_at == resolved
    assert record.resolution.elapsed == 3 * dt.timedelta(hours=1)


def test_a_ticket_saved_resolved_without_its_steps_is_stopped_when_resolved() -> None:
    projector = SlaProjector(config("24x7"))
    t = ticket(T0 + dt.timedelta(days=2), TicketStatus.RESOLVED, None)
    t.resolved_at = T0 + dt.timedelta(hours=5)
    record = projector.project(t, [])  # written by an import that kept no history
    assert record is not None
    assert record.resolution.stopped_at == t.resolved_at
    assert record.resolution.elapsed == dt.timedelta(hours=5)
    assert record.next_check_at is None
