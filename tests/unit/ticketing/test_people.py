"""Agents, groups, organisations and contacts, and the directory's assignment checks."""

from __future__ import annotations

from typing import Any

import pytest

from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.ticketing.people import (
    Agent,
    Contact,
    DeskRole,
    Directory,
    Group,
    Organisation,
)


def _agent(login: str, *groups: str, active: bool = True) -> Agent:
    return Agent(login, login.title(), f"{login}@desk.example", groups=groups, active=active)


@pytest.fixture
def directory() -> Directory:
    return Directory.build(
        agents=[
            _agent("alice", "noc"),
            _agent("bob", "noc", "dba"),
            _agent("carol"),
            _agent("dave", "noc", active=False),
        ],
        groups=[
            Group("noc", "Network operations", manager="alice", members=("carol",)),
            Group("dba", "Databases"),
            Group("empty", "Nobody yet"),
        ],
        organisations=[
            Organisation("acme", "ACME", domains=("acme.com", "@Labs.Acme.com")),
            Organisation("initech", "Initech", domains=("initech.example",)),
        ],
        contacts=[
            Contact("c1", "Wile E.", email="Wile@acme.com", organisation="acme", vip=True),
            Contact("c2", "Peter", email="peter@initech.example"),
            Contact("c3", "Phone only", phone="+41 44 000 00 00"),
        ],
    )


# --- records refuse bad values and name the field ----------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Agent("", "A", "a@x.org"), "login"),
        (lambda: Agent("a b", "A", "a@x.org"), "login"),
        (lambda: Agent("a;b", "A", "a@x.org"), "login"),
        (lambda: Agent("a", " ", "a@x.org"), "name"),
        (lambda: Agent("a", "A" * 201, "a@x.org"), "name"),
        (lambda: Agent("a", "A", "not-an-address"), "email"),
        (lambda: Agent("a", "A", "a@x"), "email"),
        (lambda: Agent("a", "A", "a@x.org", roles=("wizard",)), "roles"),  # type: ignore[arg-type]
        (lambda: Agent("a", "A", "a@x.org", groups="noc"), "groups"),  # type: ignore[arg-type]
        (lambda: Agent("a", "A", "a@x.org", groups=("n o c",)), "groups"),
        (lambda: Agent("a", "A", "a@x.org", active="yes"), "active"),  # type: ignore[arg-type]
        (lambda: Group("", "G"), "id"),
        (lambda: Group("g", ""), "name"),
        (lambda: Group("g", "G", email="team"), "email"),
        (lambda: Group("g", "G", manager="x y"), "manager"),
        (lambda: Group("g", "G", members=("ok", "")), "members"),
        (lambda: Organisation("o", "O", domains=("not a domain",)), "domains"),
        (lambda: Organisation("o", "O", domains="acme.com"), "domains"),  # type: ignore[arg-type]
        (lambda: Contact("c", "C", email="c@"), "email"),
        (lambda: Contact("c", "C", organisation="a|b"), "organisation"),
        (lambda: Contact("c", "C", vip=1), "vip"),  # type: ignore[arg-type]
    ],
)
def test_records_name_the_bad_field(make: Any, field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        make()
    assert info.value.field == field


def test_records_are_normalised() -> None:
    agent = Agent(" ann ", " Ann ", " ann@x.org ", roles=("ADMIN", "agent", "admin"))  # type: ignore[arg-type]
    assert (agent.login, agent.name, agent.email) == ("ann", "Ann", "ann@x.org")
    assert agent.roles == (DeskRole.ADMIN, DeskRole.AGENT)
    org = Organisation("o", "O", domains=("@ACME.com", "acme.com"))
    assert org.domains == ("acme.com",)
    assert Group("g", "G", email="").email is None
    assert Contact("c", "C", email=" ", organisation="").organisation is None


# --- building the directory ---------------------------------------------------------


def test_membership_is_the_union_of_both_sides(directory: Directory) -> None:
    assert directory.groups["noc"].members == ("alice", "bob", "carol", "dave")
    assert directory.agents["carol"].groups == ("noc",)
    assert directory.agents["bob"].groups == ("dba", "noc")


@pytest.mark.parametrize(
    ("records", "item", "field"),
    [
        ({"agents": [_agent("a"), _agent("a")]}, "agent 'a'", "login"),
        ({"groups": [Group("g", "G"), Group("g", "H")]}, "group 'g'", "id"),
        ({"agents": [_agent("a", "ghost")]}, "agent 'a'", "groups"),
        ({"groups": [Group("g", "G", members=("ghost",))]}, "group 'g'", "members"),
        ({"groups": [Group("g", "G", manager="ghost")]}, "group 'g'", "manager"),
        ({"contacts": [Contact("c", "C", organisation="ghost")]}, "contact 'c'", "organisation"),
        (
            {"contacts": [Contact("c", "C", email="x@y.org"), Contact("d", "D", email="X@y.org")]},
            "contact 'd'",
            "email",
        ),
        (
            {
                "organisations": [
                    Organisation("o", "O", domains=("a.org",)),
                    Organisation("p", "P", domains=("a.org",)),
                ]
            },
            "organisation 'p'",
            "domains",
        ),
        (
            {"organisations": [Organisation("o", "O"), Organisation("o", "P")]},
            "organisation 'o'",
            "id",
        ),
        ({"contacts": [Contact("c", "C"), Contact("c", "D")]}, "contact 'c'", "id"),
    ],
)
def test_build_refuses_bad_references(records: dict[str, Any], item: str, field: str) -> None:
    with pytest.raises(ValidationErrors) as info:
        Directory.build(**records)
    assert [(e.item, e.field) for e in info.value.errors] == [(item, field)]


def test_build_lists_every_problem() -> None:
    with pytest.raises(ValidationErrors) as info:
        Directory.build(
            agents=[_agent("a", "x", "y")],
            contacts=[Contact("c", "C", organisation="z")],
        )
    assert [e.field for e in info.value.errors] == ["groups", "groups", "organisation"]


# --- lookups the ticket service uses ------------------------------------------------


@pytest.mark.parametrize(
    ("login", "field", "message"),
    [
        ("nobody", "assignee", "no agent with login 'nobody'"),
        ("dave", "assignee", "agent 'dave' is inactive"),
        ("nobody", "owner", "no agent"),
    ],
)
def test_agent_lookup_errors(directory: Directory, login: str, field: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        directory.agent(login, field=field)
    assert info.value.field == field
    assert message in str(info.value)


def test_agent_lookup(directory: Directory) -> None:
    assert directory.agent("alice").email == "alice@desk.example"


@pytest.mark.parametrize(
    ("group", "login"),
    [("noc", "alice"), ("noc", "carol"), ("dba", "bob"), ("noc", None), (None, "bob")],
)
def test_assignment_allowed(directory: Directory, group: str | None, login: str | None) -> None:
    directory.check_assignment(group, login)


@pytest.mark.parametrize(
    ("group", "login", "field", "message"),
    [
        ("ghost", "alice", "group", "no group 'ghost' (groups: dba, empty, noc)"),
        ("ghost", None, "group", "no group 'ghost'"),
        ("dba", "alice", "assignee", "(alice is in: noc)"),
        ("dba", "carol", "assignee", "not a member of group 'dba'"),
        ("empty", "bob", "assignee", "(bob is in: dba, noc)"),
        ("noc", "dave", "assignee", "inactive"),
        ("noc", "nobody", "assignee", "no agent"),
        (None, "nobody", "assignee", "no agent"),
    ],
)
def test_assignment_refused(
    directory: Directory, group: str | None, login: str | None, field: str, message: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        directory.check_assignment(group, login)
    assert info.value.field == field
    assert message in str(info.value)


def test_agent_in_no_group_is_told_so() -> None:
    d = Directory.build(agents=[_agent("solo")], groups=[Group("g", "G")])
    with pytest.raises(ValidationFailed, match=r"solo is in: no group") as info:
        d.check_assignment("g", "solo")
    assert info.value.field == "assignee"


@pytest.mark.parametrize(
    ("key", "expected"),
    [("c1", "c1"), ("wile@ACME.com", "c1"), (" peter@initech.example ", "c2"), ("c3", "c3")],
)
def test_contact_by_id_or_email(directory: Directory, key: str, expected: str) -> None:
    assert directory.contact(key).id == expected


@pytest.mark.parametrize("field", ["requester", "contact"])
def test_unknown_contact(directory: Directory, field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        directory.contact("who@nowhere.org", field=field)
    assert info.value.field == field
    assert directory.find_contact("who@nowhere.org") is None


@pytest.mark.parametrize(
    ("contact", "expected"),
    [
        (Contact("c1", "C", email="x@initech.example", organisation="acme"), "acme"),  # own org
        (Contact("x", "X", email="someone@initech.example"), "initech"),  # by domain
        (Contact("x", "X", email="someone@mail.acme.com"), "acme"),  # parent domain
        (Contact("x", "X", email="someone@labs.acme.com"), "acme"),  # own domain
        (Contact("x", "X", email="someone@notacme.com"), None),  # not a suffix on a dot
        (Contact("x", "X", email="someone@elsewhere.org"), None),
        (Contact("x", "X"), None),
    ],
)
def test_organisation_of(directory: Directory, contact: Contact, expected: str | None) -> None:
    org = directory.organisation_of(contact)
    assert (org.id if org else None) == expected


def test_most_specific_domain_wins() -> None:
    d = Directory.build(
        organisations=[
            Organisation("parent", "P", domains=("corp.example",)),
            Organisation("lab", "L", domains=("lab.corp.example",)),
        ]
    )
    assert d.organisation_for_email("a@x.lab.corp.example").id == "lab"  # type: ignore[union-attr]
    assert d.organisation_for_email("a@corp.example").id == "parent"  # type: ignore[union-attr]


def test_group_members(directory: Directory) -> None:
    assert [a.login for a in directory.group_members("noc")] == ["alice", "bob", "carol"]
    everyone = directory.group_members("noc", active_only=False)
    assert [a.login for a in everyone] == ["alice", "bob", "carol", "dave"]
    with pytest.raises(ValidationFailed) as info:
        directory.group_members("ghost")
    assert info.value.field == "group"


@pytest.mark.parametrize(
    ("group", "counts", "expected"),
    [
        ("noc", {"alice": 3, "bob": 1, "carol": 2}, "bob"),
        ("noc", {"alice": 3, "bob": 2}, "carol"),  # carol has none
        ("noc", {"alice": 1, "bob": 1, "carol": 1}, "alice"),  # ties by login
        ("noc", {"alice": 5, "bob": 5, "carol": 5, "dave": 0}, "alice"),  # dave is inactive
        ("dba", {}, "bob"),
        ("empty", {}, None),
    ],
)
def test_least_loaded(
    directory: Directory, group: str, counts: dict[str, int], expected: str | None
) -> None:
    assert directory.least_loaded(group, counts) == expected


def test_least_loaded_none_when_all_inactive() -> None:
    d = Directory.build(agents=[_agent("x", "g", active=False)], groups=[Group("g", "G")])
    assert d.least_loaded("g", {}) is None


# --- merging an import ----------------------------------------------------------------


def test_merged_replaces_group_membership_and_adds_agent_groups(directory: Directory) -> None:
    merged = directory.merged(
        groups=[Group("noc", "NOC", members=("alice",))],
        agents=[_agent("erin", "dba")],
        contacts=[Contact("c2", "Peter Gibbons", email="peter@initech.example")],
    )
    assert merged.groups["noc"].members == ("alice",)
    assert merged.groups["noc"].name == "NOC"
    assert merged.agents["bob"].groups == ("dba",)
    assert merged.groups["dba"].members == ("bob", "erin")
    assert merged.contacts["c2"].name == "Peter Gibbons"
    assert merged.contacts["c1"].vip  # untouched records stay
    assert directory.groups["noc"].members == ("alice", "bob", "carol", "dave")  # unchanged


def test_merged_checks_references(directory: Directory) -> None:
    with pytest.raises(ValidationErrors) as info:
        directory.merged(groups=[Group("web", "Web", members=("ghost",))])
    assert [(e.item, e.field) for e in info.value.errors] == [("group 'web'", "members")]
