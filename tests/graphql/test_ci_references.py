"""Every mutation names a CI as the queries do: an id, a source key (``db-1``,
``key:db-1``) or an identifier (``hostname:db-1.hq.example.com``), and a reference that
names no CI, or several, is refused naming the input field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from servicegraph.cmdb.observation import CIObservation
from servicegraph.cmdb.reconciliation import batch_from
from tests.graphql.conftest import Site

README = Path(__file__).resolve().parents[2] / "README.md"
FAILURE = (
    "__typename ... on MutationError { message } ... on NotFound { field id } "
    "... on InvalidInput { errors { field message } }"
)
CI = f"{{ {FAILURE} ... on CIPayload {{ ci {{ id name attributes }} }} }}"
REL = f"{{ {FAILURE} ... on RelationshipPayload {{ relationship {{ fromId toId attributes }} }} }}"
REMOVED = f"{{ {FAILURE} ... on RemovedPayload {{ removed }} }}"
PROBLEM = f"{{ {FAILURE} ... on ProblemPayload {{ problem {{ rootCiId }} }} }}"
CHANGE = f"{{ {FAILURE} ... on ChangePayload {{ change {{ ciIds }} }} }}"


def twin_key(site: Site) -> None:
    """The key ``twin`` names two CIs, one per source: it names no CI by itself."""
    for source, host in (("snmp", "twin-a.example.com"), ("zabbix", "twin-b.example.com")):
        obs = CIObservation("server", host, {"hostname": host}, key="twin")
        site.services.reconciler.apply(batch_from(source, [obs]))


def mutate(site: Site, name: str, input_type: str, value: dict[str, Any], shape: str) -> Any:
    return site.data(
        f"mutation($in: {input_type}!) {{ {name}(input: $in) {shape} }}",
        "admin",
        variables={"in": value},
    )[name]


def test_the_readme_update_ci_example_works(site: Site) -> None:
    blocks = re.findall(r"```graphql\n(.*?)```", README.read_text(), re.S)
    (example,) = [m for b in blocks for m in b.split("\n\n") if "updateCi(" in m]
    assert '{id: "db-1"' in example, "the README names the CI by its key"
    result = site.data(example, "engineer")["updateCi"]
    assert result["__typename"] == "CIPayload", result
    assert result["ci"]["attributes"]["owner"] == "dba-team"
    assert site.services.catalog.require(site.ids["db-1"]).attributes["owner"] == "dba-team"


def test_update_ci_takes_an_id_a_key_or_an_identifier(site: Site) -> None:
    twin_key(site)
    refs = {
        site.ids["db-2"]: "db-2",
        "db-2": "db-2",
        "key:db-3": "db-3",
        "hostname:db-1.hq.example.com": "db-1",
        "serial_number:foc2001c1": "acc-1",
    }
    for ref, key in refs.items():
        value = {"id": ref, "attributes": {"owner": ref}}
        done = mutate(site, "updateCi", "UpdateCIInput", value, CI)
        assert done["__typename"] == "CIPayload", (ref, done)
        assert done["ci"]["id"] == site.ids[key] and done["ci"]["attributes"]["owner"] == ref

    missing = mutate(site, "updateCi", "UpdateCIInput", {"id": "nope"}, CI)
    assert (missing["__typename"], missing["field"], missing["id"]) == (
        "NotFound",
        "input.id",
        "nope",
    )
    for bad in ("twin", "hostname:", " "):
        refused = mutate(site, "updateCi", "UpdateCIInput", {"id": bad}, CI)
        assert refused["__typename"] == "InvalidInput", (bad, refused)
        assert [e["field"] for e in refused["errors"]] == ["input.id"], (bad, refused)
    assert "2 CIs" in mutate(site, "updateCi", "UpdateCIInput", {"id": "twin"}, CI)["message"]


def test_relationship_mutations_name_their_ends_by_any_reference(site: Site) -> None:
    twin_key(site)
    site.data(
        'mutation { createCi(input: {class: "application", name: "billing", key: "billing"})'
        " { __typename } }",
        "admin",
    )
    billing = site.services.catalog.resolve("billing")
    ends = {"fromId": "key:billing", "type": "DEPENDS_ON", "toId": "orders-db"}
    created = mutate(site, "createRelationship", "RelationshipInput", ends, REL)
    assert created["__typename"] == "RelationshipPayload", created
    assert created["relationship"]["fromId"] == billing
    assert created["relationship"]["toId"] == site.ids["orders-db"]

    changed = mutate(
        site,
        "updateRelationship",
        "RelationshipInput",
        {
            "fromId": "billing",
            "type": "DEPENDS_ON",
            "toId": site.ids["orders-db"],
            "attributes": {"redundancy_group": "db"},
        },
        REL,
    )
    assert changed["relationship"]["attributes"] == {"redundancy_group": "db"}, changed

    for field, value in (("fromId", "nope"), ("toId", "nope")):
        for mutation, input_type, shape in (
            ("createRelationship", "RelationshipInput", REL),
            ("updateRelationship", "RelationshipInput", REL),
            ("removeRelationship", "RelationshipKeyInput", REMOVED),
        ):
            failed = mutate(site, mutation, input_type, {**ends, field: value}, shape)
            assert failed["__typename"] == "NotFound", (mutation, field, failed)
            assert failed["field"] == f"input.{field}", (mutation, failed)
        ambiguous = mutate(
            site, "createRelationship", "RelationshipInput", {**ends, field: "twin"}, REL
        )
        assert [e["field"] for e in ambiguous["errors"]] == [f"input.{field}"], ambiguous

    removed = mutate(
        site,
        "removeRelationship",
        "RelationshipKeyInput",
        {"fromId": "billing", "type": "DEPENDS_ON", "toId": "key:orders-db"},
        REMOVED,
    )
    assert removed == {"__typename": "RemovedPayload", "removed": True}


def test_ticket_mutations_refuse_a_ci_reference_naming_the_field(site: Site) -> None:
    twin_key(site)
    problem = mutate(
        site,
        "createProblem",
        "CreateProblemInput",
        {"title": "t", "rootCiId": "serial_number:FOC2001C1"},
        PROBLEM,
    )
    assert problem["problem"]["rootCiId"] == site.ids["acc-1"]
    cases: list[tuple[str, str, dict[str, Any], str, str]] = [
        (
            "createProblem",
            "CreateProblemInput",
            {"title": "t", "rootCiId": "twin"},
            PROBLEM,
            "input.rootCiId",
        ),
        (
            "createKnownError",
            "KnownErrorInput",
            {"knownError": "k", "rootCiId": "hostname:"},
            PROBLEM,
            "input.rootCiId",
        ),
        (
            "createChange",
            "CreateChangeInput",
            {"title": "c", "ciIds": ["core-1", "twin"]},
            CHANGE,
            "input.ciIds.1",
        ),
    ]
    for mutation, input_type, value, shape, field in cases:
        refused = mutate(site, mutation, input_type, value, shape)
        assert refused["__typename"] == "InvalidInput", (mutation, refused)
        assert [e["field"] for e in refused["errors"]] == [field], (mutation, refused)


def test_queries_name_the_argument_of_an_ambiguous_reference(site: Site) -> None:
    twin_key(site)
    body = site.gql('{ impact(ciId: "twin") { truncated } }')
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "ciId"}, error
    body = site.gql('{ history(ciId: "hostname:") { at } }')
    assert body["errors"][0]["extensions"]["field"] == "ciId", body
