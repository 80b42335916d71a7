"""``servicegraph people``, ``catalogue`` and ``token create --holder``, end to end on a
real SQLite store in a temporary data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from servicegraph.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

AGENTS = """login,name,email,groups,roles
alice,Alice,alice@desk.example,noc,agent|group_manager
bob,Bob,bob@desk.example,noc,
"""
GROUPS = "id,name,manager\nnoc,Network operations,alice\ndba,Databases,\n"
CUSTOMERS = {
    "organisations": [{"id": "acme", "name": "ACME", "domains": ["acme.com"]}],
    "contacts": [{"id": "c1", "name": "Zoe", "email": "zoe@acme.com", "organisation": "acme"}],
}
CATALOGUE = """
services:
  - {id: shop, name: Web shop, ci_id: web-shop, owner_group: noc}
  - {id: mail, name: E-mail, request_types: [service_request], active: false}
categories:
  - {path: network, name: Network, owner_group: noc}
  - {path: network/vpn, name: VPN, types: [service_request]}
"""


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SERVICEGRAPH_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


def invoke(cli: CliRunner, *args: str, code: int = 0) -> Result:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, result.output + result.stderr
    return result


@pytest.fixture()
def people_files(tmp_path: Path) -> list[str]:
    (tmp_path / "agents.csv").write_text(AGENTS, encoding="utf-8")
    (tmp_path / "groups.csv").write_text(GROUPS, encoding="utf-8")
    (tmp_path / "customers.json").write_text(json.dumps(CUSTOMERS), encoding="utf-8")
    return [str(tmp_path / n) for n in ("agents.csv", "groups.csv", "customers.json")]


def test_people_import_prints_a_summary_and_a_replay_changes_nothing(
    cli: CliRunner, people_files: list[str]
) -> None:
    first = invoke(cli, "people", "import", *people_files)
    for kind in ("agents", "groups", "organisations", "contacts"):
        assert kind in first.stdout
    report = json.loads(invoke(cli, "people", "import", *people_files, "--json").stdout)
    assert report["changed"] == 0
    assert report["counts"]["agents"] == {"created": 0, "updated": 0, "unchanged": 2}
    replay = invoke(cli, "people", "import", *people_files)
    assert "nothing changed" in replay.stderr
    agents = json.loads(invoke(cli, "people", "list", "agents", "--json").stdout)
    assert [(a["login"], a["groups"]) for a in agents] == [("alice", ["noc"]), ("bob", ["noc"])]
    groups = json.loads(invoke(cli, "people", "list", "groups", "--json").stdout)
    assert groups[1] == {
        "id": "noc",
        "name": "Network operations",
        "email": None,
        "manager": "alice",
        "members": ["alice", "bob"],
        "description": "",
    }
    table = invoke(cli, "people", "list", "contacts", "--search", "acme.com").stdout
    assert "Zoe" in table and "acme" in table


def test_a_dry_run_counts_and_writes_nothing(cli: CliRunner, people_files: list[str]) -> None:
    report = json.loads(
        invoke(cli, "people", "import", *people_files, "--dry-run", "--json").stdout
    )
    assert report["dry_run"] is True
    assert report["counts"]["contacts"]["created"] == 1
    assert json.loads(invoke(cli, "people", "list", "agents", "--json").stdout) == []


def test_bad_rows_are_listed_with_file_line_and_field(
    cli: CliRunner, people_files: list[str], tmp_path: Path
) -> None:
    invoke(cli, "people", "import", *people_files)
    bad = tmp_path / "more.csv"
    bad.write_text(
        "login,name,email\ncarol,Carol,carol@x.example\ndan,Dan,not-mail\neve,,e@x.example\n"
    )
    result = invoke(cli, "people", "import", str(bad), "--kind", "agents", code=1)
    assert f"{bad}:3: field 'email'" in result.stderr
    assert f"{bad}:4: field 'name'" in result.stderr
    assert "nothing was imported" in result.stderr
    as_json = invoke(cli, "people", "import", str(bad), "--kind", "agents", "--json", code=1)
    errors = json.loads(as_json.stdout)["errors"]
    assert [(e["item"], e["field"]) for e in errors] == [
        (f"{bad}:3", "email"),
        (f"{bad}:4", "name"),
    ]
    logins = [
        a["login"] for a in json.loads(invoke(cli, "people", "list", "agents", "--json").stdout)
    ]
    assert logins == ["alice", "bob"], "carol's good row was not imported either"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["people", "import", "x.csv", "--kind", "people"], "--kind"),
        (["people", "list", "robots"], "KIND"),
    ],
)
def test_usage_errors(cli: CliRunner, args: list[str], needle: str) -> None:
    result = invoke(cli, *args, code=2)
    assert needle in result.stderr


@pytest.mark.parametrize("name", ["staff.csv", "agents-and-groups.csv"])
def test_a_csv_whose_name_says_no_one_kind_needs_one(
    cli: CliRunner, tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    path.write_text(AGENTS)
    result = invoke(cli, "people", "import", str(path), code=1)
    assert "say which kind" in result.stderr


def test_the_kind_is_read_from_a_word_of_the_file_name(cli: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "new_Agent-2024.csv"
    path.write_text("login,name,email\nzed,Zed,zed@x.example\n")
    report = json.loads(invoke(cli, "people", "import", str(path), "--json").stdout)
    assert report["counts"]["agents"]["created"] == 1


def test_catalogue_import_and_show(cli: CliRunner, people_files: list[str], tmp_path: Path) -> None:
    invoke(cli, "import", str(EXAMPLES / "small-site.json"))
    invoke(cli, "people", "import", *people_files)
    path = tmp_path / "catalogue.yaml"
    path.write_text(CATALOGUE)
    dry = json.loads(invoke(cli, "catalogue", "import", str(path), "--dry-run", "--json").stdout)
    assert dry["dry_run"] and dry["counts"]["services"]["created"] == 2
    assert json.loads(invoke(cli, "catalogue", "show", "--json").stdout)["services"] == []
    summary = invoke(cli, "catalogue", "import", str(path)).stdout
    assert "services" in summary and "categories" in summary
    shown = json.loads(invoke(cli, "catalogue", "show", "--json").stdout)
    shop = next(s for s in shown["services"] if s["id"] == "shop")
    web_shop = json.loads(invoke(cli, "show", "web-shop", "--json").stdout)["ci"]["id"]
    assert (shop["ci_id"], shop["ci_name"], shop["owner_group"]) == (web_shop, "Web shop", "noc")
    vpn = next(c for c in shown["categories"] if c["path"] == "network/vpn")
    assert vpn["applies_to"] == ["service_request"]
    table = invoke(cli, "catalogue", "show").stdout
    assert "Web shop" in table and "retired" in table and "vpn" in table
    again = invoke(cli, "catalogue", "import", str(path))
    assert "nothing changed" in again.stderr


def test_a_bad_catalogue_names_the_service_and_field(
    cli: CliRunner, people_files: list[str], tmp_path: Path
) -> None:
    invoke(cli, "import", str(EXAMPLES / "small-site.json"))
    invoke(cli, "people", "import", *people_files)
    path = tmp_path / "catalogue.yaml"
    path.write_text(CATALOGUE.replace("web-shop", "db-1"))
    result = invoke(cli, "catalogue", "import", str(path), code=1)
    assert "catalogue.services[0]: field 'ci_id'" in result.stderr
    assert "not a business_service" in result.stderr
    assert json.loads(invoke(cli, "catalogue", "show", "--json").stdout)["services"] == []


def test_token_create_with_a_holder(cli: CliRunner, people_files: list[str]) -> None:
    invoke(cli, "people", "import", *people_files)
    made = json.loads(
        invoke(
            cli,
            "token",
            "create",
            "--role",
            "agent",
            "--name",
            "alice-cli",
            "--holder",
            "alice",
            "--json",
        ).stdout
    )
    assert made["holder"] == "alice" and made["role"] == "agent"
    integration = invoke(
        cli,
        "token",
        "create",
        "--role",
        "integration",
        "--name",
        "am",
        "--holder",
        "integration:alertmanager",
    )
    assert "held by integration:alertmanager" in integration.stderr
    listed = json.loads(invoke(cli, "token", "list", "--json").stdout)
    assert [t["holder"] for t in listed] == ["alice", "integration:alertmanager"]
    refused = invoke(
        cli, "token", "create", "--role", "agent", "--name", "x", "--holder", "mallory", code=1
    )
    assert "field 'holder'" in refused.stderr and "mallory" in refused.stderr
    assert len(json.loads(invoke(cli, "token", "list", "--json").stdout)) == 2
