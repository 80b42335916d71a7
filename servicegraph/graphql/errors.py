"""Domain exceptions translated for GraphQL clients, in this one place (the entry point).

Queries raise GraphQL errors whose ``extensions`` carry a ``code`` (``BAD_USER_INPUT``,
``NOT_FOUND``, ``INVALID_STATE``, ``CONFLICT``, ``STORE_UNAVAILABLE``, and
``UNAUTHENTICATED`` / ``FORBIDDEN`` from the permission checks) and, for input errors, the
``field`` at fault. Mutations return the same failures as members of their result union
(``InvalidInput``, ``NotFound``, ``InvalidState``, ``Conflicts``), so that clients can
select them as data.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import FieldExtension

from servicegraph.cmdb.errors import (
    CmdbError,
    ReconciliationConflicts,
    StoreError,
    StoreUnavailable,
    UnknownCI,
    ValidationErrors,
    ValidationFailed,
)
from servicegraph.cmdb.model import Conflict
from servicegraph.ticketing.errors import InvalidState as StepRefused
from servicegraph.ticketing.errors import InvalidTransition, TicketNotFound


def camel(field: str | None, prefix: str = "") -> str | None:
    """A domain field path (``root_ci_id``, ``incident_ids.1``, ``attributes.cost_centre``)
    as the client wrote it: the first segment in camelCase, what follows (list positions,
    attribute and identifier names) as it is."""
    if field is None:
        return prefix.rstrip(".") or None
    head, dot, rest = field.partition(".")
    first, *others = head.split("_")
    return f"{prefix}{first}{''.join(p.title() for p in others)}{dot}{rest}"


class ArgumentNotFound(CmdbError):
    """A CI the client named in an argument does not exist (``field`` is the argument's
    path as the client wrote it)."""

    def __init__(self, exc: UnknownCI, field: str) -> None:
        self.ci_id = exc.ci_id
        self.field = field
        super().__init__(f"{field}: {exc}")


class ArgumentInvalid(ValidationFailed):
    """A CI reference the client gave in an argument names no CI it could be (empty, an
    identifier its kind refuses, a key of several CIs); ``field`` is the argument's path as
    the client wrote it, not the domain's ``ci``."""

    def __init__(self, exc: ValidationFailed, field: str) -> None:
        super().__init__(exc.reason, field=field)


@contextmanager
def argument(name: str) -> Iterator[None]:
    """Name the argument (its path as the client wrote it: ``input.id``, ``ciIds.1``) a CI
    reference came from, when it names no CI or cannot be read."""
    try:
        yield
    except UnknownCI as exc:
        raise ArgumentNotFound(exc, name) from exc
    except ValidationFailed as exc:
        raise ArgumentInvalid(exc, name) from exc


def to_graphql_error(exc: CmdbError) -> GraphQLError:
    if isinstance(exc, ArgumentInvalid):
        return GraphQLError(str(exc), extensions={"code": "BAD_USER_INPUT", "field": exc.field})
    if isinstance(exc, ValidationErrors):
        return GraphQLError(
            str(exc),
            extensions={
                "code": "BAD_USER_INPUT",
                "errors": [{"field": camel(e.field), "message": e.reason} for e in exc.errors],
            },
        )
    if isinstance(exc, ValidationFailed):
        return GraphQLError(
            str(exc), extensions={"code": "BAD_USER_INPUT", "field": camel(exc.field)}
        )
    if isinstance(exc, ArgumentNotFound):
        return GraphQLError(
            str(exc), extensions={"code": "NOT_FOUND", "field": exc.field, "id": exc.ci_id}
        )
    if isinstance(exc, UnknownCI):
        return GraphQLError(str(exc), extensions={"code": "NOT_FOUND", "id": exc.ci_id})
    if isinstance(exc, TicketNotFound):
        return GraphQLError(
            str(exc),
            extensions={"code": "NOT_FOUND", "field": camel(exc.field), "id": exc.ticket_id},
        )
    if isinstance(exc, StepRefused):
        return GraphQLError(
            str(exc), extensions={"code": "INVALID_STATE", "allowed": list(exc.allowed)}
        )
    if isinstance(exc, InvalidTransition):
        return GraphQLError(str(exc), extensions={"code": "INVALID_STATE"})
    if isinstance(exc, ReconciliationConflicts):
        return GraphQLError(str(exc), extensions={"code": "CONFLICT"})
    if isinstance(exc, StoreUnavailable | StoreError):
        return GraphQLError(
            f"the store cannot answer now, retry later: {exc}",
            extensions={"code": "STORE_UNAVAILABLE"},
        )
    return GraphQLError(str(exc), extensions={"code": "ERROR"})


class DomainErrors(FieldExtension):
    """Put on root fields: domain exceptions become GraphQL errors with a code."""

    def resolve(self, next_: Callable[..., Any], source: Any, info: Any, **kwargs: Any) -> Any:
        try:
            result = next_(source, info, **kwargs)
        except CmdbError as exc:
            raise to_graphql_error(exc) from exc
        if inspect.isawaitable(result):
            return self._translated(result)
        return result

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, **kwargs: Any
    ) -> Any:
        try:
            result = next_(source, info, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except CmdbError as exc:
            raise to_graphql_error(exc) from exc
        return result

    @staticmethod
    async def _translated(result: Awaitable[Any]) -> Any:
        try:
            return await result
        except CmdbError as exc:
            raise to_graphql_error(exc) from exc


# -- the failure members of mutation results -------------------------------------------------


@strawberry.interface(
    description="Every failure a mutation returns as data: select `... on MutationError "
    "{ message }` to see any of them."
)
class MutationError:
    message: str


@strawberry.type(description="One input field that is wrong, and why.")
class FieldError:
    field: str | None = strawberry.field(
        description="Path of the input field, e.g. input.attributes.port or incidentId."
    )
    message: str


@strawberry.type(description="The input was refused; nothing was changed.")
class InvalidInput(MutationError):
    errors: list[FieldError]


@strawberry.type(description="Something the input names does not exist.")
class NotFound(MutationError):
    field: str | None
    id: str


@strawberry.type(description="The ticket's state does not allow this step.")
class InvalidState(MutationError):
    ticket_id: str
    status: str | None = strawberry.field(
        default=None, description="The ticket's status (for a lifecycle step)."
    )
    step: str | None = strawberry.field(
        default=None, description="The step, or the status, asked for."
    )
    allowed_steps: list[str] = strawberry.field(
        default_factory=list, description="The steps you may take instead, now."
    )


@strawberry.type(description="A reconciliation conflict, recorded and not resolved.")
class ConflictInfo:
    kind: str
    item: str
    identifier: str | None
    ci_id: str | None
    other_ci_id: str | None
    detail: str

    @classmethod
    def of(cls, c: Conflict) -> ConflictInfo:
        ident = f"{c.identifier[0]}:{c.identifier[1]}" if c.identifier else None
        return cls(
            kind=c.kind.value,
            item=c.item,
            identifier=ident,
            ci_id=c.ci_id,
            other_ci_id=c.other_ci_id,
            detail=c.detail,
        )


@strawberry.type(
    description="The edit contradicts the graph (e.g. a serial number held by "
    "another CI); nothing was changed."
)
class Conflicts(MutationError):
    conflicts: list[ConflictInfo]


Failure = InvalidInput | NotFound | InvalidState | Conflicts


def as_failure(exc: CmdbError, prefix: str = "") -> Failure | None:
    """The union member telling the client what went wrong, or None for errors that are
    not the input's fault (they propagate as GraphQL errors)."""
    if isinstance(exc, ArgumentInvalid):
        return InvalidInput(
            message=str(exc), errors=[FieldError(field=exc.field, message=exc.reason)]
        )
    if isinstance(exc, ValidationErrors):
        return InvalidInput(
            message=str(exc),
            errors=[FieldError(field=camel(e.field, prefix), message=e.reason) for e in exc.errors],
        )
    if isinstance(exc, ValidationFailed):
        return InvalidInput(
            message=str(exc),
            errors=[FieldError(field=camel(exc.field, prefix), message=exc.reason)],
        )
    if isinstance(exc, ArgumentNotFound):
        return NotFound(message=str(exc), field=exc.field, id=exc.ci_id)
    if isinstance(exc, UnknownCI):
        return NotFound(message=str(exc), field=camel(None, prefix), id=exc.ci_id)
    if isinstance(exc, TicketNotFound):
        return NotFound(message=str(exc), field=camel(exc.field, prefix), id=exc.ticket_id)
    if isinstance(exc, StepRefused):  # a lifecycle's refusal says what is allowed
        return InvalidState(
            message=str(exc),
            ticket_id=exc.ticket_id,
            status=exc.current,
            step=exc.requested,
            allowed_steps=list(exc.allowed),
        )
    if isinstance(exc, InvalidTransition):
        return InvalidState(message=str(exc), ticket_id=exc.ticket_id)
    if isinstance(exc, ReconciliationConflicts):
        return Conflicts(
            message=str(exc),
            conflicts=[ConflictInfo.of(c) for c in exc.conflicts if isinstance(c, Conflict)],
        )
    return None


def renamed(failure: Failure, renames: Mapping[str, str]) -> Failure:
    """``failure`` with the fields the service named renamed as the mutation's arguments
    are (``renames``: the service's name -> the argument's; a step is ``transition`` to
    the lifecycle and ``step`` to a mutation)."""
    if isinstance(failure, NotFound) and failure.field is not None:
        failure.field = renames.get(failure.field, failure.field)
    if isinstance(failure, InvalidInput):
        for error in failure.errors:
            if error.field is not None:
                error.field = renames.get(error.field, error.field)
    return failure
