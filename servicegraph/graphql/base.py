"""What every domain module of the schema builds on: permission checks, the root field
factories that attach them, the enums shared with the domain, and the ``Ticket`` interface
whose worklog every ticket type inherits.

Every root field is made by ``query_field``, ``mutation_field`` or ``subscription_field``:
each declares the permission it needs (``servicegraph.access.model.ROLE_PERMISSIONS``
says which roles hold it) and translates domain exceptions (``errors.DomainErrors``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import cache
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.permission import BasePermission

from servicegraph.access.model import ROLE_PERMISSIONS, Permission, Role
from servicegraph.cmdb.model import Lifecycle, OperationalState
from servicegraph.correlation.model import EventStatus, Severity
from servicegraph.graphql.context import Info
from servicegraph.graphql.errors import DomainErrors
from servicegraph.ticketing.model import (
    ChangeRisk,
    ChangeStatus,
    IncidentStatus,
    ProblemStatus,
    WorklogEntry,
    WorklogKind,
)

# The domain's enums, exposed as they are (GraphQL names are the upper-case member names).
LifecycleEnum = strawberry.enum(Lifecycle, name="Lifecycle")
OperationalStateEnum = strawberry.enum(OperationalState, name="OperationalState")
SeverityEnum = strawberry.enum(Severity, name="Severity")
AlertStatusEnum = strawberry.enum(EventStatus, name="AlertStatus")
IncidentStatusEnum = strawberry.enum(IncidentStatus, name="IncidentStatus")
ProblemStatusEnum = strawberry.enum(ProblemStatus, name="ProblemStatus")
ChangeStatusEnum = strawberry.enum(ChangeStatus, name="ChangeStatus")
ChangeRiskEnum = strawberry.enum(ChangeRisk, name="ChangeRisk")
WorklogKindEnum = strawberry.enum(WorklogKind, name="WorklogKind")
RoleEnum = strawberry.enum(Role, name="Role")
PermissionEnum = strawberry.enum(Permission, name="Permission")


# -- permissions -------------------------------------------------------------------------------


class _Requires(BasePermission):
    permission: Permission = Permission.READ

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        if principal is None:
            raise GraphQLError(
                "authentication required: send the header 'Authorization: Bearer <API token>' "
                "(create one with `servicegraph token create`)",
                extensions={"code": "UNAUTHENTICATED"},
            )
        if not principal.can(self.permission):
            allowed = sorted(
                r.value for r, perms in ROLE_PERMISSIONS.items() if self.permission in perms
            )
            raise GraphQLError(
                f"the role '{principal.role.value}' of token '{principal.name}' does not grant "
                f"'{self.permission.value}' (roles that do: {', '.join(allowed)})",
                extensions={"code": "FORBIDDEN", "required": self.permission.value},
            )
        return True


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
