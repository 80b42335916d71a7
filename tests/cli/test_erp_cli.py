"""``servicegraph erp ...`` end to end: a real ERP-shaped CSV export (``;``, the columns
a 1C or SAP export has) read by the csv reader, a YAML settings file declaring the feed
(``SERVICEGRAPH_CONFIG``), a real SQLite store in a temporary data directory, and a real
write-back file. Each command runs as a user would run it (typer's CliRunner), and what it
wrote is checked through other commands (``stats``, ``show``, ``conflicts``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from servicegraph.cli import app

# the export as the ERP writes it; Bought (a German date) is what a bad row gets wrong
HEADER = "InventoryNo;SerialNo;CostCenter;Responsible;Name;Category;Bought\n"
GOOD = (
    HEADER
    + "INV-1;FOC2001A1;CC-10;alice;core-1;Switch;01.02.2023\n"
    + "INV-2;SNGHOST1;CC-20;bob;spare-sw;Switch;15.03.2022\n"
    + "INV-3;SRV0003;CC-20;bob;db-9;Server;07.11.2021\n"
)
# line 3 has a date that is none (31 February), line 4 one in the wrong format
BAD_DATES = (
    HEADER
    + "INV-1;FOC2001A1;CC-10;alice;core-1;Switch;01.02.2023\n"
    + "INV-2;SNGHOST1;CC-20;bob;spare-sw;Switch;31.02.2022\n"
    + "INV-3;SRV0003;CC-20;bob;db-9;Server;2021-11-07\n"
)
# discovery (SNMP) knows core-1 by its serial, and a switch the ERP has never heard of
DISCOVERED = {
    "cis": [
        {
            "key": "core-1",
            "class": "network_device",
            "name": "core-1",
            "identifiers": {"serial_number": "FOC2001A1"},
            "attributes": {"model": "C9500-24Y4C"},
        },
        {
            "key": "rogue-1",
            "class": "network_device",
            "name": "rogue-sw",
            "identifiers": {"serial_number": "ROGUE0001"},
        },
    ]
}


class Erp:
    """The CLI over one data directory, settings file and export."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.export = tmp_path / "erp" / "assets.csv"
        self.export.parent.mkdir()
        self.export.write_text(GOOD, encoding="utf-8")
        self.to_erp = tmp_path / "erp" / "to-erp.csv"
        self.settings = tmp_path / "servicegraph.yaml"
        self.settings.write_text(yaml.safe_dump(settings(self.export, self.to_erp)))
        monkeypatch.setenv("SERVICEGRAPH_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("SERVICEGRAPH_CONFIG", str(self.settings))
        self.runner = CliRunner()
        self.tmp_path = tmp_path

    def run(self, *args: str, code: int = 0) -> tuple[str, str]:
        result = self.runner.invoke(app, list(args))
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        return result.stdout, result.stderr

    def json(self, *args: str, code: int = 0) -> Any:
        stdout, _ = self.run(*args, "--json", code=code)
        return json.loads(stdout)

    def stats(self) -> dict[str, int]:
        return self.json("stats")  # type: ignore[no-any-return]

    def discover(self) -> None:
        """Import what SNMP discovery found, as the source snmp."""
        path = self.tmp_path / "discovered.json"
        path.write_text(json.dumps(DISCOVERED))
        self.run("import", str(path), "--source", "snmp")


def settings(export: Path, to_erp: Path) -> dict[str, Any]:
    return {
        "erp": {
            "sources": {
                "assets": {
                    "kind": "csv",
                    "path": str(export),
                    "schedule": 3600,
                    "key": "InventoryNo",
                    "class": {
                        "from": "Category",
                        "transforms": [{"map": {"Switch": "network_device", "Server": "server"}}],
                    },
                    "fields": {
                        "name": "Name",
                        "identifiers.serial_number": {
                            "from": "SerialNo",
                            "transforms": ["trim", "upper"],
                        },
                        "identifiers.asset_tag": "InventoryNo",
                        "attributes.cost_centre": "CostCenter",
                        "attributes.owner": "Responsible",
                        "attributes.purchase_date": {
                            "from": "Bought",
                            "transforms": [{"date": "%d.%m.%Y"}],
                        },
                    },
                    "owns": ["cost_centre", "owner"],
                    "write_back": {
                        "path": str(to_erp),
                        "fields": {
                            "SerialNo": "identifiers.serial_number",
                            "Model": "attributes.model",
                            "Status": "operational_state",
                        },
                    },
                },
                "missing": {
                    "kind": "csv",
                    "path": str(export.with_name("nowhere.csv")),
                    "key": "InventoryNo",
                    "class": "network_device",
                    "complete": False,
                },
            }
        }
    }


@pytest.fixture()
def erp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Erp:
    return Erp(tmp_path, monkeypatch)


def test_sources_lists_the_declared_feeds(erp: Erp) -> None:
    stdout, _ = erp.run("erp", "sources")
    assert "assets" in stdout and "missing" in stdout
    assert "every 1 h" in stdout and "on demand" in stdout

    declared = {s["name"]: s for s in erp.json("erp", "sources")}
    assets = declared["assets"]
    assert assets["kind"] == "csv"
    assert assets["source"] == "erp:assets"
    assert assets["where"] == str(erp.export)
    assert assets["schedule"] == 3600
    assert assets["complete"] is True
    assert assets["owns"] == ["cost_centre", "owner"]
    assert assets["write_back"]["target"] == str(erp.to_erp)
    assert assets["write_back"]["fields"] == {
        "SerialNo": "identifiers.serial_number",
        "Model": "attributes.model",
        "Status": "operational_state",
    }
    assert declared["missing"]["complete"] is False
    assert declared["missing"]["write_back"] is None


def test_dry_run_shows_the_plan_and_writes_nothing(erp: Erp) -> None:
    before = erp.stats()
    stdout, stderr = erp.run("erp", "sync", "assets", "--dry-run")
    creates = [line for line in stdout.splitlines() if line.startswith("create")]
    assert len(creates) == 3, stdout
    assert any("core-1 (network_device) key INV-1" in line for line in creates)
    assert f"[{erp.export}:2]" in creates[0]
    assert "created" in stdout  # the summary table
    assert "dry run: nothing was written" in stderr
    assert erp.stats() == before
    assert erp.stats()["cis"] == 0

    plan = erp.json("erp", "sync", "assets", "--dry-run")
    assert plan["dry_run"] is True and plan["written"] is False
    assert plan["summary"]["cis_created"] == 3
    assert {i["action"] for i in plan["items"]} == {"create"}
    assert {i["key"] for i in plan["items"]} == {"INV-1", "INV-2", "INV-3"}
    assert erp.stats() == before


def test_sync_creates_and_a_replay_writes_no_history(erp: Erp) -> None:
    stdout, _ = erp.run("erp", "sync", "assets")
    assert "sync of erp:assets" in stdout
    assert "dry run" not in stdout
    result = erp.json("erp", "sync", "assets")  # the replay
    assert result["written"] is True
    assert result["summary"]["history_entries"] == 0
    assert result["summary"]["cis_unchanged"] == 3
    assert result["summary"]["cis_created"] == 0

    ci = erp.json("show", "asset_tag:INV-2")["ci"]
    assert ci["name"] == "spare-sw"
    assert ci["ci_class"] == "network_device"
    assert ci["attributes"]["cost_centre"] == "CC-20"
    assert ci["attributes"]["purchase_date"] == "2022-03-15"
    assert erp.stats()["cis"] == 3

    # a replay as text says so too
    stdout, _ = erp.run("erp", "sync", "assets")
    rows = dict(
        (cells[1].strip(), cells[2].strip())
        for line in stdout.splitlines()
        if len(cells := line.split("│")) == 4
    )
    assert rows["history entries"] == "0"
    assert rows["unchanged"] == "3"


def test_bad_rows_refuse_the_run_and_allow_partial_writes_the_good_ones(erp: Erp) -> None:
    erp.export.write_text(BAD_DATES, encoding="utf-8")
    before = erp.stats()
    _, stderr = erp.run("erp", "sync", "assets", code=1)
    assert f"{erp.export}:3: field 'Bought'" in stderr
    assert "'31.02.2022' is not a date" in stderr
    assert f"{erp.export}:4: field 'Bought'" in stderr
    assert "nothing was written; fix the rows or pass --allow-partial" in stderr
    assert erp.stats() == before

    refused = erp.json("erp", "sync", "assets", code=1)
    assert refused["written"] is False
    assert [(r["origin"], r["field"]) for r in refused["rejected"]] == [
        (f"{erp.export}:3", "Bought"),
        (f"{erp.export}:4", "Bought"),
    ]

    _, stderr = erp.run("erp", "sync", "assets", "--allow-partial")
    assert f"rejected: {erp.export}:3: field 'Bought'" in stderr
    assert erp.stats()["cis"] == 1
    assert erp.json("show", "asset_tag:INV-1")["ci"]["name"] == "core-1"

    conflicts = erp.json("conflicts")
    invalid = [c for c in conflicts if c["kind"] == "invalid_record"]
    assert {c["item"] for c in invalid} == {f"{erp.export}:3", f"{erp.export}:4"}
    assert all(c["source"] == "erp:assets" for c in invalid)
    text, _ = erp.run("conflicts")
    assert "invalid_record" in text and "Bought" in text


def test_a_dry_run_with_bad_rows_lists_them_and_writes_nothing(erp: Erp) -> None:
    erp.export.write_text(BAD_DATES, encoding="utf-8")
    stdout, stderr = erp.run("erp", "sync", "assets", "--dry-run")
    assert [line.split()[0] for line in stdout.splitlines() if line.startswith("create")] == [
        "create"
    ]
    assert f"{erp.export}:3: field 'Bought'" in stderr
    assert "a real run would write nothing" in stderr
    assert erp.stats()["cis"] == 0


def test_an_unreadable_feed_is_one_line_and_an_unknown_source_a_usage_error(erp: Erp) -> None:
    _, stderr = erp.run("erp", "sync", "missing", code=1)
    assert "nowhere.csv does not exist" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert "Traceback" not in stderr

    _, stderr = erp.run("erp", "sync", "nosuch", code=2)
    assert "no ERP source 'nosuch'; declared: assets, missing" in stderr
    assert len(stderr.strip().splitlines()) == 1
    erp.run("erp", "write-back", "nosuch", code=2)
    erp.run("erp", "report", "nosuch", code=2)
    _, stderr = erp.run("erp", "report", "--live", code=2)
    assert "name the SOURCE" in stderr
    _, stderr = erp.run("erp", "write-back", "missing", code=1)
    assert "declares no write_back" in stderr
    assert erp.stats()["cis"] == 0


def test_write_back_sends_what_differs_once(erp: Erp) -> None:
    erp.discover()
    erp.run("erp", "sync", "assets")

    stdout, stderr = erp.run("erp", "write-back", "assets", "--dry-run")
    assert "INV-1 (core-1) Model: - -> C9500-24Y4C" in stdout  # what discovery knows
    assert "INV-2 (spare-sw) Status: - -> " in stdout
    assert "SerialNo" not in stdout  # the ERP gave every serial: none is sent back
    assert "3 records would be written" in stderr
    assert "dry run: nothing was written" in stderr
    assert not erp.to_erp.exists()

    stdout, stderr = erp.run("erp", "write-back", "assets")
    assert "INV-3 (db-9) Status: - -> " in stdout
    assert "3 records written" in stderr
    with erp.to_erp.open(encoding="utf-8", newline="") as handle:
        written = {r["InventoryNo"]: r for r in csv.DictReader(handle, delimiter=";")}
    assert set(written) == {"INV-1", "INV-2", "INV-3"}
    assert written["INV-1"]["Model"] == "C9500-24Y4C"
    assert written["INV-2"]["SerialNo"] == "" and written["INV-2"]["Model"] == ""
    assert written["INV-1"]["Status"]

    again = erp.json("erp", "write-back", "assets")
    assert again["written"] == 0
    assert again["changes"] == []
    assert again["assets"] == 3
    _, stderr = erp.run("erp", "write-back", "assets")
    assert "0 records written" in stderr


def test_report_shows_ghost_assets_and_unregistered_devices(erp: Erp) -> None:
    erp.discover()
    erp.run("erp", "sync", "assets")

    stdout, _ = erp.run("erp", "report")
    # INV-2 (a switch) and INV-3 (a server): listed by the ERP, never discovered
    assert "ghost assets: 2 of 3 ERP assets" in stdout
    assert "spare-sw" in stdout and "db-9" in stdout
    assert "unregistered devices: 1 of 2 discovered" in stdout
    assert "rogue-sw" in stdout
    assert "mismatches: 0 among 3 ERP assets: none" in stdout

    found = erp.json("erp", "report")
    assert found["erp_assets"] == 3 and found["discovered"] == 2
    assert [(g["name"], g["key"], g["ci_class"]) for g in found["ghosts"]] == [
        ("db-9", "INV-3", "server"),
        ("spare-sw", "INV-2", "network_device"),
    ]
    assert all(g["last_discovered"] is None for g in found["ghosts"])
    assert [(u["name"], u["seen_by"]) for u in found["unregistered"]] == [("rogue-sw", ["snmp"])]
    assert found["counts"] == {"ghosts": 2, "unregistered": 1, "mismatches": 0}

    # one source's assets, and a live report that dry-runs its feed (and writes nothing)
    before = erp.stats()
    live = erp.json("erp", "report", "assets", "--live")
    assert live["source"] == "erp:assets"
    assert live["counts"]["ghosts"] == 2
    assert erp.stats() == before

    limited = erp.json("erp", "report", "--limit", "1")
    assert len(limited["ghosts"]) == 1 and limited["counts"]["ghosts"] == 2
    _, stderr = erp.run("erp", "report", "--limit", "1")
    assert "... and 1 more (--limit)" in stderr


def test_a_serial_of_another_ci_is_a_conflict_and_a_live_mismatch(erp: Erp) -> None:
    erp.discover()
    erp.run("erp", "sync", "assets")
    # the ERP now gives spare-sw (INV-2) the serial SNMP found on rogue-sw
    erp.export.write_text(GOOD.replace("SNGHOST1", "ROGUE0001"), encoding="utf-8")

    live = erp.json("erp", "report", "assets", "--live")
    assert [(m["field"], m["erp_value"]) for m in live["mismatches"]] == [
        ("identifiers.serial_number", "ROGUE0001")
    ]
    stdout, _ = erp.run("erp", "report", "assets", "--live")
    assert "mismatches: 1 among 3 ERP assets of erp:assets" in stdout

    _, stderr = erp.run("erp", "sync", "assets", "--dry-run")
    assert "conflict: " in stderr and "identifier_claimed" in stderr
    assert "dry run: nothing was written" in stderr

    _, stderr = erp.run("erp", "sync", "assets")
    assert "conflict: " in stderr and "identifier_claimed" in stderr
    assert "ROGUE0001" in stderr
    result = erp.json("erp", "sync", "assets")
    assert result["summary"]["conflicts"] == 1
    assert result["conflicts"][0]["kind"] == "identifier_claimed"


def test_a_dry_run_names_the_asset_of_a_conflict(erp: Erp) -> None:
    erp.discover()
    erp.run("erp", "sync", "assets")
    erp.export.write_text(GOOD.replace("SNGHOST1", "ROGUE0001"), encoding="utf-8")
    plan = erp.json("erp", "sync", "assets", "--dry-run")
    assert plan["summary"]["conflicts"] == 1
    assert [i["key"] for i in plan["items"] if i["conflicts"]] == ["INV-2"]


def test_the_progress_is_drawn_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from servicegraph.cli import erp as erp_cli

    screen = io.StringIO()
    monkeypatch.setattr(
        erp_cli, "err", Console(file=screen, force_terminal=True, force_interactive=True)
    )
    with erp_cli.ReadProgress("assets") as progress:
        progress(0, 3)
        progress(3, 3)
        progress(3, 3)  # a late call once reconciling changes nothing
    drawn = screen.getvalue()
    assert "reading assets" in drawn
    assert "3/3" in drawn
    assert "reconciling 3 assets..." in drawn

    screen = io.StringIO()
    monkeypatch.setattr(
        erp_cli, "err", Console(file=screen, force_terminal=True, force_interactive=True)
    )
    with erp_cli.ReadProgress("api") as progress:
        progress(500, None)  # a feed that does not know its total: a count
    assert "500 records" in screen.getvalue()

    piped = io.StringIO()
    monkeypatch.setattr(erp_cli, "err", Console(file=piped))
    with erp_cli.ReadProgress("assets") as progress:
        progress(0, 3)
        progress(3, 3)
    assert piped.getvalue() == ""
