"""What every domain module of the schema builds on: permission checks, the root field
factories that attach them, the enums shared with the domain, and the ``Ticket`` interface
whose worklog every ticket type inherits.

Every root field is made by ``query_field``, ``mutation_field`` or ``subscription_field``:
each declares the permission it needs (``servicegraph.access.model.ROLE_PERMISSIONS``
says which roles hold it) and translates domain exceptions (``errors.DomainErrors``).
Introspection needs ``read`` too (``IntrospectionGuard``, a schema extension).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import strawberry
from graphql import BREAK, DocumentNode, FieldNode, GraphQLError, Visitor, visit
from strawberry.extensions import SchemaExtension
from strawberry.permission import BasePermission

from servicegraph.access.model import ROLE_PERMISSIONS, Permission, Principal, Role
from servicegraph.cmdb.model import Lifecycle, OperationalState
from servicegraph.events.model import EventStatus, Severity
from servicegraph.graphql.context import Info
from servicegraph.graphql.errors import DomainErrors
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import (
    ChangeRisk,
    ChangeStatus,
    ProblemStatus,
    WorklogEntry,
    WorklogKind,
)

# The domain's enums, exposed as they are (GraphQL names are the upper-case member names).
LifecycleEnum = strawberry.enum(Lifecycle, name="Lifecycle")
OperationalStateEnum = strawberry.enum(OperationalState, name="OperationalState")
SeverityEnum = strawberry.enum(Severity, name="Severity")
AlertStatusEnum = strawberry.enum(EventStatus, name="AlertStatus")
TicketStatusEnum = strawberry.enum(TicketStatus, name="TicketStatus")
ProblemStatusEnum = strawberry.enum(ProblemStatus, name="ProblemStatus")
ChangeStatusEnum = strawberry.enum(ChangeStatus, name="ChangeStatus")
ChangeRiskEnum = strawberry.enum(ChangeRisk, name="ChangeRisk")
WorklogKindEnum = strawberry.enum(WorklogKind, name="WorklogKind")
RoleEnum = strawberry.enum(Role, name="Role")
PermissionEnum = strawberry.enum(Permission, name="Permission")


# -- permissions -------------------------------------------------------------------------------


def denial(principal: Principal | None, permission: Permission) -> GraphQLError | None:
    """The error telling the client why ``permission`` is refused, or None if it is not:
    UNAUTHENTICATED without a token, FORBIDDEN naming the roles that grant it otherwise."""
    if principal is None:
        return GraphQLError(
            "authentication required: send the header 'Authorization: Bearer <API token>' "
            "(create one with `servicegraph token create`)",
            extensions={"code": "UNAUTHENTICATED"},
        )
    if principal.can(permission):
        return None
    allowed = sorted(r.value for r, perms in ROLE_PERMISSIONS.items() if permission in perms)
    return GraphQLError(
        f"the role '{principal.role.value}' of token '{principal.name}' does not grant "
        f"'{permission.value}' (roles that do: {', '.join(allowed)})",
        extensions={"code": "FORBIDDEN", "required": permission.value},
    )


class _Requires(BasePermission):
    permission: Permission = Permission.READ

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        error = denial(info.context.principal, self.permission)
        if error is not None:
            raise error
        return True


INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})


class IntrospectionGuard(SchemaExtension):
    """The schema is for readers, as every query field is: ``__schema`` and ``__type`` need
    ``read`` (``__typename`` tells nothing and stays free). An operation that asks for them
    without it is refused whole, before it runs.

    A schema extension, not a validation rule: validation is cached per query text, and
    this answer depends on who asks. Put it after ``ValidationCache``, which overwrites the
    errors found before it."""

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        principal = getattr(ctx.context, "principal", None)  # no context: nobody
        document = ctx.graphql_document
        if (
            document is not None
            and (principal is None or not principal.can(Permission.READ))
            and _introspects(document)
        ):
            error = denial(principal, Permission.READ)
            assert error is not None
            ctx.pre_execution_errors = [error]
        yield


def _introspects(document: DocumentNode) -> bool:
    """Whether any operation or fragment of ``document`` selects an introspection field
    (where validation allows them or not: this refuses, validation only adds reasons)."""
    found = False

    class Finder(Visitor):
        def enter_field(self, node: FieldNode, *_: Any) -> Any:
            nonlocal found
            if node.name.value in INTROSPECTION_FIELDS:
                found = True
                return BREAK
            return None

    visit(document, Finder())
    return found


@cache
def requires(permission: Permission) -> type[BasePermission]:
    name = "Requires" + "".join(part.title() for part in permission.value.split("_"))
    return type(name, (_Requires,), {"permission": permission})


def query_field(**kwargs: Any) -> Any:
    """A root query field: readers only (integration tokens cannot query)."""
    return strawberry.field(
        permission_classes=[requires(Permission.READ)], extensions=[DomainErrors()], **kwargs
    )


def mutation_field(permission: Permission, **kwargs: Any) -> Any:
    return strawberry.mutation(
        permission_classes=[requires(permission)], extensions=[DomainErrors()], **kwargs
    )


def subscription_field(**kwargs: Any) -> Any:
    return strawberry.subscription(permission_classes=[requires(Permission.READ)], **kwargs)


# -- the ticket interface and its worklog ---------------------------------------------------


@strawberry.type(description="One step of work on a ticket, with who did it and when.")
class Worklog:
    at: dt.datetime
    actor: str
    kind: WorklogKindEnum  # type: ignore[valid-type]
    text: str

    @classmethod
    def of(cls, entry: WorklogEntry) -> Worklog:
        return cls(at=entry.at, actor=entry.actor, kind=entry.kind, text=entry.text)


@strawberry.interface(description="An incident, problem or change.")
class Ticket:
    id: strawberry.ID
    number: int

    @strawberry.field(description="What people did on the ticket, oldest first.")
    async def worklog(self, info: Info) -> list[Worklog]:
        entries = await info.context.loaders.worklog.load(str(self.id))
        return [Worklog.of(e) for e in entries]


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """GraphQL DateTime input without an offset is read as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


Resolver = Callable[..., Any]
