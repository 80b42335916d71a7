"""/healthz checks every part the service needs and names the one that fails."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.config import Settings
from servicegraph.http.app import create_app
from tests.http.conftest import PATHS, TOKENS, auth, serving, valid_payloads
from tests.support import wait_for

INBOX = "servicegraph-inbox.sqlite3"


def _health(client: TestClient) -> tuple[int, dict[str, Any]]:
    r = client.get("/healthz")
    return r.status_code, r.json()


def _post(client: TestClient, n: int = 0) -> int:
    payload = valid_payloads()["generic"]
    payload["name"] = f"Check{n}-{uuid.uuid4().hex[:6]}"
    return client.post(PATHS["generic"], json=payload, headers=auth("generic")).status_code


@pytest.fixture()
def make(tmp_path: Path) -> Iterator[Any]:
    opened: list[Services] = []

    def make(**settings: Any) -> tuple[Services, TestClient]:
        options: dict[str, Any] = {
            "data_dir": tmp_path,
            "ingest_tokens": TOKENS,
            "embedded_worker": False,
            "sqlite_lock_timeout": 1.0,
            **settings,
        }
        services = bootstrap(Settings(**options))
        opened.append(services)
        return services, TestClient(create_app(services), raise_server_exceptions=False)

    yield make
    for services in opened:
        services.close()


def test_every_part_is_reported_up(make: Any) -> None:
    _, app = make(embedded_worker=True)
    with app as client:
        assert _post(client) == 202
        status, body = _health(client)
    assert status == 200, body
    assert body["status"] == "ok" and body["failing"] == []
    assert {k: body[k]["status"] for k in ("graph", "tickets", "inbox", "correlation")} == {
        "graph": "up",
        "tickets": "up",
        "inbox": "up",
        "correlation": "up",
    }
    assert body["graph"]["backend"] == "sqlite"
    assert body["correlation"]["runs"] == "thread"


def test_a_locked_inbox_is_down_while_the_webhooks_answer_503(make: Any, tmp_path: Path) -> None:
    _, app = make()
    with app as client:
        assert _post(client) == 202
        other = sqlite3.connect(tmp_path / INBOX, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            assert _post(client, 1) == 503
            status, body = _health(client)
            assert (status, body["failing"]) == (503, ["inbox"]), body
            assert "locked" in body["inbox"]["error"]
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert _post(client, 2) == 202
        assert _health(client)[0] == 200


def _corrupt(path: Path) -> None:
    """Overwrite every page but the first (the header) with garbage."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(4096)
        f.write(os.urandom(max(size - 4096, 8192)))


def test_a_corrupt_inbox_is_down(make: Any, tmp_path: Path) -> None:
    services, app = make()
    with app as client:
        assert _post(client) == 202
        services.inbox.close()  # checkpointed: the pages are in the file, not the WAL
        _corrupt(tmp_path / INBOX)
        assert _post(client, 1) == 503
        status, body = _health(client)
    assert status == 503
    assert "inbox" in body["failing"], body
    assert body["inbox"]["status"] == "down"


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB file system of its own (tmpfs): root only, as mounting is."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a tmpfs mount, which needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_down_until_an_append_succeeds(make: Any, small_disk: Path) -> None:
    _, app = make(data_dir=small_disk)
    with app as client:
        assert _post(client) == 202
        filler = small_disk / "filler"
        # fill what is left; unbuffered, so that closing has nothing left to write
        with filler.open("wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        codes = [_post(client, n) for n in range(1, 40)]  # until the WAL needs room
        assert 503 in codes, codes
        status, body = _health(client)
        assert (status, body["failing"]) == (503, ["inbox"]), body
        assert "full" in body["inbox"]["error"]
        filler.unlink()
        assert _post(client, 99) == 202  # the sender's retry gets through
        assert _health(client)[0] == 200


def test_a_graph_file_failing_while_serving_is_503_not_500(make: Any, tmp_path: Path) -> None:
    services, app = make()
    with app as client:
        assert _health(client)[0] == 200
        services.store.close()
        db = tmp_path / "servicegraph.sqlite3"
        db.unlink()
        db.mkdir()
        status, body = _health(client)
    assert status == 503
    assert "graph" in body["failing"] and "tickets" in body["failing"], body
    assert body["graph"]["status"] == "down"


def test_correlation_lagging_behind_is_down(make: Any) -> None:
    _, app = make(health_max_lag_s=0.3)  # nobody correlates: embedded_worker is off
    with app as client:
        assert _post(client) == 202
        time.sleep(0.5)
        status, body = _health(client)
    assert (status, body["failing"]) == (503, ["correlation"]), body
    assert body["correlation"]["waiting"] == 1
    assert body["correlation"]["runs"] == "elsewhere"
    assert "wait for correlation" in body["correlation"]["error"]


def test_a_dead_correlation_process_is_down_until_it_is_restarted(make: Any) -> None:
    services, app = make(embedded_worker=True, embedded_worker_process=True)
    with app as client:
        background = client.app.state.background  # type: ignore[attr-defined]
        wait_for(lambda: _health(client)[0] == 200, "the worker process")
        assert _health(client)[1]["correlation"]["runs"] == "process"
        os.kill(background.worker.pid, signal.SIGKILL)
        seen: list[dict[str, Any]] = []

        def reported_down() -> bool:
            status, body = _health(client)
            if status == 503:
                seen.append(body)
            return status == 503

        wait_for(reported_down, "the dead worker reported", timeout=10)
        assert seen[0]["failing"] == ["correlation"]
        assert "exited (code -9)" in seen[0]["correlation"]["error"]
        wait_for(lambda: _health(client)[0] == 200, "the worker restarted", timeout=30)
    del services


def test_serve_answers_healthz_503_naming_the_part(tmp_path: Path) -> None:
    """The body a load balancer and an operator read, from a real server."""
    with serving(tmp_path, embedded_worker="false", sqlite_lock_timeout="1") as base:
        other = sqlite3.connect(tmp_path / INBOX, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            r = httpx.get(f"{base}/healthz", timeout=10)
        finally:
            other.execute("ROLLBACK")
            other.close()
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "5"
    assert r.json()["failing"] == ["inbox"]
