"""`servicegraph export` and `servicegraph import --from-export`, end to end on SQLite:
a graph with history, merges, conflicts, staleness and several sources moves to a fresh
store and every table of the graph reads the same there."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from servicegraph.cli import app
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.export import read_export
from servicegraph.runtime.export import read_all

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# The per-row change sequence says which unit of work last wrote a row; a restore writes
# every row in its own units, so only these columns differ (the store's sequence itself
# is restored).
BOOKKEEPING_COLUMNS = {("ci", "change_seq"), ("relationship", "change_seq")}
# Counters that tell other processes' caches to reload (correlation's cached incidents, the
# desk's cached directory): a restore advances them in the target, whatever the source's.
CACHE_COUNTERS = {"correlation_version", "directory_version"}


def run(cli: CliRunner, data: Path, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, list(args), env={"SERVICEGRAPH_DATA_DIR": str(data)})
    assert result.exit_code == code, result.output + result.stderr
    return result.output


def tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows (sorted), without the bookkeeping columns."""
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        content: dict[str, list[tuple[Any, ...]]] = {}
        for name in names:
            columns = [
                r[1]
                for r in conn.execute(f"PRAGMA table_info({name})")
                if (name, r[1]) not in BOOKKEEPING_COLUMNS
            ]
            rows = conn.execute(f"SELECT {', '.join(columns)} FROM {name}").fetchall()
            if name == "meta":
                rows = [r for r in rows if r[0] not in CACHE_COUNTERS]
            content[name] = sorted(rows, key=repr)
        return content
    finally:
        conn.close()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("SERVICEGRAPH_CONFIG", raising=False)
    return CliRunner()


def build_graph(cli: CliRunner, data: Path, tmp_path: Path) -> None:
    run(cli, data, "import", str(EXAMPLES / "small-site.json"), "--source", "netbox")
    # a second source: overlapping CIs, a conflict recorded, a complete run (staleness)
    second = tmp_path / "erp.json"
    second.write_text(
        json.dumps(
            {
                "cis": [
                    {
                        "key": "A-100",
                        "class": "network_device",
                        "name": "dist-1",
                        "identifiers": {"serial_number": "foc2001b1"},
                        "attributes": {"cost_centre": "CC-7"},
                    },
                    {
                        "key": "A-101",
                        "class": "server",
                        "name": "intruder",
                        "identifiers": {"serial_number": "FOC2001C1"},
                    },
                ]
            }
        )
    )
    run(cli, data, "import", str(second), "--source", "erp", "--allow-conflicts")
    for _ in range(3):  # erp's complete runs leave the other netbox items alone
        run(cli, data, "import", str(second), "--source", "erp", "--complete", "--allow-conflicts")
    run(cli, data, "merge", "dist-1", "dist-2")


def test_sqlite_export_to_fresh_sqlite_is_identical(cli: CliRunner, tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    build_graph(cli, source, tmp_path)
    export = tmp_path / "graph.jsonl"
    run(cli, source, "export", str(export))

    checked = read_all(export)
    assert checked.version == 5  # the graph, then the desk (empty here)
    assert checked.counts["ci"] >= 12
    assert checked.counts["history"] > 0
    assert checked.counts["conflict"] > 0
    assert checked.counts["source_sweep"] == 1

    report = json.loads(run(cli, target, "import", "--from-export", str(export), "--json"))
    assert report["counts"] == checked.counts

    before = tables(source / "servicegraph.sqlite3")
    after = tables(target / "servicegraph.sqlite3")
    assert set(after) == set(before)
    for name in before:
        assert after[name] == before[name], f"table {name} differs"
    assert sum(len(rows) for rows in before.values()) > 100

    # and the restored store answers as the original does
    for command in (["history", "dist-1"], ["impact", "core-1"], ["stats"]):
        assert run(cli, target, *command, "--json") == run(cli, source, *command, "--json")
    run(cli, target, "import", str(tmp_path / "erp.json"), "--source", "erp", "--allow-conflicts")


def test_restore_needs_an_empty_store(cli: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "data"
    run(cli, data, "import", str(EXAMPLES / "small-site.json"))
    export = tmp_path / "graph.jsonl"
    run(cli, data, "export", str(export))
    out = run(cli, data, "import", "--from-export", str(export), code=1)
    assert "not empty" in out


def test_files_and_from_export_exclude_each_other(cli: CliRunner, tmp_path: Path) -> None:
    export = tmp_path / "graph.jsonl"
    export.write_text("")
    run(cli, tmp_path, "import", str(EXAMPLES / "small-site.json"), "--from-export",
        str(export), code=2)  # fmt: skip
    run(cli, tmp_path, "import", code=2)


def write_lines(path: Path, *objs: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


HEADER = {"format": "servicegraph-export", "version": 1, "change_seq": 3}
CI = {
    "type": "ci",
    "id": "ci-1",
    "class": "server",
    "name": "a",
    "attributes": {},
    "attribute_sources": {},
    "identifiers": [],
    "lifecycle": "active",
    "operational_state": "up",
    "stale": False,
    "merged_into": None,
    "created_at": "2024-01-01T00:00:00+00:00",
    "updated_at": "2024-01-01T00:00:00+00:00",
    "version": 1,
}
EMPTY_COUNTS = {
    "ci": 0,
    "source_key": 0,
    "ci_sighting": 0,
    "relationship": 0,
    "relationship_sighting": 0,
    "source_sweep": 0,
    "history": 0,
    "conflict": 0,
}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "empty"),
        ([{"format": "other"}], "not a servicegraph export"),
        ([{**HEADER, "version": 2}], "upgrade servicegraph"),
        ([HEADER, CI], "incomplete"),
        ([HEADER, CI, {"type": "end", "counts": EMPTY_COUNTS}], "promises"),
        ([HEADER, {**CI, "lifecycle": "zombie"}], "zombie"),
        ([HEADER, {**CI, "created_at": "yesterday"}], "created_at|isoformat"),
        (
            [HEADER, {"type": "source_sweep", "source": "s", "run_id": "r"}, CI],
            "order",
        ),
        ([HEADER, {"type": "alien"}], "unknown record type"),
    ],
)
def test_bad_exports_are_refused_before_anything_is_written(
    tmp_path: Path, lines: list[dict[str, Any]], message: str
) -> None:
    path = write_lines(tmp_path / "bad.jsonl", *lines)
    with pytest.raises(ValidationFailed, match=message):
        read_export(path)


def test_not_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(HEADER) + "\n{oops\n")
    with pytest.raises(ValidationFailed, match=r"bad\.jsonl:2"):
        read_export(path)
