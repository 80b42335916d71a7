"""`servicegraph history CI`: the CI's whole timeline on the command line (a real SQLite
data directory): alert cycles, ticket steps with the manual resolution kept after the
reopen, names for CIs, pages that say how to go on, bad options naming themselves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from servicegraph.cli import app
from servicegraph.cli import cmdb as cmdb_cli
from tests.correlation.conftest import make_world
from tests.ticketing.test_timeline import RESOLUTION, four_cycles_with_a_manual_resolution


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CliRunner, str]]:
    """The example site after four NodeDown cycles on db-1 (see test_timeline), then the
    CLI on the same data directory. The id of db-1."""
    for world in make_world(tmp_path, hold_time_s=60):
        for service in vars(world.services.desk).values():
            if hasattr(service, "clock"):
                service.clock = world.clock
        four_cycles_with_a_manual_resolution(world)
        db1 = world.ids["db-1"]
    monkeypatch.setenv("SERVICEGRAPH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SERVICEGRAPH_CONFIG", raising=False)
    monkeypatch.setattr(cmdb_cli, "out", Console(width=400, emoji=False))  # no folding
    yield CliRunner(), db1


def run(cli: CliRunner, *args: str, code: int = 0) -> tuple[str, str]:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, result.output + result.stderr
    return result.stdout, result.stderr


def entries(cli: CliRunner, *args: str) -> list[dict[str, Any]]:
    out, _ = run(cli, "history", "db-1", "--json", *args)
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def test_history_json_has_cycles_tickets_and_names(cli: tuple[CliRunner, str]) -> None:
    runner, db1 = cli
    rows = entries(runner, "--limit", "1000")
    types = [r["type"] for r in rows]
    assert types.count("alert_fired") == 4 and types.count("alert_cleared") == 4
    cycles = [r["cycle"] for r in rows if r["type"] == "alert_fired"]
    assert len({c["fired_at"] for c in cycles}) == 4
    assert all(c["cleared_at"] and c["incident_id"] for c in cycles)
    manual = next(r for r in rows if r["type"] == "incident_resolved" and r["actor"] == "carol")
    assert manual["resolution"]["by"] == "carol" and manual["resolution"]["text"] == RESOLUTION
    assert manual["ticket"]["number"] == 1 and manual["ticket"]["status"] == "resolved"
    later = rows[rows.index(manual) + 1 :]
    reopen = next(r for r in later if r["type"].startswith("incident_"))
    assert reopen["type"] == "incident_reopened" and reopen["actor"] == "correlation"
    assert reopen["kind"] == "transition"
    assert (reopen["status_from"], reopen["status_to"]) == ("resolved", "new")
    assert reopen["reason"] == "test/NodeDown fired again on db-1"
    assert reopen["work"]["field"] == "status"
    assert all(r["ci_name"] == "db-1" for r in rows if r["ci_id"] == db1)
    assert {"acc-1", "pg-cluster"} <= {x["name"] for r in rows for x in r["related"]}
    created = rows[[r["type"] for r in rows].index("ci_change")]
    assert created["kind"] == "created" and created["actor"]  # as the history JSON was
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)


def test_history_table_tells_the_story_with_names(cli: tuple[CliRunner, str]) -> None:
    runner, db1 = cli
    out, err = run(runner, "history", "db-1", "--limit", "1000")
    assert f"history of db-1 ({db1})" in out
    assert "incident INC1 resolved by carol" in out and RESOLUTION in out
    assert "reopened by correlation (resolved -> new): test/NodeDown fired again on db-1" in out
    assert out.count("alert NodeDown fired") == 4
    assert "[cycle 4 of 4, INC1]" in out
    assert "relationship added: -CONNECTED_TO-> acc-1" in out
    assert db1 not in out.split("\n", 1)[1], "names, not ids, below the title"
    assert err == ""


def test_history_pages_and_says_how_to_go_on(cli: tuple[CliRunner, str]) -> None:
    runner, _ = cli
    everything = entries(runner, "--limit", "1000")
    seen: list[dict[str, Any]] = []
    args = ["--limit", "7"]
    while True:
        out, err = run(runner, "history", "db-1", "--json", *args)
        page = json.loads(out)
        assert len(page) <= 7
        seen += page
        if not err:
            break
        hint = err.strip()
        assert hint.startswith("more entries: servicegraph history db-1 --after ")
        assert hint.endswith("--limit 7")
        cursor = hint.split("--after ")[1].split()[0]
        assert cursor == page[-1]["cursor"]
        args = ["--limit", "7", "--after", cursor]
    assert [r["cursor"] for r in seen] == [r["cursor"] for r in everything]
    assert len(everything) > 7


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--after", "bogus"], 1, "field 'after': is not a timeline cursor"),
        (["--since", "yesterday"], 1, "--since: 'yesterday' is not an ISO 8601 time"),
        (
            ["--since", "2026-11-02T00:00:00Z", "--until", "2026-11-01T00:00:00Z"],
            1,
            "field 'until': must not be before since",
        ),
        (["--limit", "0"], 2, "--limit"),
        (["--limit", "1001"], 2, "--limit"),
    ],
)
def test_bad_options_name_themselves(
    cli: tuple[CliRunner, str], args: list[str], code: int, says: str
) -> None:
    runner, _ = cli
    result = runner.invoke(app, ["history", "db-1", *args])
    assert result.exit_code == code
    assert says in result.stderr
    assert result.stdout == ""


def test_an_unknown_ci_is_one_line(cli: tuple[CliRunner, str]) -> None:
    runner, _ = cli
    result = runner.invoke(app, ["history", "no-such-ci"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no configuration item with id 'no-such-ci'"
