"""``servicegraph import-tickets --format servicenow-event-log`` on the real log slice
(tests/data/servicenow/uci-incident-log-slice.csv: the first 5,998 rows, 890 incidents,
of the "Incident management process enriched event log", Amaral, Fantinato, Peres 2018, UCI
Machine Learning Repository, DOI 10.24432/C57S4H, CC BY 4.0), through the CLI into a
fresh data directory on a real SQLite store: every incident imported, a re-run imports
none, one real incident's history checked step by step against its CSV rows, bad rows
named and (with --strict) nothing written, a dry run writing nothing."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from servicegraph.bootstrap import bootstrap
from servicegraph.cli import app
from servicegraph.config import Settings
from servicegraph.ticketing.model import Incident

SLICE = Path(__file__).resolve().parents[1] / "data" / "servicenow" / "uci-incident-log-slice.csv"
FORMAT = ("--format", "servicenow-event-log")


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SERVICEGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SERVICEGRAPH_CONFIG", raising=False)
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> Any:
    result = cli.invoke(app, ["import-tickets", *FORMAT, *args])
    assert result.exit_code == code, result.output + result.stderr
    return result


def imported(cli: CliRunner, *args: str, code: int = 0) -> Any:
    return json.loads(run(cli, *args, "--json", code=code).stdout)


def rows() -> list[dict[str, str]]:
    with SLICE.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def stored() -> dict[str, Incident]:
    """Every stored ticket by its ServiceNow number."""
    services = bootstrap(Settings())
    try:
        with services.tickets.snapshot() as snapshot:
            return {t.external_ref or "": t for t in snapshot.incidents()}
    finally:
        services.close()


def at(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%d-%m-%Y %H:%M").replace(tzinfo=dt.UTC)


def test_the_slice_is_imported_once(cli: CliRunner) -> None:
    log = rows()
    numbers = {r["number"] for r in log}
    report = imported(cli, str(SLICE))
    assert report["written"] and report["errors"] == []
    assert report["rows_read"] == len(log) == 5998
    assert report["incidents_read"] == report["created"] == len(numbers) == 890
    assert report["skipped_existing"] == report["refused_incidents"] == 0
    assert report["numbers"] == [1, 890]
    # the directory holds every group, agent and caller the log names
    people = report["people_created"]
    assert people["groups"] == len({r["assignment_group"] for r in log} - {"?"})
    agents = {r["assigned_to"] for r in log} | {r["resolved_by"] for r in log}
    assert people["agents"] == len(agents - {"?"})
    assert people["contacts"] == len({r["caller_id"] for r in log} - {"?"})
    tickets = stored()
    assert set(tickets) == numbers
    assert sorted(t.number for t in tickets.values()) == list(range(1, 891))
    services = bootstrap(Settings())
    try:
        d = services.directory.directory()
        assert {t.assignment_group for t in tickets.values()} - {None} <= set(d.groups)
        assert {t.requester for t in tickets.values()} - {None} <= set(d.contacts)
        for t in tickets.values():
            if t.assignee is not None and t.assignment_group is not None:
                d.check_assignment(t.assignment_group, t.assignee)  # navigable: a member
    finally:
        services.close()

    again = run(cli, str(SLICE))
    assert "imported 0 incident(s) from 5,998 row(s); 890 already imported, skipped" in (
        again.stderr
    )
    assert len(stored()) == 890


def test_one_real_incident_reads_as_its_rows(cli: CliRunner) -> None:
    """INC0000102: pending, five groups, resolved, reopened, resolved again, closed."""
    imported(cli, str(SLICE))
    t = stored()["INC0000102"]
    mine = sorted(
        (r for r in rows() if r["number"] == "INC0000102"), key=lambda r: int(r["sys_mod_count"])
    )
    assert len(mine) == 19
    assert t.opened_at == at(mine[0]["opened_at"])
    assert t.status == "closed" and t.channel == "phone"
    assert t.reopen_count == int(mine[-1]["reopen_count"]) == 1
    assert t.reassignment_count == int(mine[-1]["reassignment_count"]) == 4
    assert t.resolved_at == at("17-03-2016 16:28") == at(mine[-1]["resolved_at"])
    assert t.closed_at == at("24-03-2016 18:59") == at(mine[-1]["closed_at"])
    assert t.first_response_at == at("29-02-2016 20:09")  # Awaiting User Info: a question
    assert t.assignment_group == "group-23" and t.assignee == "resolver-31"
    assert t.requester == mine[0]["caller_id"].lower().replace(" ", "-")
    assert t.custom_fields["made_sla"] is False  # TRUE until the closing row said FALSE
    assert t.priority == int(mine[-1]["priority"][0])

    shown = json.loads(
        CliRunner().invoke(app, ["ticket", "show", t.id, "--json"]).stdout  # as people see it
    )
    steps = [
        (e["at"], e["actor"], e["old"], e["new"])
        for e in shown["history"]
        if e["kind"] == "transition"
    ]

    def when(text: str) -> str:
        return at(text).isoformat()

    assert steps == [
        (when("29-02-2016 20:09"), "updated-by-111", "new", "pending"),
        (when("03-03-2016 17:29"), "updated-by-727", "pending", "in_progress"),
        (when("07-03-2016 11:50"), "updated-by-507", "in_progress", "pending"),
        (when("14-03-2016 08:13"), "updated-by-135", "pending", "resolved"),
        (when("17-03-2016 16:27"), "updated-by-241", "resolved", "in_progress"),
        (when("17-03-2016 16:28"), "updated-by-241", "in_progress", "resolved"),
        (when("24-03-2016 18:59"), "updated-by-908", "resolved", "closed"),
    ]
    groups = [
        (e["at"], e["old"], e["new"])
        for e in shown["history"]
        if e["kind"] == "assigned" and e["field"] == "assignment_group"
    ]
    assert groups == [
        (when("29-02-2016 09:13"), None, "group-70"),
        (when("04-03-2016 11:15"), "group-70", "group-50"),
        (when("04-03-2016 12:17"), "group-50", "group-70"),
        (when("04-03-2016 14:08"), "group-70", "group-29"),
        (when("04-03-2016 15:51"), "group-29", "group-23"),
    ]
    # every change the rows show, and nothing else: one entry per changed field
    kinds = [e["kind"] for e in shown["history"]]
    assert kinds[0] == "created"
    reasons = [e["new"] for e in shown["history"] if e["field"] == "pending_reason"]
    assert reasons == ["awaiting_requester", None, "awaiting_requester", None]


def test_bad_rows_are_listed_and_strict_writes_nothing(cli: CliRunner, tmp_path: Path) -> None:
    lines = SLICE.read_text(encoding="utf-8").splitlines(keepends=True)
    bad = tmp_path / "bad.csv"
    broken = list(lines)
    broken[2] = broken[2].replace("29-02-2016 08:53", "29-02-2016 8h53")  # INC0000045
    broken[10] = broken[10].replace(",Active,", ",Suspended,", 1)
    bad.write_text("".join(broken), encoding="utf-8")
    number_of = {i + 1: line.split(",", 1)[0] for i, line in enumerate(broken)}

    strict = run(cli, str(bad), "--strict", code=1)
    assert f"error: {bad}:3: field 'sys_updated_at': '29-02-2016 8h53' is not a time" in (
        strict.stderr
    )
    assert f"error: {bad}:11: field 'incident_state': unknown state 'Suspended'" in strict.stderr
    assert "2 problem(s); nothing was imported (--strict)" in strict.stderr
    assert stored() == {}

    report = imported(cli, str(bad), code=1)
    assert [(e["item"], e["field"]) for e in report["errors"]] == [
        (f"{bad}:3", "sys_updated_at"),
        (f"{bad}:11", "incident_state"),
    ]
    refused = {number_of[3], number_of[11]}
    assert report["refused_incidents"] == len(refused)
    assert report["created"] == 890 - len(refused)
    assert set(stored()) == {r["number"] for r in rows()} - refused
    # fixed, the log imports what is missing only
    again = imported(cli, str(SLICE))
    assert (again["created"], again["skipped_existing"]) == (len(refused), 890 - len(refused))


def test_a_dry_run_and_option_errors_write_nothing(cli: CliRunner) -> None:
    report = imported(cli, str(SLICE), "--dry-run", "--timezone", "Europe/Lisbon")
    assert report["dry_run"] and not report["written"]
    assert report["created"] == 890 and report["numbers"] == []
    assert stored() == {}
    zone = run(cli, str(SLICE), "--timezone", "Mars/Olympus", code=2)
    assert "--timezone: unknown time zone 'Mars/Olympus'" in zone.stderr
    missing = run(cli, "nowhere.csv", code=1)
    assert "nowhere.csv: cannot read" in missing.stderr
    fmt = CliRunner().invoke(app, ["import-tickets", "--format", "jira", str(SLICE)])
    assert fmt.exit_code == 2


# -- the service on hand-written logs: batches, numbering, people, SLA clocks -------------

LOG_HEADER = (
    "number,incident_state,sys_mod_count,opened_at,sys_updated_at,sys_updated_by,"
    "caller_id,assignment_group,assigned_to,priority,made_sla\n"
)


def small_log(*incidents: tuple[str, str, str, list[tuple[str, str]]]) -> str:
    """(number, group, agent, [(state, updated_at), ...]) each; opened 1 March 09:00."""
    lines = [LOG_HEADER]
    for number, group, agent, steps in incidents:
        for mod, (state, when) in enumerate(steps):
            lines.append(
                f"{number},{state},{mod},01-03-2016 09:00,{when},Updated by 1,Caller {number},"
                f"{group},{agent},2 - High,TRUE\n"
            )
    return "".join(lines)


def done(number: str, group: str, agent: str) -> tuple[str, str, str, list[tuple[str, str]]]:
    return (
        number,
        group,
        agent,
        [
            ("New", "01-03-2016 09:05"),
            ("Active", "01-03-2016 10:00"),
            ("Awaiting User Info", "01-03-2016 11:00"),
            ("Active", "01-03-2016 15:00"),
            ("Resolved", "01-03-2016 16:00"),
        ],
    )


SLA = {
    "policies": [
        {
            "name": "issue-17",
            "calendar": "24x7",
            "targets": {
                1: {"response": "1h", "resolution": "4h"},
                2: {"response": "2h", "resolution": "8h"},
                3: {"response": "4h", "resolution": "24h"},
                4: {"response": "8h", "resolution": "72h"},
            },
        }
    ]
}


def test_batches_people_and_clocks(tmp_path: Path) -> None:
    from servicegraph.ticketing.history_import import HistoryImport
    from servicegraph.ticketing.people import Agent, Group
    from servicegraph.ticketing.sla import ClockState

    services = bootstrap(Settings(data_dir=tmp_path / "data", desk={"sla": SLA}))
    try:
        services.directory.upsert_group(Group(id="group-x", name="Group X"))
        services.directory.upsert_agent(
            Agent(login="resolver-9", name="Nine", email="nine@example.org", groups=("group-x",))
        )
        first = small_log(done("INC1", "Group A", "Resolver 1"))
        history = HistoryImport(services.tickets, services.directory.store, batch_size=2)
        assert history.run(first).created == 1
        log = small_log(
            done("INC1", "Group A", "Resolver 1"),  # imported already
            done("INC2", "Group A", "Resolver 2"),
            done("INC3", "Group B", "Resolver 1"),  # the same agent, another group
            done("INC4", "Group B", "Resolver 9"),  # an agent the desk already had
            done("INC5", "Group A", "?"),
        )
        seen: list[tuple[str, int]] = []
        dry = history.run(log, dry_run=True, progress=lambda phase, n: seen.append((phase, n)))
        assert (dry.created, dry.skipped_existing, dry.written) == (4, 1, False)
        assert dry.people_created.groups == 1 and dry.people_created.agents == 1
        assert seen[-1] == ("reading", 25)
        assert set(services.directory.directory().groups) == {"group-x", "group-a"}

        report = history.run(log)
        assert (report.created, report.skipped_existing) == (4, 1)
        assert (report.first_number, report.last_number) == (2, 5)  # after the first run's
        d = services.directory.directory()
        assert d.agents["resolver-1"].groups == ("group-a", "group-b")  # grown across batches
        assert d.agents["resolver-9"].groups == ("group-x",)  # the desk's own: left alone
        assert d.agents["resolver-2"].email == "resolver-2@imported.invalid"
        assert set(d.groups["group-b"].members) == {"resolver-1"}
        assert {f"caller-inc{n}" for n in range(1, 6)} <= set(d.contacts)

        with services.tickets.snapshot() as snapshot:
            tickets = {t.external_ref: t for t in snapshot.incidents()}
        assert sorted(t.number for t in tickets.values()) == [1, 2, 3, 4, 5]
        t = tickets["INC2"]
        log_of = services.tickets.worklog([t.id])[t.id]
        assert [e.kind.value for e in log_of][:2] == ["created", "assigned"]
        # the clocks the desk keeps for it, as for a live ticket: P2, 8 h to resolve, the
        # four hours awaiting the user paused; answered when work started
        clock = services.desk.sla.clock_of(t.id)
        assert clock is not None and clock.priority == 2
        assert clock.response.stopped_at == t.first_response_at == at("01-03-2016 10:00")
        assert clock.resolution.stopped_at == t.resolved_at == at("01-03-2016 16:00")
        assert clock.resolution.elapsed == dt.timedelta(hours=3)  # 09-11 and 15-16
        assert clock.resolution.state is ClockState.MET
    finally:
        services.close()
