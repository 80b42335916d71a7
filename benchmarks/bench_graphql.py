"""GraphQL ``impact`` over HTTP on the 100,000-CI graph, served by one uvicorn worker.

The graph is the generated estate cached by ``bench_correlation`` (a copy of it, so the
cache stays untouched). ``servicegraph serve`` runs as its own process, as in production
(one uvicorn worker, the embedded correlation worker idling beside it); an httpx client on
the same machine posts

    query($id: ID!) { impact(ciId: $id) { truncated
        affected { ciId depth }
        businessServices { ciId path { ciId relationship } } } }

with a viewer API token, for CIs drawn at random from the whole graph (every class: the
everyday "what breaks if this fails?") and, separately, for distribution switches (the
largest blast radii of the estate). Latency is measured one request at a time (p50 is the
target, 15 ms); throughput with several clients at once.

    python -m benchmarks.bench_graphql [--cis 100000] [--requests 2000] [--clients 8]

Exit status: 0 whatever the timings; 1 on errors (a request that fails, a server that does
not start).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.bench_correlation import cached_graph, fresh_copy
from benchmarks.topology import SOURCE, distribution_switch_key
from servicegraph.bootstrap import bootstrap
from servicegraph.cmdb.ports import CIQuery
from servicegraph.config import Settings

TARGET_P50_MS = 15.0
QUERY = """query($id: ID!) { impact(ciId: $id) { truncated
    affected { ciId depth }
    businessServices { ciId path { ciId relationship } } } }"""


class BenchError(Exception):
    """A failure, not slowness."""


@dataclass
class Run:
    label: str
    samples_ms: list[float] = field(default_factory=list)
    affected: list[int] = field(default_factory=list)

    def pct(self, p: float) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(cis: int, seed: int) -> tuple[Path, str, list[str], list[str]]:
    """A private copy of the graph, a viewer token, all CI ids and the distribution
    switches' ids."""
    data = fresh_copy(cached_graph(cis, seed), "graphql-run")
    services = bootstrap(Settings(data_dir=data))
    try:
        _, token = services.tokens.create("bench", "viewer", created_by="bench_graphql")
        ids = [ci.id for ci in services.store.find_cis(CIQuery(limit=10 * cis))]
        keys = [
            distribution_switch_key(site, block, side)
            for site in range(50)
            for block in range(50)
            for side in ("a", "b")
        ]
        found = services.store.resolve_keys(keys, source=SOURCE)
        switches = sorted(next(iter(v)) for v in found.values() if v)
    finally:
        services.close()
    return data, token, ids, switches


def start_server(data: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SERVICEGRAPH_")},
        "SERVICEGRAPH_DATA_DIR": str(data),
    }
    log = (data / "serve.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from servicegraph.cli import main; main()",
            "serve",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_until_up(base: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise BenchError(f"servicegraph serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                return time.perf_counter() - start
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise BenchError(f"servicegraph serve did not answer within {timeout:.0f} s")


def ask(client: httpx.Client, url: str, ci_id: str) -> int:
    """One impact query; the number of affected CIs."""
    response = client.post(url, json={"query": QUERY, "variables": {"id": ci_id}})
    if response.status_code != 200:
        raise BenchError(f"HTTP {response.status_code}: {response.text[:300]}")
    body = response.json()
    if body.get("errors"):
        raise BenchError(f"impact({ci_id}) failed: {body['errors'][0]['message']}")
    return len(body["data"]["impact"]["affected"])


def sequential(client: httpx.Client, url: str, label: str, targets: list[str]) -> Run:
    run = Run(label)
    for ci_id in targets:
        start = time.perf_counter()
        affected = ask(client, url, ci_id)
        run.samples_ms.append((time.perf_counter() - start) * 1000)
        run.affected.append(affected)
    return run


def concurrent(url: str, headers: dict[str, str], targets: list[str], clients: int) -> float:
    """Requests per second with ``clients`` clients posting at once."""
    chunks = [targets[i::clients] for i in range(clients)]
    errors: list[BaseException] = []

    def work(chunk: list[str]) -> None:
        try:
            with httpx.Client(headers=headers, timeout=60) as client:
                for ci_id in chunk:
                    ask(client, url, ci_id)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise BenchError(str(errors[0]))
    return len(targets) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GraphQL impact latency over HTTP.")
    parser.add_argument("--cis", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--requests", type=int, default=2000, help="per latency run")
    parser.add_argument("--clients", type=int, default=8, help="for the throughput run")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    print(f"preparing the {args.cis:,}-CI graph...", file=sys.stderr)
    data, token, ids, switches = prepare(args.cis, args.seed)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/graphql"
    headers = {"Authorization": f"Bearer {token}"}
    proc = start_server(data, port)
    try:
        startup = wait_until_up(base, proc)
        with httpx.Client(headers=headers, timeout=60) as client:
            for ci_id in rng.sample(ids, 300):  # warm-up: connections, caches, code paths
                ask(client, url, ci_id)
            random_cis = sequential(
                client, url, "random CIs", [rng.choice(ids) for _ in range(args.requests)]
            )
            dist = sequential(
                client,
                url,
                "distribution switches",
                [rng.choice(switches) for _ in range(max(1, args.requests // 4))],
            )
        throughput = concurrent(
            url, headers, [rng.choice(ids) for _ in range(args.requests)], args.clients
        )
        single = concurrent(url, headers, [rng.choice(ids) for _ in range(args.requests)], 1)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

    print(
        f"\nGraphQL impact over HTTP, {args.cis:,} CIs, one uvicorn worker "
        f"(server ready {startup:.1f} s after start, projection loaded)\n"
    )
    print(
        f"{'CIs queried':<24}{'requests':>9}{'affected p50/max':>18}{'p50 ms':>9}"
        f"{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    )
    for run in (random_cis, dist):
        print(
            f"{run.label:<24}{len(run.samples_ms):>9}"
            f"{statistics.median(run.affected):>10.0f}/{max(run.affected):<7}"
            f"{run.pct(50):>9.2f}{run.pct(95):>9.2f}{run.pct(99):>9.2f}"
            f"{max(run.samples_ms):>9.2f}"
        )
    print(
        f"\nthroughput, random CIs: {single:,.0f} req/s with 1 client, "
        f"{throughput:,.0f} req/s with {args.clients} clients"
    )
    met = random_cis.pct(50) <= TARGET_P50_MS
    print(
        f"target: p50 <= {TARGET_P50_MS:.0f} ms for random CIs: "
        f"{'met' if met else 'NOT met'} ({random_cis.pct(50):.2f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
