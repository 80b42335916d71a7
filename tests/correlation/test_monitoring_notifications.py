"""Monitoring incidents notify only when ``notifications.monitoring`` says so: an alert
that opens an incident routed to a group with a mailbox mails the group and posts the
webhook's created document, in the correlation batch's unit; by default a storm sends
nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.ticketing.outbox import OutboxChannel, OutboxMessage
from tests.correlation.conftest import World
from tests.ticketing.desk_world import Desk
from tests.ticketing.notifications_desk import make_notifying_desk, notifications, queued


def worlds(tmp_path: Path, monitoring: bool) -> Iterator[tuple[Desk, World]]:
    for desk in make_notifying_desk(tmp_path, notifications(monitoring=monitoring)):
        yield desk, World(desk.services, desk.clock, desk.ids)  # type: ignore[arg-type]


@pytest.fixture()
def opted_in(tmp_path: Path) -> Iterator[tuple[Desk, World]]:
    yield from worlds(tmp_path, monitoring=True)


@pytest.fixture()
def default(tmp_path: Path) -> Iterator[tuple[Desk, World]]:
    yield from worlds(tmp_path, monitoring=False)


def messages_of(desk: Desk, ticket_id: str) -> list[OutboxMessage]:
    return [e.message for e in queued(desk) if e.message.ticket_id == ticket_id]


def test_an_opted_in_monitoring_incident_tells_its_group_and_the_webhook(
    opted_in: tuple[Desk, World],
) -> None:
    desk, world = opted_in
    world.send(world.event("SwitchDown", "acc-1"))  # acc-1's support group: network
    (incident,) = world.incidents()
    assert incident.assignment_group == "network"
    found = messages_of(desk, incident.id)
    mails = {(m.event, m.target) for m in found if m.channel is OutboxChannel.EMAIL}
    hooks = {m.event for m in found if m.channel is OutboxChannel.WEBHOOK}
    assert ("assigned", "network@desk.example") in mails
    assert "created" in hooks
    world.send(world.event("SwitchDown", "acc-1"))  # a repeat: no new step, no new message
    assert messages_of(desk, incident.id) == []


def test_by_default_monitoring_incidents_notify_nobody(default: tuple[Desk, World]) -> None:
    desk, world = default
    world.send(world.event("SwitchDown", "acc-1"))
    (incident,) = world.incidents()
    assert messages_of(desk, incident.id) == []
