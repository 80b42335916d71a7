"""Work on a ticket as pure steps: a lifecycle transition, an assignment, a field change.

Each function checks the step against the lifecycle and the directory, changes the ticket
in place and returns the worklog entries that tell it, one per changed field (TRANSITION
for the status, ASSIGNED for group and agent, CHANGED for the rest), with the old and new
value as text. Nothing here reads or writes a store: ``TicketService`` loads the ticket in
a unit, calls these, and saves the ticket with the entries, or nothing when one raises.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.errors import InvalidState
from servicegraph.ticketing.lifecycle import ActorKind, StateMachine, TicketStatus, Transition
from servicegraph.ticketing.model import Incident, WorklogEntry, WorklogKind
from servicegraph.ticketing.people import Directory

# statuses in which someone must hold the ticket (the lifecycle moves there by assigning)
_HELD = frozenset({TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS})


def as_text(value: object) -> str | None:
    """A field's value as the worklog keeps it: text as is, lists and mappings as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, sort_keys=isinstance(value, dict), default=str)
    return str(value)


def entry(
    ticket_id: str,
    at: dt.datetime,
    actor: str,
    kind: WorklogKind,
    text: str = "",
    *,
    field: str | None = None,
    old: object = None,
    new: object = None,
) -> WorklogEntry:
    return WorklogEntry(
        ticket_id=ticket_id,
        at=at,
        actor=actor,
        kind=kind,
        text=text,
        field=field,
        old=as_text(old),
        new=as_text(new),
    )


def changed(
    t: Incident, at: dt.datetime, actor: str, field: str, old: object, new: object, text: str = ""
) -> WorklogEntry:
    """A CHANGED entry: ``field`` went from ``old`` to ``new``."""
    shown = text or f"{field}: {as_text(old) or '(none)'} -> {as_text(new) or '(none)'}"
    return entry(t.id, at, actor, WorklogKind.CHANGED, shown, field=field, old=old, new=new)


@dataclass(frozen=True)
class StepFields:
    """What a step may carry; the lifecycle says which one it requires."""

    pending_reason: str | None = None
    resolution_code: str | None = None
    resolution: str | None = None
    close_code: str | None = None
    reason: str | None = None


# which target status each field belongs to: given for another step, it is refused (a
# resolution code on "start" is a client's mistake, not something to drop silently)
_FIELD_TARGET = {
    "pending_reason": TicketStatus.PENDING,
    "resolution_code": TicketStatus.RESOLVED,
    "resolution": TicketStatus.RESOLVED,
    "close_code": TicketStatus.CLOSED,
}


def take_step(
    machine: StateMachine,
    t: Incident,
    step: str,
    fields: StepFields,
    *,
    actor: str,
    actor_kind: ActorKind,
    now: dt.datetime,
    reopen_window: dt.timedelta,
) -> list[WorklogEntry]:
    """Move ``t`` by ``step`` (a step name or a target status) and log it.

    The lifecycle refuses a step the status or the actor's kind does not allow
    (``InvalidState`` naming the allowed ones, and "already <status>" when the ticket is
    there) and a required field missing (``ValidationFailed``). A step with several
    targets asked for by name goes back to the agent's queue (assigned) when an agent
    holds the ticket, else to new: reopen."""
    given = {k: v for k, v in vars(fields).items() if v is not None}
    transition = _checked(machine, t, step, given, actor_kind, now, reopen_window)
    if step == transition.name:
        transition = _preferred(machine, t, transition, actor_kind, now, reopen_window)
    target = TicketStatus(transition.target)
    for name, status in _FIELD_TARGET.items():
        if name in given and target is not status:
            raise ValidationFailed(
                f"'{transition.name}' moves the ticket to {target}; {name} belongs to {status}",
                field=name,
            )
    if target in _HELD and t.assignee is None:
        raise ValidationFailed(
            f"nobody holds the ticket: assign an agent before it can be {target}", field="assignee"
        )
    old = t.status
    log = [_transition_entry(t, transition, old, target, fields, now, actor)]
    log += _apply_target(t, old, target, fields, now, actor)
    t.status = target
    return log


def _checked(
    machine: StateMachine,
    t: Incident,
    step: str,
    given: dict[str, str],
    actor_kind: ActorKind,
    now: dt.datetime,
    reopen_window: dt.timedelta,
) -> Transition:
    try:
        return machine.check(
            t.status,
            step,
            actor_kind,
            given,
            ticket_id=t.id,
            resolved_at=t.resolved_at or now,
            now=now,
            reopen_window=reopen_window,
        )
    except InvalidState as exc:
        target = next((x.target for x in machine.transitions if x.name == step), step)
        if target != t.status or exc.detail:
            raise
        since = {TicketStatus.RESOLVED: t.resolved_at, TicketStatus.CLOSED: t.closed_at}
        when = since.get(t.status)
        detail = f"already {t.status}" + (f" since {when.isoformat()}" if when else "")
        raise InvalidState(
            exc.current, exc.requested, exc.allowed, ticket_id=t.id, actor_kind=actor_kind,
            detail=detail, as_status=step in machine.states,
        ) from None  # fmt: skip


def _preferred(
    machine: StateMachine,
    t: Incident,
    transition: Transition,
    actor_kind: ActorKind,
    now: dt.datetime,
    reopen_window: dt.timedelta,
) -> Transition:
    wanted = TicketStatus.ASSIGNED if t.assignee else TicketStatus.NEW
    steps = machine.allowed(
        t.status, actor_kind, resolved_at=t.resolved_at or now, now=now, reopen_window=reopen_window
    )
    same = [x for x in steps if x.name == transition.name]
    if len(same) < 2:
        return transition
    return next((x for x in same if x.target == wanted), transition)


def _transition_entry(
    t: Incident,
    transition: Transition,
    old: TicketStatus,
    target: TicketStatus,
    fields: StepFields,
    now: dt.datetime,
    actor: str,
) -> WorklogEntry:
    detail = fields.pending_reason or fields.resolution_code or fields.close_code
    text = transition.name + (f" ({detail})" if detail else "")
    notes = [n for n in (fields.reason, fields.resolution) if n]
    if notes:
        text += ": " + " / ".join(notes)
    return entry(
        t.id, now, actor, WorklogKind.TRANSITION, text, field="status", old=old, new=target
    )


def _apply_target(
    t: Incident,
    old: TicketStatus,
    target: TicketStatus,
    fields: StepFields,
    now: dt.datetime,
    actor: str,
) -> list[WorklogEntry]:
    """Set what entering ``target`` (and leaving ``old``) means, logging each field."""
    log: list[WorklogEntry] = []

    def put(name: str, value: object) -> None:
        before = getattr(t, name)
        if before != value:
            log.append(changed(t, now, actor, name, before, value))
            setattr(t, name, value)

    if target is TicketStatus.PENDING:
        put("pending_reason", fields.pending_reason)
    elif old is TicketStatus.PENDING:
        put("pending_reason", None)
    if target is TicketStatus.RESOLVED:
        put("resolution_code", fields.resolution_code)
        put("resolution", fields.resolution)
        t.resolved_at, t.resolved_by = now, actor
    elif old is TicketStatus.RESOLVED and target is not TicketStatus.CLOSED:
        # reopened: the resolution the ticket had stays in these entries (old values)
        put("resolution_code", None)
        put("resolution", None)
        t.resolved_at = t.resolved_by = None
        t.reopen_count += 1
    if target is TicketStatus.CLOSED:
        put("close_code", fields.close_code)
        t.closed_at = now
    if target is TicketStatus.IN_PROGRESS and t.acknowledged_at is None:
        t.acknowledged_at, t.acknowledged_by = now, actor  # starting work acknowledges it
    if target in RESPONDING:
        responded(t, now)
    return log


# Statuses the requester sees an agent move the ticket to: work started, a question
# asked (pending), the resolution. Each is a first response (``first_response_at``) as a
# reply is; being assigned is not, since the requester sees nothing of it.
RESPONDING = frozenset({TicketStatus.IN_PROGRESS, TicketStatus.PENDING, TicketStatus.RESOLVED})


def responded(t: Incident, now: dt.datetime) -> None:
    """The requester saw an agent act on ``t`` at ``now``: the response clock stops at the
    first such instant (``ticketing.sla``); later ones change nothing."""
    if t.first_response_at is None:
        t.first_response_at = now


def assign_to(
    machine: StateMachine,
    directory: Directory,
    t: Incident,
    *,
    group: str | None,
    agent: str | None,
    actor: str,
    actor_kind: ActorKind,
    now: dt.datetime,
    note: str = "",
) -> list[WorklogEntry]:
    """Give ``t`` to ``group`` and/or ``agent``; nothing to log when nothing changes.

    The group must exist (errors name ``group``), the agent be active and a member of the
    ticket's group, or of ``group`` when one is given (``assignee``); a ticket without a
    group takes the agent's, when the agent has one. Moving to a group the agent is not in
    leaves the ticket unassigned within its new group. The first agent moves a new ticket
    to assigned, a new agent an in-progress one back to assigned, by the lifecycle's
    ``assign`` step; a pending ticket changes hands and keeps waiting."""
    if group is None and agent is None:
        raise ValidationFailed("name a group or an agent", field="assignee")
    if not t.status.active:
        allowed = machine.allowed_names(t.status, actor_kind)
        raise InvalidState(
            t.status, "assign", allowed, ticket_id=t.id, actor_kind=actor_kind,
            detail="reopen it before assigning it",
        )  # fmt: skip
    new_group = directory.group(group, field="group").id if group is not None else None
    new_group = new_group or t.assignment_group
    new_agent = t.assignee
    if agent is not None:
        found = directory.agent(agent, field="assignee")
        if new_group is None:
            new_group = _only_group(found.login, found.groups)
        directory.check_assignment(new_group, found.login)
        new_agent = found.login
    elif new_agent is not None and new_group != t.assignment_group:
        held = directory.agents.get(new_agent)
        if held is None or new_group not in held.groups:
            new_agent = None
    log: list[WorklogEntry] = []
    if new_group != t.assignment_group:
        text = f"group {new_group}" + (f" (was {t.assignment_group})" if t.assignment_group else "")
        log.append(_assigned(t, now, actor, "assignment_group", new_group, text, note))
        if t.assignment_group is not None:
            t.reassignment_count += 1  # ServiceNow's reassignment_count: the first is routing
        t.assignment_group = new_group
    if new_agent != t.assignee:
        if new_agent is None:
            text = f"unassigned: {t.assignee} is not in group {new_group}"
        else:
            text = f"assigned to {new_agent}" + (f" (was {t.assignee})" if t.assignee else "")
        log.append(_assigned(t, now, actor, "assignee", new_agent, text, note))
        t.assignee = new_agent
        if new_agent is not None:
            log += _assign_step(machine, t, actor, actor_kind, now)
    return log


def _only_group(login: str, groups: tuple[str, ...]) -> str:
    if len(groups) == 1:
        return groups[0]
    if not groups:
        raise ValidationFailed(f"agent '{login}' is in no group; add them to one", field="assignee")
    raise ValidationFailed(
        f"the ticket has no group and agent '{login}' is in several ({', '.join(groups)}): "
        "name the group",
        field="group",
    )


def _assigned(
    t: Incident, now: dt.datetime, actor: str, field: str, new: str | None, text: str, note: str
) -> WorklogEntry:
    old = getattr(t, field)
    shown = text + (f": {note}" if note else "")
    return entry(t.id, now, actor, WorklogKind.ASSIGNED, shown, field=field, old=old, new=new)


def _assign_step(
    machine: StateMachine, t: Incident, actor: str, actor_kind: ActorKind, now: dt.datetime
) -> list[WorklogEntry]:
    names = machine.allowed_names(t.status, actor_kind)
    if "assign" not in names:
        if any(x.name == "assign" and t.status in x.sources for x in machine.transitions):
            machine.check(t.status, "assign", actor_kind, ticket_id=t.id)  # raises: the actor
        return []  # no assign step here (pending): the ticket changes hands, keeps its status
    transition = machine.check(t.status, "assign", actor_kind, ticket_id=t.id)
    target = TicketStatus(transition.target)
    if target is t.status:
        return []
    old, t.status = t.status, target
    text = f"assign: {t.assignee} holds it"
    return [
        entry(t.id, now, actor, WorklogKind.TRANSITION, text, field="status", old=old, new=target)
    ]
