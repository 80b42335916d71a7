"""The issue's first acceptance test, through GraphQL over HTTP: a ticket raised by an
agent is routed, its priority overridden, assigned, started, put on hold, resumed,
resolved, reopened, resolved again and closed; a service request is cancelled. Every step
is checked against the history entries it leaves (actor, kind, field, old -> new), and
every refusal met on the way (a disallowed step, a missing reason, an agent outside the
group) names its field and leaves the ticket and its history as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.graphql.conftest import Site
from tests.graphql.test_desk_fixtures import TICKET_FIELDS, Enum, ask, desk_site, mutate

Entry = tuple[str, str, str | None, str | None, str | None]  # actor kind field old new


@pytest.fixture()
def desk(tmp_path: Path) -> Iterator[Site]:
    yield from desk_site(tmp_path)


def entries(history: list[dict[str, Any]]) -> list[Entry]:
    return [(e["actor"], e["kind"], e["field"], e["old"], e["new"]) for e in history]


def ticket(site: Site, ticket_id: str) -> dict[str, Any]:
    found: dict[str, Any] = ask(
        site,
        "alice",
        f"query($id: ID!) {{ incident(id: $id) {{ {TICKET_FIELDS} }} }}",
        id=ticket_id,
    )["incident"]
    return found


VPN_DOWN = {
    "title": "VPN down for the Lyon office",
    "description": "Nobody in Lyon can connect since 9:00.",
    "channel": Enum("PHONE"),
    "requester": "dave@acme.example",
    "category": "network/vpn",
    "service": "vpn",
    "customFields": {"site": "lyon"},
    "affectedCiIds": ["db-1"],
}

REASON = "the whole Lyon office is cut off"
ROUTED_PRIORITY = "; priority by routing rule 'vpn-outage': at least as urgent as P2 (P3 -> P2)"

# (login, mutation, arguments, status after, the history entries the step adds)
WALK: list[tuple[str, str, dict[str, Any], str, list[Entry]]] = [
    (
        "bob",
        "overridePriority",
        {"priority": 1, "reason": REASON},
        "NEW",
        [
            ("bob", "CHANGED", "priority", "2", "1"),
            ("bob", "CHANGED", "priority_reason", None, REASON),
        ],
    ),
    (
        "alice",
        "assignTicket",
        {"agent": "bob"},
        "ASSIGNED",
        [
            ("alice", "ASSIGNED", "assignee", None, "bob"),
            ("alice", "TRANSITION", "status", "new", "assigned"),
        ],
    ),
    (
        "bob",
        "transitionTicket",
        {"step": "start"},
        "IN_PROGRESS",
        [("bob", "TRANSITION", "status", "assigned", "in_progress")],
    ),
    (
        "bob",
        "transitionTicket",
        {"step": "pend", "pendingReason": "awaiting_requester"},
        "PENDING",
        [
            ("bob", "TRANSITION", "status", "in_progress", "pending"),
            ("bob", "CHANGED", "pending_reason", None, "awaiting_requester"),
        ],
    ),
    (
        "bob",
        "transitionTicket",
        {"step": "resume"},
        "IN_PROGRESS",
        [
            ("bob", "TRANSITION", "status", "pending", "in_progress"),
            ("bob", "CHANGED", "pending_reason", "awaiting_requester", None),
        ],
    ),
    (
        "bob",
        "transitionTicket",
        {"step": "resolve", "resolutionCode": "fixed", "resolution": "restarted the VPN gateway"},
        "RESOLVED",
        [
            ("bob", "TRANSITION", "status", "in_progress", "resolved"),
            ("bob", "CHANGED", "resolution_code", None, "fixed"),
            ("bob", "CHANGED", "resolution", None, "restarted the VPN gateway"),
        ],
    ),
    (
        "alice",
        "transitionTicket",
        {"step": "reopen", "reason": "two users still cannot connect"},
        "ASSIGNED",  # back to the queue of bob, who still holds it
        [
            ("alice", "TRANSITION", "status", "resolved", "assigned"),
            ("alice", "CHANGED", "resolution_code", "fixed", None),
            ("alice", "CHANGED", "resolution", "restarted the VPN gateway", None),
        ],
    ),
    (
        "bob",
        "transitionTicket",
        {"step": "RESOLVED", "resolutionCode": "fixed", "resolution": "renewed two certificates"},
        "RESOLVED",  # asked for by status this time
        [
            ("bob", "TRANSITION", "status", "assigned", "resolved"),
            ("bob", "CHANGED", "resolution_code", None, "fixed"),
            ("bob", "CHANGED", "resolution", None, "renewed two certificates"),
        ],
    ),
    (
        "bob",
        "transitionTicket",
        {"step": "close", "closeCode": "confirmed"},
        "CLOSED",
        [
            ("bob", "TRANSITION", "status", "resolved", "closed"),
            ("bob", "CHANGED", "close_code", None, "confirmed"),
        ],
    ),
    (
        "bob",
        "commentOnTicket",
        {"text": "Dave confirmed by phone"},
        "CLOSED",  # a comment is always allowed
        [("bob", "COMMENT", None, None, None)],
    ),
]

# Refused on the way, before the step of the same index in WALK: (login, mutation,
# arguments, failure, the field or the allowed steps it names).
REFUSED: dict[int, list[tuple[str, str, dict[str, Any], str, Any]]] = {
    0: [("bob", "overridePriority", {"priority": 1, "reason": " "}, "InvalidInput", "reason")],
    1: [
        ("alice", "assignTicket", {"agent": "carol"}, "InvalidInput", "agent"),
        ("alice", "assignTicket", {"agent": "nobody-such-user"}, "InvalidInput", "agent"),
        ("alice", "assignTicket", {"group": "ghosts"}, "InvalidInput", "group"),
    ],
    2: [
        (
            "bob",
            "transitionTicket",
            {"step": "close", "closeCode": "x"},
            "InvalidState",
            ["assign", "start", "pend", "resolve", "cancel"],
        ),
        ("bob", "transitionTicket", {"step": "finish"}, "InvalidInput", "step"),
    ],
    3: [("bob", "transitionTicket", {"step": "pend"}, "InvalidInput", "pendingReason")],
    4: [
        (
            "bob",
            "transitionTicket",
            {"step": "pend", "pendingReason": "awaiting_godot"},
            "InvalidState",
            ["resume", "resolve", "cancel"],
        )
    ],
    5: [("bob", "transitionTicket", {"step": "resolve"}, "InvalidInput", "resolutionCode")],
    6: [("alice", "transitionTicket", {"step": "reopen"}, "InvalidInput", "reason")],
    8: [("bob", "transitionTicket", {"step": "close"}, "InvalidInput", "closeCode")],
}


def test_a_ticket_walks_every_state_by_graphql(desk: Site) -> None:
    created = mutate(desk, "alice", "createIncident", input=VPN_DOWN)
    assert created["__typename"] == "IncidentPayload", created
    t = created["incident"]
    # routed by the rule, at least as urgent as P2, tagged; the requester's organisation
    assert (t["status"], t["type"], t["channel"]) == ("NEW", "INCIDENT", "PHONE")
    assert (t["assignmentGroup"], t["routedBy"], t["tags"]) == ("noc", "vpn-outage", ["vpn"])
    assert (t["impact"], t["urgency"], t["priority"]) == ("medium", "medium", 2)
    assert (t["priorityFloor"], t["priorityCeiling"]) == (2, None), "the rule's bound, kept"
    assert (t["priorityOverridden"], t["priorityReason"]) == (False, None), "no override"
    assert (t["requester"], t["organisation"], t["service"]) == ("dave", "acme", "vpn")
    assert t["customFields"] == {"site": "lyon"}
    assert t["affectedCiIds"] == [desk.ids["db-1"]]
    assert t["createdBy"] == "alice" and t["assignee"] is None
    assert t["allowedSteps"] == ["assign", "resolve", "cancel"]
    assert entries(t["history"]) == [
        ("alice", "CREATED", None, None, None),
        ("alice", "ROUTED", "assignment_group", None, "noc"),
    ]
    assert "rule 'vpn-outage' matched" in t["history"][1]["text"]
    assert t["history"][1]["text"].endswith(ROUTED_PRIORITY)

    seen = len(t["history"])
    for index, (login, name, arguments, status, added) in enumerate(WALK):
        for who, refused, wrong, failure, named in REFUSED.get(index, []):
            result = mutate(desk, who, refused, id=t["id"], **wrong)
            assert result["__typename"] == failure, (refused, wrong, result)
            if failure == "InvalidInput":
                assert [e["field"] for e in result["errors"]] == [named], result
            else:
                assert result["allowedSteps"] == named, result
                assert result["ticketId"] == t["id"]
            unchanged = ticket(desk, t["id"])
            assert unchanged["status"] == t["status"], (refused, wrong)
            assert len(unchanged["history"]) == seen, (refused, wrong, "wrote history")

        result = mutate(desk, login, name, id=t["id"], **arguments)
        assert result["__typename"] == "IncidentPayload", (name, arguments, result)
        t = result["incident"]
        assert t["status"] == status, (name, arguments)
        assert entries(t["history"][seen:]) == added, (name, arguments)
        step = arguments.get("step")
        if step is not None and step.islower():
            assert t["history"][seen]["text"].startswith(step), t["history"][seen]
        seen = len(t["history"])

    assert (t["priority"], t["priorityOverridden"], t["prioritySetBy"]) == (1, True, "bob")
    assert (t["priorityFloor"], t["priorityCeiling"]) == (2, None), "the override wins over it"
    assert t["reopenCount"] == 1
    assert (t["resolutionCode"], t["resolution"]) == ("fixed", "renewed two certificates")
    assert t["closeCode"] == "confirmed" and t["closedAt"] is not None
    assert t["allowedSteps"] == []
    # the first, manual resolution is still in the history after the reopen
    assert ("bob", "CHANGED", "resolution", None, "restarted the VPN gateway") in entries(
        t["history"]
    )
    # a closed ticket is read-only
    refused = mutate(desk, "bob", "updateTicket", id=t["id"], changes={"title": "VPN"})
    assert (refused["__typename"], refused["status"], refused["allowedSteps"]) == (
        "InvalidState",
        "closed",
        [],
    )
    assert len(ticket(desk, t["id"])["history"]) == seen


def test_a_service_request_is_routed_and_cancelled(desk: Site) -> None:
    created = mutate(
        desk,
        "carol",
        "createServiceRequest",
        input={
            "title": "A laptop for the new hire",
            "category": "hardware/laptop",
            "requester": "dave",
            "customFields": {"laptop_model": "t14"},
        },
    )
    t = created["incident"]
    assert (t["type"], t["channel"], t["status"]) == ("SERVICE_REQUEST", "API", "NEW")
    assert (t["assignmentGroup"], t["routedBy"], t["tags"]) == (
        "service-desk",
        "hardware-requests",
        ["hardware"],
    )
    assert t["customFields"] == {"laptop_model": "t14"}
    refused = mutate(desk, "carol", "transitionTicket", id=t["id"], step="cancel")
    assert [e["field"] for e in refused["errors"]] == ["reason"]
    cancelled = mutate(
        desk, "carol", "transitionTicket", id=t["id"], step="cancel", reason="hire postponed"
    )["incident"]
    assert cancelled["status"] == "CANCELLED" and cancelled["allowedSteps"] == []
    assert entries(cancelled["history"])[-1] == (
        "carol",
        "TRANSITION",
        "status",
        "new",
        "cancelled",
    )
    assert cancelled["history"][-1]["text"] == "cancel: hire postponed"


def test_routing_defaults_when_no_rule_matches(desk: Site) -> None:
    # no rule: the service's owner group; neither: the triage group
    by_service = mutate(
        desk, "carol", "createIncident", input={"title": "VPN client is slow", "service": "vpn"}
    )["incident"]
    assert (by_service["assignmentGroup"], by_service["routedBy"]) == (
        "noc",
        "default:service_owner",
    )
    triaged = mutate(desk, "carol", "createIncident", input={"title": "Printer jams"})["incident"]
    assert (triaged["assignmentGroup"], triaged["routedBy"]) == ("service-desk", "default:triage")
    chosen = mutate(
        desk,
        "carol",
        "createIncident",
        input={"title": "Printer on fire", "assignmentGroup": "noc", "assignee": "alice"},
    )["incident"]
    assert (chosen["assignmentGroup"], chosen["assignee"], chosen["status"]) == (
        "noc",
        "alice",
        "ASSIGNED",
    )


# Bad input when raising a ticket: (input, the field named). Nothing is created.
BAD_TICKETS: list[tuple[dict[str, Any], str]] = [
    ({"title": " "}, "input.title"),
    ({"title": "x", "requester": "nobody@nowhere.example"}, "input.requester"),
    ({"title": "x", "service": "telepathy"}, "input.service"),
    ({"title": "x", "category": "network/telepathy"}, "input.category"),
    ({"title": "x", "assignmentGroup": "ghosts"}, "input.assignmentGroup"),
    ({"title": "x", "assignmentGroup": "noc", "assignee": "carol"}, "input.assignee"),
    ({"title": "x", "assignee": "nobody-such-user-xyz"}, "input.assignee"),
    ({"title": "x", "impact": "cosmic"}, "input.impact"),
    ({"title": "x", "priority": 1}, "input.priorityReason"),
    ({"title": "x", "priority": 9, "priorityReason": "why not"}, "input.priority"),
    ({"title": "x", "customFields": {"site": 42}}, "input.customFields.site"),
    ({"title": "x", "customFields": {"colour": "red"}}, "input.customFields.colour"),
    ({"title": "x", "affectedCiIds": ["db-1", "no-such-ci"]}, "input.affectedCiIds.1"),
    ({"title": "x", "parentId": "inc-none"}, "input.parentId"),
]


@pytest.mark.parametrize(("given", "field"), BAD_TICKETS, ids=[f for _, f in BAD_TICKETS])
def test_bad_input_names_the_field_and_creates_nothing(
    desk: Site, given: dict[str, Any], field: str
) -> None:
    result = mutate(desk, "alice", "createIncident", input=given)
    assert result["__typename"] in ("InvalidInput", "NotFound"), result
    named = [e["field"] for e in result["errors"]] if "errors" in result else [result["field"]]
    assert field in named, result
    page = ask(desk, "alice", "{ tickets { items { id } } }")["tickets"]
    assert page["items"] == []
