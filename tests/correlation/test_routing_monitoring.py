"""Monitoring incidents are routed as people's tickets are: by their root CI (its class and
attributes, its support group) and the services they hit, with the rule in the history;
they keep their queue when correlation resolves and reopens them; an agent's priority
holds; and correlation leaves the tickets people opened alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.bootstrap import bootstrap
from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.importer import read_files
from servicegraph.config import CorrelationSettings, DeskSettings, Settings
from servicegraph.correlation.steps import ACTOR
from servicegraph.events.model import Severity
from servicegraph.ticketing.catalogue import Service
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Incident, TicketType, WorklogKind
from servicegraph.ticketing.people import Agent, Directory, Group
from servicegraph.ticketing.ports import PeopleBatch
from servicegraph.ticketing.tickets import NewTicket
from tests.correlation.conftest import EXAMPLES, T0, Clock, World

RULES = [
    {
        "name": "core-routers",
        "when": {"ci_class": "network_device", "ci_attribute": {"role": "core"}},
        "then": {"group": "noc", "tags": ["core"], "priority_floor": 1},
    }
]
GROUPS = ("noc", "network", "apps", "service-desk")


@pytest.fixture()
def routed(tmp_path: Path) -> Iterator[World]:
    """The correlation World of the example site, whose access switch names its support
    group, with a desk that knows the groups and a service standing for the web shop."""
    clock = Clock()
    settings = Settings(
        data_dir=tmp_path,
        correlation=CorrelationSettings(hold_time_s=60),
        desk=DeskSettings(routing=RULES),
    )
    services = bootstrap(settings)
    services.correlator.clock = clock
    services.desk.tickets.clock = clock
    site = json.loads((EXAMPLES / "small-site.json").read_text())
    for ci in site["cis"]:
        if ci["key"] == "acc-1":
            ci["attributes"]["support_group"] = "network"
    path = tmp_path / "site.json"
    path.write_text(json.dumps(site))
    batch = read_files([path], services.classes, source="import")
    report = services.reconciler.apply(batch)
    ids = {obs.key: ci_id for obs, ci_id in zip(batch.cis, report.ci_ids, strict=True)}
    store = services.directory.store
    directory = Directory.build(
        agents=[Agent("dave", "Dave", "dave@desk.example", groups=("network",))],
        groups=[Group(g, g.title()) for g in GROUPS],
    )  # both sides of the membership, as the store saves them
    people = PeopleBatch(
        agents=tuple(directory.agents.values()), groups=tuple(directory.groups.values())
    )
    store.save_people(people, T0)
    store.save_catalogue(
        [Service("shop", "Web shop", ci_id=ids["web-shop"], owner_group="apps")], [], T0
    )
    yield World(services, clock, ids)  # type: ignore[arg-type]
    services.close()


def _only(world: World) -> Incident:
    (incident,) = world.incidents()
    return incident


def _clear_and_wait(world: World, key: str, name: str) -> None:
    world.send(world.event(name, key, "resolved"))
    world.clock.advance(seconds=61)
    world.services.correlator.process_pending()


def test_routed_to_the_root_cis_support_group_and_kept_there_across_a_reopen(
    routed: World,
) -> None:
    world = routed
    world.send(world.event("SwitchDown", "acc-1"))
    incident = _only(world)
    assert (incident.assignment_group, incident.routed_by, incident.status) == (
        "network", "default:ci_support_group", TicketStatus.NEW,
    )  # fmt: skip
    _clear_and_wait(world, "acc-1", "SwitchDown")
    world.clock.advance(minutes=2)
    world.send(world.event("SwitchDown", "acc-1"))
    incident = _only(world)
    assert (incident.status, incident.assignment_group) == (TicketStatus.NEW, "network")

    log = world.services.desk.tickets.history(incident.id)
    assert [(e.kind, e.actor, e.field, e.old, e.new) for e in log] == [
        (WorklogKind.CREATED, ACTOR, None, None, None),
        (WorklogKind.ROUTED, ACTOR, "assignment_group", None, "network"),
        (WorklogKind.TRANSITION, ACTOR, "status", "new", "resolved"),
        (WorklogKind.TRANSITION, ACTOR, "status", "resolved", "new"),
    ]
    assert log[1].text.startswith("routed to network by default:ci_support_group: ")
    assert "the CI's support group network" in log[1].text

    # an agent of the group takes it; the next reopen goes back to the agent's queue
    world.services.desk.incidents.assign(incident.id, "dave")
    with pytest.raises(ValidationFailed, match="not a member of group 'noc'") as outside:
        world.services.desk.tickets.assign(incident.id, group="noc", agent="dave")
    assert outside.value.field == "assignee"
    _clear_and_wait(world, "acc-1", "SwitchDown")
    world.clock.advance(minutes=2)
    world.send(world.event("SwitchDown", "acc-1"))
    incident = _only(world)
    assert (incident.status, incident.assignee) == (TicketStatus.ASSIGNED, "dave")


def test_a_rule_on_the_root_cis_attributes_sets_group_tags_and_a_priority_floor(
    routed: World,
) -> None:
    world = routed
    world.send(world.event("LinkFlap", "core-1", severity=Severity.WARNING))
    incident = _only(world)
    assert (incident.assignment_group, incident.routed_by, incident.tags) == (
        "noc", "core-routers", ["core"],
    )  # fmt: skip
    assert (incident.priority, incident.priority_set_by) == (1, "routing")
    assert (incident.priority_reason or "").endswith("at least as urgent as P1 (P3 -> P1)")
    routed_entry = world.services.desk.tickets.history(incident.id)[1]
    assert "rule 'core-routers' matched" in routed_entry.text
    assert "with role=core" in routed_entry.text

    world.clock.advance(seconds=10)
    world.send(world.event("BGPDown", "core-1", severity=Severity.WARNING))
    assert _only(world).priority == 1, "the floor holds when the next alert joins"


def test_the_owner_of_an_impacted_service_takes_what_no_ci_claims(routed: World) -> None:
    world = routed
    world.send(world.event("AppDown", "orders-app"))
    incident = _only(world)
    assert incident.business_services == [world.ids["web-shop"]]
    assert (incident.assignment_group, incident.routed_by, incident.service) == (
        "apps", "default:service_owner", "shop",
    )  # fmt: skip


def test_what_nothing_claims_goes_to_triage(routed: World) -> None:
    world = routed
    world.send(world.event("DiskFull", "hq"))
    incident = _only(world)
    assert (incident.assignment_group, incident.routed_by) == ("service-desk", "default:triage")


def test_without_a_directory_monitoring_incidents_stay_in_no_group(world: World) -> None:
    world.send(world.event("SwitchDown", "acc-1"))
    incident = _only(world)
    assert (incident.assignment_group, incident.routed_by) == (None, None)
    kinds = [e.kind for e in world.services.tickets.worklog([incident.id])[incident.id]]
    assert kinds == [WorklogKind.CREATED], "nothing to route to, nothing logged"


def test_an_agents_priority_override_survives_correlations_next_batch(routed: World) -> None:
    world = routed
    world.send(world.event("AppDown", "orders-app"))
    incident = _only(world)
    assert incident.priority == 1, "critical alert on the most critical service"
    with change_context("dave"):
        world.services.desk.tickets.override_priority(incident.id, 3, "maintenance window")
    world.clock.advance(seconds=5)
    world.send(world.event("AppSlow", "orders-app"))
    incident = _only(world)
    assert (incident.alert_count, incident.priority, incident.priority_reason) == (
        2, 3, "maintenance window",
    )  # fmt: skip


def test_a_ticket_people_opened_is_no_business_of_correlation(routed: World) -> None:
    world = routed
    with change_context("dave"):
        ticket = world.services.desk.tickets.create(
            NewTicket(
                type=TicketType.INCIDENT, title="Phone call: VPN slow", assignment_group="network"
            )
        )
    world.clock.advance(minutes=10)
    world.services.correlator.process_pending()
    world.send(world.event("SwitchDown", "acc-1"))
    world.clock.advance(minutes=10)
    world.services.correlator.process_pending()
    assert world.services.desk.tickets.get(ticket.id).status is TicketStatus.NEW
    assert [e.kind for e in world.services.desk.tickets.history(ticket.id)] == [WorklogKind.CREATED]
