"""Correlation scenarios on the example site (examples/small-site.json):

core-1 <- dist-1, dist-2 <- acc-1 (two uplinks, group "uplink") <- db-1, db-2, db-3
db-1..3 MEMBER_OF pg-cluster (min_healthy 2) <- orders-db RUNS_ON <- orders-app <- web-shop
"""

from __future__ import annotations

from pathlib import Path

from servicegraph.events.model import Severity
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.ports import ProblemFilter
from tests.correlation.conftest import World, make_world


def test_repeats_deduplicate_into_one_alert_and_one_incident(world: World) -> None:
    for _ in range(3):
        world.send(world.event("NodeDown", "db-1"))
        world.clock.advance(seconds=10)
    (incident,) = world.incidents()
    (alert,) = world.services.tickets.incident_alerts([incident.id]).get(incident.id, [])
    assert alert.count == 3
    assert incident.alert_count == 1


def test_a_redelivered_event_counts_once(world: World) -> None:
    event = world.event("NodeDown", "db-1")
    assert world.services.correlator.ingest([event]) == 1
    assert world.services.correlator.ingest([event, event]) == 0
    world.services.correlator.drain()
    (incident,) = world.incidents()
    (alert,) = world.services.tickets.incident_alerts([incident.id]).get(incident.id, [])
    assert alert.count == 1


def test_switch_and_servers_behind_it_group_under_the_switch(world: World) -> None:
    world.send(world.event("NodeDown", "db-1"), world.event("NodeDown", "db-2"))
    world.clock.advance(seconds=20)
    world.send(world.event("SwitchDown", "acc-1"))
    (incident,) = world.incidents()
    assert incident.alert_count == 3
    assert incident.root_ci_id == world.ids["acc-1"]
    assert not incident.root_inferred
    assert incident.business_services == [world.ids["web-shop"]]
    assert (incident.impact, incident.urgency, incident.priority) == ("high", "high", 1)
    assert incident.title == "acc-1: SwitchDown (+2 related)"


def test_silent_switch_is_inferred_when_everything_behind_it_alerts(world: World) -> None:
    world.send(*(world.event("NodeDown", k) for k in ("db-1", "db-2", "db-3")))
    (incident,) = world.incidents()
    assert incident.root_ci_id == world.ids["acc-1"]
    assert incident.root_inferred
    assert incident.root_confidence == 1.0
    assert "acc-1 suspected down" in incident.title


def test_one_server_of_three_is_not_enough_to_blame_the_switch(world: World) -> None:
    world.send(world.event("NodeDown", "db-1"))
    (incident,) = world.incidents()
    assert incident.root_ci_id == world.ids["db-1"]
    assert not incident.root_inferred
    # the cluster keeps two of three members: no business service is down
    assert incident.business_services == []
    assert incident.priority == 3  # low impact, high urgency


def test_unrelated_alerts_open_separate_incidents(world: World) -> None:
    world.send(world.event("HighLatency", "orders-app"), world.event("LinkDown", "core-1"))
    assert len(world.incidents()) == 2


def test_related_alerts_outside_the_window_do_not_group(world: World) -> None:
    world.send(world.event("NodeDown", "db-1"))
    world.clock.advance(minutes=6)
    world.send(world.event("NodeDown", "db-2", at=world.clock.now))
    assert len(world.incidents()) == 2


def test_incident_resolves_after_the_hold_time_and_reopens_on_its_root_alert(
    world: World,
) -> None:
    world.send(world.event("SwitchDown", "acc-1"), world.event("NodeDown", "db-1"))
    world.clock.advance(seconds=30)
    world.send(world.event("SwitchDown", "acc-1", "resolved"))
    assert world.incidents("open"), "one alert still fires"
    world.send(world.event("NodeDown", "db-1", "resolved"))
    world.clock.advance(seconds=30)
    world.services.correlator.process_pending()
    assert world.incidents("open"), "hold time (60 s) not over"
    world.clock.advance(seconds=31)
    world.services.correlator.process_pending()
    (incident,) = world.incidents()
    assert incident.status is TicketStatus.RESOLVED

    world.clock.advance(minutes=5)
    world.send(world.event("SwitchDown", "acc-1"))
    (incident,) = world.incidents()
    assert incident.status.active
    assert incident.reopen_count == 1


def test_a_symptom_firing_again_after_resolution_opens_a_new_incident(world: World) -> None:
    world.send(world.event("SwitchDown", "acc-1"), world.event("NodeDown", "db-1"))
    world.send(
        world.event("SwitchDown", "acc-1", "resolved"), world.event("NodeDown", "db-1", "resolved")
    )
    world.clock.advance(seconds=61)
    world.services.correlator.process_pending()
    world.send(world.event("NodeDown", "db-1"))
    incidents = world.incidents()
    assert [i.status for i in incidents] == [TicketStatus.NEW, TicketStatus.RESOLVED]


def test_reopen_window_passed_means_a_new_incident(world: World) -> None:
    world.send(world.event("SwitchDown", "acc-1"))
    world.send(world.event("SwitchDown", "acc-1", "resolved"))
    world.clock.advance(seconds=61)
    world.services.correlator.process_pending()
    world.clock.advance(minutes=31)
    world.send(world.event("SwitchDown", "acc-1"))
    assert len(world.incidents()) == 2


def test_flapping_gives_one_flagged_incident_that_stays_open(world: World) -> None:
    for status in ("firing", "resolved") * 3:
        world.send(world.event("LinkFlap", "core-1", status))
        world.clock.advance(seconds=20)
    (incident,) = world.incidents()
    assert incident.flapping
    world.clock.advance(seconds=120)
    world.services.correlator.process_pending()
    (incident,) = world.incidents()
    assert incident.status is TicketStatus.NEW, "a flapping incident does not resolve"
    world.clock.advance(minutes=11)  # quiet for longer than the flap window
    world.services.correlator.process_pending()
    world.services.correlator.process_pending()
    (incident,) = world.incidents()
    assert not incident.flapping
    assert incident.status is TicketStatus.RESOLVED


def test_events_without_a_known_ci_are_kept_and_listed(world: World) -> None:
    world.send(world.event("DiskFull", None, labels={"host": "ghost.example.com"}))
    (alert,) = world.services.tickets.unmapped_alerts()
    assert alert.ci_id is None
    assert alert.labels["host"] == "ghost.example.com"
    assert len(world.incidents()) == 1


def test_mapping_by_host_name_and_prometheus_instance(world: World) -> None:
    world.send(
        world.event("NodeDown", None, labels={"instance": "db-2.hq.example.com:9100"}),
        world.event("DiskFull", None, labels={"hostname": "DB-3"}),
    )
    mapped = {
        a.ci_id
        for i in world.incidents()
        for a in world.services.tickets.incident_alerts([i.id]).get(i.id, [])
    }
    assert mapped == {world.ids["db-2"], world.ids["db-3"]}


def test_priority_follows_the_matrix(world: World) -> None:
    world.send(world.event("HighLatency", "orders-app", severity=Severity.WARNING))
    (incident,) = world.incidents()
    assert (incident.impact, incident.urgency, incident.priority) == ("high", "low", 3)


def test_recurring_incidents_on_one_ci_open_a_problem(world: World) -> None:
    for _ in range(3):
        world.send(world.event("NodeDown", "db-1"))
        world.send(world.event("NodeDown", "db-1", "resolved"))
        world.clock.advance(minutes=40)  # past hold time and reopen window
        world.services.correlator.process_pending()
    (problem,) = world.services.tickets.find_problems(ProblemFilter())
    assert problem.root_ci_id == world.ids["db-1"]
    assert len(problem.incident_ids) == 3
    assert {i.problem_id for i in world.incidents()} == {problem.id}
    assert problem.reason.startswith("3 incidents")
    # the next recurrence joins the open problem
    world.send(world.event("NodeDown", "db-1"))
    (problem,) = world.services.tickets.find_problems(ProblemFilter())
    assert len(problem.incident_ids) == 4
    assert problem.reason.startswith("4 incidents")
    assert {i.problem_id for i in world.incidents()} == {problem.id}


def test_the_same_root_cause_on_several_cis_opens_a_problem(world: World) -> None:
    for key in ("orders-app", "core-1", "db-1"):
        world.send(world.event("CertificateExpired", key))
        world.clock.advance(minutes=10)
    (problem,) = world.services.tickets.find_problems(ProblemFilter())
    assert problem.signature == "alert:test/CertificateExpired"
    assert len(problem.incident_ids) == 3
    assert "on 3 CIs" in problem.reason
    world.send(world.event("CertificateExpired", "acc-1"))
    (problem,) = world.services.tickets.find_problems(ProblemFilter())
    assert len(problem.incident_ids) == 4
    assert "on 4 CIs" in problem.reason
    # another alert on a CI already counted: a fifth incident, still four CIs
    world.clock.advance(minutes=40)
    world.send(world.event("CertificateExpired", "core-1", "resolved"))
    world.clock.advance(minutes=40)
    world.services.correlator.process_pending()
    world.send(world.event("CertificateExpired", "core-1"))
    (problem,) = world.services.tickets.find_problems(ProblemFilter())
    assert len(problem.incident_ids) == 5
    assert "on 4 CIs" in problem.reason


def test_two_correlators_sharing_one_store_stay_consistent(tmp_path: Path) -> None:
    # Two workers (here two correlators with their own caches) alternate on one inbox.
    gen = make_world(tmp_path, hold_time_s=0)
    world = next(gen)
    from servicegraph.bootstrap import bootstrap

    other = bootstrap(world.services.settings)
    other.correlator.clock = world.clock
    world.services.correlator.ingest([world.event("NodeDown", "db-1")])
    world.services.correlator.drain()
    other.correlator.ingest([world.event("NodeDown", "db-2")])
    other.correlator.drain()  # must see the incident the first one opened
    world.services.correlator.ingest([world.event("NodeDown", "db-3")])
    world.services.correlator.drain()  # must see what the other one changed
    (incident,) = world.incidents()
    assert incident.alert_count == 3
    assert incident.root_inferred
    other.close()


def test_problem_candidates_rank_the_upstream_item_behind_most_incidents(world: World) -> None:
    from servicegraph.correlation.problems import problem_candidates

    start = world.clock.now
    for key in ("db-1", "db-2", "db-3", "db-1"):
        world.send(world.event("NodeDown", key))
        world.send(world.event("NodeDown", key, "resolved"))
        world.clock.advance(minutes=40)
        world.services.correlator.process_pending()
    world.send(world.event("HighLatency", "orders-app"))
    ranked = problem_candidates(world.services.correlator, since=start)
    top = ranked[0]
    # behind every server incident, and behind orders-app's: acc-1's loss takes all three
    # database servers, so the cluster, orders-db and orders-app with them (``impact``)
    assert top.ci_id == world.ids["acc-1"]
    assert (top.incidents_explained, top.as_root) == (5, 0)
    by_id = {c.ci_id: c for c in ranked}
    assert by_id[world.ids["db-1"]].incidents_explained == 2
    assert by_id[world.ids["orders-app"]].incidents_explained == 1


def test_an_open_incident_follows_a_topology_change(world: World) -> None:
    # Incidents keep their analysis between batches; a changed graph must rebuild it.
    from servicegraph.cmdb.observation import (
        CIObservation,
        CIRef,
        ObservationBatch,
        RelationshipObservation,
    )

    world.send(*(world.event("NodeDown", k) for k in ("db-1", "db-2")))
    (incident,) = world.incidents()
    assert (incident.root_ci_id, incident.root_inferred) == (world.ids["acc-1"], True)
    assert incident.root_confidence == 0.667  # two of acc-1's three servers
    report = world.services.reconciler.apply(
        ObservationBatch(
            source="import",
            cis=[CIObservation("server", "db-4", {"hostname": "db-4.hq.example.com"}, key="db-4")],
            relationships=[
                RelationshipObservation(
                    "CONNECTED_TO", CIRef(key="db-4"), CIRef(ci_id=world.ids["acc-1"])
                )
            ],
        )
    )
    world.ids["db-4"] = report.ci_ids[0]
    world.send(world.event("NodeDown", "db-4"))
    (incident,) = world.incidents()
    assert incident.alert_count == 3
    assert (incident.root_ci_id, incident.root_inferred) == (world.ids["acc-1"], True)
    assert incident.root_confidence == 0.75  # now three of its four servers
