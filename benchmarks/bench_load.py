"""Bulk load: one generated batch through ``Reconciler.apply`` into a fresh SQLite store.

This is the full production path, wired by ``bootstrap`` exactly as the CLI wires it:
validation, identification, per-attribute precedence, history, sightings, one write
transaction. The same batch is then applied again (a replay), which must find nothing to
change and write no history.

    python -m benchmarks.bench_load                       # 100,000 CIs, ~300,000 relationships
    python -m benchmarks.bench_load --cis 30000 --profile pyinstrument  # where time goes

Exit status: 0 whatever the timings (a benchmark reports, it does not judge); 1 when the
load fails or the replay writes history or changes anything.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.topology import build, describe
from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.observation import ObservationBatch
from servicegraph.cmdb.reconciliation import ReconcileReport
from servicegraph.config import Settings
from servicegraph.runtime.heap import collector_paused

TARGET_LOAD_SECONDS = 20.0


@dataclass
class Run:
    name: str
    seconds: float
    cpu_seconds: float  # this process's CPU time: less noisy than wall time on a busy box
    report: ReconcileReport

    def row(self, cis: int, rels: int) -> str:
        r = self.report
        return (
            f"{self.name:<8}{self.seconds:>9.2f}{self.cpu_seconds:>8.2f}"
            f"{cis / self.seconds:>12,.0f}{rels / self.seconds:>12,.0f}"
            f"{r.cis_created:>10,}{r.relationships_created:>10,}"
            f"{r.cis_updated + r.relationships_updated:>9,}{r.history_entries:>11,}"
        )


HEADER = (
    f"{'run':<8}{'wall s':>9}{'CPU s':>8}{'CIs/s':>12}{'rels/s':>12}{'CIs new':>10}{'rels new':>10}"
    f"{'updated':>9}{'history':>11}"
)


def apply(services: Services, batch: ObservationBatch, name: str, profiler: str | None) -> Run:
    def run() -> ReconcileReport:
        with collector_paused():  # as `servicegraph import` applies a batch
            return services.reconciler.apply(batch)

    start, cpu_start = time.perf_counter(), time.process_time()
    if profiler == "cprofile":
        report = run_cprofile(run, name)
    elif profiler == "pyinstrument":
        report = run_pyinstrument(run, name)
    else:
        report = run()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return Run(name, seconds, cpu, report)


def run_cprofile(run: Callable[[], ReconcileReport], name: str) -> ReconcileReport:
    profiler = cProfile.Profile()
    report = profiler.runcall(run)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(25)
    print(f"\n--- cProfile of the {name} (it adds overhead to every call; timings inflated) ---")
    print(out.getvalue())
    return report


def run_pyinstrument(run: Callable[[], ReconcileReport], name: str) -> ReconcileReport:
    # a sampling profiler: far less overhead than cProfile; not a project dependency
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    profiler.start()
    try:
        report = run()
    finally:
        profiler.stop()
    print(f"\n--- pyinstrument profile of the {name} ---")
    print(profiler.output_text(unicode=False, color=False))
    return report


def check_replay(first: Run, replay: Run) -> list[str]:
    """What the replay did that it should not have."""
    r = replay.report
    problems = []
    if r.history_entries:
        problems.append(f"replay wrote {r.history_entries} history entries")
    changed = {
        "CIs created": r.cis_created,
        "CIs updated": r.cis_updated,
        "relationships created": r.relationships_created,
        "relationships updated": r.relationships_updated,
        "conflicts": len(r.conflicts),
    }
    problems += [f"replay: {n} {what}" for what, n in changed.items() if n]
    if r.cis_unchanged != first.report.cis_created:
        problems.append(
            f"replay saw {r.cis_unchanged} unchanged CIs, the load created "
            f"{first.report.cis_created}"
        )
    if first.report.conflicts:
        problems.append(f"the load reported {len(first.report.conflicts)} conflicts")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bulk-load benchmark (reconciliation path).")
    parser.add_argument("--cis", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--profile",
        nargs="?",
        const="cprofile",
        choices=("cprofile", "pyinstrument"),
        help="profile the load and replay (pyinstrument: pip install pyinstrument)",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="store directory to use (must not exist); default a temp dir"
    )
    args = parser.parse_args(argv)

    start = time.perf_counter()
    topo = build(args.cis, args.seed)
    generated = time.perf_counter() - start
    print(describe(topo))
    print(f"generated in {generated:.2f} s\n")

    with tempfile.TemporaryDirectory(prefix="sg-bench-load-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        if args.data_dir is not None and data_dir.exists():
            print(f"error: {data_dir} exists; give a new directory", file=sys.stderr)
            return 1
        services = bootstrap(Settings(data_dir=data_dir))
        try:
            load = apply(services, topo.batch, "load", args.profile)
            replay = apply(services, topo.batch, "replay", args.profile)
            counts = services.store.counts()
        finally:
            services.close()
        size_mb = sum(f.stat().st_size for f in data_dir.iterdir()) / 1e6

    cis, rels = topo.ci_count, topo.relationship_count
    print(HEADER)
    print(load.row(cis, rels))
    print(replay.row(cis, rels))
    print(
        f"\nstore: {counts['cis']:,} CIs, {counts['relationships']:,} relationships, "
        f"{counts['history_entries']:,} history rows, {size_mb:,.0f} MB on disk"
    )
    if args.cis == 100_000:
        verdict = "met" if load.seconds <= TARGET_LOAD_SECONDS else "MISSED"
        print(f"target: load <= {TARGET_LOAD_SECONDS:.0f} s for 100k CIs: {verdict}")

    problems = check_replay(load, replay)
    if counts["cis"] != load.report.cis_created or counts["relationships"] != rels:
        problems.append(f"store counts {counts} do not match the batch")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
