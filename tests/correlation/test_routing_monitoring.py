"""Monitoring incidents are routed as people's tickets are: by their root CI (its class and
attributes, its support group) and the services they hit, with the rule in the history;
they keep their queue when correlation resolves and reopens them; a rule's priority bounds
stay on the incident and bound the matrix's priority in every later batch (a floor never
stops it rising, a ceiling applies as it moves); an agent's priority holds over both; and
correlation leaves the tickets people opened alone."""

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
    },
    # a database server's incident is at least a P2, whatever its first alert says
    {"name": "db-servers", "when": {"ci_class": "server"}, "then": {"priority_floor": 2}},
    # and the database's own, at most a P2 (its failover answers the P1s)
    {"name": "databases", "when": {"ci_class": "database"}, "then": {"priority_ceiling": 2}},
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
    assert (incident.priority, incident.priority_floor, incident.priority_ceiling) == (1, 1, None)
    assert (incident.priority_reason, incident.priority_set_by) == (None, None), "no override"
    routed_entry = world.services.desk.tickets.history(incident.id)[1]
    assert "rule 'core-routers' matched" in routed_entry.text
    assert "with role=core" in routed_entry.text
    assert routed_entry.text.endswith(
        "; priority by routing rule 'core-routers': at least as urgent as P1 (P3 -> P1)"
    )

    world.clock.advance(seconds=10)
    world.send(world.event("BGPDown", "core-1", severity=Severity.WARNING))
    assert _only(world).priority == 1, "the floor holds when the next alert joins"


def _assessed(world: World) -> tuple[str, str, int]:
    incident = _only(world)
    return incident.impact, incident.urgency, incident.priority


def test_a_floor_never_stops_the_priority_rising_and_holds_it_when_impact_drops(
    routed: World,
) -> None:
    world = routed
    world.send(world.event("NodeSlow", "db-1", severity=Severity.WARNING))
    incident = _only(world)
    assert (incident.routed_by, incident.priority_floor, incident.priority_ceiling) == (
        "default:triage", 2, None,
    )  # fmt: skip
    assert _assessed(world) == ("low", "low", 2), "one cluster member of three: P5, floor P2"
    routed_entry = world.services.desk.tickets.history(incident.id)[1]
    assert routed_entry.text.endswith(
        "; priority by routing rule 'db-servers': at least as urgent as P2 (P5 -> P2)"
    )

    world.clock.advance(seconds=5)
    world.send(world.event("NodeDown", "db-2"))  # the cluster loses its quorum: the shop
    assert _assessed(world) == ("high", "high", 1), "the matrix's P1: the floor is no cap"
    world.clock.advance(seconds=5)
    world.send(world.event("NodeDown", "db-2", "resolved"))
    assert _assessed(world) == ("high", "low", 2), "the matrix says P3: the floor keeps P2"
    world.clock.advance(seconds=5)
    world.send(world.event("NodeSlow", "db-1", severity=Severity.WARNING))
    incident = _only(world)
    assert (incident.priority, incident.priority_floor, incident.priority_reason) == (2, 2, None)


def test_a_ceiling_applies_in_every_batch_as_the_matrix_moves(routed: World) -> None:
    world = routed
    world.send(world.event("DBSlow", "orders-db", severity=Severity.WARNING))
    incident = _only(world)
    assert (incident.priority_floor, incident.priority_ceiling) == (None, 2)
    assert _assessed(world) == ("high", "low", 3), "within the ceiling: the matrix's P3"
    assert "priority by" not in world.services.desk.tickets.history(incident.id)[1].text

    world.clock.advance(seconds=5)
    world.send(world.event("DBDown", "orders-db"))
    assert _assessed(world) == ("high", "high", 2), "the matrix's P1, capped at P2"
    world.clock.advance(seconds=5)
    world.send(world.event("DBDown", "orders-db", "resolved"))
    assert _assessed(world) == ("high", "low", 3), "and back to the matrix's P3: not frozen"


def test_an_agents_override_wins_over_the_bounds_until_it_ends(routed: World) -> None:
    world = routed
    world.send(world.event("NodeSlow", "db-1", severity=Severity.WARNING))
    incident = _only(world)
    assert incident.priority == 2
    with change_context("dave"):
        world.services.desk.tickets.override_priority(incident.id, 4, "lab cluster")
    world.clock.advance(seconds=5)
    world.send(world.event("NodeDown", "db-2"))
    incident = _only(world)
    assert (incident.impact, incident.priority, incident.priority_reason) == (
        "high", 4, "lab cluster",
    ), "below the floor, and held while impact grows: the agent's word"  # fmt: skip
    assert incident.priority_floor == 2, "the bound stays for when the override ends"

    with change_context("dave"):  # the matrix's P1 (within the floor) is no override
        world.services.desk.tickets.override_priority(incident.id, 1, "")
    world.clock.advance(seconds=5)
    world.send(world.event("NodeDown", "db-2", "resolved"))
    incident = _only(world)
    assert (incident.priority, incident.priority_reason) == (2, None), "bounded matrix again"


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
