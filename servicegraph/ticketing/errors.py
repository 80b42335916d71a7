"""Domain exceptions of ticketing. Entry points (CLI, HTTP, GraphQL) translate them.

They derive from ``CmdbError`` so that every entry point's one handler for "an error the
product raises on purpose" covers them too. Bad input raises
``servicegraph.cmdb.errors.ValidationFailed`` naming the field, as everywhere else.
"""

from __future__ import annotations

from servicegraph.cmdb.errors import CmdbError


class TicketingError(CmdbError):
    """Base class of the errors ticketing raises on purpose."""


class TicketNotFound(TicketingError):
    """An incident, problem or change id that the store does not hold."""

    def __init__(self, kind: str, ticket_id: str, *, field: str | None = None) -> None:
        self.kind = kind
        self.ticket_id = ticket_id
        self.field = field
        super().__init__(f"no {kind} with id '{ticket_id}'")


class InvalidTransition(TicketingError):
    """A step the ticket's state does not allow (resolving a resolved incident, ...)."""

    def __init__(self, ticket_id: str, message: str) -> None:
        self.ticket_id = ticket_id
        self.reason = message
        super().__init__(f"{ticket_id}: {message}")
