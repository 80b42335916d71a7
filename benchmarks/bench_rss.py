"""Peak memory of a process serving impact queries on the 100,000-CI store.

The driver makes sure the cached store exists (see ``bench_impact``), then starts a fresh
child process that does what an API worker does: ``bootstrap`` on the store, build the
impact projection, answer impact queries (every distribution switch, a sample of random
CIs, dependencies and single points of failure of some business services). The child
reports its resident set at each stage and its peak (``ru_maxrss``). A fresh process
matters: the driver itself holds the generated batch and would inflate the figure.

RSS includes the SQLite page cache and the pages of the database file read through
``mmap``; the anonymous part (Python objects) and the file-backed part are shown apart.

    python -m benchmarks.bench_rss [--cis 100000] [--queries 2000]

Exit status: 0 whatever the figure; 1 on errors.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

TARGET_MIB = 1024


def _status() -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile from /proc/self/status, in KiB (Linux)."""
    fields: dict[str, int] = {}
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0])
    return fields


def _stage(stages: list[dict[str, object]], name: str, started: float) -> None:
    status = _status()
    stages.append(
        {
            "stage": name,
            "seconds": round(time.perf_counter() - started, 2),
            "rss_kib": status.get("VmRSS", 0),
            "anon_kib": status.get("RssAnon", 0),
            "file_kib": status.get("RssFile", 0),
            "hwm_kib": status.get("VmHWM", 0),
            "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }
    )


def child(path: Path, queries: int, seed: int) -> int:
    """The measured process: imports only what a server imports."""
    started = time.perf_counter()
    stages: list[dict[str, object]] = []
    _stage(stages, "python started", started)
    from servicegraph.bootstrap import bootstrap
    from servicegraph.cmdb.ports import CIQuery
    from servicegraph.config import Settings

    _stage(stages, "imports", started)
    services = bootstrap(Settings(data_dir=path.parent, sqlite_path=path))
    _stage(stages, "bootstrap", started)
    graph = services.impact.refresh()
    _stage(stages, "projection built", started)

    def all_of(query: CIQuery) -> list[str]:
        ids: list[str] = []
        while True:
            page = services.store.find_cis(query)
            ids += [ci.id for ci in page]
            if len(page) < query.limit:
                return ids
            query = CIQuery(
                ci_class=query.ci_class,
                attributes=query.attributes,
                limit=query.limit,
                after=page[-1].id,
            )

    switches = all_of(
        CIQuery(ci_class="network_device", attributes={"role": "distribution"}, limit=500)
    )
    affected = sum(len(services.impact.impact([ci]).affected) for ci in switches)
    rng = random.Random(seed)
    live = [i for i, ci_id in enumerate(graph.ids) if i not in graph.merged]
    for node in rng.sample(live, min(queries, len(live))):
        affected += len(services.impact.impact([graph.ids[node]]).affected)
    _stage(stages, f"{len(switches)} switch + {queries} random impacts", started)
    business = services.store.find_cis(CIQuery(ci_class="business_service", limit=50))
    for ci in business:
        services.impact.dependencies(ci.id)
        services.impact.single_points_of_failure(ci.id)
    _stage(stages, f"{len(business)} dependencies + SPOF", started)
    services.close()
    json.dump(
        {"stages": stages, "cis": len(graph), "switches": len(switches), "affected": affected},
        sys.stdout,
    )
    return 0


def driver(args: argparse.Namespace) -> int:
    from benchmarks.bench_impact import BenchError, cached_store

    try:
        path = cached_store(args.cis, args.seed, fresh=args.fresh)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_rss",
            "--child",
            str(path),
            "--queries",
            str(args.queries),
            "--seed",
            str(args.seed),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        print(f"error: the measured process failed ({proc.returncode})", file=sys.stderr)
        return 1
    report = json.loads(proc.stdout)
    print(f"store {path.name}: {report['cis']:,} CIs in the projection")
    print(f"{'stage':<40}{'s':>7}{'RSS MiB':>9}{'anon':>7}{'file':>7}{'peak':>7}{'maxrss':>8}")
    for s in report["stages"]:
        print(
            f"{s['stage']:<40}{s['seconds']:>7.2f}{s['rss_kib'] / 1024:>9.0f}"
            f"{s['anon_kib'] / 1024:>7.0f}{s['file_kib'] / 1024:>7.0f}"
            f"{s['hwm_kib'] / 1024:>7.0f}{s['maxrss_kib'] / 1024:>8.0f}"
        )
    last = report["stages"][-1]
    peak = max(last["hwm_kib"], last["maxrss_kib"]) / 1024
    verdict = "met" if peak <= TARGET_MIB else "MISSED"
    print(
        "peak = VmHWM of the process; maxrss = getrusage ru_maxrss, which on Linux also\n"
        "counts the parent's memory at fork time, hence the driver holds no topology"
    )
    print(f"peak RSS {peak:,.0f} MiB; target <= {TARGET_MIB} MiB: {verdict}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Peak RSS of an impact-serving process.")
    parser.add_argument("--cis", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--queries", type=int, default=2000, help="random-CI impact queries")
    parser.add_argument("--fresh", action="store_true", help="reload instead of the cache")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        return child(args.child, args.queries, args.seed)
    return driver(args)


if __name__ == "__main__":
    sys.exit(main())
