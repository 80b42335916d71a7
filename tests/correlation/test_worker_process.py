"""The embedded correlation worker in a child process of `serve`: it correlates what the
API ingests, comes back when killed, and stops with the app."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from servicegraph.bootstrap import bootstrap
from servicegraph.config import Settings
from servicegraph.http.app import create_app
from servicegraph.runtime.worker_process import CorrelationProcess
from tests.support import alive, events_correlated

TOKEN = {"generic": "gen-secret"}
HEADERS = {"Authorization": "Bearer gen-secret"}


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def correlated(client: TestClient) -> float:
    return events_correlated(client.get("/metrics").text)


def test_worker_process_correlates_restarts_and_stops(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, ingest_tokens=TOKEN, embedded_worker_process=True)
    services = bootstrap(settings)
    with TestClient(create_app(services)) as client:
        worker = client.app.state.background.worker  # type: ignore[attr-defined]
        assert isinstance(worker, CorrelationProcess)
        first_pid = worker.pid
        assert first_pid is not None and first_pid != os.getpid()
        before = correlated(client)

        r = client.post("/api/v1/events", json={"name": "Ping", "labels": {}}, headers=HEADERS)
        assert r.status_code == 202
        assert eventually(lambda: services.tickets.counts()["incidents"] == 1)
        # the child's counts reach this process's /metrics through its report pipe
        assert eventually(lambda: correlated(client) >= before + 1)

        os.kill(first_pid, signal.SIGKILL)  # the supervisor brings it back
        assert eventually(lambda: worker.pid not in (None, first_pid))
        r = client.post("/api/v1/events", json={"name": "Pong", "labels": {}}, headers=HEADERS)
        assert r.status_code == 202
        assert eventually(lambda: services.tickets.counts()["incidents"] == 2)
        assert eventually(lambda: correlated(client) >= before + 2), "reports after a restart"
        second_pid = worker.pid
    # the app stopped: so did its worker process
    assert second_pid is not None and not alive(second_pid)
    assert services.inbox.counts()["inbox_pending"] == 0
    services.close()
