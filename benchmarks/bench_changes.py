"""Change and problem management on the generated estate (100,000 CIs by default).

The graph is the cached store of ``bench_impact`` (``benchmarks/out/graph-<cis>-<seed>.sqlite3``,
built by its ``cached_store`` when missing or out of date), copied with SQLite's backup API
into a temporary directory, where ``bootstrap`` wires the services: the cache is never
written. Into the copy, straight through ``services.tickets.unit()``:

- ``--changes`` (1,000) changes, ``SCHEDULED``, each on 1-3 random CIs (any class but
  interfaces and locations: what people plan changes on) in a random 1-4 h window of the
  30 days from ``START`` (windows on the quarter hour), and 5 freeze windows in the same
  period (every CI for 2 days; five business services, one business service, a core
  switch, a distribution switch for 1-3 days each);
- ``--incidents`` (5,000) monitoring incidents opened in the 30 days before ``START``, each
  rooted on a random CI (any class but locations), a tenth of them still in progress.

Then, after the heap is settled as the API process settles it (``settle_heap``):

1. **change risk** (``ChangeAnalysis.risk``) of a draft change on one CI, for
   ``--risk-calls`` (200) random CIs of each kind: core switch, distribution switch,
   access switch, server, an application a business service depends on directly (a
   frontend); p50 / p99 / max;
2. **conflicts of one change** (``ChangeAnalysis.conflicts``) for ``--conflict-calls``
   (200) random stored changes, against the others and the freeze windows; p50 / p99;
3. **the change calendar** of the 30 days (``ChangeService.calendar``: the period's
   changes and freezes, every change's conflicts by ``conflicts_among``): one call, wall
   and CPU time;
4. **problem candidates** (``correlation.problems.problem_candidates``, the top 20) over
   the incidents of the 30 days: one call, wall and CPU time.

Our own targets, chosen because risk is computed inline on every create and edit of a
change, and conflicts are shown when one is opened: risk p50 <= 50 ms and p99 <= 250 ms for
a single-CI change of every kind; conflicts p50 <= 200 ms; the 30-day calendar <= 5 s;
problem candidates over 5,000 incidents <= 10 s.

    python -m benchmarks.bench_changes
    python -m benchmarks.bench_changes --cis 30000 --risk-calls 50

Exit status: 0 whatever the timings; 1 on errors (a store that does not hold the
generated graph, a change's conflicts that differ from the calendar's, candidates that
contradict themselves).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from benchmarks.bench_impact import BenchError, Timings, cached_store, check_matches
from benchmarks.topology import SOURCE, Topology, build
from servicegraph.bootstrap import Services, bootstrap
from servicegraph.config import Settings
from servicegraph.correlation.problems import problem_candidates
from servicegraph.runtime.heap import settle_heap
from servicegraph.ticketing.change_conflicts import Conflict
from servicegraph.ticketing.change_model import Change, ChangeRisk, ChangeStatus, FreezeWindow
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Incident

START = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)  # the period's start: "now" for the desk
PERIOD = dt.timedelta(days=30)
BATCH = 1_000  # incidents per unit
TARGET_RISK_P50_MS = 50.0
TARGET_RISK_P99_MS = 250.0
TARGET_CONFLICTS_P50_MS = 200.0
TARGET_CALENDAR_S = 5.0
TARGET_CANDIDATES_S = 10.0
KINDS = (
    "core switch",
    "distribution switch",
    "access switch",
    "server",
    "business service's application",
)


# -- the estate -----------------------------------------------------------------------------


@dataclass
class Estate:
    """The CI ids the benchmark draws from, resolved in the store from the generator's keys."""

    cis: int
    relationships: int
    kinds: dict[str, list[str]]  # the risk kinds -> their CIs
    changeable: list[str]  # what changes are planned on: no interfaces, no locations
    roots: list[str]  # what incidents are rooted on: no locations
    services: list[str]  # business services


def estate_of(topo: Topology, services: Services) -> Estate:
    batch = topo.batch
    classes = {c.key: c.ci_class for c in batch.cis if c.key is not None}
    roles = {
        c.key: c.attributes.get("role")
        for c in batch.cis
        if c.key is not None and c.ci_class == "network_device"
    }
    business = {k for k, ci_class in classes.items() if ci_class == "business_service"}
    frontends = {
        r.to_ref.key
        for r in batch.relationships
        if r.type == "DEPENDS_ON" and r.from_ref.key in business and r.to_ref.key is not None
    }
    keys: dict[str, list[str]] = {
        "core switch": sorted(k for k, role in roles.items() if role == "core"),
        "distribution switch": list(topo.distribution_keys),
        "access switch": sorted(k for k, role in roles.items() if role == "access"),
        "server": sorted(k for k, ci_class in classes.items() if ci_class == "server"),
        "business service's application": sorted(frontends),
    }
    all_keys = list(classes)
    found = services.store.resolve_keys(all_keys, source=SOURCE)
    missing = [k for k in all_keys if len(found.get(k, ())) != 1]
    if missing:
        raise BenchError(f"{len(missing):,} generated CIs are not in the store: {missing[:5]}")
    ids = {k: next(iter(found[k])) for k in all_keys}
    return Estate(
        cis=topo.ci_count,
        relationships=topo.relationship_count,
        kinds={kind: [ids[k] for k in keys[kind]] for kind in KINDS},
        changeable=[ids[k] for k in all_keys if classes[k] not in ("interface", "location")],
        roots=[ids[k] for k in all_keys if classes[k] != "location"],
        services=[ids[k] for k in all_keys if k in business],
    )


def copy_store(path: Path, data: Path) -> None:
    """The cache copied page by page into ``data`` (a WAL it may still have comes along)."""
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    target = sqlite3.connect(data / "servicegraph.sqlite3")
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def open_copy(topo: Topology, args: argparse.Namespace, data: Path) -> Services:
    """Services over a copy of the cached store, rebuilt once when it no longer matches."""
    path = cached_store(args.cis, args.seed, fresh=args.fresh, topo=topo)
    for attempt in range(2):
        start = time.perf_counter()
        (data / "servicegraph.sqlite3").unlink(missing_ok=True)
        copy_store(path, data)
        services = bootstrap(Settings(data_dir=data, embedded_worker=False))
        print(f"  {path.name} copied and opened in {time.perf_counter() - start:.1f} s", flush=True)
        if check_matches(services, topo):
            return services
        services.close()
        if attempt == 0:
            print("  the cached store does not match the generator; rebuilding", flush=True)
            path = cached_store(args.cis, args.seed, fresh=True, topo=topo)
    raise BenchError(f"{path} does not hold the generated topology")


# -- what is written ------------------------------------------------------------------------


def make_changes(estate: Estate, count: int, rng: random.Random) -> list[Change]:
    quarters = int((PERIOD - dt.timedelta(hours=4)) / dt.timedelta(minutes=15))
    changes = []
    for number in range(1, count + 1):
        ci_ids = rng.sample(estate.changeable, rng.randint(1, 3))
        start = START + dt.timedelta(minutes=15 * rng.randrange(quarters + 1))
        end = start + dt.timedelta(minutes=15 * rng.randint(4, 16))  # 1 .. 4 hours
        created = START - dt.timedelta(days=rng.randint(1, 14))
        changes.append(
            Change(
                id=f"chg-bench{number:05d}",
                number=number,
                title=f"Maintenance {number}",
                status=ChangeStatus.SCHEDULED,
                risk=ChangeRisk.LOW,
                created_at=created,
                updated_at=created,
                created_by="bench",
                ci_ids=ci_ids,
                planned_start=start,
                planned_end=end,
            )
        )
    return changes


def make_freezes(estate: Estate, rng: random.Random) -> list[FreezeWindow]:
    specs: list[tuple[str, str, tuple[str, ...], int]] = [
        ("Month-end close", "finance closes the books", (), 2),
        ("Payroll run", "payroll", tuple(rng.sample(estate.services, 5)), rng.randint(1, 3)),
        ("Product launch", "marketing launch", (rng.choice(estate.services),), rng.randint(1, 3)),
        ("Core audit", "network audit", (rng.choice(estate.kinds["core switch"]),), 1),
        (
            "Block migration",
            "cabling work",
            (rng.choice(estate.kinds["distribution switch"]),),
            rng.randint(1, 3),
        ),
    ]
    freezes = []
    for i, (name, reason, ci_ids, days) in enumerate(specs, start=1):
        starts = START + dt.timedelta(days=rng.randrange(PERIOD.days - days + 1))
        freezes.append(
            FreezeWindow(
                id=f"frz-bench{i}",
                name=name,
                starts_at=starts,
                ends_at=starts + dt.timedelta(days=days),
                created_at=START - PERIOD,
                created_by="bench",
                reason=reason,
                ci_ids=ci_ids,
            )
        )
    return freezes


def make_incidents(estate: Estate, count: int, rng: random.Random) -> list[Incident]:
    incidents = []
    minutes = int(PERIOD / dt.timedelta(minutes=1))
    for number in range(1, count + 1):
        opened = START - dt.timedelta(minutes=rng.randrange(10, minutes))
        open_ = rng.random() < 0.1
        resolved = None if open_ else opened + dt.timedelta(minutes=rng.randrange(5, 8 * 60))
        incidents.append(
            Incident(
                id=f"inc-chg{number:05d}",
                number=number,
                title=f"Monitoring incident {number}",
                status=TicketStatus.IN_PROGRESS if open_ else TicketStatus.RESOLVED,
                opened_at=opened,
                updated_at=resolved or opened,
                last_alert_at=opened,
                priority=rng.randint(1, 5),
                root_ci_id=rng.choice(estate.roots),
                alert_count=rng.randint(1, 3),
                resolved_at=resolved,
            )
        )
    return incidents


def write(
    services: Services,
    changes: list[Change],
    freezes: list[FreezeWindow],
    incidents: list[Incident],
) -> float:
    start = time.perf_counter()
    with services.tickets.unit() as unit:
        for change in changes:
            unit.save_change(change)
        for freeze in freezes:
            unit.save_freeze_window(freeze)
    for i in range(0, len(incidents), BATCH):
        with services.tickets.unit() as unit:
            unit.save_incidents(incidents[i : i + BATCH])
    return time.perf_counter() - start


# -- measurements ---------------------------------------------------------------------------


@dataclass
class Latency:
    measure: str
    timings: Timings
    p50_target: float
    p99_target: float | None
    detail: str

    @property
    def met(self) -> bool:
        p99_ok = self.p99_target is None or self.timings.p99 <= self.p99_target
        return self.timings.p50 <= self.p50_target and p99_ok


@dataclass
class OneCall:
    measure: str
    wall_s: float
    cpu_s: float
    target_s: float
    detail: str


T = TypeVar("T")


def timed(call: Callable[[], T]) -> tuple[float, float, T]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def measure_risk(
    services: Services, estate: Estate, kind: str, calls: int, warmup: int, rng: random.Random
) -> Latency:
    analysis = services.desk.changes.analysis
    chosen = [rng.choice(estate.kinds[kind]) for _ in range(calls)]

    def probe(ci_id: str) -> Change:
        return Change(
            id="chg-probe",
            number=0,
            title="probe",
            status=ChangeStatus.DRAFT,
            risk=ChangeRisk.LOW,
            created_at=START,
            updated_at=START,
            created_by="bench",
            ci_ids=[ci_id],
        )

    for ci_id in chosen[:warmup]:
        analysis.risk(probe(ci_id))
    timings = Timings()
    levels: Counter[str] = Counter()
    at_stake: list[int] = []
    clock = time.perf_counter
    for ci_id in chosen:
        change = probe(ci_id)
        start = clock()
        risk = analysis.risk(change)
        timings.add(clock() - start)
        levels[risk.level.value] += 1
        at_stake.append(len(risk.services))
    at_stake.sort()
    spread = ", ".join(f"{level} {n}" for level, n in sorted(levels.items()))
    detail = (
        f"{len(estate.kinds[kind]):,} CIs of the kind; levels: {spread}; "
        f"services at stake median {at_stake[len(at_stake) // 2]}, max {at_stake[-1]}"
    )
    return Latency(f"risk: {kind}", timings, TARGET_RISK_P50_MS, TARGET_RISK_P99_MS, detail)


def measure_conflicts(
    services: Services,
    changes: list[Change],
    calls: int,
    warmup: int,
    rng: random.Random,
) -> tuple[Latency, dict[str, list[Conflict]]]:
    analysis = services.desk.changes.analysis
    chosen = [rng.choice(changes) for _ in range(calls)]
    for change in chosen[:warmup]:
        analysis.conflicts(change)
    timings = Timings()
    found: dict[str, list[Conflict]] = {}
    clock = time.perf_counter
    for change in chosen:
        start = clock()
        conflicts = analysis.conflicts(change)
        timings.add(clock() - start)
        found[change.id] = list(conflicts)
    counts = [len(c) for c in found.values()]
    with_any = sum(1 for n in counts if n)
    detail = (
        f"{len(found)} distinct changes; {with_any} with conflicts, "
        f"{sum(counts) / len(counts):.2f} conflicts a change, at most {max(counts)}"
    )
    latency = Latency(
        f"conflicts of one change ({len(changes):,} changes, 5 freezes)",
        timings,
        TARGET_CONFLICTS_P50_MS,
        None,
        detail,
    )
    return latency, found


def measure_calendar(services: Services, one_by_one: dict[str, list[Conflict]]) -> OneCall:
    changes = services.desk.changes
    wall, cpu, calendar = timed(lambda: changes.calendar(START, START + PERIOD))
    conflicts = calendar.conflicts
    for change_id, alone in one_by_one.items():
        if conflicts.get(change_id) != alone:
            raise BenchError(
                f"{change_id}: the calendar's conflicts differ from ChangeAnalysis.conflicts"
            )
    total = sum(len(c) for c in conflicts.values())
    with_any = sum(1 for c in conflicts.values() if c)
    detail = (
        f"{len(calendar.changes):,} changes, {len(calendar.freeze_windows)} freezes; "
        f"{with_any:,} changes with conflicts, {total:,} conflicts"
    )
    return OneCall("change calendar, 30 days", wall, cpu, TARGET_CALENDAR_S, detail)


def measure_candidates(services: Services, incidents: int) -> OneCall:
    wall, cpu, candidates = timed(
        lambda: problem_candidates(services.correlator, since=START - PERIOD, until=START)
    )
    if not candidates:
        raise BenchError("no problem candidates over the generated incidents")
    for c in candidates:
        if len(c.incident_ids) != c.incidents_explained or c.as_root > c.incidents_explained:
            raise BenchError(f"candidate {c.name}: its counts contradict its incidents")
    explained = [c.incidents_explained for c in candidates]
    if explained != sorted(explained, reverse=True):
        raise BenchError("problem candidates are not ranked by incidents explained")
    top = "; ".join(f"{c.name} ({c.ci_class}) {c.incidents_explained}" for c in candidates[:3])
    detail = f"{len(candidates)} candidates; top: {top}"
    return OneCall(
        f"problem candidates, {incidents:,} incidents", wall, cpu, TARGET_CANDIDATES_S, detail
    )


# -- reporting ------------------------------------------------------------------------------


def print_results(
    estate: Estate, seed: int, latencies: list[Latency], calls: list[OneCall]
) -> None:
    print(
        f"\nchange and problem management, {estate.cis:,} CIs, "
        f"{estate.relationships:,} relationships, seed {seed} ({dt.date.today()})"
    )
    print(f"{'measure':<58}{'calls':>6}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  target")
    for r in latencies:
        t = r.timings
        target = f"p50 <= {r.p50_target:g}" + (
            f", p99 <= {r.p99_target:g}" if r.p99_target is not None else ""
        )
        print(
            f"{r.measure:<58}{len(t.samples_ms):>6}{t.p50:>9.2f}{t.p99:>9.2f}"
            f"{max(t.samples_ms):>9.2f}  {'met' if r.met else 'MISSED'} ({target} ms)"
        )
    print(f"{'measure':<58}{'calls':>6}{'wall s':>9}{'CPU s':>9}{'':>9}  target")
    for c in calls:
        met = "met" if c.wall_s <= c.target_s else "MISSED"
        print(
            f"{c.measure:<58}{1:>6}{c.wall_s:>9.2f}{c.cpu_s:>9.2f}{'':>9}  "
            f"{met} (<= {c.target_s:g} s)"
        )
    print()
    details = [(r.measure, r.detail) for r in latencies] + [(c.measure, c.detail) for c in calls]
    for measure, detail in details:
        print(f"  {measure}: {detail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Change and problem management benchmark.")
    parser.add_argument("--cis", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--risk-calls", type=int, default=200, help="timed calls per CI kind")
    parser.add_argument("--changes", type=int, default=1_000, help="changes in the 30 days")
    parser.add_argument("--conflict-calls", type=int, default=200)
    parser.add_argument("--incidents", type=int, default=5_000)
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls before each kind")
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached store")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    topo = build(args.cis, args.seed)
    print(
        f"generated {topo.ci_count:,} CIs, {topo.relationship_count:,} relationships "
        f"in {time.perf_counter() - start:.1f} s",
        flush=True,
    )
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-changes-") as tmp:
        services = open_copy(topo, args, Path(tmp))
        try:
            estate = estate_of(topo, services)
            del topo  # its millions of objects are no part of a serving process
            start = time.perf_counter()
            services.impact.refresh()
            print(f"  impact projection built in {time.perf_counter() - start:.1f} s", flush=True)
            changes = make_changes(estate, args.changes, rng)
            freezes = make_freezes(estate, rng)
            incidents = make_incidents(estate, args.incidents, rng)
            wrote = write(services, changes, freezes, incidents)
            print(
                f"  wrote {len(changes):,} changes, {len(freezes)} freeze windows and "
                f"{len(incidents):,} incidents in {wrote:.1f} s",
                flush=True,
            )
            settle_heap()  # as the API process does once it has loaded what it keeps
            latencies = []
            for kind in KINDS:
                print(f"  timing risk: {kind} ...", flush=True)
                latencies.append(
                    measure_risk(services, estate, kind, args.risk_calls, args.warmup, rng)
                )
            print("  timing conflicts ...", flush=True)
            conflicts, one_by_one = measure_conflicts(
                services, changes, args.conflict_calls, args.warmup, rng
            )
            latencies.append(conflicts)
            print("  timing the calendar and the problem candidates ...", flush=True)
            calls = [
                measure_calendar(services, one_by_one),
                measure_candidates(services, len(incidents)),
            ]
        finally:
            services.close()
    print_results(estate, args.seed, latencies, calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
