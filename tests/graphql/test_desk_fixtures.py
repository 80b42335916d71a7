"""The desk the desk's GraphQL and CLI tests run on: people (agents in two groups, a
customer contact), a small catalogue, routing rules and custom fields, loaded through the
desk's own directory service and settings; and the GraphQL selections they share.

The one test here checks that the fixture desk is what the other tests assume, so that a
change to it fails here first, with a clear reason, and not as a puzzle elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from servicegraph.bootstrap import Services
from servicegraph.config import DeskSettings
from tests.graphql.conftest import Site, make_site

PEOPLE: dict[str, list[dict[str, Any]]] = {
    "organisations": [{"id": "acme", "name": "Acme Corp", "domains": ["acme.example"]}],
    "agents": [
        {
            "login": "alice",
            "name": "Alice Martin",
            "email": "alice@desk.example",
            "groups": ["noc"],
        },
        {"login": "bob", "name": "Bob Petit", "email": "bob@desk.example", "groups": ["noc"]},
        {
            "login": "carol",
            "name": "Carol Roux",
            "email": "carol@desk.example",
            "groups": ["service-desk"],
        },
    ],
    "groups": [
        {"id": "noc", "name": "Network operations", "manager": "alice"},
        {"id": "service-desk", "name": "Service desk"},
    ],
    "contacts": [
        {"id": "dave", "name": "Dave Lenoir", "email": "dave@acme.example", "organisation": "acme"}
    ],
}

CATALOGUE: dict[str, list[dict[str, Any]]] = {
    "services": [{"id": "vpn", "name": "Remote access (VPN)", "owner_group": "noc"}],
    "categories": [
        {"path": "network", "name": "Network"},
        {"path": "network/vpn", "name": "VPN"},
        {"path": "hardware", "name": "Hardware"},
        {"path": "hardware/laptop", "name": "Laptops", "types": ["service_request"]},
    ],
}

# First match wins: a VPN outage goes to the NOC at least as P2, tagged; hardware requests
# to the service desk.
ROUTING: list[dict[str, Any]] = [
    {
        "name": "vpn-outage",
        "when": {"category": "network/vpn", "title_keywords": ["down", "outage"]},
        "then": {"group": "noc", "priority_floor": 2, "tags": ["vpn"]},
    },
    {
        "name": "hardware-requests",
        "when": {"type": "service_request", "category": "hardware"},
        "then": {"group": "service-desk", "tags": ["hardware"]},
    },
]

CUSTOM_FIELDS: dict[str, dict[str, Any]] = {
    "incident": {"site": {"type": "str", "max_length": 40}},
    "category:hardware/laptop": {
        "laptop_model": {"type": "choice", "choices": ["x1", "t14"], "required": True}
    },
}

# Mutation results: every failure member, and the ticket's fields the tests look at.
TICKET_FIELDS = """id number type channel title status priority priorityOverridden
    priorityReason prioritySetBy priorityFloor priorityCeiling impact urgency
    assignmentGroup assignee routedBy tags
    requester organisation service category customFields createdBy pendingReason
    resolutionCode resolution closeCode resolvedAt closedAt reopenCount allowedSteps
    affectedCiIds history { at actor kind text field old new }"""
RESULT = f"""__typename
    ... on MutationError {{ message }}
    ... on InvalidInput {{ errors {{ field message }} }}
    ... on NotFound {{ field id }}
    ... on InvalidState {{ ticketId status step allowedSteps }}
    ... on IncidentPayload {{ incident {{ {TICKET_FIELDS} }} }}"""


def desk_settings() -> DeskSettings:
    return DeskSettings(routing=ROUTING, custom_fields=CUSTOM_FIELDS)


def load_desk(services: Services) -> None:
    """The people and the catalogue, through the desk's directory service."""
    services.directory.import_people([(None, json.dumps(PEOPLE))], format="json", name="people")
    services.directory.import_catalogue(json.dumps(CATALOGUE), format="json", name="catalogue")


def agent_tokens(services: Services, role: str = "agent") -> dict[str, str]:
    """A token held by each agent: the holder is the actor the history names."""
    return {
        a["login"]: services.tokens.create(f"{a['login']}-token", role, created_by="test",
                                           holder=a["login"])[1]
        for a in PEOPLE["agents"]
    }  # fmt: skip


def desk_site(tmp_path: Path, **settings: Any) -> Iterator[Site]:
    """The small site, with the desk above and a token per agent in ``site.tokens``."""
    for site in make_site(tmp_path, desk=desk_settings(), **settings):
        load_desk(site.services)
        site.tokens.update(agent_tokens(site.services))
        yield site


def ask(site: Site, login: str, query: str, **variables: Any) -> dict[str, Any]:
    """The data of a query or mutation made with ``login``'s token; it must not fail."""
    body = site.gql(query, token=site.tokens[login], variables=variables)
    assert not body.get("errors"), body["errors"]
    data: dict[str, Any] = body["data"]
    return data


class Enum(str):
    """A GraphQL enum value among ``mutate``'s arguments (written bare: PHONE)."""


def literal(value: Any) -> str:
    """``value`` as a GraphQL literal: input objects with bare keys, enums bare."""
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return "{" + ", ".join(f"{k}: {literal(v)}" for k, v in value.items()) + "}"


def mutate(site: Site, login: str, name: str, **arguments: Any) -> dict[str, Any]:
    """The result of the mutation ``name`` with ``arguments``, made with ``login``'s
    token and selected with ``RESULT``."""
    args = ", ".join(f"{k}: {literal(v)}" for k, v in arguments.items())
    call = f"{name}({args})" if args else name
    result: dict[str, Any] = ask(site, login, f"mutation {{ {call} {{ {RESULT} }} }}")[name]
    return result


def test_the_fixture_desk_is_loaded(tmp_path: Path) -> None:
    for site in desk_site(tmp_path):
        directory = site.services.directory.directory()
        assert set(directory.agents) == {"alice", "bob", "carol"}
        assert [m.login for m in directory.group_members("noc")] == ["alice", "bob"]
        assert directory.contacts["dave"].organisation == "acme"
        catalogue = site.services.directory.catalogue()
        assert set(catalogue.categories) == {"network", "network/vpn", "hardware",
                                             "hardware/laptop"}  # fmt: skip
        policy = site.services.desk.tickets.policy
        assert [r.name for r in policy.routing.rules] == ["vpn-outage", "hardware-requests"]
        me = ask(site, "alice", "{ me { holder actor role } }")
        assert me["me"] == {"holder": "alice", "actor": "alice", "role": "AGENT"}
