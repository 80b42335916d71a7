"""A deployment in processes, for the tests over Neo4j: `servicegraph` processes each in a
process group and a data directory of their own (standing for hosts), the generic events
they are sent, and what correlation made of them."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from servicegraph.bootstrap import Services
from servicegraph.cmdb.ports import CIQuery
from servicegraph.events.model import digest
from servicegraph.ticketing.ports import IncidentFilter

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


def small_site_ci_ids(services: Services) -> dict[str, str]:
    """The ids of the CIs named ``KEYS`` in examples/small-site.json, once imported."""
    found = services.store.find_cis(CIQuery(limit=10_000))
    ci_ids = {ci.name: ci.id for ci in found if ci.name in KEYS}
    assert set(ci_ids) == set(KEYS)
    return ci_ids
