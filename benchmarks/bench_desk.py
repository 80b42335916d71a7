"""The service desk's ticket repository at five times the reference desk: queue pages,
an agent's own tickets and a filtered search over 1,000,000 tickets, in-process; a queue
page over GraphQL HTTP; creating a routed ticket.

The desk (``desk_generator``: 200 groups, 150 agents, 15,000 contacts, 300 services,
about 10% of the tickets active) is written once through ``SqliteTicketUnit
.save_incidents`` in batches, as correlation and the ticket service write tickets, and
cached under benchmarks/out/ as ``desk-<tickets>-<seed>.sqlite3`` beside a
``.json`` that records the generator's shape and what it generated. A cached file whose
shape or counts differ from the generator's is rebuilt; ``--fresh`` forces a rebuild.

Then, on the cached file, through ``SqliteTicketStore.find_incidents`` (SQL, rows to
``Incident`` objects, everything a caller gets):

- a group's queue page: ``IncidentFilter(assignment_group=g, open=True, order=QUEUE,
  limit=50)`` for ``--queries`` random groups, and the cursor pages 1..5 of random groups
  (each page after the last key of the one before);
- an agent's own open tickets, the same page by ``assignee``;
- creating a routed ticket through ``TicketService.create`` (``desk_create``: the
  generator's people and catalogue, 40 routing rules, CIs naming support groups), without
  and with automatic assignment, the tickets deleted afterwards;
- a filtered search: a category subtree and a status, newest first;
- a group's queue page over GraphQL HTTP (``desk_graphql``: ``servicegraph serve`` on a
  copy of the file, an agent's API token, httpx with keep-alive), page 1 of random groups
  and pages 1..5 by cursor, each page checked against the repository's;
- the store's size per ticket (file bytes / tickets, and the incident table and each of
  its indexes, from SQLite's dbstat).

Every page is checked (its rows in the group or with the agent, active, in queue order,
as many as the generator says there are) and a few groups are paged to their end by
cursor; ``EXPLAIN QUERY PLAN`` must show the queue pages read through the partial indexes
incident_group_queue / incident_agent_queue without sorting (``--explain`` prints each
plan). Targets (the issue's): queue page in-process p50 <= 10 ms, p99 <= 50 ms, over
GraphQL HTTP p50 <= 20 ms; a routed ticket created p50 <= 5 ms.

    python -m benchmarks.bench_desk                    # 1,000,000 tickets
    python -m benchmarks.bench_desk --tickets 100000 --explain

Exit status: 0 whatever the timings; 1 on errors (a wrong page, a plan that sorts).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sqlite3
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks.desk_create import CreateError, measure_routed_create
from benchmarks.desk_generator import (
    CATEGORY_TREE,
    Desk,
    DeskShape,
    Expected,
    build_desk,
    tickets,
)
from benchmarks.desk_graphql import GraphQLPageError, measure_graphql_queue
from servicegraph.runtime.heap import collector_paused
from servicegraph.storage.sqlite import SqliteGraphStore
from servicegraph.storage.sqlite.file import to_us
from servicegraph.storage.sqlite.tickets import SqliteTicketStore
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Incident
from servicegraph.ticketing.ports import IncidentFilter, TicketOrder

OUT = Path(__file__).resolve().parent / "out"
PAGE = 50
TARGET_P50_MS = 10.0
TARGET_P99_MS = 50.0
TARGET_CREATE_P50_MS = 5.0  # creating a routed ticket through the ticket service
TARGET_HTTP_P50_MS = 20.0  # a queue page over GraphQL HTTP
QUEUE = TicketOrder.QUEUE


class BenchError(Exception):
    """Something is wrong with the data or a result, not merely slow."""


# -- the cached desk --------------------------------------------------------------------------


@dataclass
class Built:
    expected: Expected
    generate_s: float  # drawing the tickets
    write_s: float  # save_incidents and the commits


def cached_desk(shape: DeskShape, batch: int, *, fresh: bool) -> tuple[Path, Built]:
    """The SQLite file holding the generated desk, built once and reused while its shape
    and counts match the generator's."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"desk-{shape.tickets}-{shape.seed}.sqlite3"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists() and not fresh:
        data = json.loads(meta.read_text())
        built = Built(Expected.from_json(data["expected"]), data["generate_s"], data["write_s"])
        if data["shape"] == shape.key() and _store_matches(path, built.expected):
            return path, built
        print(f"{path.name} does not match the generator; rebuilding")
    work = path.with_name(f"{path.name}.building")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    built = _build(shape, batch, work)
    work.replace(path)
    meta.write_text(
        json.dumps(
            {
                "shape": shape.key(),
                "expected": built.expected.to_json(),
                "generate_s": built.generate_s,
                "write_s": built.write_s,
            }
        )
    )
    if not _store_matches(path, built.expected):
        raise BenchError(f"{path} does not hold the generated desk")
    return path, built


def _build(shape: DeskShape, batch: int, path: Path) -> Built:
    print(f"generating {shape.tickets:,} tickets into {path.name} (cached for later runs)...")
    desk = build_desk(shape)
    expected = Expected()
    file = SqliteGraphStore(path, lock_timeout=60)
    file.migrate()
    store = SqliteTicketStore(file)
    generate_s = write_s = 0.0
    batches = tickets(desk, batch, expected)
    try:
        with collector_paused():  # a bulk write: the batches form no reference cycles
            while True:
                start = time.perf_counter()
                incidents = next(batches, None)
                generate_s += time.perf_counter() - start
                if incidents is None:
                    break
                start = time.perf_counter()
                with store.unit() as unit:
                    unit.save_incidents(incidents)
                write_s += time.perf_counter() - start
                if incidents[-1].number % max(shape.tickets // 10, 1) < batch:
                    print(f"  {incidents[-1].number:>10,} tickets, {write_s:.0f} s writing")
    finally:
        file.close()  # the last connection checkpoints the WAL into the file
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return Built(expected, generate_s, write_s)


def _store_matches(path: Path, expected: Expected) -> bool:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        total, active = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status IN "
            "('new', 'assigned', 'in_progress', 'pending')) FROM incident"
        ).fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return (total, active) == (expected.tickets, expected.active)


# -- measurements -------------------------------------------------------------------------------


@dataclass
class Timings:
    samples_ms: list[float] = field(default_factory=list)

    def pct(self, p: float) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass
class Row:
    """One line of the results table."""

    measure: str
    timings: Timings
    rows: int  # tickets returned, over all calls
    target: bool = False  # judged against the queue page target

    @property
    def met(self) -> str:
        if not self.target:
            return "-"
        ok = self.timings.pct(50) <= TARGET_P50_MS and self.timings.pct(99) <= TARGET_P99_MS
        return "met" if ok else "MISSED"


def timed(store: SqliteTicketStore, query: IncidentFilter, timings: Timings) -> list[Incident]:
    start = time.perf_counter()
    page = store.find_incidents(query)
    timings.samples_ms.append((time.perf_counter() - start) * 1000)
    return page


def queue_key(i: Incident) -> tuple[int, int, int]:
    return (i.priority, to_us(i.opened_at), i.number)


def check_queue_page(page: list[Incident], column: str, value: str, wanted: int, what: str) -> None:
    """A queue page: only the tickets asked for, active, in queue order, all of them up
    to a page."""
    if len(page) != min(wanted, PAGE):
        raise BenchError(f"{what}: {len(page)} tickets, expected {min(wanted, PAGE)}")
    keys = [queue_key(i) for i in page]
    if keys != sorted(keys) or len(set(keys)) != len(keys):
        raise BenchError(f"{what}: the page is not in queue order")
    wrong = [i.id for i in page if not (getattr(i, column) == value and i.status.active)]
    if wrong:
        raise BenchError(f"{what}: {wrong[:3]} do not belong on it")


def group_queue(group: str, after: tuple[int, ...] | None = None) -> IncidentFilter:
    return IncidentFilter(assignment_group=group, open=True, order=QUEUE, limit=PAGE, after=after)


def measure_group_pages(
    store: SqliteTicketStore, desk: Desk, expected: Expected, rng: random.Random, queries: int
) -> Row:
    timings, rows = Timings(), 0
    for group in rng.choices(desk.groups, k=queries):
        page = timed(store, group_queue(group), timings)
        check_queue_page(
            page, "assignment_group", group, expected.active_by_group[group], f"queue of {group}"
        )
        rows += len(page)
    return Row("group queue page 1 (random groups)", timings, rows, target=True)


def measure_cursor_pages(
    store: SqliteTicketStore, desk: Desk, expected: Expected, rng: random.Random, groups: int
) -> list[Row]:
    """Pages 1..5 of random groups' queues, each after the last key of the page before;
    only groups with five full pages, so that every page number has as many calls."""
    deep = [g for g in desk.groups if expected.active_by_group[g] >= 5 * PAGE]
    if not deep:
        raise BenchError("no group has five pages of active tickets")
    per_page = [Timings() for _ in range(5)]
    rows = 0
    for group in rng.choices(deep, k=groups):
        after: tuple[int, ...] | None = None
        last: tuple[int, int, int] | None = None
        for n, timings in enumerate(per_page, start=1):
            page = timed(store, group_queue(group, after), timings)
            check_queue_page(page, "assignment_group", group, PAGE, f"page {n} of {group}")
            if last is not None and queue_key(page[0]) <= last:
                raise BenchError(f"page {n} of {group} overlaps the page before")
            last = queue_key(page[-1])
            after = last
            rows += len(page)
    table = [
        Row(f"group queue page {n} by cursor (groups of 5+ pages)", t, rows // 5, target=True)
        for n, t in enumerate(per_page, start=1)
    ]
    pooled = Timings([ms for t in per_page for ms in t.samples_ms])
    return [*table, Row("group queue pages 1..5 pooled", pooled, rows, target=True)]


def measure_agent_pages(
    store: SqliteTicketStore, desk: Desk, expected: Expected, rng: random.Random, queries: int
) -> Row:
    timings, rows = Timings(), 0
    for agent in rng.choices(desk.agents, k=queries):
        query = IncidentFilter(assignee=agent, open=True, order=QUEUE, limit=PAGE)
        page = timed(store, query, timings)
        check_queue_page(
            page, "assignee", agent, expected.active_by_agent[agent], f"open tickets of {agent}"
        )
        rows += len(page)
    return Row("agent's own open tickets, page 1", timings, rows)


def measure_search(
    store: SqliteTicketStore, rng: random.Random, queries: int, statuses: list[TicketStatus]
) -> Row:
    """A category subtree and a status, newest first: what an agent's saved search asks."""
    timings, rows = Timings(), 0
    for _ in range(queries):
        category, status = rng.choice(list(CATEGORY_TREE)), rng.choice(statuses)
        page = timed(store, IncidentFilter(category=category, status=status, limit=PAGE), timings)
        numbers = [i.number for i in page]
        if numbers != sorted(numbers, reverse=True):
            raise BenchError(f"search {category} {status}: not newest first")
        if any(
            i.status is not status or (i.category or "").split("/")[0] != category for i in page
        ):
            raise BenchError(f"search {category} {status}: a ticket that does not match")
        rows += len(page)
    names = statuses[0].value if len(statuses) == 1 else "an active one"
    return Row(f"search: category subtree + status ({names})", timings, rows)


def page_to_the_end(store: SqliteTicketStore, group: str, wanted: int) -> None:
    """Every active ticket of the group exactly once, by cursor, in queue order."""
    keys: list[tuple[int, int, int]] = []
    query = replace(group_queue(group), limit=500)
    while page := store.find_incidents(query):
        keys.extend(queue_key(i) for i in page)
        query = replace(query, after=keys[-1])
    if len(keys) != wanted or keys != sorted(set(keys)):
        raise BenchError(
            f"paging {group} by cursor gave {len(keys)} tickets ({len(set(keys))} distinct, "
            f"{'' if keys == sorted(keys) else 'not '}in order), expected {wanted}"
        )


# -- plans and size ------------------------------------------------------------------------


def check_plans(store: SqliteTicketStore, desk: Desk, expected: Expected, *, show: bool) -> None:
    """The queue pages read their rows off the queues' partial indexes, in order: no
    sort of the group's (or every) active ticket per page."""
    group = max(desk.groups, key=lambda g: expected.active_by_group[g])
    agent = max(desk.agents, key=lambda a: expected.active_by_agent[a])
    after = queue_key(store.find_incidents(group_queue(group))[-1])
    plans: list[tuple[str, IncidentFilter, str | None]] = [
        ("group queue page", group_queue(group), "incident_group_queue"),
        ("group queue page after a cursor", group_queue(group, after), "incident_group_queue"),
        (
            "agent's open tickets",
            IncidentFilter(assignee=agent, open=True, order=QUEUE, limit=PAGE),
            "incident_agent_queue",
        ),
        (
            "search: category subtree + status",
            IncidentFilter(category="network", status=TicketStatus.IN_PROGRESS, limit=PAGE),
            None,
        ),
    ]
    for name, query, index in plans:
        plan = store.query_plan(query)
        if show:
            print(f"EXPLAIN QUERY PLAN, {name}:")
            print("".join(f"    {step}\n" for step in plan), end="")
        if index is None:
            continue
        if not any(f"INDEX {index} " in step for step in plan):
            raise BenchError(f"{name} does not read {index}: {plan}")
        if any("TEMP B-TREE" in step for step in plan):
            raise BenchError(f"{name} sorts its rows instead of reading them in order: {plan}")


def store_size(path: Path) -> tuple[int, list[tuple[str, int]]]:
    """The file's bytes, and the bytes of the incident table and each of its indexes."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        parts = conn.execute(
            "SELECT d.name, sum(d.pgsize) FROM dbstat AS d JOIN sqlite_master AS m "
            "ON m.name = d.name WHERE m.tbl_name = 'incident' GROUP BY d.name "
            "ORDER BY 2 DESC"
        ).fetchall()
    finally:
        conn.close()
    return path.stat().st_size, [(str(n), int(b)) for n, b in parts]


# -- the run -------------------------------------------------------------------------------


def print_results(rows: list[Row], gc_collections: int) -> None:
    print(
        f"\n{'measure':<52}{'calls':>7}{'rows':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  target"
    )
    for r in rows:
        t = r.timings
        print(
            f"{r.measure:<52}{len(t.samples_ms):>7,}{r.rows:>9,}{t.pct(50):>9.3f}"
            f"{t.pct(99):>9.3f}{max(t.samples_ms):>9.3f}  {r.met}"
        )
    print(
        f"targets: queue page in-process p50 <= {TARGET_P50_MS:g} ms, p99 <= "
        f"{TARGET_P99_MS:g} ms, over GraphQL HTTP p50 <= {TARGET_HTTP_P50_MS:g} ms; "
        f"a routed ticket created p50 <= {TARGET_CREATE_P50_MS:g} ms; "
        f"{gc_collections} garbage collections during the timed in-process reads"
    )


def print_size(path: Path, count: int) -> None:
    total, parts = store_size(path)
    print(f"\nstore: {total / 2**20:,.0f} MiB, {total / count:,.0f} bytes per ticket")
    for name, size in parts:
        print(f"    {name:<40}{size / count:>8,.0f} bytes per ticket")


def run(args: argparse.Namespace) -> None:
    shape = DeskShape(tickets=args.tickets, seed=args.seed)
    path, built = cached_desk(shape, args.batch, fresh=args.fresh)
    e = built.expected
    print(
        f"desk: {e.tickets:,} tickets ({e.active:,} active), {shape.groups} groups, "
        f"{shape.agents} agents, {shape.contacts:,} contacts, {shape.services} services; "
        f"generated in {built.generate_s:.1f} s, written by save_incidents in "
        f"{built.write_s:.1f} s ({e.tickets / max(built.write_s, 1e-9):,.0f} tickets/s)"
    )
    desk = build_desk(shape)
    file = SqliteGraphStore(path, read_only=True)
    file.migrate()
    store = SqliteTicketStore(file)
    rng = random.Random(args.seed)
    try:
        check_plans(store, desk, e, show=args.explain)
        for group in [max(desk.groups, key=lambda g: e.active_by_group[g]), *desk.groups[-3:]]:
            page_to_the_end(store, group, e.active_by_group[group])
        if store.counts()["incidents_open"] != e.active:
            raise BenchError("the store's open count differs from the generator's")
        measure_group_pages(store, desk, e, rng, 200)  # warm the page cache, untimed
        gc.collect()
        before = sum(s["collections"] for s in gc.get_stats())
        rows = [
            measure_group_pages(store, desk, e, rng, args.queries),
            *measure_cursor_pages(store, desk, e, rng, args.queries // 5),
            measure_agent_pages(store, desk, e, rng, args.queries),
            measure_search(store, rng, args.queries // 4, list(_ACTIVE)),
            measure_search(store, rng, args.queries // 4, [TicketStatus.RESOLVED]),
            # most tickets are closed: fewer calls, each sorts every closed ticket
            measure_search(store, rng, max(args.queries // 40, 10), [TicketStatus.CLOSED]),
        ]
        collections = sum(s["collections"] for s in gc.get_stats()) - before
    finally:
        file.close()
    rows += measure_creates(path, desk, rng, args.creates)
    if args.http_requests > 0:
        rows += measure_http(path, desk, e, rng, args.http_requests)
    print_results(rows, collections)
    print_size(path, e.tickets)


@dataclass
class P50Row(Row):
    """A row judged by its p50 only: a routed ticket created, a queue page over HTTP."""

    p50_target_ms: float = TARGET_CREATE_P50_MS

    @property
    def met(self) -> str:
        return "met" if self.timings.pct(50) <= self.p50_target_ms else "MISSED"


def measure_creates(path: Path, desk: Desk, rng: random.Random, count: int) -> list[Row]:
    """``TicketService.create`` of routed tickets on the desk file (``desk_create``),
    without and with automatic assignment; the tickets are deleted afterwards."""
    rows: list[Row] = []
    for auto in (False, True):
        try:
            samples = measure_routed_create(path, desk, rng, count, auto_assign=auto)
        except CreateError as exc:
            raise BenchError(str(exc)) from exc
        what = "create a routed ticket" + (" + auto-assign" if auto else "")
        rows.append(P50Row(what, Timings(samples), len(samples)))
    return rows


def measure_http(
    path: Path, desk: Desk, expected: Expected, rng: random.Random, requests: int
) -> list[Row]:
    """``groupQueue`` over GraphQL HTTP against ``servicegraph serve`` on a copy of the
    desk file (``desk_graphql``): page 1 of random groups, pages 1..5 by cursor."""
    try:
        s = measure_graphql_queue(path, desk, expected, rng, requests)
    except GraphQLPageError as exc:
        raise BenchError(str(exc)) from exc
    print(f"GraphQL HTTP: file copied in {s.copy_s:.1f} s, server up in {s.startup_s:.1f} s")
    pooled = Timings([ms for page in s.cursor_pages for ms in page])
    return [
        P50Row(what, timings, rows, p50_target_ms=TARGET_HTTP_P50_MS)
        for what, timings, rows in (
            ("GraphQL HTTP: queue page 1 (random groups)", Timings(s.first_pages), s.rows[0]),
            ("GraphQL HTTP: queue pages 1..5 by cursor, pooled", pooled, s.rows[1]),
        )
    ]


_ACTIVE = [TicketStatus.NEW, TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS, TicketStatus.PENDING]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Service desk ticket repository benchmark.")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached desk")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    parser.add_argument("--queries", type=int, default=2_000, help="timed pages per measure")
    parser.add_argument("--batch", type=int, default=10_000, help="tickets per unit when building")
    parser.add_argument("--creates", type=int, default=1_000, help="routed tickets created")
    parser.add_argument("--http-requests", type=int, default=500, help="per measure; 0: none")
    args = parser.parse_args(argv)
    try:
        run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
