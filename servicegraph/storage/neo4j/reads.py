"""The store's reads that take more than one statement or a conversion, as functions of a
transaction: ``Neo4jGraphStore`` runs each in a managed read transaction (which the driver
retries), so each must be safe to run again from the start.

``graph_delta`` reads the change sequence before the rows: rows committed after that read
may be returned early (and again next time), never missed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence

from servicegraph.cmdb.model import HistoryEntry
from servicegraph.cmdb.ports import CISummary, EdgeChange, GraphDelta
from servicegraph.storage.neo4j import cypher
from servicegraph.storage.neo4j.catalogue import Statement
from servicegraph.storage.neo4j.records import (
    Tx,
    batches,
    read_change_seq,
    run,
    to_history_entry,
)


def ci_summaries(tx: Tx, ids: Sequence[str], batch_size: int) -> dict[str, CISummary]:
    result: dict[str, CISummary] = {}
    for batch in batches(ids, batch_size):
        for r in run(tx, cypher.CI_SUMMARIES, ids=list(batch)):
            attributes = json.loads(r["attributes"])
            result[r["id"]] = CISummary(
                r["name"],
                attributes.get("criticality"),
                attributes.get("sla_tier"),
                attributes.get("service_hours"),
            )
    return result


def source_keys(
    tx: Tx, keys: Sequence[str], source: str | None, batch_size: int
) -> dict[str, set[str]]:
    """The CIs each key names, for one source or (``None``) any."""
    result: dict[str, set[str]] = {}
    for batch in batches(keys, batch_size):
        if source is None:
            records = run(tx, cypher.LOOKUP_KEYS_ANY_SOURCE, keys=list(batch))
        else:
            records = run(tx, cypher.LOOKUP_KEYS, source=source, keys=list(batch))
        for r in records:
            result.setdefault(r["key"], set()).add(r["ci_id"])
    return result


def history_of(
    tx: Tx, ids: Sequence[str], window: Mapping[str, dt.datetime | None], batch_size: int
) -> list[HistoryEntry]:
    """The history of the CIs within ``window`` (``since`` and ``until``, as Neo4j times),
    in ``seq`` order, each entry once."""
    entries: dict[int, HistoryEntry] = {}
    for batch in batches(ids, batch_size):
        for r in run(tx, cypher.HISTORY, ids=list(batch), **window):
            entries[r["seq"]] = to_history_entry(r)
    return [entries[seq] for seq in sorted(entries)]


def merged_into(tx: Tx, ci_id: str) -> list[str]:
    """Every CI merged into ``ci_id``, directly or through others."""
    found: set[str] = set()
    frontier = [ci_id]
    while frontier:
        level = [r["id"] for r in run(tx, cypher.MERGED_INTO, ids=frontier)]
        frontier = [i for i in level if i not in found and i != ci_id]
        found.update(frontier)
    return sorted(found)


def graph_delta(tx: Tx, since_seq: int) -> GraphDelta:
    seq = read_change_seq(tx)  # before the rows: see the module docstring
    edges = []
    for r in run(tx, cypher.DELTA_RELATIONSHIPS, since_seq=since_seq):
        attributes = json.loads(r["attributes"])
        edges.append(
            EdgeChange(
                r["from_id"],
                r["type"],
                r["to_id"],
                attributes.get("redundancy_group"),
                attributes.get("min_healthy"),
                bool(r["removed"]),
            )
        )
    cis: dict[str, tuple[str, str | None]] = {}
    cluster_min_healthy: dict[str, int | None] = {}
    for r in run(tx, cypher.DELTA_CIS, since_seq=since_seq):
        cis[r["id"]] = (r["class"], r["merged_into"])
        min_healthy = json.loads(r["attributes"]).get("min_healthy")
        if since_seq or min_healthy is not None:
            cluster_min_healthy[r["id"]] = min_healthy
    return GraphDelta(seq=seq, cis=cis, edges=edges, cluster_min_healthy=cluster_min_healthy)


def counts(tx: Tx) -> dict[str, int]:
    def count(statement: Statement) -> int:
        record = run(tx, statement).single()
        return int(record["n"]) if record else 0

    return {
        "cis": count(cypher.COUNT_CIS),
        "relationships": count(cypher.COUNT_RELATIONSHIPS),
        "history_entries": count(cypher.COUNT_HISTORY),
        "conflicts": count(cypher.COUNT_CONFLICTS),
    }
