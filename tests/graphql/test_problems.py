"""Problem management through GraphQL over HTTP: a problem walked from open to closed with
its fixing change (createProblem, transitionProblem, updateProblem, createKnownError,
linkFixingChange), refusals as typed failures naming the field or the steps allowed, the
known error offered on a later incident (Incident.knownErrors) until it is resolved, and
the problem permission."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servicegraph.cmdb.model import new_id
from servicegraph.ticketing.change_model import Change, ChangeRisk, ChangeStatus
from tests.graphql.conftest import Site
from tests.graphql.test_desk_fixtures import desk_site

FAILURE = """__typename ... on MutationError { message }
    ... on InvalidInput { errors { field message } } ... on NotFound { field id }
    ... on InvalidState { ticketId status step allowedSteps }"""
PROBLEM = f"""{{ {FAILURE} ... on ProblemPayload {{ problem {{ id number status assignee
    rootCause fix knownError workaround fixingChangeId resolvedAt closedAt resolution
    allowedSteps resolutionProposal rootCi {{ name }}
    history {{ kind field old new text }} }} }} }}"""
INCIDENT_ERRORS = """query($id: ID!) { incident(id: $id) { id knownErrors { why knownError
    workaround problem { id status } } } }"""


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[Site]:
    yield from desk_site(tmp_path)


def problem_mutation(site: Site, name: str, args: str, **variables: Any) -> dict[str, Any]:
    """The result of the mutation ``name(args)`` made with a problem manager's token,
    selected with ``PROBLEM``."""
    declared = ", ".join(f"${k}: {kind}" for k, kind in _types(variables).items())
    head = f"mutation({declared})" if declared else "mutation"
    query = f"{head} {{ {name}({args}) {PROBLEM} }}"
    data = site.data(query, "problem_manager", variables=variables)
    result: dict[str, Any] = data[name]
    return result


# the GraphQL types of the variables these tests use; any other is a String
_KINDS = {
    "new": "CreateProblemInput!",
    "known": "KnownErrorInput!",
    "changes": "ProblemChangesInput!",
    "id": "ID!",
    "changeid": "ID!",
    "step": "String!",
}


def _types(variables: dict[str, Any]) -> dict[str, str]:
    return {name: _KINDS.get(name, "String") for name in variables}


def step(site: Site, problem_id: str, name: str, **fields: str) -> dict[str, Any]:
    extra = "".join(f", {k}: ${k}" for k in fields)
    return problem_mutation(
        site, "transitionProblem", f"problemId: $id, step: $step{extra}", id=problem_id,
        step=name, **fields,
    )  # fmt: skip


def save_change(site: Site, change_id: str | None = None, **fields: Any) -> str:
    """A change saved as the change service would (that service is another part's)."""
    now = dt.datetime.now(dt.UTC)
    with site.services.tickets.unit() as unit:
        change = Change(
            id=change_id or new_id("chg"),
            number=fields.pop("number", None) or unit.next_change_number(),
            title="Upgrade db-1",
            status=fields.pop("status", ChangeStatus.DRAFT),
            risk=ChangeRisk.LOW,
            created_at=now,
            updated_at=now,
            created_by="carol",
            ci_ids=[site.ids["db-1"]],
            **fields,
        )
        unit.save_change(change)
    return change.id


def test_a_problem_walks_from_open_to_closed_and_its_known_error_is_offered(site: Site) -> None:
    new = {"title": "db-1 reboots", "rootCiId": "db-1"}
    created = problem_mutation(site, "createProblem", "input: $new", new=new)["problem"]
    problem_id = created["id"]
    assert (created["status"], created["rootCi"], created["allowedSteps"]) == (
        "OPEN", {"name": "db-1"}, ["investigate", "record_known_error", "resolve", "cancel"],
    )  # fmt: skip

    refused = step(site, problem_id, "close")
    assert refused["__typename"] == "InvalidState"
    assert (refused["ticketId"], refused["status"], refused["step"]) == (
        problem_id,
        "open",
        "close",
    )
    assert refused["allowedSteps"] == ["investigate", "record_known_error", "resolve", "cancel"]
    nobody = step(site, problem_id, "investigate")
    assert nobody["__typename"] == "InvalidInput"
    assert nobody["errors"] == [{"field": "assignee", "message": "'investigate' needs assignee"}]
    ghost = step(site, problem_id, "investigate", assignee="ghost")
    assert ghost["errors"] == [{"field": "assignee", "message": "no agent with login 'ghost'"}]
    unknown = step(site, problem_id, "finish")
    assert unknown["errors"][0]["field"] == "step"

    investigating = step(site, problem_id, "investigate", assignee="bob")["problem"]
    assert (investigating["status"], investigating["assignee"]) == ("INVESTIGATING", "bob")
    edited = problem_mutation(
        site, "updateProblem", "problemId: $id, changes: $changes", id=problem_id,
        changes={"rootCause": "firmware 1.2 leaks memory", "fix": "upgrade to 1.3"},
    )["problem"]  # fmt: skip
    assert (edited["rootCause"], edited["fix"]) == ("firmware 1.2 leaks memory", "upgrade to 1.3")
    bad = problem_mutation(
        site, "updateProblem", "problemId: $id, changes: $changes", id=problem_id,
        changes={"rootCiId": "no-such-ci"},
    )  # fmt: skip
    assert (bad["__typename"], bad["field"]) == ("NotFound", "changes.rootCiId")
    known = problem_mutation(
        site, "createKnownError", "input: $known",
        known={"problemId": problem_id, "knownError": "memory leak", "workaround": "restart"},
    )["problem"]  # fmt: skip
    assert (known["status"], known["allowedSteps"]) == ("KNOWN_ERROR", ["resolve", "cancel"])

    site.alert("NodeDown", "db-1")  # a later incident on the same root CI
    incident_id = site.incident_of("db-1")["id"]
    offered = site.data(INCIDENT_ERRORS, id=incident_id)["incident"]["knownErrors"]
    assert offered == [
        {
            "why": "same root CI db-1",
            "knownError": "memory leak",
            "workaround": "restart",
            "problem": {"id": problem_id, "status": "KNOWN_ERROR"},
        }
    ]

    missing = problem_mutation(
        site, "linkFixingChange", "problemId: $id, changeId: $changeid", id=problem_id,
        changeid="chg-nope",
    )  # fmt: skip
    assert (missing["__typename"], missing["field"], missing["id"]) == (
        "NotFound", "changeId", "chg-nope",
    )  # fmt: skip
    change_id = save_change(site)
    linked = problem_mutation(
        site, "linkFixingChange", "problemId: $id, changeId: $changeid", id=problem_id,
        changeid=change_id,
    )["problem"]  # fmt: skip
    assert (linked["fixingChangeId"], linked["resolutionProposal"]) == (change_id, None)
    save_change(site, change_id, number=1, status=ChangeStatus.CLOSED, close_code="successful")
    proposed = site.data(
        "query($id: ID!) { problem(id: $id) { resolutionProposal } }", id=problem_id
    )["problem"]["resolutionProposal"]
    assert proposed.startswith("change 1 'Upgrade db-1' closed successfully on ")
    assert proposed.endswith(" UTC: resolve the problem")

    resolved = step(site, problem_id, "RESOLVED", resolution="firmware 1.3")["problem"]
    assert (resolved["status"], resolved["resolution"]) == ("RESOLVED", "firmware 1.3")
    assert resolved["resolvedAt"] is not None and resolved["resolutionProposal"] is None
    (still,) = site.data(INCIDENT_ERRORS, id=incident_id)["incident"]["knownErrors"]
    assert still["problem"]["status"] == "RESOLVED"  # offered, as a fix that may not hold
    assert still["why"].endswith("a new incident may mean the fix did not hold")
    link = site.data(
        """mutation($i: ID!, $p: ID!) { linkIncidentToProblem(incidentId: $i, problemId: $p) {
        __typename ... on InvalidState { message ticketId } } }""",
        "problem_manager",
        i=incident_id,
        p=problem_id,
    )["linkIncidentToProblem"]
    assert link == {
        "__typename": "InvalidState",
        "message": f"{problem_id}: is resolved and takes no new incidents",
        "ticketId": problem_id,
    }

    closed = step(site, problem_id, "close")["problem"]
    assert (closed["status"], closed["allowedSteps"]) == ("CLOSED", [])
    assert closed["closedAt"] is not None
    assert [(h["kind"], h["field"], h["old"], h["new"]) for h in closed["history"]] == [
        ("CREATED", None, None, None),
        ("TRANSITION", "status", "open", "investigating"),
        ("ASSIGNED", "assignee", None, "bob"),
        ("CHANGED", "root_cause", "", "firmware 1.2 leaks memory"),
        ("CHANGED", "fix", "", "upgrade to 1.3"),
        ("KNOWN_ERROR", "status", "investigating", "known_error"),
        ("LINKED", "fixing_change_id", None, change_id),
        ("TRANSITION", "status", "known_error", "resolved"),
        ("CHANGED", "resolution", "", "firmware 1.3"),
        ("TRANSITION", "status", "resolved", "closed"),
    ]


def test_problem_writes_need_the_problem_permission(site: Site) -> None:
    body = site.gql('mutation { createProblem(input: {title: "x"}) { __typename } }', "engineer")
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "FORBIDDEN", "required": "manage_problems"}
    body = site.gql(
        'mutation { transitionProblem(problemId: "prb-x", step: "close") { __typename } }',
        "agent",
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert site.data("{ problems { id } }") == {"problems": []}, "nothing was written"
