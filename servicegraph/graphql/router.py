"""Mounting the schema on FastAPI at /graphql: HTTP (GraphiQL on GET) and WebSockets
(graphql-transport-ws, and the legacy graphql-ws).

Authentication: ``Authorization: Bearer <API token>`` on every HTTP request; a token that
is present but wrong or revoked gets 401 at once (``http.gate`` checks it before the body
is read). When the store cannot answer (the token store, or the one a resolver reads), the
answer is 503 with Retry-After, so that clients and load balancers retry rather than
report a bug. A WebSocket authenticates with the same
header on the handshake or an ``Authorization`` (or ``token``) entry in the
``connection_init`` payload, as browsers cannot set headers; without a token allowed to
read, the connection is closed (4403) before any subscription starts.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Response
from starlette.requests import HTTPConnection
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.types.unset import UNSET, UnsetType

from servicegraph.access.model import Permission, Principal
from servicegraph.access.service import bearer
from servicegraph.bootstrap import Services
from servicegraph.cmdb.errors import RETRY_AFTER_S, CmdbError
from servicegraph.config import GraphQLSettings
from servicegraph.graphql.context import GraphQLContext
from servicegraph.graphql.schema import build_schema

_UNAVAILABLE = "STORE_UNAVAILABLE"


def _bearer(value: Any) -> str | None:
    return bearer(value) if isinstance(value, str) else None


async def get_context(connection: HTTPConnection) -> GraphQLContext:
    services: Services = connection.app.state.services
    if "principal" in connection.scope.get("state", {}):  # the gate authenticated it
        return GraphQLContext(services, connection.scope["state"]["principal"])
    presented = _bearer(connection.headers.get("authorization"))
    principal: Principal | None = None
    if presented is not None:
        try:
            principal = services.tokens.authenticate(presented)
        except CmdbError as exc:
            if connection.scope["type"] != "http":
                raise ConnectionRejectionError(
                    {"message": f"the token store cannot answer now, retry later: {exc}"}
                ) from exc
            raise HTTPException(
                status_code=503,
                detail=f"the token store cannot answer now, retry later: {exc}",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            ) from exc
        if principal is None and connection.scope["type"] == "http":
            raise HTTPException(
                status_code=401,
                detail="the API token is not valid (wrong, or revoked)",
                headers={"WWW-Authenticate": "Bearer"},
            )
    return GraphQLContext(services, principal)


def _store_failed(data: GraphQLHTTPResponse | list[GraphQLHTTPResponse]) -> bool:
    results = data if isinstance(data, list) else [data]
    for result in results:
        for error in result.get("errors") or ():
            extensions = error.get("extensions") if isinstance(error, dict) else None
            if isinstance(extensions, dict) and extensions.get("code") == _UNAVAILABLE:
                return True
    return False


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

    def decode_json(self, data: str | bytes) -> object:
        """JSON nested past the decoder's depth is unparsable JSON (400), not a 500."""
        try:
            return super().decode_json(data)
        except RecursionError:
            raise json.JSONDecodeError("nested too deeply", "", 0) from None

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """503 with Retry-After when the store could not answer: the GraphQL errors say
        which fields failed, the status tells clients and proxies to retry."""
        if _store_failed(response_data):
            sub_response.status_code = 503
            sub_response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return super().create_response(response_data, sub_response)


def graphql_router(settings: GraphQLSettings | None = None) -> GraphQLRouter[GraphQLContext, None]:
    limits = settings or GraphQLSettings()
    return ServiceGraphRouter(
        build_schema(limits),
        context_getter=get_context,
        graphql_ide="graphiql" if limits.graphiql else None,
    )
