"""Bulk load into Neo4j: reconciliation in bounded units against a raw ``UNWIND ... MERGE``.

Generates ``--cis`` (default 100,000; ~300,000 relationships), empties the database and
loads the batch with ``Reconciler.apply_in_slices`` (validation, identification,
precedence, history and sightings, ``--commit-every`` records a transaction: what
``servicegraph import`` does on Neo4j). Then empties it and writes the CIs (with their
identifiers) and relationships alone through the adapter's own statements, in units of
the same size: what our schema costs without reconciliation, history, sightings or
source keys. Then empties it again and writes the same CIs
(``UNWIND $rows AS row MERGE (c:CI {id: row.id}) SET c += row.props``) and relationships
(``UNWIND $rows AS row MATCH (a:CI {id: row.from}) MATCH (b:CI {id: row.to}) MERGE
(a)-[:TYPE]->(b)``, one statement per type) in transactions of the same size, with no
history, sightings or identification: the floor of what any loader pays. Prints the
three times and their ratios.

The server is ``NEO4J_URI`` (with ``NEO4J_USER``, ``NEO4J_PASSWORD``, ``NEO4J_DATABASE``;
ITS DATABASE IS EMPTIED), else one started from tools/neo4j (``tests/neo4j_server.py``).

    python -m benchmarks.bench_neo4j_load                 # 100,000 CIs
    python -m benchmarks.bench_neo4j_load --cis 300000    # the wall time at 300,000

Exit status: 0 whatever the timings; 1 when a load fails or the counts disagree.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import neo4j

from benchmarks.topology import build, describe
from servicegraph.bootstrap import bootstrap
from servicegraph.cmdb.model import ConfigurationItem, Relationship
from servicegraph.cmdb.observation import ObservationBatch
from servicegraph.cmdb.reconciliation import Reconciler
from servicegraph.config import Settings
from servicegraph.runtime.heap import collector_paused
from servicegraph.storage.neo4j.store import Neo4jGraphStore
from tests.contract.neo4j_stores import fresh_graph
from tests.neo4j_server import Neo4jAddress, Neo4jServer, address_from_environment

TARGET_RATIO = 2.0  # ours <= 2x the raw MERGE


@contextmanager
def neo4j_address(heap: str) -> Iterator[Neo4jAddress]:
    given = address_from_environment()
    if given is not None:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="sg-bench-neo4j-") as home:
        server = Neo4jServer(home=Path(home), heap=heap)
        started = time.perf_counter()
        address = server.start()
        print(f"started Neo4j from tools/neo4j in {time.perf_counter() - started:.1f} s")
        try:
            yield address
        finally:
            server.stop()


def emptied(address: Neo4jAddress) -> Neo4jGraphStore:
    """The contracts' emptied, migrated database, with the deployment's statement size
    (``SERVICEGRAPH_NEO4J_BATCH_SIZE``; the contracts use 3 rows)."""
    return fresh_graph(address, batch_size=Settings().neo4j_batch_size)


def reconcile(address: Neo4jAddress, batch: ObservationBatch, size: int) -> tuple[float, Any]:
    with tempfile.TemporaryDirectory(prefix="sg-bench-rules-") as tmp:
        rules = bootstrap(Settings(data_dir=Path(tmp)))  # the default configuration's rules
        r = rules.reconciler
        store = emptied(address)
        try:
            reconciler = Reconciler(store, r.classes, r.rules, r.identifier_rules, r.precedence)
            started = time.perf_counter()
            with collector_paused():
                report = reconciler.apply_in_slices(batch, slice_size=size, on_conflict="fail")
            seconds = time.perf_counter() - started
            counts = store.counts()
        finally:
            store.close()
            rules.close()
    return seconds, (report, counts)


def graph_records(address: Neo4jAddress, batch: ObservationBatch, size: int) -> float:
    """The CIs (with their identifiers) and relationships alone, written by the adapter's
    own unit of work in units of ``size`` records: our schema's price, without the
    reconciliation, history, sightings and source keys a real load adds."""
    now = dt.datetime.now(dt.UTC)
    cis = [
        ConfigurationItem(
            id=c.key,
            ci_class=c.ci_class,
            name=c.name,
            attributes=dict(c.attributes),
            identifiers=tuple(
                (kind, v)
                for kind, value in c.identifiers.items()
                for v in (value if isinstance(value, list) else [value])
            ),
            created_at=now,
            updated_at=now,
        )
        for c in batch.cis
        if c.key is not None
    ]
    rels = [
        Relationship(r.from_ref.key, r.type, r.to_ref.key, dict(r.attributes), now, now)
        for r in batch.relationships
        if r.from_ref.key is not None and r.to_ref.key is not None
    ]
    store = emptied(address)
    try:
        started = time.perf_counter()
        for part in chunks(cis, size):
            with store.write() as writer:
                writer.insert_cis(part)
        for rel_part in chunks(rels, size):
            with store.write() as writer:
                writer.save_relationships(rel_part, [])
        return time.perf_counter() - started
    finally:
        store.close()


def raw_rows(batch: ObservationBatch) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
    cis = [
        {
            "id": c.key,
            "props": {
                "name": c.name,
                "ci_class": c.ci_class,
                "attributes": json.dumps(dict(c.attributes), default=str),
                "identifiers": [f"{k}:{v}" for k, v in c.identifiers.items()],
            },
        }
        for c in batch.cis
    ]
    rels: dict[str, list[Any]] = defaultdict(list)
    for r in batch.relationships:
        rels[r.type].append(
            {"from": r.from_ref.key, "to": r.to_ref.key, "attributes": json.dumps(r.attributes)}
        )
    return cis, rels


def chunks(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


CI_MERGE = "UNWIND $rows AS row MERGE (c:CI {id: row.id}) SET c += row.props"
REL_MERGE = (
    "UNWIND $rows AS row MATCH (a:CI {id: row.from}) MATCH (b:CI {id: row.to}) "
    "MERGE (a)-[r:TYPE]->(b) SET r.attributes = row.attributes"
)


def write(session: neo4j.Session, query: str, rows: Sequence[Any]) -> None:
    """One transaction (retried by the driver on transient errors)."""

    def work(tx: neo4j.ManagedTransaction) -> None:
        tx.run(query, rows=list(rows)).consume()

    session.execute_write(work)


def raw_merge(address: Neo4jAddress, batch: ObservationBatch, size: int) -> tuple[float, int, int]:
    emptied(address).close()  # the same schema (CI id constraint) as the reconciled load
    cis, rels = raw_rows(batch)
    driver = neo4j.GraphDatabase.driver(address.uri, auth=(address.user, address.password))
    try:
        with driver.session(database=address.database) as session:
            started = time.perf_counter()
            for part in chunks(cis, size):
                write(session, CI_MERGE, part)
            for rel_type, rows in sorted(rels.items()):
                query = REL_MERGE.replace("TYPE", rel_type)
                for part in chunks(rows, size):
                    write(session, query, part)
            seconds = time.perf_counter() - started
            record = session.run(
                "MATCH (c:CI) WITH count(c) AS cis "
                "OPTIONAL MATCH (:CI)-[r]->(:CI) RETURN cis, count(r) AS rels"
            ).single()
            assert record is not None
            return seconds, int(record["cis"]), int(record["rels"])
    finally:
        driver.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Neo4j bulk load: reconciliation vs raw MERGE.")
    parser.add_argument("--cis", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--commit-every", type=int, default=20_000, help="records per transaction (both loads)"
    )
    parser.add_argument("--heap", default="2g", help="heap of a Neo4j this run starts")
    parser.add_argument(
        "--warm-up", type=int, default=2_000, help="CIs loaded by all three first, unmeasured"
    )
    args = parser.parse_args(argv)

    topo = build(args.cis, args.seed)
    batch = topo.batch
    print(describe(topo))
    cis, rels = topo.ci_count, topo.relationship_count
    problems: list[str] = []
    with neo4j_address(args.heap) as address:
        if args.warm_up:
            # A fresh server compiles each statement and JITs its code on first use; the
            # loader measured first would pay that for all three.
            small = build(args.warm_up, args.seed + 1).batch
            reconcile(address, small, args.commit_every)
            graph_records(address, small, args.commit_every)
            raw_merge(address, small, args.commit_every)
        ours, (report, counts) = reconcile(address, batch, args.commit_every)
        if (counts["cis"], counts["relationships"]) != (cis, rels):
            problems.append(f"reconciled load holds {counts}, not {cis:,} CIs and {rels:,} rels")
        records = graph_records(address, batch, args.commit_every)
        raw, raw_cis, raw_rels = raw_merge(address, batch, args.commit_every)
        if (raw_cis, raw_rels) != (cis, rels):
            problems.append(f"raw load holds {raw_cis:,} CIs and {raw_rels:,} relationships")

    ratio = ours / raw
    print(
        f"\nNeo4j bulk load, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{args.commit_every:,} records a transaction"
    )
    print(f"{'load':<34}{'wall s':>9}{'CIs/s':>10}{'rels/s':>10}{'history':>10}")
    print(
        f"{'reconciled (apply_in_slices)':<34}{ours:>9.1f}{cis / ours:>10,.0f}"
        f"{rels / ours:>10,.0f}{report.history_entries:>10,}"
    )
    print(
        f"{'CIs and relationships only':<34}{records:>9.1f}{cis / records:>10,.0f}"
        f"{rels / records:>10,.0f}{0:>10,}"
    )
    print(f"{'raw UNWIND ... MERGE':<34}{raw:>9.1f}{cis / raw:>10,.0f}{rels / raw:>10,.0f}{0:>10,}")
    print(f"ratio reconciled / raw: {ratio:.2f}")
    print(
        f"ratio CIs and relationships only / raw: {records / raw:.2f} "
        f"(our schema's floor); reconciled / that: {ours / records:.2f}"
    )
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(f"target: reconciled <= {TARGET_RATIO:.0f}x raw: {verdict}")
    if args.cis >= 300_000:
        print(f"wall time at {cis:,} CIs (reconciled): {ours:.1f} s")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
