"""Effect exactly once: a worker killed with SIGKILL mid-stream and two workers at once
lose no event and apply none twice."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.config import Settings
from servicegraph.events.model import Event, EventStatus, Severity, digest
from servicegraph.ticketing.ports import IncidentFilter
from tests.correlation.conftest import T0, make_world

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["db-1", "db-2", "db-3", "acc-1", "core-1", "orders-app", "orders-db", "dist-1"]


def make_events(world_ids: dict[str, str], n: int) -> list[Event]:
    rng = random.Random(7)
    events = []
    for i in range(n):
        key = rng.choice(KEYS)
        name = rng.choice(["NodeDown", "HighLatency", "DiskFull"])
        at = T0 + dt.timedelta(seconds=i // 50)
        events.append(
            Event(
                source="test",
                name=name,
                status=EventStatus.FIRING,
                severity=Severity.MAJOR,
                occurred_at=at,
                fingerprint=digest(key, name),
                event_id=f"e{i}",
                labels={"ci_id": world_ids[key]},
            )
        )
    return events


def summary(services: Services) -> tuple[Counter[str], list[frozenset[str]]]:
    """Per fingerprint its count, and the partition of fingerprints into incidents."""
    incidents = services.tickets.find_incidents(IncidentFilter(limit=100_000))
    counts: Counter[str] = Counter()
    groups = []
    for incident in incidents:
        alerts = services.tickets.incident_alerts([incident.id]).get(incident.id, [])
        counts.update({a.fingerprint: a.count for a in alerts})
        groups.append(frozenset(a.fingerprint for a in alerts))
    return counts, sorted(groups, key=sorted)


def test_kill_9_mid_stream_and_two_workers_give_exactly_once(tmp_path: Path) -> None:
    reference_world = next(make_world(tmp_path / "ref"))
    world = next(make_world(tmp_path / "run"))
    ref_events = make_events(reference_world.ids, 6000)
    events = make_events(world.ids, 6000)
    reference_world.services.correlator.ingest(ref_events)
    reference_world.services.correlator.drain()
    assert world.services.correlator.ingest(events) == len(events)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tests.correlation.worker_proc", str(tmp_path / "run"), "50"]
    victim = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 60
    while world.services.inbox.pending_count() > len(events) * 0.6:
        assert time.monotonic() < deadline, "the worker made no progress"
        assert victim.poll() is None, "the worker finished before it could be killed"
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert world.services.inbox.pending_count() > 0, "killed too late to prove anything"

    # redeliver a slice: the sender retried after the crash
    assert world.services.correlator.ingest(events[:500]) == 0

    workers = [subprocess.Popen(cmd, env=env) for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=120) == 0
    assert world.services.inbox.pending_count() == 0

    counts, groups = summary(world.services)
    ref_counts, ref_groups = summary(reference_world.services)
    expected = Counter(e.fingerprint for e in events)
    assert counts == expected, "every event counted exactly once"
    assert counts == ref_counts
    assert groups == ref_groups, "the same incidents as an uninterrupted single worker"
    numbers = [
        i.number for i in world.services.tickets.find_incidents(IncidentFilter(limit=100_000))
    ]
    assert len(numbers) == len(set(numbers))
    world.services.close()
    reference_world.services.close()
    assert bootstrap(Settings(data_dir=tmp_path / "run")).inbox.counts()["inbox_pending"] == 0
