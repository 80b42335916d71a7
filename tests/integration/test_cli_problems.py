"""Problem management on the command line, on a real SQLite store in a temporary data
directory with the desk's people imported: a problem walked from open to closed with its
fixing change (``servicegraph problem ...``), refusals that print the argument or option at
fault, exit 1 and write nothing, and the known error shown by ``ticket show`` on a later
ticket about the problem's root CI until the problem is resolved."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from servicegraph.bootstrap import bootstrap
from servicegraph.cli import app
from servicegraph.cmdb.model import new_id
from servicegraph.config import Settings
from servicegraph.ticketing.change_model import Change, ChangeRisk, ChangeStatus
from tests.graphql.test_desk_fixtures import load_desk

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SERVICEGRAPH_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    run(runner, "import", str(EXAMPLES / "small-site.json"))
    services = bootstrap(Settings())
    try:
        load_desk(services)
    finally:
        services.close()
    return runner


def run(cli: CliRunner, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, result.output + result.stderr
    return result.stdout if code == 0 else result.stderr


def as_json(cli: CliRunner, *args: str) -> Any:
    return json.loads(run(cli, *args, "--json"))


def save_change(change_id: str | None = None, **fields: Any) -> str:
    """A change saved as the change service would (that service is another part's)."""
    services = bootstrap(Settings())
    try:
        now = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
        db1 = services.catalog.resolve("db-1")
        with services.tickets.unit() as unit:
            change = Change(
                id=change_id or new_id("chg"),
                number=fields.pop("number", None) or unit.next_change_number(),
                title="Upgrade db-1",
                status=fields.pop("status", ChangeStatus.SCHEDULED),
                risk=ChangeRisk.LOW,
                created_at=now,
                updated_at=now,
                created_by="carol",
                ci_ids=[db1],
                **fields,
            )
            unit.save_change(change)
        return change.id
    finally:
        services.close()


def refused(cli: CliRunner, problem_id: str, *args: str) -> str:
    """The one line a refused command prints; the problem is as it was."""
    before = as_json(cli, "problem", "show", problem_id)
    message = run(cli, *args, code=1)
    assert as_json(cli, "problem", "show", problem_id) == before, "a refusal writes nothing"
    return " ".join(message.split())


def test_a_problem_walks_from_open_to_closed_by_cli(cli: CliRunner) -> None:
    created = as_json(
        cli, "problem", "create", "--title", "db-1 reboots", "--root-ci", "db-1", "--as", "alice"
    )
    pid = created["id"]
    assert (created["status"], created["number"], created["assignee"]) == ("open", 1, None)
    assert "allowed: investigate, record_known_error, resolve, cancel" in refused(
        cli, pid, "problem", "transition", pid, "close"
    )
    assert refused(cli, pid, "problem", "transition", pid, "investigate") == (
        "error: --assignee: 'investigate' needs assignee"
    )
    assert refused(cli, pid, "problem", "transition", pid, "finish").startswith(
        "error: STEP: unknown step 'finish'"
    )
    assert refused(cli, pid, "problem", "update", pid, "--assignee", "ghost") == (
        "error: --assignee: no agent with login 'ghost'"
    )
    assert run(cli, "problem", "show", "prb-nope", code=1).strip() == (
        "error: PROBLEM: no problem with id 'prb-nope'"
    )

    moved = as_json(cli, "problem", "transition", pid, "investigate", "--assignee", "bob",
                    "--as", "alice")  # fmt: skip
    assert (moved["status"], moved["assignee"]) == ("investigating", "bob")
    run(cli, "problem", "update", pid, "--root-cause", "firmware 1.2 leaks memory",
        "--fix", "upgrade to 1.3", "--as", "bob")  # fmt: skip
    known = as_json(cli, "problem", "known-error", pid, "memory leak",
                    "--workaround", "restart weekly", "--as", "bob")  # fmt: skip
    assert (known["status"], known["workaround"]) == ("known_error", "restart weekly")

    # a later ticket about the root CI: `ticket show` offers the known error
    ticket = as_json(cli, "ticket", "create", "--title", "orders are slow", "--ci", "db-1",
                     "--as", "alice")["id"]  # fmt: skip
    shown = run(cli, "ticket", "show", ticket)
    assert "Known errors:" in shown
    assert f"PRB1 {pid} (affected CI db-1 is its root CI): memory leak" in shown
    assert "workaround: restart weekly" in shown
    (offered,) = as_json(cli, "ticket", "show", ticket)["known_errors"]
    assert (offered["problem_id"], offered["why"]) == (pid, "affected CI db-1 is its root CI")

    assert refused(cli, pid, "problem", "link-change", pid, "chg-nope") == (
        "error: CHANGE: no change with id 'chg-nope'"
    )
    change = save_change()
    linked = as_json(cli, "problem", "link-change", pid, change, "--as", "bob")
    assert linked["fixing_change_id"] == change
    assert "proposed:" not in run(cli, "problem", "show", pid)
    save_change(change, number=1, status=ChangeStatus.CLOSED, close_code="successful")
    shown = run(cli, "problem", "show", pid)
    assert "fixing change: 1 'Upgrade db-1' [closed]" in shown
    assert (
        "proposed: change 1 'Upgrade db-1' closed successfully on 2026-12-02 10:00 UTC: "
        "resolve the problem" in shown
    )
    assert "root CI db-1" in shown

    assert refused(cli, pid, "problem", "transition", pid, "resolve") == (
        "error: --resolution: 'resolve' needs resolution"
    )
    resolved = as_json(cli, "problem", "transition", pid, "resolve", "--resolution",
                       "firmware 1.3 everywhere", "--as", "bob")  # fmt: skip
    assert resolved["status"] == "resolved"
    shown = run(cli, "ticket", "show", ticket)  # still offered, as a fix that may not hold
    assert "a new incident may mean the fix did not hold): memory leak" in shown
    assert refused(cli, pid, "problem", "link-incident", pid, ticket) == (
        f"error: {pid}: is resolved and takes no new incidents"
    )
    closed = as_json(cli, "problem", "transition", pid, "close", "--as", "bob")
    assert closed["status"] == "closed" and closed["closed_at"] is not None

    shown = as_json(cli, "problem", "show", pid)
    assert shown["allowed_steps"] == [] and shown["resolution_proposal"] is None
    assert [(e["kind"], e["field"], e["actor"]) for e in shown["history"]] == [
        ("created", None, "alice"),
        ("transition", "status", "alice"),
        ("assigned", "assignee", "alice"),
        ("changed", "root_cause", "bob"),
        ("changed", "fix", "bob"),
        ("known_error", "status", "bob"),
        ("linked", "fixing_change_id", "bob"),
        ("transition", "status", "bob"),
        ("changed", "resolution", "bob"),
        ("transition", "status", "bob"),
    ]
    (listed,) = as_json(cli, "problem", "list", "--status", "closed")
    assert listed["id"] == pid
    assert as_json(cli, "problem", "list", "--status", "open") == []
    assert "--status: 'bogus' is not one of" in run(
        cli, "problem", "list", "--status", "bogus", code=1
    )
    assert "PRB1" in run(cli, "problem", "list", "--ci", "db-1")
    assert "PRB1" in run(cli, "problems"), "the old listing command stays"
