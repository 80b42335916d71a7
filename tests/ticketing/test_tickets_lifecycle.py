"""Working tickets through the lifecycle: every state, with the history entry of each step;
refused steps name the allowed ones and write nothing; assignment within groups; the
monitoring-era IncidentService goes through the same state machine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.errors import InvalidState, InvalidTransition, TicketNotFound
from servicegraph.ticketing.lifecycle import ActorKind, TicketStatus
from servicegraph.ticketing.model import Incident, WorklogKind
from tests.ticketing.desk_world import Desk, make_desk

S = TicketStatus
K = WorklogKind


@pytest.fixture()
def desk(tmp_path: Path) -> Iterator[Desk]:
    yield from make_desk(tmp_path)


def step(desk: Desk, ticket: Incident, name: str, actor: str = "dave", **fields: Any) -> Incident:
    with change_context(actor):
        return desk.tickets.transition(ticket.id, name, **fields)


def test_a_ticket_walked_through_every_state_leaves_one_entry_per_change(desk: Desk) -> None:
    ticket = desk.create(title="VPN drops", category="network/vpn", requester="c-joe")
    assert (ticket.status, ticket.assignment_group) == (S.NEW, "network")
    with change_context("dave"):
        ticket = desk.tickets.assign(ticket.id, agent="dave")
    assert ticket.status is S.ASSIGNED
    ticket = step(desk, ticket, "start")
    assert ticket.acknowledged_by == "dave", "starting work acknowledges it"
    desk.clock.advance(hours=1)
    ticket = step(desk, ticket, "pend", pending_reason="awaiting_vendor", reason="RMA 4711")
    assert (ticket.status, ticket.pending_reason) == (S.PENDING, "awaiting_vendor")
    ticket = step(desk, ticket, "resume", actor="c-joe", actor_kind=ActorKind.REQUESTER)
    assert (ticket.status, ticket.pending_reason) == (S.IN_PROGRESS, None)
    ticket = step(desk, ticket, "resolve", resolution_code="solved", resolution="new firmware")
    assert (ticket.resolved_by, ticket.resolved_at) == ("dave", desk.clock.now)
    desk.clock.advance(days=2)
    ticket = step(desk, ticket, "reopen", actor="c-joe", actor_kind=ActorKind.REQUESTER,
                  reason="drops again")  # fmt: skip
    assert (ticket.status, ticket.reopen_count, ticket.resolved_at) == (S.ASSIGNED, 1, None)
    assert ticket.resolution is None and ticket.resolution_code is None
    ticket = step(desk, ticket, "in_progress")  # a step asked for by its target status
    ticket = step(desk, ticket, "resolve", resolution_code="workaround", resolution="pinned MTU")
    ticket = step(desk, ticket, "close", actor="c-joe", actor_kind=ActorKind.REQUESTER,
                  close_code="solved")  # fmt: skip
    assert (ticket.status, ticket.close_code, ticket.closed_at) == (
        S.CLOSED, "solved", desk.clock.now,
    )  # fmt: skip

    log = desk.history(ticket.id)
    assert [(e.kind, e.actor, e.field, e.old, e.new) for e in log] == [
        (K.CREATED, "alice", None, None, None),
        (K.ROUTED, "alice", "assignment_group", None, "network"),
        (K.ASSIGNED, "dave", "assignee", None, "dave"),
        (K.TRANSITION, "dave", "status", "new", "assigned"),
        (K.TRANSITION, "dave", "status", "assigned", "in_progress"),
        (K.TRANSITION, "dave", "status", "in_progress", "pending"),
        (K.CHANGED, "dave", "pending_reason", None, "awaiting_vendor"),
        (K.TRANSITION, "c-joe", "status", "pending", "in_progress"),
        (K.CHANGED, "c-joe", "pending_reason", "awaiting_vendor", None),
        (K.TRANSITION, "dave", "status", "in_progress", "resolved"),
        (K.CHANGED, "dave", "resolution_code", None, "solved"),
        (K.CHANGED, "dave", "resolution", None, "new firmware"),
        (K.TRANSITION, "c-joe", "status", "resolved", "assigned"),
        (K.CHANGED, "c-joe", "resolution_code", "solved", None),
        (K.CHANGED, "c-joe", "resolution", "new firmware", None),  # kept across the reopen
        (K.TRANSITION, "dave", "status", "assigned", "in_progress"),
        (K.TRANSITION, "dave", "status", "in_progress", "resolved"),
        (K.CHANGED, "dave", "resolution_code", None, "workaround"),
        (K.CHANGED, "dave", "resolution", None, "pinned MTU"),
        (K.TRANSITION, "c-joe", "status", "resolved", "closed"),
        (K.CHANGED, "c-joe", "close_code", None, "solved"),
    ]
    texts = [e.text for e in log if e.kind is K.TRANSITION]
    assert texts == [
        "assign: dave holds it",
        "start",
        "pend (awaiting_vendor): RMA 4711",
        "resume",
        "resolve (solved): new firmware",
        "reopen: drops again",
        "start",
        "resolve (workaround): pinned MTU",
        "close (solved)",
    ]
    assert [e.at for e in log] == sorted(e.at for e in log)


def test_cancel_needs_a_reason_and_is_final(desk: Desk) -> None:
    ticket = desk.create(title="Duplicate request")
    with pytest.raises(ValidationFailed) as info:
        step(desk, ticket, "cancel")
    assert info.value.field == "reason"
    ticket = step(desk, ticket, "cancel", reason="raised twice")
    assert ticket.status is S.CANCELLED
    with pytest.raises(InvalidState) as refused:
        step(desk, ticket, "reopen", reason="oops")
    assert refused.value.allowed == ()


def _held(desk: Desk) -> Incident:
    ticket = desk.create(title="Held", affected_ci_ids=(desk.ids["core-1"],), assignee="bob")
    return step(desk, ticket, "start", actor="bob")


REFUSED: list[tuple[str, str, dict[str, Any], type[Exception], str]] = [
    ("close while in progress", "close", {"close_code": "solved"}, InvalidState,
     "is in_progress: cannot close; allowed: assign, pend, resolve, cancel"),
    ("unknown step", "explode", {}, ValidationFailed, "transition"),
    ("pend without a reason", "pend", {}, ValidationFailed, "pending_reason"),
    ("pend for a reason not in the list", "pend", {"pending_reason": "lunch"}, ValidationFailed,
     "pending_reason"),
    ("resolve without a code", "resolve", {"resolution": "done"}, ValidationFailed,
     "resolution_code"),
    ("a field of another step", "pend", {"pending_reason": "awaiting_vendor",
     "close_code": "solved"}, ValidationFailed, "close_code"),
    ("a requester may not resolve", "resolve", {"resolution_code": "solved",
     "actor_kind": ActorKind.REQUESTER}, InvalidState, "only agent, system may"),
    ("unknown actor kind", "resolve", {"resolution_code": "x", "actor_kind": "robot"},
     ValidationFailed, "actor_kind"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "fields", "error", "says"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_a_refused_step_names_why_and_writes_nothing(
    desk: Desk, name: str, fields: dict[str, Any], error: type[Exception], says: str
) -> None:
    ticket = _held(desk)
    before = desk.snapshot()
    with pytest.raises(error) as info:
        step(desk, ticket, name, actor="bob", **fields)
    if isinstance(info.value, ValidationFailed):
        assert info.value.field == says
    else:
        assert says in str(info.value)
    assert desk.snapshot() == before


def test_resolving_twice_says_already_resolved_and_reopen_ends_with_the_window(
    desk: Desk,
) -> None:
    ticket = step(desk, _held(desk), "resolve", actor="bob", resolution_code="solved")
    with pytest.raises(InvalidState) as twice:
        step(desk, ticket, "resolve", actor="bob", resolution_code="solved")
    assert "already resolved since" in str(twice.value)
    assert twice.value.allowed == ("close", "reopen")
    desk.clock.advance(days=7, seconds=1)
    with pytest.raises(InvalidState) as late:
        step(desk, ticket, "reopen", actor="bob", reason="back")
    assert "7-day reopen window ended" in str(late.value)
    assert late.value.allowed == ("close",)


def test_reopen_goes_back_to_new_when_nobody_holds_the_ticket(desk: Desk) -> None:
    ticket = desk.create(title="Nobody's")
    ticket = step(desk, ticket, "resolve", resolution_code="solved")
    with pytest.raises(ValidationFailed) as info:
        step(desk, ticket, "in_progress", reason="not solved")  # reopen, asked by status
    assert info.value.field == "assignee", "in progress needs someone holding it"
    ticket = step(desk, ticket, "reopen", reason="not solved")
    assert ticket.status is S.NEW


def test_assignment_within_groups(desk: Desk) -> None:
    ticket = desk.create(title="Switch", affected_ci_ids=(desk.ids["core-1"],))
    before = desk.snapshot()
    for kwargs, field in [
        ({}, "assignee"),
        ({"agent": "nobody-such-user-xyz"}, "assignee"),
        ({"agent": "erin"}, "assignee"),
        ({"agent": "carol"}, "assignee"),  # carol is a dba, not noc
        ({"group": "helpdesk"}, "group"),
        ({"group": "dbas", "agent": "bob"}, "assignee"),
    ]:
        with pytest.raises(ValidationFailed) as info:
            desk.tickets.assign(ticket.id, **kwargs)
        assert info.value.field == field, kwargs
    assert desk.snapshot() == before
    assert "carol is in: dbas" in _reason(desk, ticket, agent="carol")

    ticket = desk.tickets.assign(ticket.id, agent="bob")
    assert (ticket.status, ticket.assignee) == (S.ASSIGNED, "bob")
    ticket = step(desk, ticket, "start", actor="bob")
    ticket = desk.tickets.assign(ticket.id, agent="alice")
    assert (ticket.status, ticket.assignee) == (S.ASSIGNED, "alice"), "a new agent starts anew"
    ticket = desk.tickets.assign(ticket.id, group="dbas")
    assert (ticket.assignment_group, ticket.assignee) == ("dbas", None), "alice is no dba"
    ticket = desk.tickets.assign(ticket.id, group="dbas")  # nothing changes, nothing logged
    tail = [(e.kind, e.field, e.old, e.new, e.text) for e in desk.history(ticket.id)[-4:]]
    assert tail == [
        (K.ASSIGNED, "assignee", "bob", "alice", "assigned to alice (was bob)"),
        (K.TRANSITION, "status", "in_progress", "assigned", "assign: alice holds it"),
        (K.ASSIGNED, "assignment_group", "noc", "dbas", "group dbas (was noc)"),
        (K.ASSIGNED, "assignee", "alice", None, "unassigned: alice is not in group dbas"),
    ]


def _reason(desk: Desk, ticket: Incident, **kwargs: Any) -> str:
    with pytest.raises(ValidationFailed) as info:
        desk.tickets.assign(ticket.id, **kwargs)
    return info.value.reason


def test_a_pending_ticket_changes_hands_and_keeps_waiting(desk: Desk) -> None:
    ticket = _held(desk)
    ticket = step(desk, ticket, "pend", actor="bob", pending_reason="awaiting_requester")
    ticket = desk.tickets.assign(ticket.id, agent="alice")
    assert (ticket.status, ticket.assignee) == (S.PENDING, "alice")


def test_a_resolved_ticket_is_reopened_before_it_is_assigned(desk: Desk) -> None:
    ticket = step(desk, _held(desk), "resolve", actor="bob", resolution_code="solved")
    with pytest.raises(InvalidState) as info:
        desk.tickets.assign(ticket.id, agent="alice")
    assert "reopen it before assigning it" in str(info.value)
    with pytest.raises(TicketNotFound) as missing:
        desk.tickets.assign("inc-0000000000000000", agent="alice")
    assert missing.value.field == "ticket_id"


def test_the_incident_service_works_through_the_same_lifecycle(desk: Desk) -> None:
    incidents = desk.services.desk.incidents
    ticket = desk.create(title="Monitoring-era", affected_ci_ids=(desk.ids["core-1"],))
    with pytest.raises(ValidationFailed) as free_text:
        incidents.assign(ticket.id, "nobody-such-user-xyz")
    assert free_text.value.field == "assignee"
    with pytest.raises(TicketNotFound) as unknown:
        incidents.assign("inc-0000000000000000", "bob")
    assert (unknown.value.kind, unknown.value.field) == ("incident", "incident_id")
    incidents.assign(ticket.id, "bob")
    with change_context("bob"):
        acknowledged = incidents.acknowledge(ticket.id, "on it")
    assert (acknowledged.status, acknowledged.acknowledged_by) == (S.IN_PROGRESS, "bob")
    with pytest.raises(InvalidTransition, match="already acknowledged by bob"):
        incidents.acknowledge(ticket.id)
    with change_context("bob"):
        resolved = incidents.resolve(ticket.id, "rebooted")
    assert (resolved.status, resolved.resolution_code, resolved.resolution) == (
        S.RESOLVED, "solved", "rebooted",
    )  # fmt: skip
    with pytest.raises(InvalidState, match="already resolved"):
        incidents.resolve(ticket.id, "again")
    with pytest.raises(InvalidState):
        incidents.acknowledge(ticket.id)
    kinds = [(e.kind, e.field) for e in desk.history(ticket.id)][-7:]
    assert kinds == [
        (K.ASSIGNED, "assignee"),
        (K.TRANSITION, "status"),
        (K.ACKNOWLEDGED, None),
        (K.TRANSITION, "status"),
        (K.TRANSITION, "status"),
        (K.CHANGED, "resolution_code"),
        (K.CHANGED, "resolution"),
    ]
