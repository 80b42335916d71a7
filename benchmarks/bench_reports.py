"""The desk's reports over the 1,000,000-ticket desk of ``bench_desk``: MTTR and SLA
compliance by group for a year (the issue's target: <= 2 s each), and the other reports
for the record, in-process through ``ReportService`` over ``SqliteReportStore``.

The desk is ``bench_desk.cached_desk``'s file (built once, cached under benchmarks/out/),
copied to ``benchmarks/out/desk-reports-<tickets>-<seed>.sqlite3`` so that the desk
benchmark's cache stays as it built it. The generator writes tickets without SLA clocks
or first responses, so the copy gets them by plain SQL once (``fill``), not by the SLA
projection (whose cost is the SLA benchmark's): each ticket's first response a few
minutes to four hours after opening, and a ``ticket_sla`` row per ticket on a 24x7
calendar with the targets P1 15m/4h, P2 1h/8h, P3 4h/24h, P4 8h/72h, P5 16h/120h: elapsed
= calendar time to the response or resolution (or to the desk's end for a clock still
running), met / missed / breached / ok by the target. The reports only read those rows,
as they read the projection's.

Each report runs ``--runs`` times (p50 and the slowest printed); the figures of the last
run are checked against a plain count (rows add up to the tickets resolved in the year,
met + missed to the clocks stopped) and printed.

    python -m benchmarks.bench_reports                    # 1,000,000 tickets
    python -m benchmarks.bench_reports --tickets 100000 --runs 3

Exit status: 0 whatever the timings; 1 on errors (figures that do not add up).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_desk import OUT, cached_desk
from benchmarks.desk_generator import END, DeskShape
from servicegraph.storage.sqlite import SqliteGraphStore
from servicegraph.storage.sqlite.file import to_us
from servicegraph.storage.sqlite.reports import SqliteReportStore
from servicegraph.ticketing.report_service import ReportService
from servicegraph.ticketing.reports import (
    ComplianceRow,
    DurationRow,
    Report,
    report_query,
)

TARGET_S = 2.0
YEAR = ("2025-12-01", "2026-11-30")  # the desk's last year (END is 2026-12-01)
TARGETS_S = {1: (900, 4 * 3600), 2: (3600, 8 * 3600), 3: (4 * 3600, 24 * 3600),
             4: (8 * 3600, 72 * 3600), 5: (16 * 3600, 120 * 3600)}  # fmt: skip


YEARLY = {"start": YEAR[0], "end": YEAR[1]}
# (what, every run or half of them, judged against the target, report, options)
CASES: list[tuple[str, bool, bool, str, dict[str, str]]] = [
    ("MTTR by group, one year", True, True, "mttr", {"by": "group", **YEARLY}),
    ("SLA compliance by group, one year", True, True, "sla", {"by": "group", **YEARLY}),
    ("MTTA by group, one year", True, False, "mtta", {"by": "group", **YEARLY}),
    ("MTTR by priority per month, one year", True, False, "mttr",
     {"by": "priority", "per": "month", **YEARLY}),
    ("volume by service per week, one year", True, False, "volume",
     {"by": "service", "per": "week", **YEARLY}),
    ("backlog by group now", True, False, "backlog", {"by": "group"}),
    ("backlog per day, one year", False, False, "backlog", {"per": "day", **YEARLY}),
    ("reopens by group, one year", True, False, "reopens", {"by": "group", **YEARLY}),
    ("reassignments by agent, one year", True, False, "reassignments",
     {"by": "agent", **YEARLY}),
    ("MTTR by CI, one year", False, False, "mttr", {"by": "ci", **YEARLY}),
]  # fmt: skip


class BenchError(Exception):
    """Figures that do not add up, not merely slow."""


def report_copy(shape: DeskShape, batch: int, *, fresh: bool) -> Path:
    """The desk's file with first responses and SLA clocks, copied once from bench_desk's."""
    source, _ = cached_desk(shape, batch, fresh=fresh)
    path = OUT / f"desk-reports-{shape.tickets}-{shape.seed}.sqlite3"
    if path.exists() and not fresh and path.stat().st_mtime >= source.stat().st_mtime:
        return path
    work = path.with_name(path.name + ".building")
    print(f"copying {source.name} and filling SLA clocks by SQL into {path.name}...")
    shutil.copyfile(source, work)
    start = time.perf_counter()
    fill(work)
    print(f"  filled in {time.perf_counter() - start:.1f} s")
    work.replace(path)
    return path


def fill(path: Path) -> None:
    conn = sqlite3.connect(path)
    end = to_us(END)
    targets = " ".join(f"WHEN {p} THEN {r}" for p, (r, _) in TARGETS_S.items())
    resolution_targets = " ".join(f"WHEN {p} THEN {s}" for p, (_, s) in TARGETS_S.items())
    try:
        conn.executescript(
            f"""
            UPDATE incident SET first_response_at = opened_at
                + (60 + (number * 7919) % 14340) * 1000000
                WHERE status != 'new';
            UPDATE incident SET first_response_at = min(first_response_at, resolved_at)
                WHERE resolved_at IS NOT NULL;
            DELETE FROM ticket_sla;
            CREATE TEMP TABLE clocks AS SELECT id, priority, updated_at,
                CASE priority {targets} END AS rt,
                CASE priority {resolution_targets} END AS st,
                (coalesce(first_response_at, {end}) - opened_at) / 1e6 AS re,
                first_response_at AS rstop,
                (CASE WHEN status IN ('resolved', 'closed', 'cancelled')
                    THEN coalesce(resolved_at, closed_at, updated_at)
                    ELSE {end} END - opened_at) / 1e6 AS se,
                CASE WHEN status IN ('resolved', 'closed', 'cancelled')
                    THEN coalesce(resolved_at, closed_at, updated_at) END AS sstop,
                opened_at
                FROM incident;
            INSERT INTO ticket_sla SELECT id, 'bench', '24x7', priority,
                rt, re, opened_at + CAST(rt * 1e6 AS INTEGER),
                CASE WHEN rstop IS NOT NULL THEN (CASE WHEN re <= rt THEN 'met' ELSE 'missed' END)
                     ELSE (CASE WHEN re >= rt THEN 'breached' ELSE 'ok' END) END,
                0, rstop, CASE WHEN re > rt THEN opened_at + CAST(rt * 1e6 AS INTEGER) END,
                st, se, opened_at + CAST(st * 1e6 AS INTEGER),
                CASE WHEN sstop IS NOT NULL THEN (CASE WHEN se <= st THEN 'met' ELSE 'missed' END)
                     ELSE (CASE WHEN se >= st THEN 'breached' ELSE 'ok' END) END,
                0, sstop, CASE WHEN se > st THEN opened_at + CAST(st * 1e6 AS INTEGER) END,
                NULL, updated_at, 'bench'
                FROM clocks;
            DROP TABLE clocks;
            """
        )
        conn.commit()
    finally:
        conn.close()


@dataclass
class Measured:
    name: str
    seconds: list[float]  # wall time of each run
    cpu: list[float]  # this process's CPU time of each run (the host is shared)
    report: Report
    target: bool = False

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)


def measure(
    service: ReportService, name: str, runs: int, target: bool, report: str, **options: str
) -> Measured:
    query = report_query(report, **options)
    seconds: list[float] = []
    cpu: list[float] = []
    result = None
    for _ in range(runs):
        start, used = time.perf_counter(), time.process_time()
        result = service.run(query)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - used)
    assert result is not None
    return Measured(name, seconds, cpu, result, target)


def check(path: Path, mttr: Report, sla: Report) -> None:
    """The figures add up to plain counts of the same tickets."""
    start, end = to_us(mttr.query.start), to_us(mttr.query.end)  # type: ignore[arg-type]
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        resolved, met, missed = conn.execute(
            "SELECT count(*), sum(s.resolution_state = 'met'), sum(s.resolution_state = 'missed') "
            "FROM incident AS i JOIN ticket_sla AS s ON s.ticket_id = i.id "
            "WHERE i.status IN ('resolved', 'closed') "
            "AND coalesce(i.resolved_at, i.closed_at) >= ? "
            "AND coalesce(i.resolved_at, i.closed_at) < ?",
            (start, end),
        ).fetchone()
    finally:
        conn.close()
    rows = [r for r in mttr.rows if isinstance(r, DurationRow)]
    if sum(r.calendar.count for r in rows) != resolved:
        raise BenchError(
            f"MTTR by group counts {sum(r.calendar.count for r in rows)}, not {resolved}"
        )
    compliance = [r for r in sla.rows if isinstance(r, ComplianceRow)]
    got = (sum(r.resolution.met for r in compliance), sum(r.resolution.missed for r in compliance))
    if got != (met, missed):
        raise BenchError(f"resolution clocks met/missed {got}, expected {(met, missed)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    path = report_copy(
        DeskShape(tickets=args.tickets, seed=args.seed), args.batch, fresh=args.fresh
    )
    file = SqliteGraphStore(path, lock_timeout=60, read_only=True)
    service = ReportService(SqliteReportStore(file), clock=lambda: END)
    runs = args.runs
    try:
        measured = [
            measure(service, name, runs if full else max(1, runs // 2), target, report, **opts)
            for name, full, target, report, opts in CASES
        ]
        gauges = []
        for _ in range(runs):
            start = time.perf_counter()
            service.gauges()
            gauges.append(time.perf_counter() - start)
        check(path, measured[0].report, measured[1].report)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        file.close()
    print(f"\n{args.tickets:,} tickets; {runs} runs each (p50, slowest); target {TARGET_S:g} s")
    print(f"{'report':<42} {'rows':>6} {'p50 s':>8} {'max s':>8} {'cpu p50':>8}  target")
    for m in measured:
        verdict = ("met" if m.p50 <= TARGET_S else "MISSED") if m.target else "-"
        cpu = statistics.median(m.cpu)
        print(
            f"{m.name:<42} {len(m.report.rows):>6} {m.p50:>8.3f} {max(m.seconds):>8.3f} "
            f"{cpu:>8.3f}  {verdict}"
        )
    scrape = statistics.median(gauges)
    print(f"{'/metrics gauges (scrape)':<42} {'':>6} {scrape:>8.3f} {max(gauges):>8.3f}  -")
    mttr = [r for r in measured[0].report.rows if isinstance(r, DurationRow)]
    sla = [r for r in measured[1].report.rows if isinstance(r, ComplianceRow)]
    resolved = sum(r.calendar.count for r in mttr)
    mean_h = sum((r.calendar.mean_s or 0) * r.calendar.count for r in mttr) / resolved / 3600
    met = sum(r.resolution.met for r in sla)
    missed = sum(r.resolution.missed for r in sla)
    largest = max(mttr, key=lambda r: r.calendar.count)
    print(
        f"\nfigures: {resolved:,} tickets resolved in the year over {len(mttr)} groups, mean "
        f"time to resolve {mean_h:.1f} h; {largest.key}: {largest.calendar.count:,} resolved, "
        f"median {(largest.calendar.median_s or 0) / 3600:.2f} h, p90 "
        f"{(largest.calendar.p90_s or 0) / 3600:.1f} h; resolution compliance "
        f"{met / (met + missed):.1%} ({met:,} met, {missed:,} missed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
