"""Security: tokens with roles on every mutation, ingestion tokens cannot query, hashed
tokens, revocation, the CLI, and the depth / complexity / alias limits."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from graphql import get_introspection_query
from typer.testing import CliRunner

from servicegraph.access.model import ROLE_PERMISSIONS, Permission, Role
from servicegraph.cli import app
from tests.graphql.conftest import ROLES, Site

MUTATIONS: dict[str, tuple[Permission, str]] = {
    "createCi": (
        Permission.EDIT_CMDB,
        'createCi(input: {class: "application", name: "x"}) { __typename }',
    ),
    "updateCi": (Permission.EDIT_CMDB, 'updateCi(input: {id: "db-1"}) { __typename }'),
    # an ERP sync reconciles into the graph, a write-back reads it for the ERP
    "erpSync": (Permission.EDIT_CMDB, 'erpSync(source: "nosuch") { __typename }'),
    "erpWriteBack": (Permission.EDIT_CMDB, 'erpWriteBack(source: "nosuch") { __typename }'),
    "createRelationship": (
        Permission.EDIT_CMDB,
        'createRelationship(input: {fromId: "a", type: "DEPENDS_ON", toId: "b"}) { __typename }',
    ),
    "updateRelationship": (
        Permission.EDIT_CMDB,
        'updateRelationship(input: {fromId: "a", type: "DEPENDS_ON", toId: "b"}) { __typename }',
    ),
    "removeRelationship": (
        Permission.EDIT_CMDB,
        'removeRelationship(input: {fromId: "a", type: "DEPENDS_ON", toId: "b"}) { __typename }',
    ),
    "acknowledgeIncident": (
        Permission.WORK_INCIDENTS,
        'acknowledgeIncident(incidentId: "inc-x") { __typename }',
    ),
    "assignIncident": (
        Permission.WORK_INCIDENTS,
        'assignIncident(incidentId: "inc-x", assignee: "me") { __typename }',
    ),
    "commentOnIncident": (
        Permission.WORK_INCIDENTS,
        'commentOnIncident(incidentId: "inc-x", text: "hi") { __typename }',
    ),
    "resolveIncident": (
        Permission.WORK_INCIDENTS,
        'resolveIncident(incidentId: "inc-x", resolution: "done") { __typename }',
    ),
    "linkIncidentToProblem": (
        Permission.MANAGE_PROBLEMS,
        'linkIncidentToProblem(incidentId: "inc-x", problemId: "prb-x") { __typename }',
    ),
    "createProblem": (
        Permission.MANAGE_PROBLEMS,
        'createProblem(input: {title: ""}) { __typename }',
    ),
    "createKnownError": (
        Permission.MANAGE_PROBLEMS,
        'createKnownError(input: {knownError: ""}) { __typename }',
    ),
    "createChange": (
        Permission.MANAGE_CHANGES,
        'createChange(input: {title: "", ciIds: []}) { __typename }',
    ),
    "updateChange": (
        Permission.MANAGE_CHANGES,
        'updateChange(changeId: "chg-x", input: {}) { __typename }',
    ),
    "transitionChange": (
        Permission.MANAGE_CHANGES,
        'transitionChange(changeId: "chg-x", step: "assess") { __typename }',
    ),
    "approveChange": (
        Permission.MANAGE_CHANGES,
        'approveChange(changeId: "chg-x") { __typename }',
    ),
    "rejectChange": (
        Permission.MANAGE_CHANGES,
        'rejectChange(changeId: "chg-x", reason: "no") { __typename }',
    ),
    "overrideChangeConflict": (
        Permission.MANAGE_CHANGES,
        'overrideChangeConflict(changeId: "chg-x", otherId: "chg-y", reason: "ok") { __typename }',
    ),
    "addChangeTask": (
        Permission.MANAGE_CHANGES,
        'addChangeTask(changeId: "chg-x", title: "t") { __typename }',
    ),
    "updateChangeTask": (
        Permission.MANAGE_CHANGES,
        'updateChangeTask(changeId: "chg-x", number: 1) { __typename }',
    ),
    "createFreezeWindow": (
        Permission.MANAGE_CHANGES,
        'createFreezeWindow(input: {name: "f", startsAt: "2026-12-01T00:00:00Z", '
        'endsAt: "2026-12-02T00:00:00Z"}) { __typename }',
    ),
    "deleteFreezeWindow": (
        Permission.MANAGE_CHANGES,
        'deleteFreezeWindow(id: "frz-x") { __typename }',
    ),
    "updateProblem": (
        Permission.MANAGE_PROBLEMS,
        'updateProblem(problemId: "prb-x", changes: {}) { __typename }',
    ),
    "transitionProblem": (
        Permission.MANAGE_PROBLEMS,
        'transitionProblem(problemId: "prb-x", step: "close") { __typename }',
    ),
    "linkFixingChange": (
        Permission.MANAGE_PROBLEMS,
        'linkFixingChange(problemId: "prb-x", changeId: "chg-x") { __typename }',
    ),
    "importPeople": (
        Permission.MANAGE_PEOPLE,
        'importPeople(input: {text: "", kind: AGENTS, dryRun: true}) { __typename }',
    ),
    "importCatalogue": (
        Permission.MANAGE_DESK,
        'importCatalogue(input: {text: "{}", dryRun: true}) { __typename }',
    ),
    "upsertAgent": (
        Permission.MANAGE_DESK,
        'upsertAgent(input: {login: "", name: "", email: ""}) { __typename }',
    ),
    "deactivateAgent": (Permission.MANAGE_DESK, 'deactivateAgent(login: "x") { __typename }'),
    "upsertGroup": (
        Permission.MANAGE_DESK,
        'upsertGroup(input: {id: "", name: ""}) { __typename }',
    ),
    "upsertContact": (
        Permission.MANAGE_DESK,
        'upsertContact(input: {id: "", name: ""}) { __typename }',
    ),
    "upsertOrganisation": (
        Permission.MANAGE_DESK,
        'upsertOrganisation(input: {id: "", name: ""}) { __typename }',
    ),
    "createIncident": (
        Permission.WORK_INCIDENTS,
        'createIncident(input: {title: ""}) { __typename }',
    ),
    "createServiceRequest": (
        Permission.WORK_INCIDENTS,
        'createServiceRequest(input: {title: ""}) { __typename }',
    ),
    "transitionTicket": (
        Permission.WORK_INCIDENTS,
        'transitionTicket(id: "inc-x", step: "start") { __typename }',
    ),
    "assignTicket": (Permission.WORK_INCIDENTS, 'assignTicket(id: "inc-x") { __typename }'),
    "updateTicket": (
        Permission.WORK_INCIDENTS,
        'updateTicket(id: "inc-x", changes: {}) { __typename }',
    ),
    "overridePriority": (
        Permission.WORK_INCIDENTS,
        'overridePriority(id: "inc-x", priority: 1, reason: "x") { __typename }',
    ),
    "commentOnTicket": (
        Permission.WORK_INCIDENTS,
        'commentOnTicket(id: "inc-x", text: "hi") { __typename }',
    ),
    "linkTickets": (
        Permission.WORK_INCIDENTS,
        'linkTickets(sourceId: "inc-x", kind: RELATED, targetId: "inc-y") { __typename }',
    ),
    "unlinkTickets": (
        Permission.WORK_INCIDENTS,
        'unlinkTickets(sourceId: "inc-x", kind: RELATED, targetId: "inc-y") { __typename }',
    ),
    "setAffectedCis": (
        Permission.WORK_INCIDENTS,
        'setAffectedCis(id: "inc-x", ciIds: []) { __typename }',
    ),
}


def test_every_mutation_is_declared_here(site: Site) -> None:
    fields = site.data("{ __schema { mutationType { fields { name } } } }")
    names = {f["name"] for f in fields["__schema"]["mutationType"]["fields"]}
    assert names == set(MUTATIONS)


# mutations that refuse bad input with a GraphQL error (and its code), not a typed payload
ANSWERED_WITH_ERRORS = {"erpSync", "erpWriteBack"}


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_every_mutation_checks_the_role(site: Site, role: str) -> None:
    for name, (permission, call) in MUTATIONS.items():
        body = site.gql(f"mutation {{ {call} }}", role)
        allowed = permission in ROLE_PERMISSIONS[Role(role)]
        if allowed and name in ANSWERED_WITH_ERRORS:
            (error,) = body["errors"]  # past the role check: the source is unknown
            assert error["extensions"]["code"] == "BAD_USER_INPUT", (name, role, body)
        elif allowed:
            assert not body.get("errors"), (name, role, body)
            assert body["data"][name]["__typename"]  # a payload or a typed failure
        else:
            (error,) = body["errors"]
            assert error["extensions"]["code"] == "FORBIDDEN", (name, role, body)
            assert error["extensions"]["required"] == permission.value
            assert f"'{role}'" in error["message"]


def test_roles_read_and_integration_tokens_cannot_query(site: Site) -> None:
    for role in ("viewer", "engineer", "problem_manager", "admin"):
        assert site.data("{ cis(first: 1) { nodes { id } } }", role)["cis"]["nodes"]
    queries = [
        "{ cis(first: 1) { nodes { id } } }",
        '{ ci(id: "db-1") { id } }',
        '{ impact(ciId: "db-1") { truncated } }',
        '{ history(ciId: "db-1") { at } }',
        "{ incidents { id } }",
        "{ me { name role permissions } }",
        "{ __schema { types { name } } }",
    ]
    for query in queries:
        body = site.gql(query, "integration")
        assert not any((body["data"] or {}).values()), "nothing is read"
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", query
    me = site.data("{ me { name role permissions } }", "viewer")["me"]
    assert me == {"name": "viewer-token", "role": "VIEWER", "permissions": ["READ"]}


def test_without_or_with_a_bad_token(site: Site) -> None:
    body = site.gql('{ ci(id: "db-1") { id } }', role=None)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert site.gql("{ me { name } }", role=None)["errors"][0]["extensions"]["code"] == (
        "UNAUTHENTICATED"
    )
    for bad in ("nonsense", "sgt_000000000000_" + "x" * 43, site.tokens["viewer"] + "x"):
        response = site.client.post(
            "/graphql",
            json={"query": "{ me { name } }"},
            headers={"Authorization": f"Bearer {bad}"},
        )
        assert response.status_code == 401, bad
        assert response.headers["www-authenticate"] == "Bearer"


def test_revoked_tokens_stop_working(site: Site) -> None:
    _, secret = site.services.tokens.create("temp", "viewer", created_by="test")
    assert site.gql("{ me { name } }", token=secret)["data"]["me"]["name"] == "temp"
    site.services.tokens.revoke("temp")
    response = site.client.post(
        "/graphql", json={"query": "{ me { name } }"}, headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 401


def test_tokens_are_stored_hashed(site: Site) -> None:
    secret = site.tokens["admin"]
    path = site.services.settings.sqlite_file
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, name, role, secret_sha256 FROM api_token").fetchall()
        dump = "\n".join(conn.iterdump())
    assert len(rows) == len(ROLES)
    assert secret not in dump and secret.split("_", 2)[2] not in dump
    assert all(len(r[3]) == 64 for r in rows)


def test_webhooks_accept_integration_api_tokens(site: Site) -> None:
    event = {"name": "DiskFull", "labels": {"host": "db-1.hq.example.com"}}

    def post(role: str | None) -> Any:
        headers = {"Authorization": f"Bearer {site.tokens[role]}"} if role else {}
        return site.client.post("/api/v1/events", json=event, headers=headers)

    assert post("integration").status_code == 202
    assert post("admin").status_code == 202
    viewer = post("viewer")
    assert viewer.status_code == 403 and "integration token" in viewer.json()["error"]
    missing = post(None)
    assert missing.status_code == 401
    assert "servicegraph token create --role integration" in missing.json()["error"]


def test_depth_complexity_and_alias_limits(site: Site) -> None:
    deep = '{ ci(id: "db-1") { ' + "neighbours { " * 13 + "id" + " }" * 14 + " }"
    body = site.gql(deep)
    assert body["data"] is None
    messages = [e["message"] for e in body["errors"]]
    assert any("exceeds maximum operation depth of 12" in m for m in messages), messages

    wide = """{ cis(first: 500) { nodes { relationships { from { relationships { to {
        relationships { to { name } } } } } } } } }"""
    body = site.gql(wide)
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["extensions"]["complexity"] > error["extensions"]["limit"] == 20_000
    variable = """query($n: Int) { cis(first: $n) { nodes { relationships { from {
        relationships { to { name } } } } } } }"""
    assert site.gql(variable, n=500)["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert not site.gql(variable, n=5).get("errors"), "page sizes in variables count as given"
    small = "{ cis(first: 100) { nodes { relationships { from { name } to { name } } } } }"
    assert not site.gql(small).get("errors")

    aliases = "{ " + " ".join(f'a{n}: ci(id: "db-1") {{ id }}' for n in range(31)) + " }"
    body = site.gql(aliases)
    assert body["data"] is None and "aliases" in body["errors"][0]["message"]

    introspection = site.gql(get_introspection_query(descriptions=True))
    assert not introspection.get("errors"), "GraphiQL's introspection passes the limits"


def test_graphiql_is_served(site: Site) -> None:
    page = site.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


def test_token_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICEGRAPH_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    created = runner.invoke(app, ["token", "create", "--role", "engineer", "--name", "ci-bot"])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[0]
    assert secret.startswith("sgt_")
    listed = runner.invoke(app, ["token", "list", "--json"])
    assert '"name": "ci-bot"' in listed.stdout and secret not in listed.stdout
    assert '"revoked_at": null' in listed.stdout
    again = runner.invoke(app, ["token", "create", "--role", "viewer", "--name", "ci-bot"])
    assert again.exit_code == 1 and "exists" in again.output
    wrong = runner.invoke(app, ["token", "create", "--role", "root", "--name", "x"])
    assert wrong.exit_code == 1 and "unknown role" in wrong.output
    revoked = runner.invoke(app, ["token", "revoke", "ci-bot"])
    assert revoked.exit_code == 0, revoked.output
    assert '"revoked_at": null' not in runner.invoke(app, ["token", "list", "--json"]).stdout
    assert runner.invoke(app, ["token", "revoke", "nobody"]).exit_code == 1
