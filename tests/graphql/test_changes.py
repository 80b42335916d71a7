"""Change management through GraphQL over HTTP, on the small site with people holding desk
roles (alice, bob and carol are change managers, dave an agent), each with an engineer
token they hold (the holder is the actor the worklog names), and a standard-change
template in the desk's settings.

A normal change on core-1 walks from draft to closed (risk high from the graph, two CAB
approvals, a task); the change calendar shows two overlapping changes and a freeze
window, the conflicts listed on both changes; ``changeRisk`` previews a change; every
refusal is a member of the result union (``InvalidInput`` naming ``input.plannedEnd``,
``NotFound`` for an unknown CI, ``InvalidState`` with the allowed steps, self-approval and
approval blocked by conflicts) and leaves the change as it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servicegraph.config import DeskSettings
from tests.graphql.conftest import Site, make_site
from tests.graphql.test_desk_fixtures import Enum, ask, literal

PEOPLE: dict[str, Any] = {
    "agents": [
        {"login": login, "name": login.title(), "email": f"{login}@desk.example",
         "groups": ["noc"], "roles": roles}
        for login, roles in (
            ("alice", ["agent", "change_manager"]),
            ("bob", ["agent", "change_manager"]),
            ("carol", ["agent", "change_manager"]),
            ("dave", ["agent"]),
        )
    ],
    "groups": [{"id": "noc", "name": "Network operations"}],
}  # fmt: skip

TEMPLATES: dict[str, Any] = {
    "restart-db-node": {
        "title": "Restart a database node",
        "implementation_plan": "drain the node, restart it, check replication",
        "backout_plan": "leave the node out of the cluster",
        "max_risk": "low",
    }
}

RISK = [
    "core-1 is a single point of failure of Web shop (criticality 1)",
    "10 other CIs fail with core-1",
]
START, END = "2031-03-04T22:00:00+00:00", "2031-03-05T00:00:00+00:00"
PLANS = {"implementationPlan": "flash the new image, reload", "backoutPlan": "boot the old"}

CHANGE = """id number title status type template risk riskReasons approvalsRequired
    approvals { approver decision comment } tasks { number title assignee status doneBy }
    ciIds cis { name } plannedStart plannedEnd actualStart actualEnd
    implementationPlan backoutPlan closeCode closeNotes createdBy allowedSteps
    conflicts { kind otherId other detail overridden overrideReason overriddenBy }
    worklog { actor kind text }"""
RESULT = f"""__typename
    ... on MutationError {{ message }}
    ... on InvalidInput {{ errors {{ field message }} }}
    ... on NotFound {{ field id }}
    ... on InvalidState {{ ticketId status step allowedSteps }}
    ... on ChangePayload {{ change {{ {CHANGE} }} }}"""


@pytest.fixture()
def desk(tmp_path: Path) -> Iterator[Site]:
    settings = DeskSettings(changes={"templates": TEMPLATES})
    for site in make_site(tmp_path, desk=settings):
        site.services.directory.import_people(
            [(None, json.dumps(PEOPLE))], format="json", name="people"
        )
        for agent in PEOPLE["agents"]:
            login = agent["login"]
            site.tokens[login] = site.services.tokens.create(
                f"{login}-token", "engineer", created_by="test", holder=login
            )[1]
        yield site


def mutate(site: Site, login: str, name: str, **arguments: Any) -> dict[str, Any]:
    """The result of mutation ``name`` made with ``login``'s token, selected with RESULT."""
    args = ", ".join(f"{k}: {literal(v)}" for k, v in arguments.items())
    result: dict[str, Any] = ask(site, login, f"mutation {{ {name}({args}) {{ {RESULT} }} }}")[name]
    return result


def changed(site: Site, login: str, name: str, **arguments: Any) -> dict[str, Any]:
    """The change a mutation that must succeed returns."""
    result = mutate(site, login, name, **arguments)
    assert result["__typename"] == "ChangePayload", result
    change: dict[str, Any] = result["change"]
    return change


def change(site: Site, change_id: str) -> dict[str, Any]:
    found: dict[str, Any] = ask(
        site, "alice", f"query($id: ID!) {{ change(id: $id) {{ {CHANGE} }} }}", id=change_id
    )["change"]
    return found


def create(site: Site, title: str, **fields: Any) -> dict[str, Any]:
    return changed(site, "alice", "createChange", input={"title": title, **fields})


def to_approval(site: Site, change_id: str) -> None:
    for step in ("assess", "request_approval"):
        changed(site, "alice", "transitionChange", changeId=change_id, step=step)


# (login, mutation, arguments, status after, the worklog texts the step adds)
WALK: list[tuple[str, str, dict[str, Any], str, list[str]]] = [
    ("alice", "transitionChange", {"step": "assess"}, "ASSESSMENT",
     ["assess: draft -> assessment", f"risk high: {'; '.join(RISK)}; needs 2 CAB approval(s)"]),
    ("alice", "updateChange", {"input": {"plannedStart": START, "plannedEnd": END, **PLANS}},
     "ASSESSMENT",
     ["planned_start: (none) -> 2031-03-04T22:00:00+00:00",
      "planned_end: (none) -> 2031-03-05T00:00:00+00:00",
      "implementation_plan: (none) -> flash the new image, reload",
      "backout_plan: (none) -> boot the old",
      f"risk high: {'; '.join(RISK)}; needs 2 CAB approval(s)"]),
    ("alice", "transitionChange", {"step": "request_approval"}, "APPROVAL",
     ["request_approval: assessment -> approval"]),
    ("bob", "approveChange", {"comment": "backup first"}, "APPROVAL",
     ["approved by bob (backup first)"]),
    ("carol", "approveChange", {}, "SCHEDULED",
     ["approved by carol", "schedule: approval -> scheduled (approved by bob, carol)"]),
    ("alice", "addChangeTask", {"title": "Back up the running config", "assignee": "dave"},
     "SCHEDULED", ["task 1 'Back up the running config' for dave added"]),
    ("dave", "transitionChange", {"step": "start"}, "IMPLEMENTING",
     ["start: scheduled -> implementing"]),
    ("dave", "updateChangeTask", {"number": 1, "status": Enum("DONE")}, "IMPLEMENTING",
     ["task 1 'Back up the running config': open -> done"]),
    ("dave", "transitionChange", {"step": "complete"}, "REVIEW",
     ["complete: implementing -> review"]),
    ("dave", "transitionChange", {"step": "close", "closeCode": "successful",
                                  "closeNotes": "no alarms"}, "CLOSED",
     ["close: review -> closed"]),
]  # fmt: skip

# Refused before the step of the same index: (login, mutation, arguments, what the
# result is: its type and the fields checked).
REFUSED: dict[int, list[tuple[str, str, dict[str, Any], dict[str, Any]]]] = {
    0: [
        ("alice", "transitionChange", {"step": "start"},
         {"__typename": "InvalidState", "status": "draft", "step": "start",
          "allowedSteps": ["assess", "cancel"]}),
        ("alice", "approveChange", {},
         {"__typename": "InvalidState",
          "message": "{id}: is draft: the CAB decides on changes in approval"}),
    ],
    1: [
        ("alice", "transitionChange", {"step": "request_approval"},
         {"__typename": "InvalidInput",
          "errors": [{"field": "plannedStart",
                      "message": "'request_approval' needs planned_start"}]}),
        ("alice", "updateChange", {"input": {"plannedStart": END, "plannedEnd": START}},
         {"__typename": "InvalidInput",
          "errors": [{"field": "input.plannedEnd", "message": "must be after planned_start"}]}),
    ],
    3: [
        ("alice", "approveChange", {},
         {"__typename": "InvalidState",
          "message": "alice: requested {id}: the requester cannot approve their own change"}),
        ("dave", "approveChange", {},
         {"__typename": "InvalidState",
          "message": "dave: only an active agent with the change_manager role may approve "
                     "or reject changes"}),
    ],
    4: [("bob", "approveChange", {},
         {"__typename": "InvalidState", "message": "bob: has already decided on {id}"})],
    7: [("dave", "transitionChange", {"step": "complete"},
         {"__typename": "InvalidState",
          "message": "{id}: has open tasks: 1 'Back up the running config'; finish or cancel "
                     "them"})],
    9: [("dave", "transitionChange", {"step": "close", "closeCode": "botched"},
         {"__typename": "InvalidInput",
          "errors": [{"field": "closeCode",
                      "message": "must be one of successful, successful_with_issues, "
                                 "not 'botched'"}]})],
}  # fmt: skip


def test_a_normal_change_walks_from_draft_to_closed(desk: Site) -> None:
    created = create(desk, "Upgrade core-1 firmware", ciIds=["core-1"])
    change_id = created["id"]
    assert (created["status"], created["type"], created["risk"]) == ("DRAFT", "NORMAL", "HIGH")
    assert (created["riskReasons"], created["approvalsRequired"]) == (RISK, 2)
    assert created["cis"] == [{"name": "core-1"}] and created["createdBy"] == "alice"
    assert created["allowedSteps"] == ["assess", "cancel"]
    seen = created["worklog"]
    assert [(e["actor"], e["kind"], e["text"]) for e in seen] == [
        ("alice", "CREATED", "Upgrade core-1 firmware"),
        ("alice", "CHANGED", f"risk high: {'; '.join(RISK)}; needs 2 CAB approval(s)"),
    ]

    for index, (login, name, arguments, status, texts) in enumerate(WALK):
        for who, refused, args, expected in REFUSED.get(index, []):
            result = mutate(desk, who, refused, changeId=change_id, **args)
            for key, value in expected.items():
                if isinstance(value, str):
                    value = value.format(id=change_id)
                assert result[key] == value, (refused, args, result)
            assert change(desk, change_id)["worklog"] == seen, (refused, "wrote the worklog")
        done = changed(desk, login, name, changeId=change_id, **arguments)
        assert done["status"] == status, name
        assert [e["text"] for e in done["worklog"][len(seen) :]] == texts, name
        assert {e["actor"] for e in done["worklog"][len(seen) :]} == {login}
        seen = done["worklog"]

    final = change(desk, change_id)
    assert (final["closeCode"], final["closeNotes"]) == ("successful", "no alarms")
    assert final["actualStart"] is not None and final["actualEnd"] is not None
    assert [(a["approver"], a["decision"], a["comment"]) for a in final["approvals"]] == [
        ("bob", "APPROVED", "backup first"),
        ("carol", "APPROVED", ""),
    ]
    assert final["tasks"] == [
        {"number": 1, "title": "Back up the running config", "assignee": "dave",
         "status": "DONE", "doneBy": "dave"}
    ]  # fmt: skip
    assert (final["allowedSteps"], final["conflicts"]) == ([], [])
    listed = ask(desk, "bob", '{ changes(filter: {ciId: "core-1"}) { id status } }')["changes"]
    assert listed == [{"id": change_id, "status": "CLOSED"}]


def test_a_rejection_sends_the_change_back_to_draft(desk: Site) -> None:
    created = create(
        desk, "Upgrade core-1", ciIds=["core-1"], plannedStart=START, plannedEnd=END, **PLANS
    )
    to_approval(desk, created["id"])
    empty = mutate(desk, "bob", "rejectChange", changeId=created["id"], reason=" ")
    assert empty["__typename"] == "InvalidInput"
    assert empty["errors"] == [{"field": "reason", "message": "must not be empty"}]
    done = changed(desk, "bob", "rejectChange", changeId=created["id"], reason="not in the sale")
    assert (done["status"], done["approvals"]) == ("DRAFT", [])
    assert [e["text"] for e in done["worklog"][-2:]] == [
        "rejected by bob (not in the sale)",
        "reject: approval -> draft (rejected by bob: not in the sale)",
    ]


CALENDAR = """query($start: DateTime!, $end: DateTime!) {
  changeCalendar(start: $start, end: $end) {
    start end
    entries { change { id number title status }
              conflicts { kind otherId other detail overridden overriddenBy } }
    freezeWindows { id name startsAt endsAt reason ciIds createdBy }
  }
}"""


def test_the_calendar_lists_overlapping_changes_and_a_freeze_window(desk: Site) -> None:
    first = create(
        desk, "Replace core-1 PSU", ciIds=["core-1"], plannedStart=START, plannedEnd=END, **PLANS
    )
    second = create(
        desk,
        "Patch core-1 ACLs",
        ciIds=["core-1"],
        plannedStart="2031-03-04T23:00:00Z",
        plannedEnd="2031-03-05T01:00:00Z",
        **PLANS,
    )
    elsewhere = create(  # another month: in no conflict, and outside the calendar
        desk, "Patch db-1", ciIds=["db-1"], plannedStart="2031-05-01T22:00:00Z",
        plannedEnd="2031-05-01T23:00:00Z",
    )  # fmt: skip
    freeze = ask(
        desk,
        "carol",
        "mutation($input: CreateFreezeWindowInput!) { createFreezeWindow(input: $input) { "
        "__typename ... on FreezeWindowPayload { freezeWindow { id name ciIds } } } }",
        input={"name": "Quarter close", "startsAt": "2031-03-04T23:30:00Z",
               "endsAt": "2031-03-08T00:00:00Z", "reason": "closing the books"},
    )["createFreezeWindow"]  # fmt: skip
    window = freeze["freezeWindow"]
    assert (window["name"], window["ciIds"]) == ("Quarter close", [])

    calendar = ask(
        desk, "alice", CALENDAR, start="2031-03-01T00:00:00Z", end="2031-04-01T00:00:00Z"
    )["changeCalendar"]
    assert calendar["start"].startswith("2031-03-01T00:00:00")
    entries = {e["change"]["id"]: e["conflicts"] for e in calendar["entries"]}
    assert list(entries) == [first["id"], second["id"]], "by number, the May change outside"
    assert elsewhere["id"] not in entries
    labels = {
        first["id"]: "change 1 'Replace core-1 PSU'",
        second["id"]: "change 2 'Patch core-1 ACLs'",
    }
    for mine, other in ((first, second), (second, first)):
        listed = [(c["kind"], c["otherId"], c["other"], c["detail"]) for c in entries[mine["id"]]]
        assert listed == [
            ("SAME_CI", other["id"], labels[other["id"]], "both change core-1"),
            ("SAME_SERVICE", other["id"], labels[other["id"]], "both affect Web shop"),
            ("FREEZE", window["id"], "freeze 'Quarter close'",
             "every CI is frozen (closing the books)"),
        ]  # fmt: skip
        # the change's own conflicts field says the same as the calendar
        own = change(desk, mine["id"])["conflicts"]
        assert [(c["kind"], c["otherId"]) for c in own] == [(k, o) for k, o, _, _ in listed]
    (shown,) = calendar["freezeWindows"]
    assert (shown["id"], shown["reason"], shown["createdBy"]) == (
        window["id"],
        "closing the books",
        "carol",
    )
    found = ask(
        desk, "bob", "{ freezeWindows(start: \"2031-03-06T00:00:00Z\") { id } }"
    )["freezeWindows"]  # fmt: skip
    assert found == [{"id": window["id"]}]

    # approval is refused while a conflict is open; overrides, each with a reason, clear it
    to_approval(desk, second["id"])
    blocked = mutate(desk, "bob", "approveChange", changeId=second["id"])
    assert blocked["__typename"] == "InvalidState" and blocked["ticketId"] == second["id"]
    assert blocked["message"].startswith(
        f"{second['id']}: conflicts with change 1 'Replace core-1 PSU': both change core-1; "
    )
    assert "freeze 'Quarter close': every CI is frozen" in blocked["message"]
    not_manager = mutate(
        desk, "dave", "overrideChangeConflict", changeId=second["id"], otherId=first["id"],
        reason="one team",
    )  # fmt: skip
    assert not_manager["__typename"] == "InvalidState"
    assert (
        "only an active agent with the change_manager role may override" in (not_manager["message"])
    )
    unknown = mutate(
        desk, "bob", "overrideChangeConflict", changeId=second["id"], otherId="chg-none",
        reason="x",
    )  # fmt: skip
    assert unknown["errors"] == [
        {"field": "otherId", "message": f"{second['id']} has no conflict with 'chg-none'"}
    ]
    for other in (first["id"], window["id"]):
        changed(desk, "bob", "overrideChangeConflict", changeId=second["id"], otherId=other,
                reason="same night, one team")  # fmt: skip
    overridden = change(desk, second["id"])["conflicts"]
    assert [(c["overridden"], c["overriddenBy"], c["overrideReason"]) for c in overridden] == [
        (True, "bob", "same night, one team")
    ] * 3
    # the first change's side is its own CAB's: still open there
    assert not any(c["overridden"] for c in change(desk, first["id"])["conflicts"])
    changed(desk, "bob", "approveChange", changeId=second["id"])
    assert changed(desk, "carol", "approveChange", changeId=second["id"])["status"] == "SCHEDULED"

    lifted = ask(
        desk, "carol", "mutation($id: ID!) { deleteFreezeWindow(id: $id) { __typename "
        "... on Deleted { id } ... on NotFound { field missing: id } } }", id=window["id"],
    )["deleteFreezeWindow"]  # fmt: skip
    assert lifted == {"__typename": "Deleted", "id": window["id"]}
    again = ask(
        desk, "carol", "mutation($id: ID!) { deleteFreezeWindow(id: $id) { __typename "
        "... on NotFound { field id } } }", id=window["id"],
    )["deleteFreezeWindow"]  # fmt: skip
    assert again == {"__typename": "NotFound", "field": "windowId", "id": window["id"]}
    assert [c["kind"] for c in change(desk, first["id"])["conflicts"]] == [
        "SAME_CI",
        "SAME_SERVICE",
    ]


RISK_QUERY = """query($cis: [ID!]!) { changeRisk(ciIds: $cis) {
  level score reasons services { name criticality fails singlePointsOfFailure } } }"""


def test_change_risk_previews_a_change_without_writing(desk: Site) -> None:
    core = ask(desk, "dave", RISK_QUERY, cis=["core-1"])["changeRisk"]
    assert (core["level"], core["score"], core["reasons"]) == ("HIGH", 51, RISK)
    assert core["services"] == [
        {"name": "Web shop", "criticality": 1, "fails": True,
         "singlePointsOfFailure": [desk.ids["core-1"]]}
    ]  # fmt: skip
    pair = ask(desk, "dave", RISK_QUERY, cis=["db-1", "dist-1"])["changeRisk"]
    assert (pair["level"], pair["score"]) == ("LOW", 10)
    assert [(s["name"], s["fails"]) for s in pair["services"]] == [("Web shop", False)]
    unknown = desk.gql(RISK_QUERY, "viewer", cis=["core-1", "no-such-ci"])
    (error,) = unknown["errors"]
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert error["extensions"]["field"] == "ciIds.1"
    assert ask(desk, "dave", "{ changes { id } }")["changes"] == []


def test_bad_input_is_a_union_member_and_writes_nothing(desk: Site) -> None:
    backwards = mutate(desk, "alice", "createChange", input={
        "title": "x", "ciIds": ["core-1"], "plannedStart": END, "plannedEnd": START})  # fmt: skip
    assert backwards["__typename"] == "InvalidInput"
    assert backwards["errors"] == [
        {"field": "input.plannedEnd", "message": "must be after planned_start"}
    ]
    unknown = mutate(
        desk, "alice", "createChange", input={"title": "x", "ciIds": ["core-1", "no-such-ci"]}
    )
    assert (unknown["__typename"], unknown["field"], unknown["id"]) == (
        "NotFound",
        "input.ciIds.1",
        "no-such-ci",
    )
    template = mutate(desk, "alice", "createChange", input={
        "ciIds": ["db-1"], "type": Enum("STANDARD"), "template": "nope"})  # fmt: skip
    assert template["errors"] == [
        {"field": "input.template",
         "message": "unknown template 'nope'; templates: restart-db-node"}
    ]  # fmt: skip
    riskier = mutate(desk, "alice", "createChange", input={
        "ciIds": ["core-1"], "type": Enum("STANDARD"), "template": "restart-db-node"})  # fmt: skip
    assert riskier["errors"] == [
        {"field": "input.ciIds",
         "message": "its risk is high, above the low template 'restart-db-node' allows: "
                    "raise a normal change"}
    ]  # fmt: skip
    missing = mutate(desk, "alice", "transitionChange", changeId="chg-none", step="assess")
    assert (missing["__typename"], missing["field"], missing["id"]) == (
        "NotFound",
        "changeId",
        "chg-none",
    )
    viewer = desk.gql(
        'mutation { createChange(input: {title: "x", ciIds: ["core-1"]}) { __typename } }',
        "viewer",
    )
    assert viewer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert ask(desk, "alice", "{ changes { id } }")["changes"] == []

    created = create(desk, "Upgrade core-1", ciIds=["core-1"])
    before = change(desk, created["id"])
    illegal = mutate(desk, "alice", "transitionChange", changeId=created["id"], step="close")
    assert illegal == {
        "__typename": "InvalidState",
        "message": f"ticket {created['id']} is draft: cannot close; allowed: assess, cancel",
        "ticketId": created["id"],
        "status": "draft",
        "step": "close",
        "allowedSteps": ["assess", "cancel"],
    }
    assert change(desk, created["id"]) == before


def test_a_standard_change_from_its_template_skips_the_cab(desk: Site) -> None:
    created = changed(desk, "bob", "createChange", input={
        "ciIds": ["db-1"], "type": Enum("STANDARD"), "template": "restart-db-node",
        "plannedStart": START, "plannedEnd": END})  # fmt: skip
    assert (created["title"], created["template"], created["risk"]) == (
        "Restart a database node",
        "restart-db-node",
        "LOW",
    )
    assert (created["approvalsRequired"], created["allowedSteps"]) == (0, ["schedule", "cancel"])
    for step, status in (("schedule", "SCHEDULED"), ("start", "IMPLEMENTING")):
        done = changed(desk, "bob", "transitionChange", changeId=created["id"], step=step)
        assert done["status"] == status


def test_an_emergency_change_needs_one_approval_whatever_its_risk(desk: Site) -> None:
    created = changed(desk, "alice", "createChange", input={
        "title": "Core-1 is dropping packets", "ciIds": ["core-1"], "type": Enum("EMERGENCY"),
        "plannedStart": START, "plannedEnd": END, **PLANS})  # fmt: skip
    assert (created["type"], created["risk"], created["approvalsRequired"]) == (
        "EMERGENCY",
        "HIGH",
        1,
    )
    to_approval(desk, created["id"])
    assert changed(desk, "bob", "approveChange", changeId=created["id"])["status"] == "SCHEDULED"


def test_a_cab_refusal_names_the_change(desk: Site) -> None:
    created = create(
        desk, "Upgrade core-1", ciIds=["core-1"], plannedStart=START, plannedEnd=END, **PLANS
    )
    to_approval(desk, created["id"])
    own = mutate(desk, "alice", "approveChange", changeId=created["id"])
    assert own["__typename"] == "InvalidState"
    assert own["ticketId"] == created["id"], "InvalidState.ticketId is the change, not alice"


def test_an_unknown_step_names_the_step_argument(desk: Site) -> None:
    created = create(desk, "Upgrade core-1", ciIds=["core-1"])
    unknown = mutate(desk, "alice", "transitionChange", changeId=created["id"], step="finish")
    assert unknown["__typename"] == "InvalidInput"
    assert [e["field"] for e in unknown["errors"]] == ["step"], "the argument is step"
