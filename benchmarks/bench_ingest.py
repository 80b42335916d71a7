"""Webhook ingestion side by side with Alertmanager, and event-to-incident latency.

1. Throughput: the same httpx clients post the same 20,000 alerts in batches of 100 to
   Alertmanager's own ``POST /api/v2/alerts`` and to our Alertmanager webhook (payload
   version 4, with fingerprints hashed from the labels as Alertmanager's are: API only
   ingesting; correlating in a thread; correlating in a child process; the first and the
   last with two API processes), all on this machine, in ``--rounds`` rounds, with one
   sender and with several at once (``--senders``); alerts/s of each and the median ratio.
2. Latency: events at a steady 1,000/s (batches of 10 every 10 ms) to the generic batch
   endpoint of ``servicegraph serve`` with its in-process correlation worker on the
   100,000-CI graph; per event, the time from being stored in the inbox to its incident
   update being committed (the inbox records both), p50/p95/p99 after ``--warm-up``
   seconds of the same stream, and over the whole run.

    python -m benchmarks.bench_ingest [--cis 100000] [--alerts 20000] [--senders 1,4]
    python -m benchmarks.bench_ingest --multi-host --skip-latency  # ... and on Neo4j + Redis

``--multi-host`` adds the deployment over several hosts to the throughput table: two API
hosts on Neo4j (posts alternate between them, as behind a balancer) and two Celery workers
on Redis correlating, all on this machine.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import hashlib
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench_correlation import cached_graph, fresh_copy
from servicegraph.storage.sqlite import inbox as inbox_file
from servicegraph.storage.sqlite.file import to_us

TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def start_service(
    data: Path,
    port: int,
    *,
    worker: bool,
    process: bool = False,
    api_workers: int = 1,
    extra: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SERVICEGRAPH_DATA_DIR": str(data),
        "SERVICEGRAPH_INGEST_TOKENS__ALERTMANAGER": TOKEN,
        "SERVICEGRAPH_INGEST_TOKENS__GENERIC": TOKEN,
        "SERVICEGRAPH_EMBEDDED_WORKER": "true" if worker else "false",
        "SERVICEGRAPH_EMBEDDED_WORKER_PROCESS": "true" if process else "false",
        "SERVICEGRAPH_API_WORKERS": str(api_workers),
        "SERVICEGRAPH_CORRELATION__POLL_INTERVAL_S": "0.02",
        **(extra or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "servicegraph.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(
        lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200, "servicegraph"
    )
    return proc


def start_alertmanager(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        raise SystemExit("prometheus-alertmanager is not installed")
    config = workdir / "am.yml"
    # A receiver without integrations: Alertmanager stores, groups and dispatches the
    # alerts, and sends nothing. A webhook to a port where nothing listens (what this
    # benchmark used before) kept it retrying for minutes after each run, using a third
    # of a core while the other targets were measured and halving its own rate.
    config.write_text(
        "route: {receiver: none, group_by: [alertname, instance]}\nreceivers: [{name: none}]\n"
    )
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(
        lambda: httpx.get(f"http://127.0.0.1:{port}/-/ready").status_code == 200, "alertmanager"
    )
    return proc


def alert_batches(total: int, per_post: int, first: int = 0) -> list[list[dict[str, Any]]]:
    now = dt.datetime.now(dt.UTC)
    alerts = [
        {
            "labels": {
                "alertname": f"BenchAlert{i % 10}",
                "instance": f"host-{i % 2000}.bench.example.net:9100",
                "severity": "warning",
                "n": str(i),
            },
            "annotations": {"summary": f"bench alert {i}"},
            # started at one of 20 rule evaluations, 15 s apart
            "startsAt": (now - dt.timedelta(seconds=60 + i % 20 * 15)).isoformat(),
        }
        for i in range(first, first + total)
    ]
    return [alerts[i : i + per_post] for i in range(0, total, per_post)]


def as_webhook(batch: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "receiver": "servicegraph",
        "groupKey": "{}:{}",
        "alerts": [
            {
                "status": "firing",
                "labels": a["labels"],
                "annotations": a["annotations"],
                "startsAt": a["startsAt"],
                "endsAt": "0001-01-01T00:00:00Z",
                # as Alertmanager's own: a hash of the label set (random order on disk)
                "fingerprint": hashlib.blake2b(
                    repr(sorted(a["labels"].items())).encode(), digest_size=8
                ).hexdigest(),
            }
            for a in batch
        ],
    }


def timed_posts(
    clients: list[httpx.Client], urls: list[str], bodies: list[Any], headers: dict[str, str]
) -> tuple[float, list[float]]:
    """All bodies posted by as many senders as clients, each waiting for its answer before
    it sends the next (as Alertmanager's notifiers and Prometheus' senders do); with
    several URLs (API hosts behind a balancer) body n goes to URL n modulo their count."""
    latencies: list[float] = []
    failures: list[str] = []
    queue = iter(enumerate(bodies))
    lock = threading.Lock()

    def sender(client: httpx.Client) -> None:
        while not failures:
            with lock:
                item = next(queue, None)
            if item is None:
                return
            n, body = item
            url = urls[n % len(urls)]
            t = time.perf_counter()
            r = client.post(url, json=body, headers=headers)
            latencies.append(time.perf_counter() - t)
            if r.status_code >= 300:
                failures.append(f"{url} answered {r.status_code}: {r.text[:200]}")

    started = time.perf_counter()
    if len(clients) == 1:
        sender(clients[0])
    else:
        threads = [threading.Thread(target=sender, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise SystemExit(failures[0])
    return wall, latencies


def inbox_drained(data: Path) -> bool:
    """Every event correlated, and the last batch's processed time recorded (it is
    written just after the batch commits, so it can lag behind the cursor)."""
    with sqlite3.connect(data / "servicegraph-inbox.sqlite3") as inbox:
        (last,) = inbox.execute("SELECT coalesce(max(seq), 0) FROM inbox").fetchone()
        (stamped,) = inbox.execute(
            "SELECT coalesce(max(last_seq), 0) FROM inbox_processed"
        ).fetchone()
    with sqlite3.connect(data / "servicegraph.sqlite3") as graph:
        (cursor,) = graph.execute("SELECT value FROM meta WHERE key = 'inbox_cursor'").fetchone()
    return bool(int(cursor) >= last and stamped >= last)


def event_delays(inbox: sqlite3.Connection, prefix: str) -> dict[str, float]:
    """Per event whose id starts with ``prefix``: ms from being stored in the inbox to the
    commit of the correlation batch that took it (a batch records its last number)."""
    batches = inbox.execute(
        "SELECT last_seq, processed_at FROM inbox_processed ORDER BY last_seq"
    ).fetchall()
    ends = [last for last, _ in batches]
    delays = {}
    for number, event in inbox_file.read_events(inbox, 0, sys.maxsize):
        if event.event_id.startswith(prefix) and event.received_at is not None:
            batch = bisect.bisect_left(ends, number)
            delays[event.event_id] = (batches[batch][1] - to_us(event.received_at)) / 1000
    return delays


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def throughput(args: argparse.Namespace, graph: Path, workdir: Path) -> None:
    """Rounds of the same new alerts to Alertmanager and to each of our set-ups in turn,
    with every worker caught up before each timed run: the host's load moves all of them
    within a round, and the median of the per-round ratios is what is reported."""
    am_label = "alertmanager POST /api/v2/alerts"
    modes = {  # label: correlating, in a child process, API processes
        "servicegraph webhook (inbox only)": (False, False, 1),
        "servicegraph webhook + correlating (thread)": (True, False, 1),
        "servicegraph webhook + correlating (process)": (True, True, 1),
        "servicegraph, 2 API processes (inbox only)": (False, False, 2),
        "servicegraph, 2 API processes + correlating": (True, True, 2),
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    am_port = free_port()
    targets = {am_label: [f"http://127.0.0.1:{am_port}/api/v2/alerts"]}
    processes = [start_alertmanager(am_port, workdir)]
    caught_up: list[Callable[[], bool]] = []  # one per set-up whose workers correlate
    with ExitStack() as stack:
        try:
            for i, (label, (worker, process, api_workers)) in enumerate(modes.items()):
                data = fresh_copy(graph, f"ingest-run-{i}")
                port = free_port()
                processes.append(
                    start_service(
                        data, port, worker=worker, process=process, api_workers=api_workers
                    )
                )
                targets[label] = [f"http://127.0.0.1:{port}/api/v1/webhooks/alertmanager"]
                if worker:
                    caught_up.append(partial(inbox_drained, data))
            if args.multi_host:
                label, urls, drained = multi_host(stack, processes, workdir)
                targets[label] = urls
                caught_up.append(drained)
            clients = [httpx.Client() for _ in range(max(args.senders))]
            warm_up = alert_batches(500, 100, first=-1000)
            for label, urls in targets.items():
                timed_posts(clients[:1], urls, _bodies(label, am_label, warm_up), headers)
            first = 0
            for senders in args.senders:
                results: dict[str, list[tuple[float, list[float]]]] = {t: [] for t in targets}
                for _ in range(args.rounds):
                    batches = alert_batches(args.alerts, 100, first=first)
                    first += args.alerts
                    for label, urls in targets.items():
                        for drained in caught_up:  # none still busy with the last run
                            wait_until(drained, "the workers to catch up", timeout=600)
                        bodies = _bodies(label, am_label, batches)
                        results[label].append(timed_posts(clients[:senders], urls, bodies, headers))
                _report(args, senders, am_label, results)
            for client in clients:
                client.close()
        finally:
            for child in processes:
                child.terminate()
                child.wait()


MULTI_HOST_BROKER = "redis://127.0.0.1:6379/13"


def multi_host(
    stack: ExitStack, processes: list[subprocess.Popen[bytes]], workdir: Path
) -> tuple[str, list[str], Callable[[], bool]]:
    """The multi-host mode on this machine: Neo4j (``benchmarks/neo4j_runs.py``; its graph
    empty: a webhook only appends), Redis, two API hosts each with a data directory of its
    own, and two Celery workers correlating. Returns the target's label, its two webhook
    URLs and whether its workers have caught up."""
    import redis

    from benchmarks.bench_celery import start_workers
    from benchmarks.neo4j_runs import neo4j_server
    from servicegraph.bootstrap import bootstrap
    from servicegraph.config import Settings
    from tests.contract.neo4j_stores import fresh_graph

    address = stack.enter_context(neo4j_server("ingest"))
    fresh_graph(address).close()
    redis.Redis.from_url(MULTI_HOST_BROKER).flushdb()
    extra = {
        **address.environment(),
        "SERVICEGRAPH_BROKER_URL": MULTI_HOST_BROKER,
        "SERVICEGRAPH_CORRELATION__HOLD_TIME_S": "0",
    }
    urls = []
    for host in ("a", "b"):
        port = free_port()
        data = workdir / f"multi-host-{host}"
        data.mkdir()
        processes.append(start_service(data, port, worker=False, extra=extra))
        urls.append(f"http://127.0.0.1:{port}/api/v1/webhooks/alertmanager")
    for n in (1, 2):  # each with a data directory of its own, as on its own host
        data = workdir / f"multi-host-worker-{n}"
        data.mkdir()
        processes.extend(
            start_workers(1, {**os.environ, **extra, "SERVICEGRAPH_DATA_DIR": str(data)})
        )
    services = bootstrap(Settings(data_dir=workdir / "multi-host-probe", **address.settings()))
    stack.callback(services.close)
    label = "multi-host: Neo4j, 2 API hosts, 2 Celery workers"
    return label, urls, lambda: services.inbox.pending_count() == 0


def _report(
    args: argparse.Namespace,
    senders: int,
    am_label: str,
    results: dict[str, list[tuple[float, list[float]]]],
) -> None:
    am_walls = [wall for wall, _ in results[am_label]]
    print(
        f"\ningestion, {args.alerts:,} alerts in POSTs of 100, "
        f"{'one sender' if senders == 1 else f'{senders} concurrent senders'}, keep-alive, "
        f"{args.rounds} rounds (median of each; ratio: median of the per-round ratios)"
    )
    print(f"{'endpoint':46} {'alerts/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6}")
    for label, runs in results.items():
        walls = [wall for wall, _ in runs]
        latencies = [x for _, lat in runs for x in lat]
        ratios = [am / wall for am, wall in zip(am_walls, walls, strict=True)]
        print(
            f"{label:46} {args.alerts / statistics.median(walls):10,.0f} "
            f"{pct(latencies, 50) * 1000:8.1f} {pct(latencies, 99) * 1000:8.1f} "
            f"{statistics.median(ratios):6.2f}  (rounds: "
            + ", ".join(f"{x:.2f}" for x in ratios)
            + ")"
        )


def _bodies(label: str, am_label: str, batches: list[list[dict[str, Any]]]) -> list[Any]:
    """Alertmanager's API takes the alert list; our webhook, Alertmanager's notification."""
    return list(batches) if label == am_label else [as_webhook(b) for b in batches]


def latency_event(n: int, ci_ids: list[str], mix: str) -> dict[str, Any]:
    """Event ``n`` of the latency stream. ``storm``: every event is about another CI (a new
    alert, one in five a resolve); ``steady``: 90% re-sends of 2,000 firing alerts, the rest
    new alerts and resolves, as a monitoring estate re-sends its state."""
    names = ("NodeDown", "HighLatency", "DiskFull")
    if mix == "storm" or n % 20 >= 18:
        ci = ci_ids[(n * 7919) % len(ci_ids)]
        status = "resolved" if (mix == "storm" and n % 5 == 4) or n % 20 == 19 else "firing"
        name = names[n % 3]
    else:
        k = (n * 31) % 2000  # one of the standing alerts
        ci, status, name = ci_ids[(k * 7919) % len(ci_ids)], "firing", names[k % 3]
    return {
        "name": name,
        "status": status,
        "severity": "major",
        "ci_id": ci,
        "event_id": f"lat-{n}",
    }


def latency(args: argparse.Namespace, graph: Path) -> None:
    data = fresh_copy(graph, "latency-run")
    port = free_port()
    service = start_service(data, port, worker=True, process=args.worker_process)
    conn = sqlite3.connect(data / "servicegraph.sqlite3")
    inbox = sqlite3.connect(data / "servicegraph-inbox.sqlite3")
    ci_ids = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM ci WHERE class IN ('server', "
            "'virtual_machine', 'application') ORDER BY id"
        )
    ]
    warm_up_events = args.rate * args.warm_up
    total = warm_up_events + args.rate * args.seconds
    per_post = 10
    interval = per_post / args.rate
    try:
        url = f"http://127.0.0.1:{port}/api/v1/events/batch"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client() as client:
            # one event first: the clock starts once the worker correlates
            first = {"name": "WarmUp", "status": "resolved", "event_id": "warm-up"}
            client.post(url, json={"events": [first]}, headers=headers)
            wait_until(partial(inbox_drained, data), "the worker to correlate")
            started = time.perf_counter()
            for i in range(0, total, per_post):
                due = started + (i / per_post) * interval
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                events = [latency_event(n, ci_ids, args.mix) for n in range(i, i + per_post)]
                r = client.post(url, json={"events": events}, headers=headers)
                if r.status_code != 202:
                    raise SystemExit(f"answered {r.status_code}: {r.text[:200]}")
            sent_s = time.perf_counter() - started
        wait_until(lambda: inbox_drained(data), "the worker to drain the inbox")
        by_event = event_delays(inbox, "lat-")
        delays = [by_event[f"lat-{n}"] for n in range(warm_up_events, total)]
        whole = list(by_event.values())
        incidents = conn.execute("SELECT count(*) FROM incident").fetchone()[0]
    finally:
        conn.close()
        inbox.close()
        service.terminate()
        service.wait()
    print(
        f"\nlatency, {args.mix} mix, worker in a "
        f"{'child process' if args.worker_process else 'thread'}, "
        f"at {args.rate:,} events/s for {args.warm_up} + {args.seconds} s "
        f"({total:,} events, sent in {sent_s:.1f} s), graph of {args.cis:,} CIs, "
        f"{incidents:,} incidents"
    )
    for label, values in ((f"after the first {args.warm_up} s", delays), ("whole run", whole)):
        print(
            f"inbox -> incident committed, {label}: p50 {statistics.median(values):.1f} ms, "
            f"p95 {pct(values, 95):.1f} ms, p99 {pct(values, 99):.1f} ms, "
            f"max {max(values):.1f} ms"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cis", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--senders",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 4],
        help="concurrent senders, one throughput table each (comma-separated)",
    )
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument(
        "--warm-up",
        type=int,
        default=5,
        help="seconds of the stream before the measured ones: a cold start meets thousands "
        "of alerts it has never seen (reported apart, as 'whole run')",
    )
    parser.add_argument(
        "--multi-host",
        action="store_true",
        help="also the multi-host mode: Neo4j (tools/neo4j, or NEO4J_URI: ITS DATABASE IS "
        "EMPTIED), Redis on 127.0.0.1:6379, two API hosts and two Celery workers",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--mix", choices=("storm", "steady"), default="steady")
    parser.add_argument(
        "--worker-process",
        action="store_true",
        help="latency with the embedded correlation worker in a child process",
    )
    args = parser.parse_args(argv)
    graph = cached_graph(args.cis, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_throughput:
            throughput(args, graph, Path(tmp))
        if not args.skip_latency:
            latency(args, graph)
    return 0


if __name__ == "__main__":
    sys.exit(main())
