"""The desk's people: agents who work tickets, their groups, and the contacts who ask.

Agents belong to groups (Znuny queues' groups, GLPI technician groups, iTop teams); a ticket
is assigned to a group and, within it, to one of its members, as iTop restricts the agent
list to the team. Contacts are the requesters, each optionally of an organisation; an
organisation's mail domains let a mail from an unknown address still find its customer.

``Directory`` is an immutable snapshot of all four, checked as a whole, with the checks the
ticket service runs on every assignment. Every error is ``ValidationFailed`` naming the
field, so entry points translate it like any other bad input.

Membership can be written on either side (an agent's ``groups`` or a group's ``members``),
because import files come in both shapes; the directory holds the union and keeps both
sides in agreement.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed

# Logins and ids: no spaces and none of the CSV list separators (";" and "|").
KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*$")
EMAIL_PATTERN = re.compile(r"^[^@\s;|,<>]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
DOMAIN_PATTERN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")
MAX_NAME = 200


class DeskRole(enum.StrEnum):
    """What a person may do at the desk (granted per agent, beside the API token's role)."""

    AGENT = "agent"  # works tickets of their groups
    GROUP_MANAGER = "group_manager"  # (re)assigns within the groups they manage
    CHANGE_MANAGER = "change_manager"  # approves changes
    ADMIN = "admin"  # edits people, catalogue and routing


def check_key(value: Any, field: str) -> str:
    """A login or id: a non-empty token that survives CSV lists and URLs unchanged."""
    if value is not None and not isinstance(value, str):
        raise ValidationFailed("must be text", field=field)
    text = (value or "").strip()
    if not text:
        raise ValidationFailed("is required", field=field)
    if not KEY_PATTERN.match(text):
        raise ValidationFailed(
            f"'{text}' is not a valid key (letters, digits and _ . @ + -)", field=field
        )
    return text


def check_email(value: Any, field: str = "email") -> str:
    """A plausible mail address (the desk mails it, so obvious typos are refused early)."""
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or not EMAIL_PATTERN.match(text):
        raise ValidationFailed(f"'{value}' is not an email address", field=field)
    return text


def _name(value: Any, field: str = "name") -> str:
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or not text:
        raise ValidationFailed("is required", field=field)
    if len(text) > MAX_NAME:
        raise ValidationFailed(f"is longer than {MAX_NAME} characters", field=field)
    return text


def _optional(value: Any, field: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValidationFailed("must be text", field=field)
    return value.strip()


def _keys(values: Iterable[Any], field: str) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ValidationFailed("must be a list", field=field)
    return tuple(dict.fromkeys(check_key(v, field) for v in values))


def _roles(values: Iterable[Any]) -> tuple[DeskRole, ...]:
    roles: list[DeskRole] = []
    for value in values:
        try:
            roles.append(DeskRole(str(value).strip().lower()))
        except ValueError:
            allowed = ", ".join(r.value for r in DeskRole)
            raise ValidationFailed(f"'{value}' is not one of {allowed}", field="roles") from None
    return tuple(dict.fromkeys(roles))


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # normalising a frozen dataclass in __post_init__


@dataclass(frozen=True, slots=True)
class Agent:
    """Someone who works tickets; ``login`` is the key tickets and worklogs refer to."""

    login: str
    name: str
    email: str
    groups: tuple[str, ...] = ()
    roles: tuple[DeskRole, ...] = (DeskRole.AGENT,)
    active: bool = True  # inactive agents keep their history but take no new tickets
    phone: str | None = None

    def __post_init__(self) -> None:
        _set(self, "login", check_key(self.login, "login"))
        _set(self, "name", _name(self.name))
        _set(self, "email", check_email(self.email))
        _set(self, "groups", _keys(self.groups, "groups"))
        _set(self, "roles", _roles(self.roles))
        _set(self, "phone", _optional(self.phone, "phone"))
        if not isinstance(self.active, bool):
            raise ValidationFailed("must be true or false", field="active")


@dataclass(frozen=True, slots=True)
class Group:
    """An assignment group (a support team); ``id`` is a slug such as ``noc``."""

    id: str
    name: str
    email: str | None = None  # the team's mailbox, notified when a ticket reaches the group
    manager: str | None = None  # an agent login
    members: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        _set(self, "id", check_key(self.id, "id"))
        _set(self, "name", _name(self.name))
        if _optional(self.email, "email") is not None:
            _set(self, "email", check_email(self.email))
        else:
            _set(self, "email", None)
        manager = _optional(self.manager, "manager")
        _set(self, "manager", None if manager is None else check_key(manager, "manager"))
        _set(self, "members", _keys(self.members, "members"))
        _set(self, "description", _optional(self.description, "description") or "")


@dataclass(frozen=True, slots=True)
class Organisation:
    """A customer: contacts belong to one; ``domains`` match mail from unknown senders."""

    id: str
    name: str
    domains: tuple[str, ...] = ()
    notes: str = ""

    def __post_init__(self) -> None:
        _set(self, "id", check_key(self.id, "id"))
        _set(self, "name", _name(self.name))
        if isinstance(self.domains, str):
            raise ValidationFailed("must be a list", field="domains")
        domains = []
        for raw in self.domains:
            domain = str(raw).strip().lower().removeprefix("@")
            if not DOMAIN_PATTERN.match(domain):
                raise ValidationFailed(f"'{raw}' is not a mail domain", field="domains")
            domains.append(domain)
        _set(self, "domains", tuple(dict.fromkeys(domains)))
        _set(self, "notes", _optional(self.notes, "notes") or "")


@dataclass(frozen=True, slots=True)
class Contact:
    """A requester. The email is optional (phone-only callers) but unique when present."""

    id: str
    name: str
    email: str | None = None
    organisation: str | None = None  # an organisation id
    phone: str | None = None
    vip: bool = False  # routing and SLA policies may treat VIPs first
    active: bool = True

    def __post_init__(self) -> None:
        _set(self, "id", check_key(self.id, "id"))
        _set(self, "name", _name(self.name))
        email = _optional(self.email, "email")
        _set(self, "email", None if email is None else check_email(email))
        organisation = _optional(self.organisation, "organisation")
        _set(self, "organisation", organisation and check_key(organisation, "organisation"))
        _set(self, "phone", _optional(self.phone, "phone"))
        for name in ("vip", "active"):
            if not isinstance(getattr(self, name), bool):
                raise ValidationFailed("must be true or false", field=name)


def _frozen(items: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(items))


@dataclass(frozen=True)
class Directory:
    """All agents, groups, organisations and contacts, by key. Build it with ``build``."""

    agents: Mapping[str, Agent] = field(default_factory=dict)
    groups: Mapping[str, Group] = field(default_factory=dict)
    organisations: Mapping[str, Organisation] = field(default_factory=dict)
    contacts: Mapping[str, Contact] = field(default_factory=dict)
    _by_email: Mapping[str, Contact] = field(init=False, repr=False, compare=False)
    _by_domain: Mapping[str, Organisation] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("agents", "groups", "organisations", "contacts"):
            _set(self, name, _frozen(getattr(self, name)))
        by_email = {c.email.casefold(): c for c in self.contacts.values() if c.email}
        by_domain = {d: o for o in self.organisations.values() for d in o.domains}
        _set(self, "_by_email", _frozen(by_email))
        _set(self, "_by_domain", _frozen(by_domain))

    @classmethod
    def build(
        cls,
        *,
        agents: Iterable[Agent] = (),
        groups: Iterable[Group] = (),
        organisations: Iterable[Organisation] = (),
        contacts: Iterable[Contact] = (),
    ) -> Directory:
        """Check references and uniqueness across all four; raises ValidationErrors listing
        every problem. Membership is the union of both sides, written back to both."""
        errors: list[ValidationFailed] = []
        agent_map = _unique("agent", agents, lambda a: a.login, "login", errors)
        group_map = _unique("group", groups, lambda g: g.id, "id", errors)
        org_map = _unique("organisation", organisations, lambda o: o.id, "id", errors)
        contact_map = _unique("contact", contacts, lambda c: c.id, "id", errors)
        _check_people_refs(agent_map, group_map, errors)
        _check_customer_refs(org_map, contact_map, errors)
        if errors:
            raise ValidationErrors(errors)
        pairs = {(a.login, g) for a in agent_map.values() for g in a.groups}
        pairs |= {(m, g.id) for g in group_map.values() for m in g.members}
        groups_of: dict[str, list[str]] = {k: [] for k in agent_map}
        members_of: dict[str, list[str]] = {k: [] for k in group_map}
        for login, group_id in sorted(pairs):
            groups_of[login].append(group_id)
            members_of[group_id].append(login)
        return cls(
            agents={k: replace(a, groups=tuple(groups_of[k])) for k, a in agent_map.items()},
            groups={k: replace(g, members=tuple(members_of[k])) for k, g in group_map.items()},
            organisations=org_map,
            contacts=contact_map,
        )

    def merged(
        self,
        *,
        agents: Iterable[Agent] = (),
        groups: Iterable[Group] = (),
        organisations: Iterable[Organisation] = (),
        contacts: Iterable[Contact] = (),
    ) -> Directory:
        """This directory with the given records added or replaced (an import's upsert).

        A replaced group's ``members`` are its whole membership (the group list is where
        members are removed); an agent's ``groups`` only add memberships."""
        new_groups = {g.id: g for g in groups}
        kept_agents = {
            k: replace(a, groups=tuple(g for g in a.groups if g not in new_groups))
            for k, a in self.agents.items()
        }
        return Directory.build(
            agents={**kept_agents, **{a.login: a for a in agents}}.values(),
            groups={**self.groups, **new_groups}.values(),
            organisations={**self.organisations, **{o.id: o for o in organisations}}.values(),
            contacts={**self.contacts, **{c.id: c for c in contacts}}.values(),
        )

    def agent(self, login: str, *, field: str = "assignee") -> Agent:
        """The active agent with this login; unknown or inactive ones are bad input."""
        found = self.agents.get(login)
        if found is None:
            raise ValidationFailed(f"no agent with login '{login}'", field=field)
        if not found.active:
            raise ValidationFailed(f"agent '{login}' is inactive", field=field)
        return found

    def group(self, group_id: str, *, field: str = "group") -> Group:
        found = self.groups.get(group_id)
        if found is None:
            known = ", ".join(sorted(self.groups)) or "none"
            raise ValidationFailed(f"no group '{group_id}' (groups: {known})", field=field)
        return found

    def check_assignment(self, group_id: str | None, agent_login: str | None) -> None:
        """A ticket may go to a group, and to an agent only within its group (iTop's rule):
        the error says which groups the agent is in, so the fix is obvious."""
        if group_id is not None:
            self.group(group_id)
        if agent_login is None:
            return
        agent = self.agent(agent_login)
        if group_id is not None and group_id not in agent.groups:
            where = ", ".join(agent.groups) or "no group"
            raise ValidationFailed(
                f"agent '{agent_login}' is not a member of group '{group_id}' "
                f"({agent_login} is in: {where})",
                field="assignee",
            )

    def find_contact(self, id_or_email: str) -> Contact | None:
        key = id_or_email.strip()
        return self.contacts.get(key) or self._by_email.get(key.casefold())

    def contact(self, id_or_email: str, *, field: str = "requester") -> Contact:
        """A contact by id or (case-insensitively) by email."""
        found = self.find_contact(id_or_email)
        if found is None:
            raise ValidationFailed(f"no contact with id or email '{id_or_email}'", field=field)
        return found

    def organisation_for_email(self, email: str) -> Organisation | None:
        """The organisation whose domain matches the address; ``mail.acme.com`` falls back
        to ``acme.com`` (the most specific domain wins)."""
        domain = email.rpartition("@")[2].strip().lower()
        while domain:
            if domain in self._by_domain:
                return self._by_domain[domain]
            domain = domain.partition(".")[2]
        return None

    def organisation_of(self, contact: Contact) -> Organisation | None:
        """The contact's own organisation, else the one its mail domain belongs to."""
        if contact.organisation is not None:
            return self.organisations.get(contact.organisation)
        return self.organisation_for_email(contact.email) if contact.email else None

    def group_members(self, group_id: str, *, active_only: bool = True) -> tuple[Agent, ...]:
        """The group's agents by login; inactive ones only when asked for."""
        group = self.group(group_id)
        members = (self.agents[m] for m in group.members)
        return tuple(a for a in members if a.active or not active_only)

    def least_loaded(self, group_id: str, open_counts: Mapping[str, int]) -> str | None:
        """For automatic assignment: the active member with the fewest open tickets (an
        agent missing from ``open_counts`` has none), ties broken by login; None when the
        group has no active member."""
        members = self.group_members(group_id)
        if not members:
            return None
        return min(members, key=lambda a: (open_counts.get(a.login, 0), a.login)).login


def _unique(
    kind: str,
    records: Iterable[Any],
    key: Any,
    field: str,
    errors: list[ValidationFailed],
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for record in records:
        k = key(record)
        if k in found:
            errors.append(ValidationFailed("appears twice", item=f"{kind} '{k}'", field=field))
        found[k] = record
    return found


def _check_people_refs(
    agents: Mapping[str, Agent], groups: Mapping[str, Group], errors: list[ValidationFailed]
) -> None:
    for agent in agents.values():
        item = f"agent '{agent.login}'"
        errors.extend(
            ValidationFailed(f"no group '{g}'", item=item, field="groups")
            for g in agent.groups
            if g not in groups
        )
    for group in groups.values():
        item = f"group '{group.id}'"
        errors.extend(
            ValidationFailed(f"no agent '{m}'", item=item, field="members")
            for m in group.members
            if m not in agents
        )
        if group.manager is not None and group.manager not in agents:
            errors.append(
                ValidationFailed(f"no agent '{group.manager}'", item=item, field="manager")
            )


def _check_customer_refs(
    orgs: Mapping[str, Organisation],
    contacts: Mapping[str, Contact],
    errors: list[ValidationFailed],
) -> None:
    owner: dict[str, str] = {}
    for org in orgs.values():
        for domain in org.domains:
            if domain in owner:
                errors.append(
                    ValidationFailed(
                        f"domain '{domain}' belongs to organisation '{owner[domain]}' too",
                        item=f"organisation '{org.id}'",
                        field="domains",
                    )
                )
            owner.setdefault(domain, org.id)
    emails: dict[str, str] = {}
    for contact in contacts.values():
        item = f"contact '{contact.id}'"
        if contact.organisation is not None and contact.organisation not in orgs:
            errors.append(
                ValidationFailed(
                    f"no organisation '{contact.organisation}'", item=item, field="organisation"
                )
            )
        if contact.email:
            other = emails.setdefault(contact.email.casefold(), contact.id)
            if other != contact.id:
                errors.append(
                    ValidationFailed(f"contact '{other}' has this email", item=item, field="email")
                )
