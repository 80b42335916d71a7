"""Problems the correlator finds again by signature, after people worked them: a resolved
problem whose incidents come back is reopened (the fix did not hold), a closed one stays
closed and the recurrence is a new problem."""

from __future__ import annotations

from servicegraph.cmdb.context import change_context
from servicegraph.ticketing.model import ProblemStatus, WorklogKind
from servicegraph.ticketing.ports import ProblemFilter
from tests.correlation.conftest import World
from tests.correlation.test_problem_candidates import incident_on


def recurring_problem(world: World) -> str:
    for _ in range(3):
        incident_on(world, "web-shop", "CheckoutErrors")
    (problem,) = world.services.tickets.find_problems(ProblemFilter())
    return problem.id


def work(world: World, problem_id: str, step: str, **fields: str) -> None:
    with change_context("alice"):
        world.services.desk.problems.transition(problem_id, step, **fields)


def test_a_resolved_problem_whose_incidents_come_back_is_reopened(world: World) -> None:
    problem_id = recurring_problem(world)
    work(world, problem_id, "resolve", resolution="restarted the checkout pods")
    incident_on(world, "web-shop", "CheckoutErrors")
    problem = world.services.tickets.get_problems([problem_id])[problem_id]
    assert problem.status is ProblemStatus.OPEN  # nobody held it: open, not investigating
    assert len(problem.incident_ids) == 4
    entries = world.services.tickets.worklog([problem_id])[problem_id]
    reopened = [e for e in entries if e.kind is WorklogKind.TRANSITION][-1]
    assert (reopened.kind, reopened.old, reopened.new) == (
        WorklogKind.TRANSITION,
        "resolved",
        "open",
    )
    assert reopened.actor == "correlation"
    assert "1 new incident since it was resolved" in reopened.text


def test_a_closed_problem_stays_closed_and_the_recurrence_is_a_new_one(world: World) -> None:
    problem_id = recurring_problem(world)
    work(world, problem_id, "resolve", resolution="restarted the checkout pods")
    work(world, problem_id, "close")
    incident_on(world, "web-shop", "CheckoutErrors")
    problems = {p.id: p for p in world.services.tickets.find_problems(ProblemFilter())}
    closed = problems.pop(problem_id)
    assert closed.status is ProblemStatus.CLOSED
    assert len(closed.incident_ids) == 3
    assert closed.signature == f"ci:{world.ids['web-shop']}#{closed.number}"
    (new,) = problems.values()
    assert new.status is ProblemStatus.OPEN
    assert new.signature == f"ci:{world.ids['web-shop']}"
    assert len(new.incident_ids) == 4  # the window's incidents, as a new problem gets
