"""A five-device network as snmpsim recordings: core, two distribution, two access switches.

snmpsim-data's real recordings are anonymised and do not point at each other, so the
topology tests use these. Each device has the system group, ENTITY-MIB chassis, ifTable and
ifXTable, ipAddrTable, and neighbour tables that exercise the different ways devices
describe links:

* core: LLDP towards dist1 (port ids are interface names), CDP towards dist2;
* dist1: LLDP with *local* port ids numbered apart from ifIndex (lldpLocPortTable maps them);
* dist2: no LLDP at all, only CDP (an FQDN as sysName);
* acc1: LLDP with MAC-address port ids towards dist1; CDP towards dist2 and, redundantly,
  dist1 (LLDP wins on that port);
* acc2: LLDP towards dist1 and towards a server that is never discovered (a placeholder).

Management addresses are 127.0.0.2-6, each device served on its own loopback address.
``acc1-rebooted`` is acc1 later: restarted (lower sysUpTime) with Gi0/2 down, for polling.

Regenerate the files with ``python -m tests.snmp.topology`` (a test checks they match).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "snmp" / "topology"


@dataclass
class Port:
    name: str  # ifName
    descr: str  # ifDescr
    index: int  # ifIndex
    mac: str
    oper: int = 1
    alias: str = ""
    lldp_num: int | None = None  # lldpLocPortNum (default: ifIndex)


@dataclass
class LldpNeighbour:
    port: str  # local ifName
    chassis: str  # MAC
    port_subtype: int
    port_id: str  # as the neighbour advertises it (MAC given as aa:bb:..)
    sys_name: str
    address: str | None


@dataclass
class CdpNeighbour:
    port: str
    device_id: str
    device_port: str
    address: str
    platform: str = "SG-SIM switch"


@dataclass
class Device:
    name: str
    address: str
    serial: str
    model: str
    chassis_mac: str | None  # None: no LLDP
    ports: list[Port]
    uptime: int = 123_456_789
    lldp_port_subtype: int = 5  # how this device names its own ports in LLDP
    lldp: list[LldpNeighbour] = field(default_factory=list)
    cdp: list[CdpNeighbour] = field(default_factory=list)

    def port(self, name: str) -> Port:
        return next(p for p in self.ports if p.name == name)


def _mac(base: int, n: int) -> str:
    return ":".join(f"{b:02x}" for b in (0x02, 0, 0, 0, base, n))


def _ports(
    base: int, specs: list[tuple[str, str, int]], *, lldp_offset: int | None = None
) -> list[Port]:
    return [
        Port(
            name,
            descr,
            index,
            _mac(base, i + 1),
            lldp_num=None if lldp_offset is None else i + lldp_offset,
        )
        for i, (name, descr, index) in enumerate(specs)
    ]


def devices() -> dict[str, Device]:
    core = Device(
        "core",
        "127.0.0.2",
        "SGCORE0001",
        "SG-9000",
        _mac(1, 0),
        _ports(1, [(f"Eth{i}", f"Ethernet{i}", i) for i in range(1, 5)] + [("Vl1", "Vlan1", 100)]),
    )
    dist1 = Device(
        "dist1",
        "127.0.0.3",
        "SGDIST0001",
        "SG-5000",
        _mac(2, 0),
        _ports(
            2,
            [
                ("Te1/1", "TenGigabitEthernet1/1", 1001),
                ("Te1/2", "TenGigabitEthernet1/2", 1002),
                ("Gi1/1", "GigabitEthernet1/1", 1011),
                ("Gi1/2", "GigabitEthernet1/2", 1012),
                ("Vl1", "Vlan1", 1100),
            ],
            lldp_offset=1,
        ),
        lldp_port_subtype=7,  # local: the port id is the ifIndex as text
    )
    dist2 = Device(
        "dist2.example.net",
        "127.0.0.4",
        "SGDIST0002",
        "SG-5000",
        None,
        _ports(
            3,
            [
                ("Te1/1", "TenGigabitEthernet1/1", 1001),
                ("Te1/2", "TenGigabitEthernet1/2", 1002),
                ("Gi1/1", "GigabitEthernet1/1", 1011),
                ("Gi1/2", "GigabitEthernet1/2", 1012),
                ("Vl1", "Vlan1", 1100),
            ],
        ),
    )
    access = {}
    for n, (name, address, serial) in enumerate(
        (("acc1", "127.0.0.5", "SGACC0001"), ("acc2", "127.0.0.6", "SGACC0002")), start=4
    ):
        ports = _ports(
            n,
            [(f"Gi0/{i}", f"GigabitEthernet0/{i}", 10100 + i) for i in (1, 2, 3, 4, 49, 50)]
            + [("Vl1", "Vlan1", 1)],
        )
        access[name] = Device(
            name, address, serial, "SG-1000", _mac(n, 0), ports, lldp_port_subtype=3
        )
    acc1, acc2 = access["acc1"], access["acc2"]
    acc2.port("Gi0/49").alias = "uplink to dist1"

    def lldp(a: Device, a_port: str, b: Device, b_port: str) -> None:
        """``a`` sees ``b`` on ``a_port``: b's chassis and b's port as b advertises it."""
        assert b.chassis_mac is not None
        port = b.port(b_port)
        if b.lldp_port_subtype == 3:
            port_id = port.mac
        elif b.lldp_port_subtype == 7:
            port_id = str(port.index)
        else:
            port_id = port.name
        a.lldp.append(
            LldpNeighbour(a_port, b.chassis_mac, b.lldp_port_subtype, port_id, b.name, b.address)
        )

    def cdp(a: Device, a_port: str, b: Device, b_port: str) -> None:
        a.cdp.append(CdpNeighbour(a_port, b.name, b.port(b_port).descr, b.address))

    lldp(core, "Eth1", dist1, "Te1/1")
    lldp(dist1, "Te1/1", core, "Eth1")
    cdp(core, "Eth2", dist2, "Te1/1")
    cdp(dist2, "Te1/1", core, "Eth2")
    cdp(dist2, "Te1/2", dist1, "Te1/2")
    lldp(dist1, "Gi1/1", acc1, "Gi0/49")
    lldp(acc1, "Gi0/49", dist1, "Gi1/1")
    lldp(dist1, "Gi1/2", acc2, "Gi0/49")
    lldp(acc2, "Gi0/49", dist1, "Gi1/2")
    cdp(acc1, "Gi0/49", dist1, "Gi1/1")  # also in LLDP: LLDP wins on that port
    cdp(acc1, "Gi0/50", dist2, "Gi1/1")
    cdp(dist2, "Gi1/1", acc1, "Gi0/50")
    cdp(dist2, "Gi1/2", acc2, "Gi0/50")
    acc2.lldp.append(
        LldpNeighbour("Gi0/1", "52:54:00:aa:bb:cc", 3, "52:54:00:aa:bb:cd", "srv-db1", "10.9.9.9")
    )
    return {d.name.split(".")[0]: d for d in (core, dist1, dist2, acc1, acc2)}


# (from device, from port) -- (to device, to port), undirected; the server is a placeholder
EXPECTED_LINKS = {
    frozenset({("core", "Eth1"), ("dist1", "Te1/1")}),
    frozenset({("core", "Eth2"), ("dist2", "Te1/1")}),
    frozenset({("dist1", "Te1/2"), ("dist2", "Te1/2")}),
    frozenset({("acc1", "Gi0/49"), ("dist1", "Gi1/1")}),
    frozenset({("acc2", "Gi0/49"), ("dist1", "Gi1/2")}),
    frozenset({("acc1", "Gi0/50"), ("dist2", "Gi1/1")}),
    frozenset({("acc2", "Gi0/50"), ("dist2", "Gi1/2")}),
    frozenset({("acc2", "Gi0/1"), ("srv-db1", None)}),
}


def _octets(text: str) -> str:
    return text.encode().hex()


def _mac_hex(mac: str) -> str:
    return mac.replace(":", "")


def _ip_hex(address: str) -> str:
    return "".join(f"{int(p):02x}" for p in address.split("."))


def snmprec(d: Device) -> str:
    rows: list[tuple[tuple[int, ...], str, str]] = []

    def put(oid: str, tag: str, value: object) -> None:
        rows.append((tuple(int(x) for x in oid.split(".")), tag, str(value)))

    put("1.3.6.1.2.1.1.1.0", "4", f"SG-SIM {d.model} switch software, version 1.0")
    put("1.3.6.1.2.1.1.2.0", "6", "1.3.6.1.4.1.8072.3.2.10")
    put("1.3.6.1.2.1.1.3.0", "67", d.uptime)
    put("1.3.6.1.2.1.1.4.0", "4", "noc@example.net")
    put("1.3.6.1.2.1.1.5.0", "4", d.name)
    put("1.3.6.1.2.1.1.6.0", "4", "lab rack 1")
    put("1.3.6.1.2.1.1.7.0", "2", 6)
    put("1.3.6.1.2.1.2.1.0", "2", len(d.ports))
    for p in d.ports:
        vlan = p.name.startswith("Vl")
        for column, tag, value in (
            (1, "2", p.index),
            (2, "4", p.descr),
            (3, "2", 53 if vlan else 6),
            (4, "2", 1500),
            (5, "66", 1_000_000_000),
            (6, "4x", _mac_hex(p.mac)),
            (7, "2", 1),
            (8, "2", p.oper),
            (10, "65", 1000 + p.index),
        ):
            put(f"1.3.6.1.2.1.2.2.1.{column}.{p.index}", tag, value)
        put(f"1.3.6.1.2.1.31.1.1.1.1.{p.index}", "4", p.name)
        put(f"1.3.6.1.2.1.31.1.1.1.15.{p.index}", "66", 1000)
        put(f"1.3.6.1.2.1.31.1.1.1.18.{p.index}", "4", p.alias)
    vlan = next(p for p in d.ports if p.name == "Vl1")
    a = d.address
    put(f"1.3.6.1.2.1.4.20.1.1.{a}", "64", a)
    put(f"1.3.6.1.2.1.4.20.1.2.{a}", "2", vlan.index)
    put(f"1.3.6.1.2.1.4.20.1.3.{a}", "64", "255.255.255.0")
    chassis = 1
    for column, tag, value in (
        (2, "4", f"{d.model} chassis"),
        (4, "2", 0),
        (5, "2", 3),
        (7, "4", "Chassis"),
        (8, "4", "A0"),
        (9, "4", "1.2.3"),
        (10, "4", "1.0"),
        (11, "4", d.serial),
        (12, "4", "SG-SIM"),
        (13, "4", d.model),
    ):
        put(f"1.3.6.1.2.1.47.1.1.1.1.{column}.{chassis}", tag, value)
    for n, p in enumerate(d.ports, start=2):  # port entities: many rows, none a chassis
        put(f"1.3.6.1.2.1.47.1.1.1.1.2.{n}", "4", p.descr)
        put(f"1.3.6.1.2.1.47.1.1.1.1.4.{n}", "2", chassis)
        put(f"1.3.6.1.2.1.47.1.1.1.1.5.{n}", "2", 10)
        put(f"1.3.6.1.2.1.47.1.1.1.1.11.{n}", "4", "")
        put(f"1.3.6.1.2.1.47.1.1.1.1.13.{n}", "4", "")
    if d.chassis_mac is not None:
        put("1.0.8802.1.1.2.1.3.1.0", "2", 4)
        put("1.0.8802.1.1.2.1.3.2.0", "4x", _mac_hex(d.chassis_mac))
        put("1.0.8802.1.1.2.1.3.3.0", "4", d.name)
        for p in d.ports:
            num = p.lldp_num or p.index
            if d.lldp_port_subtype == 3:
                put(f"1.0.8802.1.1.2.1.3.7.1.2.{num}", "2", 3)
                put(f"1.0.8802.1.1.2.1.3.7.1.3.{num}", "4x", _mac_hex(p.mac))
            elif d.lldp_port_subtype == 7:
                put(f"1.0.8802.1.1.2.1.3.7.1.2.{num}", "2", 7)
                put(f"1.0.8802.1.1.2.1.3.7.1.3.{num}", "4", str(p.index))
            else:
                put(f"1.0.8802.1.1.2.1.3.7.1.2.{num}", "2", 5)
                put(f"1.0.8802.1.1.2.1.3.7.1.3.{num}", "4", p.name)
            put(f"1.0.8802.1.1.2.1.3.7.1.4.{num}", "4", p.descr)
        for n in d.lldp:
            local = d.port(n.port)
            idx = f"0.{local.lldp_num or local.index}.1"
            put(f"1.0.8802.1.1.2.1.4.1.1.4.{idx}", "2", 4)
            put(f"1.0.8802.1.1.2.1.4.1.1.5.{idx}", "4x", _mac_hex(n.chassis))
            put(f"1.0.8802.1.1.2.1.4.1.1.6.{idx}", "2", n.port_subtype)
            if n.port_subtype == 3:
                put(f"1.0.8802.1.1.2.1.4.1.1.7.{idx}", "4x", _mac_hex(n.port_id))
            else:
                put(f"1.0.8802.1.1.2.1.4.1.1.7.{idx}", "4", n.port_id)
            put(f"1.0.8802.1.1.2.1.4.1.1.8.{idx}", "4", "")
            put(f"1.0.8802.1.1.2.1.4.1.1.9.{idx}", "4", n.sys_name)
            put(f"1.0.8802.1.1.2.1.4.1.1.10.{idx}", "4", "SG-SIM neighbour")
            if n.address:
                put(f"1.0.8802.1.1.2.1.4.2.1.3.{idx}.1.4.{n.address}", "2", 2)
    for i, n in enumerate(d.cdp, start=1):
        idx = f"{d.port(n.port).index}.{i}"
        put(f"1.3.6.1.4.1.9.9.23.1.2.1.1.3.{idx}", "2", 1)
        put(f"1.3.6.1.4.1.9.9.23.1.2.1.1.4.{idx}", "4x", _ip_hex(n.address))
        put(f"1.3.6.1.4.1.9.9.23.1.2.1.1.6.{idx}", "4", n.device_id)
        put(f"1.3.6.1.4.1.9.9.23.1.2.1.1.7.{idx}", "4", n.device_port)
        put(f"1.3.6.1.4.1.9.9.23.1.2.1.1.8.{idx}", "4", n.platform)
    rows.sort(key=lambda r: r[0])
    return "".join(f"{'.'.join(map(str, oid))}|{tag}|{value}\n" for oid, tag, value in rows)


def files() -> dict[str, str]:
    """File name -> content of every recording of the topology."""
    result = {f"{name}.snmprec": snmprec(d) for name, d in devices().items()}
    later = devices()["acc1"]
    later.uptime = 4_200  # 42 s after a restart
    later.port("Gi0/2").oper = 2
    result["acc1-rebooted.snmprec"] = snmprec(later)
    return result


def main() -> None:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for name, content in files().items():
        (DATA_DIR / name).write_text(content)
        sys.stdout.write(f"wrote {DATA_DIR / name}\n")


if __name__ == "__main__":
    main()
