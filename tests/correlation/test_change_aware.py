"""Change-aware correlation on the example site (examples/small-site.json):

core-1 <- dist-1, dist-2 <- acc-1 (two uplinks, group "uplink") <- db-1, db-2, db-3
db-1..3 MEMBER_OF pg-cluster (min_healthy 2) <- orders-db RUNS_ON <- orders-app <- web-shop

db-1 hard-depends on acc-1 (its only link); acc-1 does not hard-depend on dist-1 (its
uplinks are redundant); dist-1 hard-depends on core-1. Changes are saved straight into the
store, as change management would leave them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from servicegraph.config import CorrelationSettings
from servicegraph.correlation.changes import EXPECTED_TAG
from servicegraph.correlation.policy import BatchResult, ExpectedAlerts
from servicegraph.events.model import Alert
from servicegraph.http.app import create_app
from servicegraph.ticketing.change_model import Change, ChangeRisk, ChangeStatus
from servicegraph.ticketing.durations import human_elapsed
from servicegraph.ticketing.model import Incident, LinkKind, WorklogKind
from tests.correlation.conftest import T0, World, make_world

HOUR = dt.timedelta(hours=1)


@pytest.fixture()
def low_priority(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, hold_time_s=60, expected_alerts="low_priority")  # type: ignore[arg-type]


def save_change(
    world: World,
    key: str,
    status: ChangeStatus,
    *,
    number: int = 1,
    planned: tuple[dt.datetime, dt.datetime] | None = None,
    actual: tuple[dt.datetime | None, dt.datetime | None] = (None, None),
) -> Change:
    """A change on the CI imported as ``key``, saved as change management would leave it."""
    start, end = planned or (T0 - HOUR, T0 + HOUR)
    change = Change(
        id=f"chg-test{number}",
        number=number,
        title=f"Upgrade {key}",
        status=status,
        risk=ChangeRisk.MEDIUM,
        created_at=T0 - 24 * HOUR,
        updated_at=world.clock.now,
        created_by="alice",
        ci_ids=[world.ids[key]],
        planned_start=start,
        planned_end=end,
        actual_start=actual[0],
        actual_end=actual[1],
    )
    with world.services.tickets.unit() as unit:
        unit.save_change(change)
    return change


def fire(world: World, name: str, key: str) -> BatchResult:
    world.services.correlator.ingest([world.event(name, key)])
    return world.services.correlator.drain()


def alert_on(world: World, key: str) -> Alert:
    (alert,) = world.services.tickets.alerts_on([world.ids[key]])
    return alert


def change_links(world: World, incident: Incident) -> list[str]:
    links = world.services.tickets.links_of([incident.id]).get(incident.id, [])
    return [
        k.target_id
        for k in links
        if k.kind is LinkKind.CAUSED_BY_CHANGE and k.source_id == incident.id
    ]


def linked_texts(world: World, ticket_id: str) -> list[str]:
    log = world.services.tickets.worklog([ticket_id]).get(ticket_id, [])
    return [e.text for e in log if e.kind is WorklogKind.LINKED]


# -- expected alerts --------------------------------------------------------------------------


def test_an_alert_on_a_ci_under_an_implementing_change_opens_no_incident(world: World) -> None:
    change = save_change(world, "acc-1", ChangeStatus.IMPLEMENTING, actual=(T0 - HOUR, None))
    result = fire(world, "SwitchDown", "acc-1")
    assert world.incidents() == []
    assert result.expected == 1
    alert = alert_on(world, "acc-1")
    assert alert.change_id == change.id
    assert alert.firing and alert.incident_id is None


def test_an_implementing_change_counts_whatever_its_planned_window(world: World) -> None:
    """Implementing past its planned end (an overrun): alerts are still expected."""
    change = save_change(
        world,
        "acc-1",
        ChangeStatus.IMPLEMENTING,
        planned=(T0 - 3 * HOUR, T0 - 2 * HOUR),
        actual=(T0 - 3 * HOUR, None),
    )
    fire(world, "SwitchDown", "acc-1")
    assert world.incidents() == []
    assert alert_on(world, "acc-1").change_id == change.id


def test_an_alert_on_a_ci_hard_depending_on_the_change_is_expected_too(world: World) -> None:
    change = save_change(world, "acc-1", ChangeStatus.IMPLEMENTING, actual=(T0 - HOUR, None))
    fire(world, "NodeDown", "db-1")
    assert world.incidents() == []
    assert alert_on(world, "db-1").change_id == change.id


def test_an_alert_on_an_unrelated_ci_opens_its_incident_as_before(world: World) -> None:
    """dist-1 is upstream of acc-1, not below it (and acc-1's uplinks are redundant)."""
    save_change(world, "acc-1", ChangeStatus.IMPLEMENTING, actual=(T0 - HOUR, None))
    result = fire(world, "LinkDown", "dist-1")
    (incident,) = world.incidents()
    assert incident.root_ci_id == world.ids["dist-1"]
    assert result.expected == 0
    assert alert_on(world, "dist-1").change_id is None
    assert change_links(world, incident) == []


def test_an_alert_joining_an_open_incident_joins_it_as_before(world: World) -> None:
    fire(world, "NodeDown", "db-2")
    (before,) = world.incidents()
    save_change(world, "acc-1", ChangeStatus.IMPLEMENTING, actual=(T0, None))
    world.clock.advance(seconds=30)
    fire(world, "NodeDown", "db-1")
    (incident,) = world.incidents()
    assert incident.id == before.id and incident.alert_count == 2
    assert alert_on(world, "db-1").change_id is None


def test_a_scheduled_change_makes_alerts_expected_inside_its_window_only(world: World) -> None:
    change = save_change(
        world, "acc-1", ChangeStatus.SCHEDULED, planned=(T0 - dt.timedelta(minutes=10), T0 + HOUR)
    )
    fire(world, "SwitchDown", "acc-1")
    assert world.incidents() == []
    assert alert_on(world, "acc-1").change_id == change.id

    save_change(world, "db-2", ChangeStatus.SCHEDULED, number=2, planned=(T0 + HOUR, T0 + 2 * HOUR))
    fire(world, "NodeDown", "db-2")  # db-2 has acc-1 upstream: expected under change 1
    assert alert_on(world, "db-2").change_id == change.id
    fire(world, "LinkDown", "dist-2")
    (incident,) = world.incidents()
    assert incident.root_ci_id == world.ids["dist-2"]


def test_a_scheduled_change_before_its_window_expects_nothing(world: World) -> None:
    save_change(world, "acc-1", ChangeStatus.SCHEDULED, planned=(T0 + HOUR, T0 + 2 * HOUR))
    fire(world, "SwitchDown", "acc-1")
    (incident,) = world.incidents()
    assert alert_on(world, "acc-1").change_id is None
    assert change_links(world, incident) == []  # it had not begun


def test_changes_not_carried_out_expect_nothing(world: World) -> None:
    for n, status in enumerate((ChangeStatus.DRAFT, ChangeStatus.APPROVAL, ChangeStatus.CANCELLED)):
        save_change(world, "acc-1", status, number=n + 1)
    fire(world, "SwitchDown", "acc-1")
    (incident,) = world.incidents()
    assert change_links(world, incident) == []


def test_low_priority_opens_a_p5_incident_tagged_and_linked_to_the_change(
    low_priority: World,
) -> None:
    world = low_priority
    assert world.services.correlator.policy.expected_alerts is ExpectedAlerts.LOW_PRIORITY
    change = save_change(world, "acc-1", ChangeStatus.IMPLEMENTING, actual=(T0 - HOUR, None))
    result = fire(world, "SwitchDown", "acc-1")
    (incident,) = world.incidents()
    # the same alert without a change opens a P1: the Web shop needs acc-1
    assert incident.priority == 5
    assert incident.priority_set_by == "correlation"
    assert EXPECTED_TAG in incident.tags
    assert result.expected == 0 and result.incidents_opened == 1
    assert change_links(world, incident) == [change.id]
    reason = "expected during change 1 'Upgrade acc-1' (implementing): acc-1 is one of its CIs"
    assert linked_texts(world, incident.id) == [reason]
    assert linked_texts(world, change.id) == [reason]  # logged on both ends
    assert incident.priority_reason == reason
    assert alert_on(world, "acc-1").change_id == change.id

    # it keeps P5 as alerts below join it
    world.clock.advance(seconds=30)
    fire(world, "NodeDown", "db-1")
    (incident,) = world.incidents()
    assert (incident.alert_count, incident.priority) == (2, 5)


def test_without_a_change_the_same_alert_is_p1(low_priority: World) -> None:
    fire(low_priority, "SwitchDown", "acc-1")
    (incident,) = low_priority.incidents()
    assert incident.priority == 1 and EXPECTED_TAG not in incident.tags


# -- possible causes ----------------------------------------------------------------------------


def test_an_incident_soon_after_a_change_is_marked_possibly_caused_by_it(world: World) -> None:
    ended = T0 - dt.timedelta(minutes=20)
    change = save_change(
        world, "acc-1", ChangeStatus.CLOSED, planned=(T0 - HOUR, T0), actual=(T0 - HOUR, ended)
    )
    fire(world, "NodeDown", "db-1")
    (incident,) = world.incidents()
    assert incident.priority < 5 and EXPECTED_TAG not in incident.tags
    assert change_links(world, incident) == [change.id]
    reason = (
        "possibly caused by change 1 'Upgrade acc-1' (closed 20 minutes before): "
        "acc-1 is upstream of db-1"
    )
    assert linked_texts(world, incident.id) == [reason]
    assert linked_texts(world, change.id) == [reason]
    assert alert_on(world, "db-1").change_id is None

    analysis = world.services.diagnosis.root_cause(incident.id)
    (suspect,) = analysis.changes
    assert (suspect.change_id, suspect.number, suspect.title) == (change.id, 1, "Upgrade acc-1")
    assert (suspect.status, suspect.reason, suspect.linked) == (ChangeStatus.CLOSED, reason, True)
    assert suspect.ci_ids == (world.ids["acc-1"],)


def test_a_change_ended_before_the_window_is_not_blamed(world: World) -> None:
    ended = T0 - 3 * HOUR  # the window is 2 hours
    save_change(
        world,
        "acc-1",
        ChangeStatus.CLOSED,
        planned=(T0 - 4 * HOUR, ended),
        actual=(T0 - 4 * HOUR, ended),
    )
    fire(world, "NodeDown", "db-1")
    (incident,) = world.incidents()
    assert change_links(world, incident) == []
    assert world.services.diagnosis.root_cause(incident.id).changes == ()


def test_a_change_below_the_root_is_not_blamed(world: World) -> None:
    """A change on db-1 cannot explain an incident whose root is acc-1, above it."""
    ended = T0 - dt.timedelta(minutes=5)
    save_change(world, "db-1", ChangeStatus.FAILED, actual=(T0 - HOUR, ended))
    fire(world, "SwitchDown", "acc-1")
    (incident,) = world.incidents()
    assert change_links(world, incident) == []


def test_a_failed_change_without_actual_times_ends_at_its_planned_end(world: World) -> None:
    change = save_change(
        world,
        "acc-1",
        ChangeStatus.FAILED,
        planned=(T0 - 2 * HOUR, T0 - HOUR - dt.timedelta(minutes=55)),
    )
    fire(world, "SwitchDown", "acc-1")
    (incident,) = world.incidents()
    assert change_links(world, incident) == [change.id]
    (text,) = linked_texts(world, incident.id)
    assert "(failed 1 hour 55 minutes before): acc-1 is one of its CIs" in text


def test_an_expected_alert_opens_its_incident_after_the_change_closes(world: World) -> None:
    """The acceptance in one process: held back while implementing; its next event after
    the change closed opens an incident marked possibly caused by it."""
    change = save_change(world, "acc-1", ChangeStatus.IMPLEMENTING, actual=(T0 - HOUR, None))
    fire(world, "NodeDown", "db-1")
    assert world.incidents() == []

    world.clock.advance(minutes=10)
    change.status, change.actual_end = ChangeStatus.CLOSED, world.clock.now
    with world.services.tickets.unit() as unit:
        unit.save_change(change)
    world.clock.advance(minutes=5)
    result = fire(world, "NodeDown", "db-1")  # a repeat of the firing alert
    assert result.duplicates == 1
    (incident,) = world.incidents()
    assert change_links(world, incident) == [change.id]
    (text,) = linked_texts(world, incident.id)
    assert text.startswith("possibly caused by change 1 'Upgrade acc-1' (closed 5 minutes before)")
    assert alert_on(world, "db-1").change_id is None


def test_diagnosis_lists_a_change_the_rule_names_later(world: World) -> None:
    """A change recorded after the incident opened (closed a moment before it): the
    diagnosis names it, though no link was made."""
    fire(world, "NodeDown", "db-1")
    (incident,) = world.incidents()
    change = save_change(
        world, "acc-1", ChangeStatus.REVIEW, actual=(T0 - HOUR, T0 - dt.timedelta(minutes=2))
    )
    (suspect,) = world.services.diagnosis.root_cause(incident.id).changes
    assert suspect.change_id == change.id and not suspect.linked
    assert suspect.reason == (
        "possibly caused by change 1 'Upgrade acc-1' (ended 2 minutes before): "
        "acc-1 is upstream of db-1"
    )


def test_settings_reach_the_policy() -> None:
    settings = CorrelationSettings(expected_alerts="low_priority", after_change_window_s=600)
    policy = settings.policy()
    assert policy.expected_alerts is ExpectedAlerts.LOW_PRIORITY
    assert policy.after_change_window == dt.timedelta(minutes=10)
    default = CorrelationSettings().policy()
    assert default.expected_alerts is ExpectedAlerts.SUPPRESS
    assert default.after_change_window == dt.timedelta(hours=2)
    with pytest.raises(ValueError, match="expected_alerts"):
        CorrelationSettings(expected_alerts="ignore")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "1 second"),
        (40, "40 seconds"),
        (60, "1 minute"),
        (25 * 60, "25 minutes"),
        (7200, "2 hours"),
        (3600 + 5 * 60, "1 hour 5 minutes"),
        (7 * 86400, "7 days"),
        (3 * 86400 + 4 * 3600 + 59, "3 days 4 hours"),
    ],
)
def test_human_elapsed(seconds: int, text: str) -> None:
    assert human_elapsed(dt.timedelta(seconds=seconds)) == text


# -- through GraphQL ------------------------------------------------------------------------------


def test_graphql_shows_the_change_on_the_alert_and_in_the_root_cause(low_priority: World) -> None:
    world = low_priority
    services = world.services
    change = save_change(world, "acc-1", ChangeStatus.IMPLEMENTING, actual=(T0 - HOUR, None))
    fire(world, "SwitchDown", "acc-1")
    (incident,) = world.incidents()
    _, secret = services.tokens.create("viewer-token", "viewer", created_by="test")
    with TestClient(create_app(services)) as client:
        response = client.post(
            "/graphql",
            json={
                "query": """query($id: ID!) { rootCause(incidentId: $id) {
                    alerts { changeId }
                    changes { changeId number title status reason ciIds linked } } }""",
                "variables": {"id": incident.id},
            },
            headers={"Authorization": f"Bearer {secret}"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body
    root = body["data"]["rootCause"]
    assert root["alerts"] == [{"changeId": change.id}]
    assert root["changes"] == [
        {
            "changeId": change.id,
            "number": 1,
            "title": "Upgrade acc-1",
            "status": "IMPLEMENTING",
            "reason": "expected during change 1 'Upgrade acc-1' (implementing): "
            "acc-1 is one of its CIs",
            "ciIds": [world.ids["acc-1"]],
            "linked": True,
        }
    ]
