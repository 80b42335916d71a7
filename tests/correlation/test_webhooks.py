"""The ingestion endpoints through HTTP: authentication, validation, durability."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.config import Settings
from servicegraph.http.app import create_app
from tests.support import events_correlated

TOKENS = {"alertmanager": "am-secret", "zabbix": "zbx-secret", "generic": "gen-secret"}


@pytest.fixture()
def services(tmp_path: Path) -> Iterator[Services]:
    svc = bootstrap(Settings(data_dir=tmp_path, ingest_tokens=TOKENS, embedded_worker=False))
    yield svc
    svc.close()


@pytest.fixture()
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as c:
        yield c


def auth(source: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[source]}"}


def am_payload(status: str = "firing", **labels: str) -> dict:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="NodeDown"}',
        "status": status,
        "receiver": "servicegraph",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://am",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "NodeDown", "severity": "critical", **labels},
                "annotations": {"summary": "node down"},
                "startsAt": "2026-11-01T12:00:00Z",
                "endsAt": "2026-11-01T12:05:00Z"
                if status == "resolved"
                else "0001-01-01T00:00:00Z",
                "generatorURL": "http://prom",
                "fingerprint": "c0ffee",
            }
        ],
    }


def test_alertmanager_firing_then_resolved(client: TestClient, services: Services) -> None:
    r = client.post(
        "/api/v1/webhooks/alertmanager", json=am_payload(), headers=auth("alertmanager")
    )
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 1, "duplicates": 0}
    again = client.post(
        "/api/v1/webhooks/alertmanager", json=am_payload(), headers=auth("alertmanager")
    )
    assert again.json() == {"accepted": 0, "duplicates": 1}, "a redelivery is recognised"
    resolved = client.post(
        "/api/v1/webhooks/alertmanager",
        json=am_payload("resolved"),
        headers=auth("alertmanager"),
    )
    assert resolved.json()["accepted"] == 1
    services.correlator.drain()
    (alert,) = services.tickets.unmapped_alerts()
    assert alert.fingerprint == "am:c0ffee"
    assert alert.status.value == "resolved"
    assert alert.summary == "node down"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing or wrong bearer token"),
        ({"Authorization": "Bearer nope"}, "missing or wrong bearer token"),
        ({"Authorization": "Bearer zbx-secret"}, "missing or wrong bearer token"),
    ],
)
def test_each_source_needs_its_own_token(
    client: TestClient, services: Services, headers: dict[str, str], message: str
) -> None:
    r = client.post("/api/v1/webhooks/alertmanager", json=am_payload(), headers=headers)
    assert r.status_code == 401
    assert message in r.json()["error"]
    assert services.inbox.counts()["events"] == 0


def test_a_source_without_a_token_is_disabled(tmp_path: Path) -> None:
    svc = bootstrap(Settings(data_dir=tmp_path, embedded_worker=False))
    with TestClient(create_app(svc)) as client:
        r = client.post("/api/v1/events", json={"name": "x"}, headers={"Authorization": "Bearer"})
        assert r.status_code == 401
        assert "SERVICEGRAPH_INGEST_TOKENS__GENERIC" in r.json()["error"]
    svc.close()


def test_invalid_payload_names_the_field_and_stores_nothing(
    client: TestClient, services: Services
) -> None:
    payload = am_payload()
    payload["alerts"].append(dict(payload["alerts"][0], startsAt="yesterday"))
    r = client.post("/api/v1/webhooks/alertmanager", json=payload, headers=auth("alertmanager"))
    assert r.status_code == 400
    assert r.json()["field"] == "alerts.1.startsAt"
    r = client.post(
        "/api/v1/webhooks/alertmanager", content=b"{not json", headers=auth("alertmanager")
    )
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["error"]
    assert services.inbox.counts()["events"] == 0


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (lambda a: a.pop("startsAt"), "alerts.0.startsAt", "Field required"),
        (lambda a: a["labels"].update(instance=9100), "alerts.0.labels", "Expected `str`"),
        (lambda a: a.update(status="pending"), "alerts.0.status", "Invalid enum value"),
    ],
)
def test_alertmanager_errors_name_the_alert_and_field(
    client: TestClient, services: Services, change: Any, field: str, reason: str
) -> None:
    payload = am_payload()
    change(payload["alerts"][0])
    r = client.post("/api/v1/webhooks/alertmanager", json=payload, headers=auth("alertmanager"))
    assert r.status_code == 400
    assert (r.json()["field"], r.json()["reason"].startswith(reason)) == (field, True)
    assert "alertmanager webhook: field" in r.json()["error"]
    for bad in ({**am_payload(), "version": "5"}, {**am_payload(), "alerts": []}, []):
        r = client.post("/api/v1/webhooks/alertmanager", json=bad, headers=auth("alertmanager"))
        assert r.status_code == 400, bad
    assert services.inbox.counts()["events"] == 0


def test_alertmanager_fields_we_do_not_know_are_accepted(
    client: TestClient, services: Services
) -> None:
    """Newer Alertmanagers add fields; Go writes nanoseconds and offsets."""
    payload = am_payload()
    payload["newField"] = {"x": [1, 2]}
    payload["alerts"][0]["silencedBy"] = []
    payload["alerts"][0]["startsAt"] = "2026-11-01T13:00:00.123456789+01:00"
    r = client.post("/api/v1/webhooks/alertmanager", json=payload, headers=auth("alertmanager"))
    assert r.status_code == 202, r.text
    services.correlator.drain()
    (alert,) = services.tickets.unmapped_alerts()
    assert alert.first_seen == dt.datetime(2026, 11, 1, 12, 0, 0, 123457, tzinfo=dt.UTC)


def test_generic_single_and_batch(client: TestClient, services: Services) -> None:
    one = {"name": "DiskFull", "severity": "major", "labels": {"host": "db-1"}}
    assert client.post("/api/v1/events", json=one, headers=auth("generic")).status_code == 202
    batch = {
        "events": [dict(one, status="resolved"), {"name": "Ping", "labels": {"ip": "10.0.0.9"}}]
    }
    r = client.post("/api/v1/events/batch", json=batch, headers=auth("generic"))
    assert r.json() == {"accepted": 2, "duplicates": 0}
    bad = {"events": [one, {"name": "", "labels": {}}]}
    r = client.post("/api/v1/events/batch", json=bad, headers=auth("generic"))
    assert r.status_code == 400
    assert r.json()["field"] == "events.1.name"
    assert services.inbox.counts()["events"] == 3
    services.correlator.drain()
    counts = {**services.inbox.counts(), **services.tickets.counts()}
    assert (counts["alerts"], counts["alerts_unmapped"], counts["incidents"]) == (2, 2, 2)


def test_zabbix_problem_and_recovery_share_the_alert(
    client: TestClient, services: Services
) -> None:
    problem = {
        "event_id": "4711",
        "status": "PROBLEM",
        "name": "High CPU on web-1",
        "severity": "High",
        "host": "web-1",
        "host_ip": "10.0.0.5",
        "time": "2026-11-01T12:00:00Z",
        "tags": [{"tag": "service", "value": "shop"}],
    }
    recovery = dict(problem, status="RESOLVED", recovery_id="4712", time="2026-11-01T12:10:00Z")
    for body in (problem, recovery):
        r = client.post("/api/v1/webhooks/zabbix", json=body, headers=auth("zabbix"))
        assert r.status_code == 202, r.text
    services.correlator.drain()
    (alert,) = services.tickets.unmapped_alerts()
    assert (alert.fingerprint, alert.status.value, alert.count) == ("zbx:4711", "resolved", 2)
    assert alert.labels["service"] == "shop"
    bad = dict(problem, status="MAYBE")
    r = client.post("/api/v1/webhooks/zabbix", json=bad, headers=auth("zabbix"))
    assert (r.status_code, r.json()["field"]) == (400, "status")


def test_inbox_failure_answers_503_so_the_sender_retries(
    client: TestClient, services: Services, tmp_path: Path
) -> None:
    import sqlite3

    # Another process breaks the inbox underneath the running app (what a damaged or
    # mis-migrated database looks like); the sender must be told to retry.
    other = sqlite3.connect(tmp_path / "servicegraph-inbox.sqlite3")
    other.execute("ALTER TABLE inbox RENAME TO inbox_away")
    other.commit()
    r = client.post(
        "/api/v1/webhooks/alertmanager", json=am_payload(), headers=auth("alertmanager")
    )
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "5"
    assert "retry" in r.json()["error"]
    other.execute("ALTER TABLE inbox_away RENAME TO inbox")
    other.commit()
    other.close()
    r = client.post(
        "/api/v1/webhooks/alertmanager", json=am_payload(), headers=auth("alertmanager")
    )
    assert r.status_code == 202
    assert services.inbox.counts()["events"] == 1


def _correlated(client: TestClient) -> float:
    return events_correlated(client.get("/metrics").text)


def test_embedded_worker_correlates_without_being_asked(tmp_path: Path) -> None:
    svc = bootstrap(Settings(data_dir=tmp_path, ingest_tokens=TOKENS))
    with TestClient(create_app(svc)) as client:
        before = _correlated(client)
        r = client.post(
            "/api/v1/events", json={"name": "Ping", "labels": {}}, headers=auth("generic")
        )
        assert r.status_code == 202
        import time

        for _ in range(100):
            if svc.tickets.counts()["incidents"] == 1:
                break
            time.sleep(0.05)
        assert svc.tickets.counts()["incidents"] == 1
        # at least: the registry is the test process's, shared with whatever else correlates
        for _ in range(100):  # the worker reports its batch after committing it
            if _correlated(client) >= before + 1:
                break
            time.sleep(0.05)
        assert _correlated(client) >= before + 1, "the embedded worker counts into /metrics"
    svc.close()
    assert json.dumps({**svc.inbox.counts(), **svc.tickets.counts()})


def test_access_log_keeps_rejected_event_posts_only() -> None:
    from servicegraph.http.ingestion import QuietAcceptedEvents

    def line(method: str, path: str, status: int) -> logging.LogRecord:
        # the shape uvicorn's access logger uses
        args = ("127.0.0.1:5000", method, path, "1.1", status)
        return logging.LogRecord("uvicorn.access", 20, "", 0, '%s - "%s %s HTTP/%s" %d', args, None)

    quiet = QuietAcceptedEvents()
    assert not quiet.filter(line("POST", "/api/v1/webhooks/alertmanager", 202))
    assert not quiet.filter(line("POST", "/api/v1/events/batch", 202))
    assert quiet.filter(line("POST", "/api/v1/webhooks/alertmanager", 401))
    assert quiet.filter(line("POST", "/api/v1/events", 503))
    assert quiet.filter(line("POST", "/graphql", 200))
    assert quiet.filter(line("GET", "/healthz", 200))


def test_ingestion_endpoints_answer_other_methods_and_oversized_bodies(
    services: Services,
) -> None:
    services.settings.ingest_max_body_bytes = 1000
    with TestClient(create_app(services)) as client:
        r = client.get("/api/v1/webhooks/alertmanager")
        assert (r.status_code, r.headers["allow"]) == (405, "POST")
        payload = am_payload()
        payload["alerts"] *= 20
        r = client.post("/api/v1/webhooks/alertmanager", json=payload, headers=auth("alertmanager"))
        assert r.status_code == 413
        assert "smaller batches" in r.json()["error"]
        r = client.post(
            "/api/v1/webhooks/alertmanager", json=am_payload(), headers=auth("alertmanager")
        )
        assert r.status_code == 202
    assert services.inbox.counts()["events"] == 1


def test_the_ingestion_endpoints_are_documented_in_openapi(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/webhooks/alertmanager", "/api/v1/webhooks/zabbix", "/api/v1/events"):
        assert "202" in paths[path]["post"]["responses"], path
    assert "/graphql" in paths
