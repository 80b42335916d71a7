"""Sustained correlation throughput on the embedded store with a 100,000-CI graph.

The graph comes from ``benchmarks.topology`` (loaded once and cached as a SQLite file under
benchmarks/out/). The event stream imitates a busy monitoring estate: new alerts on random
CIs (servers, VMs, applications, databases, switches), repeats of firing alerts (the bulk
of real traffic), and resolves; about one event per millisecond of event time so that
topology grouping windows matter. Events are first written to the inbox (timed
separately), then the correlator drains it; the figure is events/s of ``drain``.

    python -m benchmarks.bench_correlation [--cis 100000] [--events 200000]
    python -m benchmarks.bench_correlation --cis 30000 --events 50000 --store both

With ``--store neo4j`` (or ``both``) the graph is loaded into Neo4j through the reconciler
(``benchmarks/neo4j_runs.py``) and the inbox, the alerts and the incidents are written
there, as in the multi-host mode; the correlator is the same.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.neo4j_runs import LoadFailed, loaded_services, neo4j_server
from benchmarks.topology import generate
from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.ports import CIQuery
from servicegraph.config import CorrelationSettings, Settings
from servicegraph.events.model import Event, EventStatus, Severity, digest
from servicegraph.runtime.heap import BatchHeap, collector_paused, settle_heap

OUT = Path(__file__).resolve().parent / "out"
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def cached_graph(cis: int, seed: int) -> Path:
    """A SQLite file holding the generated graph; built once per (cis, seed)."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"graph-{cis}-{seed}.sqlite3"
    if not path.exists():
        work = OUT / "build"
        shutil.rmtree(work, ignore_errors=True)
        services = bootstrap(Settings(data_dir=work))
        print(f"loading a {cis:,}-CI graph (cached for later runs)...", file=sys.stderr)
        with collector_paused():  # as `servicegraph import` applies a batch
            services.reconciler.apply(generate(cis, seed))
        services.close()
        (work / "servicegraph.sqlite3").rename(path)
        shutil.rmtree(work, ignore_errors=True)
    return path


def fresh_copy(graph: Path, name: str) -> Path:
    data = OUT / name
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    shutil.copy(graph, data / "servicegraph.sqlite3")
    return data


MIXES = {
    # share of (repeats of firing alerts, resolves); the rest are new alerts
    "storm": (0.6, 0.2),  # 2,000 new alerts per second of stream at 10k events/s
    "steady": (0.9, 0.05),  # mostly repeats, as a monitoring estate re-sends its state
}


def make_events(ci_ids: list[str], n: int, seed: int, mix: str = "storm") -> list[Event]:
    repeat_share, resolve_share = MIXES[mix]
    rng = random.Random(seed)
    names = ["NodeDown", "HighLatency", "DiskFull", "LinkDown", "ServiceDown", "HighCPU"]
    firing: list[tuple[str, str, str]] = []  # (fingerprint, ci_id, name)
    events: list[Event] = []
    for i in range(n):
        at = T0 + dt.timedelta(milliseconds=i)
        roll = rng.random()
        if firing and roll < repeat_share:  # repeat of a firing alert
            fp, ci_id, name = firing[rng.randrange(len(firing))]
            status = EventStatus.FIRING
        elif firing and roll < repeat_share + resolve_share:  # a firing alert resolves
            fp, ci_id, name = firing.pop(rng.randrange(len(firing)))
            status = EventStatus.RESOLVED
        else:  # a new alert
            ci_id = ci_ids[rng.randrange(len(ci_ids))]
            name = rng.choice(names)
            fp = digest(ci_id, name)
            firing.append((fp, ci_id, name))
            status = EventStatus.FIRING
        events.append(
            Event(
                source="bench",
                name=name,
                status=status,
                severity=Severity.MAJOR,
                occurred_at=at,
                fingerprint=fp,
                event_id=f"ev-{i}",
                labels={"ci_id": ci_id, "severity": "major"},
            )
        )
    return events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cis", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=CorrelationSettings().batch_size)
    parser.add_argument("--mix", choices=sorted(MIXES), default="storm")
    parser.add_argument(
        "--heap",
        choices=("worker", "thread"),
        default="worker",
        help="the garbage collector as in a worker process (survivors of each batch "
        "frozen) or as in an API process correlating in a thread (frozen once at start)",
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "neo4j", "both"),
        default="sqlite",
        help="where the graph, the inbox and the desk are (neo4j: loaded now, see neo4j_runs)",
    )
    args = parser.parse_args(argv)
    correlation = CorrelationSettings(batch_size=args.batch)
    figures = []
    try:
        if args.store in ("sqlite", "both"):
            data = fresh_copy(cached_graph(args.cis, args.seed), "correlation-run")
            services = bootstrap(Settings(data_dir=data, correlation=correlation))
            figures.append(run("sqlite", services, args))
        if args.store in ("neo4j", "both"):
            with (
                neo4j_server("correlation") as address,
                loaded_services(
                    generate(args.cis, args.seed),
                    address,
                    OUT / "correlation-neo4j",
                    correlation=correlation,
                ) as services,
            ):
                figures.append(run("neo4j", services, args))
    except LoadFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if len(figures) > 1:
        print("\nstore    inbox write ev/s   correlation ev/s   per CPU second")
        for f in figures:
            print(f"{f.store:8} {f.ingest_rate:16,.0f} {f.drain_rate:18,.0f} {f.cpu_rate:16,.0f}")
    return 0


@dataclass(frozen=True)
class Figures:
    store: str
    ingest_rate: float  # events/s into the inbox
    drain_rate: float  # events/s through correlation
    cpu_rate: float  # events per CPU second of this process


def run(store: str, services: Services, args: argparse.Namespace) -> Figures:
    """Write the events into ``services``' inbox, then drain it; closes ``services``."""
    correlator = services.correlator
    clock_at = [T0]
    correlator.clock = lambda: clock_at[0]
    started = time.perf_counter()
    graph_view = services.impact.refresh()
    projection_s = time.perf_counter() - started
    # by name: each load gives the CIs new ids, and both stores must get the same events
    names = {ci.id: ci.name for ci in services.store.find_cis(CIQuery(limit=len(graph_view)))}
    ci_ids = sorted(
        (
            ci_id
            for ci_id, ci_class in zip(graph_view.ids, graph_view.classes, strict=True)
            if ci_class
            in ("server", "virtual_machine", "application", "database", "network_device")
        ),
        key=names.__getitem__,
    )
    events = make_events(ci_ids, args.events, args.seed, args.mix)
    heap = BatchHeap()
    if args.heap == "worker":
        heap.settle()
    else:
        settle_heap()
    started = time.perf_counter()
    for i in range(0, len(events), 1000):
        correlator.ingest(events[i : i + 1000])
    ingest_s = time.perf_counter() - started

    started = time.perf_counter()
    cpu_started = time.process_time()
    total = None
    batches = 0
    while True:
        clock_at[0] = T0 + dt.timedelta(milliseconds=batches * args.batch)
        result = correlator.process_pending()
        if result.events == 0:
            break
        batches += 1
        if args.heap == "worker":
            heap.after_batch()
        if total is None:
            total = result
        else:
            total.merge(result)
    drain_s = time.perf_counter() - started
    drain_cpu_s = time.process_time() - cpu_started
    counts = {**services.inbox.counts(), **services.tickets.counts()}
    services.close()

    assert total is not None
    print(f"[{store}] graph: {len(graph_view):,} CIs (projection built in {projection_s:.2f} s)")
    print(
        f"events: {args.events:,} ({args.mix} mix) in {batches} batches of {args.batch}, "
        f"heap as in a {args.heap}"
    )
    print(f"inbox write:   {ingest_s:6.2f} s  {args.events / ingest_s:10,.0f} events/s")
    print(
        f"correlation:   {drain_s:6.2f} s  {args.events / drain_s:10,.0f} events/s "
        f"(CPU {drain_cpu_s:.2f} s: {args.events / drain_cpu_s:,.0f} events per CPU second)"
    )
    print(
        f"alerts created {total.alerts_created:,}, duplicates {total.duplicates:,}, "
        f"incidents opened {total.incidents_opened:,}, resolved {total.incidents_resolved:,}, "
        f"problems {total.problems_opened:,}"
    )
    print(f"store: {counts}")
    return Figures(store, args.events / ingest_s, args.events / drain_s, args.events / drain_cpu_s)


if __name__ == "__main__":
    sys.exit(main())
