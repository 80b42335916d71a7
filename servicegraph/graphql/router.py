"""Mounting the schema on FastAPI at /graphql: HTTP (GraphiQL on GET) and WebSockets
(graphql-transport-ws, and the legacy graphql-ws).

Authentication: ``Authorization: Bearer <API token>`` on every HTTP request; a token that
is present but wrong or revoked gets 401 at once. A WebSocket authenticates with the same
header on the handshake or an ``Authorization`` (or ``token``) entry in the
``connection_init`` payload, as browsers cannot set headers; without a token allowed to
read, the connection is closed (4403) before any subscription starts.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from starlette.requests import HTTPConnection
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.types.unset import UNSET, UnsetType

from servicegraph.access.model import Permission, Principal
from servicegraph.bootstrap import Services
from servicegraph.config import GraphQLSettings
from servicegraph.graphql.context import GraphQLContext
from servicegraph.graphql.schema import build_schema


def _bearer(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    scheme, _, token = value.strip().partition(" ")
    if token and scheme.lower() == "bearer":
        return token.strip()
    return value.strip() if not token else None


async def get_context(connection: HTTPConnection) -> GraphQLContext:
    services: Services = connection.app.state.services
    presented = _bearer(connection.headers.get("authorization"))
    principal: Principal | None = None
    if presented is not None:
        principal = services.tokens.authenticate(presented)
        if principal is None and connection.scope["type"] == "http":
            raise HTTPException(
                status_code=401,
                detail="the API token is not valid (wrong, or revoked)",
                headers={"WWW-Authenticate": "Bearer"},
            )
    return GraphQLContext(services, principal)


class ServiceGraphRouter(GraphQLRouter[GraphQLContext, None]):
    async def on_ws_connect(self, context: GraphQLContext) -> UnsetType | dict[str, object] | None:
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        raw = params.get("Authorization") or params.get("authorization") or params.get("token")
        if raw is not None:
            token = _bearer(raw)
            context.principal = (
                context.services.tokens.authenticate(token) if token is not None else None
            )
        principal = context.principal
        if principal is None:
            raise ConnectionRejectionError({"message": "a valid API token is required"})
        if not principal.can(Permission.READ):
            raise ConnectionRejectionError(
                {"message": f"the role '{principal.role.value}' cannot read"}
            )
        unset: UnsetType = UNSET
        return unset


def graphql_router(settings: GraphQLSettings | None = None) -> GraphQLRouter[GraphQLContext, None]:
    limits = settings or GraphQLSettings()
    return ServiceGraphRouter(
        build_schema(limits),
        context_getter=get_context,
        graphql_ide="graphiql" if limits.graphiql else None,
    )
