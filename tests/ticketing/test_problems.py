"""Problem management on a real desk: a problem walked from open to closed with its fixing
change (whose successful close proposes resolving it), every refused step naming the
allowed ones and writing nothing, assignees checked against the directory, the fixing
change's rules, and the known-error database offered on later incidents (a desk ticket on
the root CI, monitoring incidents through the real correlator with the same root CI or
alert signature), still after the problem is resolved and closed, as a fix that may not
have held."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.model import new_id
from servicegraph.events.model import Event, EventStatus, Severity, digest
from servicegraph.ticketing.change_model import Change, ChangeRisk, ChangeStatus
from servicegraph.ticketing.errors import InvalidState, InvalidTransition, TicketNotFound
from servicegraph.ticketing.lifecycle import StateMachine
from servicegraph.ticketing.model import Incident, Problem, ProblemStatus, WorklogKind
from servicegraph.ticketing.ports import IncidentFilter, ProblemFilter
from servicegraph.ticketing.problem_lifecycle import (
    DEFAULT_PROBLEM_LIFECYCLE,
    load_problem_lifecycle,
)
from servicegraph.ticketing.problems import NewProblem, ProblemEdit, ProblemService
from tests.ticketing.desk_world import Desk, make_desk

K = WorklogKind


@pytest.fixture()
def desk(tmp_path: Path) -> Iterator[Desk]:
    for made in make_desk(tmp_path):
        made.services.desk.problems.clock = made.clock
        yield made


def service(desk: Desk) -> ProblemService:
    return desk.services.desk.problems


def open_problem(desk: Desk, title: str = "db-1 keeps rebooting", **fields: Any) -> Problem:
    fields.setdefault("root_ci_id", desk.ids["db-1"])
    with change_context("alice"):
        return service(desk).create(NewProblem(title=title, **fields))


def step(desk: Desk, problem: Problem, name: str, actor: str = "bob", **fields: Any) -> Problem:
    with change_context(actor):
        return service(desk).transition(problem.id, name, **fields)


def save_change(desk: Desk, **fields: Any) -> Change:
    """A change saved as the change service would (that service is another part's)."""
    now = desk.clock.now
    with desk.services.tickets.unit() as unit:
        change = Change(
            id=fields.pop("id", None) or new_id("chg"),
            number=fields.pop("number", None) or unit.next_change_number(),
            title=fields.pop("title", "Upgrade core-1"),
            status=fields.pop("status", ChangeStatus.DRAFT),
            risk=ChangeRisk.MEDIUM,
            created_at=fields.pop("created_at", now),
            updated_at=now,
            created_by="carol",
            ci_ids=[desk.ids["db-1"]],
            **fields,
        )
        unit.save_change(change)
    return change


def state(desk: Desk, *ids: str) -> tuple[Any, ...]:
    """Everything stored about these problems and changes and every ticket: a refusal
    must leave it as it was."""
    store = desk.services.tickets
    tickets = store.find_incidents(IncidentFilter(limit=1000))
    return (
        store.get_problems(ids),
        store.worklog([*ids, *(t.id for t in tickets)]),
        [(t.id, t.problem_id, t.updated_at) for t in tickets],
    )


def entries(desk: Desk, problem: Problem) -> list[tuple[Any, ...]]:
    return [(e.kind, e.field, e.old, e.new) for e in service(desk).history(problem.id)]


def fire(desk: Desk, name: str, key: str, status: str = "firing") -> Incident:
    """An alert on ``key`` through the real correlator; the newest incident on that CI."""
    now = desk.clock.now
    event = Event(
        source="test",
        name=name,
        status=EventStatus(status),
        severity=Severity.CRITICAL,
        occurred_at=now,
        fingerprint=digest("test", name, key),
        event_id=digest("test", name, key, status, now.isoformat()),
        labels={"ci_id": desk.ids[key]},
    )
    desk.services.correlator.ingest([event])
    desk.services.correlator.drain()
    found = desk.services.tickets.find_incidents(IncidentFilter(ci_ids=(desk.ids[key],)))
    return found[0]


def refused(
    desk: Desk, problem: Problem, name: str, allowed: tuple[str, ...], **fields: Any
) -> InvalidState:
    before = state(desk, problem.id)
    with pytest.raises(InvalidState) as caught:
        step(desk, problem, name, **fields)
    assert caught.value.allowed == allowed
    assert caught.value.ticket_id == problem.id
    assert f"allowed: {', '.join(allowed) or 'none'}" in str(caught.value)
    assert state(desk, problem.id) == before, "a refused step writes nothing"
    return caught.value


@contextmanager
def bad_input(desk: Desk, problem: Problem, field: str, message: str) -> Iterator[None]:
    """What runs inside is refused, naming ``field`` and saying ``message``; nothing is
    written."""
    before = state(desk, problem.id)
    with pytest.raises(ValidationFailed) as caught, change_context("bob"):
        yield
    assert (caught.value.field, caught.value.reason) == (field, message)
    assert state(desk, problem.id) == before, "refused input writes nothing"


def resave(desk: Desk, change: Change, **fields: Any) -> None:
    """The change as its service would save it later (implemented, closed, failed ...)."""
    save_change(desk, id=change.id, number=change.number, title=change.title,
                created_at=change.created_at, **fields)  # fmt: skip


# -- the lifecycle ---------------------------------------------------------------------------


def test_the_default_lifecycle_is_valid_and_a_declaration_names_problem_statuses() -> None:
    machine = load_problem_lifecycle()
    assert isinstance(machine, StateMachine) and machine.initial == "open"
    assert machine.allowed_names("open", "agent") == (
        "investigate", "record_known_error", "resolve", "cancel",
    )  # fmt: skip
    assert machine.allowed_names("resolved", "system") == ("close", "reopen")
    assert machine.allowed_names("closed", "agent") == ()
    tickets_like = {
        **DEFAULT_PROBLEM_LIFECYCLE,
        "states": {**DEFAULT_PROBLEM_LIFECYCLE["states"], "pending": None},
        "transitions": {
            **DEFAULT_PROBLEM_LIFECYCLE["transitions"],
            "pend": {"from": "open", "to": "pending", "actors": ["agent"]},
            "resume": {"from": "pending", "to": "investigating", "actors": ["agent"]},
        },
    }
    with pytest.raises(ValidationFailed) as caught:
        load_problem_lifecycle(tickets_like)
    assert caught.value.field == "desk.problems.lifecycle.states.pending"
    with pytest.raises(ValidationFailed) as caught:
        load_problem_lifecycle({**DEFAULT_PROBLEM_LIFECYCLE, "initial": "new"})
    assert caught.value.field == "desk.problems.lifecycle.initial"


def test_a_problem_walks_from_open_to_closed_with_its_fixing_change(desk: Desk) -> None:
    problems = service(desk)
    problem = open_problem(desk)
    assert (problem.status, problem.number, problem.assignee) == ("open", 1, None)
    refused(desk, problem, "close", ("investigate", "record_known_error", "resolve", "cancel"))
    with bad_input(desk, problem, "assignee", "'investigate' needs assignee"):
        problems.transition(problem.id, "investigate")
    wrong = "'investigate' moves the problem to investigating; resolution belongs to resolved"
    with bad_input(desk, problem, "resolution", wrong + " or closed"):
        problems.transition(problem.id, "investigate", assignee="bob", resolution="too early")

    desk.clock.advance(minutes=5)
    problem = step(desk, problem, "investigate", assignee="bob", reason="third reboot")
    assert (problem.status, problem.assignee) == ("investigating", "bob")
    with change_context("bob"):
        problem = problems.update(
            problem.id,
            ProblemEdit(root_cause="firmware 1.2 leaks memory", fix="upgrade to 1.3"),
        )
    refused(desk, problem, "reopen", ("record_known_error", "resolve", "cancel"), reason="x")
    with change_context("bob"):
        problem = problems.record_known_error(problem.id, "memory leak in 1.2", "restart weekly")
    assert (problem.status, problem.known_error, problem.workaround) == (
        "known_error", "memory leak in 1.2", "restart weekly",
    )  # fmt: skip

    change = save_change(desk, title="Upgrade core-1")
    with change_context("bob"):
        problem = problems.link_fixing_change(problem.id, change.id)
        assert problems.link_fixing_change(problem.id, change.id) == problem, "again: no-op"
    assert problem.fixing_change_id == change.id
    assert problems.resolution_proposal(problem) is None, "the change has not closed"
    (on_change,) = desk.services.tickets.worklog([change.id])[change.id]
    assert (on_change.kind, on_change.actor) == (K.LINKED, "bob")
    assert on_change.text == "change 1 'Upgrade core-1' fixes problem 1 'db-1 keeps rebooting'"

    desk.clock.advance(hours=1)  # the change is implemented and closed successfully
    resave(desk, change, status=ChangeStatus.CLOSED, close_code="successful")
    assert problems.resolution_proposal(problems.get(problem.id)) == (
        "change 1 'Upgrade core-1' closed successfully on 2026-11-02 10:05 UTC: resolve the problem"
    )
    refused(desk, problem, "close", ("resolve", "cancel"))
    with bad_input(desk, problem, "resolution", "'resolve' needs resolution"):
        problems.transition(problem.id, "resolve")
    problem = step(desk, problem, "resolve", resolution="fixed by change 1")
    assert (problem.status, problem.resolved_at) == ("resolved", desk.clock.now)
    assert problems.resolution_proposal(problem) is None, "resolved: nothing to propose"
    already = refused(desk, problem, "resolve", ("close", "reopen"), resolution="again")
    assert already.detail == f"already resolved since {desk.clock.now.isoformat()}"
    refused(desk, problem, "investigate", ("close", "reopen"))

    desk.clock.advance(days=7)
    problem = step(desk, problem, "close")
    assert (problem.status, problem.closed_at) == ("closed", desk.clock.now)
    refused(desk, problem, "reopen", (), reason="it came back")
    before = state(desk, problem.id)
    with pytest.raises(InvalidState, match="a closed problem is read-only"), change_context("bob"):
        problems.update(problem.id, ProblemEdit(title="renamed"))
    assert state(desk, problem.id) == before

    assert entries(desk, problem) == [
        (K.CREATED, None, None, None),
        (K.TRANSITION, "status", "open", "investigating"),
        (K.ASSIGNED, "assignee", None, "bob"),
        (K.CHANGED, "root_cause", "", "firmware 1.2 leaks memory"),
        (K.CHANGED, "fix", "", "upgrade to 1.3"),
        (K.KNOWN_ERROR, "status", "investigating", "known_error"),
        (K.LINKED, "fixing_change_id", None, change.id),
        (K.TRANSITION, "status", "known_error", "resolved"),
        (K.CHANGED, "resolution", "", "fixed by change 1"),
        (K.TRANSITION, "status", "resolved", "closed"),
    ]
    texts = [e.text for e in problems.history(problem.id)]
    assert texts[1] == "investigate: third reboot"
    assert texts[5] == "memory leak in 1.2\nworkaround: restart weekly"
    assert {e.actor for e in problems.history(problem.id)[1:]} == {"bob"}


def test_reopen_needs_a_reason_and_someone_and_cancel_closes_without_a_fix(desk: Desk) -> None:
    problem = open_problem(desk)
    problem = step(desk, problem, "resolved", resolution="rebooted the switch")  # by status
    with bad_input(desk, problem, "reason", "'reopen' needs reason"):
        service(desk).transition(problem.id, "reopen")
    nobody = "nobody investigates it: name an assignee before it can be investigating"
    with bad_input(desk, problem, "assignee", nobody):
        service(desk).transition(problem.id, "reopen", reason="back again")
    problem = step(desk, problem, "reopen", reason="back again", assignee="alice")
    assert (problem.status, problem.assignee, problem.resolution, problem.resolved_at) == (
        "investigating", "alice", "", None,
    )  # fmt: skip
    assert entries(desk, problem)[-3:] == [
        (K.TRANSITION, "status", "resolved", "investigating"),
        (K.ASSIGNED, "assignee", None, "alice"),
        (K.CHANGED, "resolution", "rebooted the switch", ""),  # the old one stays here
    ]
    with bad_input(desk, problem, "resolution", "'cancel' needs resolution"):
        service(desk).transition(problem.id, "cancel")
    problem = step(desk, problem, "cancel", resolution="duplicate of PRB7")
    assert (problem.status, problem.resolution, problem.resolved_at) == (
        "closed", "duplicate of PRB7", None,
    )  # fmt: skip
    with pytest.raises(ValidationFailed, match="unknown step 'finish'") as caught:
        step(desk, problem, "finish")
    assert caught.value.field == "transition"


def test_assignees_are_active_agents_of_the_directory(desk: Desk) -> None:
    problems = service(desk)
    problem = open_problem(desk)
    for login, why in [
        ("nobody", "no agent with login 'nobody'"),
        ("erin", "agent 'erin' is inactive"),
    ]:
        with bad_input(desk, problem, "assignee", why):
            problems.update(problem.id, ProblemEdit(assignee=login))
        with bad_input(desk, problem, "assignee", why):
            problems.transition(problem.id, "investigate", assignee=login)
    before = state(desk, problem.id)
    with pytest.raises(ValidationFailed) as caught, change_context("alice"):
        problems.create(NewProblem(title="x", assignee="erin"))
    assert caught.value.field == "assignee"
    assert state(desk, problem.id) == before
    assert [p.id for p in problems.find(ProblemFilter())] == [problem.id], "none created"

    with change_context("alice"):
        problem = problems.update(problem.id, ProblemEdit(assignee="bob"))
    problem = step(desk, problem, "investigate")  # the problem's own assignee will do
    assert (problem.status, problem.assignee) == ("investigating", "bob")
    keeps = "an investigated problem keeps an assignee: name another one"
    with bad_input(desk, problem, "assignee", keeps):
        problems.update(problem.id, ProblemEdit(assignee=""))
    with bad_input(desk, problem, "title", "must not be empty"):
        problems.update(problem.id, ProblemEdit(title=" "))
    with bad_input(desk, problem, "root_ci_id", "no configuration item with id 'ci-x'"):
        problems.update(problem.id, ProblemEdit(root_ci_id="ci-x"))
    with change_context("alice"):
        problem = problems.update(problem.id, ProblemEdit(assignee="alice", root_ci_id=""))
    assert (problem.assignee, problem.root_ci_id) == ("alice", None)
    assert entries(desk, problem)[-2:] == [
        (K.CHANGED, "root_ci_id", desk.ids["db-1"], None),
        (K.ASSIGNED, "assignee", "bob", "alice"),
    ]
    assert problems.history(problem.id)[-2].text == "root CI: db-1 -> (none)"


def test_a_problem_has_one_fixing_change_that_can_still_fix_it(desk: Desk) -> None:
    problems = service(desk)
    problem = open_problem(desk)
    before = state(desk, problem.id)
    with pytest.raises(TicketNotFound) as caught, change_context("bob"):
        problems.link_fixing_change(problem.id, "chg-nope")
    assert (caught.value.kind, caught.value.field) == ("change", "change_id")
    assert state(desk, problem.id) == before
    failed = save_change(desk, title="Patch db-1", status=ChangeStatus.FAILED)
    with bad_input(
        desk, problem, "change_id", "change 1 'Patch db-1' is failed and fixes nothing now"
    ):
        problems.link_fixing_change(problem.id, failed.id)
    first = save_change(desk, title="Patch db-1 again", status=ChangeStatus.SCHEDULED)
    second = save_change(desk, title="Replace db-1")
    with change_context("bob"):
        problems.link_fixing_change(problem.id, first.id)
    before = state(desk, problem.id, second.id)
    with pytest.raises(InvalidTransition, match="a problem has one fixing change"):
        problems.link_fixing_change(problem.id, second.id)
    assert state(desk, problem.id, second.id) == before
    # the first change fails: another may take its place
    resave(desk, first, status=ChangeStatus.FAILED)
    with change_context("bob"):
        problem = problems.link_fixing_change(problem.id, second.id)
    assert problem.fixing_change_id == second.id
    assert entries(desk, problem)[-1] == (K.LINKED, "fixing_change_id", first.id, second.id)
    # one that closed with issues still proposes resolving
    resave(desk, second, status=ChangeStatus.CLOSED, close_code="successful_with_issues")
    proposal = problems.resolution_proposal(problems.get(problem.id))
    assert proposal is not None and "closed successfully, with issues, on" in proposal
    problem = step(desk, problem, "resolve", resolution="db-1 replaced")
    bad = refused_link(desk, problem, second.id)
    assert bad.allowed == ("close", "reopen") and "takes no fixing change" in str(bad)


def refused_link(desk: Desk, problem: Problem, change_id: str) -> InvalidState:
    before = state(desk, problem.id)
    with pytest.raises(InvalidState) as caught, change_context("bob"):
        service(desk).link_fixing_change(problem.id, change_id)
    assert state(desk, problem.id) == before
    return caught.value


# -- the known-error database on incidents ---------------------------------------------------


def test_later_incidents_on_the_root_ci_are_offered_the_known_error(desk: Desk) -> None:
    problems = service(desk)
    db1, core1 = desk.ids["db-1"], desk.ids["core-1"]
    open_problem(desk, "core-1 is slow", root_ci_id=core1)  # not a known error: not offered
    with change_context("alice"):
        known = problems.create_known_error(
            "firmware 1.2 leaks memory", "restart the service weekly", root_ci_id=db1
        )
    assert known.status == "known_error"

    desk.clock.advance(hours=1)
    ticket = desk.create(title="orders are slow", affected_ci_ids=(db1,))
    (offered,) = problems.known_errors_for(ticket)
    assert (offered.problem.id, offered.workaround) == (known.id, "restart the service weekly")
    assert offered.why == "affected CI db-1 is its root CI"
    monitoring = fire(desk, "NodeDown", "db-1")
    assert monitoring.root_ci_id == db1
    (offered,) = problems.known_errors_for(monitoring)
    assert (offered.problem.id, offered.why) == (known.id, "same root CI db-1")
    assert problems.known_errors_for(desk.create(title="printer jam")) == []

    # resolved: still offered, as a fix that may not have held; it takes no new incidents
    desk.clock.advance(hours=1)
    step(desk, known, "resolve", resolution="firmware 1.3 everywhere")
    (offered,) = problems.known_errors_for(monitoring)
    resolved_on = desk.clock.now.date().isoformat()
    assert offered.why == (
        f"same root CI db-1; resolved {resolved_on}: a new incident may mean the fix did not hold"
    )
    assert offered.workaround == "restart the service weekly"
    for status in ("resolved", "closed"):
        before = state(desk, known.id)
        with pytest.raises(InvalidTransition) as caught, change_context("bob"):
            desk.services.desk.incidents.link_problem(monitoring.id, known.id)
        assert caught.value.reason == f"is {status} and takes no new incidents"
        assert state(desk, known.id) == before
        if status == "resolved":
            step(desk, known, "close")
    assert [m.problem.id for m in problems.known_errors_for(monitoring)] == [known.id]


def test_a_known_error_of_a_recurring_alert_is_offered_on_other_cis(desk: Desk) -> None:
    problems = service(desk)
    for key in ("orders-app", "core-1", "db-1"):  # recurrence opens alert:test/CertificateExpired
        fire(desk, "CertificateExpired", key)
        desk.clock.advance(minutes=10)
    (recurring,) = problems.find(ProblemFilter())
    assert recurring.signature == "alert:test/CertificateExpired" and recurring.root_ci_id is None
    with change_context("alice"):
        problems.record_known_error(recurring.id, "the internal CA expired", "renew by hand")
        # recorded again: the error and workaround are replaced, the status stays
        again = problems.record_known_error(recurring.id, "the internal CA expired on 1 Nov")
    assert (again.status, again.workaround) == ("known_error", "renew by hand")
    assert entries(desk, again)[-2:] == [
        (K.KNOWN_ERROR, "status", "open", "known_error"),
        (K.KNOWN_ERROR, None, None, None),
    ]
    later = fire(desk, "CertificateExpired", "acc-1")
    assert later.root_ci_id == desk.ids["acc-1"]
    (offered,) = problems.known_errors_for(later)
    assert offered.why == "same alert signature test/CertificateExpired"
    assert offered.problem.known_error == "the internal CA expired on 1 Nov"


def test_resolution_times_are_told_in_utc() -> None:
    from servicegraph.ticketing.problems import resolution_proposal

    paris = dt.timezone(dt.timedelta(hours=1))
    at = dt.datetime(2026, 12, 2, 11, 0, tzinfo=paris)
    change = Change("chg-1", 12, "Upgrade core-1", ChangeStatus.CLOSED, ChangeRisk.LOW, at, at,
                    "carol", close_code="successful")  # fmt: skip
    problem = Problem("prb-1", 3, "p", ProblemStatus.KNOWN_ERROR, at, at, None, "r",
                      "manual:prb-1", fixing_change_id="chg-1")  # fmt: skip
    assert resolution_proposal(problem, change) == (
        "change 12 'Upgrade core-1' closed successfully on 2026-12-02 10:00 UTC: "
        "resolve the problem"
    )
    change.close_code = "failed"
    assert resolution_proposal(problem, change) is None
