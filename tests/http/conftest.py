"""An API on the embedded store with a token per ingestion source, no worker running."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.config import Settings
from servicegraph.http.app import create_app
from tests.support import free_port, wait_for

TOKENS = {"alertmanager": "am-secret", "zabbix": "zbx-secret", "generic": "gen-secret"}

PATHS = {
    "alertmanager": "/api/v1/webhooks/alertmanager",
    "zabbix": "/api/v1/webhooks/zabbix",
    "generic": "/api/v1/events",
    "batch": "/api/v1/events/batch",
}


def auth(source: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS['generic' if source == 'batch' else source]}"}


def am_alert(**changes: Any) -> dict[str, Any]:
    alert = {
        "status": "firing",
        "labels": {"alertname": "NodeDown", "severity": "critical", "instance": "db-1:9100"},
        "annotations": {"summary": "node down"},
        "startsAt": "2026-11-01T12:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom",
        "fingerprint": "c0ffee",
    }
    alert.update(changes)
    return alert


def valid_payloads() -> dict[str, dict[str, Any]]:
    """One valid body per ingestion endpoint."""
    return {
        "alertmanager": {
            "version": "4",
            "groupKey": '{}:{alertname="NodeDown"}',
            "status": "firing",
            "receiver": "servicegraph",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://am",
            "truncatedAlerts": 0,
            "alerts": [am_alert()],
        },
        "zabbix": {
            "event_id": "4711",
            "status": "PROBLEM",
            "name": "High CPU on db-1",
            "severity": "High",
            "host": "db-1",
            "host_ip": "10.0.0.5",
            "time": "2026-11-01T12:00:00Z",
            "tags": [{"tag": "service", "value": "shop"}],
        },
        "generic": {
            "name": "DiskFull",
            "severity": "major",
            "labels": {"host": "db-1"},
            "occurred_at": "2026-11-01T12:00:00Z",
        },
        "batch": {
            "events": [
                {"name": "DiskFull", "labels": {"host": "db-1"}},
                {"name": "DiskFull", "labels": {"host": "db-2"}, "status": "resolved"},
            ]
        },
    }


def stored_events(services: Services) -> int:
    return services.inbox.counts()["events"]


@pytest.fixture()
def services(tmp_path: Path) -> Iterator[Services]:
    svc = bootstrap(Settings(data_dir=tmp_path, ingest_tokens=TOKENS, embedded_worker=False))
    yield svc
    svc.close()


@pytest.fixture()
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services), raise_server_exceptions=False) as c:
        yield c


@contextmanager
def serving(data_dir: Path, **settings: str) -> Iterator[str]:
    """`servicegraph serve` in a process of its own on a free port, with
    ``SERVICEGRAPH_<NAME>`` settings; its base URL once /healthz answers 200."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SERVICEGRAPH_CONFIG"}
    env["SERVICEGRAPH_DATA_DIR"] = str(data_dir)
    env.update({f"SERVICEGRAPH_{name.upper()}": value for name, value in settings.items()})
    proc = subprocess.Popen(
        [sys.executable, "-m", "servicegraph.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{base}/healthz", timeout=1).status_code == 200, "serve")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
