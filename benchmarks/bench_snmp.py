"""SNMP discovery against real agents: a fleet of 50 devices, and one large device walked
side by side with net-snmp.

    python -m benchmarks.bench_snmp                    # both parts
    python -m benchmarks.bench_snmp --part walk --profile   # where the client CPU goes

**Fleet**: 50 recordings of real devices from snmpsim-data (the 50 around the middle of
the size range: switches, routers, firewalls, servers, UPSs...), each served by snmpsim on
its own loopback address 127.0.1.N, discovered concurrently into a fresh SQLite store:
collect (every needed subtree of every device) and load (reconciliation). Reports total
time and devices/s. The agents are one single-threaded snmpsim process sharing the two
cores with the client, so this measures the agent as much as the client; client CPU is
reported apart.

**Walk**: the subtrees discovery walks (interface, ENTITY, IP, LLDP, CDP and HOST-RESOURCES
columns) on the largest interface table of snmpsim-data (an H3C switch with 1,300
interfaces), decompressed, against the same agent:

* net-snmp: ``snmpbulkwalk -v2c -Cr50`` once per subtree, as one would script it;
* fast: this project's v1/v2c session (``ber`` codec), columns walked together;
* pysnmp tuned: ``PysnmpSession`` (pysnmp hlapi, MIB lookups off), the same column groups;
* pysnmp out of the box: ``bulk_walk_cmd`` per subtree with its defaults (MIB lookups on).

Client CPU comes from ``getrusage(RUSAGE_CHILDREN)`` for net-snmp and ``process_time`` for
the in-process walks; each figure is the median of ``--repeats`` runs. Goals: wall <= 1.3x
net-snmp, client CPU per 10,000 varbinds <= 8x net-snmp.

First runs build snmpsim's indexes (about a minute, ~1 GB under benchmarks/out/snmp);
later runs reuse them. Exit status 0 whatever the timings; 1 if a walk disagrees with
net-snmp on the number of values or the fleet fails to load.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servicegraph.bootstrap import bootstrap
from servicegraph.cmdb.model import utcnow
from servicegraph.collectors.snmp import mibs
from servicegraph.collectors.snmp.client import (
    FastSession,
    SessionFactory,
    SessionOptions,
    SnmpSession,
)
from servicegraph.collectors.snmp.credentials import Credential, CredentialSet, Secret
from servicegraph.collectors.snmp.discovery import Discovery, DiscoveryOptions, sync
from servicegraph.collectors.snmp.targets import Target
from servicegraph.config import Settings
from tests.snmp.simulator import Simulator, V3User, snmpsim_data_dir

OUT = Path(__file__).resolve().parent / "out" / "snmp"
BIG = "network/switch/h3c-comware-lsq1wcmd0-2509p61"
# the column groups discovery walks (see collect.collect_device)
GROUPS: tuple[tuple[mibs.Oid, ...], ...] = (
    mibs.INTERFACE_COLUMNS,
    mibs.ENTITY_SCAN_COLUMNS,
    mibs.IP_COLUMNS,
    mibs.LLDP_REMOTE_COLUMNS,
    mibs.LLDP_LOCAL_PORT_COLUMNS,
    mibs.CDP_COLUMNS,
    (mibs.HR_DEVICE_TYPE,),
)
WALL_GOAL = 1.3
CPU_GOAL = 8.0


def _dotted(oid: Sequence[int]) -> str:
    return ".".join(map(str, oid))


# -- fleet ----------------------------------------------------------------------------------------


def fleet_recordings(count: int) -> list[Path]:
    """``count`` recordings around the median size: typical devices, none trivial."""
    files = sorted(snmpsim_data_dir().rglob("*.snmprec*"), key=lambda p: (p.stat().st_size, p))
    start = max(0, len(files) // 2 - count // 2 - 8)
    return files[start : start + count]


@dataclass
class FleetResult:
    devices: int
    outcomes: dict[str, int]
    collect_s: float
    load_s: float
    client_cpu_s: float
    varbinds: int
    requests: int
    interfaces: int
    links: int
    placeholders: int
    warnings: int

    @property
    def total_s(self) -> float:
        return self.collect_s + self.load_s


def bench_fleet(count: int, concurrency: int, engine: str) -> FleetResult:
    hosts = tuple(f"127.0.1.{i}" for i in range(1, count + 1))
    sim = Simulator(OUT / f"fleet-{count}", hosts=hosts, max_open=count + 10)
    for index, path in enumerate(fleet_recordings(count)):
        sim.add_endpoint(index, path)
    started = time.monotonic()
    sim.start(ready_timeout=900)
    print(f"fleet: {count} agents up in {time.monotonic() - started:.1f}s (index build)")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            services = bootstrap(Settings(data_dir=Path(tmp)))
            try:
                credentials = CredentialSet(
                    default=Credential("bench", "2c", community=Secret("public"))
                )
                targets = [Target(h, sim.port) for h in hosts]

                async def collect() -> list[Any]:
                    # a pysnmp engine belongs to the loop it was made in: close it there
                    factory = SessionFactory(SessionOptions(timeout=5, retries=1), engine=engine)
                    try:
                        discovery = Discovery(
                            factory,
                            credentials,
                            DiscoveryOptions(concurrency=concurrency, device_timeout=300),
                        )
                        return await discovery.collect_all(targets)
                    finally:
                        factory.close()

                cpu = time.process_time()
                t0 = time.perf_counter()
                results = asyncio.run(collect())
                collect_s = time.perf_counter() - t0
                collect_cpu = time.process_time() - cpu
                snapshots = [r.snapshot for r in results if r.snapshot is not None]
                t1 = time.perf_counter()
                plan, _, warnings = sync(
                    services.reconciler,
                    snapshots,
                    run_id="bench",
                    observed_at=utcnow(),
                    complete=True,
                )
                load_s = time.perf_counter() - t1
            finally:
                services.close()
    finally:
        sim.stop()
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    return FleetResult(
        devices=len(snapshots),
        outcomes=outcomes,
        collect_s=collect_s,
        load_s=load_s,
        client_cpu_s=collect_cpu,
        varbinds=sum(r.varbinds for r in results),
        requests=sum(r.requests for r in results),
        interfaces=sum(len(s.interfaces) for s in snapshots),
        links=len(plan.links),
        placeholders=plan.placeholders,
        warnings=len(warnings),
    )


# -- walk -----------------------------------------------------------------------------------------


@dataclass
class WalkRun:
    wall: float
    cpu: float
    varbinds: int
    per_subtree: dict[str, int] = field(default_factory=dict)


def netsnmp_walk(port: int, community: str, repetitions: int) -> WalkRun:
    walker = shutil.which("snmpbulkwalk")
    if walker is None:
        raise SystemExit("snmpbulkwalk not found: apt-get install snmp")
    env = {**os.environ, "MIBS": ""}  # no MIB loading: numeric OIDs, like the other clients
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    counts: dict[str, int] = {}
    for group in GROUPS:
        for column in group:
            out = subprocess.run(
                [
                    walker,
                    "-v2c",
                    "-c",
                    community,
                    f"-Cr{repetitions}",
                    "-On",
                    "-Oq",
                    f"127.0.0.1:{port}",
                    _dotted(column),
                ],
                capture_output=True,
                env=env,
                check=True,
                timeout=600,
            ).stdout
            # an empty subtree: net-snmp GETs the root and prints "No Such Object/Instance"
            lines = [
                line
                for line in out.splitlines()
                if line.startswith(b".") and b"No Such" not in line and b"No more" not in line
            ]
            counts[_dotted(column)] = len(lines)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return WalkRun(wall, cpu, sum(counts.values()), counts)


def netsnmp_startup_cpu(port: int, community: str, runs: int = 20) -> float:
    """CPU of one net-snmp process doing one GET: its fixed cost per subtree walked."""
    getter = shutil.which("snmpget")
    assert getter is not None
    env = {**os.environ, "MIBS": ""}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(runs):
        subprocess.run(
            [getter, "-v2c", "-c", community, "-On", f"127.0.0.1:{port}", "1.3.6.1.2.1.1.5.0"],
            capture_output=True,
            env=env,
            check=True,
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) / runs


async def _session_walk(session: SnmpSession) -> WalkRun:
    cpu = time.process_time()
    started = time.perf_counter()
    counts: dict[str, int] = {}
    for group in GROUPS:
        table = await session.walk(group)
        for column, rows in table.items():
            counts[_dotted(column)] = len(rows)
    wall = time.perf_counter() - started
    await session.close()
    return WalkRun(wall, time.process_time() - cpu, sum(counts.values()), counts)


async def _hlapi_walk(port: int, community: str, repetitions: int) -> WalkRun:
    from pysnmp.hlapi.v3arch import asyncio as hlapi

    engine = hlapi.SnmpEngine()
    target = await hlapi.UdpTransportTarget.create(("127.0.0.1", port), timeout=10, retries=1)
    cpu = time.process_time()
    started = time.perf_counter()
    counts: dict[str, int] = {}
    for group in GROUPS:
        for column in group:
            n = 0
            async for indication, status, _, varbinds in hlapi.bulk_walk_cmd(
                engine,
                hlapi.CommunityData(community),
                target,
                hlapi.ContextData(),
                0,
                repetitions,
                hlapi.ObjectType(hlapi.ObjectIdentity(_dotted(column))),
                lexicographicMode=False,
            ):
                if indication or status:
                    break
                n += len(varbinds)
            counts[_dotted(column)] = n
    wall = time.perf_counter() - started
    result = WalkRun(wall, time.process_time() - cpu, sum(counts.values()), counts)
    engine.close_dispatcher()
    return result


def _median(runs: list[WalkRun]) -> WalkRun:
    return WalkRun(
        statistics.median(r.wall for r in runs),
        statistics.median(r.cpu for r in runs),
        runs[0].varbinds,
        runs[0].per_subtree,
    )


def bench_walk(repeats: int, repetitions: int, profile: bool) -> dict[str, Any]:
    sim = Simulator(OUT / "walk", v3=V3User(), max_var_binds=256)
    big = next(snmpsim_data_dir().glob(f"{BIG}.snmprec*"))
    sim.add_community("big", big)
    started = time.monotonic()
    sim.start(ready_timeout=900)
    print(f"walk: agent up in {time.monotonic() - started:.1f}s ({big.name})")
    port = sim.port
    options = SessionOptions(timeout=10, retries=1, max_repetitions=repetitions)
    public = Credential("bench", "2c", community=Secret("big"))
    user = sim.v3
    assert user is not None
    v3 = Credential(
        "bench-v3",
        "3",
        user=user.user,
        auth_protocol="sha",
        auth_key=Secret(user.auth_key),
        priv_protocol="aes",
        priv_key=Secret(user.priv_key),
        context="big",
    )

    async def pysnmp(credential: Credential) -> WalkRun:
        # a pysnmp engine belongs to the loop it was made in: one per walk, closed in it
        factory = SessionFactory(options, engine="pysnmp")
        try:
            return await _session_walk(factory.open("127.0.0.1", port, credential))
        finally:
            factory.close()

    clients: dict[str, Callable[[], Awaitable[WalkRun]]] = {
        "fast": lambda: _session_walk(FastSession("127.0.0.1", port, public, options)),
        "pysnmp tuned": lambda: pysnmp(public),
        "pysnmp tuned, v3 authPriv": lambda: pysnmp(v3),
        "pysnmp out of the box": lambda: _hlapi_walk(port, "big", repetitions),
    }
    runs: dict[str, list[WalkRun]] = {name: [] for name in ["net-snmp", *clients]}
    try:
        startup = netsnmp_startup_cpu(port, "big")
        for i in range(repeats):
            runs["net-snmp"].append(netsnmp_walk(port, "big", repetitions))
            for name, walk in clients.items():
                if name.startswith("pysnmp") and i > 0 and repeats > 2 and "out of" in name:
                    continue  # slow and stable: once or twice is enough
                runs[name].append(asyncio.run(walk()))
            print(f"walk: round {i + 1}/{repeats} done")
        if profile:
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            asyncio.run(clients["fast"]())
            profiler.disable()
            print("\nfast session, by own CPU time:")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            asyncio.run(clients["pysnmp tuned"]())
            profiler.disable()
            print("\npysnmp tuned, by own CPU time:")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    finally:
        sim.stop()
    medians = {name: _median(r) for name, r in runs.items() if r}
    return {"medians": medians, "startup": startup, "subtrees": sum(len(g) for g in GROUPS)}


# -- report ---------------------------------------------------------------------------------------


def report_walk(result: dict[str, Any]) -> tuple[list[str], bool]:
    medians: dict[str, WalkRun] = result["medians"]
    base = medians["net-snmp"]
    startup = result["startup"] * result["subtrees"]
    lines = [
        f"walk of {result['subtrees']} subtrees ({base.varbinds:,} varbinds), median of runs:",
        f"  {'client':28} {'wall s':>8} {'x net-snmp':>10} {'CPU s':>8} {'CPU/10k vb':>11} "
        f"{'x net-snmp':>10}",
    ]
    ok = True
    for name, run in medians.items():
        per10k = run.cpu / max(run.varbinds, 1) * 1e4
        base10k = base.cpu / max(base.varbinds, 1) * 1e4
        lines.append(
            f"  {name:28} {run.wall:8.2f} {run.wall / base.wall:10.2f} {run.cpu:8.3f} "
            f"{per10k:11.4f} {per10k / base10k:10.1f}"
        )
        if run.varbinds != base.varbinds:
            ok = False
            diff = {
                k: (v, run.per_subtree.get(k))
                for k, v in base.per_subtree.items()
                if run.per_subtree.get(k) != v
            }
            lines.append(f"    !! {run.varbinds} varbinds, net-snmp {base.varbinds}: {diff}")
    fast = medians["fast"]
    cpu_ratio = (fast.cpu / fast.varbinds) / (base.cpu / base.varbinds)
    net_no_start = max(base.cpu - startup, 1e-9)
    per10k_fast = fast.cpu / fast.varbinds * 1e4
    lines += [
        f"  net-snmp process start-up: {result['startup'] * 1000:.1f} ms CPU each, "
        f"{startup:.3f} s of its {base.cpu:.3f} s; without it net-snmp spends "
        f"{net_no_start / base.varbinds * 1e4:.4f} s/10k (fast: "
        f"{per10k_fast / (net_no_start / base.varbinds * 1e4):.1f}x)",
        f"  goals: wall <= {WALL_GOAL}x: {fast.wall / base.wall:.2f}x "
        f"{'met' if fast.wall / base.wall <= WALL_GOAL else 'NOT met'}; "
        f"CPU/varbind <= {CPU_GOAL}x: {cpu_ratio:.1f}x "
        f"{'met' if cpu_ratio <= CPU_GOAL else 'NOT met'}",
    ]
    return lines, ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("all", "fleet", "walk"), default="all")
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--engine", choices=("fast", "pysnmp"), default="fast")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-repetitions", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="cProfile the walk clients")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    failed = False
    figures: dict[str, Any] = {}
    lines: list[str] = []
    if args.part in ("all", "fleet"):
        fleet = bench_fleet(args.devices, args.concurrency, args.engine)
        figures["fleet"] = fleet.__dict__
        lines += [
            f"fleet: {fleet.devices} of {args.devices} devices discovered "
            f"(outcomes {fleet.outcomes}), engine {args.engine}, concurrency {args.concurrency}",
            f"  collect {fleet.collect_s:.2f} s ({fleet.devices / fleet.collect_s:.1f} devices/s; "
            f"{fleet.varbinds:,} varbinds in {fleet.requests:,} requests; client CPU "
            f"{fleet.client_cpu_s:.2f} s)",
            f"  load    {fleet.load_s:.2f} s ({fleet.interfaces:,} interfaces, {fleet.links} links,"
            f" {fleet.placeholders} placeholders, {fleet.warnings} warnings)",
            f"  total   {fleet.total_s:.2f} s -> {fleet.devices / fleet.total_s:.1f} devices/s",
        ]
        failed |= fleet.devices == 0
    if args.part in ("all", "walk"):
        walk = bench_walk(args.repeats, args.max_repetitions, args.profile)
        figures["walk"] = {name: run.__dict__ for name, run in walk["medians"].items()} | {
            "netsnmp_startup_cpu_s": walk["startup"]
        }
        walk_lines, ok = report_walk(walk)
        lines += walk_lines
        failed |= not ok
    print("\n" + "\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
