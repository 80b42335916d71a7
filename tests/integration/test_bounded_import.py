"""A load larger than Neo4j's per-transaction memory ceiling: refused as one transaction,
imported whole by ``servicegraph import --commit-every`` in bounded ones; and so are the
expiry of a source gone silent and the stale sweep of a complete source that stopped
reporting nearly all of it.

The server of this module is started with ``db.memory.transaction.max`` at
``CEILING_MB``; the load (``benchmarks/topology.py``) is sized to exceed it several times
over in one transaction, and its slices to stay well below it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.topology import generate, to_import_json
from servicegraph.bootstrap import Services
from servicegraph.cmdb.errors import StoreError
from servicegraph.cmdb.observation import ObservationBatch
from servicegraph.cmdb.reconciliation import Reconciler
from servicegraph.storage.neo4j.store import Neo4jGraphStore
from tests.neo4j_server import Neo4jAddress, Neo4jServer, launcher_unavailable
from tests.support import missing_external

CEILING_MB = 8
CIS = 500  # the generator's size: 717 CIs and 2,123 relationships
COMMIT_EVERY = 100


@pytest.fixture(scope="module")
def ceiling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jAddress]:
    """A Neo4j of this module's own: its transactions may use ``CEILING_MB``."""
    reason = launcher_unavailable()
    if reason is not None:
        missing_external(reason)
    server = Neo4jServer(
        home=tmp_path_factory.mktemp("neo4j-ceiling"), transaction_max_mb=CEILING_MB
    )
    address = server.start()
    try:
        yield address
    finally:
        server.stop()


def graph(address: Neo4jAddress) -> Neo4jGraphStore:
    store = Neo4jGraphStore(address.uri, **address.store_settings())
    store.delete_everything()
    store.migrate()
    return store


def test_one_transaction_over_the_ceiling_fails_bounded_ones_succeed(
    ceiling: Neo4jAddress, services: Services, tmp_path: Path
) -> None:
    batch = generate(CIS, seed=1)
    store = graph(ceiling)
    try:
        r = services.reconciler  # the rules of a default configuration, on Neo4j
        reconciler = Reconciler(store, r.classes, r.rules, r.identifier_rules, r.precedence)
        with pytest.raises(StoreError) as refused:
            reconciler.apply(batch)
        message = str(refused.value)
        assert "db.memory.transaction.max" in message, message
        assert store.counts()["cis"] == 0  # rolled back whole
    finally:
        store.close()

    file = tmp_path / "topology.json"
    file.write_text(json.dumps(to_import_json(batch)), encoding="utf-8")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SERVICEGRAPH_")},
        **ceiling.environment(),
        "SERVICEGRAPH_DATA_DIR": str(tmp_path / "data"),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "servicegraph.cli", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    done = cli("import", str(file), "--commit-every", str(COMMIT_EVERY), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["cis_created"] == len(batch.cis)
    assert report["relationships_created"] == len(batch.relationships)
    stats = cli("stats", "--json")
    assert stats.returncode == 0, stats.stderr
    counts = json.loads(stats.stdout)
    assert (counts["cis"], counts["relationships"]) == (len(batch.cis), len(batch.relationships))

    # the same import again changes nothing
    again = cli("import", str(file), "--commit-every", str(COMMIT_EVERY), "--json")
    assert again.returncode == 0, again.stderr
    replay = json.loads(again.stdout)
    assert (replay["cis_created"], replay["cis_updated"], replay["history_entries"]) == (0, 0, 0)
    assert replay["cis_unchanged"] == len(batch.cis)

    # The source goes silent: expiring all it reported is more than one transaction may
    # hold, so it runs in bounded parts; reporting it again makes it all fresh.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    store = Neo4jGraphStore(ceiling.uri, **ceiling.store_settings())
    try:
        r = services.reconciler
        one_unit = Reconciler(
            store, r.classes, r.rules, r.identifier_rules, r.precedence, stale_after_runs=1
        )
        with pytest.raises(StoreError, match=r"db\.memory\.transaction\.max"):
            one_unit.expire(dt.timedelta(days=1), now=later, part_size=10**9)
        expired = one_unit.expire(dt.timedelta(days=1), now=later, part_size=COMMIT_EVERY)
        assert expired.cis_marked_stale == len(batch.cis)
        assert expired.relationships_marked_stale == len(batch.relationships)
    finally:
        store.close()
    fresh = cli("import", str(file), "--commit-every", str(COMMIT_EVERY), "--json")
    assert fresh.returncode == 0, fresh.stderr

    # The source's whole view is now one CI: its sweep marks everything else stale, more
    # than one transaction may hold, so it runs in bounded parts too.
    only = ObservationBatch(source="import", cis=[batch.cis[0]], complete=True)
    store = Neo4jGraphStore(ceiling.uri, **ceiling.store_settings())
    try:
        with pytest.raises(StoreError, match=r"db\.memory\.transaction\.max"):
            Reconciler(
                store, r.classes, r.rules, r.identifier_rules, r.precedence, stale_after_runs=1
            ).apply(only)
    finally:
        store.close()
    view = tmp_path / "one-ci.json"
    view.write_text(json.dumps(to_import_json(only)), encoding="utf-8")
    env["SERVICEGRAPH_STALE_AFTER_RUNS"] = "1"
    swept = cli("import", str(view), "--complete", "--commit-every", str(COMMIT_EVERY), "--json")
    assert swept.returncode == 0, swept.stderr
    sweep = json.loads(swept.stdout)
    assert sweep["cis_marked_stale"] == len(batch.cis) - 1
    assert sweep["relationships_marked_stale"] == len(batch.relationships)


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_commit_every_on_sqlite_reports_as_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No server: the CLI's bounded path over SQLite gives the report of the default,
    all-or-nothing one, and its conflicts still write nothing."""
    from typer.testing import CliRunner

    from servicegraph.cli import app

    def run(data: str, *args: str, code: int = 0) -> str:
        monkeypatch.setenv("SERVICEGRAPH_DATA_DIR", str(tmp_path / data))
        result = CliRunner().invoke(app, list(args))
        assert result.exit_code == code, result.output + result.stderr
        return result.stdout

    site = str(EXAMPLES / "small-site.json")
    whole = json.loads(run("one", "import", site, "--json"))
    sliced = json.loads(run("sliced", "import", site, "--commit-every", "3", "--json"))
    assert {k: v for k, v in sliced.items() if k != "run_id"} == {
        k: v for k, v in whole.items() if k != "run_id"
    }
    assert json.loads(run("sliced", "stats", "--json")) == json.loads(run("one", "stats", "--json"))

    clash = tmp_path / "clash.json"
    clash.write_text(
        json.dumps(
            {
                "cis": [
                    {"key": "x", "class": "server", "identifiers": {"serial_number": "S9"}},
                    {"key": "y", "class": "server", "identifiers": {"serial_number": "S9"}},
                ]
            }
        ),
        encoding="utf-8",
    )
    before = json.loads(run("sliced", "stats", "--json"))
    run("sliced", "import", str(clash), "--commit-every", "1", code=3)
    assert json.loads(run("sliced", "stats", "--json")) == before
