"""Monitoring incidents take their SLA from what they break: the most critical impacted
business service's ``sla_tier`` names the policy and its ``service_hours`` the calendar,
and the clock's targets follow the priority computed from impact; the acknowledgement is
the response."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servicegraph.bootstrap import bootstrap
from servicegraph.cmdb.importer import read_files
from servicegraph.config import CorrelationSettings, DeskSettings, Settings
from servicegraph.ticketing.sla import ClockState
from tests.correlation.conftest import EXAMPLES, Clock, World

TARGETS = {p: {"response": f"{5 * p}m", "resolution": f"{p}h"} for p in range(1, 6)}
SLOW = {p: {"response": "8h", "resolution": "5d"} for p in range(1, 6)}
CALENDARS = {"weekdays": {"timezone": "UTC", "hours": {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}}}  # fmt: skip  # noqa: E501
SLA: dict[str, Any] = {
    "policies": [
        {"name": "desk-default", "targets": SLOW},
        {"name": "gold", "targets": TARGETS},
    ],
    "tiers": {"gold": "gold"},
}


def world_with(tmp_path: Path, tiers: dict[str, dict[str, Any]]) -> Iterator[World]:
    clock = Clock()
    settings = Settings(
        data_dir=tmp_path,
        correlation=CorrelationSettings(hold_time_s=60),
        desk=DeskSettings(calendars=CALENDARS, sla=SLA),
    )
    services = bootstrap(settings)
    services.correlator.clock = clock
    for service in (services.desk.tickets, services.desk.incidents, services.desk.sla):
        service.clock = clock
    site = json.loads((EXAMPLES / "small-site.json").read_text())
    for ci in site["cis"]:
        ci.setdefault("attributes", {}).update(tiers.get(ci["key"], {}))
    path = tmp_path / "site.json"
    path.write_text(json.dumps(site))
    batch = read_files([path], services.classes, source="import")
    report = services.reconciler.apply(batch)
    ids = {obs.key: ci_id for obs, ci_id in zip(batch.cis, report.ci_ids, strict=True)}
    yield World(services, clock, ids)  # type: ignore[arg-type]
    services.close()


@pytest.fixture()
def gold_shop(tmp_path: Path) -> Iterator[World]:
    yield from world_with(tmp_path, {"web-shop": {"sla_tier": "gold", "service_hours": "weekdays"}})


def test_an_outage_of_a_gold_service_follows_the_gold_policy_on_its_hours(
    gold_shop: World,
) -> None:
    world = gold_shop
    world.send(world.event("AppDown", "orders-app"))
    (incident,) = world.incidents()
    assert world.ids["web-shop"] in incident.business_services
    assert (incident.sla_tier, incident.service_hours) == ("gold", "weekdays")
    record = world.services.desk.sla.clock_of(incident.id)
    assert record is not None and (record.policy, record.calendar) == ("gold", "weekdays")
    assert record.resolution.target == dt.timedelta(hours=incident.priority)
    world.services.desk.incidents.acknowledge(incident.id)
    record = world.services.desk.sla.clock_of(incident.id)
    assert record is not None and record.response.state is ClockState.MET


def test_without_a_tier_the_desks_policy_applies(tmp_path: Path) -> None:
    for world in world_with(tmp_path, {}):
        world.send(world.event("AppDown", "orders-app"))
        (incident,) = world.incidents()
        assert incident.sla_tier is None
        record = world.services.desk.sla.clock_of(incident.id)
        assert record is not None and record.policy == "desk-default"
