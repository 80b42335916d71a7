"""The behaviour every backend of the directory port owes the desk, as documented in
``servicegraph.ticketing.ports.DirectoryStore``: people (agents, groups with members,
organisations, contacts) and the service catalogue, saved in units that are all or
nothing, each advancing a version that readers cache by.

A backend's test module subclasses ``DirectoryContract``, sets ``__test__ = True`` and
provides the fixtures: ``store``, an empty, migrated store that the fixture closes
afterwards; ``other_store``, a second one over the same data, as another process opens it;
and ``failing_store``, one whose backend fails underneath (a damaged file, a lost server),
holding ``seed`` from before it failed. A backend that cannot run here is skipped with the
reason, never faked.

Only SQLite implements this port today (``servicegraph.storage.sqlite.directory``): with a
Neo4j graph, people stay in the embedded file beside it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

import pytest

from servicegraph.cmdb.errors import StoreError, StoreUnavailable
from servicegraph.ticketing.catalogue import Category, Defaults, Service
from servicegraph.ticketing.model import TicketType
from servicegraph.ticketing.people import (
    Agent,
    Contact,
    DeskRole,
    Directory,
    Group,
    Organisation,
)
from servicegraph.ticketing.ports import DirectoryStore, PeopleBatch

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)

ALICE = Agent(
    "alice",
    "Alice Liddell-Ü",  # not ASCII
    "alice@desk.example",
    groups=("dba", "noc"),
    roles=(DeskRole.AGENT, DeskRole.GROUP_MANAGER),
    phone="+41 1 234",
)
BOB = Agent("bob", "Bob", "bob@desk.example", groups=("noc",))
NOC = Group(
    "noc",
    "Network operations",
    email="noc@desk.example",
    manager="alice",
    members=("alice", "bob"),
    description="routers, switches, links",
)
DBA = Group("dba", "Databases", members=("alice",))
ACME = Organisation("acme", "ACME Corp", domains=("acme.com", "acme.de"), notes="key account")
CAROL = Contact("c1", "Carol", email="carol@acme.com", organisation="acme", phone="+1", vip=True)
DAN = Contact("c2", "Dan")  # a phone-only caller: no email, no organisation


def people() -> PeopleBatch:
    return PeopleBatch(
        agents=(ALICE, BOB), groups=(NOC, DBA), organisations=(ACME,), contacts=(CAROL, DAN)
    )


EMAIL = Service(
    "email",
    "E-mail",
    ci_id="ci-email",
    owner_group="noc",
    request_types=(TicketType.INCIDENT, TicketType.SERVICE_REQUEST),
    defaults=Defaults(
        group="noc", priority=3, impact="medium", urgency="low", custom_fields={"site": "hq"}
    ),
    description="mail for everyone",
)
FAX = Service("fax", "Fax", active=False)
NETWORK = Category("network", "Network", owner_group="noc", defaults=Defaults(priority=2))
VPN = Category(
    "network/vpn", "VPN", types=(TicketType.SERVICE_REQUEST,), defaults=Defaults(group="dba")
)


def seed(store: DirectoryStore) -> None:
    store.save_people(people(), T0)
    store.save_catalogue([EMAIL, FAX], [NETWORK, VPN], T0)


def expected_directory() -> Directory:
    return Directory.build(
        agents=[ALICE, BOB], groups=[NOC, DBA], organisations=[ACME], contacts=[CAROL, DAN]
    )


class DirectoryContract:
    """Subclass per backend; override the ``store``, ``other_store`` and ``failing_store``
    fixtures."""

    __test__ = False

    @pytest.fixture
    def store(self) -> DirectoryStore:
        raise NotImplementedError("a backend's test class provides the store fixture")

    @pytest.fixture
    def other_store(self, store: DirectoryStore) -> DirectoryStore:
        raise NotImplementedError("a backend's test class provides the other_store fixture")

    @pytest.fixture
    def failing_store(self) -> DirectoryStore:
        raise NotImplementedError("a backend's test class provides the failing_store fixture")

    # -- reading what was saved --------------------------------------------------------------

    def test_an_empty_store(self, store: DirectoryStore) -> None:
        assert store.version() == 0
        assert store.load_directory() == Directory()
        catalogue = store.load_catalogue()
        assert dict(catalogue.services) == {} and dict(catalogue.categories) == {}

    def test_people_round_trip_every_field(self, store: DirectoryStore) -> None:
        store.save_people(people(), T0)
        loaded = store.load_directory()
        assert loaded == expected_directory()
        assert loaded.agents["alice"] == ALICE
        assert loaded.groups["noc"] == NOC
        assert loaded.contacts["c2"] == DAN
        assert loaded.contact("CAROL@acme.com") == CAROL, "the email index is rebuilt"
        assert loaded.organisation_for_email("x@mail.acme.de") == ACME

    def test_membership_is_one_relation_seen_from_both_sides(self, store: DirectoryStore) -> None:
        """Saved from the agents' side only, the groups list their members too; in one
        batch, a group's members are its whole membership (saved after the agents)."""
        store.save_people(PeopleBatch(groups=(Group("noc", "NOC"), Group("dba", "DBA"))), T0)
        store.save_people(PeopleBatch(agents=(ALICE, BOB)), T0)
        loaded = store.load_directory()
        assert loaded.groups["noc"].members == ("alice", "bob")
        assert loaded.groups["dba"].members == ("alice",)
        assert loaded.agents["bob"].groups == ("noc",)
        store.save_people(PeopleBatch(agents=(BOB,), groups=(Group("noc", "NOC"),)), T0)
        assert store.load_directory().agents["bob"].groups == ()

    def test_catalogue_round_trips_every_field(self, store: DirectoryStore) -> None:
        store.save_catalogue([EMAIL, FAX], [NETWORK, VPN], T0)
        catalogue = store.load_catalogue()
        assert dict(catalogue.services) == {"email": EMAIL, "fax": FAX}
        assert dict(catalogue.categories) == {"network": NETWORK, "network/vpn": VPN}
        assert catalogue.defaults_for("email", "network/vpn").group == "dba"
        assert catalogue.children(None) == (NETWORK,)

    # -- versions ------------------------------------------------------------------------------

    def test_every_save_advances_the_version_by_one(self, store: DirectoryStore) -> None:
        assert store.save_people(PeopleBatch(agents=(BOB,)), T0) == 1
        assert store.save_catalogue([FAX], [], T0) == 2
        assert store.save_people(PeopleBatch(agents=(BOB,)), T0) == 3, "even one that changes"
        assert store.version() == 3

    def test_another_process_sees_the_version_and_what_it_stands_for(
        self, store: DirectoryStore, other_store: DirectoryStore
    ) -> None:
        seed(store)
        assert other_store.version() == store.version() == 2
        assert other_store.load_directory() == expected_directory()
        version = other_store.save_people(
            PeopleBatch(agents=(Agent("bob", "Robert", "bob@desk.example"),)), T0
        )
        assert store.version() == version == 3
        assert store.load_directory().agents["bob"].name == "Robert"

    def test_a_save_from_a_stale_version_saves_nothing(
        self, store: DirectoryStore, other_store: DirectoryStore
    ) -> None:
        seed(store)
        seen = store.version()
        assert other_store.save_people(PeopleBatch(agents=(BOB,)), T0, expected=seen) == seen + 1
        stale = PeopleBatch(agents=(Agent("bob", "Stale Bob", "bob@desk.example"),))
        assert store.save_people(stale, T0, expected=seen) is None
        assert store.save_catalogue([FAX], [], T0, expected=seen) is None
        assert store.version() == seen + 1
        assert store.load_directory().agents["bob"] == BOB
        assert store.save_catalogue([FAX], [], T0, expected=seen + 1) == seen + 2

    # -- upserts -------------------------------------------------------------------------------

    def test_a_saved_record_replaces_the_stored_one(self, store: DirectoryStore) -> None:
        seed(store)
        moved = Contact("c1", "Carol B.", email="carol.b@acme.com", organisation=None)
        store.save_people(
            PeopleBatch(
                agents=(Agent("bob", "Bob", "bob@desk.example", active=False, groups=("noc",)),),
                organisations=(Organisation("acme", "ACME", domains=("acme.org",)),),
                contacts=(moved,),
            ),
            T0,
        )
        loaded = store.load_directory()
        assert loaded.agents["bob"].active is False, "deactivated, not deleted"
        assert loaded.groups["noc"].members == ("alice", "bob"), "history keeps its members"
        assert loaded.organisations["acme"].domains == ("acme.org",)
        assert loaded.contacts["c1"] == moved
        assert loaded.find_contact("carol@acme.com") is None
        assert loaded.contacts["c2"] == DAN, "records not in the batch stay as they were"

    def test_a_saved_group_replaces_its_members(self, store: DirectoryStore) -> None:
        seed(store)
        store.save_people(PeopleBatch(groups=(Group("noc", "NOC", members=("bob",)),)), T0)
        loaded = store.load_directory()
        assert loaded.groups["noc"].members == ("bob",)
        assert loaded.agents["alice"].groups == ("dba",)
        assert loaded.groups["noc"].manager is None

    def test_a_saved_agent_replaces_its_memberships(self, store: DirectoryStore) -> None:
        seed(store)
        store.save_people(
            PeopleBatch(agents=(Agent("alice", "Alice", "alice@desk.example", groups=("noc",)),)),
            T0,
        )
        loaded = store.load_directory()
        assert loaded.agents["alice"].groups == ("noc",)
        assert loaded.groups["dba"].members == ()

    def test_emails_can_change_hands_within_one_batch(self, store: DirectoryStore) -> None:
        """Contact emails are unique; a batch that swaps two addresses is still one save."""
        a = Contact("a", "A", email="one@acme.com")
        b = Contact("b", "B", email="two@acme.com")
        store.save_people(PeopleBatch(contacts=(a, b)), T0)
        swapped = (
            Contact("a", "A", email="two@acme.com"),
            Contact("b", "B", email="ONE@acme.com"),
        )
        store.save_people(PeopleBatch(contacts=swapped), T0)
        loaded = store.load_directory()
        assert loaded.contact("one@acme.com").id == "b"
        assert loaded.contact("two@acme.com").id == "a"

    def test_catalogue_upserts_by_id_and_path(self, store: DirectoryStore) -> None:
        seed(store)
        retired = Service("email", "E-mail (old)", active=False)
        store.save_catalogue([retired], [Category("network", "Networks")], T0)
        catalogue = store.load_catalogue()
        assert catalogue.services["email"] == retired
        assert catalogue.services["fax"] == FAX
        assert catalogue.categories["network"] == Category("network", "Networks")
        assert catalogue.categories["network/vpn"] == VPN

    # -- all or nothing ------------------------------------------------------------------------

    def test_a_failing_people_save_writes_nothing(self, store: DirectoryStore) -> None:
        """An email the store holds for another contact fails the batch (the service checks
        first; the store must not be left half-written when it did not)."""
        seed(store)
        before, version = store.load_directory(), store.version()
        batch = PeopleBatch(
            agents=(Agent("zoe", "Zoe", "zoe@desk.example"),),
            contacts=(Contact("c3", "Thief", email="carol@acme.com"),),
        )
        with pytest.raises(StoreError) as info:
            store.save_people(batch, T0)
        assert info.value.__cause__ is not None
        assert store.load_directory() == before
        assert store.version() == version

    @pytest.mark.parametrize("what", ["people", "catalogue"])
    def test_a_naive_time_is_refused_and_nothing_is_saved(
        self, store: DirectoryStore, what: str
    ) -> None:
        naive = dt.datetime(2024, 3, 1, 12, 0)
        with pytest.raises(ValueError, match="naive"):
            if what == "people":
                store.save_people(people(), naive)
            else:
                store.save_catalogue([EMAIL], [NETWORK], naive)
        assert store.version() == 0
        assert store.load_directory() == Directory()
        assert dict(store.load_catalogue().services) == {}

    def test_a_load_never_sees_half_a_save(
        self, store: DirectoryStore, other_store: DirectoryStore
    ) -> None:
        """Every save renames all agents and contacts at once (two tables): each load sees
        one name throughout."""
        logins = [f"agent{n:03}" for n in range(200)]

        def batch(n: int) -> PeopleBatch:
            return PeopleBatch(
                agents=tuple(Agent(x, f"round {n}", f"{x}@desk.example") for x in logins),
                contacts=tuple(Contact(x, f"round {n}") for x in logins),
            )

        store.save_people(batch(0), T0)
        stop = threading.Event()
        failures: list[BaseException] = []

        def write() -> None:
            try:
                for n in range(1, 30):
                    other_store.save_people(batch(n), T0)
            except BaseException as exc:  # reported below, not lost in the thread
                failures.append(exc)
            finally:
                stop.set()

        writer = threading.Thread(target=write)
        writer.start()
        names: set[frozenset[str]] = set()
        while not stop.is_set():
            loaded = store.load_directory()
            seen = {a.name for a in loaded.agents.values()}
            names.add(frozenset(seen | {c.name for c in loaded.contacts.values()}))
        writer.join()
        assert not failures
        assert all(len(seen) == 1 for seen in names), "a load mixed two saves"
        assert store.load_directory().agents["agent000"].name == "round 29"

    # -- failures ------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda s: s.version(), id="version"),
            pytest.param(lambda s: s.load_directory(), id="load_directory"),
            pytest.param(lambda s: s.load_catalogue(), id="load_catalogue"),
            pytest.param(lambda s: s.save_people(people(), T0), id="save_people"),
            pytest.param(lambda s: s.save_catalogue([EMAIL], [], T0), id="save_catalogue"),
        ],
    )
    def test_backend_failures_raise_store_errors_chained(
        self, failing_store: DirectoryStore, call: Callable[[DirectoryStore], object]
    ) -> None:
        with pytest.raises((StoreUnavailable, StoreError)) as info:
            call(failing_store)
        assert info.value.__cause__ is not None  # chained to the driver's or OS's error
