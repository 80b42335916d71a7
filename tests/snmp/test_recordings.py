"""Discovery of real device recordings (snmpsim-data) served by snmpsim: what lands in the
graph must equal what the recording holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from servicegraph.bootstrap import Services
from servicegraph.collectors.snmp.targets import Target
from tests.snmp.helpers import community, discover, expected, find, interfaces_of
from tests.snmp.simulator import Simulator


@pytest.mark.parametrize("name", ["c3560", "arista"])
def test_real_switch_is_discovered_as_recorded(
    name: str, simulator: Simulator, recordings: dict[str, Path], services: Services
) -> None:
    want = expected(recordings[name])
    assert want.serial and want.model and want.interface_names  # the recording has them

    report = discover(services, [Target("127.0.0.1", simulator.port, credential=community(name))])

    (result,) = report.results
    assert result.outcome == "ok", result.error
    device = find(services, "serial_number", want.serial)
    assert device.ci_class == "network_device"
    assert device.name == want.sys_name
    assert device.attributes["model"] == want.model
    interfaces = interfaces_of(services, device.id)
    assert len(interfaces) == len(want.interface_names)
    assert [i.attributes["if_name"] for i in interfaces] == want.interface_names


def test_devices_missing_from_complete_runs_become_stale(
    simulator: Simulator, make_services
) -> None:
    services = make_services(stale_after_runs=2)
    both = [
        Target("127.0.0.1", simulator.port, credential=community(name))
        for name in ("c3560", "arista")
    ]
    discover(services, both)
    c3560 = find(services, "hostname", "DUMSYS-04")
    assert not c3560.stale

    for _ in range(2):  # the c3560 is gone, and nothing else saw it
        discover(services, both[1:])

    assert services.store.get_cis([c3560.id])[c3560.id].stale
    assert all(i.stale for i in interfaces_of(services, c3560.id))
    assert not find(services, "hostname", "DUMSYS-87").stale

    discover(services, both)  # back: fresh again, never deleted
    assert not services.store.get_cis([c3560.id])[c3560.id].stale
