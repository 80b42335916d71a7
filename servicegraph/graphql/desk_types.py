"""The service desk's part of the GraphQL ``Incident`` type, and the records it shows.

An incident record is the desk's ticket (an incident or a service request), so there is
one GraphQL type for both, ``Incident`` (``monitoring``), which takes its desk fields from
``DeskTicketFields`` here: type, channel, requester, service and category, affected CIs,
the priority override, the assignment group, pending reason, resolution and close codes,
tags, custom fields, the routing rule; and, resolved per request, its links, its history
(every field change with the old and new values and the actor) and the lifecycle steps the
caller may take now. Also the inputs of the desk's queries and mutations (a ticket
filter, a new ticket, changes); the queries, mutations and subscription are in ``desk``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.scalars import JSON

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.graphql.base import Ticket, TicketStatusEnum, WorklogKindEnum, aware
from servicegraph.graphql.cmdb import CIType, resolve_ref
from servicegraph.graphql.context import Info
from servicegraph.graphql.errors import ArgumentInvalid
from servicegraph.graphql.sla_types import TicketSla
from servicegraph.ticketing.lifecycle import ActorKind
from servicegraph.ticketing.model import Channel, Incident, LinkKind, TicketLink, TicketType
from servicegraph.ticketing.model import WorklogEntry as DomainEntry
from servicegraph.ticketing.ports import IncidentFilter, TicketOrder
from servicegraph.ticketing.tickets import NewTicket, TicketChanges, TicketService

TicketTypeEnum = strawberry.enum(TicketType, name="TicketType")
ChannelEnum = strawberry.enum(Channel, name="Channel")
LinkKindEnum = strawberry.enum(LinkKind, name="LinkKind")
TicketOrderEnum = strawberry.enum(TicketOrder, name="TicketOrder")

_CHANGE_PREFIX = "chg-"  # a caused_by_change link points at a change, not a ticket


@strawberry.type(
    name="TicketHistoryEntry",
    description="One entry of a ticket's history: a lifecycle step, a field change, a "
    "routing decision, a comment ... with who made it and when.",
)
class HistoryEntry:
    at: dt.datetime
    actor: str = strawberry.field(
        description="The agent (an API token's holder, the CLI user) or 'correlation', ..."
    )
    kind: WorklogKindEnum  # type: ignore[valid-type]
    text: str = strawberry.field(description="The step's name, the comment, the reason ...")
    field: str | None = strawberry.field(
        description="The field a TRANSITION (status) or CHANGED entry changed."
    )
    old: str | None = strawberry.field(description="Its value before, as text (JSON for lists).")
    new: str | None = strawberry.field(description="Its value after.")

    @classmethod
    def of(cls, entry: DomainEntry) -> HistoryEntry:
        return cls(
            at=entry.at,
            actor=entry.actor,
            kind=entry.kind,
            text=entry.text,
            field=entry.field,
            old=entry.old,
            new=entry.new,
        )


@strawberry.type(
    name="TicketLink",
    description="A link between two tickets, stored once from source to target: the source "
    "is the parent of (PARENT_OF), a duplicate of (DUPLICATE_OF), caused by the change "
    "(CAUSED_BY_CHANGE) or related to (RELATED) the target.",
)
class TicketLinkType:
    source_id: strawberry.ID
    kind: LinkKindEnum  # type: ignore[valid-type]
    target_id: strawberry.ID
    created_at: dt.datetime
    created_by: str

    @classmethod
    def of(cls, link: TicketLink) -> TicketLinkType:
        return cls(
            source_id=strawberry.ID(link.source_id),
            kind=link.kind,
            target_id=strawberry.ID(link.target_id),
            created_at=link.created_at,
            created_by=link.created_by,
        )

    @strawberry.field(description="The ticket the link starts from.")
    async def source(self, info: Info) -> Ticket | None:
        return await _ticket(info, str(self.source_id))

    @strawberry.field(description="The ticket (or change) it points at.")
    async def target(self, info: Info) -> Ticket | None:
        return await _ticket(info, str(self.target_id))


async def _ticket(info: Info, ticket_id: str) -> Ticket | None:
    """The incident, or for a change id the change, through the request's loaders."""
    if ticket_id.startswith(_CHANGE_PREFIX):
        from servicegraph.graphql.change_types import ChangeType

        change = await info.context.loaders.changes.load(ticket_id)
        return ChangeType.of(change) if change is not None else None
    from servicegraph.graphql.monitoring import IncidentType

    incident = await info.context.loaders.incidents.load(ticket_id)
    return IncidentType.of(incident) if incident is not None else None


def desk_values(i: Incident) -> dict[str, Any]:
    """The ``DeskTicketFields`` of ``i``, for ``IncidentType.of``."""
    return {
        "ticket_type": i.type,
        "channel": i.channel,
        "description": i.description,
        "requester": i.requester,
        "organisation": i.organisation,
        "service": i.service,
        "category": i.category,
        "affected_ci_ids": [strawberry.ID(c) for c in i.affected_ci_ids],
        "priority_overridden": i.priority_overridden,
        "priority_reason": i.priority_reason,
        "priority_set_by": i.priority_set_by,
        "priority_floor": i.priority_floor,
        "priority_ceiling": i.priority_ceiling,
        "assignment_group": i.assignment_group,
        "pending_reason": i.pending_reason,
        "resolution_code": i.resolution_code,
        "close_code": i.close_code,
        "closed_at": i.closed_at,
        "tags": list(i.tags),
        "custom_fields": JSON(dict(i.custom_fields)),
        "routed_by": i.routed_by,
        "created_by": i.created_by,
    }


@strawberry.type(description="The desk's fields of a ticket (see Incident).")
class DeskTicketFields:
    ticket_type: TicketTypeEnum = strawberry.field(  # type: ignore[valid-type]
        name="type", description="An incident (something broken) or a service request."
    )
    channel: ChannelEnum = strawberry.field(  # type: ignore[valid-type]
        description="How it reached the desk."
    )
    description: str
    requester: str | None = strawberry.field(description="The contact who asked (their id).")
    organisation: str | None = strawberry.field(description="The requester's organisation.")
    service: str | None = strawberry.field(description="The catalogue service (its id).")
    category: str | None = strawberry.field(
        description="The category path: category/subcategory, e.g. network/vpn."
    )
    affected_ci_ids: list[strawberry.ID] = strawberry.field(
        description="CIs an agent said it affects, beyond the root cause and the alerts' CIs."
    )
    priority_overridden: bool = strawberry.field(
        description="The priority was set by an agent (or is the catalogue's default) "
        "instead of the impact x urgency matrix."
    )
    priority_reason: str | None = strawberry.field(description="Why, when overridden.")
    priority_set_by: str | None = strawberry.field(description="Who, when overridden.")
    priority_floor: int | None = strawberry.field(
        description="The least urgent priority routing allows (1 is the most urgent: 2 means "
        "at least as urgent as P2): the matrix's priority is raised to it, never held at it "
        "as impact or urgency grow. Null when no rule set one; an agent's override is not "
        "bounded."
    )
    priority_ceiling: int | None = strawberry.field(
        description="The most urgent priority routing allows (4 means at most as urgent as "
        "P4): the matrix's priority is lowered to it whenever it moves above. Null when no "
        "rule set one; an agent's override is not bounded."
    )
    assignment_group: str | None = strawberry.field(description="The group whose queue holds it.")
    pending_reason: str | None = strawberry.field(
        description="On whom it waits while PENDING: awaiting_requester, awaiting_vendor ..."
    )
    resolution_code: str | None
    close_code: str | None
    closed_at: dt.datetime | None
    tags: list[str]
    custom_fields: JSON = strawberry.field(
        description="The values of the custom fields declared for its type and category."
    )
    routed_by: str | None = strawberry.field(
        description="The routing rule (or default:...) that chose its group."
    )
    created_by: str | None = strawberry.field(
        description="Who raised it; null when correlation did."
    )

    if TYPE_CHECKING:  # set on Incident, which these fields are part of
        id: strawberry.ID
        status: TicketStatusEnum  # type: ignore[valid-type]
        resolved_at: dt.datetime | None

    @strawberry.field(description="The CIs of affectedCiIds.")
    async def affected_cis(self, info: Info) -> list[CIType]:
        found = await info.context.loaders.cis.load_many([str(c) for c in self.affected_ci_ids])
        return [CIType.of(ci) for ci in found if ci is not None]

    @strawberry.field(
        description="Its SLA clocks now (response and resolution: target, due, elapsed, "
        "remaining, paused, state); null when no SLA policy covers it."
    )
    async def sla(self, info: Info) -> TicketSla | None:
        record = await info.context.loaders.sla.load(str(self.id))
        return TicketSla.of(record) if record is not None else None

    @strawberry.field(description="Links from and to this ticket.")
    async def links(self, info: Info) -> list[TicketLinkType]:
        return [TicketLinkType.of(link) for link in await info.context.loaders.links.load(self.id)]

    @strawberry.field(
        description="Every step and field change, oldest first: status, group, agent, "
        "priority, routing, comments, reopenings ..."
    )
    async def history(self, info: Info) -> list[HistoryEntry]:
        entries = await info.context.loaders.worklog.load(str(self.id))
        return [HistoryEntry.of(e) for e in entries]

    @strawberry.field(
        description="The lifecycle steps you may take now (for transitionTicket's step)."
    )
    def allowed_steps(self, info: Info) -> list[str]:
        return allowed_steps(info.context.services.desk.tickets, self.status, self.resolved_at)


def allowed_steps(
    tickets: TicketService, status: str, resolved_at: dt.datetime | None
) -> list[str]:
    """The steps an agent may take now from ``status`` (reopen only within the window)."""
    policy = tickets.policy
    if status not in policy.lifecycle.states:  # a status the configured lifecycle dropped
        return []
    steps = policy.lifecycle.allowed_names(
        status,
        ActorKind.AGENT,
        resolved_at=resolved_at,
        now=tickets.clock(),
        reopen_window=policy.reopen_window,
    )
    return list(steps)


# -- inputs ------------------------------------------------------------------------------------


def ci_ids(info: Info, refs: list[strawberry.ID] | None, field: str) -> tuple[str, ...] | None:
    """CI ids of references (ids, keys, identifiers); ``None`` when not given."""
    if refs is None:
        return None
    return tuple(resolve_ref(info, str(ref), f"{field}.{n}") for n, ref in enumerate(refs))


def field_values(value: JSON | None, field: str) -> Mapping[str, object] | None:
    """Custom field values as given (the service checks them); ``field`` is the argument's
    path as the client wrote it."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        refused = ValidationFailed("must be an object of field names and values")
        raise ArgumentInvalid(refused, field)
    return dict(value)


@strawberry.input(description="Which tickets: every condition given must hold.")
class TicketFilterInput:
    status: TicketStatusEnum | None = None  # type: ignore[valid-type]
    open: bool | None = strawberry.field(
        default=None, description="True: still worked (NEW to PENDING); false: the others."
    )
    ticket_type: TicketTypeEnum | None = strawberry.field(  # type: ignore[valid-type]
        default=None, name="type"
    )
    channel: ChannelEnum | None = None  # type: ignore[valid-type]
    assignment_group: str | None = None
    assignee: str | None = strawberry.field(default=None, description="An agent's login.")
    unassigned: bool | None = strawberry.field(default=None, description="True: no agent holds it.")
    requester: str | None = strawberry.field(default=None, description="A contact's id.")
    organisation: str | None = None
    service: str | None = None
    category: str | None = strawberry.field(
        default=None, description="This category and those below it (network: network/vpn too)."
    )
    tag: str | None = None
    ci_id: strawberry.ID | None = strawberry.field(
        default=None, description="Root cause or an alert on this CI (id, key or identifier)."
    )
    max_priority: int | None = strawberry.field(
        default=None, description="Only priorities 1..maxPriority."
    )
    opened_since: dt.datetime | None = None
    text: str | None = strawberry.field(default=None, description="In the title, any case.")
    order: TicketOrderEnum = strawberry.field(  # type: ignore[valid-type]
        default=TicketOrder.NEWEST,
        description="NEWEST (highest number first) or QUEUE (priority, then oldest first).",
    )

    def to_domain(self, info: Info, first: int) -> IncidentFilter:
        cis = None
        if self.ci_id is not None:
            cis = (resolve_ref(info, str(self.ci_id), "filter.ciId"),)
        return IncidentFilter(
            status=self.status,
            open=self.open,
            ci_ids=cis,
            max_priority=self.max_priority,
            assignee=self.assignee,
            unassigned=self.unassigned,
            assignment_group=self.assignment_group,
            type=self.ticket_type,
            channel=self.channel,
            requester=self.requester,
            organisation=self.organisation,
            service=self.service,
            category=self.category,
            tag=self.tag,
            opened_since=aware(self.opened_since),
            text=self.text,
            order=self.order,
            limit=first,
        )


@strawberry.input(
    description="A new ticket. What is not given comes from the catalogue's defaults, the "
    "routing rules (the group) and the priority matrix (impact x urgency)."
)
class CreateTicketInput:
    title: str
    description: str | None = None
    channel: ChannelEnum = Channel.API  # type: ignore[valid-type]
    requester: str | None = strawberry.field(
        default=None, description="A contact's id or email; their organisation follows."
    )
    service: str | None = strawberry.field(default=None, description="A catalogue service's id.")
    category: str | None = strawberry.field(default=None, description="A category path.")
    impact: str | None = strawberry.field(default=None, description="high, medium or low.")
    urgency: str | None = strawberry.field(default=None, description="high, medium or low.")
    priority: int | None = strawberry.field(
        default=None, description="1..5 instead of the matrix's: needs priorityReason."
    )
    priority_reason: str | None = None
    assignment_group: str | None = strawberry.field(
        default=None, description="The group; none: the routing rules choose."
    )
    assignee: str | None = strawberry.field(
        default=None, description="An agent's login: a member of the group."
    )
    affected_ci_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="CIs it affects (ids, keys or identifiers)."
    )
    tags: list[str] | None = None
    custom_fields: JSON | None = strawberry.field(
        default=None, description="Values of the custom fields of its type and category."
    )
    parent_id: strawberry.ID | None = strawberry.field(
        default=None, description="A ticket this one is a child of."
    )

    def to_domain(self, info: Info, ticket_type: TicketType) -> NewTicket:
        return NewTicket(
            type=ticket_type,
            title=self.title,
            description=self.description or "",
            channel=self.channel,
            requester=self.requester,
            service=self.service,
            category=self.category,
            impact=self.impact,
            urgency=self.urgency,
            priority=self.priority,
            priority_reason=self.priority_reason,
            assignment_group=self.assignment_group,
            assignee=self.assignee,
            affected_ci_ids=ci_ids(info, self.affected_ci_ids, "input.affectedCiIds") or (),
            tags=tuple(self.tags or ()),
            custom_fields=field_values(self.custom_fields, "input.customFields") or {},
            parent_id=str(self.parent_id) if self.parent_id is not None else None,
        )


@strawberry.input(description="What to change; fields not given stay as they are.")
class TicketChangesInput:
    title: str | None = None
    description: str | None = None
    requester: str | None = strawberry.field(default=None, description="A contact's id or email.")
    service: str | None = None
    category: str | None = None
    impact: str | None = None
    urgency: str | None = None
    affected_ci_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="The whole new list (ids, keys or identifiers)."
    )
    tags: list[str] | None = strawberry.field(default=None, description="The whole new list.")
    custom_fields: JSON | None = strawberry.field(
        default=None, description="Merged into the values it has; a null value clears one."
    )

    def to_domain(self, info: Info) -> TicketChanges:
        return TicketChanges(
            title=self.title,
            description=self.description,
            requester=self.requester,
            service=self.service,
            category=self.category,
            impact=self.impact,
            urgency=self.urgency,
            affected_ci_ids=ci_ids(info, self.affected_ci_ids, "changes.affectedCiIds"),
            tags=tuple(self.tags) if self.tags is not None else None,
            custom_fields=field_values(self.custom_fields, "changes.customFields"),
        )
