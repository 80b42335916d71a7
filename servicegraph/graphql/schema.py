"""The schema, composed from one module per domain area (as NetBox composes its apps'
queries): ``cmdb``, ``monitoring``, ``tickets``, ``desk``, ``people``, ``timeline``,
``reports``, ``erp`` and ``subscriptions``.

Limits apply to every operation before it runs: depth, aliases and estimated complexity
(``limits``), from ``Settings.graphql``. Parsing and validation are cached per query text.
Introspection is for tokens that may read (``base.IntrospectionGuard``).
"""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.types import ExecutionContext

from servicegraph.access.model import ROLE_PERMISSIONS
from servicegraph.config import GraphQLSettings
from servicegraph.graphql.base import IntrospectionGuard, PermissionEnum, RoleEnum, query_field
from servicegraph.graphql.changes import ChangeMutation, ChangeQuery
from servicegraph.graphql.cmdb import CmdbMutation, CmdbQuery
from servicegraph.graphql.context import Info
from servicegraph.graphql.desk import DeskMutation, DeskQuery, DeskSubscription
from servicegraph.graphql.erp import ErpMutation, ErpQuery
from servicegraph.graphql.limits import ComplexityLimiter
from servicegraph.graphql.monitoring import MonitoringQuery
from servicegraph.graphql.people import PeopleMutation, PeopleQuery
from servicegraph.graphql.problems import ProblemMutation
from servicegraph.graphql.reports import ReportsQuery
from servicegraph.graphql.reports_types import ROW_TYPES as REPORT_ROW_TYPES
from servicegraph.graphql.subscriptions import Subscription as IncidentSubscription
from servicegraph.graphql.tickets import TicketMutation
from servicegraph.graphql.timeline import TIMELINE_TYPES, TimelineQuery


@strawberry.type(description="The API token a request is made with.")
class Me:
    name: str
    role: RoleEnum  # type: ignore[valid-type]
    permissions: list[PermissionEnum]  # type: ignore[valid-type]
    holder: str | None = strawberry.field(
        description="Whom the token belongs to: an agent's login, or integration:<name>."
    )
    actor: str = strawberry.field(description="Who the history names for what you do.")


@strawberry.type
class Query(
    CmdbQuery,
    MonitoringQuery,
    ChangeQuery,
    TimelineQuery,
    PeopleQuery,
    DeskQuery,
    ReportsQuery,
    ErpQuery,
):
    @query_field(description="Who you are: the token the request is made with.")
    def me(self, info: Info) -> Me:
        principal = info.context.principal
        assert principal is not None  # query_field let a reader through
        perms = sorted(ROLE_PERMISSIONS[principal.role], key=lambda p: p.value)
        return Me(
            name=principal.name,
            role=principal.role,
            permissions=perms,
            holder=principal.holder,
            actor=principal.actor,
        )


@strawberry.type
class Mutation(
    CmdbMutation,
    TicketMutation,
    ProblemMutation,
    ChangeMutation,
    PeopleMutation,
    DeskMutation,
    ErpMutation,
):
    pass


@strawberry.type
class Subscription(IncidentSubscription, DeskSubscription):
    pass


class _Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log only what went wrong on our side: errors that carry a code (input,
        permissions, limits, states) and syntax or validation errors are the client's."""
        unexpected = [
            e
            for e in errors
            if e.original_error is not None and not (e.extensions or {}).get("code")
        ]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def build_schema(settings: GraphQLSettings | None = None) -> strawberry.Schema:
    limits = settings or GraphQLSettings()
    # Rule classes are built once, so that cached validations stay valid across requests.
    rules = [
        *QueryDepthLimiter(max_depth=limits.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
    ]
    return _Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[*TIMELINE_TYPES, *REPORT_ROW_TYPES],
        extensions=[
            lambda: AddValidationRules(rules),
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
            IntrospectionGuard,  # after ValidationCache, which sets the errors it finds
            lambda: ComplexityLimiter(limits.max_complexity),
        ],
    )


def sdl(settings: GraphQLSettings | None = None) -> str:
    """The schema in SDL, as exported to schema.graphql."""
    return build_schema(settings).as_str() + "\n"
