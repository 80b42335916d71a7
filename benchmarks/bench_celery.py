"""Correlation through Celery on Redis, with one and with two worker processes.

Sends ``--tasks`` ingest tasks of ``--per-task`` events each (the way a trap receiver or
poller hands batches over), each of which enqueues a correlation task, to real
``servicegraph worker`` processes on Redis (127.0.0.1:6379, database 14, flushed). Measures,
end to end, from the first task sent to the last event's effect committed: ingest tasks/s
(each also enqueues a correlation task) and events/s.

    python -m benchmarks.bench_celery [--cis 20000] [--tasks 400] [--per-task 100]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from benchmarks.bench_correlation import cached_graph, fresh_copy, make_events
from servicegraph import tasks
from servicegraph.bootstrap import bootstrap
from servicegraph.config import Settings
from servicegraph.events.wire import events_to_dicts

ROOT = Path(__file__).resolve().parents[1]
BROKER = "redis://127.0.0.1:6379/14"


def start_workers(count: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "servicegraph.cli",
                "worker",
                "-c",
                "1",
                "--loglevel",
                "ERROR",
            ],
            env=env,
            cwd=ROOT,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]


def run(workers: int, args: argparse.Namespace, graph: Path) -> tuple[float, int, int]:
    data = fresh_copy(graph, f"celery-run-{workers}")
    client = redis.Redis.from_url(BROKER)
    client.flushdb()
    settings = Settings(data_dir=data, broker_url=BROKER, schedule={})
    tasks.configure(settings)
    services = bootstrap(settings)
    graph_view = services.impact.refresh()
    ci_ids = [i for i, c in zip(graph_view.ids, graph_view.classes, strict=True) if c == "server"]
    events = make_events(ci_ids, args.tasks * args.per_task, seed=workers, mix="steady")
    batches = [
        events_to_dicts(events[i : i + args.per_task]) for i in range(0, len(events), args.per_task)
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SERVICEGRAPH_DATA_DIR": str(data),
        "SERVICEGRAPH_BROKER_URL": BROKER,
        "SERVICEGRAPH_SCHEDULE": "{}",
    }
    procs = start_workers(workers, env)
    try:
        time.sleep(3)  # let the workers connect and load the projection lazily
        tasks.correlate.delay()  # warm-up: every worker loads its projection
        started = time.perf_counter()
        for batch in batches:
            tasks.ingest.delay(batch)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            counts = {**services.inbox.counts(), **services.tickets.counts()}
            if counts["events"] == len(events) and counts["inbox_pending"] == 0:
                break
            time.sleep(0.05)
        else:
            raise SystemExit("timed out waiting for the workers")
        elapsed = time.perf_counter() - started
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        services.close()
    # each ingest task also enqueued a correlation task; those run until the inbox is
    # empty, so one may cover the events of many ingests
    return elapsed, len(batches), len(events)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cis", type=int, default=20_000)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--per-task", type=int, default=100)
    args = parser.parse_args(argv)
    graph = cached_graph(args.cis, 1)
    print(f"{args.tasks} ingest tasks x {args.per_task} events, graph of {args.cis:,} CIs")
    print(f"{'workers':>8} {'seconds':>8} {'ingest tasks/s':>15} {'events/s':>10}")
    for workers in (1, 2):
        elapsed, executed, events = run(workers, args, graph)
        print(f"{workers:>8} {elapsed:8.2f} {executed / elapsed:15,.0f} {events / elapsed:10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
