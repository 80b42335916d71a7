"""The desk's people and service catalogue in GraphQL: agents, groups, organisations,
contacts (a page at a time), services and the category tree; imports and upserts
(``servicegraph.ticketing.desk_directory.DeskDirectory``).

Who may change what: ``manage_people`` (admins) edits every agent and group and imports
people; ``manage_desk`` (group managers) edits contacts, organisations and the catalogue,
and the agents and groups of the groups they manage, as the agent their token belongs to
(``servicegraph token create --holder LOGIN``): an edit outside them is a ``NotPermitted``
failure naming the field.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar, cast

import strawberry

from servicegraph.access.model import Permission
from servicegraph.cmdb.errors import CmdbError, ValidationErrors, ValidationFailed
from servicegraph.graphql.base import mutation_field, query_field
from servicegraph.graphql.cmdb import PageInfo
from servicegraph.graphql.context import Info
from servicegraph.graphql.errors import FieldError, InvalidInput, MutationError, as_failure, camel
from servicegraph.graphql.people_types import (
    AgentType,
    CategoryType,
    ContactConnection,
    ContactEdge,
    ContactType,
    DeskRoleEnum,
    GroupType,
    OrganisationType,
    ServiceType,
    desk_of,
)
from servicegraph.ticketing.catalogue_import import CatalogueFormat
from servicegraph.ticketing.desk_directory import (
    ImportReport,
    NotPermitted,
    encode_cursor,
)
from servicegraph.ticketing.directory import Format, Kind
from servicegraph.ticketing.people import Agent, Contact, Group, Organisation

T = TypeVar("T")

# -- queries ------------------------------------------------------------------------------------


@strawberry.type
class PeopleQuery:
    @query_field(description="Agents by login.")
    def agents(
        self, info: Info, group: str | None = None, active: bool | None = None
    ) -> list[AgentType]:
        return [AgentType.of(a) for a in desk_of(info).agents(group=group, active=active)]

    @query_field()
    def agent(self, info: Info, login: str) -> AgentType | None:
        found = desk_of(info).directory().agents.get(login)
        return AgentType.of(found) if found is not None else None

    @query_field(description="Assignment groups by id.")
    def groups(self, info: Info) -> list[GroupType]:
        return [GroupType.of(g) for g in desk_of(info).groups()]

    @query_field(description="Organisations by id; search names, ids and mail domains.")
    def organisations(self, info: Info, search: str | None = None) -> list[OrganisationType]:
        return [OrganisationType.of(o) for o in desk_of(info).organisations(search=search)]

    @query_field(
        description="Contacts by name, a page at a time (cursor: pageInfo.endCursor); "
        "search matches names, emails and ids."
    )
    def contacts(
        self,
        info: Info,
        first: int = 50,
        after: str | None = None,
        search: str | None = None,
        organisation: str | None = None,
    ) -> ContactConnection:
        page = desk_of(info).contacts(
            first=first, after=after, search=search, organisation=organisation
        )
        nodes = [ContactType.of(c) for c in page.items]
        edges = [
            ContactEdge(cursor=encode_cursor(c), node=n)
            for c, n in zip(page.items, nodes, strict=True)
        ]
        info_ = PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor)
        return ContactConnection(edges=edges, nodes=nodes, page_info=info_)

    @query_field(description="A contact by id or email.")
    def contact(self, info: Info, id_or_email: str) -> ContactType | None:
        found = desk_of(info).directory().find_contact(id_or_email)
        return ContactType.of(found) if found is not None else None

    @query_field(description="The service catalogue, by id.")
    def services(self, info: Info, active: bool | None = None) -> list[ServiceType]:
        services = sorted(desk_of(info).catalogue().services.values(), key=lambda s: s.id)
        return [ServiceType.of(s) for s in services if active is None or s.active is active]

    @query_field(description="The categories under `parent` (the roots when it is null).")
    def categories(self, info: Info, parent: str | None = None) -> list[CategoryType]:
        catalogue = desk_of(info).catalogue()
        if parent is not None:
            catalogue.category(parent, field="parent")
        return [CategoryType.of(c) for c in catalogue.children(parent)]


# -- mutations ----------------------------------------------------------------------------------


@strawberry.type(description="The edit lies outside the groups your token's agent manages.")
class NotPermittedError(MutationError):
    field: str | None


@strawberry.type
class ImportCount:
    kind: str
    created: int
    updated: int
    unchanged: int


@strawberry.type(description="What an import did, or would do with dryRun.")
class ImportPayload:
    counts: list[ImportCount]
    dry_run: bool
    changed: int
    version: int

    @classmethod
    def of(cls, report: ImportReport) -> ImportPayload:
        counts = [
            ImportCount(kind=k, created=c.created, updated=c.updated, unchanged=c.unchanged)
            for k, c in report.counts.items()
        ]
        return cls(
            counts=counts, dry_run=report.dry_run, changed=report.changed, version=report.version
        )


@strawberry.type
class AgentPayload:
    agent: AgentType


@strawberry.type
class GroupPayload:
    group: GroupType


@strawberry.type
class ContactPayload:
    contact: ContactType


@strawberry.type
class OrganisationPayload:
    organisation: OrganisationType


ImportResult = Annotated[ImportPayload | InvalidInput, strawberry.union("ImportResult")]
AgentResult = Annotated[
    AgentPayload | InvalidInput | NotPermittedError, strawberry.union("AgentResult")
]
GroupResult = Annotated[
    GroupPayload | InvalidInput | NotPermittedError, strawberry.union("GroupResult")
]
ContactResult = Annotated[ContactPayload | InvalidInput, strawberry.union("ContactResult")]
OrganisationResult = Annotated[
    OrganisationPayload | InvalidInput, strawberry.union("OrganisationResult")
]


@strawberry.enum(description="Which records a people import holds.")
class PeopleKind(enum.Enum):
    AGENTS = "agents"
    GROUPS = "groups"
    ORGANISATIONS = "organisations"
    CONTACTS = "contacts"


@strawberry.enum
class ImportFormat(enum.Enum):
    CSV = "csv"
    JSON = "json"
    YAML = "yaml"


@strawberry.input
class ImportPeopleInput:
    text: str = strawberry.field(description="CSV (header row) or JSON, as the files of the CLI.")
    kind: PeopleKind | None = strawberry.field(
        default=None, description="Required for CSV and for a JSON list."
    )
    format: ImportFormat | None = strawberry.field(
        default=None, description="CSV or JSON; by default JSON when the text starts with [ or {."
    )
    dry_run: bool = False


@strawberry.input
class ImportCatalogueInput:
    text: str = strawberry.field(
        description='YAML or JSON: {"services": [...], "categories": [...]}.'
    )
    format: ImportFormat | None = None
    dry_run: bool = False


@strawberry.input
class AgentInput:
    login: str
    name: str
    email: str
    groups: list[str] = strawberry.field(
        default_factory=list, description="Its whole membership: it leaves groups not listed."
    )
    roles: list[DeskRoleEnum] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Kept as they are when omitted (agent for a new agent)."
    )
    active: bool = True
    phone: str | None = None


@strawberry.input
class GroupInput:
    id: str
    name: str
    email: str | None = None
    manager: str | None = None
    members: list[str] = strawberry.field(
        default_factory=list, description="Its whole membership, by agent login."
    )
    description: str = ""


@strawberry.input
class OrganisationInput:
    id: str
    name: str
    domains: list[str] = strawberry.field(default_factory=list)
    notes: str = ""


@strawberry.input
class ContactInput:
    id: str
    name: str
    email: str | None = None
    organisation: str | None = None
    phone: str | None = None
    vip: bool = False
    active: bool = True


_PATH = re.compile(r"^[\w.\[\]:]+$")


def _field(e: ValidationFailed, prefix: str) -> str | None:
    """Where the error is, as one path: a record's place (``catalogue.services[0]``,
    ``input.text:3``) and its field; a record named in words stays in the message."""
    item = (e.item or "").replace(": ", ":")
    if item and _PATH.match(item):
        return f"{item}.{camel(e.field)}" if e.field else item
    return camel(e.field, prefix)


def _invalid(exc: CmdbError, prefix: str) -> InvalidInput | None:
    if isinstance(exc, ValidationErrors):
        errors = [FieldError(field=_field(e, prefix), message=str(e)) for e in exc.errors]
        return InvalidInput(message=str(exc), errors=errors)
    if isinstance(exc, ValidationFailed) and exc.item:
        return InvalidInput(
            message=str(exc), errors=[FieldError(field=_field(exc, prefix), message=str(exc))]
        )
    failure = as_failure(exc, prefix)
    return failure if isinstance(failure, InvalidInput) else None


async def _attempt(call: Callable[[], Awaitable[T]], prefix: str = "input.") -> T | InvalidInput:
    """The payload, or the bad input as data; other errors become GraphQL errors."""
    try:
        return await call()
    except CmdbError as exc:
        failure = _invalid(exc, prefix)
        if failure is None:
            raise
        return failure


async def _scoped(
    call: Callable[[], Awaitable[T]], prefix: str = "input."
) -> T | InvalidInput | NotPermittedError:
    """As ``_attempt``, for the edits a group manager may make within their groups."""
    try:
        return await _attempt(call, prefix)
    except NotPermitted as exc:
        return NotPermittedError(message=str(exc), field=camel(exc.field, prefix))


def _manager(info: Info) -> str | None:
    """None when the token may edit every agent and group; else the login of the agent
    whose groups it may edit."""
    principal = info.context.principal
    assert principal is not None  # the permission check let it through
    if principal.can(Permission.MANAGE_PEOPLE):
        return None
    if principal.agent is None:
        raise NotPermitted(
            f"token '{principal.name}' belongs to no agent, so it manages no group; create "
            "it with `servicegraph token create --holder LOGIN`"
        )
    return principal.agent


@strawberry.type
class PeopleMutation:
    @mutation_field(
        Permission.MANAGE_PEOPLE,
        description="Import agents, groups, organisations or contacts from CSV or JSON: all "
        "or nothing; created and updated counted per kind (a replay changes nothing).",
    )
    async def import_people(self, info: Info, input: ImportPeopleInput) -> ImportResult:
        desk = desk_of(info)
        kind: Kind | None = input.kind.value if input.kind else None
        fmt = cast(Format | None, input.format.value if input.format else None)
        if input.format is ImportFormat.YAML:
            return InvalidInput(
                message="people are imported from csv or json",
                errors=[FieldError(field="input.format", message="use CSV or JSON")],
            )

        async def call() -> ImportPayload:
            report = await info.context.write(
                lambda: desk.import_people(
                    [(kind, input.text)], dry_run=input.dry_run, format=fmt, name="input.text"
                )
            )
            return ImportPayload.of(report)

        return await _attempt(call, "")  # errors say where: input.text:<line>.<field>

    @mutation_field(
        Permission.MANAGE_DESK,
        description="Add or replace services and categories from YAML or JSON (what it does "
        "not name stays; retire a service with active: false).",
    )
    async def import_catalogue(self, info: Info, input: ImportCatalogueInput) -> ImportResult:
        desk = desk_of(info)
        fmt = cast(CatalogueFormat | None, input.format.value if input.format else None)
        if input.format is ImportFormat.CSV:
            return InvalidInput(
                message="the catalogue is imported from yaml or json",
                errors=[FieldError(field="input.format", message="use YAML or JSON")],
            )

        async def call() -> ImportPayload:
            report = await info.context.write(
                lambda: desk.import_catalogue(
                    input.text, dry_run=input.dry_run, format=fmt, name="input.text"
                )
            )
            return ImportPayload.of(report)

        return await _attempt(call, "")  # errors say where: input.text:<line>.<field>

    @mutation_field(Permission.MANAGE_DESK, description="Add or replace an agent.")
    async def upsert_agent(self, info: Info, input: AgentInput) -> AgentResult:
        desk = desk_of(info)

        async def call() -> AgentPayload:
            manager = _manager(info)
            old = desk.directory().agents.get(input.login)
            roles = input.roles if input.roles is not None else (old.roles if old else None)
            agent = Agent(
                login=input.login,
                name=input.name,
                email=input.email,
                groups=tuple(input.groups),
                active=input.active,
                phone=input.phone,
                **({"roles": tuple(roles)} if roles is not None else {}),
            )
            saved = await info.context.write(desk.upsert_agent, agent, manager=manager)
            return AgentPayload(agent=AgentType.of(saved))

        return await _scoped(call)

    @mutation_field(
        Permission.MANAGE_DESK,
        description="Deactivate an agent: it keeps its history and groups, takes no new "
        "tickets, and its API tokens stop working.",
    )
    async def deactivate_agent(self, info: Info, login: str) -> AgentResult:
        desk = desk_of(info)

        async def call() -> AgentPayload:
            saved = await info.context.write(desk.deactivate_agent, login, manager=_manager(info))
            return AgentPayload(agent=AgentType.of(saved))

        return await _scoped(call, "")

    @mutation_field(Permission.MANAGE_DESK, description="Add or replace a group.")
    async def upsert_group(self, info: Info, input: GroupInput) -> GroupResult:
        desk = desk_of(info)

        async def call() -> GroupPayload:
            manager = _manager(info)
            group = Group(
                id=input.id,
                name=input.name,
                email=input.email,
                manager=input.manager,
                members=tuple(input.members),
                description=input.description,
            )
            saved = await info.context.write(desk.upsert_group, group, manager=manager)
            return GroupPayload(group=GroupType.of(saved))

        return await _scoped(call)

    @mutation_field(Permission.MANAGE_DESK, description="Add or replace a contact.")
    async def upsert_contact(self, info: Info, input: ContactInput) -> ContactResult:
        desk = desk_of(info)

        async def call() -> ContactPayload:
            contact = Contact(
                id=input.id,
                name=input.name,
                email=input.email,
                organisation=input.organisation,
                phone=input.phone,
                vip=input.vip,
                active=input.active,
            )
            saved = await info.context.write(desk.upsert_contact, contact)
            return ContactPayload(contact=ContactType.of(saved))

        return await _attempt(call)

    @mutation_field(Permission.MANAGE_DESK, description="Add or replace an organisation.")
    async def upsert_organisation(self, info: Info, input: OrganisationInput) -> OrganisationResult:
        desk = desk_of(info)

        async def call() -> OrganisationPayload:
            org = Organisation(
                id=input.id, name=input.name, domains=tuple(input.domains), notes=input.notes
            )
            saved = await info.context.write(desk.upsert_organisation, org)
            return OrganisationPayload(organisation=OrganisationType.of(saved))

        return await _attempt(call)
