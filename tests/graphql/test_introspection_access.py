"""Who may see the schema and ``me``: readers only. Without a token, introspection and
``me`` answer UNAUTHENTICATED as every query field does; an ``integration`` token (it
may only post events) gets FORBIDDEN; ``__typename`` tells nothing and stays free."""

from __future__ import annotations

from typing import Any

from graphql import get_introspection_query
from strawberry.types.base import get_object_definition

from servicegraph.graphql.base import _Requires
from servicegraph.graphql.schema import Mutation, Query
from servicegraph.graphql.subscriptions import Subscription
from tests.graphql.conftest import Site

INTROSPECTIONS = [
    "{ __schema { queryType { name } } }",
    '{ __type(name: "CI") { fields { name } } }',
    "query { ...F } fragment F on Query { __schema { types { name } } }",
    "{ __typename cis(first: 1) { nodes { id } } __schema { types { name } } }",
    get_introspection_query(descriptions=True),
]


def post(site: Site, query: str, role: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {site.tokens[role]}"} if role else {}
    response = site.client.post("/graphql", json={"query": query}, headers=headers)
    body: dict[str, Any] = response.json()
    return response.status_code, body


def test_introspection_and_me_need_a_token(site: Site) -> None:
    status, _ = post(site, '{ ci(id: "db-1") { id } }', None)
    for query in [*INTROSPECTIONS, "{ me { name } }"]:
        got, body = post(site, query, None)
        assert got == status, "as any unauthenticated query"
        assert body["data"] is None or not any(body["data"].values()), (query, body)
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "UNAUTHENTICATED", (query, body)
    by_get = site.client.get("/graphql", params={"query": "{ __schema { types { name } } }"})
    assert by_get.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_integration_tokens_see_neither_the_schema_nor_themselves(site: Site) -> None:
    for query in [*INTROSPECTIONS, "{ me { name } }"]:
        _, body = post(site, query, "integration")
        assert body["data"] is None or not any(body["data"].values()), (query, body)
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "FORBIDDEN", (query, body)
        assert error["extensions"]["required"] == "read"


def test_typename_stays_free(site: Site) -> None:
    for role in (None, "integration", "viewer"):
        assert post(site, "{ __typename }", role)[1] == {"data": {"__typename": "Query"}}


def test_readers_introspect_and_see_themselves(site: Site) -> None:
    for role in ("viewer", "engineer", "problem_manager", "admin"):
        for query in INTROSPECTIONS[:3]:
            assert not site.gql(query, role).get("errors"), (role, query)
        me = site.data("{ me { name role } }", role)["me"]
        assert me["name"] == f"{role}-token"
    # GraphiQL: the page is static; its schema and queries go with the token the user
    # puts in its Headers pane, as any client's
    page = site.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    full = site.gql(get_introspection_query(descriptions=True), "viewer")
    assert full["data"]["__schema"]["queryType"]["name"] == "Query"


def test_every_root_field_checks_a_permission() -> None:
    for root in (Query, Mutation, Subscription):
        for field in get_object_definition(root, strict=True).fields:
            checks = [p for p in field.permission_classes if issubclass(p, _Requires)]
            assert checks, f"{root.__name__}.{field.name} answers anyone"
