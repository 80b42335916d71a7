"""Events dated in the future are dated at their reception; the source's time is kept."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from fastapi.testclient import TestClient

from servicegraph.bootstrap import Services
from servicegraph.events.model import clamp_clock_skew
from servicegraph.http.app import create_app
from servicegraph.runtime import jobs
from tests.correlation.conftest import T0, World

FAR = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


def test_a_future_event_opens_its_incident_at_the_reception(world: World) -> None:
    event = world.event("LinkDown", "dist-1", at=FAR)
    world.send(event)
    (incident,) = world.incidents("open")
    assert incident.opened_at == T0, "not in the year 9999"
    (alert,) = world.services.tickets.incident_alerts([incident.id]).get(incident.id, [])
    assert (alert.first_seen, alert.reported_at) == (T0, FAR)


def test_skew_within_the_bound_is_kept(world: World) -> None:
    ahead = T0 + dt.timedelta(seconds=200)  # a clock a little ahead: max_clock_skew_s 300
    world.send(world.event("LinkDown", "dist-1", at=ahead))
    (incident,) = world.incidents("open")
    (alert,) = world.services.tickets.incident_alerts([incident.id]).get(incident.id, [])
    assert (alert.first_seen, alert.reported_at) == (ahead, None)


def test_a_future_resolve_clears_at_the_reception(world: World) -> None:
    world.send(world.event("LinkDown", "dist-1"))
    world.clock.advance(minutes=1)
    world.send(world.event("LinkDown", "dist-1", "resolved", at=FAR))
    (incident,) = world.incidents()
    (alert,) = world.services.tickets.incident_alerts([incident.id]).get(incident.id, [])
    assert alert.cleared_at == world.clock.now
    assert alert.reported_at == FAR


def test_identity_is_left_as_sent() -> None:
    from servicegraph.events.model import Event, EventStatus, Severity

    events = [
        Event("s", "n", EventStatus.FIRING, Severity.MAJOR, when, f"fp{n}", f"id{n}")
        for n, when in enumerate((T0, FAR))
    ]
    kept = clamp_clock_skew(events, T0, dt.timedelta(seconds=300))
    assert kept[0] is events[0]
    assert (kept[1].occurred_at, kept[1].reported_at) == (T0, FAR)
    assert (kept[1].event_id, kept[1].fingerprint) == ("id1", "fp1")


def test_clamped_events_are_counted_and_shown(make_services: Callable[..., Services]) -> None:
    # The test correlates itself: an embedded worker thread could take the batch first and
    # count it after the metrics page is read.
    services = make_services(embedded_worker=False)
    services.settings.ingest_tokens = {"generic": "tok"}
    auth = {"Authorization": "Bearer tok"}
    with TestClient(create_app(services)) as client:
        r = client.post(
            "/api/v1/events",
            json={"name": "x", "occurred_at": "9999-12-31T23:59:59Z", "labels": {"a": "1"}},
            headers=auth,
        )
        assert r.status_code == 202
        again = client.post(
            "/api/v1/events",
            json={"name": "x", "occurred_at": "9999-12-31T23:59:59Z", "labels": {"a": "1"}},
            headers=auth,
        )
        assert again.json()["duplicates"] == 1, "the redelivery is still recognised"
        before = clamped_count(client.get("/metrics").text)
        jobs.correlate(services)
        after = clamped_count(client.get("/metrics").text)
    assert after == before + 1, "the redelivery is not counted twice"
    (alert,) = services.tickets.unmapped_alerts()
    assert alert.reported_at == FAR
    assert alert.first_seen < dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)


def clamped_count(page: str) -> float:
    (line,) = [
        line
        for line in page.splitlines()
        if line.startswith("servicegraph_events_clock_clamped_total ")
    ]
    return float(line.split()[1])
