"""Importing agents, groups, organisations and contacts from CSV and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from servicegraph.cmdb.errors import ValidationErrors
from servicegraph.ticketing.directory import PeopleImport, parse_people, parse_people_files
from servicegraph.ticketing.people import Agent, Contact, DeskRole, Directory, Group, Organisation

AGENTS_CSV = """login,name,email,groups,roles,active,phone
alice,Alice Liddell,alice@desk.example,noc;dba,agent|group_manager,yes,+41 1
bob,Bob,bob@desk.example,,,,
carol,Carol,carol@desk.example,noc,ADMIN,false,
"""


@pytest.fixture
def existing() -> Directory:
    return Directory.build(
        agents=[Agent("zed", "Zed", "zed@desk.example", groups=("old",))],
        groups=[Group("old", "Old team"), Group("noc", "NOC"), Group("dba", "DBA")],
        organisations=[Organisation("acme", "ACME", domains=("acme.com",))],
        contacts=[Contact("c0", "Known", email="known@acme.com", organisation="acme")],
    )


def errors_of(info: pytest.ExceptionInfo[ValidationErrors]) -> list[tuple[str | None, str | None]]:
    return [(e.item, e.field) for e in info.value.errors]


# --- CSV ------------------------------------------------------------------------------------


def test_agents_csv(tmp_path: Path, existing: Directory) -> None:
    path = tmp_path / "agents.csv"
    path.write_text(AGENTS_CSV, encoding="utf-8")
    batch = parse_people("agents", path, existing=existing)
    alice, bob, carol = batch.agents
    assert alice == Agent(
        "alice",
        "Alice Liddell",
        "alice@desk.example",
        groups=("noc", "dba"),
        roles=(DeskRole.AGENT, DeskRole.GROUP_MANAGER),
        phone="+41 1",
    )
    assert (bob.groups, bob.roles, bob.active, bob.phone) == ((), (DeskRole.AGENT,), True, None)
    assert (carol.roles, carol.active) == ((DeskRole.ADMIN,), False)
    assert batch.origins[("agents", "carol")] == f"{path}:4"


def test_csv_with_bom_and_crlf(tmp_path: Path, existing: Directory) -> None:
    path = tmp_path / "agents.csv"
    path.write_bytes(b"\xef\xbb\xbf" + AGENTS_CSV.replace("\n", "\r\n").encode())
    assert [a.login for a in parse_people("agents", path, existing=existing).agents] == [
        "alice",
        "bob",
        "carol",
    ]
    text = "\ufeff" + AGENTS_CSV  # text with a BOM, too
    assert len(parse_people("agents", text, existing=existing).agents) == 3


def test_csv_quoted_and_blank_lines(existing: Directory) -> None:
    text = 'id,name,members,description\n\nweb,"Web, and more",,"two\nlines"\n\n'
    (group,) = parse_people("groups", text).groups
    assert (group.name, group.description) == ("Web, and more", "two\nlines")


def test_other_kinds_csv(existing: Directory) -> None:
    batch = parse_people_files(
        [
            ("organisations", "id,name,domains,notes\ninitech,Initech,initech.example|@init.ch,\n"),
            ("groups", "id,name,email,manager,members\nweb,Web,web@desk.example,zed,zed;\n"),
            (
                "contacts",
                "id,name,email,organisation,phone,vip,active\n"
                "p1,Peter,peter@initech.example,initech,,1,\n"
                "p2,Wile,wile@acme.com,acme,,no,0\n",
            ),
        ],
        existing=existing,
    )
    assert batch.organisations == (
        Organisation("initech", "Initech", domains=("initech.example", "init.ch")),
    )
    assert batch.groups == (Group("web", "Web", "web@desk.example", "zed", ("zed",)),)
    assert [(c.id, c.vip, c.active) for c in batch.contacts] == [
        ("p1", True, True),
        ("p2", False, False),
    ]
    directory = batch.apply_to(existing)
    assert directory.agents["zed"].groups == ("old", "web")
    assert directory.organisation_of(directory.contact("peter@initech.example")).id == "initech"  # type: ignore[union-attr]


CSV_ERRORS: list[tuple[str, str, list[tuple[str | None, str | None]]]] = [
    ("agents", "login,name,email\n,Ann,ann@x.org\n", [("t.csv:2", "login")]),
    ("agents", "login,name,email\nann,,ann@x.org\n", [("t.csv:2", "name")]),
    ("agents", "login,name\nann,Ann\n", [("t.csv:2", "email")]),
    ("agents", "login,name,email\nann,Ann,ann(at)x.org\n", [("t.csv:2", "email")]),
    ("agents", "login,name,email\nan n,Ann,ann@x.org\n", [("t.csv:2", "login")]),
    ("agents", "login,name,email,roles\nann,Ann,ann@x.org,agent;wizard\n", [("t.csv:2", "roles")]),
    ("agents", "login,name,email,active\nann,Ann,ann@x.org,maybe\n", [("t.csv:2", "active")]),
    ("agents", "login,name,email,groups\nann,Ann,ann@x.org,ghost\n", [("t.csv:2", "groups")]),
    ("agents", "login,name,mail\nann,Ann,ann@x.org\n", [("t.csv:1", "mail")]),
    ("agents", "login,name,email,name\n", [("t.csv:1", "name")]),
    ("agents", "login,name,email\nann,Ann,ann@x.org,extra\n", [("t.csv:2", None)]),
    (
        "agents",
        "login,name,email\nann,Ann,ann@x.org\nann,Ann 2,ann2@x.org\n",
        [("t.csv:3", "login")],
    ),
    ("groups", "id,name,members\nweb,Web,zed;ghost\n", [("t.csv:2", "members")]),
    ("groups", "id,name,manager\nweb,Web,ghost\n", [("t.csv:2", "manager")]),
    ("groups", "id,name,email\nweb,Web,web\n", [("t.csv:2", "email")]),
    ("organisations", "id,name,domains\no,O,acme.com\n", [("t.csv:2", "domains")]),  # taken
    ("organisations", "id,name,domains\no,O,not a domain\n", [("t.csv:2", "domains")]),
    ("contacts", "id,name,organisation\np,P,ghost\n", [("t.csv:2", "organisation")]),
    ("contacts", "id,name,email\np,P,known@ACME.com\n", [("t.csv:2", "email")]),  # c0's
    ("contacts", "id,name,email\np,P,a@x.org\nq,Q,A@x.org\n", [("t.csv:3", "email")]),
    ("contacts", "id,name,vip\np,P,sometimes\n", [("t.csv:2", "vip")]),
    ("contacts", "name,email\nP,p@x.org\n", [("t.csv:2", "id")]),
    # every bad row is listed, with its own line
    (
        "agents",
        "login,name,email\nann,Ann,bad\nbob,Bob,bob@x.org\n,Carl,carl@x.org\n",
        [("t.csv:2", "email"), ("t.csv:4", "login")],
    ),
    # a quoted cell over two lines: the line where the record ends
    (
        "agents",
        'login,name,email\nann,"Ann\nSmith",bad\n',
        [("t.csv:3", "email")],
    ),
]


@pytest.mark.parametrize(("kind", "text", "expected"), CSV_ERRORS)
def test_csv_errors_name_line_and_field(
    kind: Any, text: str, expected: list[tuple[str, str]], existing: Directory
) -> None:
    with pytest.raises(ValidationErrors) as info:
        parse_people(kind, text, name="t.csv", existing=existing)
    assert errors_of(info) == expected


@pytest.mark.parametrize(
    ("kind", "source", "expected"),
    [
        (None, "login,name,email\n", [("t.csv", None)]),  # a CSV needs its kind
        ("agents", "", [("t.csv", None)]),  # empty
        ("people", "login\n", [(None, "kind")]),
    ],
)
def test_file_level_errors(kind: Any, source: str, expected: list[Any]) -> None:
    with pytest.raises(ValidationErrors) as info:
        parse_people(kind, source, name="t.csv", format="csv")
    assert errors_of(info) == expected


def test_file_errors(tmp_path: Path) -> None:
    latin = tmp_path / "agents.csv"
    latin.write_bytes("login,name,email\nj,Jürg,j@x.org\n".encode("latin-1"))
    missing = tmp_path / "missing.csv"
    other = tmp_path / "agents.xlsx"
    other.write_text("x")
    with pytest.raises(ValidationErrors) as info:
        parse_people_files([("agents", latin), ("agents", missing), ("agents", other)])
    assert errors_of(info) == [(str(latin), None), (str(missing), None), (str(other), None)]
    assert "not UTF-8" in str(info.value) and "unknown format 'xlsx'" in str(info.value)


# --- JSON -----------------------------------------------------------------------------------


def test_json_object_of_kinds(tmp_path: Path) -> None:
    path = tmp_path / "people.json"
    document = {
        "organisations": [{"id": "acme", "name": "ACME", "domains": ["acme.com"]}],
        "agents": [
            {"login": "ann", "name": "Ann", "email": "ann@x.org", "roles": ["change_manager"]},
            {
                "login": "ben",
                "name": "Ben",
                "email": "ben@x.org",
                "groups": "web|noc",
                "active": False,
            },
        ],
        "groups": [
            {"id": "web", "name": "Web", "members": ["ann"], "manager": "ann"},
            {"id": "noc", "name": "NOC", "description": None},
        ],
        "contacts": [{"id": "p", "name": "P", "email": "p@acme.com", "vip": "yes"}],
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    batch = parse_people(None, path)
    assert [a.roles for a in batch.agents] == [(DeskRole.CHANGE_MANAGER,), (DeskRole.AGENT,)]
    assert batch.agents[1].groups == ("web", "noc")
    assert batch.contacts[0].vip is True
    assert batch.origins[("groups", "noc")] == f"{path}: groups[1]"
    directory = batch.apply_to()
    assert directory.group_members("web")[0].login == "ann"
    assert directory.organisation_of(batch.contacts[0]).id == "acme"  # type: ignore[union-attr]


def test_json_list_of_one_kind() -> None:
    text = json.dumps([{"id": "acme", "name": "ACME"}])
    assert parse_people("organisations", text).organisations == (Organisation("acme", "ACME"),)


JSON_ERRORS: list[tuple[Any, Any, list[tuple[str | None, str | None]]]] = [
    (None, [{"login": "a"}], [("p.json", None)]),  # a list needs its kind
    (None, {"agent": []}, [("p.json", "agent")]),
    ("agents", {"groups": []}, [("p.json", "groups")]),  # the object holds another kind
    (None, {"agents": {}}, [("p.json", "agents")]),
    (None, "agents", [("p.json", None)]),
    ("agents", ["ann"], [("p.json: agents[0]", None)]),
    (
        "agents",
        [{"login": "a", "name": "A", "email": "a@x.org", "team": "x"}],
        [("p.json: agents[0]", "team")],
    ),
    ("agents", [{"login": 7, "name": "A", "email": "a@x.org"}], [("p.json: agents[0]", "login")]),
    (
        "agents",
        [{"login": "a", "name": "A", "email": "a@x.org", "groups": 3}],
        [("p.json: agents[0]", "groups")],
    ),
    (
        "agents",
        [{"login": "a", "name": "A", "email": "a@x.org", "active": 1}],
        [("p.json: agents[0]", "active")],
    ),
    (
        "agents",
        [{"login": "a", "name": "A", "email": "a@x.org", "roles": ["root"]}],
        [("p.json: agents[0]", "roles")],
    ),
    (
        "agents",
        [{"login": "a", "name": "A"}, {"name": "B", "email": "b@x.org"}],
        [("p.json: agents[0]", "email"), ("p.json: agents[1]", "login")],
    ),
    (
        "groups",
        [{"id": "g", "name": "G", "members": ["nobody"]}],
        [("p.json: groups[0]", "members")],
    ),
    (
        "contacts",
        [{"id": "c", "name": "C", "organisation": "nowhere"}],
        [("p.json: contacts[0]", "organisation")],
    ),
    ("contacts", [{"id": "c", "name": "C", "phone": 41}], [("p.json: contacts[0]", "phone")]),
]


@pytest.mark.parametrize(("kind", "document", "expected"), JSON_ERRORS)
def test_json_errors_name_record_and_field(kind: Any, document: Any, expected: list[Any]) -> None:
    with pytest.raises(ValidationErrors) as info:
        parse_people(kind, json.dumps(document), name="p.json")
    assert errors_of(info) == expected


@pytest.mark.parametrize("text", ["{", "[" * 100_000])
def test_broken_json(text: str) -> None:
    with pytest.raises(ValidationErrors) as info:
        parse_people("agents", text, name="p.json", format="json")
    assert errors_of(info) == [("p.json", None)]


# --- one import over several files ------------------------------------------------------------


def test_references_cross_files_of_one_import(tmp_path: Path) -> None:
    agents = tmp_path / "agents.csv"
    agents.write_text("login,name,email,groups\nann,Ann,ann@x.org,web\n")
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps([{"id": "web", "name": "Web", "members": ["ann"]}]))
    batch = parse_people_files([("agents", agents), ("groups", groups)])
    assert batch.apply_to().agents["ann"].groups == ("web",)
    # alone, each file refers to what it does not hold
    with pytest.raises(ValidationErrors) as info:
        parse_people("agents", agents)
    assert errors_of(info) == [(f"{agents}:2", "groups")]


def test_nothing_partial_when_any_file_fails(tmp_path: Path) -> None:
    good = tmp_path / "orgs.csv"
    good.write_text("id,name\nacme,ACME\n")
    bad = tmp_path / "contacts.csv"
    bad.write_text("id,name,email\np,P,nope\n")
    with pytest.raises(ValidationErrors) as info:
        parse_people_files([("organisations", good), ("contacts", bad)])
    assert errors_of(info) == [(f"{bad}:2", "email")]


def test_reimport_keeps_a_contact_its_email(existing: Directory) -> None:
    # c0 changes address and p takes c0's old one in the same import: no conflict
    batch = parse_people(
        "contacts",
        "id,name,email\nc0,Known,new@acme.com\np,P,known@acme.com\n",
        existing=existing,
    )
    directory = batch.apply_to(existing)
    assert directory.contact("known@acme.com").id == "p"


def test_empty_import() -> None:
    assert parse_people("agents", "login,name,email\n") == PeopleImport(origins={})
