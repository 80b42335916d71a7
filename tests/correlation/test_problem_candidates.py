"""Problem candidates and the problems recurrence opens, on the example site
(examples/small-site.json):

core-1 <- dist-1, dist-2 <- acc-1 (two uplinks, group "uplink") <- db-1, db-2, db-3
db-1..3 MEMBER_OF pg-cluster (min_healthy 2) <- orders-db RUNS_ON <- orders-app <- web-shop

A CI explains an incident exactly when ``impact`` says its loss fails the incident's root:
core-1 explains dist-1's incidents (dist-1 needs it) and acc-1's (it takes both uplinks of
acc-1 down); dist-1 does not explain acc-1's (dist-2 still carries it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.correlation.policy import BatchResult
from servicegraph.correlation.problems import ProblemCandidate, problem_candidates
from servicegraph.correlation.recurrence import Recurrence
from servicegraph.correlation.state import WorkerState
from servicegraph.ticketing.durations import human_duration
from servicegraph.ticketing.ports import ProblemFilter
from tests.correlation.conftest import World, make_world


def incident_on(world: World, key: str, *names: str) -> None:
    """One incident rooted on ``key``: its alerts fire, clear, and the incident resolves
    (past the hold time and the reopen window, so the next one is a new incident)."""
    world.send(*(world.event(name, key) for name in names))
    world.send(*(world.event(name, key, "resolved") for name in names))
    world.clock.advance(minutes=40)
    world.services.correlator.process_pending()


def ranked(world: World, since: dt.datetime) -> list[ProblemCandidate]:
    return problem_candidates(world.services.correlator, since=since, limit=500)


def names_of(world: World, candidates: list[ProblemCandidate]) -> list[str]:
    return [c.name for c in candidates]


def test_the_alerting_root_of_every_incident_ranks_above_the_silent_core_behind_it(
    world: World,
) -> None:
    start = world.clock.now
    for _ in range(4):
        incident_on(world, "dist-1", "SwitchDown", "HighCPU")
    incidents = world.incidents()
    assert len(incidents) == 4
    assert {i.root_ci_id for i in incidents} == {world.ids["dist-1"]}
    dist, core = ranked(world, start)
    assert (dist.name, dist.incidents_explained, dist.as_root, dist.alerts) == ("dist-1", 4, 4, 8)
    assert dist.reason == "root cause of 4 incidents"
    # core-1 never alerted: credited only because its loss fails dist-1
    assert (core.name, core.incidents_explained, core.as_root, core.alerts) == ("core-1", 4, 0, 0)
    assert core.reason == "its loss fails dist-1 (root of 4 incidents)"
    assert core.incident_ids == dist.incident_ids == tuple(sorted(i.id for i in incidents))


def test_a_provider_behind_a_redundancy_group_is_credited_and_either_member_is_not(
    world: World,
) -> None:
    start = world.clock.now
    for _ in range(4):
        incident_on(world, "dist-1", "SwitchDown")
    for _ in range(2):
        incident_on(world, "acc-1", "SwitchDown")
    candidates = ranked(world, start)
    assert names_of(world, candidates) == ["core-1", "dist-1", "acc-1"]
    core, dist, acc = candidates
    assert (core.incidents_explained, dist.incidents_explained, acc.incidents_explained) == (
        6,
        4,
        2,
    )
    assert core.reason == (
        "its loss fails dist-1 (root of 4 incidents); "
        "behind redundancy: its loss fails both uplinks of acc-1 (root of 2 incidents)"
    )
    assert acc.reason == "root cause of 2 incidents"


def test_credited_exactly_when_impact_says_the_loss_fails_the_root(world: World) -> None:
    start = world.clock.now
    for key, names in (
        ("dist-1", ("SwitchDown",)),
        ("acc-1", ("SwitchDown",)),
        ("db-1", ("NodeDown",)),
        ("orders-app", ("HighLatency",)),
        ("web-shop", ("CheckoutErrors",)),
    ):
        incident_on(world, key, *names)
    incidents = world.incidents()
    assert len(incidents) == 5
    credited = {c.ci_id: set(c.incident_ids) for c in ranked(world, start)}
    impact = world.services.impact
    pairs = 0
    for ci_id in world.ids.values():
        fails = {a.ci_id for a in impact.impact([ci_id]).affected} | {ci_id}
        for incident in incidents:
            pairs += 1
            assert (incident.id in credited.get(ci_id, set())) == (incident.root_ci_id in fails), (
                ci_id,
                incident.root_ci_id,
            )
    assert pairs == len(world.ids) * 5
    # what the rule gives on this site: the loss of acc-1 takes the whole cluster down
    by_name = {c.name: c for c in ranked(world, start)}
    assert by_name["acc-1"].incidents_explained == 4  # acc-1, db-1, orders-app, web-shop
    assert by_name["dist-1"].incidents_explained == 1  # only its own
    assert by_name["db-1"].incidents_explained == 1  # pg-cluster survives one server
    assert "behind redundancy: its loss fails all 3 members of pg-cluster, hence" in (
        by_name["acc-1"].reason
    )


def test_ties_go_to_the_recorded_root_then_to_the_most_alerts_then_to_the_name(
    world: World,
) -> None:
    start = world.clock.now
    incident_on(world, "db-1", "NodeDown")
    incident_on(world, "db-2", "NodeDown", "DiskFull")
    candidates = ranked(world, start)
    # acc-1 and core-1 explain both (never root, no alerts: by name); db-2 has two alerts
    assert names_of(world, candidates) == ["acc-1", "core-1", "db-2", "db-1"]
    assert [c.alerts for c in candidates] == [0, 0, 2, 1]
    assert candidates[0].reason == (
        "its loss fails db-1 (root of 1 incident); its loss fails db-2 (root of 1 incident)"
    )
    assert problem_candidates(world.services.correlator, since=start, limit=3)[-1].name == "db-2"


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (dt.timedelta(days=7), "7 days"),
        (dt.timedelta(days=1), "1 day"),
        (dt.timedelta(hours=36), "36 hours"),
        (dt.timedelta(minutes=90), "90 minutes"),
        (dt.timedelta(seconds=45), "45 seconds"),
        (dt.timedelta(seconds=86_401), "86,401 seconds"),
        (dt.timedelta(0), "0 seconds"),
        (dt.timedelta(hours=-2), "-2 hours"),
    ],
)
def test_human_durations(delta: dt.timedelta, text: str) -> None:
    assert human_duration(delta) == text


@pytest.fixture()
def quiet_world(tmp_path: Path) -> Iterator[World]:
    # the correlator opens no problem itself: the test runs recurrence on its incidents
    yield from make_world(tmp_path, hold_time_s=60, problem_incidents_per_ci=1000)


def test_recurrence_titles_name_the_ci_and_the_window_in_words(quiet_world: World) -> None:
    world = quiet_world
    for _ in range(3):
        incident_on(world, "web-shop", "CheckoutErrors")
    incidents = world.incidents()
    assert len(incidents) == 3
    correlator = world.services.correlator
    policy = dataclasses.replace(correlator.policy, problem_incidents_per_ci=3)
    state = WorkerState()
    state.incidents = {i.id: i for i in incidents}
    state.members = {i.id: {} for i in incidents}
    assert world.services.tickets.find_problems(ProblemFilter()) == []
    with correlator.inbox.unit() as unit:
        recurrence = Recurrence(
            unit, policy, world.clock.now, BatchResult(), facts=correlator._ci_facts
        )
        recurrence.detect(state, list(state.incidents))
        recurrence.link(state)
    (problem,) = world.services.tickets.find_problems(ProblemFilter())
    assert problem.signature == f"ci:{world.ids['web-shop']}"
    assert problem.title == "recurring incidents on Web shop"
    assert problem.reason == "3 incidents on Web shop within 7 days"


def test_the_problems_the_correlator_opens_name_the_ci(world: World) -> None:
    for _ in range(3):
        incident_on(world, "web-shop", "CheckoutErrors")
    (problem,) = world.services.tickets.find_problems(ProblemFilter())
    assert problem.title == "recurring incidents on Web shop"
    assert problem.reason == "3 incidents on Web shop within 7 days"
