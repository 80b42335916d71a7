"""One snmpsim responder for the whole SNMP test session.

* 127.0.0.1: real recordings by community (``c3560``, ``arista``, ``linux``) and the
  synthetic ``acc1``/``acc1-rebooted`` (polling); SNMPv3 user ``sgtest`` (SHA + AES), the
  recording chosen by context name.
* 127.0.0.2-6: the five-device topology of ``tests/snmp/topology.py``, one device per
  loopback address (community ``public``), so that crawling by management address works.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.snmp.simulator import Simulator, V3User, recording
from tests.snmp.topology import DATA_DIR as TOPOLOGY_DIR

REAL = {
    "c3560": "network/switch/cisco-c3560",
    "arista": "cloud/arista-dcs-7150s-52-cl",
    "linux": "os/linux/slackware",
}
TOPOLOGY = ("core", "dist1", "dist2", "acc1", "acc2")
TOPOLOGY_HOSTS = {name: f"127.0.0.{i}" for i, name in enumerate(TOPOLOGY, start=2)}


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = Simulator(
        tmp_path_factory.mktemp("snmpsim"),
        hosts=("127.0.0.1", *TOPOLOGY_HOSTS.values()),
        v3=V3User(),
    )
    for community, name in REAL.items():
        sim.add_community(community, recording(name))
    for community in ("acc1", "acc1-rebooted"):
        sim.add_community(community, TOPOLOGY_DIR / f"{community}.snmprec")
    for index, name in enumerate(TOPOLOGY, start=1):
        sim.add_endpoint(index, TOPOLOGY_DIR / f"{name}.snmprec")
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="session")
def recordings(simulator: Simulator) -> dict[str, Path]:
    """The decompressed files the simulator serves, by community."""
    return {c: simulator.data / f"{c}.snmprec" for c in simulator.communities}
