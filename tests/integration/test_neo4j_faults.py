"""Neo4j crashes mid-run under a `servicegraph serve` whose inbox, desk and leader lease
live in it (the multi-host mode), and comes back on the same data and port.

While it is down: the webhook answers 503 with Retry-After and keeps nothing (the sender
keeps the events), GraphQL answers 503 with Retry-After, and ``/healthz`` answers 503
naming Neo4j. When it is back, the same `serve` process recovers on its own (no restart),
and its correlation worker, killed with Neo4j in the middle of a backlog, resumes where
the last commit left it: every event answered 2xx is correlated exactly once.

The test starts a Neo4j of its own (it kills it), not the session's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.deployment import (
    alert_counts,
    generic_events,
    healthy,
    serve,
    small_site,
)
from tests.neo4j_server import Neo4jServer, launcher_unavailable
from tests.support import free_port, missing_external, wait_for

INGEST_TOKEN = "faults-ingest"
PER_REQUEST = 50


@pytest.fixture()
def own_neo4j(tmp_path: Path) -> Iterator[Neo4jServer]:
    """A Neo4j this test may kill (``NEO4J_URI``'s server is not one to kill)."""
    reason = launcher_unavailable()
    if reason is not None:
        missing_external(reason)
    server = Neo4jServer(home=tmp_path / "neo4j", page_cache_mb=128, heap="512m")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _post(port: int, events: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/api/v1/events/batch",
        json={"events": events},
        headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
        timeout=60,
    )


def _post_all(port: int, events: list[dict[str, Any]]) -> None:
    for i in range(0, len(events), PER_REQUEST):
        r = _post(port, events[i : i + PER_REQUEST])
        assert r.status_code == 202, r.text


def test_neo4j_down_mid_run_then_back(own_neo4j: Neo4jServer, tmp_path: Path) -> None:
    # no broker: the embedded worker correlates in `serve`
    site = small_site(
        own_neo4j.address,
        tmp_path / "hosts",
        "faults",
        {
            "SERVICEGRAPH_INGEST_TOKENS__GENERIC": INGEST_TOKEN,
            "SERVICEGRAPH_CORRELATION__HOLD_TIME_S": "0",
            # small batches: the worker is still on the backlog when Neo4j dies
            "SERVICEGRAPH_CORRELATION__BATCH_SIZE": "10",
            "SERVICEGRAPH_NEO4J_CONNECT_TIMEOUT": "2",
            "SERVICEGRAPH_NEO4J_MAX_RETRY_TIME": "1",
        },
    )
    env, root, services, engineer = site.env, site.root, site.services, site.engineer
    events = generic_events(site.ci_ids, 3_000, prefix="fault")
    before, refused, after = events[:2_000], events[2_000:2_500], events[2_500:]

    port = free_port()
    api = serve("api", port, env, root)
    try:
        wait_for(lambda: healthy(port), "the API", timeout=90)
        _post_all(port, before)
        waiting = services.inbox.pending_count()
        own_neo4j.kill()  # a crash: no shutdown, the worker's transaction in flight is lost
        assert waiting > 0, "the worker drained the backlog before Neo4j died: nothing to resume"

        # -- while Neo4j is down ------------------------------------------------------
        r = _post(port, refused[:PER_REQUEST])
        assert r.status_code == 503, r.text
        assert int(r.headers["Retry-After"]) > 0
        assert "Neo4j" in r.json()["error"], r.json()
        r = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "{ tickets(first: 1) { items { id } } }"},
            headers={"Authorization": f"Bearer {engineer}"},
            timeout=60,
        )
        assert r.status_code == 503, r.text  # its tokens are in Neo4j too
        assert int(r.headers["Retry-After"]) > 0
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=60)
        assert health.status_code == 503
        assert int(health.headers["Retry-After"]) > 0
        body = health.json()
        assert {"graph", "tickets", "inbox"} <= set(body["failing"]), body
        assert "Neo4j" in body["graph"]["error"], body

        # -- Neo4j is back: the same process recovers ------------------------------------
        own_neo4j.start()
        wait_for(lambda: healthy(port), "the API to recover without a restart", timeout=120)
        assert api.proc.poll() is None
        _post_all(port, refused)  # the sender retries what was refused
        _post_all(port, after)

        wait_for(lambda: services.inbox.pending_count() == 0, "the worker to resume", 180)
        expected = Counter(e["fingerprint"] for e in events)
        wait_for(lambda: alert_counts(services) == expected, "every event's effect", 60)
        assert alert_counts(services) == expected  # each event once: none lost, none twice
    finally:
        api.kill()
        services.close()
        log = (root / "api.log").read_text(errors="replace")
        print(log[-4000:])  # shown when the test fails
