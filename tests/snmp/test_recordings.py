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


def test_snmpv1_discovery_uses_getnext(
    simulator: Simulator, recordings: dict[str, Path], services: Services
) -> None:
    want = expected(recordings["c3560"])
    target = Target("127.0.0.1", simulator.port, credential=community("c3560", version="1"))

    report = discover(services, [target])

    (result,) = report.results
    assert result.outcome == "ok", result.error
    device = find(services, "serial_number", want.serial or "")
    assert [i.attributes["if_name"] for i in interfaces_of(services, device.id)] == (
        want.interface_names
    )


def test_a_cidr_sweep_finds_the_agents_in_range(simulator: Simulator, services: Services) -> None:
    from servicegraph.collectors.snmp.credentials import CredentialSet
    from servicegraph.collectors.snmp.session import SessionOptions
    from servicegraph.collectors.snmp.targets import parse_targets

    targets = parse_targets(["127.0.0.0/28"], default_port=simulator.port)
    assert [t.origin for t in targets] == ["sweep"] * 14

    report = discover(
        services,
        targets,
        credentials=CredentialSet(default=community("public")),
        session=SessionOptions(timeout=0.3, retries=0),
        complete=False,
    )

    outcomes = {r.target.host: r.outcome for r in report.results}
    # .1 serves a one-line "public" recording, .2-.6 the topology; nothing listens above
    assert outcomes == {f"127.0.0.{i}": "ok" if i < 7 else "timeout" for i in range(1, 15)}
    assert report.devices == 6
