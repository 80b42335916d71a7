"""Domain exceptions of ticketing. Entry points (CLI, HTTP, GraphQL) translate them.

They derive from ``CmdbError`` so that every entry point's one handler for "an error the
product raises on purpose" covers them too. Bad input raises
``servicegraph.cmdb.errors.ValidationFailed`` naming the field, as everywhere else.
"""

from __future__ import annotations

from collections.abc import Sequence

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


class InvalidState(InvalidTransition):
    """A lifecycle step that the ticket's state, the actor's kind or the reopen window refuses.

    Raised by ``servicegraph.ticketing.lifecycle.StateMachine.check``. It is an
    ``InvalidTransition`` so that every entry point already translating that one (GraphQL's
    ``INVALID_STATE``) translates this too; it adds what a client needs to offer the right
    buttons instead: the ``current`` state, the ``requested`` step (a transition name or a
    target status) and the steps ``allowed`` now for this actor. ``ticket_id`` is ``""``
    when the caller did not name the ticket.
    """

    def __init__(
        self,
        current: str,
        requested: str,
        allowed: Sequence[str],
        *,
        ticket_id: str = "",
        actor_kind: str | None = None,
        detail: str | None = None,
        as_status: bool = False,
    ) -> None:
        self.current = current
        self.requested = requested
        self.allowed = tuple(allowed)
        self.actor_kind = actor_kind
        self.detail = detail
        self.ticket_id = ticket_id
        action = f"move to {requested}" if as_status else requested
        why = f" ({detail})" if detail else ""
        steps = ", ".join(self.allowed) or "none"
        self.reason = f"is {current}: cannot {action}{why}; allowed: {steps}"
        subject = f"ticket {ticket_id}" if ticket_id else "the ticket"
        # InvalidTransition's own message is "<id>: <reason>"; this one reads as a sentence.
        TicketingError.__init__(self, f"{subject} {self.reason}")


class ApprovalRefused(InvalidTransition):
    """Someone who may not decide on a change tried to: not a change manager, its
    requester, or a CAB member deciding twice. ``actor`` names the person."""

    def __init__(self, change_id: str, actor: str, message: str) -> None:
        self.actor = actor
        self.ticket_id = change_id
        self.reason = message
        # reads as "<who>: <why>"; the change is the ticket the refusal is about
        TicketingError.__init__(self, f"{actor}: {message}")


class ConflictsUnresolved(InvalidTransition):
    """A change with conflicts nobody overrode cannot be approved or scheduled."""

    def __init__(self, change_id: str, conflicts: Sequence[str]) -> None:
        self.conflicts = tuple(conflicts)
        listed = "; ".join(self.conflicts)
        super().__init__(
            change_id,
            f"conflicts with {listed}; replan it, or have a change manager override each "
            "conflict with a reason",
        )
