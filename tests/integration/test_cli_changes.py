"""Change management on the command line: ``servicegraph change ...`` on a real SQLite store
in a temporary data directory, the small site imported, people with desk roles imported
(alice, bob and carol are change managers, dave an agent) and a standard-change template
in the settings file (SERVICEGRAPH_CONFIG).

A normal change on core-1 (a single point of failure of Web shop: risk high, two CAB
approvals) walks from draft to closed, each refusal on the way one line that names what is
wrong and writes nothing; two changes on core-1 in overlapping windows list their conflict
on both sides, and approval is refused until a change manager overrides it; a freeze
window conflicts until it is lifted; a standard change from its template skips the CAB,
one riskier than the template allows is refused; bad input is one line naming the option,
exit 1, nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from servicegraph.cli import app
from tests.graphql.test_changes import PEOPLE, RISK, TEMPLATES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# A night in the future: the walk never depends on today's date.
START, END = "2031-03-04T22:00:00Z", "2031-03-05T00:00:00Z"
PLANS = ["--implementation-plan", "flash the new image, reload", "--backout-plan", "boot the old"]


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    settings = tmp_path / "servicegraph.yaml"
    settings.write_text(yaml.safe_dump({"desk": {"changes": {"templates": TEMPLATES}}}))
    people = tmp_path / "people.json"
    people.write_text(json.dumps(PEOPLE))
    monkeypatch.setenv("SERVICEGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SERVICEGRAPH_CONFIG", str(settings))
    runner = CliRunner()
    run(runner, "import", str(EXAMPLES / "small-site.json"))
    run(runner, "people", "import", str(people))
    return runner


def run(cli: CliRunner, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, result.output + result.stderr
    if code:  # a refusal is one line on stderr, never a traceback
        assert result.exception is None or isinstance(result.exception, SystemExit), result
        assert result.stderr.count("\n") == 1, result.stderr
    return result.stdout if code == 0 else result.stderr


def as_json(cli: CliRunner, *args: str) -> Any:
    return json.loads(run(cli, *args, "--json"))


def listed(cli: CliRunner) -> list[tuple[int, str]]:
    return [(c["number"], c["status"]) for c in as_json(cli, "change", "list")]


def worklog(cli: CliRunner, change_id: str) -> list[str]:
    return [e["text"] for e in as_json(cli, "change", "show", change_id)["worklog"]]


def create(cli: CliRunner, title: str, *options: str, actor: str = "alice") -> dict[str, Any]:
    created: dict[str, Any] = as_json(
        cli, "change", "create", "--title", title, *options, "--as", actor
    )
    return created


def to_approval(cli: CliRunner, change_id: str) -> None:
    as_json(cli, "change", "step", change_id, "assess", "--as", "alice")
    as_json(cli, "change", "step", change_id, "request_approval", "--as", "alice")


# (command, status after it); the refusals before the step of the same index follow.
WALK: list[tuple[list[str], str]] = [
    (["step", "{id}", "assess", "--as", "alice"], "assessment"),
    (["update", "{id}", "--planned-start", START, "--planned-end", END, *PLANS, "--as", "alice"],
     "assessment"),
    (["step", "{id}", "request_approval", "--as", "alice"], "approval"),
    (["approve", "{id}", "--comment", "backup taken first", "--as", "bob"], "approval"),
    (["approve", "{id}", "--as", "carol"], "scheduled"),
    (["task-add", "{id}", "--title", "Back up the running config", "--assignee", "dave",
      "--as", "alice"], "scheduled"),
    (["step", "{id}", "start", "--as", "dave"], "implementing"),
    (["task-update", "{id}", "1", "--status", "done", "--as", "dave"], "implementing"),
    (["step", "{id}", "complete", "--as", "dave"], "review"),
    (["step", "{id}", "close", "--close-code", "successful", "--close-notes", "no alarms",
      "--as", "dave"], "closed"),
]  # fmt: skip

REFUSED: dict[int, list[tuple[list[str], str]]] = {
    0: [
        (["step", "{id}", "start", "--as", "alice"],
         "is draft: cannot start; allowed: assess, cancel"),
        (["step", "{id}", "finish", "--as", "alice"], "STEP: unknown step 'finish'"),
    ],
    1: [(["step", "{id}", "request_approval", "--as", "alice"],
         "--planned-start: 'request_approval' needs planned_start")],
    3: [
        (["approve", "{id}", "--as", "alice"],
         "--as alice: requested {id}: the requester cannot approve their own change"),
        (["approve", "{id}", "--as", "dave"],
         "--as dave: only an active agent with the change_manager role may approve"),
    ],
    4: [(["approve", "{id}", "--as", "bob"], "--as bob: has already decided on {id}")],
    7: [(["step", "{id}", "complete", "--as", "dave"],
         "has open tasks: 1 'Back up the running config'; finish or cancel them")],
    9: [(["step", "{id}", "close", "--as", "dave"],
         "--close-code: 'close' needs close_code (one of successful, successful_with_issues)")],
}  # fmt: skip


def test_a_normal_change_walks_from_draft_to_closed(cli: CliRunner) -> None:
    text = run(cli, "change", "create", "--title", "Upgrade core-1 firmware", "--ci", "core-1",
               "--as", "alice")  # fmt: skip
    assert "[draft] normal, risk high, 0/2 approvals, on core-1: Upgrade core-1 firmware" in text
    assert all(f"  - {reason}" in text for reason in RISK), text
    (change,) = as_json(cli, "change", "list")
    change_id = change["id"]
    assert (change["risk"], change["risk_reasons"], change["approvals_required"]) == (
        "high",
        RISK,
        2,
    )
    assert (change["created_by"], change["change_type"]) == ("alice", "normal")

    seen = worklog(cli, change_id)
    assert seen == ["Upgrade core-1 firmware", f"risk high: {'; '.join(RISK)}; needs 2 CAB "
                    "approval(s)"]  # fmt: skip
    for index, (command, status) in enumerate(WALK):
        for refused, said in REFUSED.get(index, []):
            message = run(cli, "change", *[a.format(id=change_id) for a in refused], code=1)
            assert said.format(id=change_id) in message, (refused, message)
            assert worklog(cli, change_id) == seen, (refused, "wrote the worklog")
        done = as_json(cli, "change", *[a.format(id=change_id) for a in command])
        assert done["status"] == status, command
        now = worklog(cli, change_id)
        assert len(now) > len(seen), (command, "logged nothing")
        seen = now

    assert seen[-9:] == [
        "request_approval: assessment -> approval",
        "approved by bob (backup taken first)",
        "approved by carol",
        "schedule: approval -> scheduled (approved by bob, carol)",
        "task 1 'Back up the running config' for dave added",
        "start: scheduled -> implementing",
        "task 1 'Back up the running config': open -> done",
        "complete: implementing -> review",
        "close: review -> closed",
    ]
    shown = as_json(cli, "change", "show", change_id)
    record = shown["change"]
    assert (record["close_code"], record["close_notes"]) == ("successful", "no alarms")
    assert record["actual_start"] is not None and record["actual_end"] is not None
    assert [(a["approver"], a["decision"]) for a in record["approvals"]] == [
        ("bob", "approved"),
        ("carol", "approved"),
    ]
    assert (record["tasks"][0]["status"], record["tasks"][0]["done_by"]) == ("done", "dave")
    assert shown["allowed_steps"] == [] and shown["conflicts"] == []
    assert shown["ci_names"] == {record["ci_ids"][0]: "core-1"}

    text = run(cli, "change", "show", change_id)
    for line in (
        "  status: closed; type: normal",
        "  CIs: core-1",
        "  risk: high (assessed ",
        *(f"    - {reason}" for reason in RISK),
        "  approvals: 2 of 2 needed (approved by bob, carol)",
        "    - approved by bob on ",
        "  window planned: 2031-03-04 22:00 UTC -> 2031-03-05 00:00 UTC (2 hours)",
        "  window actual: ",
        "  implementation plan: flash the new image, reload",
        "  backout plan: boot the old",
        "  close code: successful: no alarms",
        "    1. [done] Back up the running config (dave), done by dave on ",
        "  conflicts: none",
        "  allowed steps: none",
        "worklog",
    ):
        assert line in text, (line, text)
    assert record["ci_ids"][0] not in text, "CIs are shown by name"


def test_a_rejection_and_a_replan_after_approval_withdraw_the_approvals(cli: CliRunner) -> None:
    change = create(cli, "Upgrade core-1", "--ci", "core-1", "--planned-start", START,
                    "--planned-end", END, *PLANS)  # fmt: skip
    to_approval(cli, change["id"])
    approved = as_json(cli, "change", "approve", change["id"], "--as", "bob")
    assert (approved["status"], len(approved["approvals"])) == ("approval", 1)
    replanned = as_json(
        cli, "change", "update", change["id"], "--planned-end", "2031-03-05T01:00:00Z",
        "--as", "alice",
    )  # fmt: skip
    assert (replanned["status"], replanned["approvals"]) == ("assessment", [])
    assert worklog(cli, change["id"])[-1] == (
        "reassess: approval -> assessment (the window changed after the CAB saw it: "
        "approvals withdrawn)"
    )
    as_json(cli, "change", "step", change["id"], "request_approval", "--as", "alice")
    message = run(cli, "change", "reject", change["id"], "--reason", " ", "--as", "bob", code=1)
    assert "--reason: must not be empty" in message
    rejected = as_json(
        cli, "change", "reject", change["id"], "--reason", "not during the sale", "--as", "bob"
    )
    assert (rejected["status"], rejected["approvals"]) == ("draft", [])
    assert worklog(cli, change["id"])[-2:] == [
        "rejected by bob (not during the sale)",
        "reject: approval -> draft (rejected by bob: not during the sale)",
    ]


def test_overlapping_changes_on_one_ci_conflict_until_overridden(cli: CliRunner) -> None:
    first = create(cli, "Replace core-1 PSU", "--ci", "core-1", "--planned-start", START,
                   "--planned-end", END, *PLANS)  # fmt: skip
    second = create(cli, "Patch core-1 ACLs", "--ci", "core-1",
                    "--planned-start", "2031-03-04T23:00:00Z",
                    "--planned-end", "2031-03-05T01:00:00Z", *PLANS)  # fmt: skip
    # drafts count: whoever plans in a window sees what is already planned there
    assert [c["kind"] for c in as_json(cli, "change", "show", first["id"])["conflicts"]] == [
        "same_ci",
        "same_service",
    ]
    to_approval(cli, first["id"])
    to_approval(cli, second["id"])
    label = {
        first["id"]: "change 1 'Replace core-1 PSU'",
        second["id"]: "change 2 'Patch core-1 ACLs'",
    }
    for mine, other in ((first, second), (second, first)):
        conflicts = as_json(cli, "change", "show", mine["id"])["conflicts"]
        assert [(c["kind"], c["other_id"], c["other"], c["detail"]) for c in conflicts] == [
            ("same_ci", other["id"], label[other["id"]], "both change core-1"),
            ("same_service", other["id"], label[other["id"]], "both affect Web shop"),
        ]
        assert all(c["overridden"] is None for c in conflicts)

    before = worklog(cli, second["id"])
    message = run(cli, "change", "approve", second["id"], "--as", "bob", code=1)
    assert f"{second['id']}: conflicts with change 1 'Replace core-1 PSU': both change core-1" in (
        message
    )
    assert "have a change manager override each conflict with a reason" in message
    message = run(cli, "change", "override", second["id"], first["id"], "--reason", "one team",
                  "--as", "dave", code=1)  # fmt: skip
    assert "--as dave: only an active agent with the change_manager role may override" in message
    message = run(cli, "change", "override", second["id"], "chg-none", "--reason", "x",
                  "--as", "bob", code=1)  # fmt: skip
    assert f"OTHER: {second['id']} has no conflict with 'chg-none'" in message
    assert worklog(cli, second["id"]) == before

    as_json(cli, "change", "override", second["id"], first["id"], "--reason",
            "same maintenance night, one team", "--as", "bob")  # fmt: skip
    assert worklog(cli, second["id"])[-1] == (
        "conflict with change 1 'Replace core-1 PSU' (same_ci, same_service) overridden: "
        "same maintenance night, one team"
    )
    shown = as_json(cli, "change", "show", second["id"])
    assert [c["overridden"]["by"] for c in shown["conflicts"]] == ["bob", "bob"]
    text = run(cli, "change", "show", second["id"])
    assert "(overridden by bob on " in text and ": same maintenance night, one team)" in text
    # the override is this change's: the first change still sees the conflict open
    assert all(
        c["overridden"] is None for c in as_json(cli, "change", "show", first["id"])["conflicts"]
    )
    as_json(cli, "change", "approve", second["id"], "--as", "bob")
    assert as_json(cli, "change", "approve", second["id"], "--as", "carol")["status"] == "scheduled"

    calendar = as_json(cli, "change", "calendar", "--from", "2031-03-01T00:00:00Z",
                       "--to", "2031-04-01T00:00:00Z")  # fmt: skip
    entries = {e["change"]["id"]: e["conflicts"] for e in calendar["changes"]}
    assert set(entries) == {first["id"], second["id"]}
    assert [c["other_id"] for c in entries[first["id"]]] == [second["id"]] * 2
    assert [c["overridden"] is not None for c in entries[second["id"]]] == [True, True]
    text = run(cli, "change", "calendar", "--from", "2031-03-01T00:00:00Z",
               "--to", "2031-04-01T00:00:00Z")  # fmt: skip
    assert "change calendar 2031-03-01 00:00 UTC -> 2031-04-01 00:00 UTC (31 days)" in text
    assert (
        f"conflict: change 1: same_ci with change 2 'Patch core-1 ACLs' [{second['id']}]: "
        "both change core-1" in text
    )
    assert "freeze windows: none" in text


def test_a_freeze_window_conflicts_until_lifted(cli: CliRunner) -> None:
    change = create(cli, "Upgrade core-1", "--ci", "core-1", "--planned-start", START,
                    "--planned-end", END, *PLANS)  # fmt: skip
    to_approval(cli, change["id"])
    text = run(cli, "change", "freeze-add", "--name", "Quarter close", "--start",
               "2031-03-01T00:00:00Z", "--end", "2031-03-08T00:00:00Z", "--reason",
               "closing the books", "--ci", "web-shop", "--as", "carol")  # fmt: skip
    assert "'Quarter close' 2031-03-01 00:00 UTC -> 2031-03-08 00:00 UTC (7 days), on Web shop: " \
           "closing the books" in text  # fmt: skip
    (window,) = as_json(cli, "change", "freeze-list")
    assert (window["name"], window["created_by"]) == ("Quarter close", "carol")
    (conflict,) = as_json(cli, "change", "show", change["id"])["conflicts"]
    assert (conflict["kind"], conflict["other_id"], conflict["other"]) == (
        "freeze",
        window["id"],
        "freeze 'Quarter close'",
    )
    assert conflict["detail"] == (
        "Web shop is frozen and goes down with this change's CIs (closing the books)"
    )
    message = run(cli, "change", "approve", change["id"], "--as", "bob", code=1)
    assert "conflicts with freeze 'Quarter close': Web shop is frozen" in message
    calendar = as_json(cli, "change", "calendar", "--from", "2031-03-01T00:00:00Z",
                       "--to", "2031-03-31T00:00:00Z")  # fmt: skip
    assert [w["id"] for w in calendar["freeze_windows"]] == [window["id"]]
    assert [c["kind"] for c in calendar["changes"][0]["conflicts"]] == ["freeze"]
    # outside the window's days, freeze-list shows none
    assert as_json(cli, "change", "freeze-list", "--from", "2031-03-08T00:00:00Z") == []

    assert "lifted" in run(cli, "change", "freeze-remove", window["id"], "--as", "carol")
    message = run(cli, "change", "freeze-remove", window["id"], code=1)
    assert f"WINDOW: no freeze window with id '{window['id']}'" in message
    assert as_json(cli, "change", "show", change["id"])["conflicts"] == []
    assert as_json(cli, "change", "approve", change["id"], "--as", "bob")["status"] == "approval"


def test_a_standard_change_from_its_template_skips_the_cab(cli: CliRunner) -> None:
    change = as_json(cli, "change", "create", "--type", "standard", "--template",
                     "restart-db-node", "--ci", "db-1", "--planned-start", START,
                     "--planned-end", END, "--as", "bob")  # fmt: skip
    assert (change["title"], change["template"], change["risk"]) == (
        "Restart a database node",
        "restart-db-node",
        "low",
    )
    assert change["implementation_plan"] == "drain the node, restart it, check replication"
    assert change["approvals_required"] == 0
    assert change["risk_reasons"] == [
        "db-1 is redundant: pg-cluster keeps running on 2 of its 3 members (it needs 2); "
        "Web shop is not affected"
    ]
    shown = as_json(cli, "change", "show", change["id"])
    assert shown["allowed_steps"] == ["schedule", "cancel"]
    message = run(cli, "change", "step", change["id"], "start", "--as", "bob", code=1)
    assert "is draft: cannot start; allowed: schedule, cancel" in message
    message = run(cli, "change", "step", change["id"], "assess", "--as", "bob", code=1)
    assert "STEP: unknown step 'assess'" in message, "no assessment: the template is"
    for step, status in (("schedule", "scheduled"), ("start", "implementing"),
                         ("complete", "review")):  # fmt: skip
        assert as_json(cli, "change", "step", change["id"], step, "--as", "bob")["status"] == status
    done = as_json(cli, "change", "step", change["id"], "close", "--close-code",
                   "successful_with_issues", "--close-notes", "replica lagged 2 minutes",
                   "--as", "bob")  # fmt: skip
    assert (done["status"], done["close_code"]) == ("closed", "successful_with_issues")


def test_a_standard_change_riskier_than_its_template_is_refused(cli: CliRunner) -> None:
    said = (
        "--ci: its risk is high, above the low template 'restart-db-node' allows: raise a "
        "normal change"
    )
    message = run(cli, "change", "create", "--type", "standard", "--template",
                  "restart-db-node", "--ci", "core-1", "--as", "bob", code=1)  # fmt: skip
    assert said in message
    assert listed(cli) == []
    change = as_json(cli, "change", "create", "--type", "standard", "--template",
                     "restart-db-node", "--ci", "db-1", "--as", "bob")  # fmt: skip
    before = as_json(cli, "change", "show", change["id"])
    message = run(cli, "change", "update", change["id"], "--ci", "core-1", "--as", "bob", code=1)
    assert said in message
    assert as_json(cli, "change", "show", change["id"]) == before


def test_an_unknown_template_is_refused_naming_the_option(cli: CliRunner) -> None:
    message = run(cli, "change", "create", "--type", "standard", "--template", "nope",
                  "--ci", "db-1", "--as", "bob", code=1)  # fmt: skip
    assert "--template: unknown template 'nope'; templates: restart-db-node" in message
    message = run(cli, "change", "create", "--title", "x", "--template", "restart-db-node",
                  "--ci", "db-1", "--as", "bob", code=1)  # fmt: skip
    assert "--template: only a standard change comes from a template" in message
    assert listed(cli) == []


BAD_INPUT = [
    (["create", "--title", "x", "--ci", "core-1", "--planned-start", START, "--planned-end",
      "2031-03-04T21:00:00Z", "--as", "alice"], "--planned-end: must be after planned_start"),
    (["create", "--title", "x", "--ci", "no-such-ci"], "--ci: no-such-ci: "),
    (["create", "--title", "x"], "--ci: name at least one configuration item"),
    (["create", "--title", " ", "--ci", "core-1"], "--title: must not be empty"),
    (["create", "--title", "x", "--ci", "core-1", "--type", "minor"],
     "--type: 'minor' is not one of standard, normal, emergency"),
    (["create", "--title", "x", "--ci", "core-1", "--planned-start", "tomorrow"],
     "--planned-start: 'tomorrow' is not an ISO 8601 time"),
    (["create", "--title", "x", "--ci", "core-1", "--assignee", "zed"],
     "--assignee: 'zed' is an unknown agent"),
    (["create", "--type", "standard", "--ci", "db-1"],
     "--template: a standard change comes from a template"),
    (["freeze-add", "--name", "f", "--start", END, "--end", START, "--as", "alice"],
     "--end: must be after starts_at"),
    (["calendar", "--from", END, "--to", START], "--to: must be after start"),
    (["risk", "core-1", "no-such-ci"], "CI: no-such-ci: "),
    (["show", "chg-none"], "CHANGE: no change with id 'chg-none'"),
    (["step", "chg-none", "assess"], "CHANGE: no change with id 'chg-none'"),
    (["list", "--status", "done"], "--status: 'done' is not one of draft, assessment"),
]  # fmt: skip


@pytest.mark.parametrize(("command", "said"), BAD_INPUT, ids=[s for _, s in BAD_INPUT])
def test_bad_input_names_the_option_and_writes_nothing(
    cli: CliRunner, command: list[str], said: str
) -> None:
    message = run(cli, "change", *command, code=1)
    assert said in message, message
    assert listed(cli) == []
    assert as_json(cli, "change", "freeze-list") == []


def test_an_illegal_step_writes_nothing_and_refusals_as_json(cli: CliRunner) -> None:
    change = create(cli, "Upgrade core-1", "--ci", "core-1")
    before = as_json(cli, "change", "show", change["id"])
    refused = cli.invoke(app, ["change", "step", change["id"], "close", "--json"])
    assert refused.exit_code == 1
    state = json.loads(refused.stdout)
    assert (state["status"], state["step"], state["allowed"]) == (
        "draft",
        "close",
        ["assess", "cancel"],
    )
    assert as_json(cli, "change", "show", change["id"]) == before
    assert listed(cli) == [(1, "draft")]
    bad = cli.invoke(app, ["change", "update", change["id"], "--planned-start", END,
                           "--planned-end", START, "--json"])  # fmt: skip
    assert bad.exit_code == 1
    (error,) = json.loads(bad.stdout)["errors"]
    assert (error["field"], error["option"]) == ("planned_end", "--planned-end")
    assert as_json(cli, "change", "show", change["id"]) == before


def test_risk_preview_writes_nothing(cli: CliRunner) -> None:
    text = run(cli, "change", "risk", "core-1")
    assert "risk high (score 51) for a change on core-1" in text
    assert all(f"  - {reason}" in text for reason in RISK)
    assert "service Web shop (criticality 1) fails; single points of failure: core-1" in text
    both = as_json(cli, "change", "risk", "db-1", "dist-1")
    assert (both["level"], both["score"]) == ("low", 10)
    assert [(s["name"], s["fails"]) for s in both["services"]] == [("Web shop", False)]
    assert listed(cli) == []


def test_a_task_marked_done_twice_keeps_who_did_it(cli: CliRunner) -> None:
    change = create(cli, "Upgrade core-1", "--ci", "core-1")
    as_json(cli, "change", "task-add", change["id"], "--title", "Back up", "--as", "alice")
    done = as_json(cli, "change", "task-update", change["id"], "1", "--status", "done",
                   "--as", "bob")  # fmt: skip
    before = worklog(cli, change["id"])
    again = as_json(cli, "change", "task-update", change["id"], "1", "--status", "done",
                    "--as", "carol")  # fmt: skip
    assert again["tasks"] == done["tasks"], "done once: by bob, at that time"
    assert worklog(cli, change["id"]) == before, "nothing changed, nothing logged"
