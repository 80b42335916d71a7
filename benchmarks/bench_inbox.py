"""Where the durable inbox lives when hosts share no disk: Neo4j, or Redis with an AOF
fsync'd on every write.

Both keep the promise the webhooks make, "persisted before 2xx": a Neo4j commit returns
once its transaction log is flushed, and Redis with ``appendonly yes`` and ``appendfsync
always`` replies once the command is written and fsync'd. The benchmark appends the same
webhook bodies (``--per-request`` events each, the wire form compressed as the inbox stores
it) through each, from ``--threads`` concurrent senders, and reports appends/s, events/s
and the latency of one append (p50, p99):

- ``neo4j``: ``Neo4jEventInbox.append``, the adapter the API runs (numbers taken from the
  inbox counter, one batch node per request, threads' appends committed together);
- ``redis``: ``XADD`` of the same body to a stream, one connection per thread: the least a
  Redis inbox would do per request (exactly once would also need the cursor and the seen
  keys committed with the effects in Neo4j: a second store and a handshake).

The Neo4j server is ``NEO4J_URI``'s (``NEO4J_USER``/``NEO4J_PASSWORD``) or one started from
tools/neo4j; Redis is the Debian ``redis-server`` started here on a free port with its AOF in
a temporary directory on the same disk.

    python -m benchmarks.bench_inbox [--requests 2000] [--per-request 20] [--threads 1,8]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from servicegraph.events.model import Event, EventStatus, Severity
from servicegraph.storage.neo4j import Neo4jGraphStore
from servicegraph.storage.neo4j.event_inbox import Neo4jEventInbox
from servicegraph.storage.sqlite.inbox import encode_body
from tests.neo4j_server import Neo4jAddress, Neo4jServer, address_from_environment

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def make_requests(count: int, per_request: int, run: str) -> list[list[Event]]:
    return [
        [
            Event(
                event_id=f"{run}-{r}-{i}",
                source="alertmanager",
                name="NodeDown",
                severity=Severity.MAJOR,
                status=EventStatus.FIRING,
                occurred_at=T0 + dt.timedelta(seconds=r),
                fingerprint=f"fp-{(r * per_request + i) % 5000}",
                labels={"instance": f"host-{(r * per_request + i) % 5000}", "job": "node"},
                summary="node is down",
            )
            for i in range(per_request)
        ]
        for r in range(count)
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server(directory: Path) -> Iterator[redis.Redis]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        yield client
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def neo4j_address(home: Path) -> Iterator[Neo4jAddress]:
    if os.environ.get("NEO4J_URI"):
        found = address_from_environment()
        assert found is not None
        yield found
        return
    server = Neo4jServer(home=home)
    address = server.start()
    try:
        yield address
    finally:
        server.stop()


def measure(
    append: Callable[[list[Event]], None], requests: list[list[Event]], threads: int
) -> tuple[float, list[float]]:
    """Wall seconds for all appends, and each append's latency in seconds."""
    latencies: list[float] = []
    lock = threading.Lock()
    work = iter(requests)

    def sender() -> None:
        mine: list[float] = []
        while True:
            with lock:
                request = next(work, None)
            if request is None:
                break
            start = time.perf_counter()
            append(request)
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    pool = [threading.Thread(target=sender) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - started, latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--per-request", type=int, default=20)
    parser.add_argument("--threads", default="1,8")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    rows: list[tuple[str, int, float, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-inbox-", dir=Path.cwd()) as tmp:
        root = Path(tmp)
        (root / "redis").mkdir()
        with neo4j_address(root / "neo4j") as address, redis_server(root / "redis") as client:
            graph = Neo4jGraphStore(address.uri, **address.store_settings())
            graph.delete_everything()
            graph.migrate()
            inbox = Neo4jEventInbox(graph)
            local = threading.local()

            def redis_append(events: list[Event]) -> None:
                conn = getattr(local, "conn", None)
                if conn is None:
                    kwargs = client.connection_pool.connection_kwargs
                    conn = local.conn = redis.Redis(host=kwargs["host"], port=kwargs["port"])
                conn.xadd("inbox", {"events": len(events), "body": encode_body(events)})

            def neo4j_append(events: list[Event]) -> None:
                inbox.append(events, dt.datetime.now(dt.UTC))

            for threads in thread_counts:
                for name, append in (("neo4j", neo4j_append), ("redis", redis_append)):
                    requests = make_requests(args.requests, args.per_request, f"{name}{threads}")
                    append(make_requests(1, 1, f"warm-{name}{threads}")[0])
                    wall, lat = measure(append, requests, threads)
                    events = args.requests * args.per_request
                    rows.append(
                        (name, threads, args.requests / wall, events / wall, pct(lat, 50),
                         pct(lat, 99))
                    )  # fmt: skip
            graph.close()
    print(f"# {dt.date.today().isoformat()}: inbox appends, {args.per_request} events each")
    print(f"{'store':<7}{'threads':>8}{'appends/s':>11}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for name, threads, aps, eps, p50, p99 in rows:
        print(f"{name:<7}{threads:>8}{aps:>11.0f}{eps:>10.0f}{p50:>9.2f}{p99:>9.2f}")


if __name__ == "__main__":
    main()
