"""Change-aware correlation with the real Prometheus Alertmanager (Debian's
prometheus-alertmanager) notifying a real `servicegraph serve` process: an alert on a CI
under an implementing change opens no incident and is linked to the change; the same
alert after the change closed opens an incident marked possibly caused by it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from servicegraph.bootstrap import bootstrap
from servicegraph.cmdb.ports import CIQuery
from servicegraph.config import Settings
from servicegraph.events.model import Alert, EventStatus
from servicegraph.ticketing.change_model import Change, ChangeRisk, ChangeStatus
from servicegraph.ticketing.model import LinkKind, WorklogKind
from servicegraph.ticketing.ports import IncidentFilter
from tests.integration.test_alertmanager import alert, post_alerts, stack  # noqa: F401
from tests.support import wait_for

CORE = "10.0.0.1:161"  # core-1's management address: its loss takes the Web shop down


def test_an_alert_under_an_implementing_change_is_expected_then_blamed_on_it(
    stack: tuple[str, Path],  # noqa: F811
) -> None:
    am, data = stack
    services = bootstrap(Settings(data_dir=data))
    try:
        (core,) = services.store.find_cis(CIQuery(name_contains="core-1"))
        now = dt.datetime.now(dt.UTC)
        change = Change(
            id="chg-am-1",
            number=1,
            title="Upgrade core-1",
            status=ChangeStatus.IMPLEMENTING,
            risk=ChangeRisk.HIGH,
            created_at=now - dt.timedelta(days=1),
            updated_at=now,
            created_by="alice",
            ci_ids=[core.id],
            planned_start=now - dt.timedelta(minutes=10),
            planned_end=now + dt.timedelta(hours=1),
            actual_start=now - dt.timedelta(minutes=10),
        )
        with services.tickets.unit() as unit:
            unit.save_change(change)

        def core_alert() -> Alert | None:
            found = services.tickets.alerts_on([core.id])
            return found[0] if found else None

        def correlated(check: bool) -> bool:
            return check and not services.inbox.counts()["inbox_pending"]

        post_alerts(am, [alert("LinkDown", CORE)])
        wait_for(lambda: correlated(core_alert() is not None), "the alert to be correlated")
        held = core_alert()
        assert held is not None and held.status is EventStatus.FIRING
        assert held.change_id == change.id
        assert held.incident_id is None
        assert services.tickets.find_incidents(IncidentFilter(limit=10)) == []  # no P1, none

        # the change is over; the link goes down again after it came back
        change.status, change.actual_end = ChangeStatus.CLOSED, dt.datetime.now(dt.UTC)
        with services.tickets.unit() as unit:
            unit.save_change(change)
        post_alerts(am, [alert("LinkDown", CORE, ended=True)])
        wait_for(
            lambda: correlated(getattr(core_alert(), "status", None) is EventStatus.RESOLVED),
            "the alert to clear",
        )
        post_alerts(am, [alert("LinkDown", CORE, started_ago_s=0)])
        wait_for(
            lambda: bool(services.tickets.find_incidents(IncidentFilter(limit=10))),
            "the incident",
        )
        (incident,) = services.tickets.find_incidents(IncidentFilter(limit=10))
        assert incident.root_ci_id == core.id
        assert incident.priority == 1  # what the change held back
        links = services.tickets.links_of([incident.id]).get(incident.id, [])
        assert [(k.kind, k.target_id) for k in links] == [(LinkKind.CAUSED_BY_CHANGE, change.id)]
        log = services.tickets.worklog([incident.id])[incident.id]
        (linked,) = [e.text for e in log if e.kind is WorklogKind.LINKED]
        assert linked.startswith("possibly caused by change 1 'Upgrade core-1' (closed ")
        assert linked.endswith(" before): core-1 is one of its CIs")
        refired = core_alert()
        assert refired is not None and refired.incident_id == incident.id
        assert refired.change_id is None

        (suspect,) = services.diagnosis.root_cause(incident.id).changes
        assert (suspect.change_id, suspect.linked, suspect.reason) == (change.id, True, linked)
    finally:
        services.close()
