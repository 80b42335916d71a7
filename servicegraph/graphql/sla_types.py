"""GraphQL types of a ticket's SLA clocks (``Ticket.sla``), read as they are now."""

from __future__ import annotations

import datetime as dt

import strawberry

from servicegraph.ticketing.sla import Clock, ClockKind, ClockState
from servicegraph.ticketing.sla_projection import SlaRecord

ClockKindEnum = strawberry.enum(ClockKind, name="SlaClockKind")
ClockStateEnum = strawberry.enum(
    ClockState,
    name="SlaClockState",
    description="ok, at_risk (past the policy's at-risk share), breached (running past its "
    "target); a stopped clock is met or missed.",
)


@strawberry.type(description="One SLA clock; durations in seconds of business time.")
class SlaClock:
    kind: ClockKindEnum  # type: ignore[valid-type]
    state: ClockStateEnum  # type: ignore[valid-type]
    target_seconds: float = strawberry.field(description="The target for the priority.")
    elapsed_seconds: float = strawberry.field(
        description="Business time counted so far (pauses excluded)."
    )
    remaining_seconds: float = strawberry.field(description="Until the target; 0 once reached.")
    due: dt.datetime = strawberry.field(
        description="When the target is reached if nothing pauses the clock (the breach, "
        "once breached; fixed once stopped)."
    )
    paused: bool = strawberry.field(description="Pending for a pausing reason now.")
    breached_at: dt.datetime | None
    stopped_at: dt.datetime | None = strawberry.field(
        description="When it stopped: the first response, or the resolution."
    )

    @classmethod
    def of(cls, c: Clock) -> SlaClock:
        return cls(
            kind=c.kind,
            state=c.state,
            target_seconds=c.target.total_seconds(),
            elapsed_seconds=c.elapsed.total_seconds(),
            remaining_seconds=c.remaining.total_seconds(),
            due=c.due,
            paused=c.paused,
            breached_at=c.breached_at,
            stopped_at=c.stopped_at,
        )


@strawberry.type(description="A ticket's SLA: the policy it follows and its two clocks.")
class TicketSla:
    policy: str
    calendar: str = strawberry.field(description="The business calendar the clocks count on.")
    due: dt.datetime | None = strawberry.field(
        description="The earliest due time of the clocks still running (queues' due order)."
    )
    response: SlaClock = strawberry.field(description="Until the first response.")
    resolution: SlaClock = strawberry.field(description="Until resolution (pauses excluded).")

    @classmethod
    def of(cls, r: SlaRecord) -> TicketSla:
        return cls(
            policy=r.policy,
            calendar=r.calendar,
            due=r.due_at,
            response=SlaClock.of(r.response),
            resolution=SlaClock.of(r.resolution),
        )
