"""Each ticket's SLA clocks as last evaluated: what queues order by, what the escalation
sweep reads and what views show (advanced to the moment they are read).

Why a projection on top of event-sourced clocks (``ticketing.sla``): evaluating from
history needs the ticket's worklog, too much to read for a queue page or a sweep over every
open ticket. So whenever a ticket changes, the store asks ``SlaProjector.project`` for its
clocks as of that change (the incident's ``updated_at``: the clock of whoever changed it)
and keeps the result (``SlaRecord``); between changes a clock only runs or stays paused, so
``SlaRecord.at`` advances it to any later instant with one calendar step per clock, and
``evaluate`` from history at that instant gives the same (checked by the tests).

``next_check_at`` is the earliest instant at which a running clock reaches an escalation
level not yet fired (the at-risk and breach notices are levels too): the sweep reads the
tickets whose instant has come, through an index, and nothing else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Incident, WorklogEntry
from servicegraph.ticketing.sla import (
    Clock,
    ClockEvent,
    ClockKind,
    advance,
    clock_events,
    evaluate,
)
from servicegraph.ticketing.sla_config import Choice, EscalationLevel, SlaConfig

Fired = frozenset[tuple[str, int]]  # (clock, level number) pairs already fired for a ticket


@dataclass(frozen=True)
class SlaRecord:
    """A ticket's two clocks at ``evaluated_at``, under ``policy`` on ``calendar``."""

    ticket_id: str
    policy: str
    calendar: str
    priority: int
    response: Clock
    resolution: Clock
    next_check_at: dt.datetime | None
    evaluated_at: dt.datetime
    config: str  # the SlaConfig version it was evaluated under

    @property
    def clocks(self) -> tuple[Clock, Clock]:
        return self.response, self.resolution

    @property
    def due_at(self) -> dt.datetime | None:
        """When the ticket must be answered or resolved next: the earliest due of its
        clocks that still run (a breached clock's is its breach: it sorts first)."""
        running = [c.due for c in self.clocks if c.stopped_at is None]
        return min(running) if running else None

    def clock(self, kind: ClockKind) -> Clock:
        return self.response if kind is ClockKind.RESPONSE else self.resolution


class SlaProjector:
    """Evaluates tickets' clocks under the desk's ``SlaConfig``."""

    def __init__(self, config: SlaConfig) -> None:
        self.config = config

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def project(
        self, t: Incident, worklog: Sequence[WorklogEntry], fired: Fired = frozenset()
    ) -> SlaRecord | None:
        """``t``'s clocks as of its last change, from its worklog (``seq`` order); None
        when no policy covers it. ``fired``: the escalation levels already fired for it."""
        choice = self.config.choose(t)
        if choice is None:
            return None
        now = max(t.updated_at, t.opened_at)
        response, resolution = evaluate(
            choice.policy,
            choice.calendar,
            t.priority,
            t.opened_at,
            _events(t, worklog),
            t.first_response_at,
            now,
        )
        return self._record(t.id, choice, t.priority, response, resolution, now, fired)

    def project_all(
        self,
        tickets: Mapping[str, Incident],
        worklog: Mapping[str, Sequence[WorklogEntry]],
        fired: Mapping[str, Fired],
    ) -> tuple[list[SlaRecord], list[str]]:
        """``project`` for each ticket (its worklog and fired levels by id, none when
        absent): the records, and the ids no policy covers (their records are dropped)."""
        records: list[SlaRecord] = []
        uncovered: list[str] = []
        for ticket_id, t in tickets.items():
            record = self.project(t, worklog.get(ticket_id, ()), fired.get(ticket_id, frozenset()))
            if record is None:
                uncovered.append(ticket_id)
            else:
                records.append(record)
        return records, uncovered

    def at(self, record: SlaRecord, now: dt.datetime, fired: Fired = frozenset()) -> SlaRecord:
        """``record`` advanced to ``now`` (the ticket unchanged since it was evaluated);
        as it was when its policy is no longer configured."""
        choice = self._choice(record)
        if choice is None or now <= record.evaluated_at:
            return record
        at_risk = choice.policy.at_risk
        response = advance(record.response, choice.calendar, record.evaluated_at, now, at_risk)
        resolution = advance(record.resolution, choice.calendar, record.evaluated_at, now, at_risk)
        return self._record(
            record.ticket_id, choice, record.priority, response, resolution, now, fired
        )

    def levels(self, record: SlaRecord) -> tuple[EscalationLevel, ...]:
        choice = self._choice(record)
        return choice.levels if choice is not None else ()

    def _choice(self, record: SlaRecord) -> Choice | None:
        policy = self.config.policy(record.policy)
        calendar = self.config.calendars.get(record.calendar)
        if policy is None or calendar is None:
            return None
        return Choice(policy, record.calendar, calendar, self.config.levels[policy.name])

    def _record(
        self,
        ticket_id: str,
        choice: Choice,
        priority: int,
        response: Clock,
        resolution: Clock,
        now: dt.datetime,
        fired: Fired,
    ) -> SlaRecord:
        return SlaRecord(
            ticket_id=ticket_id,
            policy=choice.policy.name,
            calendar=choice.calendar_name,
            priority=priority,
            response=response,
            resolution=resolution,
            next_check_at=_next_check(choice, (response, resolution), now, fired),
            evaluated_at=now,
            config=self.config.version,
        )


def _events(t: Incident, worklog: Sequence[WorklogEntry]) -> list[ClockEvent]:
    """The clocks' status changes from the history, and the ticket's status last when the
    history does not end there (a ticket written without its steps, as some imports
    write them): a ticket saved resolved is stopped, when it was resolved."""
    events = clock_events(worklog)
    last = events[-1].status if events else TicketStatus.NEW
    if str(last) != t.status.value:
        stopped = t.resolved_at or t.closed_at or t.updated_at
        at = t.updated_at if t.status.active else stopped
        reason = t.pending_reason if t.status is TicketStatus.PENDING else None
        events.append(ClockEvent(max(at, events[-1].at) if events else at, t.status, reason))
    return events


def _next_check(
    choice: Choice, clocks: Sequence[Clock], now: dt.datetime, fired: Fired
) -> dt.datetime | None:
    """The earliest instant from ``now`` at which a running clock reaches a level not yet
    fired: ``now`` itself for a level already reached (a raised priority, a new policy)."""
    found: list[dt.datetime] = []
    for clock in clocks:
        if clock.stopped_at is not None or clock.paused:
            continue
        lefts = [
            clock.target * level.share - clock.elapsed
            for level in choice.levels
            if level.clock is clock.kind and (clock.kind.value, level.number) not in fired
        ]
        if lefts:  # the calendar is monotonic: the nearest level is the least time left
            left = min(lefts)
            found.append(now if left <= dt.timedelta(0) else choice.calendar.add(now, left))
    return min(found) if found else None
