"""The command line, end to end on a real SQLite store in a temporary data directory."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import networkx as nx
import pytest
from typer.testing import CliRunner

from servicegraph.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SERVICEGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SERVICEGRAPH_CONFIG", raising=False)
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, result.output + result.stderr
    return result.stdout


def stats(cli: CliRunner) -> dict[str, int]:
    return json.loads(run(cli, "stats", "--json"))  # type: ignore[no-any-return]


def test_import_then_impact_spof_and_deps(cli: CliRunner) -> None:
    report = json.loads(run(cli, "import", str(EXAMPLES / "small-site.json"), "--json"))
    assert report["cis_created"] == 12
    assert report["relationships_created"] == 14

    one_uplink = json.loads(run(cli, "impact", "dist-1", "--json"))
    assert one_uplink["affected"] == []
    assert [g["group"] for g in one_uplink["degraded"]] == ["uplink"]

    both = json.loads(run(cli, "impact", "dist-1", "dist-2", "--json"))
    names = {a["ci_id"] for a in both["affected"]}
    web_shop = json.loads(run(cli, "show", "web-shop", "--json"))["ci"]["id"]
    assert web_shop in names
    assert both["business_services"] == [web_shop]

    spofs = json.loads(run(cli, "spof", "web-shop", "--json"))["single_points_of_failure"]
    spof_ids = {s["ci_id"] for s in spofs}
    core = json.loads(run(cli, "show", "serial_number:foc2001a1", "--json"))["ci"]["id"]
    dist1 = json.loads(run(cli, "show", "dist-1", "--json"))["ci"]["id"]
    assert core in spof_ids
    assert dist1 not in spof_ids

    deps = json.loads(run(cli, "deps", "web-shop", "--json"))["dependencies"]
    assert {d["ci_id"] for d in deps} >= spof_ids | {dist1}
    assert "web shop" in run(cli, "impact", "dist-1", "dist-2").lower()


def test_replaying_an_import_writes_no_history(cli: CliRunner) -> None:
    run(cli, "import", str(EXAMPLES / "small-site.json"))
    before = stats(cli)
    report = json.loads(run(cli, "import", str(EXAMPLES / "small-site.json"), "--json"))
    assert report["history_entries"] == 0
    assert report["cis_unchanged"] == 12
    assert stats(cli) == before


def test_csv_import(cli: CliRunner) -> None:
    report = json.loads(
        run(
            cli,
            "import",
            str(EXAMPLES / "cis.csv"),
            str(EXAMPLES / "relationships.csv"),
            "--json",
        )
    )
    assert report["cis_created"] == 2
    assert report["relationships_created"] == 1
    edge = json.loads(run(cli, "show", "edge-1", "--json"))["ci"]
    assert edge["attributes"]["ip_addresses"] == ["10.1.0.1", "192.0.2.1"]
    assert ["serial_number", "FCW1234A0B1"] in edge["identifiers"]


def test_malformed_csv_names_file_line_and_field_and_writes_nothing(
    cli: CliRunner, tmp_path: Path
) -> None:
    run(cli, "import", str(EXAMPLES / "small-site.json"))
    before = stats(cli)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "key,class,name,cpu_count\n"
        "ok-1,server,ok-1,4\n"
        "bad-1,server,bad-1,many\n"
        "bad-2,servr,bad-2,\n"
    )
    result = cli.invoke(app, ["import", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:3: field 'cpu_count'" in result.stderr
    assert f"{bad}:4: field 'class'" in result.stderr
    assert stats(cli) == before


def test_malformed_json_names_the_position(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"cis": [{"key": "a", "class": "server"},]}')
    result = cli.invoke(app, ["import", str(bad)])
    assert result.exit_code == 1
    assert "line 1, column" in result.stderr
    assert stats(cli)["cis"] == 0


def test_bad_relationship_fails_the_whole_import(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "rel.json"
    bad.write_text(
        json.dumps(
            {
                "cis": [
                    {"key": "a", "class": "server", "name": "a"},
                    {"key": "s", "class": "business_service", "name": "s"},
                ],
                "relationships": [
                    {"from": "a", "type": "RUNS_ON", "to": "s"},
                    {"from": "a", "type": "CONNECTED_TO", "to": "nowhere"},
                ],
            }
        )
    )
    result = cli.invoke(app, ["import", str(bad)])
    assert result.exit_code == 1
    assert "relationships[0]: field 'type': a server cannot be RUNS_ON a business_service" in (
        result.stderr
    )
    assert "relationships[1]: field 'to': no CI with key 'nowhere'" in result.stderr
    assert stats(cli)["cis"] == 0


def test_conflicting_serials_are_reported_not_overwritten(cli: CliRunner, tmp_path: Path) -> None:
    file = tmp_path / "dupes.json"
    file.write_text(
        json.dumps(
            {
                "cis": [
                    {"key": "a", "class": "server", "identifiers": {"serial_number": "S-1"}},
                    {"key": "b", "class": "server", "identifiers": {"serial_number": "s 1"}},
                ]
            }
        )
    )
    result = cli.invoke(app, ["import", str(file)])
    assert result.exit_code == 3
    assert "claims the same serial_number" in result.stderr
    assert stats(cli)["cis"] == 0

    report = json.loads(run(cli, "import", str(file), "--allow-conflicts", "--json"))
    assert report["cis_created"] == 1
    assert report["conflicts"] == 1
    conflicts = json.loads(run(cli, "conflicts", "--json"))
    assert conflicts[0]["kind"] == "duplicate_in_batch"
    assert conflicts[0]["identifier"] == ["serial_number", "S1"]


def test_history_and_as_of(cli: CliRunner, tmp_path: Path) -> None:
    first = tmp_path / "v1.json"
    first.write_text(
        json.dumps({"cis": [{"key": "db", "class": "database", "attributes": {"version": "15"}}]})
    )
    run(cli, "import", str(first))
    ci = json.loads(run(cli, "show", "db", "--json"))["ci"]
    created = ci["created_at"]
    second = tmp_path / "v2.json"
    second.write_text(
        json.dumps({"cis": [{"key": "db", "class": "database", "attributes": {"version": "16"}}]})
    )
    run(cli, "import", str(second))
    timeline = json.loads(run(cli, "history", "db", "--json"))
    assert [e["kind"] for e in timeline] == ["created", "attribute"]
    assert (timeline[1]["old"], timeline[1]["new"]) == ("15", "16")
    assert timeline[1]["actor"] == "cli:import"
    then = json.loads(run(cli, "as-of", "db", created))
    assert then["ci"]["attributes"] == {"version": "15"}
    assert json.loads(run(cli, "as-of", "db", "2000-01-01T00:00:00Z", code=1) or "null") is None


def test_unknown_ci_is_one_clear_line(cli: CliRunner) -> None:
    result = cli.invoke(app, ["impact", "no-such-thing"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no configuration item with id 'no-such-thing'"


def test_inbox_lists_the_last_events_and_whether_they_were_correlated(
    cli: CliRunner, tmp_path: Path
) -> None:
    from servicegraph.bootstrap import bootstrap
    from servicegraph.config import Settings
    from servicegraph.events.model import Event, EventStatus, Severity

    services = bootstrap(Settings(data_dir=tmp_path / "data"))
    at = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)

    def event(n: int) -> Event:
        return Event(
            "generic", f"Check{n}", EventStatus.FIRING, Severity.MAJOR, at, f"fp{n}", f"e{n}"
        )

    services.correlator.ingest([event(1), event(2), event(3)])
    services.correlator.drain()
    services.correlator.ingest([event(4), event(5)])
    services.close()
    items = json.loads(run(cli, "inbox", "--limit", "3", "--json"))
    assert [(i["seq"], i["name"], i["correlated"]) for i in items] == [
        (5, "Check5", False),
        (4, "Check4", False),
        (3, "Check3", True),
    ]
    assert "2 waiting for correlation" in run(cli, "inbox")


# -- export --graphml: a CI's neighbourhood or an impact for yEd and Gephi -----------


def test_a_neighbourhood_and_an_impact_as_graphml(cli: CliRunner, tmp_path: Path) -> None:
    run(cli, "import", str(EXAMPLES / "small-site.json"))
    near = tmp_path / "near.graphml"
    run(cli, "export", "--graphml", str(near), "--ci", "dist-1", "--depth", "1")
    graph = nx.read_graphml(near)
    names = {data["name"] for _, data in graph.nodes(data=True)}
    assert {"dist-1", "core-1", "acc-1"} <= names and "web-shop" not in names
    assert {data["type"] for _, _, data in graph.edges(data=True)} == {"CONNECTED_TO"}

    both = tmp_path / "impact.graphml"
    run(cli, "export", "--graphml", str(both), "--ci", "dist-1", "--ci", "dist-2", "--impact")
    graph = nx.read_graphml(both)
    names = {data["name"] for _, data in graph.nodes(data=True)}
    assert {"acc-1", "Web shop"} <= names, "both uplinks lost: the shop goes down"


def _error(cli: CliRunner, *args: str, code: int) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.stderr


def test_graphml_options_are_checked(cli: CliRunner, tmp_path: Path) -> None:
    run(cli, "import", str(EXAMPLES / "small-site.json"))
    out = str(tmp_path / "x.graphml")
    assert "one of FILE" in _error(cli, "export", code=2)
    assert "one --ci" in _error(cli, "export", "--graphml", out, code=2)
    assert "one --ci" in _error(cli, "export", "--graphml", out, "--ci", "a", "--ci", "b", code=2)
    assert "nope" in _error(cli, "export", "--graphml", out, "--ci", "nope", code=1)
    assert not Path(out).exists()
