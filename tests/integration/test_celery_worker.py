"""Jobs through a real Celery worker process on a real Redis (127.0.0.1:6379).

The worker is killed with SIGKILL in the middle of a correlation task; after a restart the
unacknowledged task is delivered again, and every event's effect happens exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from servicegraph import tasks
from servicegraph.config import Settings
from servicegraph.events.wire import events_to_dicts
from tests.correlation.conftest import World, make_world
from tests.correlation.test_exactly_once import make_events, summary

ROOT = Path(__file__).resolve().parents[2]
BROKER = "redis://127.0.0.1:6379/15"


@pytest.fixture()
def broker() -> Iterator[str]:
    client = redis.Redis.from_url(BROKER)
    try:
        client.ping()
    except redis.ConnectionError:
        message = "no Redis on 127.0.0.1:6379 (redis-server --port 6379)"
        if os.environ.get("SG_REQUIRE_EXTERNAL") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    client.flushdb()
    yield BROKER
    client.flushdb()


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "servicegraph.cli",
            "worker",
            "-c",
            "1",
            "--loglevel",
            "WARNING",
        ],
        env=env,
        cwd=ROOT,
        start_new_session=True,  # its own process group: SIGKILL reaches the pool child too
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    proc.wait(timeout=30)


def wait_for(check, what: str, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_killed_worker_task_is_redelivered_and_applied_once(broker: str, tmp_path: Path) -> None:
    world: World = next(make_world(tmp_path))
    events = make_events(world.ids, 6000)
    assert world.services.correlator.ingest(events) == len(events)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SERVICEGRAPH_DATA_DIR": str(tmp_path),
        "SERVICEGRAPH_BROKER_URL": broker,
        "SERVICEGRAPH_BROKER_VISIBILITY_TIMEOUT_S": "3",
        "SERVICEGRAPH_CORRELATION__BATCH_SIZE": "25",
        "SERVICEGRAPH_SCHEDULE": "{}",
    }
    settings = Settings(
        data_dir=tmp_path, broker_url=broker, broker_visibility_timeout_s=3, schedule={}
    )
    tasks.configure(settings)
    pending = world.services.inbox.pending_count
    worker = start_worker(env)
    try:
        tasks.correlate.delay()
        wait_for(lambda: pending() < len(events) * 0.8, "the worker to start correlating", 60)
        kill_group(worker, signal.SIGKILL)
        left = pending()
        assert 0 < left < len(events), "the kill must land mid-task"
        time.sleep(0.5)
        assert pending() == left, "nothing runs while the worker is dead"

        # No new task is sent: the restarted worker finishes only through redelivery.
        worker = start_worker(env)
        wait_for(lambda: pending() == 0, "the redelivered task to finish the inbox", 90)
    finally:
        kill_group(worker, signal.SIGTERM)

    counts, _ = summary(world.services)
    assert counts == Counter(e.fingerprint for e in events), "each event counted exactly once"
    world.services.close()


def test_ingest_task_persists_and_correlates(broker: str, tmp_path: Path) -> None:
    world: World = next(make_world(tmp_path))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SERVICEGRAPH_DATA_DIR": str(tmp_path),
        "SERVICEGRAPH_BROKER_URL": broker,
        "SERVICEGRAPH_SCHEDULE": "{}",
    }
    tasks.configure(Settings(data_dir=tmp_path, broker_url=broker, schedule={}))
    worker = start_worker(env)
    try:
        batch = events_to_dicts(make_events(world.ids, 50))
        tasks.ingest.delay(batch)
        tasks.ingest.delay(batch)  # a redelivered batch: stored once
        wait_for(
            lambda: (
                world.services.inbox.counts()["events"] == 50
                and world.services.inbox.pending_count() == 0
            ),
            "the batch to be stored and correlated",
            60,
        )
    finally:
        kill_group(worker, signal.SIGTERM)
    assert world.services.tickets.counts()["incidents"] >= 1
    world.services.close()


def test_beat_enqueues_the_scheduled_jobs(broker: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SERVICEGRAPH_DATA_DIR": str(tmp_path),
        "SERVICEGRAPH_BROKER_URL": broker,
        "SERVICEGRAPH_SCHEDULE": '{"housekeeping": 0.5, "correlate": 0}',
    }
    beat = subprocess.Popen(
        [sys.executable, "-m", "servicegraph.cli", "beat", "--loglevel", "WARNING"],
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis.from_url(broker)
    try:
        wait_for(lambda: client.llen("default") >= 2, "beat to enqueue housekeeping", 30)
    finally:
        kill_group(beat, signal.SIGTERM)
    assert client.llen("correlate") == 0, "a job scheduled at 0 s is off"


def test_metrics_endpoint_counts_jobs(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from servicegraph.bootstrap import bootstrap
    from servicegraph.http.app import create_app
    from servicegraph.runtime import jobs

    services = bootstrap(Settings(data_dir=tmp_path, embedded_worker=False))
    jobs.housekeeping(services)
    with TestClient(create_app(services)) as client:
        body = client.get("/metrics").text
    assert 'servicegraph_jobs_total{job="housekeeping",outcome="ok"}' in body
    assert "servicegraph_inbox_pending" in body
    services.close()
