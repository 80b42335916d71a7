"""The desk's other mutations through GraphQL over HTTP: editing fields (each change one
history entry, custom fields merged and cleared), the affected CIs by key or identifier,
links between tickets with both ends shown, reassignment across groups, who may do what;
and the ticketChanged subscription of a group."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servicegraph.config import GraphQLSettings
from tests.graphql.conftest import Site
from tests.graphql.test_desk_fixtures import Enum, ask, desk_site, mutate


@pytest.fixture()
def desk(tmp_path: Path) -> Iterator[Site]:
    yield from desk_site(tmp_path, graphql=GraphQLSettings(subscription_poll_s=0.05))


def raise_vpn_ticket(site: Site, title: str = "VPN down in Lyon") -> dict[str, Any]:
    result = mutate(
        site,
        "alice",
        "createIncident",
        input={"title": title, "category": "network/vpn", "customFields": {"site": "lyon"}},
    )
    assert result["__typename"] == "IncidentPayload", result
    ticket: dict[str, Any] = result["incident"]
    return ticket


def changes_of(ticket: dict[str, Any], since: int) -> list[tuple[str, str | None, Any, Any]]:
    return [(e["kind"], e["field"], e["old"], e["new"]) for e in ticket["history"][since:]]


def test_update_logs_each_changed_field(desk: Site) -> None:
    t = raise_vpn_ticket(desk)
    before = len(t["history"])
    changes = {
        "title": "VPN down in Lyon and Nantes",
        "requester": "dave@acme.example",
        "tags": ["vpn", "nantes"],
        "customFields": {"site": None},  # cleared
        "description": "since 9:00",
    }
    updated = mutate(desk, "bob", "updateTicket", id=t["id"], changes=changes)["incident"]
    assert changes_of(updated, before) == [
        ("CHANGED", "title", "VPN down in Lyon", "VPN down in Lyon and Nantes"),
        ("CHANGED", "description", "", "since 9:00"),
        ("CHANGED", "requester", None, "dave"),
        ("CHANGED", "organisation", None, "acme"),
        ("CHANGED", "tags", '["vpn"]', '["vpn", "nantes"]'),
        ("CHANGED", "custom_fields.site", "lyon", None),
    ]
    assert {e["actor"] for e in updated["history"][before:]} == {"bob"}
    assert updated["customFields"] == {}
    again = mutate(desk, "bob", "updateTicket", id=t["id"], changes=changes)["incident"]
    assert len(again["history"]) == len(updated["history"]), "nothing changed, nothing logged"


BAD_CHANGES = [
    ({"impact": "cosmic"}, "changes.impact"),
    ({"requester": "nobody@nowhere.example"}, "changes.requester"),
    ({"category": "hardware/laptop"}, "changes.category"),  # for service requests only
    ({"customFields": {"site": 42}}, "changes.customFields.site"),
    ({"customFields": ["site"]}, "changes.customFields"),
    ({"title": ""}, "changes.title"),
    ({"affectedCiIds": ["db-1", "no-such-ci"]}, "changes.affectedCiIds.1"),
]


@pytest.mark.parametrize(("changes", "field"), BAD_CHANGES, ids=[f for _, f in BAD_CHANGES])
def test_bad_changes_name_the_field_and_change_nothing(
    desk: Site, changes: dict[str, Any], field: str
) -> None:
    t = raise_vpn_ticket(desk)
    result = mutate(desk, "bob", "updateTicket", id=t["id"], changes=changes)
    assert result["__typename"] in ("InvalidInput", "NotFound"), result
    named = [e["field"] for e in result["errors"]] if "errors" in result else [result["field"]]
    assert named == [field], result
    after = ask(
        desk, "bob", "query($id: ID!) { incident(id: $id) { history { kind } } }", id=t["id"]
    )
    assert len(after["incident"]["history"]) == len(t["history"])


def test_affected_cis_by_key_and_identifier(desk: Site) -> None:
    t = raise_vpn_ticket(desk)
    result = mutate(desk, "bob", "setAffectedCis", id=t["id"], ciIds=["db-1", "hostname:db-2"])
    ids = [desk.ids["db-1"], desk.ids["db-2"]]
    assert result["incident"]["affectedCiIds"] == ids
    assert changes_of(result["incident"], len(t["history"])) == [
        ("CHANGED", "affected_ci_ids", "[]", f'["{ids[0]}", "{ids[1]}"]')
    ]
    shown = ask(
        desk, "bob", "query($id: ID!) { incident(id: $id) { affectedCis { name } } }", id=t["id"]
    )
    assert [c["name"] for c in shown["incident"]["affectedCis"]] == ["db-1", "db-2"]
    unknown = mutate(desk, "bob", "setAffectedCis", id=t["id"], ciIds=["db-1", "nope"])
    assert (unknown["__typename"], unknown["field"]) == ("NotFound", "ciIds.1")


LINKS = """query($id: ID!) { incident(id: $id) { links { kind sourceId targetId createdBy
    source { id number } target { id number ... on Incident { title } } } } }"""


def test_links_show_both_ends_and_are_refused_when_contradictory(desk: Site) -> None:
    parent = raise_vpn_ticket(desk, "VPN outage, all sites")
    child = raise_vpn_ticket(desk, "VPN down in Lyon")
    linked = mutate(
        desk, "alice", "linkTickets", sourceId=parent["id"], kind=Enum("PARENT_OF"),
        targetId=child["id"],
    )  # fmt: skip
    assert linked["incident"]["id"] == parent["id"]
    assert linked["incident"]["history"][-1]["kind"] == "LINKED"
    for ticket in (parent, child):  # seen from both ends
        (link,) = ask(desk, "bob", LINKS, id=ticket["id"])["incident"]["links"]
        assert (link["kind"], link["sourceId"], link["targetId"]) == (
            "PARENT_OF",
            parent["id"],
            child["id"],
        )
        assert link["target"]["title"] == "VPN down in Lyon" and link["createdBy"] == "alice"

    refusals = [
        ((child["id"], "PARENT_OF", parent["id"]), "InvalidInput", "targetId"),  # a cycle
        ((child["id"], "PARENT_OF", child["id"]), "InvalidInput", "targetId"),  # itself
        ((child["id"], "CAUSED_BY_CHANGE", parent["id"]), "InvalidInput", "targetId"),
        ((child["id"], "RELATED", "inc-none"), "NotFound", "targetId"),
        (("inc-none", "RELATED", child["id"]), "NotFound", "sourceId"),
    ]
    for (source, kind, target), failure, field in refusals:
        result = mutate(
            desk, "alice", "linkTickets", sourceId=source, kind=Enum(kind), targetId=target
        )
        assert result["__typename"] == failure, (source, kind, target, result)
        named = result["errors"][0]["field"] if "errors" in result else result["field"]
        assert named == field

    unlinked = mutate(
        desk, "alice", "unlinkTickets", sourceId=parent["id"], kind=Enum("PARENT_OF"),
        targetId=child["id"],
    )  # fmt: skip
    assert unlinked["incident"]["history"][-1]["old"].endswith(f"parent of {child['id']}")
    assert ask(desk, "bob", LINKS, id=child["id"])["incident"]["links"] == []
    again = mutate(
        desk, "alice", "unlinkTickets", sourceId=parent["id"], kind=Enum("PARENT_OF"),
        targetId=child["id"],
    )  # fmt: skip
    assert (again["__typename"], again["field"]) == ("NotFound", "targetId")


def test_reassigning_to_another_group_leaves_the_agent(desk: Site) -> None:
    t = raise_vpn_ticket(desk)
    held = mutate(desk, "alice", "assignTicket", id=t["id"], agent="bob")["incident"]
    moved = mutate(desk, "bob", "assignTicket", id=t["id"], group="service-desk")["incident"]
    assert (moved["assignmentGroup"], moved["assignee"]) == ("service-desk", None)
    assert ("ASSIGNED", "assignment_group", "noc", "service-desk") in changes_of(
        moved, len(held["history"])
    )
    both = mutate(
        desk, "carol", "assignTicket", id=t["id"], group="noc", agent="alice"
    )["incident"]  # fmt: skip
    assert (both["assignmentGroup"], both["assignee"], both["status"]) == (
        "noc",
        "alice",
        "ASSIGNED",
    )


@pytest.mark.parametrize(
    ("role", "code"),
    [("viewer", "FORBIDDEN"), ("integration", "FORBIDDEN"), (None, "UNAUTHENTICATED")],
)
def test_who_may_work_tickets(desk: Site, role: str | None, code: str) -> None:
    t = raise_vpn_ticket(desk)
    body = desk.gql(
        'mutation($id: ID!) { commentOnTicket(id: $id, text: "hi") { __typename } }',
        role,
        id=t["id"],
    )
    assert body["errors"][0]["extensions"]["code"] == code
    if role == "viewer":  # viewers read tickets
        page = desk.data("{ tickets { items { id } } }", "viewer")
        assert page["tickets"]["items"] == [{"id": t["id"]}]
    history = ask(
        desk, "bob", "query($id: ID!) { incident(id: $id) { history { kind } } }", id=t["id"]
    )
    assert "COMMENT" not in [e["kind"] for e in history["incident"]["history"]]


SUBSCRIPTION = """subscription($group: String) { ticketChanged(group: $group) {
    kind ticket { id title status assignmentGroup assignee } } }"""


def subscribe(site: Site, ws: Any, group: str) -> None:
    bearer = {"Authorization": f"Bearer {site.tokens['bob']}"}
    ws.send_json({"type": "connection_init", "payload": bearer})
    assert ws.receive_json() == {"type": "connection_ack"}
    payload = {"query": SUBSCRIPTION, "variables": {"group": group}}
    ws.send_json({"id": "1", "type": "subscribe", "payload": payload})


def test_a_group_subscription_sees_its_tickets_arrive_change_and_leave(desk: Site) -> None:
    kept = raise_vpn_ticket(desk, "VPN down before the subscription")  # in noc already
    with desk.client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        subscribe(desk, ws, "noc")
        time.sleep(0.3)  # it notes what exists before it started

        def next_change() -> dict[str, Any]:
            message = ws.receive_json()
            assert message["type"] == "next", message
            change: dict[str, Any] = message["payload"]["data"]["ticketChanged"]
            return change

        mutate(desk, "carol", "createIncident", input={"title": "Printer jams"})  # triage: not noc
        opened = raise_vpn_ticket(desk, "VPN down in Nantes")
        change = next_change()
        assert (change["kind"], change["ticket"]["id"]) == ("OPENED", opened["id"])
        mutate(desk, "alice", "assignTicket", id=opened["id"], agent="bob")
        change = next_change()
        assert (change["kind"], change["ticket"]["assignee"]) == ("CHANGED", "bob")
        mutate(desk, "bob", "assignTicket", id=kept["id"], group="service-desk")
        change = next_change()  # it was in the queue before the subscription started
        assert (change["kind"], change["ticket"]["id"]) == ("LEFT", kept["id"])
        assert change["ticket"]["assignmentGroup"] == "service-desk"
        ws.send_json({"id": "1", "type": "complete"})


def test_a_subscription_to_an_unknown_group_is_refused(desk: Site) -> None:
    with desk.client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        subscribe(desk, ws, "ghosts")
        message = ws.receive_json()
        assert message["type"] in ("next", "error"), message
        errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
        assert "no group 'ghosts'" in errors[0]["message"]
