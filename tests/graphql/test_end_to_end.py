"""End to end through the front doors: import a topology with the CLI, post Alertmanager
alerts to the webhook with an integration token, correlate, then ask GraphQL for the
impact, the root cause and the history, and work the incident."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cli import app as cli
from servicegraph.config import CorrelationSettings, Settings
from servicegraph.http.app import create_app
from tests.stores import STORES, store_environment

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def alertmanager(status: str, *hosts: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    starts = ends = now  # firing now, or resolved now
    return {
        "version": "4",
        "groupKey": '{}:{alertname="NodeDown"}',
        "status": status,
        "receiver": "servicegraph",
        "groupLabels": {"alertname": "NodeDown"},
        "commonLabels": {"alertname": "NodeDown"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": status,
                "labels": {
                    "alertname": "NodeDown",
                    "severity": "critical",
                    "instance": f"{host}:9100",
                    "job": "node",
                },
                "annotations": {"summary": f"{host} is not answering"},
                "startsAt": starts,
                "endsAt": ends if status == "resolved" else "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": f"fp-{host}",
            }
            for host in hosts
        ],
    }


@pytest.fixture(params=STORES)
def stack(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Services, TestClient]]:
    for name, value in store_environment(request, request.param).items():
        monkeypatch.setenv(name, value)
    data = tmp_path / "data"
    monkeypatch.setenv("SERVICEGRAPH_DATA_DIR", str(data))
    imported = CliRunner().invoke(cli, ["import", str(EXAMPLES / "small-site.json")])
    assert imported.exit_code == 0, imported.output
    services = bootstrap(
        Settings(
            data_dir=data,
            embedded_worker=False,
            correlation=CorrelationSettings(hold_time_s=0),
        )
    )
    with TestClient(create_app(services)) as client:
        yield services, client
    services.close()


def test_alerts_to_root_cause_impact_and_history(stack: tuple[Services, TestClient]) -> None:
    services, client = stack
    _, integration = services.tokens.create("alertmanager", "integration", created_by="test")
    _, engineer = services.tokens.create("alice", "engineer", created_by="test")

    def gql(query: str, **variables: Any) -> dict[str, Any]:
        response = client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {engineer}"},
        )
        assert response.status_code == 200
        body = response.json()
        assert not body.get("errors"), body
        data: dict[str, Any] = body["data"]
        return data

    hosts = ("db-1.hq.example.com", "db-2.hq.example.com", "db-3.hq.example.com")
    posted = client.post(
        "/api/v1/webhooks/alertmanager",
        json=alertmanager("firing", *hosts),
        headers={"Authorization": f"Bearer {integration}"},
    )
    assert posted.status_code == 202, posted.text
    assert posted.json() == {"accepted": 3, "duplicates": 0}
    services.correlator.drain()

    (incident,) = gql(
        "{ incidents(filter: {open: true}) { id title priority businessServices { name } } }"
    )["incidents"]
    assert incident["businessServices"] == [{"name": "Web shop"}]
    assert incident["priority"] == 1  # criticality-1 service down, critical alerts

    cause = gql(
        """query($id: ID!) { rootCause(incidentId: $id) {
            rootCi { name } inferred confidence unmappedAlerts
            alertingCiIds alerts { name ci { name } }
            candidates { ci { name } confidence alerting explains chosen } } }""",
        id=incident["id"],
    )["rootCause"]
    assert cause["rootCi"]["name"] == "acc-1", "the silent switch all three servers need"
    assert cause["inferred"] and cause["confidence"] == 1.0
    assert cause["unmappedAlerts"] == 0 and len(cause["alertingCiIds"]) == 3
    first, *others = cause["candidates"]
    assert (first["ci"]["name"], first["chosen"], first["alerting"], first["explains"]) == (
        "acc-1",
        True,
        False,
        3,
    )
    servers = sorted((c["ci"]["name"], c["confidence"], c["alerting"]) for c in others[:3])
    assert servers == [("db-1", 0.333, True), ("db-2", 0.333, True), ("db-3", 0.333, True)]

    impact = gql(
        """{ impact(ciId: "acc-1") { businessServices { ci { name }
            path { ci { name } relationship } } } }"""
    )["impact"]
    (shop,) = impact["businessServices"]
    assert [s["ci"]["name"] for s in shop["path"]][-3:] == ["orders-db", "orders-app", "Web shop"]

    acknowledged = gql(
        'mutation($id: ID!) { acknowledgeIncident(incidentId: $id, note: "on it") '
        "{ ... on IncidentPayload { incident { acknowledgedBy } } } }",
        id=incident["id"],
    )
    assert acknowledged["acknowledgeIncident"]["incident"]["acknowledgedBy"] == "alice"

    resolved = client.post(
        "/api/v1/webhooks/alertmanager",
        json=alertmanager("resolved", *hosts),
        headers={"Authorization": f"Bearer {integration}"},
    )
    assert resolved.status_code == 202
    services.correlator.drain()
    services.correlator.drain()  # the hold time (0) expires in the next batch

    history = gql(
        """{ history(ciId: "hostname:db-1.hq.example.com") { at kind summary actor
            ... on AlertEntry { alert { name status } }
            ... on IncidentEntry { incident { id status } work { kind actor text } } } }"""
    )["history"]
    kinds = [h["kind"] for h in history]
    assert kinds[0] == "CI_CHANGE"
    for kind in (
        "ALERT_FIRED",
        "INCIDENT_OPENED",
        "INCIDENT_WORK",
        "ALERT_CLEARED",
        "INCIDENT_RESOLVED",
    ):
        assert kind in kinds, (kind, kinds)
    assert kinds.index("ALERT_FIRED") < kinds.index("ALERT_CLEARED")
    assert kinds.index("INCIDENT_OPENED") < kinds.index("INCIDENT_RESOLVED")
    work = next(h for h in history if h["kind"] == "INCIDENT_WORK")
    assert work["work"] == {"kind": "ACKNOWLEDGED", "actor": "alice", "text": "on it"}
    resolved_entry = next(h for h in history if h["kind"] == "INCIDENT_RESOLVED")
    assert resolved_entry["summary"].endswith("resolved (all its alerts cleared)")
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)

    switch = gql('{ history(ciId: "acc-1") { kind } }')["history"]
    assert "INCIDENT_OPENED" in [h["kind"] for h in switch], "the root cause's timeline too"
