"""A deployment in processes, for the tests over Neo4j: `servicegraph` processes each in a
process group and a data directory of their own (standing for hosts), the generic events
they are sent, and what correlation made of them."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.ports import CIQuery
from servicegraph.config import Settings
from servicegraph.events.model import digest
from servicegraph.ticketing.ports import IncidentFilter
from tests.contract.neo4j_stores import fresh_graph
from tests.neo4j_server import Neo4jAddress

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
KEYS = ["db-1", "db-2", "db-3", "acc-1", "core-1", "orders-app", "orders-db", "dist-1"]
NAMES = ["NodeDown", "HighLatency", "DiskFull"]
T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


class Host:
    """One process of the deployment, in a process group of its own (SIGKILL reaches its
    children too), with its own data directory and log."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], root: Path) -> None:
        self.name = name
        data = root / name
        data.mkdir(parents=True)
        self.log = root / f"{name}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "servicegraph.cli", *args],
            env={**env, "SERVICEGRAPH_DATA_DIR": str(data)},
            cwd=ROOT,
            start_new_session=True,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return
        self.proc.wait(timeout=60)


def serve(name: str, port: int, env: dict[str, str], root: Path) -> Host:
    return Host(name, ["serve", "--host", "127.0.0.1", "--port", str(port)], env, root)


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def generic_events(ci_ids: dict[str, str], count: int, prefix: str = "mh") -> list[dict[str, Any]]:
    """``count`` events of the generic webhook, on the CIs named ``KEYS`` of small-site."""
    rng = random.Random(20)
    events = []
    for i in range(count):
        key, name = rng.choice(KEYS), rng.choice(NAMES)
        events.append(
            {
                "name": name,
                "severity": "major",
                "source": "test",
                "ci_id": ci_ids[key],
                "fingerprint": digest(key, name),
                "event_id": f"{prefix}-{i}",
                "occurred_at": (T0 + dt.timedelta(seconds=i // 50)).isoformat(),
            }
        )
    return events


def alert_counts(services: Services) -> Counter[str]:
    """Events correlated, by fingerprint: each alert counts the events of its fingerprint."""
    counts: Counter[str] = Counter()
    for incident in services.tickets.find_incidents(IncidentFilter(limit=100_000)):
        alerts = services.tickets.incident_alerts([incident.id]).get(incident.id, [])
        counts.update({a.fingerprint: a.count for a in alerts})
    return counts


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``servicegraph ARGS`` to completion (an error fails the test with its output)."""
    done = subprocess.run(
        [sys.executable, "-m", "servicegraph.cli", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"servicegraph {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done


@dataclass
class Site:
    """examples/small-site.json in an emptied Neo4j, and what the hosts share."""

    env: dict[str, str]  # every host's environment (each adds its own DATA_DIR)
    root: Path  # where the hosts' data directories and logs go
    services: Services  # the test's own view of the desk, on the same Neo4j
    ci_ids: dict[str, str]  # the ids of the CIs named ``KEYS``
    engineer: str  # an engineer's API token


def small_site(
    address: Neo4jAddress, root: Path, token_name: str, settings: dict[str, str]
) -> Site:
    """Import small-site into ``address``'s emptied database and create an engineer's token
    named ``token_name``; the hosts' environment is this process's without its own
    ``SERVICEGRAPH_*`` settings, plus ``address``'s and ``settings``."""
    fresh_graph(address).close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICEGRAPH_")}
    env.update(address.environment(), PYTHONPATH=str(ROOT), **settings)
    setup = root / "setup"
    setup.mkdir(parents=True)
    cli_env = {**env, "SERVICEGRAPH_DATA_DIR": str(setup)}
    run_cli(cli_env, "import", str(EXAMPLES / "small-site.json"))
    created = run_cli(
        cli_env, "token", "create", "--role", "engineer", "--name", token_name, "--json"
    )
    services = bootstrap(Settings(data_dir=setup, **address.settings()))
    found = services.store.find_cis(CIQuery(limit=10_000))
    ci_ids = {ci.name: ci.id for ci in found if ci.name in KEYS}
    assert set(ci_ids) == set(KEYS)
    return Site(env, root, services, ci_ids, json.loads(created.stdout)["token"])
