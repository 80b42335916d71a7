"""Monitoring incidents through the desk's lifecycle.

Correlation opens, resolves and reopens incidents with the same state machine
(``ticketing.lifecycle``) and leaves the same worklog entries as people do, so that a
ticket's history reads the same whoever moved it: "resolved by correlation: every alert
clear for 60 s", "reopened by correlation: NodeDown fired again on core-1". A step the
configured lifecycle refuses is not taken: an incident an agent put on hold (pending)
stays there when its alerts clear if the lifecycle says pending cannot resolve, and a
resolved incident the lifecycle will not reopen makes way for a new one.

New incidents are routed like people's tickets, by a ``MonitoringRouter`` the correlator
is given (bootstrap builds the desk's, ``ticketing.tickets_routing.TicketRouter``): the
root CI's support group, the owner of an impacted service, the routing rules. Correlation
only hands it the incidents it opened, so it reads no people or catalogue itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from servicegraph.events.model import Alert
from servicegraph.ticketing.errors import InvalidState
from servicegraph.ticketing.lifecycle import ActorKind, StateMachine, TicketStatus
from servicegraph.ticketing.model import Incident, WorklogEntry, WorklogKind

ACTOR = "correlation"  # the actor of correlation's entries in every ticket's history
RESOLUTION_CODE = "cleared_by_monitoring"

# Route incidents just opened (their root CI, business services and priority known) at a
# time, for an actor: set each one's group, routing rule, tags, priority bounds, and
# return their ROUTED history entries. It must not raise for an incident it cannot route.
MonitoringRouter = Callable[[Sequence[Incident], dt.datetime, str], Sequence[WorklogEntry]]


class MonitoringSteps:
    def __init__(self, machine: StateMachine, reopen_window: dt.timedelta) -> None:
        self.machine = machine
        self.reopen_window = reopen_window

    def opened(self, incident: Incident, alert: Alert, at: dt.datetime) -> WorklogEntry:
        where = f" on {alert.ci_id}" if alert.ci_id else " (no CI known)"
        return WorklogEntry(
            ticket_id=incident.id,
            at=at,
            actor=ACTOR,
            kind=WorklogKind.CREATED,
            text=f"opened by monitoring: {alert.source}/{alert.name}{where}",
        )

    def resolve(self, incident: Incident, at: dt.datetime, why: str) -> WorklogEntry | None:
        """Resolve the incident at ``at`` if the lifecycle lets correlation; the entry, or
        None when it stays as it is."""
        try:
            step = self.machine.check(
                incident.status,
                "resolve",
                ActorKind.SYSTEM,
                {"resolution_code": RESOLUTION_CODE},
                ticket_id=incident.id,
            )
        except InvalidState:
            return None
        old = incident.status
        incident.status = TicketStatus(step.target)
        incident.resolved_at = at
        incident.resolution_code = RESOLUTION_CODE
        incident.pending_reason = None
        return _transition(incident, at, old, f"resolved by monitoring: {why}")

    def reopen(self, incident: Incident, alert: Alert, at: dt.datetime) -> WorklogEntry | None:
        """Reopen a resolved incident whose root alert fired again: back to its agent's
        queue (assigned), or to new when no agent holds it. None when the lifecycle refuses
        (a closed or cancelled incident, the window passed): the alert opens another."""
        target = TicketStatus.ASSIGNED if incident.assignee else TicketStatus.NEW
        reason = f"{alert.source}/{alert.name} fired again" + (
            f" on {alert.ci_id}" if alert.ci_id else ""
        )
        try:
            step = self.machine.check(
                incident.status,
                target,
                ActorKind.SYSTEM,
                {"reason": reason},
                ticket_id=incident.id,
                resolved_at=incident.resolved_at or at,
                now=at,
                reopen_window=self.reopen_window,
            )
        except InvalidState:
            return None
        old = incident.status
        incident.status = TicketStatus(step.target)
        incident.resolved_at = None
        incident.resolved_by = None  # a resolution the alert just proved wrong: the
        incident.resolution = None  # worklog keeps it, with who wrote it
        incident.resolution_code = None
        incident.reopen_count += 1
        return _transition(incident, at, old, f"reopened by monitoring: {reason}")


def _transition(incident: Incident, at: dt.datetime, old: str, text: str) -> WorklogEntry:
    return WorklogEntry(
        ticket_id=incident.id,
        at=at,
        actor=ACTOR,
        kind=WorklogKind.TRANSITION,
        text=text,
        field="status",
        old=str(old),
        new=str(incident.status),
    )
