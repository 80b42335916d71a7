"""Correlation moves monitoring incidents through the desk's lifecycle and leaves the same
history as people do; every fire/clear cycle of an alert is kept."""

from __future__ import annotations

from dataclasses import replace

from servicegraph.correlation.steps import ACTOR, RESOLUTION_CODE
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import WorklogKind
from servicegraph.ticketing.people import Agent, Group
from servicegraph.ticketing.ports import PeopleBatch
from tests.correlation.conftest import World


def _clear_and_wait(world: World, key: str, name: str) -> None:
    world.send(world.event(name, key, "resolved"))
    world.clock.advance(seconds=61)
    world.services.correlator.process_pending()


def test_open_resolve_reopen_are_transitions_in_the_history(world: World) -> None:
    world.send(world.event("SwitchDown", "acc-1"))
    _clear_and_wait(world, "acc-1", "SwitchDown")
    (incident,) = world.incidents()
    assert (incident.status, incident.resolution_code) == (TicketStatus.RESOLVED, RESOLUTION_CODE)
    world.clock.advance(minutes=5)
    world.send(world.event("SwitchDown", "acc-1"))
    (incident,) = world.incidents()
    assert incident.status is TicketStatus.NEW, "nobody holds it: back to new"
    assert incident.resolution_code is None and incident.resolved_at is None

    log = world.services.tickets.worklog([incident.id])[incident.id]
    assert [(e.kind, e.actor, e.field, e.old, e.new) for e in log] == [
        (WorklogKind.CREATED, ACTOR, None, None, None),
        (WorklogKind.TRANSITION, ACTOR, "status", "new", "resolved"),
        (WorklogKind.TRANSITION, ACTOR, "status", "resolved", "new"),
    ]
    assert "SwitchDown" in log[0].text and world.ids["acc-1"] in log[0].text
    assert "every alert clear" in log[1].text
    assert "fired again" in log[2].text


def test_an_incident_an_agent_holds_reopens_to_its_queue(world: World) -> None:
    alice = Agent(login="alice", name="Alice", email="alice@example.com", groups=("noc",))
    batch = PeopleBatch(agents=(alice,), groups=(Group(id="noc", name="NOC", members=("alice",)),))
    world.services.directory.store.save_people(batch, world.clock.now)
    world.send(world.event("SwitchDown", "acc-1"))
    (incident,) = world.incidents()
    world.services.desk.incidents.assign(incident.id, "alice")
    _clear_and_wait(world, "acc-1", "SwitchDown")
    world.clock.advance(minutes=1)
    world.send(world.event("SwitchDown", "acc-1"))
    (incident,) = world.incidents()
    assert (incident.status, incident.assignee) == (TicketStatus.ASSIGNED, "alice")


def test_a_closed_incident_is_not_reopened_a_new_one_opens(world: World) -> None:
    world.send(world.event("SwitchDown", "acc-1"))
    _clear_and_wait(world, "acc-1", "SwitchDown")
    (incident,) = world.incidents()
    with world.services.tickets.unit() as unit:
        incident.status = TicketStatus.CLOSED
        incident.close_code = "solved"
        unit.update_incidents([incident])
        unit.touched()
    world.send(world.event("SwitchDown", "acc-1"))
    statuses = sorted(i.status for i in world.incidents())
    assert statuses == [TicketStatus.CLOSED, TicketStatus.NEW]


def test_every_fire_clear_cycle_of_an_alert_is_kept(world: World) -> None:
    fired = []
    for _ in range(4):
        fired.append(world.clock.now)
        world.send(world.event("NodeDown", "db-1"))
        world.clock.advance(seconds=20)
        world.send(world.event("NodeDown", "db-1", "resolved"))
        world.clock.advance(seconds=20)
    (alert,) = world.services.tickets.alerts_on([world.ids["db-1"]])
    cycles = world.services.tickets.alert_cycles([alert.fingerprint])[alert.fingerprint]
    assert [c.fired_at for c in cycles] == fired
    assert all(c.cleared_at is not None and c.cleared_at > c.fired_at for c in cycles)
    assert all(c.incident_id for c in cycles)


def test_a_monitoring_ticket_without_alerts_is_not_resolved_as_all_clear(world: World) -> None:
    world.send(world.event("SwitchDown", "acc-1"))
    (incident,) = world.incidents()
    alertless = replace(incident, id="inc-imported", number=incident.number + 1, alert_count=0)
    with world.services.tickets.unit() as unit:
        unit.save_incidents([alertless])
        unit.touched()
    world.clock.advance(minutes=10)
    world.services.correlator.process_pending()
    stored = world.services.tickets.get_incidents(["inc-imported"])["inc-imported"]
    assert stored.status is TicketStatus.NEW
