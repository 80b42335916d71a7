"""The desk directory service over real SQLite files: importing people and the catalogue,
upserts, group managers' limits, caching per version, contact pages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from servicegraph.bootstrap import Services
from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.cmdb.importer import read_files
from servicegraph.ticketing.desk_directory import (
    DeskDirectory,
    KindCount,
    NotPermitted,
    decode_cursor,
)
from servicegraph.ticketing.people import Agent, Contact, DeskRole, Group, Organisation
from servicegraph.ticketing.ports import DirectoryStore, PeopleBatch

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

AGENTS = """login,name,email,groups,roles
alice,Alice,alice@desk.example,noc;dba,agent|group_manager
bob,Bob,bob@desk.example,noc,
carol,Carol,carol@desk.example,,
"""
GROUPS = """id,name,email,manager,members
noc,Network operations,noc@desk.example,alice,
dba,Databases,,,carol
"""
PEOPLE_JSON = {
    "organisations": [{"id": "acme", "name": "ACME", "domains": ["acme.com"]}],
    "contacts": [
        {"id": "c1", "name": "Zoe Quinn", "email": "zoe@acme.com", "organisation": "acme"},
        {"id": "c2", "name": "adam smith", "email": "adam@acme.com"},
        {"id": "c3", "name": "Mia", "phone": "+41 1"},
    ],
}


@pytest.fixture
def files(tmp_path: Path) -> list[tuple[Any, Path]]:
    (tmp_path / "agents.csv").write_text(AGENTS, encoding="utf-8")
    (tmp_path / "groups.csv").write_text(GROUPS, encoding="utf-8")
    (tmp_path / "customers.json").write_text(json.dumps(PEOPLE_JSON), encoding="utf-8")
    return [
        ("agents", tmp_path / "agents.csv"),
        ("groups", tmp_path / "groups.csv"),
        (None, tmp_path / "customers.json"),
    ]


@pytest.fixture
def desk(services: Services) -> DeskDirectory:
    return services.directory


@pytest.fixture
def site(services: Services) -> dict[str, str]:
    """small-site.json in the graph: key -> CI id (web-shop is a business_service)."""
    batch = read_files([EXAMPLES / "small-site.json"], services.classes, source="import")
    report = services.reconciler.apply(batch)
    return {str(o.key): str(ci) for o, ci in zip(batch.cis, report.ci_ids, strict=True)}


@pytest.fixture
def staffed(desk: DeskDirectory, files: list[tuple[Any, Path]]) -> DeskDirectory:
    desk.import_people(files)
    return desk


def fields_of(info: pytest.ExceptionInfo[Any]) -> list[tuple[str | None, str | None]]:
    errors = info.value.errors if isinstance(info.value, ValidationErrors) else [info.value]
    return [(e.item, e.field) for e in errors]


# -- importing people ----------------------------------------------------------------------


def test_import_counts_per_kind_and_saves_it_all(
    desk: DeskDirectory, files: list[tuple[Any, Path]]
) -> None:
    report = desk.import_people(files)
    assert report.counts == {
        "organisations": KindCount(created=1),
        "agents": KindCount(created=3),
        "groups": KindCount(created=2),
        "contacts": KindCount(created=3),
    }
    assert report.changed == 9 and not report.dry_run
    assert report.version == desk.version() == 1
    d = desk.directory()
    assert d.groups["noc"].members == ("alice", "bob")
    assert d.groups["dba"].members == ("alice", "carol"), "both sides of membership"
    assert d.agents["alice"].roles == (DeskRole.AGENT, DeskRole.GROUP_MANAGER)
    assert d.contact("ZOE@acme.com").organisation == "acme"


def test_a_replayed_import_changes_nothing(
    desk: DeskDirectory, files: list[tuple[Any, Path]]
) -> None:
    desk.import_people(files)
    again = desk.import_people(files)
    assert again.changed == 0
    assert again.counts["contacts"] == KindCount(unchanged=3)
    assert again.counts["agents"] == KindCount(unchanged=3)
    assert again.version == desk.version() == 1, "nothing saved, the version stands"


def test_a_changed_row_counts_as_updated(staffed: DeskDirectory, tmp_path: Path) -> None:
    path = tmp_path / "agents2.csv"
    path.write_text("login,name,email\nbob,Robert,bob@desk.example\ndan,Dan,dan@x.example\n")
    report = staffed.import_people([("agents", path)])
    assert report.counts["agents"] == KindCount(created=1, updated=1)
    bob = staffed.directory().agents["bob"]
    assert bob.name == "Robert"
    assert bob.groups == ("noc",), "an agent's groups in an import only add memberships"


def test_a_dry_run_counts_and_saves_nothing(
    desk: DeskDirectory, files: list[tuple[Any, Path]]
) -> None:
    report = desk.import_people(files, dry_run=True)
    assert report.dry_run and report.changed == 9
    assert desk.version() == 0
    assert desk.directory().agents == {}


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("login,name,email\nzed,Zed,not-an-email\n", ("bad.csv:2", "email")),
        ("login,name,email,groups\nzed,Zed,z@x.example,nowhere\n", ("bad.csv:2", "groups")),
        ("login,name,email,shoe\nzed,Zed,z@x.example,42\n", ("bad.csv:1", "shoe")),
        ("login,name\nzed,Zed\n", ("bad.csv:2", "email")),
    ],
)
def test_a_bad_file_is_refused_whole_naming_line_and_field(
    staffed: DeskDirectory, tmp_path: Path, content: str, where: tuple[str, str]
) -> None:
    before = staffed.directory()
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises((ValidationErrors, ValidationFailed)) as info:
        staffed.import_people([("agents", path)], name="bad.csv")
    assert where in fields_of(info)
    assert staffed.version() == 1
    assert staffed.directory() == before


def test_import_text_with_a_contact_taking_anothers_email(staffed: DeskDirectory) -> None:
    text = json.dumps([{"id": "c9", "name": "Copy", "email": "zoe@acme.com"}])
    with pytest.raises(ValidationErrors) as info:
        staffed.import_people([("contacts", text)], name="pasted")
    assert fields_of(info) == [("pasted: contacts[0]", "email")]
    assert "c9" not in staffed.directory().contacts


# -- one record at a time ------------------------------------------------------------------


def test_upsert_agent_replaces_its_memberships(staffed: DeskDirectory) -> None:
    alice = staffed.directory().agents["alice"]
    moved = staffed.upsert_agent(Agent("alice", alice.name, alice.email, groups=("dba",)))
    assert moved.groups == ("dba",)
    d = staffed.directory()
    assert d.groups["noc"].members == ("bob",)
    assert d.groups["noc"].manager == "alice", "managing is not membership"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda d: d.upsert_agent(Agent("zed", "Zed", "z@x.example", groups=("nope",))), "groups"),
        (lambda d: d.upsert_group(Group("ops", "Ops", members=("ghost",))), "members"),
        (lambda d: d.upsert_group(Group("ops", "Ops", manager="ghost")), "manager"),
        (lambda d: d.upsert_contact(Contact("c9", "X", email="zoe@acme.com")), "email"),
        (lambda d: d.upsert_contact(Contact("c9", "X", organisation="globex")), "organisation"),
        (
            lambda d: d.upsert_organisation(Organisation("o2", "Other", domains=("acme.com",))),
            "domains",
        ),
        (lambda d: d.deactivate_agent("ghost"), "login"),
        (lambda d: d.deactivate_contact("ghost"), "id"),
    ],
)
def test_bad_upserts_name_the_field_and_write_nothing(
    staffed: DeskDirectory, call: Any, field: str
) -> None:
    before = staffed.directory()
    with pytest.raises((ValidationErrors, ValidationFailed)) as info:
        call(staffed)
    assert field in [f for _, f in fields_of(info)]
    assert staffed.version() == 1
    assert staffed.directory() == before


def test_deactivated_agents_keep_their_record_and_groups(staffed: DeskDirectory) -> None:
    bob = staffed.deactivate_agent("bob")
    assert not bob.active and bob.groups == ("noc",)
    assert staffed.agent_active("bob") is False
    assert staffed.agent_active("alice") is True
    assert staffed.agent_active("ghost") is None
    assert [a.login for a in staffed.agents(group="noc", active=True)] == ["alice"]
    assert staffed.deactivate_contact("c3").active is False


def test_an_upsert_saves_only_what_changed(services: Services, staffed: DeskDirectory) -> None:
    """Adding one contact writes one contact row (the version says one save happened)."""
    saved: list[PeopleBatch] = []
    store = staffed.store
    real = store.save_people

    def spy(batch: PeopleBatch, *args: Any, **kwargs: Any) -> int | None:
        saved.append(batch)
        return real(batch, *args, **kwargs)

    store.save_people = spy  # type: ignore[method-assign]
    staffed.upsert_contact(Contact("c9", "New"))
    assert [(len(b.agents), len(b.groups), len(b.contacts)) for b in saved] == [(0, 0, 1)]
    staffed.upsert_contact(Contact("c9", "New"))
    assert len(saved) == 1, "an upsert that changes nothing saves nothing"


# -- group managers -----------------------------------------------------------------------


def test_a_group_manager_edits_the_agents_of_their_groups(staffed: DeskDirectory) -> None:
    dan = staffed.upsert_agent(
        Agent("dan", "Dan", "dan@x.example", groups=("noc",)), manager="alice"
    )
    assert dan.groups == ("noc",)
    assert staffed.deactivate_agent("bob", manager="alice").active is False
    noc = staffed.directory().groups["noc"]
    renamed = staffed.upsert_group(
        Group("noc", "NOC", manager="alice", members=noc.members), manager="alice"
    )
    assert renamed.name == "NOC"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        # carol is only in dba, which alice does not manage
        (lambda d: d.deactivate_agent("carol", manager="alice"), "groups"),
        (lambda d: d.upsert_agent(Agent("z", "Z", "z@x.example"), manager="alice"), "groups"),
        (
            lambda d: d.upsert_agent(
                Agent("z", "Z", "z@x.example", groups=("noc",), roles=(DeskRole.ADMIN,)),
                manager="alice",
            ),
            "roles",
        ),
        (lambda d: d.upsert_group(Group("new", "New", manager="alice"), manager="alice"), "id"),
        (lambda d: d.upsert_group(Group("dba", "DBA"), manager="alice"), "id"),
        (lambda d: d.upsert_group(Group("noc", "NOC", manager="bob"), manager="alice"), "manager"),
        (lambda d: d.deactivate_agent("bob", manager="bob"), "login"),  # bob manages nothing
    ],
)
def test_a_group_manager_cannot_step_outside_their_groups(
    staffed: DeskDirectory, call: Any, field: str
) -> None:
    with pytest.raises(NotPermitted) as info:
        call(staffed)
    assert info.value.field == field
    assert staffed.version() == 1


# -- caching ------------------------------------------------------------------------------


class CountingStore:
    """The real store, counting loads."""

    def __init__(self, inner: DirectoryStore) -> None:
        self.inner = inner
        self.loads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def load_directory(self) -> Any:
        self.loads += 1
        return self.inner.load_directory()


def test_the_directory_is_loaded_once_per_version(
    services: Services, staffed: DeskDirectory
) -> None:
    counting = CountingStore(staffed.store)
    fresh = DeskDirectory(counting, services.store)
    for _ in range(5):
        fresh.directory()
        fresh.contacts(first=2)
    assert counting.loads == 1
    # another process (here: another service over the same file) saves
    staffed.upsert_contact(Contact("c9", "New"))
    assert "c9" in fresh.directory().contacts
    assert counting.loads == 2
    fresh.upsert_contact(Contact("c10", "Newer"))
    assert "c10" in fresh.directory().contacts
    assert counting.loads == 2, "its own save leaves the cache current"
    assert fresh.directory() == staffed.store.load_directory()


# -- contact pages ---------------------------------------------------------------------------


def test_contacts_page_by_name_with_a_cursor(staffed: DeskDirectory) -> None:
    for n in range(25):
        staffed.upsert_contact(Contact(f"p{n:02}", f"Person {n:02}"))
    seen: list[str] = []
    after = None
    while True:
        page = staffed.contacts(first=7, after=after)
        seen.extend(c.id for c in page.items)
        if not page.has_next:
            break
        after = page.end_cursor
    assert len(seen) == len(set(seen)) == 28
    names = [staffed.directory().contacts[i].name.casefold() for i in seen]
    assert names == sorted(names)
    assert seen[:1] == ["c2"], "adam smith, case-insensitively first"


def test_contacts_search_and_organisation(staffed: DeskDirectory) -> None:
    assert [c.id for c in staffed.contacts(search="ACME.com").items] == ["c2", "c1"]
    assert [c.id for c in staffed.contacts(search="quinn").items] == ["c1"]
    assert [c.id for c in staffed.contacts(organisation="acme").items] == ["c1"]
    with pytest.raises(ValidationFailed) as info:
        staffed.contacts(organisation="globex")
    assert info.value.field == "organisation"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"first": 0}, "first"), ({"first": 501}, "first"), ({"after": "bm9wZQ=="}, "after")],
)
def test_bad_page_arguments(staffed: DeskDirectory, kwargs: Any, field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        staffed.contacts(**kwargs)
    assert info.value.field == field
    with pytest.raises(ValidationFailed):
        decode_cursor("!!!")


# -- the catalogue --------------------------------------------------------------------------

CATALOGUE = """
services:
  - id: shop
    name: Web shop
    ci_id: {ci}
    owner_group: noc
    defaults: {{group: noc, priority: 3}}
  - id: mail
    name: E-mail
    request_types: [service_request]
categories:
  - path: network
    name: Network
    owner_group: noc
  - path: network/vpn
    name: VPN
"""


def test_import_catalogue_from_yaml(
    staffed: DeskDirectory, site: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text(CATALOGUE.format(ci="web-shop"))  # a key: resolved to the CI's id
    report = staffed.import_catalogue(path)
    assert report.counts == {"services": KindCount(created=2), "categories": KindCount(created=2)}
    catalogue = staffed.catalogue()
    assert catalogue.services["shop"].ci_id == site["web-shop"]
    assert catalogue.service_for_ci(site["web-shop"]) == catalogue.services["shop"]
    assert [c.path for c in catalogue.children("network")] == ["network/vpn"]
    assert staffed.directory().agents["alice"].name == "Alice", "people untouched"
    again = staffed.import_catalogue(path)
    assert again.changed == 0 and again.version == report.version


def test_a_partial_catalogue_file_adds_to_the_stored_one(
    staffed: DeskDirectory, site: dict[str, str], tmp_path: Path
) -> None:
    staffed.import_catalogue(CATALOGUE.format(ci=site["web-shop"]))
    more = json.dumps(
        {
            "services": [{"id": "mail", "name": "Mail", "active": False}],
            "categories": [{"path": "network/vpn/token", "name": "Tokens"}],
        }
    )
    report = staffed.import_catalogue(more)
    assert report.counts == {
        "services": KindCount(updated=1),
        "categories": KindCount(created=1),
    }
    catalogue = staffed.catalogue()
    assert catalogue.services["mail"].active is False
    assert set(catalogue.services) == {"shop", "mail"}
    assert catalogue.chain("network/vpn/token")[0].path == "network"


@pytest.mark.parametrize(
    ("ci", "needle"),
    [("db-1", "is a server, not a business_service"), ("nothing-here", "no configuration item")],
)
def test_catalogue_ci_must_be_a_business_service(
    staffed: DeskDirectory, site: dict[str, str], ci: str, needle: str
) -> None:
    with pytest.raises(ValidationErrors) as info:
        staffed.import_catalogue(CATALOGUE.format(ci=ci))
    assert fields_of(info) == [("catalogue.services[0]", "ci_id")]
    assert needle in str(info.value)
    assert dict(staffed.catalogue().services) == {}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("services: [{id: x, name: X, owner_group: ghosts}]", ("service 'x'", "owner_group")),
        ("services: [{id: x, name: X, colour: red}]", ("catalogue.services[0]", "colour")),
        ("categories: [{path: a/b, name: B}]", ("category 'a/b'", "path")),
        ("services: [{id: x}]", ("catalogue.services[0]", "name")),
        ("services: {id: x}", ("catalogue", "services")),
        ("- just a list", ("<text>", None)),
        ("services: [unclosed", ("<text>", None)),
    ],
)
def test_a_bad_catalogue_names_the_record_and_field(
    staffed: DeskDirectory, text: str, where: tuple[str, str | None]
) -> None:
    with pytest.raises((ValidationErrors, ValidationFailed)) as info:
        staffed.import_catalogue(text)
    assert where in fields_of(info)
    assert staffed.version() == 1


def test_catalogue_dry_run_and_bad_yaml_line(staffed: DeskDirectory, tmp_path: Path) -> None:
    report = staffed.import_catalogue("services: [{id: x, name: X}]", dry_run=True)
    assert report.dry_run and report.counts["services"] == KindCount(created=1)
    assert staffed.version() == 1
    path = tmp_path / "broken.yml"
    path.write_text("services:\n  - id: x\n   name: X\n")
    with pytest.raises(ValidationFailed) as info:
        staffed.import_catalogue(path)
    assert info.value.item == str(path) and "line 3" in str(info.value)
