"""Malformed events get 400 naming the field, never 5xx, and store nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from servicegraph.bootstrap import Services
from tests.http.conftest import PATHS, am_alert, auth, stored_events, valid_payloads

OVERFLOWING = "9999-12-31T23:59:59-23:59"  # valid RFC 3339, but past year 9999 in UTC


def _with_time(source: str, value: str) -> tuple[dict[str, Any], str]:
    payload = valid_payloads()[source]
    if source == "alertmanager":
        payload["alerts"].append(am_alert(startsAt=value, fingerprint="beef"))
        return payload, "alerts.1.startsAt"
    if source == "zabbix":
        payload["time"] = value
        return payload, "time"
    if source == "generic":
        payload["occurred_at"] = value
        return payload, "occurred_at"
    payload["events"][1]["occurred_at"] = value
    return payload, "events.1.occurred_at"


@pytest.mark.parametrize("source", list(PATHS))
def test_a_time_that_overflows_in_utc_is_a_bad_field(
    client: TestClient, services: Services, source: str
) -> None:
    payload, field = _with_time(source, OVERFLOWING)
    r = client.post(PATHS[source], json=payload, headers=auth(source))
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert "out of range" in r.json()["reason"]
    assert stored_events(services) == 0


def test_a_resolved_alert_whose_end_overflows_names_endsAt(
    client: TestClient, services: Services
) -> None:
    payload = valid_payloads()["alertmanager"]
    payload["alerts"][0].update(status="resolved", endsAt=OVERFLOWING)
    r = client.post(PATHS["alertmanager"], json=payload, headers=auth("alertmanager"))
    assert (r.status_code, r.json()["field"]) == (400, "alerts.0.endsAt")
    assert stored_events(services) == 0


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("source", list(PATHS))
@pytest.mark.parametrize("depth", [975, 5000, 100_000])
def test_json_nested_too_deep_names_the_body(
    client: TestClient, services: Services, source: str, depth: int
) -> None:
    """Alertmanager's decoder skips unknown fields, descending into them as far as the
    interpreter's stack lets it: a 975-deep unknown field may be skipped (202) in a
    shallow thread, and is refused where the stack is deeper (uvicorn's loop, where it
    gave 500: see test_live_server). Deeper, it is refused everywhere."""
    payload = valid_payloads()[source]
    body = json.dumps(payload)[:-1] + f', "nested": {_nested(depth)}}}'
    r = client.post(PATHS[source], content=body, headers=auth(source))
    if r.status_code == 202:
        assert (source, depth) == ("alertmanager", 975), r.text
    else:
        assert (r.status_code, r.json()["field"]) in ((400, "body"), (400, "nested")), r.text
    whole = client.post(PATHS[source], content=_nested(depth), headers=auth(source))
    assert (whole.status_code, whole.json()["field"]) == (400, "body")
    assert stored_events(services) == (1 if r.status_code == 202 else 0)


@pytest.mark.parametrize("source", list(PATHS))
def test_a_body_that_is_not_an_object_names_the_body(
    client: TestClient, services: Services, source: str
) -> None:
    for body in ("[]", "1", '"text"', "null", "{"):
        r = client.post(PATHS[source], content=body, headers=auth(source))
        assert (r.status_code, r.json()["field"]) == (400, "body"), (body, r.text)
    assert stored_events(services) == 0
