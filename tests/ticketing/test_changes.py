"""The change service on a real desk (examples/small-site.json): the lifecycle per type,
risk from the graph on create, assess and replanning, the CAB, conflicts blocking
approval, tasks, standard changes from templates, and refusals that write nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.change_model import (
    ApprovalDecision,
    Change,
    ChangeRisk,
    ChangeStatus,
    ChangeType,
    TaskStatus,
)
from servicegraph.ticketing.changes import ChangeEdit, NewChange
from servicegraph.ticketing.errors import (
    ApprovalRefused,
    ConflictsUnresolved,
    InvalidState,
    InvalidTransition,
    TicketNotFound,
)
from servicegraph.ticketing.model import Problem, ProblemStatus, WorklogKind
from servicegraph.ticketing.people import Agent, DeskRole, Directory, Group
from servicegraph.ticketing.ports import ChangeFilter
from servicegraph.ticketing.problems import NewProblem
from tests.ticketing.desk_world import T0, Desk, make_desk, save_directory

TEMPLATES = {
    "reboot-db": {
        "title": "Reboot a database server",
        "implementation_plan": "drain, reboot, check replication",
        "backout_plan": "none needed: it comes back",
        "max_risk": "medium",
    },
    "core-firmware": {"title": "Core firmware", "max_risk": "low"},
}
START = T0 + dt.timedelta(days=2)
END = START + dt.timedelta(hours=2)


def cab() -> Directory:
    manager = (DeskRole.AGENT, DeskRole.CHANGE_MANAGER)
    return Directory.build(
        agents=[
            Agent("alice", "Alice", "alice@desk.example", groups=("noc",)),
            Agent("mia", "Mia", "mia@desk.example", groups=("noc",), roles=manager),
            Agent("noah", "Noah", "noah@desk.example", groups=("noc",), roles=manager),
            Agent("olga", "Olga", "olga@desk.example", groups=("noc",), roles=manager),
            Agent("pete", "Pete", "pete@desk.example", groups=("noc",), roles=manager,
                  active=False),
        ],
        groups=[Group("noc", "Network operations")],
    )  # fmt: skip


@pytest.fixture()
def desk(tmp_path: Path) -> Iterator[Desk]:
    for made in make_desk(tmp_path, changes={"templates": TEMPLATES}):
        save_directory(made.services, cab(), made.ids["web-shop"])
        made.services.desk.changes.clock = made.clock
        yield made


def create(desk: Desk, actor: str = "alice", **fields: Any) -> Change:
    fields.setdefault("title", "Upgrade firmware")
    fields.setdefault("planned_start", START)
    fields.setdefault("planned_end", END)
    fields.setdefault("implementation_plan", "upgrade, reload")
    fields.setdefault("backout_plan", "boot the previous image")
    fields["ci_ids"] = tuple(desk.ids.get(c, c) for c in fields["ci_ids"])
    with change_context(actor):
        return desk.services.desk.changes.create(NewChange(**fields))


def step(desk: Desk, change_id: str, name: str, actor: str = "alice", **kw: Any) -> Change:
    with change_context(actor):
        return desk.services.desk.changes.transition(change_id, name, **kw)


def approve(desk: Desk, change_id: str, actor: str) -> Change:
    with change_context(actor):
        return desk.services.desk.changes.approve(change_id, f"ok from {actor}")


def stored(desk: Desk) -> Any:
    store = desk.services.tickets
    changes = store.find_changes(ChangeFilter(limit=100))
    return changes, store.worklog([c.id for c in changes])


def to_approval(desk: Desk, change: Change) -> Change:
    step(desk, change.id, "assess")
    return step(desk, change.id, "request_approval")


def test_a_change_starts_as_a_draft_with_its_risk_from_the_graph(desk: Desk) -> None:
    change = create(desk, ci_ids=("core-1",))
    assert change.status is ChangeStatus.DRAFT
    assert change.number == 1
    assert change.risk.rank >= ChangeRisk.HIGH.rank
    assert any("single point of failure" in r and "Web shop" in r for r in change.risk_reasons)
    assert change.approvals_required >= 2  # high risk: two CAB approvals by default
    history = desk.services.tickets.worklog([change.id])[change.id]
    assert [e.kind for e in history] == [WorklogKind.CREATED, WorklogKind.CHANGED]
    assert history[1].field == "risk" and "single point of failure" in history[1].text


def test_a_redundant_switch_is_lower_risk_and_needs_fewer_approvals(desk: Desk) -> None:
    core = create(desk, ci_ids=("core-1",))
    dist = create(desk, ci_ids=("dist-1",), planned_start=END, planned_end=END + dt.timedelta(1))
    assert dist.risk.rank < core.risk.rank
    assert any("redundan" in r for r in dist.risk_reasons)
    assert dist.approvals_required < core.approvals_required


def test_a_normal_change_walks_to_closed_with_the_cab(desk: Desk) -> None:
    change = create(desk, ci_ids=("core-1",))
    change = step(desk, change.id, "assess")
    assert change.status is ChangeStatus.ASSESSMENT
    change = step(desk, change.id, "request_approval")
    assert change.status is ChangeStatus.APPROVAL
    change = approve(desk, change.id, "mia")
    assert change.status is ChangeStatus.APPROVAL  # one of two
    change = approve(desk, change.id, "noah")
    assert change.status is ChangeStatus.SCHEDULED
    assert change.approved_by() == ["mia", "noah"]
    with change_context("alice"):
        desk.services.desk.changes.add_task(change.id, "Back up the config", "mia")
    change = step(desk, change.id, "start")
    assert change.status is ChangeStatus.IMPLEMENTING and change.actual_start == desk.clock.now
    with pytest.raises(InvalidTransition, match="open tasks: 1 'Back up the config'"):
        step(desk, change.id, "complete")
    with change_context("mia"):
        desk.services.desk.changes.update_task(change.id, 1, status=TaskStatus.DONE)
    desk.clock.advance(hours=1)
    change = step(desk, change.id, "complete")
    assert change.status is ChangeStatus.REVIEW and change.actual_end == desk.clock.now
    change = step(desk, change.id, "close", close_code="successful", close_notes="went fine")
    assert change.status is ChangeStatus.CLOSED
    assert (change.close_code, change.close_notes) == ("successful", "went fine")
    history = desk.services.tickets.worklog([change.id])[change.id]
    statuses = [(e.old, e.new) for e in history if e.kind is WorklogKind.TRANSITION]
    assert statuses == [
        ("draft", "assessment"),
        ("assessment", "approval"),
        ("approval", "scheduled"),
        ("scheduled", "implementing"),
        ("implementing", "review"),
        ("review", "closed"),
    ]
    assert any(e.field == "approvals" and e.actor == "mia" for e in history)


def test_steps_the_lifecycle_does_not_allow_are_refused_naming_the_allowed(desk: Desk) -> None:
    change = create(desk, ci_ids=("dist-1",))
    before = stored(desk)
    with pytest.raises(InvalidState) as refused:
        step(desk, change.id, "start")
    assert refused.value.current == "draft"
    assert set(refused.value.allowed) == {"assess", "cancel"}
    with pytest.raises(InvalidState):
        step(desk, change.id, "schedule")  # the system's step, after the CAB
    with pytest.raises(InvalidState):
        step(desk, change.id, "closed")  # by status, too
    with pytest.raises(ValidationFailed) as unknown:
        step(desk, change.id, "deploy")
    assert unknown.value.field == "transition"
    assert stored(desk) == before


def test_going_to_the_cab_needs_a_window_and_plans(desk: Desk) -> None:
    change = create(desk, ci_ids=("dist-1",), backout_plan="", planned_end=None)
    step(desk, change.id, "assess")
    with pytest.raises(ValidationFailed) as missing:
        step(desk, change.id, "request_approval")
    assert missing.value.field == "planned_end"
    with change_context("alice"):
        desk.services.desk.changes.update(change.id, ChangeEdit(planned_end=END))
    with pytest.raises(ValidationFailed) as missing:
        step(desk, change.id, "request_approval")
    assert missing.value.field == "backout_plan"


def test_the_cab_is_change_managers_never_the_requester_each_once(desk: Desk) -> None:
    change = to_approval(desk, create(desk, actor="mia", ci_ids=("dist-1",)))
    before = stored(desk)
    for actor, why in [
        ("mia", "requester cannot approve"),
        ("alice", "change_manager role"),
        ("pete", "change_manager role"),  # inactive
        ("somebody", "change_manager role"),  # not an agent of the desk
    ]:
        with pytest.raises(ApprovalRefused, match=why):
            approve(desk, change.id, actor)
    assert stored(desk) == before
    approve(desk, change.id, "noah")  # dist-1 is low or medium risk: one approval
    change = desk.services.desk.changes.get(change.id)
    assert change.status is ChangeStatus.SCHEDULED
    with pytest.raises(InvalidTransition, match="the CAB decides on changes in approval"):
        approve(desk, change.id, "olga")


def test_a_rejection_sends_the_change_back_to_draft(desk: Desk) -> None:
    change = to_approval(desk, create(desk, ci_ids=("core-1",)))
    approve(desk, change.id, "mia")
    with change_context("noah"):
        change = desk.services.desk.changes.reject(change.id, "no backout tested")
    assert change.status is ChangeStatus.DRAFT
    assert change.approvals == []
    history = desk.services.tickets.worklog([change.id])[change.id]
    assert any("rejected by noah: no backout tested" in e.text for e in history)
    with pytest.raises(ValidationFailed) as blank, change_context("noah"):
        desk.services.desk.changes.reject(change.id, " ")
    assert blank.value.field == "reason"


def test_new_cis_after_the_cab_saw_it_send_it_back_to_assessment(desk: Desk) -> None:
    change = to_approval(desk, create(desk, ci_ids=("dist-1",)))
    approve(desk, change.id, "mia")
    assert desk.services.desk.changes.get(change.id).status is ChangeStatus.SCHEDULED
    with change_context("alice"):
        change = desk.services.desk.changes.update(
            change.id, ChangeEdit(ci_ids=(desk.ids["core-1"],))
        )
    assert change.status is ChangeStatus.ASSESSMENT
    assert change.approvals == []
    assert change.risk.rank >= ChangeRisk.HIGH.rank  # recomputed for core-1
    history = desk.services.tickets.worklog([change.id])[change.id]
    assert any("approvals withdrawn" in e.text for e in history)


def test_conflicts_block_approval_until_overridden_with_a_reason(desk: Desk) -> None:
    first = to_approval(desk, create(desk, ci_ids=("dist-1",)))
    later = START + dt.timedelta(hours=1)
    second = create(
        desk, ci_ids=("dist-1",), planned_start=later, planned_end=later + dt.timedelta(hours=3)
    )
    assert {c.other_id for c in desk.services.desk.changes.conflicts(first.id)} == {second.id}
    assert {c.other_id for c in desk.services.desk.changes.conflicts(second.id)} == {first.id}
    before = stored(desk)
    with pytest.raises(ConflictsUnresolved, match="change 2"):
        approve(desk, first.id, "mia")
    assert stored(desk) == before
    # only a change manager overrides
    with pytest.raises(ApprovalRefused), change_context("alice"):
        desk.services.desk.changes.override_conflict(first.id, second.id, "same team")
    with pytest.raises(ValidationFailed) as none, change_context("mia"):
        desk.services.desk.changes.override_conflict(first.id, "chg-nope", "x")
    assert none.value.field == "other_id"
    with change_context("mia"):
        desk.services.desk.changes.override_conflict(first.id, second.id, "one engineer does both")
    conflicts = desk.services.desk.changes.conflicts(first.id)
    assert {c.kind.value for c in conflicts} == {"same_ci", "same_service"}
    assert all(c.overridden is not None and c.overridden.by == "mia" for c in conflicts)
    # the other side still sees it: the override is the first change's own
    assert all(c.overridden is None for c in desk.services.desk.changes.conflicts(second.id))
    assert approve(desk, first.id, "noah").status is ChangeStatus.SCHEDULED


def test_a_freeze_window_conflicts_too(desk: Desk) -> None:
    with change_context("mia"):
        freeze = desk.services.desk.changes.create_freeze_window(
            "Year-end freeze", START - dt.timedelta(days=1), END + dt.timedelta(days=10),
            reason="books close",
        )  # fmt: skip
    change = to_approval(desk, create(desk, ci_ids=("db-1",)))
    (conflict,) = desk.services.desk.changes.conflicts(change.id)
    assert conflict.other_id == freeze.id
    with pytest.raises(ConflictsUnresolved, match="Year-end freeze"):
        approve(desk, change.id, "mia")
    with change_context("alice"):
        desk.services.desk.changes.delete_freeze_window(freeze.id)
    assert approve(desk, change.id, "mia").status is ChangeStatus.SCHEDULED
    with pytest.raises(TicketNotFound):
        desk.services.desk.changes.delete_freeze_window(freeze.id)


def test_a_standard_change_comes_from_a_template_without_the_cab(desk: Desk) -> None:
    change = create(
        desk, ci_ids=("db-1",), change_type=ChangeType.STANDARD, template="reboot-db", title="",
        implementation_plan="", backout_plan="",
    )  # fmt: skip
    assert change.title == "Reboot a database server"
    assert change.implementation_plan == "drain, reboot, check replication"
    assert change.approvals_required == 0
    assert desk.services.desk.changes.allowed_steps(change) == ("schedule", "cancel")
    change = step(desk, change.id, "schedule")
    assert change.status is ChangeStatus.SCHEDULED
    with pytest.raises(ValidationFailed) as risky:
        create(desk, ci_ids=("core-1",), change_type=ChangeType.STANDARD, template="core-firmware")
    assert "raise a normal change" in risky.value.reason
    with pytest.raises(ValidationFailed) as unknown:
        create(desk, ci_ids=("db-1",), change_type=ChangeType.STANDARD, template="nope")
    assert unknown.value.field == "template" and "reboot-db" in unknown.value.reason


def test_bad_input_is_refused_naming_the_field_and_writes_nothing(desk: Desk) -> None:
    before = stored(desk)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"ci_ids": ("core-1",), "planned_end": START - dt.timedelta(hours=1)}, "planned_end"),
        ({"ci_ids": ("no-such-ci",)}, "ci_ids.0"),
        ({"ci_ids": ()}, "ci_ids"),
        ({"ci_ids": ("core-1",), "title": " "}, "title"),
        ({"ci_ids": ("core-1",), "assignee": "nobody"}, "assignee"),
        ({"ci_ids": ("core-1",), "planned_start": dt.datetime(2026, 12, 1)}, "planned_start"),
        ({"ci_ids": ("core-1",), "template": "reboot-db"}, "template"),
    ]
    for fields, field in cases:
        with pytest.raises(ValidationFailed) as refused:
            create(desk, **fields)
        assert refused.value.field == field, fields
    assert stored(desk) == before


def test_a_fixing_change_closed_successfully_proposes_resolving_its_problem(desk: Desk) -> None:
    now = desk.clock.now
    problem = Problem(
        id="prb-fix", number=1, title="dist-1 reboots", status=ProblemStatus.KNOWN_ERROR,
        created_at=now, updated_at=now, root_ci_id=desk.ids["dist-1"], reason="recurring",
        signature="manual:prb-fix",
    )  # fmt: skip
    change = create(desk, ci_ids=("dist-1",))
    problem.fixing_change_id = change.id
    with desk.services.tickets.unit() as unit:
        unit.save_problem(problem)
    to_approval(desk, change)
    approve(desk, change.id, "mia")
    for name in ("start", "complete"):
        step(desk, change.id, name)
    step(desk, change.id, "close", close_code="successful")
    entries = desk.services.tickets.worklog([problem.id])[problem.id]
    (proposed,) = [e for e in entries if e.kind is WorklogKind.PROPOSED]
    assert "change 1" in proposed.text and "resolve the problem" in proposed.text
    assert desk.services.tickets.get_problems([problem.id])[problem.id].status.active


def test_a_failed_change_records_why_and_counts_against_the_next_one(desk: Desk) -> None:
    change = to_approval(desk, create(desk, ci_ids=("dist-1",)))
    approve(desk, change.id, "mia")
    step(desk, change.id, "start")
    with pytest.raises(ValidationFailed) as why:
        step(desk, change.id, "fail")
    assert why.value.field == "reason"
    change = step(desk, change.id, "fail", reason="image corrupt")
    assert change.status is ChangeStatus.FAILED and change.close_code == "failed"
    assert change.close_notes == "image corrupt"
    later = create(desk, ci_ids=("dist-1",))
    assert any("failed" in r for r in later.risk_reasons)
    assert later.risk.rank >= change.risk.rank
    assert all(a.decision is ApprovalDecision.APPROVED for a in change.approvals)


def test_a_problem_walks_to_closed_with_its_fixing_change_and_stays_known(desk: Desk) -> None:
    """The acceptance walk through both services: a known error on dist-1, its fixing
    change through the CAB to a successful close (which proposes resolving), the problem
    resolved and closed, and a later incident on dist-1 still offered the known error."""
    problems = desk.services.desk.problems
    with change_context("alice"):
        problem = problems.create(NewProblem(title="dist-1 reboots", root_ci_id=desk.ids["dist-1"]))
        problem = problems.transition(problem.id, "investigate", assignee="alice")
        problem = problems.record_known_error(problem.id, "firmware 1.2 leaks", "reload weekly")
    change = to_approval(desk, create(desk, ci_ids=("dist-1",), title="Upgrade dist-1"))
    with change_context("alice"):
        problems.link_fixing_change(problem.id, change.id)
    approve(desk, change.id, "mia")
    for name in ("start", "complete"):
        step(desk, change.id, name)
    step(desk, change.id, "close", close_code="successful")
    proposal = problems.resolution_proposal(problems.get(problem.id))
    assert proposal is not None and proposal.startswith("change 1 'Upgrade dist-1' closed")
    with change_context("alice"):
        problems.transition(problem.id, "resolve", resolution="dist-1 upgraded by change 1")
        problem = problems.transition(problem.id, "close")
    assert problem.status is ProblemStatus.CLOSED
    statuses = [
        e.new
        for e in desk.services.tickets.worklog([problem.id])[problem.id]
        if e.field == "status" and e.kind is not WorklogKind.PROPOSED
    ]
    assert statuses == ["investigating", "known_error", "resolved", "closed"]  # from open
    desk.clock.advance(days=3)
    later = desk.create(title="shop slow again", affected_ci_ids=(desk.ids["dist-1"],))
    (offered,) = problems.known_errors_for(later)
    assert (offered.problem.id, offered.workaround) == (problem.id, "reload weekly")
    assert "the fix did not hold" in offered.why


def test_a_cancelled_change_says_why_and_takes_no_more_work(desk: Desk) -> None:
    change = to_approval(desk, create(desk, ci_ids=("dist-1",)))
    change = step(desk, change.id, "cancel", reason="vendor recalled the image")
    assert (change.status, change.close_code, change.close_notes) == (
        ChangeStatus.CANCELLED,
        "cancelled",
        "vendor recalled the image",
    )
    with pytest.raises(InvalidTransition, match="is cancelled"), change_context("alice"):
        desk.services.desk.changes.update(change.id, ChangeEdit(title="again"))
    with pytest.raises(InvalidTransition, match="is cancelled"), change_context("alice"):
        desk.services.desk.changes.add_task(change.id, "too late")
