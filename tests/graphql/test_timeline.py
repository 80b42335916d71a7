"""The CI timeline over GraphQL (HTTP, the real app): four fire/clear cycles of one alert,
a resolution written through `resolveIncident` that stays on `history` after correlation
reopens the incident, the reopen with its reason, CIs by name, and `timeline` pages."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.graphql.conftest import Site, make_site

RESOLUTION = "replaced the failed PSU"

ENTRY = """at kind summary actor source cursor ciId relatedCis { id name role ci { name } }
    ... on AlertEntry { alert { name } cycle { firedAt clearedAt incident { number } } }
    ... on IncidentEntry { incident { number status resolution } work { kind text }
        statusFrom statusTo field oldValue newValue resolution { resolvedBy text at } reason }
    ... on CIChangeEntry { changeKind otherCi { name } }"""


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[Site]:
    for s in make_site(tmp_path):
        # four cycles in a second would be flapping, which keeps an incident open
        correlator = s.services.correlator
        correlator.policy = dataclasses.replace(correlator.policy, flap_threshold=1000)
        yield s


def clears(site: Site) -> None:
    site.alert("NodeDown", "db-1", "resolved")
    site.services.correlator.drain()  # the hold time (0) expires in the next batch


def four_cycles(site: Site) -> str:
    """Fires and clears four times; resolved by hand (GraphQL) while cycle 2 fires."""
    site.alert("NodeDown", "db-1")
    incident_id = site.incident_of("db-1")["id"]
    clears(site)
    site.alert("NodeDown", "db-1")  # reopens
    body = site.gql(
        "mutation($id: ID!, $text: String!) { resolveIncident(incidentId: $id, "
        "resolution: $text) { __typename } }",
        "engineer",
        id=incident_id,
        text=RESOLUTION,
    )
    assert body["data"]["resolveIncident"]["__typename"] == "IncidentPayload", body
    clears(site)
    for _ in range(2):
        site.alert("NodeDown", "db-1")
        clears(site)
    return incident_id


def history(site: Site) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = site.data(f'{{ history(ciId: "db-1") {{ {ENTRY} }} }}')[
        "history"
    ]
    return entries


def test_history_shows_four_cycles_and_keeps_the_manual_resolution(site: Site) -> None:
    four_cycles(site)
    entries = history(site)
    fired = [e for e in entries if e["kind"] == "ALERT_FIRED"]
    cleared = [e for e in entries if e["kind"] == "ALERT_CLEARED"]
    assert len(fired) == len(cleared) == 4
    assert len({e["cycle"]["firedAt"] for e in fired}) == 4, "four cycles, not one alert"
    assert [e["cycle"] for e in fired] == [e["cycle"] for e in cleared]
    assert all(e["cycle"]["incident"] == {"number": 1} for e in fired)
    assert all(e["relatedCis"] == [{"id": e["ciId"], "name": "db-1", "role": "ALERT",
                                    "ci": {"name": "db-1"}}] for e in fired)  # fmt: skip

    incident = [e for e in entries if "incident" in e]
    manual = next(e for e in incident if e["actor"] == "engineer-token")
    assert manual["kind"] == "INCIDENT_RESOLVED"
    assert manual["resolution"]["resolvedBy"] == "engineer-token"
    assert manual["resolution"]["text"] == RESOLUTION
    # (the desk may add a resolution code: "resolved by engineer-token [solved]: ...")
    assert manual["summary"].startswith("incident INC1 resolved by engineer-token")
    assert manual["summary"].endswith(f": {RESOLUTION}")
    assert manual["incident"]["resolution"] is None, "the record lost it at the reopen"
    reopen = incident[incident.index(manual) + 1]
    assert reopen["kind"] == "INCIDENT_REOPENED" and reopen["actor"] == "correlation"
    assert (reopen["statusFrom"], reopen["statusTo"]) == ("RESOLVED", "NEW")
    assert reopen["reason"] == "test/NodeDown fired again on db-1"
    assert (reopen["field"], reopen["oldValue"], reopen["newValue"]) == (
        "status",
        "resolved",
        "new",
    )
    assert [e["kind"] for e in incident] == [
        "INCIDENT_OPENED",
        *["INCIDENT_RESOLVED", "INCIDENT_REOPENED"] * 3,
        "INCIDENT_RESOLVED",
    ]
    assert {r["name"] for r in incident[0]["relatedCis"]} == {"db-1"}
    assert incident[0]["relatedCis"][0]["role"] == "ROOT"
    changes = [e for e in entries if e["kind"] == "CI_CHANGE" and e["otherCi"]]
    assert {e["relatedCis"][0]["name"] for e in changes} == {"acc-1", "pg-cluster"}


def test_the_ci_s_history_field_is_the_same_timeline(site: Site) -> None:
    four_cycles(site)
    nested = site.data(f'{{ ci(id: "db-1") {{ history {{ {ENTRY} }} }} }}')["ci"]["history"]
    assert nested == history(site)


def test_timeline_pages_give_every_entry_once_in_order(site: Site) -> None:
    four_cycles(site)
    everything = [e["cursor"] for e in history(site)]
    query = """query($after: String, $first: Int!) { timeline(ciId: "db-1", first: $first,
        after: $after) { nodes { cursor kind } edges { cursor node { cursor } }
        pageInfo { hasNextPage endCursor } } }"""
    for first in (1, 4, len(everything)):
        seen: list[str] = []
        after = None
        while True:
            page = site.data(query, after=after, first=first)["timeline"]
            assert len(page["nodes"]) <= first
            assert [e["cursor"] for e in page["edges"]] == [n["cursor"] for n in page["nodes"]]
            assert [e["node"]["cursor"] for e in page["edges"]] == [
                e["cursor"] for e in page["edges"]
            ]
            seen += [n["cursor"] for n in page["nodes"]]
            if not page["pageInfo"]["hasNextPage"]:
                assert page["pageInfo"]["endCursor"] is None
                break
            assert page["pageInfo"]["endCursor"] == page["nodes"][-1]["cursor"]
            after = page["pageInfo"]["endCursor"]
        assert seen == everything, first


@pytest.mark.parametrize(
    ("arguments", "code", "field"),
    [
        ('ciId: "db-1", first: 0', "BAD_USER_INPUT", "first"),
        ('ciId: "db-1", first: 1001', "BAD_USER_INPUT", "first"),
        ('ciId: "db-1", after: "bogus"', "BAD_USER_INPUT", "after"),
        (
            'ciId: "db-1", since: "2026-01-02T00:00:00Z", until: "2026-01-01T00:00:00Z"',
            "BAD_USER_INPUT",
            "until",
        ),
        ('ciId: "no-such-ci"', "NOT_FOUND", "ciId"),
    ],
)
def test_bad_timeline_arguments_name_the_field(
    site: Site, arguments: str, code: str, field: str
) -> None:
    body = site.gql(f"{{ timeline({arguments}) {{ nodes {{ at }} }} }}")
    (error,) = body["errors"]
    assert (error["extensions"]["code"], error["extensions"].get("field")) == (code, field)
    assert body["data"] is None


def test_readers_only(site: Site) -> None:
    body = site.gql('{ timeline(ciId: "db-1") { nodes { at } } }', "integration")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert site.data('{ timeline(ciId: "db-1") { nodes { kind } } }', "viewer")["timeline"]
