"""SLA clocks in GraphQL over HTTP: a ticket's ``sla`` (policy, calendar, both clocks as
they are now), a reply to the requester stopping the response clock, and a group's queue
in due order, breached tickets first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servicegraph.config import DeskSettings
from tests.graphql.conftest import Site, make_site
from tests.graphql.test_desk_fixtures import (
    CUSTOM_FIELDS,
    ROUTING,
    agent_tokens,
    ask,
    load_desk,
    mutate,
)

SLA: dict[str, Any] = {
    "policies": [
        {
            "name": "standard",
            "targets": {
                p: {"response": f"{m}m", "resolution": f"{h}h"}
                for p, (m, h) in {
                    1: (10, 1),
                    2: (20, 2),
                    3: (30, 4),
                    4: (60, 8),
                    5: (90, 24),
                }.items()
            },
        }
    ]
}
SLA_FIELDS = """sla { policy calendar due
    response { kind state targetSeconds elapsedSeconds remainingSeconds due paused stoppedAt }
    resolution { kind state targetSeconds elapsedSeconds remainingSeconds due paused breachedAt }
}"""


@pytest.fixture()
def sla_site(tmp_path: Path) -> Iterator[Site]:
    desk = DeskSettings(routing=ROUTING, custom_fields=CUSTOM_FIELDS, sla=SLA)
    for site in make_site(tmp_path, desk=desk):
        load_desk(site.services)
        site.tokens.update(agent_tokens(site.services))
        yield site


def ticket(site: Site, ticket_id: str) -> dict[str, Any]:
    query = f'{{ incident(id: "{ticket_id}") {{ id priority {SLA_FIELDS} }} }}'
    found: dict[str, Any] = ask(site, "alice", query)["incident"]
    return found


def create(site: Site, title: str, **fields: Any) -> str:
    made = mutate(site, "alice", "createIncident", input={"title": title, **fields})
    ticket_id: str = made["incident"]["id"]
    return ticket_id


def test_a_ticket_shows_its_clocks_and_a_reply_stops_the_response_clock(sla_site: Site) -> None:
    ticket_id = create(sla_site, "Printer on fire", assignmentGroup="noc")
    found = ticket(sla_site, ticket_id)
    sla = found["sla"]
    assert (sla["policy"], sla["calendar"]) == ("standard", "24x7")
    minutes = {1: 10, 2: 20, 3: 30, 4: 60, 5: 90}[found["priority"]]
    assert sla["response"]["state"] == "OK" and sla["response"]["targetSeconds"] == minutes * 60
    assert sla["resolution"]["remainingSeconds"] <= sla["resolution"]["targetSeconds"]
    assert sla["due"] == sla["response"]["due"], "the response is due first"
    mutate(sla_site, "alice", "commentOnTicket", id=ticket_id, text="On it", toRequester=True)
    sla = ticket(sla_site, ticket_id)["sla"]
    assert sla["response"]["state"] == "MET" and sla["response"]["stoppedAt"] is not None
    assert sla["due"] == sla["resolution"]["due"], "only resolution still runs"


def test_a_group_queue_in_due_order(sla_site: Site) -> None:
    slow = create(sla_site, "Slow", assignmentGroup="noc", impact="LOW", urgency="LOW")
    urgent = create(sla_site, "Urgent", assignmentGroup="noc", impact="HIGH", urgency="HIGH")
    query = """query($order: TicketOrder!) { groupQueue(group: "noc", order: $order) {
        items { id sla { due } } } }"""
    nodes = ask(sla_site, "alice", query, order="DUE")["groupQueue"]["items"]
    ids = [n["id"] for n in nodes]
    assert ids.index(urgent) < ids.index(slow)
    dues = [n["sla"]["due"] for n in nodes]
    assert dues == sorted(dues)


def test_without_a_policy_a_ticket_has_no_clocks(tmp_path: Path) -> None:
    for site in make_site(tmp_path, desk=DeskSettings(routing=ROUTING)):
        load_desk(site.services)
        site.tokens.update(agent_tokens(site.services))
        ticket_id = create(site, "Printer on fire", assignmentGroup="noc")
        assert ticket(site, ticket_id)["sla"] is None
