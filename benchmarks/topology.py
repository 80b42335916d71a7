"""A seeded, size-parameterised data-centre topology for benchmarks.

The estate is built rack by rack until the requested number of CIs is reached:

- sites (``location`` kind=site), each with a network rack, two core switches and
  ``blocks_per_site`` blocks;
- a block (pod) has a pair of distribution switches, each dual-homed to both cores, and
  ``racks_per_block`` racks;
- a rack (``location`` kind=rack, ``LOCATED_IN`` its site) has two top-of-rack access
  switches, each dual-homed to the block's distribution pair, except a small seeded
  fraction that are single-homed (so some distribution failures really take things down);
- servers in the rack are dual- or single-homed to the rack's access switches; some are
  hypervisors, standalone or in a hypervisor cluster (``min_healthy`` = size - 1), hosting
  VMs; some are physical database hosts;
- applications and databases run on VMs and servers, organised in stacks behind business
  services (service -> frontends -> backends -> database); some backends are app clusters
  (``min_healthy`` 2 of 3), backends call other stacks' backends, and every block runs
  shared platform clusters (auth, message queue, cache, ...; 2 of 3 members, one member per
  rack) that applications depend on. Those dependencies are what brings the estate to
  about three relationships per CI, as in a real service map.

Physical links appear twice, the way LLDP-based discovery reports them: a ``CONNECTED_TO``
between the two interfaces (each ``PART_OF`` its device) and a device-level
``CONNECTED_TO`` from the downstream device to the upstream one. Only the device-level
links carry redundancy groups, so they are what decides whether a device survives; the
interface-level links make a dead switch take down the far ends of its links, which is
what a link-down alarm would report.

Every identifier (serial numbers, MACs, host names, FQDNs, management IPs, UUIDs) is
unique, and the whole batch is a pure function of ``(cis, seed, shape)``.

Usage as a script writes an import file::

    python -m benchmarks.topology --cis 100000 --seed 1 -o benchmarks/out/topo-100k.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import random
import sys
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from servicegraph.cmdb.observation import (
    CIObservation,
    CIRef,
    ObservationBatch,
    RelationshipObservation,
)

SOURCE = "import"
DOMAIN = "dc.example.net"
# A fixed observation time keeps the batch (and so its history) identical for a seed.
OBSERVED_AT = dt.datetime(2025, 1, 6, 8, 0, tzinfo=dt.UTC)

GBPS = 1_000_000_000
UPLINK = {"redundancy_group": "uplink"}


@dataclass(frozen=True)
class Shape:
    """The knobs of the estate; the defaults give about three relationships per CI."""

    blocks_per_site: int = 6
    racks_per_block: int = 4
    servers_per_rack: int = 16
    single_homed_access: float = 0.06  # share of access switches with a single uplink
    dual_homed_servers: float = 0.6
    hypervisors: float = 0.35  # share of servers that are hypervisors
    database_hosts: float = 0.1  # share of servers that are physical database hosts
    clustered_hypervisors: float = 0.5  # share of a rack's hypervisors in its cluster
    vms_per_hypervisor: tuple[int, int] = (8, 14)
    app_cluster_share: float = 0.25  # share of stacks whose backend is an app cluster
    app_cluster_size: int = 3
    app_cluster_min_healthy: int = 2
    platform_per_backend: int = 6  # platform clusters each backend uses
    platform_per_frontend: int = 4
    cross_stack_calls: int = 3  # clustered backends of other stacks each backend calls


@dataclass
class Topology:
    """The batch plus what benchmarks need to know about it."""

    batch: ObservationBatch
    seed: int
    shape: Shape
    distribution_keys: list[str] = field(default_factory=list)
    # distribution switch key -> the single-homed access switches whose only uplink it is
    single_homed_below: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ci_count(self) -> int:
        return len(self.batch.cis)

    @property
    def relationship_count(self) -> int:
        return len(self.batch.relationships)


def distribution_switch_key(site: int, block: int, side: str) -> str:
    """The CI key of distribution switch ``side`` ("a" or "b") of ``block`` at ``site``."""
    if side not in ("a", "b"):
        raise ValueError("side is 'a' or 'b'")
    return f"{_site_name(site)}-b{block:02d}-dist-{side}"


def _site_name(site: int) -> str:
    return f"s{site:03d}"


# -- hardware catalogue ---------------------------------------------------------------------


class _Model(NamedTuple):
    vendor: str
    model: str
    serial_prefix: str
    oui: str
    port_name: str  # str.format pattern taking the port number
    os_version: str


_CORE_MODELS = (
    _Model("Cisco", "N9K-C9508", "FOX", "00:1b:54", "Ethernet1/{}", "10.3(4a)"),
    _Model("Arista", "DCS-7508R", "JPE", "28:99:3a", "Ethernet{}/1", "4.31.2F"),
)
_DIST_MODELS = (
    _Model("Cisco", "N9K-C93180YC-FX", "FDO", "00:1b:54", "Ethernet1/{}", "10.3(4a)"),
    _Model("Arista", "DCS-7280SR-48C6", "JPE", "28:99:3a", "Ethernet{}", "4.31.2F"),
)
_ACCESS_MODELS = (
    _Model("Cisco", "C9300-48P", "FOC", "00:1b:54", "GigabitEthernet1/0/{}", "17.9.4a"),
    _Model("Arista", "DCS-7050SX3-48YC8", "JPE", "28:99:3a", "Ethernet{}", "4.31.2F"),
    _Model("Juniper", "EX4300-48T", "PE3", "3c:61:04", "xe-0/0/{}", "21.4R3-S5"),
)
_SERVER_MODELS = (
    _Model("Dell", "PowerEdge R750", "CN", "f8:bc:12", "eno{}", ""),
    _Model("HPE", "ProLiant DL380 Gen10", "CZJ", "94:18:82", "eno{}", ""),
    _Model("Lenovo", "ThinkSystem SR650", "J30", "08:94:ef", "eno{}", ""),
)
_OS = (("Ubuntu", "22.04"), ("RHEL", "9.3"), ("Debian", "12"), ("Windows Server", "2022"))
_DB_ENGINES = (("postgresql", "16.2", 5432), ("mysql", "8.0.36", 3306), ("oracle", "19c", 1521))
_APP_KINDS = ("api", "web", "worker", "gateway", "billing", "search", "reporting", "orders")
_PLATFORM = (
    ("auth", "keycloak"),
    ("mq", "rabbitmq"),
    ("cache", "redis"),
    ("search", "opensearch"),
    ("logs", "loki"),
    ("secrets", "vault"),
)
_CITIES = ("Lyon", "Frankfurt", "Dublin", "Madrid", "Milan", "Warsaw", "Vienna", "Oslo")

_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SERIAL_SPACE = 36**8
# Multiplying by a number coprime to 36 permutes the serial space: unique yet scattered.
_SERIAL_STRIDE = 1_000_000_007


class _Device(NamedTuple):
    key: str
    model: _Model
    serial: str


# -- the builder ----------------------------------------------------------------------------


class _Builder:
    """Accumulates observations and owns the counters that keep identifiers unique."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.cis: list[CIObservation] = []
        self.rels: list[RelationshipObservation] = []
        self._serial_offset = self.rng.randrange(_SERIAL_SPACE)
        self._serials = 0
        self._macs: Counter[str] = Counter()
        self._mgmt_ips = 0
        self._workload_ips = 0
        self._ports: Counter[str] = Counter()

    # identifiers

    def serial(self, prefix: str) -> str:
        n = (self._serials * _SERIAL_STRIDE + self._serial_offset) % _SERIAL_SPACE
        self._serials += 1
        digits = []
        for _ in range(8):
            n, d = divmod(n, 36)
            digits.append(_BASE36[d])
        return prefix + "".join(reversed(digits))

    def mac(self, oui: str) -> str:
        n = self._macs[oui]
        if n >= 1 << 24:
            raise OverflowError(f"more than 2^24 MAC addresses under OUI {oui}")
        self._macs[oui] = n + 1
        return f"{oui}:{n >> 16 & 0xFF:02x}:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"

    def management_ip(self) -> str:
        # Management in 10.0.0.0/9, workloads in 10.128.0.0/9: no address is used twice.
        self._mgmt_ips += 1
        return str(ipaddress.IPv4Address(0x0A000000 + self._mgmt_ips))

    def workload_ip(self) -> str:
        self._workload_ips += 1
        return str(ipaddress.IPv4Address(0x0A800000 + self._workload_ips))

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # records

    def ci(
        self,
        key: str,
        ci_class: str,
        name: str,
        identifiers: Mapping[str, str] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> str:
        self.cis.append(
            CIObservation(
                ci_class=ci_class,
                name=name,
                identifiers=dict(identifiers or {}),
                attributes=dict(attributes or {}),
                key=key,
            )
        )
        return key

    def rel(
        self,
        from_key: str,
        rel_type: str,
        to_key: str,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self.rels.append(
            RelationshipObservation(
                rel_type, CIRef(key=from_key), CIRef(key=to_key), dict(attributes or {})
            )
        )

    # devices and links

    def switch(self, key: str, role: str, model: _Model, rack: str) -> _Device:
        mgmt = self.management_ip()
        serial = self.serial(model.serial_prefix)
        self.ci(
            key,
            "network_device",
            key,
            {
                "serial_number": serial,
                "hostname": key,
                "fqdn": f"{key}.{DOMAIN}",
                "management_ip": mgmt,
            },
            {
                "vendor": model.vendor,
                "model": model.model,
                "role": role,
                "os_version": model.os_version,
                "management_ip": mgmt,
                "sys_location": rack,
            },
        )
        self.rel(key, "LOCATED_IN", rack)
        return _Device(key, model, serial)

    def interface(self, device: _Device, speed: int) -> str:
        port = self._ports[device.key] + 1
        self._ports[device.key] = port
        if_name = device.model.port_name.format(port)
        key = f"{device.key}/{if_name}"
        self.ci(
            key,
            "interface",
            f"{device.key} {if_name}",
            {"mac": self.mac(device.model.oui), "component_key": f"{device.serial}/{if_name}"},
            {
                "if_index": port,
                "if_name": if_name,
                "if_type": "ethernetCsmacd",
                "speed_bps": speed,
                "mtu": 9216,
                "admin_status": "up",
                "oper_status": "up",
            },
        )
        self.rel(key, "PART_OF", device.key)
        return key

    def link(
        self, down: _Device, up: _Device, speed: int, attributes: Mapping[str, Any] | None = None
    ) -> None:
        """A physical link from ``down`` to its upstream device ``up``: the interface pair
        as LLDP reports it, and the device-level uplink that carries redundancy."""
        down_if = self.interface(down, speed)
        up_if = self.interface(up, speed)
        self.rel(down_if, "CONNECTED_TO", up_if)
        self.rel(down.key, "CONNECTED_TO", up.key, attributes)


# -- the estate -----------------------------------------------------------------------------


@dataclass
class _Site:
    index: int
    key: str
    network_rack: str
    cores: list[_Device]
    vendor: int  # index into the core / distribution catalogues


@dataclass
class _Block:
    name: str
    dists: list[_Device]
    platform: list[str]  # shared platform clusters (auth, mq, ...)
    racks: int = 0
    # clustered backends other stacks may call; only redundant ones, so that one failed
    # VM cannot cascade through every stack of the block
    shared_backends: list[str] = field(default_factory=list)


class _Estate:
    """Adds racks one at a time, opening a new block and site when the last one is full."""

    def __init__(self, builder: _Builder, shape: Shape) -> None:
        self.b = builder
        self.shape = shape
        self.site: _Site | None = None
        self.block: _Block | None = None
        self.sites = 0
        self.blocks_in_site = 0
        self.stacks = 0
        self.distribution_keys: list[str] = []
        self.single_homed_below: dict[str, list[str]] = {}

    # sites and blocks

    def _new_site(self) -> _Site:
        b = self.b
        name = _site_name(self.sites)
        site = b.ci(
            name,
            "location",
            f"Site {name}",
            attributes={"kind": "site", "city": b.rng.choice(_CITIES)},
        )
        net_rack = b.ci(
            f"{name}-netrack",
            "location",
            f"{name} network rack",
            attributes={"kind": "rack", "rack_units": 47},
        )
        b.rel(net_rack, "LOCATED_IN", site)
        vendor = b.rng.randrange(len(_CORE_MODELS))
        cores = [
            b.switch(f"{name}-core-{side}", "core", _CORE_MODELS[vendor], net_rack) for side in "ab"
        ]
        self.sites += 1
        self.blocks_in_site = 0
        return _Site(self.sites - 1, site, net_rack, cores, vendor)

    def _new_block(self) -> _Block:
        b = self.b
        if self.site is None or self.blocks_in_site >= self.shape.blocks_per_site:
            self.site = self._new_site()
        site, index = self.site, self.blocks_in_site
        self.blocks_in_site += 1
        model = _DIST_MODELS[site.vendor]
        dists = []
        for side in "ab":
            key = distribution_switch_key(site.index, index, side)
            dist = b.switch(key, "distribution", model, site.network_rack)
            for core in site.cores:
                b.link(dist, core, 400 * GBPS, UPLINK)
            dists.append(dist)
            self.distribution_keys.append(key)
        name = f"{_site_name(site.index)}-b{index:02d}"
        platform = []
        for kind, product in _PLATFORM:
            platform.append(
                b.ci(
                    f"{name}-{kind}",
                    "cluster",
                    f"{name} {kind} ({product})",
                    attributes={
                        "cluster_type": product,
                        "min_healthy": self.shape.app_cluster_min_healthy,
                    },
                )
            )
        return _Block(name, dists, platform)

    # racks

    def rack(self) -> None:
        if self.block is None or self.block.racks >= self.shape.racks_per_block:
            self.block = self._new_block()
        assert self.site is not None
        b, block = self.b, self.block
        name = f"{block.name}-r{block.racks:02d}"
        rack_index = block.racks
        block.racks += 1
        rack = b.ci(name, "location", f"rack {name}", attributes={"kind": "rack", "rack_units": 42})
        b.rel(rack, "LOCATED_IN", self.site.key)
        tors = [self._access_switch(f"{name}-acc-{side}", rack, block) for side in "ab"]
        servers = [
            self._server(f"{name}-srv{i:02d}", rack, tors, position=2 * i + 1)
            for i in range(self.shape.servers_per_rack)
        ]
        vms, db_hosts = self._compute(name, rack, servers)
        b.rng.shuffle(vms)
        self._platform_members(block, rack_index, vms)
        while vms:
            self._stack(name, block, vms, db_hosts)

    def _access_switch(self, key: str, rack: str, block: _Block) -> _Device:
        b = self.b
        tor = b.switch(key, "access", b.rng.choice(_ACCESS_MODELS), rack)
        if b.rng.random() < self.shape.single_homed_access:
            dist = b.rng.choice(block.dists)
            b.link(tor, dist, 100 * GBPS)  # no redundancy group: the one uplink is required
            self.single_homed_below.setdefault(dist.key, []).append(key)
        else:
            for dist in block.dists:
                b.link(tor, dist, 100 * GBPS, UPLINK)
        return tor

    def _server(self, key: str, rack: str, tors: list[_Device], position: int) -> _Device:
        b = self.b
        model = b.rng.choice(_SERVER_MODELS)
        mgmt = b.management_ip()
        serial = b.serial(model.serial_prefix)
        os_name, os_version = b.rng.choice(_OS)
        b.ci(
            key,
            "server",
            key,
            {
                "serial_number": serial,
                "hostname": key,
                "fqdn": f"{key}.{DOMAIN}",
                "management_ip": mgmt,
            },
            {
                "vendor": model.vendor,
                "model": model.model,
                "os": os_name,
                "os_version": os_version,
                "cpu_count": b.rng.choice((32, 48, 64, 96)),
                "memory_mb": b.rng.choice((256, 384, 512, 768)) * 1024,
                "management_ip": mgmt,
                "rack_position": position,
            },
        )
        b.rel(key, "LOCATED_IN", rack)
        server = _Device(key, model, serial)
        if b.rng.random() < self.shape.dual_homed_servers:
            for tor in tors:
                b.link(server, tor, 25 * GBPS, UPLINK)
        else:
            b.link(server, b.rng.choice(tors), 25 * GBPS)
        return server

    # workloads

    def _compute(
        self, rack_name: str, rack: str, servers: list[_Device]
    ) -> tuple[list[str], list[str]]:
        """Make some servers hypervisors (part of them in the rack's cluster) hosting VMs,
        some database hosts. Returns the VM keys and the database host keys."""
        b, shape = self.b, self.shape
        hypervisors: list[str] = []
        db_hosts: list[str] = []
        for server in servers:
            roll = b.rng.random()
            if roll < shape.hypervisors:
                hypervisors.append(server.key)
            elif roll < shape.hypervisors + shape.database_hosts:
                db_hosts.append(server.key)
        clustered = hypervisors[: round(len(hypervisors) * shape.clustered_hypervisors)]
        placements = hypervisors[len(clustered) :]
        if len(clustered) >= 2:
            cluster = b.ci(
                f"{rack_name}-vcl",
                "cluster",
                f"{rack_name} vSphere cluster",
                attributes={"cluster_type": "vsphere", "min_healthy": len(clustered) - 1},
            )
            b.rel(cluster, "LOCATED_IN", rack)
            for host in clustered:
                b.rel(host, "MEMBER_OF", cluster)
            # the cluster runs as many VMs as its members would on their own
            placements += [cluster] * len(clustered)
        else:
            placements += clustered
        low, high = shape.vms_per_hypervisor
        vms = [self._vm(host) for host in placements for _ in range(b.rng.randint(low, high))]
        return vms, db_hosts

    def _vm(self, host: str) -> str:
        b = self.b
        key = f"vm{len(b.cis):07d}"  # the position is unique and stable for a seed
        os_name, os_version = b.rng.choice(_OS)
        b.ci(
            key,
            "virtual_machine",
            key,
            {"uuid": b.uuid(), "fqdn": f"{key}.{DOMAIN}"},
            {
                "os": os_name,
                "os_version": os_version,
                "cpu_count": b.rng.choice((2, 4, 8, 16)),
                "memory_mb": b.rng.choice((4, 8, 16, 32, 64)) * 1024,
                "hypervisor_type": "esxi",
                "ip_addresses": [b.workload_ip()],
            },
        )
        b.rel(key, "HOSTED_ON", host)
        return key

    def _platform_members(self, block: _Block, rack_index: int, vms: list[str]) -> None:
        """One member of each platform cluster per rack, in the block's first racks, so that
        one rack going down leaves every platform cluster degraded, not down."""
        shape = self.shape
        spread = min(shape.app_cluster_size, shape.racks_per_block)
        members = [i for i in range(shape.app_cluster_size) if i % spread == rack_index]
        for cluster in block.platform:
            for i in members:
                if not vms:
                    return
                member = self._app(f"{cluster}-{i}", f"{cluster} {i}", vms.pop())
                self.b.rel(member, "MEMBER_OF", cluster)

    def _stack(self, rack_name: str, block: _Block, vms: list[str], db_hosts: list[str]) -> None:
        """A business service with its frontends, backends and database, placed on the
        rack's VMs (and database hosts) until each VM runs something."""
        b, shape = self.b, self.shape
        self.stacks += 1
        number = self.stacks
        name = f"{rack_name}-st{number:06d}"
        kind = b.rng.choice(_APP_KINDS)

        def place() -> str | None:
            return vms.pop() if vms else None

        engine, version, port = b.rng.choice(_DB_ENGINES)
        db = b.ci(
            f"{name}-db",
            "database",
            f"{kind}-{number}-db",
            attributes={
                "engine": engine,
                "version": version,
                "port": port,
                "size_gb": round(b.rng.uniform(5, 2000), 1),
            },
        )
        db_host = b.rng.choice(db_hosts) if db_hosts and b.rng.random() < 0.5 else place()
        if db_host is not None:
            b.rel(db, "RUNS_ON", db_host)
        if b.rng.random() < shape.app_cluster_share and len(vms) >= shape.app_cluster_size:
            backend = b.ci(
                f"{name}-be",
                "cluster",
                f"{kind}-{number}-backend",
                attributes={
                    "cluster_type": "kubernetes-deployment",
                    "min_healthy": shape.app_cluster_min_healthy,
                },
            )
            for i in range(shape.app_cluster_size):
                member = self._app(f"{name}-be{i}", f"{kind}-{number}-backend-{i}", place())
                b.rel(member, "MEMBER_OF", backend)
                self._backend_calls(member, db, block)
            backends = [backend]
            block.shared_backends.append(backend)
        else:
            backends = []
            for i in range(b.rng.randint(1, 2)):
                backend = self._app(f"{name}-be{i}", f"{kind}-{number}-backend-{i}", place())
                self._backend_calls(backend, db, block)
                backends.append(backend)
        frontends = []
        for i in range(b.rng.randint(1, 2)):
            frontend = self._app(f"{name}-fe{i}", f"{kind}-{number}-frontend-{i}", place())
            for backend in backends:
                b.rel(frontend, "DEPENDS_ON", backend)
            for cluster in block.platform[: shape.platform_per_frontend]:
                b.rel(frontend, "DEPENDS_ON", cluster)
            frontends.append(frontend)
        service = b.ci(
            f"{name}-svc",
            "business_service",
            f"{kind.title()} service {number}",
            {"service_id": f"SVC-{number:06d}"},
            {
                "criticality": b.rng.randint(1, 5),
                "sla_tier": b.rng.choice(("gold", "silver", "bronze")),
            },
        )
        for frontend in frontends:
            b.rel(service, "DEPENDS_ON", frontend)

    def _backend_calls(self, backend: str, db: str, block: _Block) -> None:
        b, shape = self.b, self.shape
        b.rel(backend, "DEPENDS_ON", db)
        for cluster in b.rng.sample(block.platform, shape.platform_per_backend):
            b.rel(backend, "DEPENDS_ON", cluster)
        # calls go to earlier stacks only, so the dependency graph stays acyclic
        callees = block.shared_backends[-8:]
        for callee in b.rng.sample(callees, min(shape.cross_stack_calls, len(callees))):
            b.rel(backend, "DEPENDS_ON", callee)

    def _app(self, key: str, name: str, host: str | None) -> str:
        b = self.b
        version = f"{b.rng.randint(1, 9)}.{b.rng.randint(0, 20)}.{b.rng.randint(0, 9)}"
        b.ci(
            key,
            "application",
            name,
            attributes={"version": version, "port": b.rng.choice((443, 8080, 8443, 9000))},
        )
        if host is not None:
            b.rel(key, "RUNS_ON", host)
        return key


def build(cis: int, seed: int, shape: Shape | None = None) -> Topology:
    """An estate of about ``cis`` CIs (whole racks, so up to one rack more)."""
    if cis < 1:
        raise ValueError("cis must be positive")
    shape = shape or Shape()
    builder = _Builder(seed)
    estate = _Estate(builder, shape)
    while len(builder.cis) < cis:
        estate.rack()
    batch = ObservationBatch(
        source=SOURCE,
        cis=builder.cis,
        relationships=builder.rels,
        run_id=f"bench-{seed}-{cis}",
        observed_at=OBSERVED_AT,
    )
    return Topology(
        batch=batch,
        seed=seed,
        shape=shape,
        distribution_keys=estate.distribution_keys,
        single_homed_below=estate.single_homed_below,
    )


def generate(cis: int, seed: int) -> ObservationBatch:
    """The observation batch of :func:`build` with the default shape."""
    return build(cis, seed).batch


# -- import file and CLI --------------------------------------------------------------------


def to_import_json(batch: ObservationBatch) -> dict[str, Any]:
    """The batch in the import file format read by ``servicegraph import``."""
    return {
        "cis": [
            {
                "key": c.key,
                "class": c.ci_class,
                "name": c.name,
                "identifiers": dict(c.identifiers),
                "attributes": dict(c.attributes),
            }
            for c in batch.cis
        ],
        "relationships": [
            {
                "from": r.from_ref.key,
                "type": r.type,
                "to": r.to_ref.key,
                "attributes": dict(r.attributes),
            }
            for r in batch.relationships
        ],
    }


def describe(topo: Topology) -> str:
    """A summary table: CIs per class, relationships per type."""
    classes = Counter(c.ci_class for c in topo.batch.cis)
    types = Counter(r.type for r in topo.batch.relationships)
    lines = [
        f"CIs {topo.ci_count:,}  relationships {topo.relationship_count:,}  "
        f"(ratio {topo.relationship_count / topo.ci_count:.2f})  seed {topo.seed}",
        f"{'class':<18}{'CIs':>10}    {'type':<14}{'relationships':>14}",
    ]
    left = sorted(classes.items())
    right = sorted(types.items())
    for i in range(max(len(left), len(right))):
        c = f"{left[i][0]:<18}{left[i][1]:>10,}" if i < len(left) else " " * 28
        t = f"{right[i][0]:<14}{right[i][1]:>14,}" if i < len(right) else ""
        lines.append(f"{c}    {t}")
    lines.append(
        f"distribution switches {len(topo.distribution_keys)}, of which "
        f"{len(topo.single_homed_below)} are the only uplink of an access switch"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate a benchmark topology.")
    parser.add_argument("--cis", type=int, default=100_000, help="target number of CIs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-o", "--output", type=Path, help="write an import JSON file here")
    args = parser.parse_args(argv)
    topo = build(args.cis, args.seed)
    print(describe(topo))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with args.output.open("w") as fh:
            json.dump(to_import_json(topo.batch), fh, separators=(",", ":"))
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
