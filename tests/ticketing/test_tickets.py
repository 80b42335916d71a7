"""Creating tickets: every field checked (a named error, nothing written), the requester's
organisation, catalogue defaults, the priority matrix and overrides, routing (rules, a
CI's support group, the service's owner, triage), automatic assignment, numbering."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.ticketing.errors import TicketNotFound
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Channel, LinkKind, TicketType, WorklogKind
from tests.ticketing.desk_world import Desk, make_desk


@pytest.fixture()
def desk(tmp_path: Path) -> Iterator[Desk]:
    yield from make_desk(tmp_path)


@pytest.fixture()
def auto_desk(tmp_path: Path) -> Iterator[Desk]:
    yield from make_desk(tmp_path, auto_assign=True)


SR = TicketType.SERVICE_REQUEST
BAD_INPUT: list[tuple[str, dict[str, Any], str]] = [
    ("blank title", {"title": "  "}, "title"),
    ("title too long", {"title": "x" * 201}, "title"),
    ("unknown type", {"type": "problem"}, "type"),
    ("unknown channel", {"channel": "fax"}, "channel"),
    ("monitoring is correlation's", {"channel": Channel.MONITORING}, "channel"),
    ("unknown contact", {"requester": "nobody@acme.com"}, "requester"),
    ("inactive contact", {"requester": "c-gone"}, "requester"),
    ("unknown service", {"service": "fax-machines"}, "service"),
    ("service takes no requests", {"type": SR, "service": "email"}, "service"),
    ("unknown category", {"category": "network/wifi"}, "category"),
    ("category for requests only", {"category": "hardware/laptop"}, "category"),
    ("unknown impact", {"impact": "huge"}, "impact"),
    ("unknown urgency", {"urgency": "yesterday"}, "urgency"),
    ("override without reason", {"priority": 1}, "priority_reason"),
    ("override out of range", {"priority": 9, "priority_reason": "why not"}, "priority"),
    ("reason without override", {"priority_reason": "because"}, "priority"),
    ("unknown group", {"assignment_group": "helpdesk"}, "assignment_group"),
    ("unknown agent", {"assignee": "nobody-such-user-xyz"}, "assignee"),
    ("inactive agent", {"assignee": "erin"}, "assignee"),
    ("agent outside the group", {"assignment_group": "dbas", "assignee": "bob"}, "assignee"),
    ("unknown CI", {"affected_ci_ids": ("@core-1", "ci-missing")}, "affected_ci_ids.1"),
    ("blank tag", {"tags": ("vpn", " ")}, "tags.1"),
    ("custom field of the wrong type", {"custom_fields": {"outage_minutes": "lots"}},
     "custom_fields.outage_minutes"),
    ("custom field below its minimum", {"custom_fields": {"outage_minutes": -1}},
     "custom_fields.outage_minutes"),
    ("unknown custom field", {"custom_fields": {"colour": "red"}}, "custom_fields.colour"),
    ("required custom field missing", {"type": SR, "category": "hardware/laptop"},
     "custom_fields.laptop_model"),
    ("choice outside its choices",
     {"type": SR, "category": "hardware/laptop", "custom_fields": {"laptop_model": "mac"}},
     "custom_fields.laptop_model"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "field"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_is_a_named_error_and_writes_nothing(
    desk: Desk, fields: dict[str, Any], field: str
) -> None:
    fields = {k: desk.ids[v[1:]] if isinstance(v, str) and v.startswith("@") else v
              for k, v in fields.items()}  # fmt: skip
    if "affected_ci_ids" in fields:
        fields["affected_ci_ids"] = tuple(
            desk.ids[v[1:]] if v.startswith("@") else v for v in fields["affected_ci_ids"]
        )
    before = desk.snapshot()
    with pytest.raises((ValidationFailed, ValidationErrors)) as info:
        desk.create(**fields)
    error = info.value
    fields_named = [e.field for e in error.errors] if isinstance(error, ValidationErrors) else [
        error.field]  # fmt: skip
    assert field in fields_named, error
    assert desk.snapshot() == before


def test_an_unknown_parent_is_not_found_and_nothing_is_written(desk: Desk) -> None:
    before = desk.snapshot()
    with pytest.raises(TicketNotFound) as info:
        desk.create(parent_id="inc-0000000000000000")
    assert info.value.field == "parent_id"
    assert desk.snapshot() == before


def test_a_ticket_gets_its_requesters_organisation_and_the_catalogues_defaults(desk: Desk) -> None:
    joe = desk.create(requester="JOE@globex.com", service="payroll", title="Payslip missing")
    assert (joe.requester, joe.organisation) == ("c-joe", "globex"), "the mail domain's"
    assert joe.impact == "high", "the service's default impact"
    assert (joe.priority, joe.priority_set_by) == (1, "catalogue")
    assert joe.priority_reason == "the catalogue's default priority for service 'payroll'"
    assert (joe.assignment_group, joe.routed_by) == ("dbas", "default:service_owner")

    said = desk.create(service="payroll", urgency="low", title="Payroll slow")
    assert (said.priority, said.priority_reason) == (3, None), "impact x urgency said: matrix"

    request = desk.create(
        type=SR, title="New laptop", category="hardware/laptop",
        custom_fields={"laptop_model": " t14 "},
    )  # fmt: skip
    assert request.id.startswith("req-") and request.type is SR
    assert request.custom_fields == {"laptop_model": "t14"}
    vpn = desk.create(category="network/vpn", title="VPN drops")
    assert vpn.custom_fields == {"vpn_profile": "staff"}, "the schema's default"
    assert vpn.id.startswith("inc-")
    numbers = [t.number for t in (joe, said, request, vpn)]
    assert numbers == [1, 2, 3, 4], "incidents and requests share one sequence"


def test_the_matrix_gives_the_priority_unless_an_agent_overrides_it_with_a_reason(
    desk: Desk,
) -> None:
    plain = desk.create(impact="high", urgency="medium")
    assert (plain.priority, plain.priority_reason, plain.priority_set_by) == (2, None, None)
    same = desk.create(impact="high", urgency="medium", priority=2)
    assert same.priority_reason is None, "the matrix's own priority is no override"
    override = desk.create(
        impact="low", urgency="low", priority=1, priority_reason="CEO's laptop", actor="frank"
    )
    assert (override.priority, override.priority_reason, override.priority_set_by) == (
        1, "CEO's laptop", "frank",
    )  # fmt: skip
    created = desk.history(override.id)[0]
    assert created.kind is WorklogKind.CREATED and created.actor == "frank"
    assert "P1, overriding P5: CEO's laptop" in created.text


@pytest.mark.parametrize(
    ("fields", "group", "rule", "why"),
    [
        pytest.param({"category": "network/vpn"}, "network", "vpn",
                     "rule 'vpn' matched (category network/vpn)", id="a rule"),
        pytest.param({"affected_ci_ids": ("@orders-db",)}, "dbas", "databases",
                     "affected CI database", id="a rule on the CI's class"),
        pytest.param({"affected_ci_ids": ("@core-1",)}, "noc", "default:ci_support_group",
                     "the CI's support group noc", id="the CI's support group"),
        pytest.param({"affected_ci_ids": ("@acc-1-gi1",)}, "network", "default:ci_support_group",
                     "the CI's support group network", id="inherited from the CI it is part of"),
        pytest.param({"affected_ci_ids": ("@db-2",), "service": "vpn"}, "network",
                     "default:service_owner", "which the directory does not hold",
                     id="an unknown support group passed over"),
        pytest.param({"service": "email"}, "apps", "default:service_owner",
                     "service email's owner apps", id="the service's owner"),
        pytest.param({"category": "network"}, "service-desk", "default:triage",
                     "the triage group service-desk", id="triage"),
    ],
)  # fmt: skip
def test_routing_picks_the_group_and_says_why(
    desk: Desk, fields: dict[str, Any], group: str, rule: str, why: str
) -> None:
    if "affected_ci_ids" in fields:
        fields["affected_ci_ids"] = tuple(desk.ids[v[1:]] for v in fields["affected_ci_ids"])
    ticket = desk.create(**fields)
    assert (ticket.assignment_group, ticket.routed_by, ticket.status) == (group, rule, "new")
    created, routed = desk.history(ticket.id)
    assert created.kind is WorklogKind.CREATED
    assert routed.kind is WorklogKind.ROUTED and routed.actor == "alice"
    assert (routed.field, routed.old, routed.new) == ("assignment_group", None, group)
    assert routed.text.startswith(f"routed to {group} by {rule}: ")
    assert why in routed.text


def test_rules_add_tags_and_keep_priority_bounds_on_the_ticket_which_no_override_obeys(
    desk: Desk,
) -> None:
    jane = desk.create(requester="c-jane", category="network/vpn", impact="low", urgency="low")
    assert jane.tags == ["vip", "vpn"], "vip does not stop; vpn does"
    assert (jane.priority, jane.priority_floor, jane.priority_ceiling) == (2, 2, None)
    assert (jane.priority_reason, jane.priority_set_by) == (None, None), "a bound, no override"
    assert desk.history(jane.id)[1].text.endswith(
        "; priority by routing rule 'vpn': at least as urgent as P2 (P5 -> P2)"
    )
    assert desk.tickets.get(jane.id) == jane, "the bounds are stored with the ticket"

    urgent = desk.create(category="network/vpn", impact="high", urgency="high")
    assert (urgent.priority, urgent.priority_floor) == (1, 2), "a floor never lowers"
    assert "priority by" not in desk.history(urgent.id)[1].text, "nothing moved"

    overridden = desk.create(
        category="network/vpn", impact="low", urgency="low", priority=4, priority_reason="test lab"
    )
    assert (overridden.priority, overridden.priority_set_by) == (4, "alice"), "the agent's wins"
    assert overridden.priority_floor == 2, "kept for when the override ends"
    assert "priority by" not in desk.history(overridden.id)[1].text


# a ceiling and a floor from rules that both match (``stop: false``), and a ceiling on the
# catalogue's payroll service, whose default priority is P1
BOUNDING_RULES: list[dict[str, Any]] = [
    {"name": "lab", "when": {"title_keywords": ["lab"]},
     "then": {"priority_ceiling": 3, "stop": False}},
    {"name": "vpn", "when": {"category": "network/vpn"},
     "then": {"group": "network", "priority_floor": 2}},
    {"name": "payroll", "when": {"service": "payroll"}, "then": {"priority_ceiling": 2}},
]  # fmt: skip


@pytest.fixture()
def bounding_desk(tmp_path: Path) -> Iterator[Desk]:
    yield from make_desk(tmp_path, routing=BOUNDING_RULES)


@pytest.mark.parametrize(
    ("fields", "bounds", "priority", "moved"),
    [
        pytest.param({"title": "lab switch down", "impact": "high", "urgency": "high"},
                     (None, 3), 3, "'lab': at most as urgent as P3 (P1 -> P3)", id="ceiling"),
        pytest.param({"title": "lab switch down", "impact": "low", "urgency": "low"},
                     (None, 3), 5, None, id="a ceiling never raises"),
        pytest.param({"title": "lab vpn", "category": "network/vpn", "impact": "low",
                      "urgency": "low"}, (2, 2), 2,
                     "'lab', 'vpn': at least as urgent as P2 and at most as urgent as P2 "
                     "(P5 -> P2)", id="a floor more urgent than the ceiling wins"),
        pytest.param({"title": "lab vpn", "category": "network/vpn", "impact": "high",
                      "urgency": "high"}, (2, 2), 2, "(P1 -> P2)", id="pinned to the floor"),
        pytest.param({"title": "payslip", "service": "payroll"}, (None, 2), 2,
                     "'payroll': at most as urgent as P2 (P1 -> P2)",
                     id="a catalogue default is bounded"),
    ],
)  # fmt: skip
def test_bounds_from_several_rules_and_over_a_catalogue_default(
    bounding_desk: Desk,
    fields: dict[str, Any],
    bounds: tuple[int | None, int | None],
    priority: int,
    moved: str | None,
) -> None:
    ticket = bounding_desk.create(**fields)
    assert ((ticket.priority_floor, ticket.priority_ceiling), ticket.priority) == (bounds, priority)
    routed = bounding_desk.history(ticket.id)[1]
    assert routed.kind is WorklogKind.ROUTED
    if moved is None:
        assert "priority by" not in routed.text
    else:
        assert "; priority by routing rule " in routed.text and routed.text.endswith(moved)


def test_a_group_given_by_the_caller_wins_and_rules_still_tag(desk: Desk) -> None:
    ticket = desk.create(requester="c-jane", category="network/vpn", assignment_group="noc",
                         tags=("urgent", "vip"))  # fmt: skip
    assert (ticket.assignment_group, ticket.routed_by) == ("noc", None)
    assert ticket.tags == ["urgent", "vip", "vpn"]
    _, routed = desk.history(ticket.id)
    assert routed.kind is WorklogKind.ROUTED and routed.field is None
    assert routed.text.startswith("the group given noc; rules: rule 'vip' matched")


def test_an_agent_given_is_assigned_within_the_group_by_the_lifecycle(desk: Desk) -> None:
    ticket = desk.create(affected_ci_ids=(desk.ids["core-1"],), assignee="bob", actor="frank")
    assert (ticket.assignment_group, ticket.assignee, ticket.status) == (
        "noc", "bob", TicketStatus.ASSIGNED,
    )  # fmt: skip
    log = desk.history(ticket.id)
    assert [(e.kind, e.field, e.old, e.new) for e in log] == [
        (WorklogKind.CREATED, None, None, None),
        (WorklogKind.ROUTED, "assignment_group", None, "noc"),
        (WorklogKind.ASSIGNED, "assignee", None, "bob"),
        (WorklogKind.TRANSITION, "status", "new", "assigned"),
    ]
    assert all(e.actor == "frank" for e in log)

    mine = desk.create(title="My own", assignee="dave")  # routing says triage: dave's group
    assert (mine.assignment_group, mine.routed_by, mine.assignee) == ("network", None, "dave")


def test_automatic_assignment_gives_the_least_loaded_active_member(auto_desk: Desk) -> None:
    desk = auto_desk
    core = (desk.ids["core-1"],)
    held = desk.create(affected_ci_ids=core, assignee="alice", title="alice holds one")
    assert held.assignee == "alice"
    assignees = [desk.create(affected_ci_ids=core, title=f"noc {n}").assignee for n in range(3)]
    # bob holds none (erin is inactive), then both hold one: ties go by login
    assert assignees == ["bob", "alice", "bob"]
    ticket = desk.create(affected_ci_ids=core, title="noc 4")
    assigned = [e for e in desk.history(ticket.id) if e.kind is WorklogKind.ASSIGNED]
    assert "fewest open tickets" in assigned[0].text
    empty = desk.create(service="email", title="apps has no agent")
    assert (empty.assignment_group, empty.assignee, empty.status) == ("apps", None, "new")


def test_a_child_ticket_is_linked_to_its_parent(desk: Desk) -> None:
    parent = desk.create(title="Site down")
    child = desk.create(title="Cannot print", parent_id=parent.id)
    (link,) = desk.tickets.links(child.id)
    assert (link.source_id, link.kind, link.target_id) == (parent.id, LinkKind.PARENT_OF, child.id)
    assert desk.history(parent.id)[-1].kind is WorklogKind.LINKED
    assert desk.history(child.id)[-1].text == f"linked: {parent.id} parent of {child.id}"


def test_without_a_triage_group_an_unrouted_ticket_is_refused(tmp_path: Path) -> None:
    gen = make_desk(tmp_path, triage_group="nobody-here")
    desk = next(gen)
    before = desk.snapshot()
    with pytest.raises(ValidationFailed) as info:
        desk.create(title="Where does this go?")
    assert info.value.field == "assignment_group" and "triage" in info.value.reason
    assert desk.snapshot() == before
    assert desk.create(title="Here", assignment_group="apps").assignment_group == "apps"
    gen.close()
