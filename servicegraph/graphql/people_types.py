"""The GraphQL types of the desk's people and service catalogue (``Agent``, ``Group``,
``Organisation``, ``Contact`` and its pages, ``Service``, ``Category``); the queries and
mutations that use them are in ``people``. References between them (a group's members, a
service's owner group, a category's children) resolve from the directory's cached
snapshot, so nesting them costs no store reads.
"""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from servicegraph.graphql.cmdb import PageInfo
from servicegraph.graphql.cmdb_types import CIType, load_ci
from servicegraph.graphql.context import Info
from servicegraph.ticketing.catalogue import Category, Defaults, Service
from servicegraph.ticketing.desk_directory import DeskDirectory
from servicegraph.ticketing.model import TicketType
from servicegraph.ticketing.people import Agent, Contact, DeskRole, Group, Organisation

DeskRoleEnum = strawberry.enum(DeskRole, name="DeskRole")
TicketTypeEnum = strawberry.enum(TicketType, name="TicketType")


def desk_of(info: Info) -> DeskDirectory:
    return info.context.services.directory


# -- types ------------------------------------------------------------------------------------


@strawberry.type(name="Agent", description="Someone who works tickets.")
class AgentType:
    login: str
    name: str
    email: str
    phone: str | None
    roles: list[DeskRoleEnum]  # type: ignore[valid-type]
    active: bool = strawberry.field(description="Inactive agents keep their history only.")
    group_ids: list[str]

    @classmethod
    def of(cls, a: Agent) -> AgentType:
        return cls(
            login=a.login,
            name=a.name,
            email=a.email,
            phone=a.phone,
            roles=list(a.roles),
            active=a.active,
            group_ids=list(a.groups),
        )

    @strawberry.field(description="The groups it works in.")
    def groups(self, info: Info) -> list[GroupType]:
        groups = desk_of(info).directory().groups
        return [GroupType.of(groups[g]) for g in self.group_ids if g in groups]


@strawberry.type(name="Group", description="An assignment group (a support team, a queue).")
class GroupType:
    id: strawberry.ID
    name: str
    email: str | None
    description: str
    manager_login: str | None
    member_logins: list[str]

    @classmethod
    def of(cls, g: Group) -> GroupType:
        return cls(
            id=strawberry.ID(g.id),
            name=g.name,
            email=g.email,
            description=g.description,
            manager_login=g.manager,
            member_logins=list(g.members),
        )

    @strawberry.field
    def manager(self, info: Info) -> AgentType | None:
        agent = desk_of(info).directory().agents.get(self.manager_login or "")
        return AgentType.of(agent) if agent is not None else None

    @strawberry.field(description="Its agents by login; inactive ones only when asked for.")
    def members(self, info: Info, include_inactive: bool = False) -> list[AgentType]:
        agents = desk_of(info).directory().agents
        found = (agents[m] for m in self.member_logins if m in agents)
        return [AgentType.of(a) for a in found if a.active or include_inactive]


@strawberry.type(name="Organisation", description="A customer; its domains match mail.")
class OrganisationType:
    id: strawberry.ID
    name: str
    domains: list[str]
    notes: str

    @classmethod
    def of(cls, o: Organisation) -> OrganisationType:
        return cls(id=strawberry.ID(o.id), name=o.name, domains=list(o.domains), notes=o.notes)


@strawberry.type(name="Contact", description="A requester (an end user).")
class ContactType:
    id: strawberry.ID
    name: str
    email: str | None
    phone: str | None
    vip: bool
    active: bool
    organisation_id: str | None

    @classmethod
    def of(cls, c: Contact) -> ContactType:
        return cls(
            id=strawberry.ID(c.id),
            name=c.name,
            email=c.email,
            phone=c.phone,
            vip=c.vip,
            active=c.active,
            organisation_id=c.organisation,
        )

    @strawberry.field(description="Its own organisation, else the one of its mail domain.")
    def organisation(self, info: Info) -> OrganisationType | None:
        d = desk_of(info).directory()
        contact = d.contacts.get(str(self.id))
        org = d.organisation_of(contact) if contact is not None else None
        return OrganisationType.of(org) if org is not None else None


@strawberry.type(name="ContactEdge")
class ContactEdge:
    cursor: str
    node: ContactType


@strawberry.type(name="ContactConnection")
class ContactConnection:
    edges: list[ContactEdge]
    nodes: list[ContactType]
    page_info: PageInfo


@strawberry.type(name="TicketDefaults", description="What a new ticket gets by default.")
class DefaultsType:
    group: str | None
    priority: int | None
    impact: str | None
    urgency: str | None
    custom_fields: JSON

    @classmethod
    def of(cls, d: Defaults) -> DefaultsType:
        return cls(
            group=d.group,
            priority=d.priority,
            impact=d.impact,
            urgency=d.urgency,
            custom_fields=JSON(dict(d.custom_fields)),
        )


@strawberry.type(name="Service", description="An entry of the service catalogue.")
class ServiceType:
    id: strawberry.ID
    name: str
    description: str
    ci_id: strawberry.ID | None
    owner_group_id: str | None
    request_types: list[TicketTypeEnum]  # type: ignore[valid-type]
    defaults: DefaultsType
    active: bool

    @classmethod
    def of(cls, s: Service) -> ServiceType:
        return cls(
            id=strawberry.ID(s.id),
            name=s.name,
            description=s.description,
            ci_id=strawberry.ID(s.ci_id) if s.ci_id else None,
            owner_group_id=s.owner_group,
            request_types=list(s.request_types),
            defaults=DefaultsType.of(s.defaults),
            active=s.active,
        )

    @strawberry.field(description="The business_service CI it stands for.")
    async def ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.ci_id) if self.ci_id else None)

    @strawberry.field
    def owner_group(self, info: Info) -> GroupType | None:
        group = desk_of(info).directory().groups.get(self.owner_group_id or "")
        return GroupType.of(group) if group is not None else None


@strawberry.type(name="Category", description="A node of the category tree (network/vpn).")
class CategoryType:
    path: strawberry.ID
    name: str
    owner_group_id: str | None
    defaults: DefaultsType
    parent_path: str | None

    @classmethod
    def of(cls, c: Category) -> CategoryType:
        return cls(
            path=strawberry.ID(c.path),
            name=c.name,
            owner_group_id=c.owner_group,
            defaults=DefaultsType.of(c.defaults),
            parent_path=c.parent,
        )

    @strawberry.field(description="Its subcategories, by path.")
    def children(self, info: Info) -> list[CategoryType]:
        return [CategoryType.of(c) for c in desk_of(info).catalogue().children(str(self.path))]

    @strawberry.field(description="The ticket types it applies to (its own, else inherited).")
    def types(self, info: Info) -> list[TicketTypeEnum]:  # type: ignore[valid-type]
        return list(desk_of(info).catalogue().types_for(str(self.path)))
