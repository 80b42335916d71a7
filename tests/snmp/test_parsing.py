"""Parsers and the transform on recorded input, without a network: an in-memory agent
answers from the .snmprec files (real recordings and the synthetic topology)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from servicegraph.collectors.snmp import mibs, transform
from servicegraph.collectors.snmp.mibs import DeviceSnapshot
from tests.snmp.helpers import expected
from tests.snmp.recorded import snapshot
from tests.snmp.simulator import copy_recording, read_snmprec, recording, snmprec_text
from tests.snmp.topology import DATA_DIR, EXPECTED_LINKS, files

NOW = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("recordings")
    names = {
        "c3560": "network/switch/cisco-c3560",
        "arista": "cloud/arista-dcs-7150s-52-cl",
        "linux": "os/linux/slackware",
    }
    return {k: copy_recording(recording(v), root / f"{k}.snmprec") for k, v in names.items()}


def snap(path: Path, **kw: object) -> DeviceSnapshot:
    return asyncio.run(snapshot(path, **kw))  # type: ignore[arg-type]


def test_the_committed_topology_files_are_what_the_generator_writes() -> None:
    for name, content in files().items():
        assert (DATA_DIR / name).read_text() == content, f"regenerate {name}"


@pytest.mark.parametrize("name", ["c3560", "arista"])
def test_a_real_switch_parses_as_recorded(name: str, real: dict[str, Path]) -> None:
    want = expected(real[name])
    s = snap(real[name])
    assert s.missing == ()
    assert s.system.name == want.sys_name
    assert s.chassis is not None
    assert (s.chassis.serial, s.chassis.model) == (want.serial, want.model)
    assert [i.name for i in s.interfaces] == want.interface_names
    rec = read_snmprec(real[name])
    assert s.system.object_id == rec[mibs.SYS_OBJECT_ID][1]
    for i in s.interfaces:
        oper = rec.get((*mibs.IF_OPER_STATUS, i.index))
        if oper is not None:
            assert i.oper_status == mibs.IF_STATUS[int(oper[1])]


def test_cisco_cdp_neighbours_carry_names_ports_and_addresses(real: dict[str, Path]) -> None:
    s = snap(real["c3560"])
    rec = read_snmprec(real["c3560"])
    device_ids = {
        oid[-2:]: snmprec_text(v)
        for oid, v in rec.items()
        if oid[: len(mibs.CDP_CACHE_DEVICE_ID)] == mibs.CDP_CACHE_DEVICE_ID
    }
    assert [n.protocol for n in s.neighbours] == ["cdp"] * len(device_ids)
    assert sorted(n.sys_name or "" for n in s.neighbours) == sorted(device_ids.values())
    assert all(n.local_if_index is not None and n.management_addresses for n in s.neighbours)


def test_arista_lldp_neighbours_map_to_local_interfaces(real: dict[str, Path]) -> None:
    s = snap(real["arista"])
    assert [(n.local_port, n.port_id, n.sys_name) for n in s.neighbours] == [
        ("Ethernet47", "Ethernet23", "ZJ-BP-Bak-Arista"),
        ("Ethernet48", "Ethernet24", "ZJ-BP-Bak-Arista"),
    ]
    assert {n.chassis_id for n in s.neighbours} == {"44:4c:a8:31:3e:df"}
    assert s.neighbours[0].management_addresses == ("172.16.229.22",)
    assert s.lldp_chassis_id == "00:1c:73:b4:fd:69"


def test_a_linux_host_is_a_server_with_cpus_and_memory(real: dict[str, Path]) -> None:
    rec = read_snmprec(real["linux"])
    cpus = sum(
        1
        for oid, (_, value) in rec.items()
        if oid[: len(mibs.HR_DEVICE_TYPE)] == mibs.HR_DEVICE_TYPE
        and value == ".".join(map(str, mibs.HR_DEVICE_PROCESSOR))
    )
    memory_kb = int(rec[mibs.HR_MEMORY_SIZE][1])
    s = snap(real["linux"])
    assert s.is_server
    p = transform.plan([s])
    (device,) = p.devices
    assert device.observation.ci_class == "server"
    assert device.observation.attributes["cpu_count"] == cpus
    assert device.observation.attributes["memory_mb"] == memory_kb // 1024


def _topology(depths: dict[str, int] | None = None) -> list[DeviceSnapshot]:
    hosts = {"core": 2, "dist1": 3, "dist2": 4, "acc1": 5, "acc2": 6}
    return [
        snap(DATA_DIR / f"{n}.snmprec", address=f"127.0.0.{i}", depth=(depths or {}).get(n, 0))
        for n, i in hosts.items()
    ]


def _links(p: transform.Plan) -> set[frozenset[tuple[str, str | None]]]:
    def end(e: transform.End) -> tuple[str, str | None]:
        d = p.devices[e.device]
        name = (d.observation.name or "").split(".")[0]
        if e.if_index is None or d.snapshot is None:
            return (name, None)
        return (name, next(i.name for i in d.snapshot.interfaces if i.index == e.if_index))

    return {frozenset((end(link.from_end), end(link.to_end))) for link in p.links}


def test_the_topology_plan_has_each_link_once() -> None:
    p = transform.plan(_topology())
    assert (p.discovered, p.placeholders) == (5, 1)
    assert _links(p) == EXPECTED_LINKS
    assert p.warnings == []


def test_links_leave_from_the_end_further_from_the_targets() -> None:
    depths = {"core": 0, "dist1": 1, "dist2": 1, "acc1": 2, "acc2": 2}
    p = transform.plan(_topology(depths))
    names = {
        (
            (p.devices[link.from_end.device].observation.name or "").split(".")[0],
            (p.devices[link.to_end.device].observation.name or "").split(".")[0],
        )
        for link in p.links
    }
    assert ("dist1", "core") in names and ("dist2", "core") in names
    assert {("acc1", "dist1"), ("acc1", "dist2"), ("acc2", "dist1"), ("acc2", "dist2")} <= names
    assert ("srv-db1", "acc2") in names  # a placeholder is one step further out


def test_a_device_reached_at_two_addresses_is_one_device() -> None:
    core = _topology()[0]
    again = DeviceSnapshot(**{**core.__dict__, "address": "10.0.0.2", "depth": 1})
    p = transform.plan([core, again])
    assert p.discovered == 1
    assert "same device" in p.warnings[0]


def test_identifiers_several_devices_claim_identify_none_of_them() -> None:
    a, b, *_ = _topology()
    clash = DeviceSnapshot(**{**b.__dict__, "system": mibs.SystemInfo(name=a.system.name)})
    p = transform.plan([a, clash])
    for d in p.devices[:2]:
        assert "hostname" not in d.observation.identifiers
    assert any("hostname core is claimed" in w for w in p.warnings)


def test_a_part_that_could_not_be_read_is_not_reported_empty() -> None:
    core = _topology()[0]
    partial = DeviceSnapshot(**{**core.__dict__, "chassis": None, "missing": ("entity",)})
    attributes = transform.plan([partial]).devices[0].observation.attributes
    assert "model" not in attributes and "os_version" not in attributes
    full = transform.plan([core]).devices[0].observation.attributes
    assert full["model"] == "SG-9000"


def test_components_of_a_device_that_was_not_applied_are_left_out() -> None:
    p = transform.plan(_topology())
    ids = [f"ci-{i}" for i in range(len(p.devices))]
    ids[1] = None  # dist1: a conflict
    components = transform.component_batch(p, ids, run_id="r", observed_at=NOW, complete=True)
    keys = {obs.key for obs in components.batch.cis}
    assert not any(k and k.startswith("ci-1/") for k in keys)
    assert any("skipped" in w for w in components.warnings)
    parts = [r for r in components.batch.relationships if r.type == "PART_OF"]
    assert len(parts) == len(components.batch.cis)


def test_interface_names_used_twice_get_their_index() -> None:
    names = transform._interface_names(
        [mibs.Interface(1, "eth0"), mibs.Interface(2, "eth0"), mibs.Interface(3, "lo")]
    )
    assert names == {1: "eth0 #1", 2: "eth0 #2", 3: "lo"}


@pytest.mark.parametrize(
    ("subtype", "port_id", "descr", "index"),
    [
        (mibs.PORT_NAME, "Gi0/2", None, 2),
        (mibs.PORT_NAME, "gigabitethernet0/2", None, 2),  # ifDescr, any case
        (mibs.PORT_LOCAL, "3", None, 3),  # a local id that is the ifIndex
        (mibs.PORT_MAC, "02:00:00:00:00:02", None, 2),
        (mibs.PORT_ALIAS, "uplink", None, 3),
        (mibs.PORT_LOCAL, "port-x", "GigabitEthernet0/3", 3),  # the description settles it
        (mibs.PORT_NAME, "nothing", None, None),
    ],
)
def test_lldp_port_ids_match_interfaces(
    subtype: int, port_id: str, descr: str | None, index: int | None
) -> None:
    interfaces = [
        mibs.Interface(2, "Gi0/2", descr="GigabitEthernet0/2", mac="02:00:00:00:00:02"),
        mibs.Interface(3, "Gi0/3", descr="GigabitEthernet0/3", alias="uplink"),
    ]
    found = mibs.match_port(interfaces, subtype, port_id, descr)
    assert (found.index if found else None) == index


def test_value_helpers() -> None:
    assert mibs.text(b"sw1\x00\x00 ") == "sw1"
    assert mibs.text(b"\xe9t\xe9") == "\xe9t\xe9"  # Latin-1 when not UTF-8
    assert mibs.text(b"") is None
    assert mibs.mac(b"\x00\x1c\x73\xb4\xfd\x69") == "00:1c:73:b4:fd:69"
    assert mibs.mac(b"\x00" * 6) is None
    assert mibs.lldp_chassis_id(4, b"\x02\x00\x00\x00\x01\x00") == "02:00:00:00:01:00"
    assert mibs.lldp_chassis_id(5, b"\x01\x0a\x00\x00\x01") == "10.0.0.1"
    assert mibs.lldp_port_id(3, b"\x02\x00\x00\x00\x01\x01") == "02:00:00:00:01:01"
    assert mibs.lldp_port_id(5, b"Ethernet1") == "Ethernet1"
    assert mibs.split_cdp_device_id("n5k-1(FOX1234ABCD)") == ("n5k-1", "FOX1234ABCD")
    assert mibs.split_cdp_device_id("sw2.example.net") == ("sw2.example.net", None)
    assert mibs.SystemInfo(object_id="1.3.6.1.4.1.9.1.617").vendor == "Cisco"
    assert mibs.SystemInfo(object_id="1.3.6.1.4.1.99999.1").vendor == "enterprise 99999"
