"""The history import (``servicegraph import-tickets --format servicenow-event-log``):
log rows per second, store writes included, on the real log slice and on a generated log
of 1,000,000 rows.

The slice is tests/data/servicenow/uci-incident-log-slice.csv (the first 5,998 rows, 890
incidents, of the "Incident management process enriched event log": Amaral, Fantinato,
Peres 2018, UCI Machine Learning Repository, DOI 10.24432/C57S4H, CC BY 4.0). The
generated log repeats the slice's incidents with new numbers (``INC1000000`` up), each
copy shifted by ``SHIFT`` so that the copies spread over about a year as the whole log
does, cut at exactly ``--rows`` rows; it is cached under benchmarks/out/ as
``servicenow-log-<rows>.csv`` beside a ``.json`` saying what made it (rebuilt when the
slice or the generator changed, or with ``--fresh``).

Measures, each into a fresh data directory through ``bootstrap`` and
``HistoryImport.run`` (what the CLI calls: parse, rebuild, people, ``refs_known``, the
units' ``save_incidents`` + ``append_worklog``, the SLA projection at each commit):

- the slice read only (``EventLogReader``: CSV, times, the history; no store), best of 5;
- the slice imported, best of 3, without SLA policy and with the issue's policy (P1 4 h,
  P2 8 h, P3 24 h, P4 72 h on the 24x7 calendar: every unit's commit then projects the
  clocks of the tickets it saved);
- the slice imported again (everything skipped: reading and ``refs_known`` only);
- the generated log imported once, without and with the policy.

Target (the issue's): >= 20,000 log rows/s, store writes included, on the slice and on the
1M-row log. Every import is checked (incidents created = incidents in the log, a re-run
creates none); a wrong count exits 1.

    python -m benchmarks.bench_history_import                # slice + 1,000,000 rows
    python -m benchmarks.bench_history_import --rows 200000  # a smaller generated log
    python -m benchmarks.bench_history_import --rows 0       # the slice only
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servicegraph.bootstrap import bootstrap
from servicegraph.config import Settings
from servicegraph.ticketing.history_import import ImportReport, LogFormat
from servicegraph.ticketing.servicenow_log import EventLogReader

OUT = Path(__file__).resolve().parent / "out"
SLICE = Path(__file__).resolve().parents[1] / "tests/data/servicenow/uci-incident-log-slice.csv"
TARGET_ROWS_S = 20_000
GENERATOR = 1  # bump when the generated log's shape changes: cached files are rebuilt
SHIFT = dt.timedelta(minutes=3_137)  # per copy: 167 copies of the slice span a year
FIRST_NUMBER = 1_000_000
TIME_COLUMNS = ("opened_at", "sys_created_at", "sys_updated_at", "resolved_at", "closed_at")
TIME_FORMAT = "%d-%m-%Y %H:%M"
SLA_POLICY: dict[str, Any] = {
    "policies": [
        {
            "name": "issue-17",
            "calendar": "24x7",
            "targets": {
                1: {"response": "1h", "resolution": "4h"},
                2: {"response": "2h", "resolution": "8h"},
                3: {"response": "4h", "resolution": "24h"},
                4: {"response": "8h", "resolution": "72h"},
            },
        }
    ]
}


class BenchError(Exception):
    pass


@dataclass(frozen=True)
class Result:
    measure: str
    rows: int
    incidents: int
    wall_s: float
    cpu_s: float
    judged: bool = True  # against the target

    @property
    def rate(self) -> float:
        return self.rows / self.wall_s

    @property
    def met(self) -> str:
        if not self.judged:
            return ""
        return "met" if self.rate >= TARGET_ROWS_S else "NOT met"


# -- the generated log -----------------------------------------------------------------------


def generated(rows: int, *, fresh: bool) -> Path:
    """The cached log of ``rows`` rows (built when missing or stale)."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"servicenow-log-{rows}.csv"
    meta = path.with_suffix(".json")
    want = {"rows": rows, "generator": GENERATOR, "slice_sha256": _sha256(SLICE)}
    if not fresh and path.is_file() and meta.is_file():
        if json.loads(meta.read_text()) == want:
            return path
        print(f"{path.name} does not match the generator; rebuilding")
    started = time.perf_counter()
    print(f"generating {rows:,} rows into {path.name} (cached for later runs)...")
    written = _write_log(path, rows)
    if written != rows:
        raise BenchError(f"generated {written:,} rows, wanted {rows:,}")
    meta.write_text(json.dumps(want))
    print(f"  done in {time.perf_counter() - started:.1f} s")
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_log(path: Path, rows: int) -> int:
    with SLICE.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        incidents: list[list[list[str]]] = []
        for cells in reader:
            if incidents and incidents[-1][0][0] == cells[0]:
                incidents[-1].append(cells)
            else:
                incidents.append([cells])
    at_number = header.index("number")
    at_times = [header.index(c) for c in TIME_COLUMNS]
    written = 0
    number = FIRST_NUMBER
    tmp = path.with_suffix(".part")
    with tmp.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        copy = 0
        while written < rows:
            shifted: dict[str, str] = {"?": "?"}
            offset = SHIFT * copy
            for incident in incidents:
                new = f"INC{number}"
                number += 1
                for cells in incident:
                    if written == rows:
                        break
                    row = list(cells)
                    row[at_number] = new
                    for i in at_times:
                        text = row[i]
                        moved = shifted.get(text)
                        if moved is None:
                            when = dt.datetime.strptime(text, TIME_FORMAT) + offset
                            moved = shifted[text] = when.strftime(TIME_FORMAT)
                        row[i] = moved
                    writer.writerow(row)
                    written += 1
                if written == rows:
                    break
            copy += 1
    tmp.replace(path)
    return written


def incidents_in(path: Path) -> tuple[int, int]:
    """(rows, distinct numbers) of a log, counted plainly."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        numbers = set()
        count = 0
        for cells in reader:
            numbers.add(cells[0])
            count += 1
    return count, len(numbers)


# -- the measures ---------------------------------------------------------------------------


@contextmanager
def data_dir() -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="bench-history-", dir=OUT))
    try:
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def settings(where: Path, *, sla: bool) -> Settings:
    desk: dict[str, Any] = {"sla": SLA_POLICY} if sla else {}
    return Settings(data_dir=where, desk=desk)


def timed_import(log: Path, where: Path, *, sla: bool) -> tuple[ImportReport, float, float]:
    services = bootstrap(settings(where, sla=sla))
    try:
        wall, used = time.perf_counter(), cpu()
        report = services.ticket_history.run(log, format=LogFormat.SERVICENOW_EVENT_LOG)
        return report, time.perf_counter() - wall, cpu() - used
    finally:
        services.close()


def read_only(log: Path) -> tuple[int, float, float]:
    reader = EventLogReader(name=log.name)
    wall, used = time.perf_counter(), cpu()
    incidents = sum(1 for _ in reader.read(log))
    return incidents, time.perf_counter() - wall, cpu() - used


def check(report: ImportReport, rows: int, incidents: int, *, created: int) -> None:
    if report.problems:
        raise BenchError(f"{len(report.problems)} problem(s), the first: {report.problems[0]}")
    if report.rows_read != rows or report.incidents_read != incidents:
        raise BenchError(
            f"read {report.rows_read:,} rows and {report.incidents_read:,} incidents; the log "
            f"has {rows:,} and {incidents:,}"
        )
    if report.created != created:
        raise BenchError(f"created {report.created:,} incidents, expected {created:,}")


def measure_log(label: str, log: Path, *, repeat: int, sla_too: bool, again: bool) -> list[Result]:
    rows, incidents = incidents_in(log)
    results = []
    best = min((read_only(log) for _ in range(repeat + 2)), key=lambda r: r[1])
    if best[0] != incidents:
        raise BenchError(f"the reader found {best[0]:,} incidents in {label}, not {incidents:,}")
    results.append(
        Result(f"{label}: read only (no store)", rows, incidents, best[1], best[2], False)
    )
    for sla in (False, True) if sla_too else (False,):
        runs = []
        for n in range(repeat):
            with data_dir() as where:
                report, wall, used = timed_import(log, where, sla=sla)
                check(report, rows, incidents, created=incidents)
                runs.append((wall, used))
                if again and not sla and n == 0:
                    report, wall2, used2 = timed_import(log, where, sla=sla)
                    check(report, rows, incidents, created=0)
                    results.append(
                        Result(f"{label}: re-run, all skipped", rows, incidents, wall2, used2)
                    )
        wall, used = min(runs)
        name = f"{label}: imported" + (" + SLA projection" if sla else "")
        results.append(Result(name, rows, incidents, wall, used))
    return results


def print_results(results: list[Result]) -> None:
    print(
        f"\n{'measure':<52}{'rows':>11}{'incidents':>11}{'wall s':>9}{'cpu s':>8}"
        f"{'rows/s':>10}  target"
    )
    for r in results:
        print(
            f"{r.measure:<52}{r.rows:>11,}{r.incidents:>11,}{r.wall_s:>9.2f}{r.cpu_s:>8.2f}"
            f"{r.rate:>10,.0f}  {r.met}"
        )
    print(f"target: >= {TARGET_ROWS_S:,} log rows/s, store writes included")


def run(args: argparse.Namespace) -> None:
    if not SLICE.is_file():
        raise BenchError(f"the log slice is not at {SLICE}")
    OUT.mkdir(exist_ok=True)
    results = measure_log("slice", SLICE, repeat=3, sla_too=True, again=True)
    if args.rows:
        log = generated(args.rows, fresh=args.fresh)
        results += measure_log(
            f"generated {args.rows:,}", log, repeat=1, sla_too=not args.no_sla, again=False
        )
    print_results(results)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:,.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="History import (ServiceNow event log) rows/s.")
    parser.add_argument("--rows", type=int, default=1_000_000, help="generated log; 0: none")
    parser.add_argument("--fresh", action="store_true", help="regenerate the cached log")
    parser.add_argument(
        "--no-sla", action="store_true", help="generated log: skip the run with the SLA policy"
    )
    args = parser.parse_args(argv)
    try:
        run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
