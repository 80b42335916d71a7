"""The service desk in GraphQL: pages of tickets, an agent's and a group's queue, the
mutations that raise and work tickets, and a subscription to a group's tickets.

Everything calls the desk's ticket service (``servicegraph.ticketing.tickets``, wired as
``services.desk.tickets``), which checks and logs every step; this module only reads
arguments, resolves CI references and turns the service's refusals into the members of
``IncidentResult`` (``InvalidInput`` naming the field as the client wrote it, ``NotFound``,
``InvalidState`` with the steps allowed instead). Tickets are shown as ``Incident``, the
one type of the desk's ticket record (its desk fields in ``desk_types``).

Pages are keyset pages: ``first`` (1..500) tickets after the opaque cursor ``after``, and
``pageInfo.endCursor`` for the next page, null on the last; however many tickets there
are, each page costs the same.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Annotated

import strawberry

from servicegraph.access.model import Permission
from servicegraph.cmdb.errors import CmdbError, ValidationFailed
from servicegraph.cmdb.model import utcnow
from servicegraph.graphql.base import mutation_field, query_field, subscription_field
from servicegraph.graphql.cmdb import PageInfo
from servicegraph.graphql.context import Info
from servicegraph.graphql.desk_types import (
    CreateTicketInput,
    LinkKindEnum,
    TicketChangesInput,
    TicketFilterInput,
    TicketOrderEnum,
    ci_ids,
)
from servicegraph.graphql.errors import as_failure, renamed
from servicegraph.graphql.monitoring import IncidentType
from servicegraph.graphql.tickets import IncidentPayload, IncidentResult
from servicegraph.ticketing.model import Incident, LinkKind, TicketType
from servicegraph.ticketing.paging import Page
from servicegraph.ticketing.ports import TicketOrder
from servicegraph.ticketing.tickets import TicketChanges

MAX_PAGE = 500  # the complexity limit's largest page, too


def page_size(first: int) -> int:
    if isinstance(first, bool) or not 1 <= first <= MAX_PAGE:
        raise ValidationFailed(f"must be between 1 and {MAX_PAGE}", field="first")
    return first


def caller(info: Info) -> str:
    """The login of the agent the request's token belongs to (its holder)."""
    principal = info.context.principal
    agent = principal.agent if principal is not None else None
    if agent is None:
        raise ValidationFailed(
            "this token belongs to no agent, so it has no tickets of its own; use a token "
            "of an agent (`servicegraph token create --holder LOGIN`) or "
            "tickets(filter: {assignee: LOGIN})",
            field="token",
        )
    return agent


# -- pages ---------------------------------------------------------------------------------------


@strawberry.type(
    description="A page of tickets; pass pageInfo.endCursor as `after` for the next one."
)
class TicketConnection:
    items: list[IncidentType]
    page_info: PageInfo

    @classmethod
    def of(cls, page: Page[Incident]) -> TicketConnection:
        return cls(
            items=[IncidentType.of(i) for i in page.items],
            page_info=PageInfo(
                has_next_page=page.next_cursor is not None, end_cursor=page.next_cursor
            ),
        )


@strawberry.type
class DeskQuery:
    @query_field(
        description="Tickets, a page at a time: newest first, in queue order (priority, "
        "then age) with order: QUEUE, or by SLA due time with order: DUE (breached first, "
        "tickets without clocks last). Pass pageInfo.endCursor as `after` for the next page."
    )
    def tickets(
        self,
        info: Info,
        filter: TicketFilterInput | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> TicketConnection:
        query = (filter or TicketFilterInput()).to_domain(info, page_size(first))
        return TicketConnection.of(info.context.services.desk.tickets.find(query, after=after))

    @query_field(
        description="Your active tickets (the agent your token belongs to holds them), by "
        "priority then age, or by SLA due time with order: DUE."
    )
    def my_tickets(
        self,
        info: Info,
        first: int = 50,
        after: str | None = None,
        order: TicketOrderEnum = TicketOrder.QUEUE,  # type: ignore[valid-type]
    ) -> TicketConnection:
        tickets = info.context.services.desk.tickets
        page = tickets.mine(caller(info), first=page_size(first), after=after, order=order)
        return TicketConnection.of(page)

    @query_field(
        description="A group's queue: its active tickets by priority, then age; or by SLA due "
        "time with order: DUE (breached first, tickets without clocks last)."
    )
    def group_queue(
        self,
        info: Info,
        group: str,
        first: int = 50,
        after: str | None = None,
        order: TicketOrderEnum = TicketOrder.QUEUE,  # type: ignore[valid-type]
    ) -> TicketConnection:
        tickets = info.context.services.desk.tickets
        page = tickets.queue(group, first=page_size(first), after=after, order=order)
        return TicketConnection.of(page)


# -- mutations -----------------------------------------------------------------------------------


# The service names the ticket a step works on ``ticket_id`` (a link's ends ``source_id``
# and ``target_id``, as the arguments are named); the mutations' argument is ``id``.
_TICKET = {"ticketId": "id"}
# ... and the lifecycle a step ``transition``, an assignment's agent ``assignee`` and its
# group ``assignment_group``, an override's reason ``priority_reason``.
_STEP = {**_TICKET, "transition": "step"}
_ASSIGNMENT = {**_TICKET, "assignee": "agent", "assignmentGroup": "group"}
_OVERRIDE = {**_TICKET, "priorityReason": "reason"}


async def _result(
    info: Info,
    call: Callable[[], Incident],
    *,
    prefix: str = "",
    renames: Mapping[str, str] = _TICKET,
) -> IncidentResult:
    """Run ``call`` as a write (in a worker thread, with the caller as the actor; it reads
    its arguments there too, CI references included, so that their refusals are answered
    the same way) and answer the ticket, or the failure naming ``prefix`` + the field
    (``renames``: the service's name of a field -> the argument's)."""
    try:
        ticket = await info.context.write(call)
    except CmdbError as exc:
        failure = as_failure(exc, prefix)
        if failure is None:
            raise
        return renamed(failure, renames)  # type: ignore[return-value]  # never Conflicts
    return IncidentPayload(incident=IncidentType.of(ticket))


@strawberry.type
class DeskMutation:
    @mutation_field(Permission.WORK_INCIDENTS, description="Raise an incident (by an agent).")
    async def create_incident(self, info: Info, input: CreateTicketInput) -> IncidentResult:
        tickets = info.context.services.desk.tickets

        return await _result(
            info,
            lambda: tickets.create(input.to_domain(info, TicketType.INCIDENT)),
            prefix="input.",
        )

    @mutation_field(Permission.WORK_INCIDENTS, description="Raise a service request.")
    async def create_service_request(self, info: Info, input: CreateTicketInput) -> IncidentResult:
        tickets = info.context.services.desk.tickets

        return await _result(
            info,
            lambda: tickets.create(input.to_domain(info, TicketType.SERVICE_REQUEST)),
            prefix="input.",
        )

    @mutation_field(
        Permission.WORK_INCIDENTS,
        description="Take a lifecycle step (start, pend, resume, resolve, close, cancel, "
        "reopen, assign) or move to a status (RESOLVED); Incident.allowedSteps lists the "
        "steps allowed now. "
        "pend needs pendingReason, resolve resolutionCode, close closeCode, cancel and "
        "reopen a reason.",
    )
    async def transition_ticket(
        self,
        info: Info,
        id: strawberry.ID,
        step: str,
        pending_reason: str | None = None,
        resolution_code: str | None = None,
        resolution: str | None = None,
        close_code: str | None = None,
        reason: str | None = None,
    ) -> IncidentResult:
        tickets = info.context.services.desk.tickets
        return await _result(
            info,
            lambda: tickets.transition(
                str(id),
                step.lower(),  # lifecycle names are lower case; GraphQL shows RESOLVED
                pending_reason=pending_reason,
                resolution_code=resolution_code,
                resolution=resolution,
                close_code=close_code,
                reason=reason,
            ),
            renames=_STEP,
        )

    @mutation_field(
        Permission.WORK_INCIDENTS,
        description="Give the ticket to a group, to an agent (a member of its group), or both.",
    )
    async def assign_ticket(
        self, info: Info, id: strawberry.ID, group: str | None = None, agent: str | None = None
    ) -> IncidentResult:
        tickets = info.context.services.desk.tickets
        return await _result(
            info, lambda: tickets.assign(str(id), group=group, agent=agent), renames=_ASSIGNMENT
        )

    @mutation_field(Permission.WORK_INCIDENTS, description="Change the ticket's fields.")
    async def update_ticket(
        self, info: Info, id: strawberry.ID, changes: TicketChangesInput
    ) -> IncidentResult:
        tickets = info.context.services.desk.tickets

        return await _result(
            info, lambda: tickets.update(str(id), changes.to_domain(info)), prefix="changes."
        )

    @mutation_field(
        Permission.WORK_INCIDENTS,
        description="Set the priority instead of the impact x urgency matrix, saying why.",
    )
    async def override_priority(
        self, info: Info, id: strawberry.ID, priority: int, reason: str
    ) -> IncidentResult:
        tickets = info.context.services.desk.tickets
        return await _result(
            info, lambda: tickets.override_priority(str(id), priority, reason), renames=_OVERRIDE
        )

    @mutation_field(
        Permission.WORK_INCIDENTS,
        description="Add a comment to its history: an internal note, or with toRequester a "
        "reply the requester sees (and is told of; the first is the ticket's first response).",
    )
    async def comment_on_ticket(
        self, info: Info, id: strawberry.ID, text: str, to_requester: bool = False
    ) -> IncidentResult:
        tickets = info.context.services.desk.tickets
        return await _result(
            info, lambda: tickets.comment(str(id), text, to_requester=to_requester)
        )

    @mutation_field(
        Permission.WORK_INCIDENTS,
        description="Link two tickets (the source is the parent of, a duplicate of, caused "
        "by or related to the target); answers the source with its links.",
    )
    async def link_tickets(
        self,
        info: Info,
        source_id: strawberry.ID,
        kind: LinkKindEnum,  # type: ignore[valid-type]
        target_id: strawberry.ID,
    ) -> IncidentResult:
        tickets = info.context.services.desk.tickets

        def link() -> Incident:
            tickets.link(str(source_id), LinkKind(kind), str(target_id))
            return tickets.get(str(source_id))

        return await _result(info, link)

    @mutation_field(Permission.WORK_INCIDENTS, description="Remove a link; answers the source.")
    async def unlink_tickets(
        self,
        info: Info,
        source_id: strawberry.ID,
        kind: LinkKindEnum,  # type: ignore[valid-type]
        target_id: strawberry.ID,
    ) -> IncidentResult:
        tickets = info.context.services.desk.tickets

        def unlink() -> Incident:
            tickets.unlink(str(source_id), LinkKind(kind), str(target_id))
            return tickets.get(str(source_id))

        return await _result(info, unlink)

    @mutation_field(
        Permission.WORK_INCIDENTS,
        description="Say which CIs the ticket affects (the whole list; an unmapped "
        "monitoring incident gets its CI so).",
    )
    async def set_affected_cis(
        self,
        info: Info,
        id: strawberry.ID,
        refs: Annotated[list[strawberry.ID], strawberry.argument(name="ciIds")],
    ) -> IncidentResult:
        tickets = info.context.services.desk.tickets

        return await _result(
            info,
            lambda: tickets.update(
                str(id), TicketChanges(affected_ci_ids=ci_ids(info, refs, "ciIds"))
            ),
        )


# -- subscription --------------------------------------------------------------------------------

_LOOKBACK = dt.timedelta(seconds=10)  # as subscriptions.py: late commits with older times
_BATCH = 500
_EPOCH = dt.datetime.min.replace(tzinfo=dt.UTC)


@strawberry.enum
class TicketChangeKind(enum.Enum):
    OPENED = "opened"  # raised after the subscription started
    CHANGED = "changed"  # any other change, including arriving in the group
    LEFT = "left"  # moved to another group


@strawberry.type(description="A ticket that was raised or changed, as it is now.")
class TicketChange:
    kind: TicketChangeKind
    ticket: IncidentType


def _kind(
    ticket: Incident, group: str | None, newest_before: int, seen: set[str]
) -> TicketChangeKind | None:
    """What a change means to a subscriber of ``group`` (``seen``: the tickets known to
    be in it, updated here); None when it does not concern them."""
    member = group is None or ticket.assignment_group == group
    was = ticket.id in seen
    if not member:
        seen.discard(ticket.id)
        return TicketChangeKind.LEFT if was else None
    seen.add(ticket.id)
    if not was and ticket.number > newest_before:
        return TicketChangeKind.OPENED
    return TicketChangeKind.CHANGED


@strawberry.type
class DeskSubscription:
    @subscription_field(
        description="Tickets of a group (or every ticket) as they are raised and change: "
        "steps, assignment, priority, fields, comments; LEFT when one moves to another group."
    )
    async def ticket_changed(
        self, info: Info, group: str | None = None
    ) -> AsyncGenerator[TicketChange, None]:
        desk = info.context.services.desk
        interval = info.context.services.settings.graphql.subscription_poll_s
        newest_before = desk.incidents.last_number()
        high_water = utcnow()
        seen: set[str] = set()
        if group is not None:  # so that a ticket leaving the group is told
            seen.update(_queue_ids(desk.tickets.queue, group))
        sent: dict[str, dt.datetime] = {
            t.id: t.updated_at for t in desk.incidents.updated_since(high_water - _LOOKBACK, _BATCH)
        }
        while True:
            await asyncio.sleep(interval)
            changed = desk.incidents.updated_since(high_water - _LOOKBACK, _BATCH)
            info.context.fresh_loaders()
            for ticket in changed:
                if sent.get(ticket.id, _EPOCH) >= ticket.updated_at:
                    continue
                sent[ticket.id] = ticket.updated_at
                high_water = max(high_water, ticket.updated_at)
                kind = _kind(ticket, group, newest_before, seen)
                if kind is not None:
                    yield TicketChange(kind=kind, ticket=IncidentType.of(ticket))
            horizon = high_water - _LOOKBACK
            for ticket_id in [i for i, at in sent.items() if at < horizon]:
                del sent[ticket_id]


def _queue_ids(queue: Callable[..., Page[Incident]], group: str) -> list[str]:
    """The ids of every active ticket of ``group``, page by page (this also refuses an
    unknown group before the subscription starts)."""
    ids: list[str] = []
    after: str | None = None
    while True:
        page = queue(group, first=MAX_PAGE, after=after)
        ids.extend(t.id for t in page.items)
        if page.next_cursor is None:
            return ids
        after = page.next_cursor
