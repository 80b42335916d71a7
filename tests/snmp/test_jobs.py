"""Discovery and polling as background jobs: configured by settings, run by the job
functions and by a real Celery worker process on Redis."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from servicegraph import tasks
from servicegraph.bootstrap import Services
from servicegraph.cmdb.ports import CIQuery
from servicegraph.collectors.snmp.state import sorted_samples
from servicegraph.config import Settings
from servicegraph.runtime import jobs
from tests.integration.test_celery_worker import BROKER, kill_group, start_worker
from tests.snmp.conftest import TOPOLOGY_HOSTS
from tests.snmp.simulator import Simulator

pytestmark = pytest.mark.usefixtures("simulator")


def snmp_settings(simulator: Simulator, **extra: object) -> dict[str, object]:
    return {
        "targets": [f"{host}:{simulator.port}" for host in TOPOLOGY_HOSTS.values()],
        "credentials": [{"community": "public", "subnets": ["127.0.0.0/8"]}],
        "timeout": 1.0,
        "retries": 1,
        **extra,
    }


def devices(services: Services) -> list[str]:
    """Discovered devices (not placeholders for neighbours outside the inventory)."""
    return sorted(
        ci.name
        for ci in services.store.find_cis(CIQuery(ci_class="network_device", limit=100))
        if not ci.attributes.get("placeholder")
    )


def test_discovery_job_loads_the_inventory_and_a_replay_changes_nothing(
    simulator: Simulator, make_services: Callable[..., Services]
) -> None:
    services = make_services(snmp=snmp_settings(simulator))
    result = jobs.discover(services, run_id="run-1")
    assert result["devices"] == 5 and result["links"] >= 4, result
    assert len(devices(services)) == 5
    history = services.store.counts()["history_entries"]
    again = jobs.discover(services, run_id="run-1")  # a redelivered task
    assert again["devices"] == 5
    assert services.store.counts()["history_entries"] == history


def test_poll_job_remembers_the_last_cycle_across_processes(
    simulator: Simulator, tmp_path: Path
) -> None:
    from servicegraph.bootstrap import bootstrap

    target = f"127.0.0.1:{simulator.port}"

    def cycle(community: str) -> tuple[dict[str, int], int]:
        # fresh services each cycle, as a new worker process would have
        services = bootstrap(
            Settings(
                data_dir=tmp_path,
                snmp={  # type: ignore[arg-type]
                    "targets": [target],
                    "credentials": [{"community": community, "subnets": ["127.0.0.1/32"]}],
                },
            )
        )
        try:
            return jobs.poll(services), services.inbox.pending_count()
        finally:
            services.close()

    assert cycle("acc1") == ({"devices": 1, "events": 0, "accepted": 0}, 0)  # first sight
    assert cycle("acc1")[0]["events"] == 0
    rebooted, pending = cycle("acc1-rebooted")  # the device restarted, a port went down
    assert (rebooted["events"], rebooted["accepted"], pending) == (2, 2, 2)
    assert cycle("acc1") == ({"devices": 1, "events": 1, "accepted": 1}, 3)  # port back up
    services = bootstrap(Settings(data_dir=tmp_path))
    try:  # kept in the store, where a worker on another host finds it
        with services.poll_state.cycle() as samples:
            kept = list(sorted_samples(samples))
    finally:
        services.close()
    assert [(host, port) for host, port, _ in kept] == [("127.0.0.1", simulator.port)]
    assert "community" not in kept[0][2], "no credentials in the poll state"


def test_discovery_through_a_real_worker(
    simulator: Simulator, tmp_path: Path, broker_db: str
) -> None:
    env = {
        **os.environ,
        "SERVICEGRAPH_DATA_DIR": str(tmp_path),
        "SERVICEGRAPH_BROKER_URL": broker_db,
        "SERVICEGRAPH_SCHEDULE": "{}",
        "SERVICEGRAPH_SNMP": json.dumps(snmp_settings(simulator)),
    }
    settings = Settings(data_dir=tmp_path, broker_url=broker_db, schedule={})
    tasks.configure(settings)
    worker = start_worker(env)
    try:
        from servicegraph.bootstrap import bootstrap

        services = bootstrap(settings)
        tasks.discover.delay()
        deadline = time.monotonic() + 90
        while len(devices(services)) < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(devices(services)) == 5
        services.close()
    finally:
        kill_group(worker, signal.SIGTERM)


@pytest.fixture()
def broker_db() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(BROKER)
    try:
        client.ping()
    except redis.ConnectionError:
        message = "no Redis on 127.0.0.1:6379"
        if os.environ.get("SG_REQUIRE_EXTERNAL") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    client.flushdb()
    yield BROKER
    client.flushdb()
