"""The desk's directory as a service: people (agents, groups, organisations, contacts)
and the service catalogue, persisted through ``DirectoryStore``, imported from files,
edited one record at a time, and read from a cache.

Why a cache: every ticket checks its assignee, requester and service, and a desk holds
15,000 contacts. ``directory()`` and ``catalogue()`` load once per store ``version`` (one
cheap read per call tells whether another process saved) and share the loaded snapshot.

Every change goes the same way: load the current snapshot, compute the new one with the
domain's own checks (``Directory.build`` through ``merged``, ``Catalogue.build``), save only
the records that differ, in one unit, from the version it was computed from; a concurrent
save makes the store refuse (``expected``), and the change is recomputed on the fresh
snapshot. Bad input raises ``ValidationFailed`` / ``ValidationErrors`` naming the field and
writes nothing; a replayed import finds nothing different and saves nothing.

Group managers manage the people of the groups they manage (``Group.manager``), not the
whole directory: the edits take ``manager``, the login acting, and refuse with
``NotPermitted`` what lies outside those groups; None means unrestricted (an admin).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.model import utcnow
from servicegraph.cmdb.ports import GraphStore
from servicegraph.ticketing.catalogue import Catalogue
from servicegraph.ticketing.catalogue_import import (
    CatalogueFormat,
    read_catalogue,
    resolve_service_cis,
    with_stored,
)
from servicegraph.ticketing.directory import KINDS, Format, Kind, parse_people_files
from servicegraph.ticketing.errors import TicketingError
from servicegraph.ticketing.people import (
    Agent,
    Contact,
    DeskRole,
    Directory,
    Group,
    Organisation,
)
from servicegraph.ticketing.ports import DirectoryStore, PeopleBatch

MAX_PAGE = 500
SAVE_ATTEMPTS = 5  # recomputations after a concurrent save before giving up
T = TypeVar("T")


class NotPermitted(TicketingError):
    """A group manager's edit outside the groups they manage (entry points: forbidden)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        self.reason = message
        super().__init__(message)


class DirectoryBusy(TicketingError):
    """Others kept saving the directory while this change was computed (retry later)."""


@dataclass(frozen=True)
class KindCount:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class ImportReport:
    """What an import did (or, with ``dry_run``, would do), per kind of record."""

    counts: Mapping[str, KindCount]
    dry_run: bool
    version: int  # the store's version after the import (unchanged when nothing was saved)

    @property
    def changed(self) -> int:
        return sum(c.created + c.updated for c in self.counts.values())


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_next: bool
    end_cursor: str | None


@dataclass(frozen=True)
class _People:
    """A loaded directory and the store version it is at least as new as. Replaced
    whole, never changed, so that threads sharing the service need no lock."""

    version: int = -1
    directory: Directory = field(default_factory=Directory)
    by_name: tuple[Contact, ...] | None = None  # sorted once per version, for paging


@dataclass(frozen=True)
class _Catalogue:
    version: int = -1
    catalogue: Catalogue = field(default_factory=Catalogue)


def _count(
    kind_records: Iterable[tuple[str, Any]], old: Mapping[str, Any], new: Mapping[str, Any]
) -> KindCount:
    created = updated = unchanged = 0
    for key, _ in kind_records:
        if key not in old:
            created += 1
        elif new[key] != old[key]:
            updated += 1
        else:
            unchanged += 1
    return KindCount(created, updated, unchanged)


def _changed(old: Mapping[str, T], new: Mapping[str, T]) -> tuple[T, ...]:
    return tuple(v for k, v in new.items() if (o := old.get(k)) is not v and o != v)


def _batch(old: Directory, new: Directory) -> PeopleBatch:
    return PeopleBatch(
        agents=_changed(old.agents, new.agents),
        groups=_changed(old.groups, new.groups),
        organisations=_changed(old.organisations, new.organisations),
        contacts=_changed(old.contacts, new.contacts),
    )


def _sort_key(contact: Contact) -> tuple[str, str]:
    return (contact.name.casefold(), contact.id)


def encode_cursor(contact: Contact) -> str:
    text = json.dumps(["contact", *_sort_key(contact)], ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_cursor(cursor: str, *, field: str = "after") -> tuple[str, str]:
    try:
        kind, name, key = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
        if kind == "contact" and isinstance(name, str) and isinstance(key, str):
            return name, key
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        pass
    raise ValidationFailed("is not a cursor this API returned", field=field)


class DeskDirectory:
    """People and the service catalogue of the desk (see the module docstring)."""

    def __init__(
        self,
        store: DirectoryStore,
        graph: GraphStore,
        *,
        resolve_ci: Callable[[str], str] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.store = store
        self.graph = graph
        self.resolve_ci = resolve_ci  # keys and identifiers in catalogue files (web-shop)
        self.clock = clock
        self._people = _People()
        self._catalogue = _Catalogue()

    # -- reads -------------------------------------------------------------------------------

    def version(self) -> int:
        return self.store.version()

    def directory(self) -> Directory:
        """The current directory: loaded once per store version."""
        return self._current_people().directory

    def _current_people(self) -> _People:
        version = self.store.version()
        people = self._people
        if people.version != version:
            # loaded after reading the version: at least that new, never older
            people = _People(version, self.store.load_directory())
            self._people = people
        return people

    def catalogue(self) -> Catalogue:
        """The current service catalogue: loaded once per store version."""
        version = self.store.version()
        cached = self._catalogue
        if cached.version != version:
            cached = _Catalogue(version, self.store.load_catalogue())
            self._catalogue = cached
        return cached.catalogue

    def agent_active(self, login: str) -> bool | None:
        """True for an active agent, False for an inactive one, None for no agent (what
        API tokens held by agents ask: ``servicegraph.access.service``)."""
        agent = self.directory().agents.get(login)
        return None if agent is None else agent.active

    def agents(self, *, group: str | None = None, active: bool | None = None) -> list[Agent]:
        """Agents by login; ``group`` keeps its members (an unknown group is an error)."""
        d = self.directory()
        found = d.group_members(group, active_only=False) if group else tuple(d.agents.values())
        return sorted(
            (a for a in found if active is None or a.active is active), key=lambda a: a.login
        )

    def groups(self) -> list[Group]:
        return sorted(self.directory().groups.values(), key=lambda g: g.id)

    def organisations(self, *, search: str | None = None) -> list[Organisation]:
        needle = (search or "").strip().casefold()
        return sorted(
            (
                o
                for o in self.directory().organisations.values()
                if not needle
                or needle in o.name.casefold()
                or needle in o.id.casefold()
                or any(needle in d for d in o.domains)
            ),
            key=lambda o: o.id,
        )

    def contacts(
        self,
        *,
        first: int = 50,
        after: str | None = None,
        search: str | None = None,
        organisation: str | None = None,
    ) -> Page[Contact]:
        """Contacts by name (then id), a page at a time after the cursor ``after``;
        ``search`` matches names, emails and ids, case-insensitively."""
        if not 1 <= first <= MAX_PAGE:
            raise ValidationFailed(f"must be between 1 and {MAX_PAGE}", field="first")
        position = decode_cursor(after) if after is not None else None
        if organisation is not None and organisation not in self.directory().organisations:
            raise ValidationFailed(f"no organisation '{organisation}'", field="organisation")
        needle = (search or "").strip().casefold()
        items: list[Contact] = []
        has_next = False
        for contact in self._contacts_by_name():
            if position is not None and _sort_key(contact) <= position:
                continue
            if organisation is not None and contact.organisation != organisation:
                continue
            if needle and not _matches(contact, needle):
                continue
            if len(items) == first:
                has_next = True
                break
            items.append(contact)
        return Page(items, has_next, encode_cursor(items[-1]) if items else None)

    def _contacts_by_name(self) -> tuple[Contact, ...]:
        people = self._current_people()
        if people.by_name is None:
            ordered = tuple(sorted(people.directory.contacts.values(), key=_sort_key))
            people = replace(people, by_name=ordered)
            if self._people.version == people.version:
                self._people = people
        assert people.by_name is not None
        return people.by_name

    # -- people --------------------------------------------------------------------------------

    def import_people(
        self,
        files: Sequence[tuple[Kind | None, Path | str]],
        *,
        dry_run: bool = False,
        format: Format | None = None,
        name: str | None = None,
    ) -> ImportReport:
        """Import agents, groups, organisations and contacts from CSV or JSON files (or
        texts, named ``name`` in errors), as one unit: every row checked, references
        across files and against the directory; created and updated counted per kind.
        Raises ValidationErrors listing every bad row (``file:line``, field)."""
        counts: dict[str, KindCount] = {}

        def change(current: Directory) -> Directory:
            batch = parse_people_files(files, format=format, name=name, existing=current)
            new = batch.apply_to(current)
            for kind in KINDS:
                records = [(_key(r), r) for r in getattr(batch, kind)]
                counts[kind] = _count(records, getattr(current, kind), getattr(new, kind))
            return new

        version = self._change_people(change, dry_run=dry_run)
        return ImportReport(counts=counts, dry_run=dry_run, version=version)

    def upsert_agent(self, agent: Agent, *, manager: str | None = None) -> Agent:
        """Add or replace an agent; its ``groups`` are its whole membership (it leaves the
        groups it is no longer listed in)."""

        def change(current: Directory) -> Directory:
            old = current.agents.get(agent.login)
            if manager is not None:
                _check_agent_edit(current, manager, old, agent)
            groups = []
            for group in current.groups.values():
                listed, member = group.id in agent.groups, agent.login in group.members
                if listed != member:
                    kept = tuple(m for m in group.members if m != agent.login)
                    groups.append(replace(group, members=kept + (agent.login,) * listed))
            return _merged(current, agents=[agent], groups=groups)

        self._change_people(change)
        return self.directory().agents[agent.login]

    def deactivate_agent(self, login: str, *, manager: str | None = None) -> Agent:
        """The agent stays (with its history and memberships) but takes no new tickets and
        its API tokens stop working."""
        found = self.directory().agents.get(login)
        if found is None:
            raise ValidationFailed(f"no agent with login '{login}'", field="login")
        return self.upsert_agent(replace(found, active=False), manager=manager)

    def upsert_group(self, group: Group, *, manager: str | None = None) -> Group:
        """Add or replace a group; its ``members`` are its whole membership."""

        def change(current: Directory) -> Directory:
            if manager is not None:
                _check_group_edit(current, manager, current.groups.get(group.id), group)
            return _merged(current, groups=[group])

        self._change_people(change)
        return self.directory().groups[group.id]

    def upsert_organisation(self, organisation: Organisation) -> Organisation:
        self._change_people(lambda current: _merged(current, organisations=[organisation]))
        return self.directory().organisations[organisation.id]

    def upsert_contact(self, contact: Contact) -> Contact:
        self._change_people(lambda current: _merged(current, contacts=[contact]))
        return self.directory().contacts[contact.id]

    def deactivate_contact(self, contact_id: str) -> Contact:
        found = self.directory().contacts.get(contact_id)
        if found is None:
            raise ValidationFailed(f"no contact with id '{contact_id}'", field="id")
        return self.upsert_contact(replace(found, active=False))

    def _change_people(
        self, change: Callable[[Directory], Directory], *, dry_run: bool = False
    ) -> int:
        """Compute the new directory from the current one and save what differs, from the
        version it was computed from; recompute after a concurrent save."""
        for _ in range(SAVE_ATTEMPTS):
            version = self.store.version()
            current = self._load_directory(version)
            new = change(current)
            batch = _batch(current, new)
            if dry_run or not batch:
                return version
            saved = self.store.save_people(batch, self.clock(), expected=version)
            if saved is not None:
                self._people = _People(saved, new)
                if self._catalogue.version == version:  # people only: still valid
                    self._catalogue = replace(self._catalogue, version=saved)
                return saved
        raise DirectoryBusy("the directory kept changing while this change was made; retry")

    def _load_directory(self, version: int) -> Directory:
        people = self._people
        return people.directory if people.version == version else self.store.load_directory()

    # -- the catalogue -------------------------------------------------------------------------

    def import_catalogue(
        self,
        source: Path | str,
        *,
        dry_run: bool = False,
        format: CatalogueFormat | None = None,
        name: str | None = None,
    ) -> ImportReport:
        """Add or replace the services and categories of a YAML or JSON file (or text),
        ``{"services": [...], "categories": [...]}``; what the file does not name stays
        (retire a service with ``active: false``). Each ``ci_id`` must name a
        ``business_service`` CI (an id, or a key or identifier the graph resolves), each
        owner and default group a group of the directory. Raises ValidationErrors naming
        ``catalogue.services[i]`` and the field; nothing is saved then."""
        data = read_catalogue(source, format=format, name=name)
        data = resolve_service_cis(data, self.graph, self.resolve_ci)
        groups = set(self.directory().groups)
        counts: dict[str, KindCount] = {}
        for _ in range(SAVE_ATTEMPTS):
            version = self.store.version()
            current = self._load_catalogue(version)
            new = Catalogue.from_mapping(with_stored(data, current), groups=groups)
            # the file's records come first in the combined catalogue (see with_stored)
            services = list(new.services.items())[: len(data.get("services") or ())]
            categories = list(new.categories.items())[: len(data.get("categories") or ())]
            counts = {
                "services": _count(services, current.services, new.services),
                "categories": _count(categories, current.categories, new.categories),
            }
            changed_services = _changed(current.services, new.services)
            changed_categories = _changed(current.categories, new.categories)
            if dry_run or not (changed_services or changed_categories):
                return ImportReport(counts=counts, dry_run=dry_run, version=version)
            saved = self.store.save_catalogue(
                changed_services, changed_categories, self.clock(), expected=version
            )
            if saved is not None:
                self._catalogue = _Catalogue(saved, new)
                if self._people.version == version:  # the catalogue only: still valid
                    self._people = replace(self._people, version=saved)
                return ImportReport(counts=counts, dry_run=False, version=saved)
        raise DirectoryBusy("the catalogue kept changing while it was imported; retry")

    def _load_catalogue(self, version: int) -> Catalogue:
        cached = self._catalogue
        return cached.catalogue if cached.version == version else self.store.load_catalogue()


def _key(record: Agent | Group | Organisation | Contact) -> str:
    return record.login if isinstance(record, Agent) else record.id


def _merged(
    current: Directory,
    *,
    agents: Sequence[Agent] = (),
    groups: Sequence[Group] = (),
    organisations: Sequence[Organisation] = (),
    contacts: Sequence[Contact] = (),
) -> Directory:
    return current.merged(
        agents=agents, groups=groups, organisations=organisations, contacts=contacts
    )


def _matches(contact: Contact, needle: str) -> bool:
    return (
        needle in contact.name.casefold()
        or needle in contact.id.casefold()
        or (contact.email is not None and needle in contact.email.casefold())
    )


# -- what a group manager may do --------------------------------------------------------------


def managed_groups(directory: Directory, manager: str) -> set[str]:
    """The groups ``manager`` manages; an unknown or inactive manager manages none."""
    agent = directory.agents.get(manager)
    if agent is None or not agent.active:
        return set()
    return {g.id for g in directory.groups.values() if g.manager == manager}


def _check_agent_edit(directory: Directory, manager: str, old: Agent | None, new: Agent) -> None:
    mine = managed_groups(directory, manager)
    if not mine:
        raise NotPermitted(f"'{manager}' manages no group", field="login")
    before = set(old.groups) if old is not None else set()
    outside = sorted((before ^ set(new.groups)) - mine)
    if outside:
        raise NotPermitted(
            f"'{manager}' does not manage {', '.join(outside)} (manages {', '.join(sorted(mine))})",
            field="groups",
        )
    if not (set(new.groups) | before) & mine:
        raise NotPermitted(
            f"a group manager edits the agents of their groups: put '{new.login}' in one of "
            f"{', '.join(sorted(mine))}",
            field="groups",
        )
    roles = old.roles if old is not None else (DeskRole.AGENT,)
    if set(new.roles) != set(roles):
        raise NotPermitted("roles are granted by an admin", field="roles")


def _check_group_edit(directory: Directory, manager: str, old: Group | None, new: Group) -> None:
    if old is None:
        raise NotPermitted("groups are created by an admin", field="id")
    if old.id not in managed_groups(directory, manager):
        raise NotPermitted(f"'{manager}' does not manage group '{old.id}'", field="id")
    if new.manager != old.manager:
        raise NotPermitted("a group's manager is changed by an admin", field="manager")
