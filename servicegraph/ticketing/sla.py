"""SLA clocks, computed from a ticket's status history (event-sourced, nothing stored).

Why recompute from history rather than keep a running counter (GLPI's ``sla_waiting_duration``,
iTop's stopwatch columns): a counter drifts whenever a write path forgets to update it, and a
changed policy or calendar cannot be applied to time already spent. Here a clock is a pure
function of the policy, the calendar, created_at, the TRANSITION history and first_response_at,
so a sweep, a report and the ticket view always agree.

Rules (see README "SLA clocks"):

- Both clocks start at ``created_at`` and count **business time** only (``calendar.elapsed``).
- Both pause while the ticket is ``pending`` with one of the policy's pausing reasons; pending
  for another reason (``awaiting_change`` unless configured) keeps them running.
- **Response** stops at ``first_response_at``; a ticket resolved (or closed/cancelled) with no
  response stops it there, since resolving answers the requester. It never restarts.
- **Resolution** stops when the ticket leaves the active statuses (resolved, closed,
  cancelled) and restarts on reopen, **continuing** the elapsed time (iTop's behaviour; time
  spent resolved is not counted, as GLPI adds it to the waiting time).
- **Priority changes:** the clock is always judged against the *current* priority's target
  over the *whole* elapsed time (iTop: "a priority change swaps the goal but keeps elapsed
  time"). Time already paused stays paused; a raised priority can therefore breach at once.
  This avoids GLPI's complaint that attaching a new SLA ignores the time already pending.
- ``due``: for a running clock, ``calendar.add(now, remaining)`` (the instant the target is hit
  if nothing more pauses it, also when currently paused: "if it resumed now"); once breached,
  the breach instant; for a stopped clock, fixed: the stop instant plus the remaining time, or
  the breach instant.
- ``state``: running: ``breached`` once elapsed >= target, ``at_risk`` once elapsed >=
  at_risk x target, else ``ok``; stopped: ``met`` when elapsed <= target, else ``missed``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import WorklogEntry, WorklogKind
from servicegraph.ticketing.sla_policy import (
    RESOLUTION,
    RESPONSE,
    Calendar,
    SlaPolicies,
    SlaPolicy,
    Targets,
    parse_duration,
)

__all__ = [
    "Calendar",
    "Clock",
    "ClockEvent",
    "ClockKind",
    "ClockState",
    "SlaPolicies",
    "SlaPolicy",
    "Targets",
    "advance",
    "clock_events",
    "evaluate",
    "parse_duration",
    "running_spans",
]


class ClockKind(enum.StrEnum):
    RESPONSE = RESPONSE
    RESOLUTION = RESOLUTION


class ClockState(enum.StrEnum):
    OK = "ok"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    MET = "met"  # stopped within the target
    MISSED = "missed"  # stopped after the target


@dataclass(frozen=True)
class ClockEvent:
    """One status change of the ticket (from its TRANSITION worklog entries)."""

    at: dt.datetime
    status: TicketStatus | str
    pending_reason: str | None = None


@dataclass(frozen=True)
class Clock:
    """One evaluated clock; durations are business time on the policy's calendar."""

    kind: ClockKind
    target: dt.timedelta
    due: dt.datetime
    elapsed: dt.timedelta
    remaining: dt.timedelta
    paused: bool
    state: ClockState
    breached_at: dt.datetime | None
    stopped_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class _Segment:
    start: dt.datetime
    status: TicketStatus
    reason: str | None
    active: bool  # status.active, asked once (a property of an enum is slow to ask often)


_STATUSES = {s.value: s for s in TicketStatus}


def _segments(
    created_at: dt.datetime, events: Iterable[ClockEvent], now: dt.datetime
) -> list[_Segment]:
    """The status timeline from creation, events up to ``now`` in time order.

    The sort is stable, so same-instant events keep their history order; events before
    creation (clock skew in imported data) are clamped to it.
    """
    segments = [_Segment(created_at, TicketStatus.NEW, None, True)]
    for i, event in enumerate(sorted(events, key=lambda e: e.at)):
        if event.at > now:
            break
        status = _STATUSES.get(event.status)
        if status is None:
            raise ValidationFailed(f"unknown status '{event.status}'", field=f"events[{i}].status")
        at = event.at if event.at > created_at else created_at
        segments.append(_Segment(at, status, event.pending_reason, status.active))
    return segments


def running_spans(
    created_at: dt.datetime,
    events: Iterable[ClockEvent],
    now: dt.datetime,
    *,
    kind: ClockKind,
    pausing_reasons: frozenset[str],
    first_response_at: dt.datetime | None = None,
) -> tuple[list[tuple[dt.datetime, dt.datetime]], dt.datetime | None, bool]:
    """Wall-clock spans during which the clock runs, its stop instant (or None) and paused.

    ``paused`` is true when the clock is not stopped and the ticket is pending for a pausing
    reason at ``now``.
    """
    segments = _segments(created_at, events, now)
    return _running(segments, created_at, now, kind, pausing_reasons, first_response_at)


def _running(
    segments: Sequence[_Segment],
    created_at: dt.datetime,
    now: dt.datetime,
    kind: ClockKind,
    pausing_reasons: frozenset[str],
    first_response_at: dt.datetime | None,
) -> tuple[list[tuple[dt.datetime, dt.datetime]], dt.datetime | None, bool]:
    spans: list[tuple[dt.datetime, dt.datetime]] = []
    stop: dt.datetime | None = None
    if kind is ClockKind.RESPONSE and first_response_at is not None and first_response_at <= now:
        stop = max(first_response_at, created_at)
    for i, seg in enumerate(segments):
        end = segments[i + 1].start if i + 1 < len(segments) else now
        if end <= seg.start and i + 1 < len(segments):
            continue  # left at the instant it was entered (same-instant steps): never held
        if not seg.active:
            if kind is ClockKind.RESPONSE:
                # resolved before any response: the resolution answered the requester
                stop = seg.start if stop is None else min(stop, seg.start)
                break
            continue
        if seg.status is TicketStatus.PENDING and seg.reason in pausing_reasons:
            continue
        if spans and spans[-1][1] == seg.start:
            spans[-1] = (spans[-1][0], end)  # merge adjacent running segments
        else:
            spans.append((seg.start, end))
    last = segments[-1]
    if kind is ClockKind.RESOLUTION and not last.active:
        # stopped when it left the active statuses: resolved, not closed a week later
        first_inactive = len(segments) - 1
        while first_inactive > 0 and not segments[first_inactive - 1].active:
            first_inactive -= 1
        stop = segments[first_inactive].start
    if stop is not None:
        spans = [(a, min(b, stop)) for a, b in spans if a < stop]
    paused = stop is None and last.status is TicketStatus.PENDING and last.reason in pausing_reasons
    return [(a, b) for a, b in spans if b > a], stop, paused


def _clock(
    kind: ClockKind,
    target: dt.timedelta,
    at_risk: float,
    calendar: Calendar,
    spans: Sequence[tuple[dt.datetime, dt.datetime]],
    stop: dt.datetime | None,
    paused: bool,
    now: dt.datetime,
    *,
    before: dt.timedelta = dt.timedelta(0),
    breached_at: dt.datetime | None = None,
) -> Clock:
    """The clock after ``spans`` of running time, on top of ``before`` counted earlier
    (which breached at ``breached_at`` if it reached the target)."""
    elapsed = before
    for start, end in spans:
        part = calendar.elapsed(start, end)
        if breached_at is None and elapsed + part >= target:
            # the instant the target was reached, inside this running span
            breached_at = min(calendar.add(start, target - elapsed), end)
        elapsed += part
    remaining = max(target - elapsed, dt.timedelta(0))
    if stop is not None:
        if elapsed <= target:
            state = ClockState.MET
            breached_at = None  # reached exactly at the stop: met, not breached
            due = calendar.add(stop, remaining)
        else:
            state = ClockState.MISSED
            due = breached_at if breached_at is not None else stop
    elif breached_at is not None:
        state, due = ClockState.BREACHED, breached_at
    else:
        state = ClockState.AT_RISK if elapsed >= target * at_risk else ClockState.OK
        due = calendar.add(now, remaining)
    return Clock(
        kind=kind,
        target=target,
        due=due,
        elapsed=elapsed,
        remaining=remaining,
        paused=paused,
        state=state,
        breached_at=breached_at,
        stopped_at=stop,
    )


def evaluate(
    policy: SlaPolicy,
    calendar: Calendar,
    priority: int,
    created_at: dt.datetime,
    events: Sequence[ClockEvent],
    first_response_at: dt.datetime | None,
    now: dt.datetime,
) -> tuple[Clock, Clock]:
    """The response and resolution clocks of a ticket at ``now``.

    ``priority`` is the ticket's current priority: its targets apply to the whole elapsed
    time (module docstring). ``calendar`` is the one the policy names, resolved by the caller.
    """
    if priority not in policy.targets:
        raise ValidationFailed(
            f"policy '{policy.name}' has no targets for priority {priority}", field="priority"
        )
    clocks = []
    segments = _segments(created_at, events, now)  # once for both clocks
    for kind in (ClockKind.RESPONSE, ClockKind.RESOLUTION):
        spans, stop, paused = _running(
            segments, created_at, now, kind, policy.pausing_reasons, first_response_at
        )
        target = policy.target(priority, kind.value)
        clocks.append(_clock(kind, target, policy.at_risk, calendar, spans, stop, paused, now))
    return clocks[0], clocks[1]


def advance(
    clock: Clock, calendar: Calendar, since: dt.datetime, now: dt.datetime, at_risk: float
) -> Clock:
    """``clock`` as evaluated at ``since``, at ``now``, when the ticket did not change in
    between (any change re-evaluates it from history): a stopped clock is as it was, a
    paused one keeps its elapsed time, a running one counts ``since .. now`` on top.

    This is what lets the escalation sweep and the ticket views read clocks without the
    ticket's history: one ``calendar.elapsed`` per running clock. The result equals
    ``evaluate`` at ``now`` (tests/unit/ticketing/test_sla_projection.py checks it).
    """
    if clock.stopped_at is not None or now <= since:
        return clock
    if clock.paused:
        if clock.breached_at is not None:
            return clock
        return dataclasses.replace(clock, due=calendar.add(now, clock.remaining))
    return _clock(
        clock.kind,
        clock.target,
        at_risk,
        calendar,
        [(since, now)],
        None,
        False,
        now,
        before=clock.elapsed,
        breached_at=clock.breached_at,
    )


def clock_events(entries: Iterable[WorklogEntry]) -> list[ClockEvent]:
    """The status changes the clocks need, from a ticket's worklog in ``seq`` order.

    A TRANSITION entry is a change of status; the pending reason comes in the CHANGED
    entry of ``pending_reason`` that the same step writes right after it (or alone, when
    the reason changes while the ticket stays pending).
    """
    events: list[ClockEvent] = []
    status: str | None = None
    reason: str | None = None
    for e in entries:
        if e.kind is WorklogKind.TRANSITION and e.field == "status" and e.new is not None:
            status = e.new
            events.append(ClockEvent(e.at, status, reason if status == "pending" else None))
        elif e.kind is WorklogKind.CHANGED and e.field == "pending_reason":
            reason = e.new
            if status == "pending" and events and events[-1].at == e.at:
                events[-1] = dataclasses.replace(events[-1], pending_reason=reason)
            elif status == "pending":
                events.append(ClockEvent(e.at, "pending", reason))
    return events
