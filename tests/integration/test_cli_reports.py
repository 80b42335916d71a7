"""``servicegraph report`` refusing what it cannot run: each bad option named on one line
(or as JSON), exit 1, and the usage error of asking for two formats; an empty desk's
report is empty, not an error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from servicegraph.cli import app


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SERVICEGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SERVICEGRAPH_CONFIG", raising=False)
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    return runner


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["mttx"], "NAME: unknown report 'mttx' (known: volume, backlog, mtta, mttr, sla,"),
        (["mttr", "--by", "colour"], "--by: unknown field 'colour' (known: service,"),
        (["mttr", "--per", "year"], "--per: unknown period 'year' (known: day, week, month)"),
        (["mttr", "--from", "2026-03-01", "--to", "2026-02-01"],
         "--from: from '2026-03-01' is not before to '2026-02-01': the window is empty"),
        (["mttr", "--from", "tomorrow"], "--from: 'tomorrow' is not a date (2026-03-01)"),
        (["mttr", "--timezone", "Europe/Atlantis"], "--timezone: 'Europe/Atlantis' is not a"),
        (["mttr", "--priority", "7"], "--priority: '7' is not a priority 1..5"),
        (["mttr", "--type", "problem"], "--type: unknown ticket type 'problem'"),
        (["backlog", "--per", "day", "--from", "1990-01-01"], "--per: more than 10,000 periods"),
    ],
)  # fmt: skip
def test_a_bad_option_is_named(cli: CliRunner, args: list[str], line: str) -> None:
    result = cli.invoke(app, ["report", *args])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {line}"), result.stderr
    as_json = cli.invoke(app, ["report", *args, "--json"])
    assert as_json.exit_code == 1
    (error,) = json.loads(as_json.stdout)["errors"]
    assert line.startswith(error["option"]) and error["message"] in line + result.stderr


def test_one_format_at_a_time(cli: CliRunner) -> None:
    result = cli.invoke(app, ["report", "mttr", "--csv", "--json"])
    assert result.exit_code == 2 and "choose one" in result.stderr


def test_an_empty_desk_reports_nothing(cli: CliRunner) -> None:
    result = cli.invoke(app, ["report", "sla", "--by", "group", "--per", "week", "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["rows"] == [] and document["by"] == "group" and document["per"] == "week"
    assert document["counted_at"].startswith("resolved")
    csv_text = cli.invoke(app, ["report", "volume", "--csv"]).stdout
    assert csv_text == "period,key,opened\n"
    table = cli.invoke(app, ["report", "mtta"]).stdout
    assert "Time to respond" in table and "no tickets count in this window" in table
