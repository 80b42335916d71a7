"""Several hosts, one desk, no shared filesystem: two `servicegraph serve` processes with
data directories of their own (standing for two hosts), two Celery workers and beat, each
with its own data directory too, against one Neo4j (the session's) and one Redis.

20,000 events are posted across both APIs, while a worker and then an API are killed with
SIGKILL; a request whose API died before answering is sent again to the other, as
Alertmanager would. Every event is answered 2xx in the end, and each is correlated exactly
once (each alert counts the events of its fingerprint, no more, no fewer). Then a ticket
changed through one API (with a token created on the other host) is seen through the
other, and by a GraphQL subscription open on the other.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.sync.client import connect

from tests.integration.deployment import (
    Host,
    alert_counts,
    generic_events,
    healthy,
    serve,
    small_site,
)
from tests.neo4j_server import Neo4jAddress
from tests.support import free_port, missing_external, wait_for

BROKER = "redis://127.0.0.1:6379/12"
INGEST_TOKEN = "multi-host-ingest"
EVENTS = 20_000
PER_REQUEST = 50


@pytest.fixture()
def broker() -> Iterator[str]:
    client = redis.Redis.from_url(BROKER)
    try:
        client.ping()
    except redis.ConnectionError:
        missing_external("no Redis on 127.0.0.1:6379 (redis-server --port 6379)")
    client.flushdb()
    yield BROKER
    client.flushdb()


def test_two_api_hosts_two_workers_and_beat_share_one_desk(
    neo4j: Neo4jAddress, broker: str, tmp_path: Path
) -> None:
    site = small_site(
        neo4j,
        tmp_path / "hosts",
        "multi-host",
        {
            "SERVICEGRAPH_BROKER_URL": broker,
            "SERVICEGRAPH_BROKER_VISIBILITY_TIMEOUT_S": "5",
            "SERVICEGRAPH_INGEST_TOKENS__GENERIC": INGEST_TOKEN,
            "SERVICEGRAPH_CORRELATION__HOLD_TIME_S": "0",
            "SERVICEGRAPH_CORRELATION__BATCH_SIZE": "200",
            "SERVICEGRAPH_GRAPHQL__SUBSCRIPTION_POLL_S": "0.2",
        },
    )
    env, root, services, engineer = site.env, site.root, site.services, site.engineer
    events = generic_events(site.ci_ids, EVENTS)

    port_a, port_b = free_port(), free_port()
    hosts = {
        "api-a": serve("api-a", port_a, env, root),
        "api-b": serve("api-b", port_b, env, root),
        "worker-1": Host("worker-1", ["worker", "-c", "1", "--loglevel", "WARNING"], env, root),
        "worker-2": Host("worker-2", ["worker", "-c", "1", "--loglevel", "WARNING"], env, root),
        "beat": Host("beat", ["beat", "--loglevel", "WARNING"], env, root),
    }
    try:
        wait_for(lambda: healthy(port_a) and healthy(port_b), "both APIs", timeout=90)
        answered = _post_across(events, {"api-a": port_a, "api-b": port_b}, hosts)
        assert answered == EVENTS

        wait_for(lambda: services.inbox.pending_count() == 0, "the workers to drain the inbox", 300)
        expected = Counter(e["fingerprint"] for e in events)
        wait_for(lambda: alert_counts(services) == expected, "every event's effect", 60)
        time.sleep(2)  # nothing more arrives: no event takes effect twice
        assert alert_counts(services) == expected

        # the killed API comes back on its own data directory
        hosts["api-a"] = serve("api-a2", port_a, env, root)
        wait_for(lambda: healthy(port_a), "the restarted API", timeout=90)
        _ticket_change_seen_across(port_a, port_b, engineer)
    finally:
        for host in hosts.values():
            host.kill(signal.SIGTERM)
        services.close()


def _post_across(
    events: list[dict[str, Any]], ports: dict[str, int], hosts: dict[str, Host]
) -> int:
    """Post ``events`` in requests of ``PER_REQUEST``, alternately to each API, from four
    senders; kill worker-1 a third of the way and api-a half-way. A request that gets no
    answer goes to the other API. Returns how many events were answered 2xx."""
    requests = [events[i : i + PER_REQUEST] for i in range(0, len(events), PER_REQUEST)]
    order = list(ports)
    answered = 0
    done = 0
    lock = threading.Lock()
    work = iter(enumerate(requests))

    def post(port: int, batch: list[dict[str, Any]]) -> bool:
        try:
            r = httpx.post(
                f"http://127.0.0.1:{port}/api/v1/events/batch",
                json={"events": batch},
                headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
                timeout=30,
            )
        except httpx.HTTPError:
            return False
        return 200 <= r.status_code < 300

    def sender() -> None:
        nonlocal answered, done
        while True:
            with lock:
                item = next(work, None)
            if item is None:
                return
            index, batch = item
            preferred = order[index % len(order)]
            deadline = time.monotonic() + 120
            target = preferred
            while not post(ports[target], batch):
                assert time.monotonic() < deadline, "no API answered for two minutes"
                others = [name for name in order if name != target]
                target = others[0]  # the sender fails over to the other API
                time.sleep(0.05)
            with lock:
                answered += len(batch)
                done += 1
                if done == len(requests) // 3:
                    hosts["worker-1"].kill()
                if done == len(requests) // 2:
                    hosts["api-a"].kill()

    senders = [threading.Thread(target=sender) for _ in range(4)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    assert hosts["worker-1"].proc.poll() is not None and hosts["api-a"].proc.poll() is not None
    return answered


TICKETS = """query { tickets(first: 1) { items { id acknowledgedBy } } }"""
SUBSCRIPTION = """subscription { incidentEvents { kind incident { id acknowledgedBy } } }"""
ACKNOWLEDGE = "mutation($id: ID!) { acknowledgeIncident(incidentId: $id) { __typename } }"


def _graphql(port: int, token: str, query: str, **variables: Any) -> dict[str, Any]:
    r = httpx.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    body: dict[str, Any] = r.json()
    assert r.status_code == 200 and "errors" not in body, body
    return body["data"]


def _ticket_change_seen_across(port_a: int, port_b: int, token: str) -> None:
    ticket = _graphql(port_b, token, TICKETS)["tickets"]["items"][0]
    assert ticket["acknowledgedBy"] is None
    with connect(f"ws://127.0.0.1:{port_b}/graphql", subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert json.loads(ws.recv(timeout=30)) == {"type": "connection_ack"}
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}))
        time.sleep(1)  # the subscription notes what exists before it started
        _graphql(port_a, token, ACKNOWLEDGE, id=ticket["id"])  # through the other host
        deadline = time.monotonic() + 30
        while True:
            message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            assert message["type"] == "next", message
            event = message["payload"]["data"]["incidentEvents"]
            if event["incident"]["id"] == ticket["id"]:
                break
        assert event["kind"] == "UPDATED"
        assert event["incident"]["acknowledgedBy"] == "multi-host"
    seen = _graphql(port_b, token, TICKETS)["tickets"]["items"][0]
    assert seen == {"id": ticket["id"], "acknowledgedBy": "multi-host"}
