"""`servicegraph serve` as a user runs it: a real process answering on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from servicegraph.api import create_app
from servicegraph.bootstrap import bootstrap
from servicegraph.config import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        assert body["store"]["status"] == "up"
        assert body["store"]["counts"]["cis"] == 0
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
        assert response.json()["store"]["status"] == "down"
