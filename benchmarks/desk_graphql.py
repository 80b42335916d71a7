"""A group's queue page over GraphQL HTTP, on the benchmark's desk file.

``bench_desk`` times ``groupQueue`` here as an agent's client asks it: the cached
million-ticket file is copied (SQLite's backup API, so a WAL the cache may still have is
carried over) into a data directory of its own, the generator's people and catalogue are
saved in it through the directory's store (``groupQueue`` refuses a group the directory
lacks), an API token with the ``agent`` role, held by one of the desk's agents, is made
by ``servicegraph token create``, and ``servicegraph serve`` runs as its own process on
127.0.0.1 (one uvicorn worker), the API only: ``SERVICEGRAPH_EMBEDDED_WORKER=false``, so
that no correlation worker competes for the two cores while queues are timed. An httpx
client with keep-alive then posts

    query($group: String!, $after: String) {
      groupQueue(group: $group, first: 50, after: $after) {
        items { id number title priority status openedAt }
        pageInfo { endCursor hasNextPage } } }

one request at a time, after a warm-up: page 1 of random groups, and pages 1..5 by
cursor (each ``after`` the page before's ``endCursor``) of random groups holding five
pages or more. A sample is the request and the decoding of its JSON body.

Every page is checked, untimed: an HTTP 200 without errors, as many tickets as the
generator gave the group (up to 50), active, in queue order (priority, then age) without
repeats, ``hasNextPage`` and ``endCursor`` saying whether more follow, and the same
tickets, in the same order, as the ticket repository gives for that group after the
previous page's last ticket (so a page holds the group's tickets and nobody else's). The
copy is deleted afterwards, the cache is never written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks import bench_graphql
from benchmarks.desk_create import catalogue_of, directory_of
from benchmarks.desk_generator import Desk, Expected
from servicegraph.storage.sqlite import SqliteGraphStore
from servicegraph.storage.sqlite.directory import SqliteDirectoryStore
from servicegraph.storage.sqlite.file import to_us
from servicegraph.storage.sqlite.tickets import SqliteTicketStore
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.people import Directory
from servicegraph.ticketing.ports import IncidentFilter, PeopleBatch, TicketOrder

PAGE = 50
CURSOR_PAGES = 5
WARM_UP = 200  # requests before timing: connections, the server's caches, code paths
AT = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
QUERY = """query($group: String!, $after: String) {
  groupQueue(group: $group, first: 50, after: $after) {
    items { id number title priority status openedAt }
    pageInfo { endCursor hasNextPage } } }"""

Key = tuple[int, int, int]  # the queue order: priority, opened_at in microseconds, number


class GraphQLPageError(Exception):
    """A request that fails, a server that does not start, or a wrong page: not slowness."""


@dataclass
class HttpSamples:
    """Milliseconds per request, and what it took to get there."""

    first_pages: list[float] = field(default_factory=list)  # page 1 of random groups
    cursor_pages: list[list[float]] = field(
        default_factory=lambda: [[] for _ in range(CURSOR_PAGES)]
    )  # pages 1..5, one list per page number
    rows: list[int] = field(default_factory=lambda: [0, 0])  # tickets: page 1, cursor pages
    copy_s: float = 0.0  # the cache copied into the server's data directory
    startup_s: float = 0.0  # serve started until /healthz answers


def measure_graphql_queue(
    path: Path, desk: Desk, expected: Expected, rng: random.Random, requests: int
) -> HttpSamples:
    """``requests`` timed page-1 requests and as many cursor-page requests (pages 1..5
    of ``requests // 5`` groups) against ``servicegraph serve`` on a copy of ``path``."""
    samples = HttpSamples()
    data = path.parent / "desk-graphql-run"
    start = time.perf_counter()
    copy = _copy(path, data)
    samples.copy_s = time.perf_counter() - start
    _save_directory(copy, desk, rng)
    token = _agent_token(data, rng.choice(desk.agents))
    port = bench_graphql.free_port()
    base = f"http://127.0.0.1:{port}"
    server = _start_server(data, port)
    file = SqliteGraphStore(copy, read_only=True)  # the repository, to check pages against
    try:
        samples.startup_s = bench_graphql.wait_until_up(base, server)
        pages = Pages(
            httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60),
            f"{base}/graphql",
            SqliteTicketStore(file),
            expected,
        )
        with pages.client:
            _run(pages, desk, expected, rng, requests, samples)
    except (bench_graphql.BenchError, httpx.HTTPError) as exc:  # a server down, a timeout
        raise GraphQLPageError(f"{exc} (see {data / 'serve.log'})") from exc
    finally:
        file.close()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    for name in ("servicegraph", "servicegraph-inbox"):  # 600 MB at 1,000,000; the log stays
        for suffix in ("", "-wal", "-shm"):
            (data / f"{name}.sqlite3{suffix}").unlink(missing_ok=True)
    return samples


def _run(
    pages: Pages,
    desk: Desk,
    expected: Expected,
    rng: random.Random,
    requests: int,
    samples: HttpSamples,
) -> None:
    deep = [g for g in desk.groups if expected.active_by_group[g] >= CURSOR_PAGES * PAGE]
    if not deep:
        raise GraphQLPageError(f"no group has {CURSOR_PAGES} pages of active tickets")
    for group in rng.choices(desk.groups, k=WARM_UP // 2):
        pages.ask(group)
    for group in rng.choices(deep, k=WARM_UP // (2 * CURSOR_PAGES)):
        pages.walk(group, [[] for _ in range(CURSOR_PAGES)])
    for group in rng.choices(desk.groups, k=requests):
        samples.rows[0] += pages.ask(group, samples.first_pages)[0]
    for group in rng.choices(deep, k=max(requests // CURSOR_PAGES, 1)):
        samples.rows[1] += pages.walk(group, samples.cursor_pages)


@dataclass
class Pages:
    """Asks for a group's queue pages and checks each against the repository."""

    client: httpx.Client
    url: str
    store: SqliteTicketStore
    expected: Expected

    def ask(
        self,
        group: str,
        timings: list[float] | None = None,
        after: tuple[str, Key] | None = None,
        page: int = 1,
    ) -> tuple[int, tuple[str, Key] | None]:
        """Page ``page`` of the group's queue (``after``: the previous page's endCursor
        and last key); its ticket count and what the next page goes after."""
        variables = {"group": group, "after": after[0] if after else None}
        start = time.perf_counter()
        response = self.client.post(self.url, json={"query": QUERY, "variables": variables})
        body = response.json() if response.status_code == 200 else None
        if timings is not None:
            timings.append((time.perf_counter() - start) * 1000)
        what = f"groupQueue({group}) page {page}"
        if body is None:
            raise GraphQLPageError(f"{what}: HTTP {response.status_code}: {response.text[:300]}")
        if body.get("errors"):
            raise GraphQLPageError(f"{what}: {body['errors'][0]['message']}")
        connection = body["data"]["groupQueue"]
        keys = self._check(connection, group, after[1] if after else None, page, what)
        cursor = connection["pageInfo"]["endCursor"]
        return len(keys), (cursor, keys[-1]) if cursor is not None else None

    def walk(self, group: str, timings: list[list[float]]) -> int:
        """Pages 1..len(timings) of a group that has that many, each by the cursor of the
        one before; the tickets returned."""
        after: tuple[str, Key] | None = None
        rows = 0
        for page, page_timings in enumerate(timings, start=1):
            count, after = self.ask(group, page_timings, after, page)
            rows += count
            if after is None and page < len(timings):
                raise GraphQLPageError(f"groupQueue({group}) page {page}: no cursor onwards")
        return rows

    def _check(
        self, connection: dict[str, Any], group: str, after: Key | None, page: int, what: str
    ) -> list[Key]:
        """The page's queue keys, after checking it is the group's next page."""
        items = connection["items"]
        active = self.expected.active_by_group[group]
        left = active - (page - 1) * PAGE
        if len(items) != min(left, PAGE):
            raise GraphQLPageError(f"{what}: {len(items)} tickets, expected {min(left, PAGE)}")
        keys = [_key(i) for i in items]
        if keys != sorted(set(keys)) or (after is not None and keys and keys[0] <= after):
            raise GraphQLPageError(f"{what}: the page is not in queue order")
        if not all(TicketStatus[i["status"]].active for i in items):
            raise GraphQLPageError(f"{what}: a ticket that is not active")
        more = left > PAGE
        info = connection["pageInfo"]
        if info["hasNextPage"] is not more or (info["endCursor"] is None) is more:
            raise GraphQLPageError(f"{what}: pageInfo {info}, but {left - PAGE} tickets follow")
        query = IncidentFilter(
            assignment_group=group, open=True, order=TicketOrder.QUEUE, limit=PAGE, after=after
        )
        wanted = [i.id for i in self.store.find_incidents(query)]
        got = [i["id"] for i in items]
        if got != wanted:
            at = next(n for n, (a, b) in enumerate(zip(got, wanted, strict=True)) if a != b)
            raise GraphQLPageError(
                f"{what}: ticket {at + 1} is {got[at]}; the group's queue has {wanted[at]} there"
            )
        return keys


def _key(item: dict[str, Any]) -> Key:
    opened = dt.datetime.fromisoformat(item["openedAt"])
    return (int(item["priority"]), to_us(opened), int(item["number"]))


# -- the data directory ------------------------------------------------------------------


def _copy(path: Path, data: Path) -> Path:
    """The cache copied page by page into ``data``, as the server's file."""
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    copy = data / "servicegraph.sqlite3"
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    target = sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    return copy


def _save_directory(copy: Path, desk: Desk, rng: random.Random) -> None:
    """The generator's people and catalogue, saved through the directory's store."""
    file = SqliteGraphStore(copy, lock_timeout=60)
    try:
        file.migrate()
        people: Directory = directory_of(desk)
        store = SqliteDirectoryStore(file)
        store.save_people(
            PeopleBatch(
                agents=tuple(people.agents.values()),
                groups=tuple(people.groups.values()),
                organisations=tuple(people.organisations.values()),
                contacts=tuple(people.contacts.values()),
            ),
            AT,
        )
        store.save_catalogue(*catalogue_of(desk, rng), AT)
    finally:
        file.close()


def _env(data: Path) -> dict[str, str]:
    """This environment without the caller's SERVICEGRAPH_ settings, on ``data``, with no
    correlation worker (see the module's docstring)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SERVICEGRAPH_")},
        "SERVICEGRAPH_DATA_DIR": str(data),
        "SERVICEGRAPH_EMBEDDED_WORKER": "false",
    }


def _agent_token(data: Path, login: str) -> str:
    """``servicegraph token create --role agent`` held by ``login``: its secret."""
    command = [sys.executable, "-m", "servicegraph.cli", "token", "create", "--role", "agent"]
    command += ["--name", "bench-desk", "--holder", login, "--json"]
    done = subprocess.run(command, env=_env(data), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise GraphQLPageError(f"token create exited {done.returncode}: {done.stderr[-500:]}")
    return str(json.loads(done.stdout)["token"])


def _start_server(data: Path, port: int) -> subprocess.Popen[bytes]:
    """``servicegraph serve`` on ``data``, its output in ``data/serve.log``."""
    with (data / "serve.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "servicegraph.cli", "serve", "--port", str(port)],
            env=_env(data),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
