"""The ticket service's reads: one ticket, pages of a listing by cursor, a group's queue
and an agent's, a ticket's links and history.

Kept apart from ``tickets.TicketService`` (which inherits them) so that the module of
the service's writes stays readable; these hold no rule beyond checking what a caller
asks for (page sizes, aware times, priorities, that the group or agent exists).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.errors import TicketNotFound
from servicegraph.ticketing.model import Incident, TicketLink, WorklogEntry
from servicegraph.ticketing.paging import Page, decode_cursor, page_of
from servicegraph.ticketing.people import Directory
from servicegraph.ticketing.ports import IncidentFilter, TicketOrder, TicketStore

MAX_PAGE = 1000


def _page_size(value: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE:
        raise ValidationFailed(f"must be between 1 and {MAX_PAGE}", field=field)
    return value


class TicketReads:
    """What ``TicketService`` answers without writing; it sets ``store`` and ``directory``."""

    store: TicketStore
    directory: Callable[[], Directory]

    def get(self, ticket_id: str, *, field: str = "ticket_id") -> Incident:
        ticket = self.store.get_incidents([ticket_id]).get(ticket_id)
        if ticket is None:
            raise TicketNotFound("ticket", ticket_id, field=field)
        return ticket

    def get_many(self, ids: Iterable[str]) -> dict[str, Incident]:
        return self.store.get_incidents(ids)

    def find(self, query: IncidentFilter, *, after: str | None = None) -> Page[Incident]:
        """A page of ``query.limit`` tickets; ``after`` is the previous page's cursor."""
        size = _page_size(query.limit, "first")
        for value, name in (
            (query.opened_since, "opened_since"),
            (query.resolved_before, "resolved_before"),
        ):
            if value is not None and value.tzinfo is None:
                raise ValidationFailed("needs a time zone (e.g. 2026-11-01T12:00:00Z)", field=name)
        if query.max_priority is not None and not 1 <= query.max_priority <= 5:
            raise ValidationFailed("must be a priority from 1 to 5", field="max_priority")
        key = decode_cursor(after, query.order) if after is not None else query.after
        rows = self.store.find_incidents(replace(query, after=key, limit=size + 1))
        return page_of(rows, query.order, size)

    def queue(
        self,
        group: str,
        *,
        first: int = 50,
        after: str | None = None,
        order: TicketOrder = TicketOrder.QUEUE,
    ) -> Page[Incident]:
        """The group's active tickets, most urgent first, oldest first within a priority;
        with ``order`` DUE, by SLA due time (breached first, no clocks last)."""
        self.directory().group(group, field="group")
        query = IncidentFilter(assignment_group=group, open=True, order=order, limit=first)
        return self.find(query, after=after)

    def mine(
        self,
        agent: str,
        *,
        first: int = 50,
        after: str | None = None,
        order: TicketOrder = TicketOrder.QUEUE,
    ) -> Page[Incident]:
        """The agent's active tickets in queue (or due) order (an inactive agent's too:
        handing them over starts from this list)."""
        if agent not in self.directory().agents:
            raise ValidationFailed(f"no agent with login '{agent}'", field="agent")
        query = IncidentFilter(assignee=agent, open=True, order=order, limit=first)
        return self.find(query, after=after)

    def links(self, ticket_id: str) -> list[TicketLink]:
        self.get(ticket_id)
        return self.store.links_of([ticket_id]).get(ticket_id, [])

    def links_of(self, ticket_ids: Iterable[str]) -> dict[str, list[TicketLink]]:
        """The links of many tickets in one read (a page of tickets asking for theirs);
        tickets without links, or unknown ones, are absent."""
        return self.store.links_of(ticket_ids)

    def history(self, ticket_id: str) -> list[WorklogEntry]:
        self.get(ticket_id)
        return self.store.worklog([ticket_id]).get(ticket_id, [])
