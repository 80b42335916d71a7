"""The real Prometheus Alertmanager (Debian's prometheus-alertmanager) notifying a real
`servicegraph serve` process through its webhook."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from servicegraph.bootstrap import bootstrap
from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.ports import CIQuery
from servicegraph.config import Settings
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Incident, WorklogKind
from servicegraph.ticketing.people import Group
from servicegraph.ticketing.ports import IncidentFilter
from tests.stores import STORES, store_environment
from tests.support import free_port, require_executable, wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOKEN = "am-integration-token"


@pytest.fixture(params=STORES)
def stack(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Path]]:
    stored = store_environment(request, request.param)
    for name, value in stored.items():  # for the test's own Settings() too
        monkeypatch.setenv(name, value)
    alertmanager = require_executable(
        "prometheus-alertmanager",
        "alertmanager",
        install_hint="apt-get install prometheus-alertmanager",
    )
    data = tmp_path / "data"
    env = {
        **os.environ,
        "SERVICEGRAPH_DATA_DIR": str(data),
        "SERVICEGRAPH_INGEST_TOKENS__ALERTMANAGER": TOKEN,
        "SERVICEGRAPH_CORRELATION__HOLD_TIME_S": "0",
        **stored,
    }
    env.pop("SERVICEGRAPH_CONFIG", None)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "servicegraph.cli",
            "import",
            str(EXAMPLES / "small-site.json"),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    api_port, am_port = free_port(), free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        f"""
route:
  receiver: servicegraph
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: servicegraph
    webhook_configs:
      - url: http://127.0.0.1:{api_port}/api/v1/webhooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials: {TOKEN}
"""
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    api = subprocess.Popen(
        [sys.executable, "-m", "servicegraph.cli", "serve", "--port", str(api_port)],
        env=env,
        stdout=(logs / "api.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    am = subprocess.Popen(
        [
            alertmanager,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ],
        stdout=(logs / "am.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{api_port}/healthz").status_code == 200,
            "servicegraph",
        )
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{am_port}/-/ready").status_code == 200,
            "alertmanager",
        )
        yield f"http://127.0.0.1:{am_port}", data
    finally:
        for proc in (am, api):
            proc.terminate()
        for proc in (am, api):
            proc.wait(timeout=10)


def post_alerts(am: str, alerts: list[dict[str, object]]) -> None:
    r = httpx.post(f"{am}/api/v2/alerts", json=alerts, timeout=5)
    assert r.status_code == 200, r.text


def alert(
    name: str, instance: str, *, ended: bool = False, started_ago_s: float = 60
) -> dict[str, object]:
    now = dt.datetime.now(dt.UTC)
    body: dict[str, object] = {
        "labels": {"alertname": name, "instance": instance, "severity": "critical"},
        "annotations": {"summary": f"{name} on {instance}"},
        "startsAt": (now - dt.timedelta(seconds=started_ago_s)).isoformat(),
    }
    if ended:
        body["endsAt"] = (now - dt.timedelta(seconds=1)).isoformat()
    return body


def test_alertmanager_alerts_open_group_and_resolve_incidents(stack: tuple[str, Path]) -> None:
    am, data = stack
    services = bootstrap(Settings(data_dir=data))

    def incidents() -> list[Incident]:
        return services.tickets.find_incidents(IncidentFilter(limit=100))

    servers = ["db-1.hq.example.com:9100", "db-2.hq.example.com:9100", "db-3.hq.example.com:9100"]
    post_alerts(am, [alert("NodeDown", s) for s in servers] + [alert("LinkDown", "10.0.0.1:161")])
    wait_for(
        lambda: (
            services.tickets.counts()["alerts"] == 4
            and not services.inbox.counts()["inbox_pending"]
        ),
        "four alerts to be correlated",
    )
    by_title = {i.title: i for i in incidents()}
    assert len(by_title) == 2, by_title
    servers_incident = next(i for i in by_title.values() if i.alert_count == 3)
    (acc1,) = services.store.find_cis(CIQuery(name_contains="acc-1"))
    assert servers_incident.root_ci_id == acc1.id
    assert servers_incident.root_inferred
    assert servers_incident.priority == 1  # the Web shop is down

    post_alerts(am, [alert("NodeDown", s, ended=True) for s in servers])
    wait_for(
        lambda: (
            next(i for i in incidents() if i.id == servers_incident.id).status
            is TicketStatus.RESOLVED
        ),
        "the server incident to resolve",
    )
    still_open = [i for i in incidents() if i.status.active]
    assert [i.alert_count for i in still_open] == [1]
    services.close()


def test_a_monitoring_incident_is_routed_and_goes_through_the_lifecycle(
    stack: tuple[str, Path],
) -> None:
    """Issue acceptance: a monitoring incident from the real Alertmanager is routed to the
    root CI's support group and resolved and reopened through the desk's state machine,
    each step in its history."""
    am, data = stack
    services = bootstrap(Settings(data_dir=data))
    (acc1,) = services.store.find_cis(CIQuery(name_contains="acc-1"))
    with change_context(actor="test"):
        services.catalog.update_ci(acc1.id, attributes={"support_group": "network"})
        services.directory.upsert_group(Group(id="network", name="Network team"))

    def incident() -> Incident | None:
        found = services.tickets.find_incidents(IncidentFilter(limit=10))
        return next((i for i in found if i.root_ci_id == acc1.id), None)

    def steps(incident_id: str) -> list[tuple[WorklogKind, str, str | None, str | None]]:
        log = services.tickets.worklog([incident_id]).get(incident_id, [])
        return [(e.kind, e.actor, e.old, e.new) for e in log]

    servers = ["db-1.hq.example.com:9100", "db-2.hq.example.com:9100", "db-3.hq.example.com:9100"]
    post_alerts(am, [alert("NodeDown", s) for s in servers])
    wait_for(lambda: incident() is not None and incident().alert_count == 3, "the incident")  # type: ignore[union-attr]
    opened = incident()
    assert opened is not None
    assert (opened.status, opened.assignment_group) == (TicketStatus.NEW, "network")
    assert opened.routed_by is not None and "support_group" in opened.routed_by

    post_alerts(am, [alert("NodeDown", s, ended=True) for s in servers])
    wait_for(lambda: incident().status is TicketStatus.RESOLVED, "the incident to resolve")  # type: ignore[union-attr]
    # firing again: a new start, after the clear (an older one would be an old message)
    post_alerts(am, [alert("NodeDown", servers[0], started_ago_s=0)])
    wait_for(lambda: incident().status is TicketStatus.NEW, "the incident to reopen")  # type: ignore[union-attr]

    reopened = incident()
    assert reopened is not None and reopened.id == opened.id and reopened.reopen_count == 1
    assert steps(opened.id) == [
        (WorklogKind.CREATED, "correlation", None, None),
        (WorklogKind.ROUTED, "correlation", None, "network"),
        (WorklogKind.TRANSITION, "correlation", "new", "resolved"),
        (WorklogKind.TRANSITION, "correlation", "resolved", "new"),
    ]
    services.close()
