"""The reports over GraphQL HTTP and the desk's gauges on /metrics, on a real store whose
tickets' SLA clocks the projection keeps: typed rows behind the ReportRow interface, who
may read them, bad arguments named, and the gauges read at scrape time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from servicegraph.cmdb.model import utcnow
from servicegraph.config import DeskSettings
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Incident, WorklogEntry, WorklogKind
from tests.graphql.conftest import Site, make_site

SLA: dict[str, Any] = {
    "policies": [
        {
            "name": "standard",
            "targets": {
                1: {"response": "15m", "resolution": "4h"},
                3: {"response": "4h", "resolution": "1d"},
            },
        }
    ]
}
NOW = utcnow()


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[Site]:
    yield from make_site(tmp_path, desk=DeskSettings(sla=SLA))


def ticket(number: int, *, hours_ago: float, group: str, priority: int, **fields: Any) -> Incident:
    opened = NOW - dt.timedelta(hours=hours_ago)
    fields.setdefault("updated_at", opened)
    return Incident(
        id=f"inc-r{number}",
        number=1000 + number,
        title="report me",
        status=fields.pop("status", TicketStatus.ASSIGNED),
        opened_at=opened,
        last_alert_at=opened,
        priority=priority,
        assignment_group=group,
        **fields,
    )


def seed(site: Site) -> None:
    """Saved as correlation and imports save tickets: the projection keeps their clocks."""
    resolved = NOW - dt.timedelta(hours=1)
    tickets = [
        # resolved in 2 h: the P1 resolution clock (4 h) met
        ticket(1, hours_ago=3, group="noc", priority=1, status=TicketStatus.RESOLVED,
               resolved_at=resolved, updated_at=resolved, first_response_at=resolved),
        # open for 30 h: the P1 clocks breached, running
        ticket(2, hours_ago=30, group="noc", priority=1),
        # open for 2 h at P3: nothing breached
        ticket(3, hours_ago=2, group="dbas", priority=3),
    ]  # fmt: skip
    with site.services.tickets.unit() as unit:
        unit.save_incidents(tickets)
        unit.append_worklog([resolving("inc-r1", resolved)])


def resolving(ticket_id: str, at: dt.datetime) -> WorklogEntry:
    """The status step the clocks read from the history."""
    return WorklogEntry(ticket_id, at, "bob", WorklogKind.TRANSITION, "resolve", field="status",
                        old="assigned", new="resolved")  # fmt: skip


REPORT = """
query($name: ReportName!, $by: ReportGroupBy, $from: String, $filter: ReportFilterInput) {
  report(name: $name, by: $by, from: $from, filter: $filter) {
    name title countedAt from to by timezone
    rows {
      __typename period key
      ... on DurationReportRow {
        calendar { count meanSeconds medianSeconds p90Seconds maxSeconds }
        business { count meanSeconds }
      }
      ... on ComplianceReportRow {
        resolution { met missed compliance breachedRunning }
        response { breachedRunning }
      }
      ... on BacklogReportRow { at open under1d d1To3 }
      ... on VolumeReportRow { opened }
    }
  }
}
"""


def report(site: Site, role: str = "agent", **variables: Any) -> dict[str, Any]:
    result: dict[str, Any] = site.data(REPORT, role, variables=variables)["report"]
    return result


def test_time_to_resolve_and_compliance_as_typed_rows(site: Site) -> None:
    seed(site)
    mttr = report(site, name="MTTR", by="GROUP")
    assert (mttr["name"], mttr["by"], mttr["countedAt"]) == ("MTTR", "GROUP", "resolved")
    (row,) = mttr["rows"]
    assert row["__typename"] == "DurationReportRow" and row["key"] == "noc"
    assert row["calendar"]["count"] == 1
    assert row["calendar"]["medianSeconds"] == pytest.approx(2 * 3600)
    assert row["business"] == {"count": 1, "meanSeconds": pytest.approx(2 * 3600)}
    sla = {r["key"]: r for r in report(site, name="SLA", by="GROUP")["rows"]}
    assert sla["noc"]["resolution"] == {
        "met": 1,
        "missed": 0,
        "compliance": 1.0,
        "breachedRunning": 1,
    }
    assert sla["noc"]["response"]["breachedRunning"] == 1
    assert "dbas" not in sla  # no clock of its ticket stopped or breached
    backlog = {r["key"]: r for r in report(site, name="BACKLOG", by="PRIORITY")["rows"]}
    assert (backlog["1"]["open"], backlog["1"]["d1To3"], backlog["3"]["under1d"]) == (1, 1, 1)
    volume = report(site, name="VOLUME", filter={"group": "dbas", "priority": 3})
    assert [r["opened"] for r in volume["rows"]] == [1]


def test_every_reader_may_read_reports_and_an_integration_may_not(site: Site) -> None:
    for role in ("viewer", "agent", "group_manager", "engineer", "admin"):
        assert report(site, role, name="VOLUME")["rows"] == []
    body = site.gql(REPORT, "integration", name="VOLUME")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert site.gql(REPORT, None, name="VOLUME")["errors"][0]["extensions"]["code"] == (
        "UNAUTHENTICATED"
    )


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"name": "MTTR", "from": "not a date"}, "from"),
        ({"name": "MTTR", "filter": {"priority": 9}}, "filter.priority"),
    ],
)
def test_a_bad_argument_is_named(site: Site, variables: dict[str, Any], field: str) -> None:
    body = site.gql(REPORT, "agent", variables=variables)
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}


def test_an_unknown_report_or_field_is_refused_by_the_schema(site: Site) -> None:
    body = site.gql(REPORT, "agent", name="MTTX")
    assert "MTTX" in body["errors"][0]["message"]
    body = site.gql(REPORT, "agent", name="MTTR", by="COLOUR")
    assert "COLOUR" in body["errors"][0]["message"]


def gauges(site: Site) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = site.client.get("/metrics")
    assert response.status_code == 200
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        if family.name.startswith(("servicegraph_tickets", "servicegraph_sla")):
            for sample in family.samples:
                found.setdefault(family.name, {})[tuple(sorted(sample.labels.items()))] = (
                    sample.value
                )
    return found


def test_metrics_show_open_tickets_and_breached_clocks(site: Site) -> None:
    assert gauges(site)["servicegraph_sla_breached_tickets"] == {
        (("clock", "resolution"),): 0,
        (("clock", "response"),): 0,
    }
    seed(site)
    found = gauges(site)
    assert found["servicegraph_tickets_open"] == {
        (("group", "dbas"), ("priority", "3")): 1,
        (("group", "noc"), ("priority", "1")): 1,
    }
    assert found["servicegraph_sla_clocks_breached"] == {
        (("clock", "resolution"), ("group", "noc")): 1,
        (("clock", "response"), ("group", "noc")): 1,
    }
    # read at each scrape: the breached ticket resolved, its clocks stop (missed)
    with site.services.tickets.unit() as unit:
        done = ticket(2, hours_ago=30, group="noc", priority=1, status=TicketStatus.RESOLVED,
                      resolved_at=NOW, updated_at=NOW)  # fmt: skip
        unit.update_incidents([done])
        unit.append_worklog([resolving(done.id, NOW)])
    found = gauges(site)
    assert (("group", "noc"), ("priority", "1")) not in found["servicegraph_tickets_open"]
    assert found.get("servicegraph_sla_clocks_breached", {}) == {}
    # ticket 2 breached both; ticket 1 answered after 2 hours (its resolution): missed
    assert found["servicegraph_sla_breached_tickets"] == {
        (("clock", "resolution"),): 1,
        (("clock", "response"),): 2,
    }
