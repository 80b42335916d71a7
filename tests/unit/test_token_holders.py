"""API tokens that belong to an agent or an integration: the holder is checked when the
token is made, is the actor of what the token does, and an agent's token stops working
when the agent is deactivated."""

from __future__ import annotations

import pytest

from servicegraph.access.model import ROLE_PERMISSIONS, Permission, Role
from servicegraph.access.service import TokenService
from servicegraph.bootstrap import Services
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.people import Agent, Group


@pytest.fixture
def staffed(services: Services) -> Services:
    services.directory.upsert_group(Group("noc", "NOC"))
    services.directory.upsert_agent(Agent("alice", "Alice", "alice@desk.example", groups=("noc",)))
    services.directory.upsert_agent(
        Agent("gone", "Gone", "gone@desk.example", groups=("noc",), active=False)
    )
    return services


def test_a_token_held_by_an_agent_acts_as_the_agent(staffed: Services) -> None:
    token, secret = staffed.tokens.create("alice-laptop", "agent", created_by="t", holder="alice")
    assert token.holder == "alice"
    principal = staffed.tokens.authenticate(secret)
    assert principal is not None
    assert (principal.name, principal.actor, principal.agent) == ("alice-laptop", "alice", "alice")
    assert staffed.tokens.find("alice-laptop").holder == "alice"


def test_without_a_holder_the_tokens_name_is_the_actor(staffed: Services) -> None:
    _, secret = staffed.tokens.create("ci-bot", "engineer", created_by="t")
    principal = staffed.tokens.authenticate(secret)
    assert principal is not None and principal.actor == "ci-bot" and principal.agent is None


def test_an_integration_holder_is_not_an_agent(staffed: Services) -> None:
    _, secret = staffed.tokens.create(
        "grafana", "integration", created_by="t", holder=" integration:grafana-prod "
    )
    principal = staffed.tokens.authenticate(secret)
    assert principal is not None
    assert principal.actor == "integration:grafana-prod" and principal.agent is None


@pytest.mark.parametrize(
    ("holder", "needle"),
    [
        ("nobody", "no agent with login 'nobody'"),
        ("gone", "agent 'gone' is inactive"),
        ("integration:", "name the integration"),
        ("integration:has space", "name the integration"),
    ],
)
def test_a_bad_holder_is_refused_and_no_token_is_made(
    staffed: Services, holder: str, needle: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        staffed.tokens.create("t1", "agent", created_by="t", holder=holder)
    assert info.value.field == "holder"
    assert needle in str(info.value)
    assert staffed.tokens.all() == []


def test_deactivating_the_agent_stops_the_token_and_reactivating_restores_it(
    staffed: Services,
) -> None:
    _, secret = staffed.tokens.create("alice-cli", "agent", created_by="t", holder="alice")
    staffed.directory.deactivate_agent("alice")
    assert staffed.tokens.authenticate(secret) is None
    alice = staffed.directory.directory().agents["alice"]
    staffed.directory.upsert_agent(Agent(alice.login, alice.name, alice.email, groups=alice.groups))
    assert staffed.tokens.authenticate(secret) is not None


def test_without_a_directory_no_token_can_name_an_agent(staffed: Services) -> None:
    bare = TokenService(staffed.tokens.store)
    with pytest.raises(ValidationFailed) as info:
        bare.create("t2", "agent", created_by="t", holder="alice")
    assert info.value.field == "holder"
    _, secret = staffed.tokens.create("t3", "agent", created_by="t", holder="alice")
    assert bare.authenticate(secret) is None, "an agent's token needs the directory"


def test_desk_roles_and_their_permissions() -> None:
    agent, manager = ROLE_PERMISSIONS[Role.AGENT], ROLE_PERMISSIONS[Role.GROUP_MANAGER]
    assert {Permission.READ, Permission.WORK_INCIDENTS} == agent
    assert manager == agent | {Permission.MANAGE_DESK}
    assert Permission.MANAGE_PEOPLE in ROLE_PERMISSIONS[Role.ADMIN]
    assert Permission.MANAGE_PEOPLE not in manager
    assert Permission.EDIT_CMDB not in manager, "desk roles do not edit the graph"
