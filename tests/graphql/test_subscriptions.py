"""Subscriptions over WebSockets (graphql-transport-ws): incidents opened and updated, found
by polling the store, so they work whether correlation runs in this process or elsewhere."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from servicegraph.config import GraphQLSettings
from tests.graphql.conftest import Site, make_site

SUBSCRIPTION = """subscription($kinds: [IncidentEventKind!]) { incidentEvents(kinds: $kinds) {
    kind incident { id number status acknowledgedBy alertCount rootCi { name } } } }"""


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[Site]:
    yield from make_site(tmp_path, graphql=GraphQLSettings(subscription_poll_s=0.05))


def connect(ws: WebSocketTestSession, payload: dict[str, Any]) -> None:
    ws.send_json({"type": "connection_init", "payload": payload})
    assert ws.receive_json() == {"type": "connection_ack"}


def next_event(ws: WebSocketTestSession) -> dict[str, Any]:
    message = ws.receive_json()
    assert message["type"] == "next", message
    assert "errors" not in message["payload"], message
    event: dict[str, Any] = message["payload"]["data"]["incidentEvents"]
    return event


def test_incidents_opened_and_updated(site: Site) -> None:
    with site.client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        connect(ws, {"Authorization": f"Bearer {site.tokens['viewer']}"})
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
        time.sleep(0.3)  # the subscription notes what exists before it started
        site.alert("NodeDown", "db-1")  # correlation in this thread, as a worker would
        opened = next_event(ws)
        assert opened["kind"] == "OPENED"
        assert opened["incident"]["status"] == "NEW"
        assert opened["incident"]["rootCi"]["name"] == "db-1"
        incident_id = opened["incident"]["id"]

        site.data(
            "mutation($id: ID!) { acknowledgeIncident(incidentId: $id) { __typename } }",
            "engineer",
            id=incident_id,
        )
        acknowledged = next_event(ws)
        assert acknowledged["kind"] == "UPDATED"
        assert acknowledged["incident"]["acknowledgedBy"] == "engineer-token"

        site.alert("HighLatency", "db-1")
        joined = next_event(ws)
        assert (joined["kind"], joined["incident"]["id"]) == ("UPDATED", incident_id)
        assert joined["incident"]["alertCount"] == 2
        ws.send_json({"id": "1", "type": "complete"})


def test_only_the_kinds_asked_for(site: Site) -> None:
    with site.client.websocket_connect(
        "/graphql",
        subprotocols=["graphql-transport-ws"],
        headers={"Authorization": f"Bearer {site.tokens['admin']}"},
    ) as ws:
        connect(ws, {})  # the handshake's header authenticates
        ws.send_json(
            {
                "id": "opened",
                "type": "subscribe",
                "payload": {"query": SUBSCRIPTION, "variables": {"kinds": ["OPENED"]}},
            }
        )
        time.sleep(0.3)
        site.alert("NodeDown", "db-1")
        site.alert("HighLatency", "db-1")  # an update: not sent
        site.alert("DiskFull", "core-1")  # unrelated: a second incident
        first, second = next_event(ws), next_event(ws)
        assert [first["kind"], second["kind"]] == ["OPENED", "OPENED"]
        assert [first["incident"]["rootCi"]["name"], second["incident"]["rootCi"]["name"]] == [
            "db-1",
            "core-1",
        ]


@pytest.mark.parametrize("role", [None, "integration", "bad"])
def test_subscriptions_need_a_token_that_can_read(site: Site, role: str | None) -> None:
    payload = {}
    if role == "bad":
        payload = {"Authorization": "Bearer sgt_000000000000_" + "x" * 43}
    elif role is not None:
        payload = {"Authorization": f"Bearer {site.tokens[role]}"}
    with site.client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": payload})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4403
