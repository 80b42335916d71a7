"""People and the service catalogue through GraphQL over HTTP: imports, queries with
nesting and cursors, upserts and their typed failures, group managers' limits, and the
holder of a token as the actor."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.graphql.conftest import Site

AGENTS = """login,name,email,groups,roles
alice,Alice,alice@desk.example,noc,agent|group_manager
bob,Bob,bob@desk.example,noc,
carol,Carol,carol@desk.example,dba,
"""
GROUPS = json.dumps(  # the groups with their manager, who must come in the same import
    {
        "groups": [
            {"id": "noc", "name": "Network operations", "manager": "alice"},
            {"id": "dba", "name": "Databases", "email": "dba@desk.example"},
        ],
        "agents": [
            {
                "login": "alice",
                "name": "Alice",
                "email": "alice@desk.example",
                "groups": ["noc"],
                "roles": ["agent", "group_manager"],
            }
        ],
    }
)
IMPORT = """
mutation($text: String!, $kind: PeopleKind, $dry: Boolean! = false) {
  importPeople(input: {text: $text, kind: $kind, dryRun: $dry}) {
    __typename
    ... on ImportPayload { dryRun changed version counts { kind created updated unchanged } }
    ... on InvalidInput { message errors { field message } }
  }
}"""
CATALOGUE = """
services:
  - id: shop
    name: Web shop
    ci_id: web-shop
    owner_group: noc
    request_types: [incident]
    defaults: {group: noc, priority: 2, custom_fields: {site: hq}}
categories:
  - {path: network, name: Network, owner_group: noc}
  - {path: network/vpn, name: VPN, types: [service_request]}
"""
IMPORT_CATALOGUE = """
mutation($text: String!) {
  importCatalogue(input: {text: $text}) {
    __typename
    ... on ImportPayload { changed counts { kind created } }
    ... on InvalidInput { errors { field message } }
  }
}"""


def counts(payload: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {c["kind"]: (c["created"], c["updated"], c["unchanged"]) for c in payload["counts"]}


def staff(site: Site) -> None:
    """noc (alice manages it: alice, bob) and dba (carol)."""
    groups = site.data(IMPORT, text=GROUPS)["importPeople"]
    assert groups["__typename"] == "ImportPayload", groups
    agents = site.data(IMPORT, text=AGENTS, kind="AGENTS")["importPeople"]
    assert agents["__typename"] == "ImportPayload", agents


def token(site: Site, role: str, holder: str | None) -> str:
    name = f"{role}-{holder or 'nobody'}"
    return site.services.tokens.create(name, role, created_by="test", holder=holder)[1]


# -- imports -----------------------------------------------------------------------------


def test_import_people_counts_then_a_replay_changes_nothing(site: Site) -> None:
    first = site.data(IMPORT, text=GROUPS)["importPeople"]
    assert counts(first)["groups"] == (2, 0, 0)
    assert counts(first)["agents"] == (1, 0, 0)
    agents = site.data(IMPORT, text=AGENTS, kind="AGENTS")["importPeople"]
    assert counts(agents) == {
        "organisations": (0, 0, 0),
        "agents": (2, 0, 1),
        "groups": (0, 0, 0),
        "contacts": (0, 0, 0),
    }
    again = site.data(IMPORT, text=AGENTS, kind="AGENTS")["importPeople"]
    assert again["changed"] == 0 and counts(again)["agents"] == (0, 0, 3)
    assert again["version"] == agents["version"]


def test_a_dry_run_writes_nothing(site: Site) -> None:
    dry = site.data(IMPORT, text=GROUPS, dry=True)["importPeople"]
    assert dry["dryRun"] and dry["changed"] == 3
    assert site.data("{ groups { id } }")["groups"] == []


def test_a_bad_import_lists_line_and_field_and_writes_nothing(site: Site) -> None:
    staff(site)
    text = "login,name,email,groups\ndan,Dan,not-mail,noc\neve,Eve,eve@x.example,nowhere\n"
    result = site.data(IMPORT, text=text, kind="AGENTS")["importPeople"]
    assert result["__typename"] == "InvalidInput"
    fields = [e["field"] for e in result["errors"]]
    assert fields == ["input.text:2.email"]  # references are checked once every row parses
    text = "login,name,email,groups\neve,Eve,eve@x.example,nowhere\n"
    result = site.data(IMPORT, text=text, kind="AGENTS")["importPeople"]
    assert [e["field"] for e in result["errors"]] == ["input.text:2.groups"]
    assert "no group 'nowhere'" in result["errors"][0]["message"]
    logins = [a["login"] for a in site.data("{ agents { login } }")["agents"]]
    assert logins == ["alice", "bob", "carol"]


def test_a_csv_import_needs_its_kind(site: Site) -> None:
    result = site.data(IMPORT, text=AGENTS)["importPeople"]
    assert result["__typename"] == "InvalidInput"
    assert "say which kind" in result["errors"][0]["message"]


# -- queries ---------------------------------------------------------------------------------


def test_agents_and_groups_nest_through_the_directory(site: Site) -> None:
    staff(site)
    data = site.data(
        """{
          groups { id name manager { login } members { login groups { id } } }
          agents(group: "noc") { login roles active }
          agent(login: "carol") { name groups { name email } }
          nobody: agent(login: "ghost") { login }
        }"""
    )
    noc, dba = sorted(data["groups"], key=lambda g: g["id"], reverse=True)
    assert noc["manager"] == {"login": "alice"}
    assert [m["login"] for m in noc["members"]] == ["alice", "bob"]
    assert dba["members"] == [{"login": "carol", "groups": [{"id": "dba"}]}]
    assert data["agents"][0] == {
        "login": "alice",
        "roles": ["AGENT", "GROUP_MANAGER"],
        "active": True,
    }
    assert data["agent"]["groups"] == [{"name": "Databases", "email": "dba@desk.example"}]
    assert data["nobody"] is None


def test_contacts_page_by_cursor_each_exactly_once(site: Site) -> None:
    contacts = [{"id": f"c{n:03}", "name": f"User {n:03}"} for n in range(130)]
    text = json.dumps({"contacts": contacts})
    site.data(IMPORT, text=text)
    seen: list[str] = []
    after = None
    query = """query($after: String) {
      contacts(first: 40, after: $after) {
        nodes { id } edges { cursor node { id } } pageInfo { hasNextPage endCursor }
      }
    }"""
    for _ in range(10):
        page = site.data(query, after=after)["contacts"]
        seen.extend(n["id"] for n in page["nodes"])
        assert [e["node"]["id"] for e in page["edges"]] == [n["id"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert page["edges"][-1]["cursor"] == after
    assert seen == [c["id"] for c in contacts]


def test_contacts_search_and_their_organisation(site: Site) -> None:
    text = json.dumps(
        {
            "organisations": [{"id": "acme", "name": "ACME", "domains": ["acme.com"]}],
            "contacts": [
                {"id": "c1", "name": "Zoe", "email": "zoe@acme.com"},
                {"id": "c2", "name": "Adam", "email": "adam@other.org", "organisation": "acme"},
                {"id": "c3", "name": "Mia", "email": "mia@other.org"},
            ],
        }
    )
    site.data(IMPORT, text=text)
    data = site.data(
        """{
          byMail: contacts(search: "ACME.COM") { nodes { id organisation { id } } }
          byOrg: contacts(organisation: "acme") { nodes { id organisationId } }
          one: contact(idOrEmail: "MIA@other.org") { id organisation { id } }
          organisations(search: "acme.com") { id domains }
        }"""
    )
    assert data["byMail"]["nodes"] == [{"id": "c1", "organisation": {"id": "acme"}}]
    assert data["byOrg"]["nodes"] == [{"id": "c2", "organisationId": "acme"}]
    assert data["one"] == {"id": "c3", "organisation": None}
    assert data["organisations"] == [{"id": "acme", "domains": ["acme.com"]}]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ('{ contacts(after: "garbage") { nodes { id } } }', "after"),
        ("{ contacts(first: 0) { nodes { id } } }", "first"),
        ('{ agents(group: "nope") { login } }', "group"),
        ('{ categories(parent: "nope") { path } }', "parent"),
    ],
)
def test_bad_query_arguments_name_the_field(site: Site, query: str, field: str) -> None:
    body = site.gql(query)
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}


# -- the catalogue --------------------------------------------------------------------------


def test_import_catalogue_then_query_it_with_its_ci_and_tree(site: Site) -> None:
    staff(site)
    result = site.data(IMPORT_CATALOGUE, text=CATALOGUE)["importCatalogue"]
    assert result["__typename"] == "ImportPayload", result
    assert {c["kind"]: c["created"] for c in result["counts"]} == {
        "services": 1,
        "categories": 2,
    }
    data = site.data(
        """{
          services { id ciId ci { name class } ownerGroup { id } requestTypes
                     defaults { group priority customFields } active }
          categories { path children { path parentPath types } types ownerGroupId }
        }"""
    )
    (shop,) = data["services"]
    assert shop["ci"] == {"name": "Web shop", "class": "business_service"}
    assert shop["ciId"] == site.ids["web-shop"]
    assert shop["ownerGroup"] == {"id": "noc"}
    assert shop["requestTypes"] == ["INCIDENT"]
    assert shop["defaults"] == {"group": "noc", "priority": 2, "customFields": {"site": "hq"}}
    assert data["categories"] == [
        {
            "path": "network",
            "children": [
                {"path": "network/vpn", "parentPath": "network", "types": ["SERVICE_REQUEST"]}
            ],
            "types": ["INCIDENT", "SERVICE_REQUEST"],
            "ownerGroupId": "noc",
        }
    ]


@pytest.mark.parametrize(
    ("text", "field", "needle"),
    [
        (CATALOGUE.replace("web-shop", "db-1"), "catalogue.services[0].ciId", "not a business"),
        (CATALOGUE.replace("owner_group: noc\n", "owner_group: ghosts\n"), "ownerGroup", "ghosts"),
        ("services: [{id: x, name: X, colour: red}]", "catalogue.services[0].colour", "unknown"),
        ("services: [unclosed", "input.text", "not valid YAML"),
    ],
)
def test_a_bad_catalogue_is_invalid_input_naming_the_field(
    site: Site, text: str, field: str, needle: str
) -> None:
    staff(site)
    result = site.data(IMPORT_CATALOGUE, text=text)["importCatalogue"]
    assert result["__typename"] == "InvalidInput"
    assert field in [e["field"] for e in result["errors"]], result
    assert any(needle in e["message"] for e in result["errors"])
    assert site.data("{ services { id } }")["services"] == []


# -- upserts ---------------------------------------------------------------------------------

UPSERT_AGENT = """
mutation($input: AgentInput!) {
  upsertAgent(input: $input) {
    __typename
    ... on AgentPayload { agent { login name groupIds roles active } }
    ... on InvalidInput { errors { field message } }
    ... on NotPermittedError { field message }
  }
}"""


def agent_input(login: str, **fields: Any) -> dict[str, Any]:
    return {"login": login, "name": login.title(), "email": f"{login}@desk.example", **fields}


def test_upsert_agent_keeps_roles_and_replaces_groups(site: Site) -> None:
    staff(site)
    result = site.data(UPSERT_AGENT, input=agent_input("alice", groups=["dba"]))["upsertAgent"]
    assert result["agent"] == {
        "login": "alice",
        "name": "Alice",
        "groupIds": ["dba"],
        "roles": ["AGENT", "GROUP_MANAGER"],
        "active": True,
    }
    members = site.data('{ agents(group: "noc") { login } }')["agents"]
    assert members == [{"login": "bob"}]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "nope"}, "input.email"),
        ({"login": "has space"}, "input.login"),
        ({"groups": ["ghosts"]}, "input.groups"),
    ],
)
def test_a_bad_agent_is_invalid_input_and_nothing_is_written(
    site: Site, fields: dict[str, Any], field: str
) -> None:
    staff(site)
    result = site.data(UPSERT_AGENT, input={**agent_input("dan"), **fields})["upsertAgent"]
    assert result["__typename"] == "InvalidInput"
    assert [e["field"] for e in result["errors"]] == [field]
    assert len(site.data("{ agents { login } }")["agents"]) == 3


def test_contacts_and_organisations_upserted_with_typed_failures(site: Site) -> None:
    org = site.data(
        """mutation { upsertOrganisation(input: {id: "acme", name: "ACME", domains: ["ACME.com"]})
           { ... on OrganisationPayload { organisation { id domains } } } }"""
    )
    assert org["upsertOrganisation"]["organisation"] == {"id": "acme", "domains": ["acme.com"]}
    query = """mutation($input: ContactInput!) { upsertContact(input: $input) {
        __typename
        ... on ContactPayload { contact { id email vip organisation { id } } }
        ... on InvalidInput { errors { field } } } }"""
    made = site.data(query, input={"id": "c1", "name": "Zoe", "email": "zoe@acme.com", "vip": True})
    assert made["upsertContact"]["contact"] == {
        "id": "c1",
        "email": "zoe@acme.com",
        "vip": True,
        "organisation": {"id": "acme"},
    }
    taken = site.data(query, input={"id": "c2", "name": "Copy", "email": "ZOE@acme.com"})
    assert taken["upsertContact"] == {
        "__typename": "InvalidInput",
        "errors": [{"field": "input.email"}],
    }
    bad = site.data(query, input={"id": "c3", "name": "X", "organisation": "globex"})
    assert bad["upsertContact"]["errors"] == [{"field": "input.organisation"}]


# -- who may -------------------------------------------------------------------------------


def test_a_group_manager_edits_only_the_people_of_their_groups(site: Site) -> None:
    staff(site)
    alice = token(site, "group_manager", "alice")
    ok = site.gql(UPSERT_AGENT, token=alice, input=agent_input("dan", groups=["noc"]))
    assert ok["data"]["upsertAgent"]["agent"]["groupIds"] == ["noc"]
    outside = site.gql(UPSERT_AGENT, token=alice, input=agent_input("eve", groups=["dba"]))
    refused = outside["data"]["upsertAgent"]
    assert refused["__typename"] == "NotPermittedError"
    assert refused["field"] == "input.groups" and "dba" in refused["message"]
    carol = site.gql('mutation { deactivateAgent(login: "carol") { __typename } }', token=alice)
    assert carol["data"]["deactivateAgent"]["__typename"] == "NotPermittedError"
    bob = site.gql(
        'mutation { deactivateAgent(login: "bob") { ... on AgentPayload { agent { active } } } }',
        token=alice,
    )
    assert bob["data"]["deactivateAgent"]["agent"] == {"active": False}
    imported = site.gql(IMPORT, token=alice, text=GROUPS)
    assert imported["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_a_group_manager_token_without_an_agent_manages_nothing(site: Site) -> None:
    staff(site)
    result = site.data(UPSERT_AGENT, "group_manager", input=agent_input("dan", groups=["noc"]))
    assert result["upsertAgent"]["__typename"] == "NotPermittedError"
    assert "--holder" in result["upsertAgent"]["message"]


def test_agents_read_but_do_not_manage(site: Site) -> None:
    staff(site)
    bob = token(site, "agent", "bob")
    assert site.gql("{ agents { login } }", token=bob)["data"]["agents"]
    body = site.gql(UPSERT_AGENT, token=bob, input=agent_input("dan", groups=["noc"]))
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_the_holder_is_the_actor_and_a_deactivated_agent_s_token_stops(site: Site) -> None:
    staff(site)
    bob = token(site, "agent", "bob")
    me = site.gql("{ me { name role holder actor } }", token=bob)["data"]["me"]
    assert me == {"name": "agent-bob", "role": "AGENT", "holder": "bob", "actor": "bob"}
    site.alert("HighLatency", "web-shop")
    incident = site.incident_of("web-shop")
    comment = """mutation($id: ID!) { commentOnIncident(incidentId: $id, text: "looking") {
        ... on IncidentPayload { incident { worklog { actor kind text } } } } }"""
    body = site.gql(comment, token=bob, id=incident["id"])
    worklog = body["data"]["commentOnIncident"]["incident"]["worklog"]
    assert {"actor": "bob", "kind": "COMMENT", "text": "looking"} in worklog
    site.data('mutation { deactivateAgent(login: "bob") { __typename } }')
    headers = {"Authorization": f"Bearer {bob}"}
    gone = site.client.post("/graphql", json={"query": "{ me { name } }"}, headers=headers)
    assert gone.status_code == 401, "the gate no longer knows the token"
