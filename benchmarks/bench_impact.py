"""Impact analysis latency: what fails when a distribution switch fails.

For each graph size the generated topology is loaded once into a SQLite store and cached
under benchmarks/out/ (``graph-<cis>-<seed>.sqlite3``, the same cache the correlation
benchmark uses). The impact projection is built from the store as ``bootstrap`` wires it,
then for several distribution switches, chosen to span the range of blast radii (most
switches take down only their own interfaces and the far ends of their links; those that
are the only uplink of a single-homed access switch take servers, VMs, applications and
business services with them):

- ``ImpactService.impact([switch])``: redundancy-aware propagation with a path per
  affected CI, the API's query;
- ``ImpactService.affected_ids([switch])``: the same propagation without paths;
- ``scipy.sparse.csgraph.breadth_first_order`` from the same node over the same directed
  impact edges (provider -> dependent), ignoring redundancy: a plain compiled BFS, for
  scale. It reaches far more (everything downstream), and it allocates arrays the size of
  the whole graph on every call.

Latency should follow the affected subgraph, not the graph: compare the rows of switches
with the same number of affected CIs across sizes.

    python -m benchmarks.bench_impact                       # 30k, 100k, 300k CIs
    python -m benchmarks.bench_impact --sizes 30000 --iterations 500
    python -m benchmarks.bench_impact --sizes 30000 --store both   # SQLite and Neo4j

With ``--store neo4j`` (or ``both``) the topology is loaded into Neo4j through the
reconciler in bounded units (what ``servicegraph import`` does there) and the projection is
built from Neo4j: ``NEO4J_URI``'s server (ITS DATABASE IS EMPTIED; ``NEO4J_USER``,
``NEO4J_PASSWORD``, ``NEO4J_DATABASE``), else one started from tools/neo4j. The impact
queries run on the projection in both modes, so their latencies should be the same; the
projection's build time is what differs.

Exit status: 0 whatever the timings; 1 on errors (a failed load, an inconsistent result).
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order

from benchmarks.neo4j_runs import LoadFailed, loaded_services, neo4j_server
from benchmarks.topology import SOURCE, Topology, build
from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.impact import AffectedCI
from servicegraph.cmdb.topology import ImpactGraph
from servicegraph.config import Settings
from servicegraph.runtime.heap import collector_paused
from tests.neo4j_server import Neo4jAddress

OUT = Path(__file__).resolve().parent / "out"
TARGET_P50_MS = 2.0
TARGET_P99_MS = 10.0


class BenchError(Exception):
    """Something is wrong with the data or a result, not merely slow."""


# -- the store ------------------------------------------------------------------------------


def cached_store(cis: int, seed: int, *, fresh: bool = False, topo: Topology | None = None) -> Path:
    """The SQLite file holding ``build(cis, seed)``, loaded through the reconciler once
    and reused; the topology is generated only when the file has to be built."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"graph-{cis}-{seed}.sqlite3"
    if path.exists() and not fresh:
        return path
    topo = topo or build(cis, seed)
    work = OUT / f"build-impact-{cis}-{seed}"
    shutil.rmtree(work, ignore_errors=True)
    print(f"loading {topo.ci_count:,} CIs into {path.name} (cached for later runs)...")
    start = time.perf_counter()
    services = bootstrap(Settings(data_dir=work))
    try:
        with collector_paused():  # as `servicegraph import` applies a batch
            report = services.reconciler.apply(topo.batch)
    finally:
        services.close()
    if report.conflicts:
        raise BenchError(f"loading the topology reported {len(report.conflicts)} conflicts")
    print(f"  loaded in {time.perf_counter() - start:.1f} s")
    for suffix in ("-wal", "-shm"):  # closed cleanly: the WAL is checkpointed and empty
        Path(str(path) + suffix).unlink(missing_ok=True)
    (work / "servicegraph.sqlite3").replace(path)
    shutil.rmtree(work, ignore_errors=True)
    return path


def open_services(path: Path) -> Services:
    return bootstrap(Settings(data_dir=path.parent, sqlite_path=path))


def check_matches(services: Services, topo: Topology) -> bool:
    counts = services.store.counts()
    return counts["cis"] == topo.ci_count and counts["relationships"] == topo.relationship_count


# -- measurements ---------------------------------------------------------------------------


@dataclass
class Timings:
    samples_ms: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.samples_ms.append(seconds * 1000)

    def pct(self, p: float) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    @property
    def p50(self) -> float:
        return self.pct(50)

    @property
    def p99(self) -> float:
        return self.pct(99)


@dataclass
class SwitchResult:
    key: str
    affected: int
    degraded: int
    services: int
    edges_scanned: int  # dependents examined by the propagation: its real work
    bfs_reached: int
    impact: Timings
    ids: Timings
    bfs: Timings


def time_calls(call: Callable[[], object], iterations: int, warmup: int) -> Timings:
    for _ in range(warmup):
        call()
    timings = Timings()
    clock = time.perf_counter
    for _ in range(iterations):
        start = clock()
        call()
        timings.add(clock() - start)
    return timings


def impact_csr(graph: ImpactGraph) -> csr_matrix:
    """The projection's impact edges, provider -> dependent, as a sparse matrix."""
    indptr = np.zeros(len(graph) + 1, dtype=np.int64)
    indices: list[int] = []
    for node, dependents in enumerate(graph.dependents):
        indices.extend(dependents)
        indptr[node + 1] = len(indices)
    data = np.ones(len(indices), dtype=np.int8)
    n = len(graph)
    return csr_matrix((data, np.asarray(indices, dtype=np.int32), indptr), shape=(n, n))


def measure_switch(
    services: Services,
    csr: csr_matrix,
    topo: Topology,
    key: str,
    ci_id: str,
    iterations: int,
    warmup: int,
) -> SwitchResult:
    impact = services.impact
    graph = impact.graph
    node = graph.index[ci_id]
    result = impact.impact([ci_id])
    ids = impact.affected_ids([ci_id])
    check_consistent(services, topo, key, ci_id, result.affected, ids)
    parent, _, _ = graph.propagate([node], max_depth=impact.max_depth)
    edges = sum(len(graph.dependents[n]) for n in parent)
    reached = breadth_first_order(csr, node, directed=True, return_predecessors=False)
    return SwitchResult(
        key=key,
        affected=len(result.affected),
        degraded=len(result.degraded),
        services=len(result.business_services),
        edges_scanned=edges,
        bfs_reached=len(reached) - 1,
        impact=time_calls(lambda: impact.impact([ci_id]), iterations, warmup),
        ids=time_calls(lambda: impact.affected_ids([ci_id]), iterations, warmup),
        bfs=time_calls(
            lambda: breadth_first_order(csr, node, directed=True, return_predecessors=False),
            iterations,
            warmup,
        ),
    )


def check_consistent(
    services: Services,
    topo: Topology,
    key: str,
    ci_id: str,
    affected: tuple[AffectedCI, ...],
    ids: list[str],
) -> None:
    """The two queries agree, and a single-homed access switch dies with its uplink."""
    with_paths = {a.ci_id for a in affected}
    if with_paths != set(ids):
        raise BenchError(f"{key}: impact() and affected_ids() disagree")
    below = topo.single_homed_below.get(key, [])
    if below:
        found = services.store.resolve_keys(below, source=SOURCE)
        lost = {i for v in found.values() for i in v}
        if not lost <= with_paths:
            raise BenchError(f"{key}: its single-homed access switches are not affected")


def choose_switches(
    services: Services, topo: Topology, count: int, seed: int
) -> list[tuple[str, str]]:
    """``count`` distribution switches spanning the range of blast radii, as (key, id)."""
    found = services.store.resolve_keys(topo.distribution_keys, source=SOURCE)
    missing = [k for k in topo.distribution_keys if len(found.get(k, ())) != 1]
    if missing:
        raise BenchError(f"distribution switches not in the store: {missing[:5]}")
    ids = {k: next(iter(found[k])) for k in topo.distribution_keys}
    sizes = sorted((len(services.impact.affected_ids([ids[k]])), k) for k in topo.distribution_keys)
    if count >= len(sizes):
        chosen = sizes
    else:
        # evenly spaced over the sorted radii, so both ends of the range are included,
        # plus a seeded pick among the common small ones
        step = (len(sizes) - 1) / (count - 1) if count > 1 else 0
        picks = {round(i * step) for i in range(count)}
        rng = random.Random(seed)
        while len(picks) < count:
            picks.add(rng.randrange(len(sizes)))
        chosen = [sizes[i] for i in sorted(picks)]
    return [(k, ids[k]) for _, k in chosen]


# -- one graph size -------------------------------------------------------------------------


@dataclass
class SizeResult:
    store: str
    cis: int
    relationships: int
    projection_s: float
    csr_s: float
    switches: list[SwitchResult]
    gc_collections: int

    def pooled(self, attr: str) -> Timings:
        pooled = Timings()
        for s in self.switches:
            pooled.samples_ms.extend(getattr(s, attr).samples_ms)
        return pooled


@contextmanager
def sqlite_services(topo: Topology, args: argparse.Namespace) -> Iterator[Services]:
    """Services on the cached SQLite file holding ``topo`` (rebuilt when it does not)."""
    path = cached_store(topo.ci_count, args.seed, fresh=args.fresh, topo=topo)
    services = open_services(path)
    try:
        if not check_matches(services, topo):
            print("  the cached store does not match the generator; rebuilding")
            services.close()
            path = cached_store(topo.ci_count, args.seed, fresh=True, topo=topo)
            services = open_services(path)
            if not check_matches(services, topo):
                raise BenchError(f"{path} does not hold the generated topology")
        yield services
    finally:
        services.close()


def run_size(cis: int, args: argparse.Namespace, neo4j: Neo4jAddress | None) -> list[SizeResult]:
    start = time.perf_counter()
    topo = build(cis, args.seed)
    print(
        f"\n== {topo.ci_count:,} CIs, {topo.relationship_count:,} relationships "
        f"(generated in {time.perf_counter() - start:.1f} s)"
    )
    results: list[SizeResult] = []
    if args.store in ("sqlite", "both"):
        with sqlite_services(topo, args) as services:
            results.append(measure_store("sqlite", services, topo, args))
    if neo4j is not None:
        with loaded_services(topo.batch, neo4j, OUT / "impact-neo4j") as services:
            if not check_matches(services, topo):
                raise BenchError("Neo4j does not hold the generated topology after the load")
            results.append(measure_store("neo4j", services, topo, args))
    return results


def measure_store(
    store: str, services: Services, topo: Topology, args: argparse.Namespace
) -> SizeResult:
    start = time.perf_counter()
    graph = services.impact.refresh()
    projection_s = time.perf_counter() - start
    start = time.perf_counter()
    csr = impact_csr(graph)
    csr_s = time.perf_counter() - start
    switches = choose_switches(services, topo, args.switches, args.seed)
    # Steady state of a long-running service: the projection's objects are old, not
    # garbage a collection is about to look at.
    gc.collect()
    collections_before = sum(s["collections"] for s in gc.get_stats())
    results = [
        measure_switch(services, csr, topo, key, ci_id, args.iterations, args.warmup)
        for key, ci_id in switches
    ]
    collections = sum(s["collections"] for s in gc.get_stats()) - collections_before
    result = SizeResult(
        store, topo.ci_count, topo.relationship_count, projection_s, csr_s, results, collections
    )
    print_size(result)
    return result


# -- reporting ------------------------------------------------------------------------------


def print_size(r: SizeResult) -> None:
    print(
        f"[{r.store}] projection built in {r.projection_s:.2f} s, scipy CSR in {r.csr_s:.2f} s; "
        f"times in ms; ratio = impact p50 / scipy BFS p50, ids/BFS = affected_ids p50 / BFS p50"
    )
    print(
        f"{'distribution switch':<20}{'affected':>9}{'degr.':>6}{'svcs':>5}{'edges':>7}"
        f"{'impact p50':>11}{'p99':>7}{'ids p50':>9}{'p99':>7}"
        f"{'BFS p50':>9}{'p99':>7}{'BFS reach':>10}{'ratio':>7}{'ids/BFS':>8}"
    )
    for s in r.switches:
        print(
            f"{s.key:<20}{s.affected:>9,}{s.degraded:>6}{s.services:>5}{s.edges_scanned:>7,}"
            f"{s.impact.p50:>11.3f}{s.impact.p99:>7.3f}{s.ids.p50:>9.3f}{s.ids.p99:>7.3f}"
            f"{s.bfs.p50:>9.3f}{s.bfs.p99:>7.3f}{s.bfs_reached:>10,}"
            f"{s.impact.p50 / s.bfs.p50:>7.2f}{s.ids.p50 / s.bfs.p50:>8.2f}"
        )


def print_summary(results: list[SizeResult]) -> None:
    print("\n== summary: all chosen switches pooled (ms)")
    print(
        f"{'store':<8}{'CIs':>9}{'rels':>10}{'projection s':>13}{'affected':>13}"
        f"{'impact p50':>11}{'p99':>7}{'max':>8}"
        f"{'ids p50':>9}{'p99':>7}{'BFS p50':>9}{'p99':>7}{'ratio':>7}{'ids/BFS':>8}"
        f"{'us/affected':>12}"
        f"{'gc':>4}  target"
    )
    for r in results:
        impact, ids, bfs = r.pooled("impact"), r.pooled("ids"), r.pooled("bfs")
        affected = [s.affected for s in r.switches]
        # mean time per affected CI: flat across sizes when cost follows the subgraph
        per_affected = statistics.fmean(
            s.impact.p50 * 1000 / max(s.affected, 1) for s in r.switches
        )
        met = impact.p50 <= TARGET_P50_MS and impact.p99 <= TARGET_P99_MS
        print(
            f"{r.store:<8}{r.cis:>9,}{r.relationships:>10,}{r.projection_s:>13.2f}"
            f"{min(affected):>6,}-{max(affected):<6,}"
            f"{impact.p50:>11.3f}{impact.p99:>7.3f}{max(impact.samples_ms):>8.2f}"
            f"{ids.p50:>9.3f}{ids.p99:>7.3f}{bfs.p50:>9.3f}{bfs.p99:>7.3f}"
            f"{impact.p50 / bfs.p50:>7.2f}{ids.p50 / bfs.p50:>8.2f}"
            f"{per_affected:>12.2f}{r.gc_collections:>4}  "
            f"{'met' if met else 'MISSED'}"
        )
    print(
        f"targets: impact p50 <= {TARGET_P50_MS} ms, p99 <= {TARGET_P99_MS} ms; "
        "gc = garbage collections during the timed calls"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Impact analysis latency benchmark.")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[30_000, 100_000, 300_000], help="CI counts"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--switches", type=int, default=8, help="distribution switches per size")
    parser.add_argument("--iterations", type=int, default=200, help="timed calls per switch")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--fresh", action="store_true", help="reload instead of the cache")
    parser.add_argument(
        "--store", choices=("sqlite", "neo4j", "both"), default="sqlite", help="where the graph is"
    )
    args = parser.parse_args(argv)
    try:
        with ExitStack() as stack:
            neo4j = stack.enter_context(neo4j_server("impact")) if args.store != "sqlite" else None
            results = [r for cis in args.sizes for r in run_size(cis, args, neo4j)]
    except (BenchError, LoadFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_summary(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
