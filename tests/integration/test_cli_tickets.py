"""The issue's first acceptance test on the command line: ``servicegraph ticket ...`` on a
real SQLite store in a temporary data directory, with the desk's routing rules and custom
fields in a settings file (SERVICEGRAPH_CONFIG) and its people and catalogue imported. A
ticket is raised with a priority override and routed, then assigned, started, put on
hold, resumed, resolved, reopened, resolved again and closed, each step checked against
the history entries it adds; a request is cancelled; refusals print the option at fault,
exit 1 and write nothing; ``list`` pages by cursor.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from servicegraph.bootstrap import bootstrap
from servicegraph.cli import app
from servicegraph.config import Settings
from tests.graphql.test_desk_fixtures import CUSTOM_FIELDS, ROUTING, load_desk
from tests.graphql.test_desk_lifecycle import WALK

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    settings = tmp_path / "servicegraph.yaml"
    settings.write_text(
        yaml.safe_dump({"desk": {"routing": ROUTING, "custom_fields": CUSTOM_FIELDS}})
    )
    monkeypatch.setenv("SERVICEGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SERVICEGRAPH_CONFIG", str(settings))
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


def history(cli: CliRunner, ticket_id: str) -> list[tuple[Any, ...]]:
    shown = as_json(cli, "ticket", "show", ticket_id)
    return [
        (e["actor"], e["kind"].upper(), e["field"], e["old"], e["new"]) for e in shown["history"]
    ]


# The walk of the GraphQL test, step by step as commands (after the priority override,
# which the CLI makes when raising the ticket); each adds the history entries that step
# of WALK says.
CLI_WALK: list[tuple[list[str], str]] = [
    (["assign", "{id}", "--agent", "bob", "--as", "alice"], "assigned"),
    (["transition", "{id}", "start", "--as", "bob"], "in_progress"),
    (["transition", "{id}", "pend", "--pending-reason", "awaiting_requester", "--as", "bob"],
     "pending"),
    (["transition", "{id}", "resume", "--as", "bob"], "in_progress"),
    (
        ["transition", "{id}", "resolve", "--resolution-code", "fixed",
         "--resolution", "restarted the VPN gateway", "--as", "bob"],
        "resolved",
    ),
    (["transition", "{id}", "reopen", "--reason", "two users still cannot connect",
      "--as", "alice"], "assigned"),
    (
        ["transition", "{id}", "RESOLVED", "--resolution-code", "fixed",
         "--resolution", "renewed two certificates", "--as", "bob"],
        "resolved",
    ),
    (["transition", "{id}", "close", "--close-code", "confirmed", "--as", "bob"], "closed"),
    (["comment", "{id}", "Dave confirmed by phone", "--as", "bob"], "closed"),
]  # fmt: skip

# Refused before the step of the same index: (command, what stderr says).
CLI_REFUSED: dict[int, list[tuple[list[str], str]]] = {
    0: [
        (["assign", "{id}", "--agent", "carol"],
         "--agent: agent 'carol' is not a member of group 'noc'"),
        (["assign", "{id}", "--group", "ghosts"], "--group: no group 'ghosts'"),
        (["assign", "{id}"], "give --group, --agent or both"),
    ],
    1: [
        (["transition", "{id}", "close", "--close-code", "x"],
         "is assigned: cannot close; allowed: assign, start, pend, resolve, cancel"),
        (["transition", "{id}", "finish"], "STEP: unknown step 'finish'"),
    ],
    2: [(["transition", "{id}", "pend"], "--pending-reason: 'pend' needs pending_reason")],
    4: [(["transition", "{id}", "resolve"], "--resolution-code: 'resolve' needs resolution_code")],
    5: [(["transition", "{id}", "reopen"], "--reason: 'reopen' needs reason")],
    7: [(["transition", "{id}", "close"], "--close-code: 'close' needs close_code")],
}  # fmt: skip


def test_a_ticket_walks_every_state_by_cli(cli: CliRunner) -> None:
    created = as_json(
        cli, "ticket", "create", "--title", "VPN down for the Lyon office",
        "--category", "network/vpn", "--service", "vpn", "--requester", "dave@acme.example",
        "--priority", "1", "--priority-reason", "the whole Lyon office is cut off",
        "--field", "site=lyon", "--ci", "db-1", "--as", "alice",
    )  # fmt: skip
    ticket_id = created["id"]
    assert (created["status"], created["channel"], created["type"]) == ("new", "phone", "incident")
    assert (created["assignment_group"], created["routed_by"], created["tags"]) == (
        "noc",
        "vpn-outage",
        ["vpn"],
    )
    assert (created["priority"], created["priority_set_by"]) == (1, "alice")
    assert created["priority_reason"] == "the whole Lyon office is cut off"
    assert (created["requester"], created["organisation"]) == ("dave", "acme")
    assert created["custom_fields"] == {"site": "lyon"} and created["created_by"] == "alice"
    start = history(cli, ticket_id)
    assert [(kind, field) for _, kind, field, _, _ in start] == [
        ("CREATED", None),
        ("ROUTED", "assignment_group"),
    ]
    shown = as_json(cli, "ticket", "show", ticket_id)
    assert shown["allowed_steps"] == ["assign", "resolve", "cancel"]

    seen = start
    for index, (command, status) in enumerate(CLI_WALK):
        for refused, said in CLI_REFUSED.get(index, []):
            message = run(cli, "ticket", *[a.format(id=ticket_id) for a in refused], code=1)
            assert said in message, (refused, message)
            assert history(cli, ticket_id) == seen, (refused, "wrote history")
        done = as_json(cli, "ticket", *[a.format(id=ticket_id) for a in command])
        assert done["status"] == status, command
        now = history(cli, ticket_id)
        assert now[len(seen) :] == WALK[index + 1][4], command
        seen = now

    shown = as_json(cli, "ticket", "show", ticket_id)
    assert shown["allowed_steps"] == [] and shown["ticket"]["closed_at"] is not None
    assert shown["ticket"]["reopen_count"] == 1
    text = run(cli, "ticket", "show", ticket_id)
    assert "routed by: vpn-outage" in text and "close code: confirmed" in text


def test_a_request_is_cancelled_and_the_os_user_is_the_actor(cli: CliRunner) -> None:
    created = as_json(
        cli, "ticket", "create", "--type", "service_request", "--title", "A laptop",
        "--category", "hardware/laptop", "--field", "laptop_model=t14", "--channel", "portal",
    )  # fmt: skip
    assert (created["type"], created["channel"]) == ("service_request", "portal")
    assert (created["assignment_group"], created["created_by"]) == (
        "service-desk",
        getpass.getuser(),
    )
    done = as_json(cli, "ticket", "transition", created["id"], "cancel", "--reason", "postponed")
    assert done["status"] == "cancelled"
    assert history(cli, created["id"])[-1] == (
        getpass.getuser(),
        "TRANSITION",
        "status",
        "new",
        "cancelled",
    )


BAD_CREATES = [
    (["--title", "x", "--category", "nowhere"], "--category:"),
    (["--title", "x", "--field", "site=42"], "--field site: must be text"),
    (["--title", "x", "--field", "colour=red"], "--field colour:"),
    (["--title", "x", "--field", "site"], "--field: 'site' is not name=value"),
    (["--title", "x", "--group", "noc", "--agent", "carol"], "--agent:"),
    (["--title", "x", "--priority", "1"], "--priority-reason:"),
    (["--title", "x", "--ci", "no-such-ci"], "--ci: no-such-ci"),
    (["--title", "x", "--type", "problem"], "--type: 'problem' is not one of"),
    (["--title", " "], "--title: must not be empty"),
]


@pytest.mark.parametrize(("options", "said"), BAD_CREATES, ids=[s for _, s in BAD_CREATES])
def test_bad_create_names_the_option_and_writes_nothing(
    cli: CliRunner, options: list[str], said: str
) -> None:
    message = run(cli, "ticket", "create", *options, code=1)
    assert said in message, message
    assert as_json(cli, "ticket", "list")["items"] == []


def test_refusals_as_json(cli: CliRunner) -> None:
    result = cli.invoke(
        app, ["ticket", "create", "--title", "x", "--category", "nowhere", "--json"]
    )
    assert result.exit_code == 1
    (error,) = json.loads(result.stdout)["errors"]
    assert (error["field"], error["option"]) == ("category", "--category")
    missing = cli.invoke(app, ["ticket", "show", "inc-none"])
    assert missing.exit_code == 1 and "TICKET: no ticket with id 'inc-none'" in missing.stderr
    created = as_json(cli, "ticket", "create", "--title", "Printer jams")
    refused = cli.invoke(app, ["ticket", "transition", created["id"], "close", "--json"])
    assert refused.exit_code == 1
    state = json.loads(refused.stdout)
    assert (state["status"], state["step"], state["allowed"]) == (
        "new",
        "close",
        ["assign", "resolve", "cancel"],
    )


def test_list_pages_by_cursor_with_filters(cli: CliRunner) -> None:
    ids = [
        as_json(cli, "ticket", "create", "--title", f"VPN down {n}", "--category", "network/vpn")[
            "id"
        ]
        for n in range(5)
    ]
    as_json(cli, "ticket", "create", "--title", "Printer jams")  # triage, not noc
    as_json(cli, "ticket", "assign", ids[1], "--agent", "bob")
    seen: list[str] = []
    after: list[str] = []
    while True:
        page = as_json(cli, "ticket", "list", "--group", "noc", "--first", "2", *after)
        seen.extend(t["id"] for t in page["items"])
        if page["next_cursor"] is None:
            break
        after = ["--after", page["next_cursor"]]
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    assert seen == ids, "queue order: same priority, oldest first"
    mine = as_json(cli, "ticket", "list", "--mine", "--as", "bob")
    assert [t["id"] for t in mine["items"]] == [ids[1]]
    tagged = as_json(cli, "ticket", "list", "--tag", "vpn", "--status", "assigned")
    assert [t["id"] for t in tagged["items"]] == [ids[1]]
    typed = as_json(cli, "ticket", "list", "--type", "incident", "--category", "network", "--open")
    assert len(typed["items"]) == 5
    text = run(cli, "ticket", "list", "--first", "2")
    assert "next page: --after " in text
    message = run(cli, "ticket", "list", "--after", "bogus", code=1)
    assert "--after: is not a cursor" in message
    message = run(cli, "ticket", "list", "--status", "open-ish", code=1)
    assert "--status: 'open-ish' is not one of" in message
    message = run(cli, "ticket", "list", "--mine", "--as", "nobody", code=1)
    assert "--as: no agent with login 'nobody'" in message


def test_import_raises_a_ticket_per_row_all_or_nothing(cli: CliRunner, tmp_path: Path) -> None:
    good = tmp_path / "tickets.csv"
    good.write_bytes(
        "\ufefftype,title,category,affected_ci_ids,tags,custom.site,custom.laptop_model\n"
        "incident,VPN down in Lyon,network/vpn,core-1;db-1,imported;lyon,Lyon,\n"
        "service_request,New laptop,hardware/laptop,,,,t14\n".encode()
    )
    checked = as_json(cli, "ticket", "import", str(good), "--dry-run")
    assert (checked["dry_run"], checked["created"], checked["checked"]) == (True, 0, 2)
    assert as_json(cli, "ticket", "list")["items"] == []
    result = cli.invoke(app, ["ticket", "import", str(good), "--as", "alice"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "created 2 ticket(s): #1..#2" in result.stderr
    vpn, laptop = reversed(as_json(cli, "ticket", "list")["items"])  # newest first
    assert (vpn["channel"], vpn["assignment_group"], vpn["routed_by"]) == ("import", "noc",
                                                                          "vpn-outage")  # fmt: skip
    assert vpn["priority"] == 2 and vpn["tags"] == ["imported", "lyon", "vpn"]
    assert len(vpn["affected_ci_ids"]) == 2 and vpn["custom_fields"] == {"site": "Lyon"}
    assert (laptop["assignment_group"], laptop["custom_fields"]) == (
        "service-desk", {"laptop_model": "t14"})  # fmt: skip
    assert history(cli, vpn["id"])[0][:2] == ("alice", "CREATED")

    bad = tmp_path / "bad.csv"
    bad.write_text(
        "type,title,requester,affected_ci_ids,custom.laptop_model\n"
        "incident,Fine,,,\n"
        "incident,Who,nobody@acme.example,,\n"
        "problem,What,,,\n"
        "incident,Where,,no-such-ci,\n"
    )
    message = run(cli, "ticket", "import", str(bad), code=1)
    assert f"{bad}:3: field 'requester': no contact" in message
    assert f"{bad}:4: field 'type': 'problem' is not one of" in message
    assert f"{bad}:5: field 'affected_ci_ids.0': no-such-ci" in message
    assert "3 problem(s); no ticket was imported" in message
    refused = json.loads(cli.invoke(app, ["ticket", "import", str(bad), "--json"]).stdout)
    assert refused["written"] is False
    assert [(e["item"], e["field"]) for e in refused["errors"]] == [
        (f"{bad}:3", "requester"),
        (f"{bad}:4", "type"),
        (f"{bad}:5", "affected_ci_ids.0"),
    ]
    assert len(as_json(cli, "ticket", "list")["items"]) == 2
