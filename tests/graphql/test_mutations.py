"""Mutations through HTTP: CIs and relationships (reconciliation, source 'manual', actor
from the token), and the service-desk work on incidents, problems, known errors and changes,
with typed failures naming the field."""

from __future__ import annotations

import datetime as dt
from typing import Any

from servicegraph.cmdb.observation import CIObservation
from servicegraph.cmdb.reconciliation import batch_from
from servicegraph.ticketing.people import Agent, Group
from tests.graphql.conftest import Site

INVALID = "... on InvalidInput { errors { field message } }"
NOT_FOUND = "... on NotFound { field id }"
STATE = "... on InvalidState { ticketId }"
CONFLICTS = "... on Conflicts { conflicts { kind identifier ciId otherCiId } }"
RESULT = f"__typename ... on MutationError {{ message }} {INVALID} {NOT_FOUND}"
TICKET_RESULT = f"{RESULT} {STATE}"

CI_RESULT = (
    f"{{ {RESULT} {CONFLICTS} ... on CIPayload {{ keptBySource ci {{ id name class attributes "
)
CI_RESULT += "identifiers { kind value } history { actor source summary } } } }"


def create_ci(site: Site, fields: dict[str, Any], role: str = "engineer") -> dict[str, Any]:
    body = site.gql(
        f"mutation($in: CreateCIInput!) {{ createCi(input: $in) {CI_RESULT} }}",
        role,
        variables={"in": fields},
    )
    assert not body.get("errors"), body
    result: dict[str, Any] = body["data"]["createCi"]
    return result


def test_create_and_update_a_ci_through_reconciliation(site: Site) -> None:
    created = create_ci(
        site,
        {
            "class": "server",
            "name": "web-1",
            "identifiers": {"hostname": "web-1.hq.example.com", "serial_number": "SRV001"},
            "attributes": {"os": "debian", "cpu_count": 8},
            "lifecycle": "PLANNED",
        },
    )
    assert created["__typename"] == "CIPayload"
    ci = created["ci"]
    assert ci["attributes"] == {"os": "debian", "cpu_count": 8}
    assert {"kind": "serial_number", "value": "SRV001"} in ci["identifiers"]
    assert ci["history"][0]["actor"] == "engineer-token"
    assert ci["history"][0]["source"] == "manual"

    updated = site.data(
        f"""mutation($in: UpdateCIInput!) {{ updateCi(input: $in) {CI_RESULT} }}""",
        "engineer",
        variables={"in": {"id": ci["id"], "attributes": {"os": "ubuntu"}, "lifecycle": "ACTIVE"}},
    )["updateCi"]
    assert updated["ci"]["attributes"] == {"os": "ubuntu", "cpu_count": 8}
    assert updated["keptBySource"] == {}
    summaries = [h["summary"] for h in updated["ci"]["history"]]
    assert "attribute os: 'debian' -> 'ubuntu'" in summaries
    assert "lifecycle: 'planned' -> 'active'" in summaries


def test_source_precedence_is_reported(site: Site) -> None:
    # "model" belongs to SNMP first (default precedence); an import set it on core-1
    observation = CIObservation(
        ci_class="network_device", ci_id=site.ids["core-1"], attributes={"model": "C9500-SNMP"}
    )
    site.services.reconciler.apply(batch_from("snmp", [observation]))
    updated = site.data(
        f"""mutation($in: UpdateCIInput!) {{ updateCi(input: $in) {CI_RESULT} }}""",
        "engineer",
        variables={"in": {"id": site.ids["core-1"], "attributes": {"model": "typed-by-hand"}}},
    )["updateCi"]
    assert updated["ci"]["attributes"]["model"] == "C9500-SNMP"
    assert updated["keptBySource"] == {"model": "snmp"}


def test_ci_validation_names_the_field(site: Site) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"class": "toaster", "name": "t", "identifiers": {"hostname": "t"}}, "input.class"),
        ({"class": "server", "name": " ", "identifiers": {"hostname": "t"}}, "input.name"),
        (
            {
                "class": "server",
                "name": "t",
                "identifiers": {"hostname": "t"},
                "attributes": {"cpu_count": "many"},
            },
            "input.attributes.cpu_count",
        ),
        (
            {"class": "server", "name": "t", "identifiers": {"colour": "red"}},
            "input.identifiers.colour",
        ),
        (
            {"class": "server", "name": "dup", "identifiers": {"hostname": "db-1.hq.example.com"}},
            "input.identifiers.hostname",
        ),
        ({"class": "server", "name": "t", "attributes": [1, 2]}, "input.attributes"),
    ]
    for fields, field in cases:
        result = create_ci(site, fields)
        assert result["__typename"] == "InvalidInput", (fields, result)
        assert [e["field"] for e in result["errors"]] == [field], (fields, result)
    assert site.services.store.counts()["cis"] == 12, "nothing was written"
    missing = site.data(
        f"""mutation {{ updateCi(input: {{id: "ci-nope", name: "x"}}) {CI_RESULT} }}""", "engineer"
    )["updateCi"]
    assert missing["__typename"] == "NotFound" and missing["id"] == "ci-nope"


def test_a_ci_without_identifiers_gets_an_id(site: Site) -> None:
    created = create_ci(site, {"class": "application", "name": "billing"})
    assert created["__typename"] == "CIPayload"
    assert created["ci"]["id"].startswith("ci-")


def test_relationships(site: Site) -> None:
    app_ = create_ci(site, {"class": "application", "name": "billing", "key": "billing"})
    billing = app_["ci"]["id"]
    payload = "relationship { type from { name } to { name } attributes }"
    query = f"""mutation($in: RelationshipInput!) {{ createRelationship(input: $in) {{ {RESULT}
        ... on RelationshipPayload {{ {payload} }}
    }} }}"""
    done = site.data(
        query,
        "engineer",
        variables={"in": {"fromId": billing, "type": "DEPENDS_ON", "toId": site.ids["orders-db"]}},
    )["createRelationship"]
    assert done["relationship"]["to"]["name"] == "orders-db"
    impact = site.data('{ impact(ciId: "orders-db") { affected { ci { name } } } }')
    assert "billing" in {a["ci"]["name"] for a in impact["impact"]["affected"]}

    bad_type = site.data(
        query,
        "engineer",
        variables={"in": {"fromId": billing, "type": "LIKES", "toId": site.ids["db-1"]}},
    )["createRelationship"]
    assert bad_type["__typename"] == "InvalidInput"
    assert bad_type["errors"][0]["field"] == "input.type"
    not_allowed = site.data(
        query,
        "engineer",
        variables={"in": {"fromId": site.ids["hq"], "type": "RUNS_ON", "toId": billing}},
    )["createRelationship"]
    assert not_allowed["__typename"] == "InvalidInput", not_allowed
    unknown_end = site.data(
        query,
        "engineer",
        variables={"in": {"fromId": billing, "type": "DEPENDS_ON", "toId": "ci-x"}},
    )["createRelationship"]
    assert (unknown_end["__typename"], unknown_end["field"]) == ("NotFound", "input.toId")

    update = query.replace("createRelationship", "updateRelationship")
    missing = site.data(
        update,
        "engineer",
        variables={"in": {"fromId": billing, "type": "DEPENDS_ON", "toId": site.ids["db-1"]}},
    )["updateRelationship"]
    assert missing["__typename"] == "InvalidInput"
    changed = site.data(
        update,
        "engineer",
        **{
            "in": {
                "fromId": billing,
                "type": "DEPENDS_ON",
                "toId": site.ids["orders-db"],
                "attributes": {"redundancy_group": "db"},
            }
        },
    )["updateRelationship"]
    assert changed["relationship"]["attributes"] == {"redundancy_group": "db"}

    remove = """mutation($in: RelationshipKeyInput!) { removeRelationship(input: $in) {
        __typename ... on RemovedPayload { removed } } }"""
    key = {"fromId": billing, "type": "DEPENDS_ON", "toId": site.ids["orders-db"]}
    assert (
        site.data(remove, "engineer", variables={"in": key})["removeRelationship"]["removed"]
        is True
    )
    assert (
        site.data(remove, "engineer", variables={"in": key})["removeRelationship"]["removed"]
        is False
    )
    history = site.data('{ history(ciId: "billing") { summary actor } }')["history"]
    assert [h["summary"] for h in history][-1] == "relationship removed: -DEPENDS_ON-> orders-db"
    assert history[-1]["actor"] == "engineer-token"


INCIDENT = f"""{{ {TICKET_RESULT} ... on IncidentPayload {{ incident {{ id status acknowledgedAt
    acknowledgedBy assignee resolvedBy resolution resolvedAt problemId problem {{ id }}
    worklog {{ at actor kind text }} }} }} }}"""


def work(site: Site, mutation: str, role: str = "engineer", **args: Any) -> dict[str, Any]:
    params = ", ".join(f"${k}: {'ID!' if k.endswith('Id') else 'String!'}" for k in args)
    call = ", ".join(f"{k}: ${k}" for k in args)
    body = site.gql(f"mutation({params}) {{ {mutation}({call}) {INCIDENT} }}", role, **args)
    assert not body.get("errors"), body
    result: dict[str, Any] = body["data"][mutation]
    return result


def ops_agent(site: Site, login: str = "oscar") -> str:
    """An agent of the "ops" group: an incident is assigned to a person of a group."""
    agent = Agent(login=login, name=login.title(), email=f"{login}@example.com", groups=("ops",))
    site.services.directory.upsert_group(Group(id="ops", name="Operations"))
    site.services.directory.upsert_agent(agent)
    return login


def test_incident_work_and_its_state_rules(site: Site) -> None:
    site.alert("NodeDown", "db-1")
    incident_id = site.incident_of("db-1")["id"]
    oscar = ops_agent(site)

    ack = work(site, "acknowledgeIncident", incidentId=incident_id, note="looking")
    assert ack["incident"]["acknowledgedBy"] == "engineer-token"
    assert ack["incident"]["acknowledgedAt"] is not None
    again = work(site, "acknowledgeIncident", "admin", incidentId=incident_id)
    assert again["__typename"] == "InvalidState"
    assert "already acknowledged by engineer-token" in again["message"]

    assigned = work(site, "assignIncident", incidentId=incident_id, assignee=oscar)
    assert assigned["incident"]["assignee"] == oscar
    blank = work(site, "assignIncident", incidentId=incident_id, assignee="  ")
    assert blank["__typename"] == "InvalidInput" and blank["errors"][0]["field"] == "assignee"
    nobody = work(site, "assignIncident", incidentId=incident_id, assignee="nobody-such-user-xyz")
    assert nobody["__typename"] == "InvalidInput" and nobody["errors"][0]["field"] == "assignee"
    commented = work(site, "commentOnIncident", incidentId=incident_id, text="disk replaced")
    log = commented["incident"]["worklog"]
    # the incident had no group: it takes the agent's only one, then the agent, and the
    # lifecycle's assign step moves it from new to assigned; the refused ones left nothing
    assert [(w["kind"], w["actor"], w["text"]) for w in log] == [
        ("CREATED", "correlation", f"opened by monitoring: test/NodeDown on {site.ids['db-1']}"),
        ("ACKNOWLEDGED", "engineer-token", "looking"),
        ("ASSIGNED", "engineer-token", "group ops"),
        ("ASSIGNED", "engineer-token", "assigned to oscar"),
        ("TRANSITION", "engineer-token", "assign: oscar holds it"),
        ("COMMENT", "engineer-token", "disk replaced"),
    ]
    assert all(dt.datetime.fromisoformat(w["at"]).tzinfo for w in log)

    resolved = work(site, "resolveIncident", incidentId=incident_id, resolution="rebooted")
    incident = resolved["incident"]
    assert incident["status"] == "RESOLVED"
    assert (incident["resolvedBy"], incident["resolution"]) == ("engineer-token", "rebooted")
    twice = work(site, "resolveIncident", incidentId=incident_id, resolution="again")
    assert twice["__typename"] == "InvalidState" and "already resolved" in twice["message"]
    late_ack = work(site, "acknowledgeIncident", incidentId=incident_id)
    assert late_ack["__typename"] == "InvalidState"
    assert (
        work(site, "commentOnIncident", incidentId=incident_id, text="post-mortem")["__typename"]
        == "IncidentPayload"
    ), "comments are always allowed"
    unknown = work(site, "commentOnIncident", incidentId="inc-nope", text="x")
    assert unknown == {
        "__typename": "NotFound",
        "message": "no incident with id 'inc-nope'",
        "field": "incidentId",
        "id": "inc-nope",
    }


def test_correlation_keeps_the_work_done_by_people(site: Site) -> None:
    site.alert("NodeDown", "db-1")
    incident_id = site.incident_of("db-1")["id"]
    work(site, "assignIncident", incidentId=incident_id, assignee=ops_agent(site))
    site.alert("HighLatency", "db-1")  # correlation updates the same incident afterwards
    data = site.data(
        "query($id: ID!) { incident(id: $id) { assignee alertCount } }", id=incident_id
    )
    assert data["incident"] == {"assignee": "oscar", "alertCount": 2}


PROBLEM_FIELDS = """id number title status knownError workaround rootCi { name }
    incidents { id problemId } worklog { kind actor text }"""
PROBLEM = f"{{ {TICKET_RESULT} ... on ProblemPayload {{ problem {{ {PROBLEM_FIELDS} }} }} }}"


def test_problems_known_errors_and_links(site: Site) -> None:
    site.alert("NodeDown", "db-1")
    first = site.incident_of("db-1")["id"]
    site.alert("DiskFull", "core-1")
    second = site.incident_of("core-1")["id"]

    created = site.data(
        f"mutation($in: CreateProblemInput!) {{ createProblem(input: $in) {PROBLEM} }}",
        "problem_manager",
        variables={
            "in": {"title": "db-1 keeps failing", "rootCiId": "db-1", "incidentIds": [first]}
        },
    )["createProblem"]
    problem = created["problem"]
    assert problem["status"] == "OPEN" and problem["rootCi"]["name"] == "db-1"
    assert problem["incidents"] == [{"id": first, "problemId": problem["id"]}]

    linked = work(
        site, "linkIncidentToProblem", "problem_manager", incidentId=second, problemId=problem["id"]
    )
    assert linked["incident"]["problem"]["id"] == problem["id"]
    relink = work(
        site, "linkIncidentToProblem", "problem_manager", incidentId=second, problemId=problem["id"]
    )
    assert relink["__typename"] == "IncidentPayload", "linking again changes nothing"
    other = site.data(
        f"mutation($in: CreateProblemInput!) {{ createProblem(input: $in) {PROBLEM} }}",
        "problem_manager",
        variables={"in": {"title": "another", "incidentIds": [second]}},
    )["createProblem"]
    assert other["__typename"] == "InvalidState", "an incident has one problem"
    no_such = work(
        site, "linkIncidentToProblem", "problem_manager", incidentId=second, problemId="prb-x"
    )
    assert no_such["__typename"] == "NotFound" and no_such["field"] == "problemId"

    known = site.data(
        f"mutation($in: KnownErrorInput!) {{ createKnownError(input: $in) {PROBLEM} }}",
        "problem_manager",
        **{
            "in": {
                "problemId": problem["id"],
                "knownError": "firmware 1.2 leaks memory",
                "workaround": "restart weekly",
            }
        },
    )["createKnownError"]["problem"]
    assert known["status"] == "KNOWN_ERROR"
    assert (known["knownError"], known["workaround"]) == (
        "firmware 1.2 leaks memory",
        "restart weekly",
    )
    assert [w["kind"] for w in known["worklog"]] == ["CREATED", "LINKED", "KNOWN_ERROR"]

    fresh = site.data(
        f"mutation($in: KnownErrorInput!) {{ createKnownError(input: $in) {PROBLEM} }}",
        "problem_manager",
        **{
            "in": {
                "knownError": "NTP drift on core switches\nseen since 2026",
                "rootCiId": "core-1",
            }
        },
    )["createKnownError"]["problem"]
    assert fresh["title"] == "NTP drift on core switches" and fresh["status"] == "KNOWN_ERROR"
    empty = site.data(
        f"mutation($in: KnownErrorInput!) {{ createKnownError(input: $in) {PROBLEM} }}",
        "problem_manager",
        variables={"in": {"knownError": " "}},
    )["createKnownError"]
    assert empty["__typename"] == "InvalidInput"
    assert empty["errors"][0]["field"] == "input.knownError"
    bad_incident = site.data(
        f"mutation($in: CreateProblemInput!) {{ createProblem(input: $in) {PROBLEM} }}",
        "problem_manager",
        variables={"in": {"title": "x", "incidentIds": ["inc-nope"]}},
    )["createProblem"]
    assert bad_incident["field"] == "input.incidentIds.0"
    listed = site.data("{ problems(filter: {status: KNOWN_ERROR}) { number title } }")
    assert [p["title"] for p in listed["problems"]] == [
        "NTP drift on core switches",
        "db-1 keeps failing",
    ]


CHANGE = f"""{{ {RESULT} ... on ChangePayload {{ change {{ id number title status risk
    plannedStart plannedEnd createdBy cis {{ name }} worklog {{ kind actor }} }} }} }}"""


def test_changes(site: Site) -> None:
    created = site.data(
        f"mutation($in: CreateChangeInput!) {{ createChange(input: $in) {CHANGE} }}",
        "engineer",
        **{
            "in": {
                "title": "Upgrade core-1 firmware",
                "ciIds": ["core-1", "serial_number:FOC2001B1"],
                "plannedStart": "2026-12-01T22:00:00Z",
                "plannedEnd": "2026-12-01T23:00:00Z",
            }
        },
    )["createChange"]["change"]
    assert [c["name"] for c in created["cis"]] == ["core-1", "dist-1"]
    # a draft, whatever the client would like; the risk is the graph's (core-1 alone
    # takes Web shop down), not an input
    assert (created["status"], created["risk"], created["createdBy"]) == (
        "DRAFT",
        "HIGH",
        "engineer-token",
    )
    bad_window = site.data(
        f"mutation($in: CreateChangeInput!) {{ createChange(input: $in) {CHANGE} }}",
        "engineer",
        **{
            "in": {
                "title": "x",
                "ciIds": ["core-1"],
                "plannedStart": "2026-12-01T22:00:00Z",
                "plannedEnd": "2026-12-01T21:00:00Z",
            }
        },
    )["createChange"]
    assert bad_window["errors"][0]["field"] == "input.plannedEnd"
    unknown = site.data(
        f"mutation($in: CreateChangeInput!) {{ createChange(input: $in) {CHANGE} }}",
        "engineer",
        variables={"in": {"title": "x", "ciIds": ["core-1", "nope"]}},
    )["createChange"]
    assert unknown["__typename"] == "NotFound" and unknown["field"] == "input.ciIds.1"
    history = site.data(
        '{ history(ciId: "dist-1") { kind summary ... on ChangeEntry { change { number } } } }'
    )
    change_entries = [h for h in history["history"] if h["kind"] == "CHANGE_CREATED"]
    assert change_entries[0]["change"]["number"] == created["number"]
    listed = site.data('{ changes(filter: {ciId: "core-1"}) { title } }')["changes"]
    assert [c["title"] for c in listed] == ["Upgrade core-1 firmware"]
