"""`servicegraph serve` as a user runs it: a real process answering on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from servicegraph.bootstrap import bootstrap
from servicegraph.config import Settings
from servicegraph.http.app import create_app
from tests.support import alive, events_correlated, free_port, wait_for


def test_serve_answers_healthz(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SERVICEGRAPH_DATA_DIR": str(tmp_path / "data")}
    env.pop("SERVICEGRAPH_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "servicegraph.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        body = None
        for _ in range(300):  # up to 30 s on a busy machine
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                body = response.json()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert body is not None, "serve did not answer within 30 s"
        assert body["status"] == "ok"
        assert body["graph"]["status"] == "up"
        assert body["graph"]["counts"]["cis"] == 0
        assert (tmp_path / "data" / "servicegraph.sqlite3").is_file()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.stdout is not None
    output = proc.stdout.read().decode()
    # unset, the correlation worker gets a core of its own when there is a second one
    where = "a child process" if (os.cpu_count() or 1) > 1 else "a thread"
    assert f"correlation in {where}" in output, output


def test_healthz_reports_a_broken_store_as_down(tmp_path: Path) -> None:
    services = bootstrap(Settings(data_dir=tmp_path))
    with TestClient(create_app(services)) as client:
        assert client.get("/healthz").status_code == 200
        # An unreadable store file: what a full disk or a wrong mount looks like.
        services.store.close()
        db = tmp_path / "servicegraph.sqlite3"
        db.unlink()
        db.mkdir()
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["graph"]["status"] == "down"


def test_serve_with_several_api_processes_elects_one_to_correlate(tmp_path: Path) -> None:
    """`serve --workers 2`: both answer, one runs the correlation worker, another takes over
    when it is killed, and /metrics adds up what every process did."""
    port = free_port()
    data = tmp_path / "data"
    env = {
        **os.environ,
        "SERVICEGRAPH_DATA_DIR": str(data),
        "SERVICEGRAPH_INGEST_TOKENS__GENERIC": "tok",
    }
    for name in ("SERVICEGRAPH_CONFIG", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "servicegraph.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    lock = data / "serve-leader.lock"

    def post(name: str) -> None:
        r = httpx.post(
            f"{base}/api/v1/events",
            json={"name": name, "labels": {}},
            headers={"Authorization": "Bearer tok"},
            timeout=10,
        )
        assert r.status_code == 202, r.text

    def correlated() -> float:
        return events_correlated(httpx.get(f"{base}/metrics", timeout=10).text, required=False)

    try:
        wait_for(lambda: httpx.get(f"{base}/healthz", timeout=1).status_code == 200, "serve")
        wait_for(lambda: lock.is_file() and lock.read_text().strip() != "", "a leader")
        leader = int(lock.read_text())
        for n in range(10):  # each on a new connection: either process may take it
            post(f"Ping{n}")
        wait_for(lambda: correlated() == 10, "10 events correlated")

        os.kill(leader, signal.SIGKILL)
        wait_for(lambda: lock.read_text().strip() not in ("", str(leader)), "a new leader")
        for n in range(10, 15):
            post(f"Ping{n}")
        wait_for(lambda: correlated() == 15, "the new leader to correlate")
        new_leader = int(lock.read_text())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.stdout is not None
    output = proc.stdout.read().decode()
    assert "2 API processes" in output, output
    wait_for(lambda: not alive(new_leader), "the API processes to stop", timeout=10)
