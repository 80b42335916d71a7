"""Editing tickets (one history entry per changed field), overriding the priority, links
between tickets, listings by cursor, and the auto-close job with a clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.runtime import jobs
from servicegraph.ticketing.changes import NewChange
from servicegraph.ticketing.errors import InvalidState, TicketNotFound
from servicegraph.ticketing.lifecycle import ActorKind, TicketStatus
from servicegraph.ticketing.model import Incident, LinkKind, TicketType, WorklogKind
from servicegraph.ticketing.ports import IncidentFilter, TicketOrder
from servicegraph.ticketing.tickets import TicketChanges
from tests.ticketing.desk_world import Desk, make_desk

S = TicketStatus
K = WorklogKind


@pytest.fixture()
def desk(tmp_path: Path) -> Iterator[Desk]:
    yield from make_desk(tmp_path)


def update(desk: Desk, ticket: Incident, **changes: Any) -> Incident:
    with change_context("frank"):
        return desk.tickets.update(ticket.id, TicketChanges(**changes))


def test_each_changed_field_leaves_an_entry_with_its_old_and_new_value(desk: Desk) -> None:
    ticket = desk.create(title="Mail slow", service="email", custom_fields={"outage_minutes": 5})
    ticket = update(
        desk, ticket,
        title="Mail down",
        requester="jane@acme.com",
        affected_ci_ids=(desk.ids["core-1"], desk.ids["core-1"]),
        tags=("mail", "mail"),
        custom_fields={"outage_minutes": "30"},
        description="",  # unchanged: nothing logged
    )  # fmt: skip
    assert (ticket.title, ticket.requester, ticket.organisation) == ("Mail down", "c-jane", "acme")
    assert ticket.affected_ci_ids == [desk.ids["core-1"]] and ticket.tags == ["mail"]
    assert ticket.custom_fields == {"outage_minutes": 30}
    changed = [
        (e.actor, e.field, e.old, e.new) for e in desk.history(ticket.id) if e.kind is K.CHANGED
    ]
    assert changed == [
        ("frank", "title", "Mail slow", "Mail down"),
        ("frank", "requester", None, "c-jane"),
        ("frank", "organisation", None, "acme"),
        ("frank", "affected_ci_ids", "[]", f'["{desk.ids["core-1"]}"]'),
        ("frank", "tags", "[]", '["mail"]'),
        ("frank", "custom_fields.outage_minutes", "5", "30"),
    ]
    again = update(desk, ticket, title="Mail down")
    assert len(desk.history(again.id)) == len(desk.history(ticket.id)), "no change, no entry"

    cleared = update(desk, ticket, requester="", custom_fields={"outage_minutes": None})
    assert (cleared.requester, cleared.organisation, cleared.custom_fields) == (None, None, {})


def test_impact_and_urgency_move_the_priority_unless_an_agent_overrode_it(desk: Desk) -> None:
    ticket = desk.create(impact="low", urgency="low")
    ticket = update(desk, ticket, impact="high")
    assert ticket.priority == 3
    priority_entry = desk.history(ticket.id)[-1]
    assert (priority_entry.field, priority_entry.old, priority_entry.new) == ("priority", "5", "3")

    with change_context("frank"):
        ticket = desk.tickets.override_priority(ticket.id, 1, "board meeting at 10")
    assert (ticket.priority, ticket.priority_reason, ticket.priority_set_by) == (
        1, "board meeting at 10", "frank",
    )  # fmt: skip
    ticket = update(desk, ticket, urgency="high")
    assert ticket.priority == 1, "the override holds"
    with change_context("frank"):
        ticket = desk.tickets.override_priority(ticket.id, 1, "")  # matrix: high x high = 1
    assert (ticket.priority, ticket.priority_reason) == (1, None), "equal to the matrix: ends it"
    with pytest.raises(ValidationFailed) as info:
        desk.tickets.override_priority(ticket.id, 4, "  ")
    assert info.value.field == "priority_reason"

    payslip = desk.create(service="payroll", title="Payslip missing")
    assert (payslip.priority, payslip.priority_set_by) == (1, "catalogue")
    payslip = update(desk, payslip, urgency="low")
    assert (payslip.priority, payslip.priority_reason) == (3, None), "the default gives way"


def _priority_entries(desk: Desk, ticket: Incident) -> list[tuple[str | None, str | None, str]]:
    return [
        (e.old, e.new, e.text)
        for e in desk.history(ticket.id)
        if e.kind is K.CHANGED and e.field == "priority"
    ]


def test_the_recompute_clamps_to_routings_floor_never_freezes_at_it(desk: Desk) -> None:
    routed = desk.create(category="network/vpn", impact="low", urgency="low")
    assert (routed.priority, routed.priority_floor, routed.priority_reason) == (2, 2, None)
    routed = update(desk, routed, impact="high", urgency="high")
    assert routed.priority == 1, "the floor does not stop the priority rising"
    routed = update(desk, routed, urgency="medium")
    assert routed.priority == 2, "high x medium: the matrix's P2"
    routed = update(desk, routed, impact="low")
    assert (routed.priority, routed.priority_reason) == (2, None), "low x medium is P4: floor P2"
    assert _priority_entries(desk, routed) == [
        ("2", "1", "priority: P2 -> P1 (high impact x high urgency)"),
        ("1", "2", "priority: P1 -> P2 (high impact x medium urgency)"),
    ], "P2 -> P2 is no change, and no entry"

    with change_context("frank"):
        routed = desk.tickets.override_priority(routed.id, 4, "a test tunnel")
    assert (routed.priority, routed.priority_set_by) == (4, "frank"), "the override wins"
    routed = update(desk, routed, urgency="high")
    assert routed.priority == 4, "and holds while impact and urgency change"
    with pytest.raises(
        ValidationFailed,
        match=r"overriding priority 2 \(from low impact x high "
        r"urgency gives P3; routing keeps it at least as urgent as P2\)",
    ) as info:
        desk.tickets.override_priority(routed.id, 3, "")  # the matrix's, but not the bounded
    assert info.value.field == "priority_reason"
    with change_context("frank"):
        routed = desk.tickets.override_priority(routed.id, 2, "")
    assert (routed.priority, routed.priority_reason, routed.priority_set_by) == (2, None, None)
    routed = update(desk, routed, urgency="low")
    assert routed.priority == 2, "following the bounded matrix again"
    assert _priority_entries(desk, routed)[-1] == ("4", "2", "priority: P4 -> P2 (the matrix's)")


@pytest.fixture()
def ceiling_desk(tmp_path: Path) -> Iterator[Desk]:
    rule = {"name": "lab", "when": {"title_keywords": ["lab"]}, "then": {"priority_ceiling": 3}}
    yield from make_desk(tmp_path, routing=[rule])


def test_the_recompute_keeps_applying_routings_ceiling(ceiling_desk: Desk) -> None:
    desk = ceiling_desk
    lab = desk.create(title="lab router", impact="low", urgency="low")
    assert (lab.priority, lab.priority_floor, lab.priority_ceiling) == (5, None, 3)
    lab = update(desk, lab, impact="high", urgency="high")
    assert lab.priority == 3, "the matrix's P1, capped"
    lab = update(desk, lab, urgency="low")
    assert lab.priority == 3, "high x low is P3 itself"
    lab = update(desk, lab, impact="low")
    assert lab.priority == 5, "below the ceiling the matrix rules"
    lab = update(desk, lab, impact="high", urgency="medium")
    assert lab.priority == 3
    assert _priority_entries(desk, lab) == [
        ("5", "3", "priority: P5 -> P3 (high impact x high urgency gives P1; routing keeps it "
         "at most as urgent as P3)"),
        ("3", "5", "priority: P3 -> P5 (low impact x low urgency)"),
        ("5", "3", "priority: P5 -> P3 (high impact x medium urgency gives P2; routing keeps it "
         "at most as urgent as P3)"),
    ]  # fmt: skip
    with change_context("frank"):
        lab = desk.tickets.override_priority(lab.id, 1, "the lab hosts the demo today")
    assert lab.priority == 1, "an agent may go above the ceiling"


BAD_CHANGES: list[tuple[str, dict[str, Any], str]] = [
    ("blank title", {"title": " "}, "title"),
    ("unknown contact", {"requester": "who@where.example"}, "requester"),
    ("unknown service", {"service": "fax"}, "service"),
    ("unknown category", {"category": "network/wifi"}, "category"),
    ("category for requests only", {"category": "hardware/laptop"}, "category"),
    ("unknown impact", {"impact": "huge"}, "impact"),
    ("unknown CI", {"affected_ci_ids": ("ci-missing",)}, "affected_ci_ids.0"),
    ("custom field of the wrong type", {"custom_fields": {"outage_minutes": "x"}},
     "custom_fields.outage_minutes"),
    ("unknown custom field", {"custom_fields": {"colour": "red"}}, "custom_fields.colour"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "field"), [c[1:] for c in BAD_CHANGES], ids=[c[0] for c in BAD_CHANGES]
)
def test_a_bad_change_is_a_named_error_and_writes_nothing(
    desk: Desk, changes: dict[str, Any], field: str
) -> None:
    ticket = desk.create(title="Valid", service="email")
    before = desk.snapshot()
    with pytest.raises(ValidationFailed) as info:
        update(desk, ticket, **{"description": "Renamed", **changes})  # nothing of it kept
    assert info.value.field == field
    assert desk.snapshot() == before
    assert desk.tickets.get(ticket.id).description == ""


def test_moving_a_request_to_a_category_checks_the_fields_it_requires(desk: Desk) -> None:
    request = desk.create(type=TicketType.SERVICE_REQUEST, title="Laptop")
    with pytest.raises(ValidationFailed) as info:
        update(desk, request, category="hardware/laptop")
    assert info.value.field == "custom_fields.laptop_model"
    moved = update(desk, request, category="hardware/laptop", custom_fields={"laptop_model": "x1"})
    assert (moved.category, moved.custom_fields) == ("hardware/laptop", {"laptop_model": "x1"})


def test_a_closed_ticket_is_read_only_but_takes_comments(desk: Desk) -> None:
    ticket = desk.create(title="Done", assignee="frank")
    with change_context("frank"):
        desk.tickets.transition(ticket.id, "resolve", resolution_code="solved")
        ticket = desk.tickets.transition(ticket.id, "close", close_code="solved")
    with pytest.raises(InvalidState, match="read-only"):
        update(desk, ticket, title="Reopened?")
    with pytest.raises(InvalidState, match="read-only"):
        desk.tickets.override_priority(ticket.id, 1, "late")
    commented = desk.tickets.comment(ticket.id, "post-mortem on Friday")
    assert desk.history(commented.id)[-1].kind is K.COMMENT
    with pytest.raises(ValidationFailed) as blank:
        desk.tickets.comment(ticket.id, "  ")
    assert blank.value.field == "text"


def test_links_between_tickets_and_to_changes(desk: Desk) -> None:
    major, child, other = (desk.create(title=t) for t in ("Major", "Child", "Other"))
    with change_context("frank"):
        change = desk.services.desk.changes.create(
            NewChange(title="Core upgrade", ci_ids=(desk.ids["core-1"],))
        )
    link = desk.tickets.link(major.id, LinkKind.PARENT_OF, child.id)
    assert desk.tickets.link(major.id, LinkKind.PARENT_OF, child.id) == link, "idempotent"
    desk.tickets.link(child.id, LinkKind.CAUSED_BY_CHANGE, change.id)
    desk.tickets.link(other.id, LinkKind.DUPLICATE_OF, major.id)
    related = desk.tickets.link(other.id, LinkKind.RELATED, child.id)
    assert desk.tickets.link(child.id, "related", other.id) == related, "either way round"  # type: ignore[arg-type]

    refused: list[tuple[str, str, str, str]] = [
        (major.id, "parent_of", major.id, "itself"),
        (other.id, "parent_of", child.id, "already has a parent"),
        (child.id, "parent_of", major.id, "is an ancestor of"),
        (other.id, "duplicate_of", child.id, "already a duplicate of"),
        (major.id, "duplicate_of", other.id, "the other way round"),
        (major.id, "caused_by_change", child.id, "must be a change"),
        (major.id, "sibling_of", child.id, "kind"),
    ]
    before = desk.snapshot()
    for source, kind, target, says in refused:
        with pytest.raises(ValidationFailed) as info:
            desk.tickets.link(source, kind, target)  # type: ignore[arg-type]
        assert info.value.field in ("target_id", "kind"), (kind, info.value)
        assert says in str(info.value), (kind, info.value)
    for source, kind, target, field in [
        (major.id, "caused_by_change", "chg-0000000000000000", "target_id"),
        (major.id, "related", "inc-0000000000000000", "target_id"),
        ("inc-0000000000000000", "related", major.id, "source_id"),
    ]:
        with pytest.raises(TicketNotFound) as missing:
            desk.tickets.link(source, kind, target)  # type: ignore[arg-type]
        assert missing.value.field == field
    assert desk.snapshot() == before

    assert {(x.kind, x.target_id) for x in desk.tickets.links(child.id)} == {
        (LinkKind.PARENT_OF, child.id),
        (LinkKind.CAUSED_BY_CHANGE, change.id),
        (LinkKind.RELATED, child.id),
    }
    desk.tickets.unlink(major.id, LinkKind.PARENT_OF, child.id)
    assert desk.history(child.id)[-1].text == f"unlinked: {major.id} parent of {child.id}"
    with pytest.raises(TicketNotFound):
        desk.tickets.unlink(major.id, LinkKind.PARENT_OF, child.id)
    desk.tickets.link(other.id, LinkKind.PARENT_OF, child.id)  # the child is free again


def test_listings_page_by_cursor_each_ticket_once(desk: Desk) -> None:
    made = []
    for n in range(23):
        desk.clock.advance(minutes=1)
        impact = ("high", "medium", "low")[n % 3]
        made.append(
            desk.create(title=f"t{n}", affected_ci_ids=(desk.ids["core-1"],), impact=impact)
        )
    seen: list[str] = []
    page = desk.tickets.queue("noc", first=5)
    while True:
        seen += [t.id for t in page.items]
        if page.next_cursor is None:
            break
        page = desk.tickets.queue("noc", first=5, after=page.next_cursor)
    assert sorted(seen) == sorted(t.id for t in made) and len(seen) == len(set(seen))
    expected = sorted(made, key=lambda t: (t.priority, t.opened_at, t.number))
    assert seen == [t.id for t in expected]

    newest = desk.tickets.find(IncidentFilter(limit=10))
    assert [t.number for t in newest.items] == list(range(23, 13, -1))
    with pytest.raises(ValidationFailed) as wrong:
        desk.tickets.find(IncidentFilter(order=TicketOrder.QUEUE), after=newest.next_cursor)
    assert wrong.value.field == "after"
    for bad, field in [
        ({"limit": 0}, "first"),
        ({"limit": 1001}, "first"),
        ({"max_priority": 7}, "max_priority"),
    ]:
        with pytest.raises(ValidationFailed) as info:
            desk.tickets.find(IncidentFilter(**bad))
        assert info.value.field == field
    with pytest.raises(ValidationFailed) as group:
        desk.tickets.queue("helpdesk")
    assert group.value.field == "group"
    for ticket in made[:2]:
        desk.tickets.assign(ticket.id, agent="bob")
    assert [t.id for t in desk.tickets.mine("bob").items] == [t.id for t in made[:2]]
    with pytest.raises(ValidationFailed) as agent:
        desk.tickets.mine("nobody")
    assert agent.value.field == "agent"


def _resolved(desk: Desk, title: str) -> Incident:
    ticket = desk.create(title=title, assignee="frank")
    with change_context("frank"):
        return desk.tickets.transition(ticket.id, "resolve", resolution_code="solved")


def test_auto_close_closes_what_stayed_resolved_long_enough(desk: Desk) -> None:
    old = _resolved(desk, "old")
    desk.clock.advance(days=3)
    recent = _resolved(desk, "recent")
    reopened = _resolved(desk, "reopened")
    with change_context("frank"):
        desk.tickets.transition(reopened.id, "reopen", reason="back", actor_kind=ActorKind.AGENT)
    open_one = desk.create(title="open")

    desk.clock.advance(days=4)  # old: 7 days resolved exactly; recent: 4
    assert jobs.auto_close(desk.services) == {"tickets_closed": 1}
    assert desk.tickets.auto_close() == 0, "idempotent"
    statuses = {t.title: t.status for t in desk.tickets.get_many(
        [old.id, recent.id, reopened.id, open_one.id]).values()}  # fmt: skip
    assert statuses == {
        "old": S.CLOSED,
        "recent": S.RESOLVED,
        "reopened": S.ASSIGNED,
        "open": S.NEW,
    }
    closed = desk.tickets.get(old.id)
    assert (closed.close_code, closed.closed_at) == ("auto_closed", desk.clock.now)
    transition, code = desk.history(old.id)[-2:]
    assert (transition.actor, transition.old, transition.new) == ("system", "resolved", "closed")
    assert transition.text == "close (auto_closed): resolved more than 7 days ago and not reopened"
    assert (code.field, code.new) == ("close_code", "auto_closed")

    later = desk.clock.now + dt.timedelta(days=3)
    assert desk.tickets.auto_close(later) == 1


def test_auto_close_is_bounded_per_run_and_can_be_off(tmp_path: Path, desk: Desk) -> None:
    for n in range(5):
        _resolved(desk, f"r{n}")
    desk.clock.advance(days=30)
    assert desk.tickets.auto_close(limit=2) == 2
    assert desk.tickets.auto_close(limit=2) == 2
    assert desk.tickets.auto_close(limit=2) == 1
    with pytest.raises(ValidationFailed):
        desk.tickets.auto_close(dt.datetime(2027, 1, 1))  # naive
    gen = make_desk(tmp_path / "never", auto_close_days=None)
    never = next(gen)
    _resolved(never, "kept")
    never.clock.advance(days=365)
    assert never.tickets.auto_close() == 0
    gen.close()


def test_errors_name_several_fields_at_once_when_the_schema_finds_several(desk: Desk) -> None:
    with pytest.raises(ValidationErrors) as info:
        desk.create(custom_fields={"outage_minutes": "x", "colour": "red"})
    assert sorted(e.field for e in info.value.errors) == [
        "custom_fields.colour", "custom_fields.outage_minutes",
    ]  # fmt: skip
