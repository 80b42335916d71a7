"""Each ticket's SLA clocks as last evaluated and the escalation levels fired, as Neo4j
nodes: the counterpart of ``storage/sqlite/sla_rows.py`` (and of the ``sla_due`` and
``sla_stale`` reads of ``storage/sqlite/tickets.py``), on a transaction the caller holds.

``(:SlaRecord)`` nodes are ``ticket_sla`` rows, property for column, read and written by
the SQLite codecs (``sla_row``/``to_sla``); ``(:SlaNone)`` marks the tickets no policy
covers under a configuration, so that they are not evaluated again until it changes;
``(:SlaEscalation)`` records a level fired, once. The ``sla_due_at`` property of the
``(:Incident)`` node mirrors the record's due time, so that a queue ordered by due time
reads the incidents alone, as ``incident.sla_due_at`` does in SQLite.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Container, Iterable, Sequence
from typing import Any

from servicegraph.storage.neo4j import change_cypher as q
from servicegraph.storage.neo4j.records import Tx, batches, run, unique
from servicegraph.storage.sqlite.file import from_us, to_us
from servicegraph.storage.sqlite.incident_rows import opt_us
from servicegraph.storage.sqlite.sla_rows import sla_row, to_sla
from servicegraph.ticketing.model import WorklogEntry, WorklogKind
from servicegraph.ticketing.sla_projection import Fired, SlaRecord

BATCH = 1000  # records per statement when the caller names no batch size


def sla_properties(record: SlaRecord) -> dict[str, Any]:
    """The property map of a ``(:SlaRecord)`` node: its ``ticket_sla`` row."""
    return dict(zip(q.SLA_PROPERTIES, sla_row(record), strict=True))


def select_sla(tx: Tx, ids: Iterable[str], *, batch_size: int = BATCH) -> dict[str, SlaRecord]:
    found: dict[str, SlaRecord] = {}
    for batch in batches(unique(ids), batch_size):
        for r in run(tx, q.LOAD_SLA, ids=list(batch)):
            record = to_sla([r[name] for name in q.SLA_PROPERTIES])
            found[record.ticket_id] = record
    return found


def save_sla(
    tx: Tx,
    records: Sequence[SlaRecord],
    drop: Sequence[str],
    fresh: Container[str] = (),
    config: str = "",
    *,
    batch_size: int = BATCH,
) -> None:
    """Keep ``records`` (and each ticket's due time as ``sla_due_at`` on its incident);
    forget the clocks of ``drop``, tickets no policy covers under ``config`` (marked so
    by ``(:SlaNone)`` nodes, so that they are not evaluated again until it changes).
    ``fresh``: tickets created in this transaction, whose due time is still unset (an
    imported history is mostly closed tickets: no due time, nothing to write)."""
    rows = [sla_properties(r) for r in records]
    due = [
        {"id": r.ticket_id, "due_at": opt_us(r.due_at)}
        for r in records
        if r.due_at is not None or r.ticket_id not in fresh
    ]
    for batch in batches(rows, batch_size):
        run(tx, q.SAVE_SLA, rows=list(batch)).consume()
    for batch in batches(due, batch_size):
        run(tx, q.SET_SLA_DUE, rows=list(batch)).consume()
    for ids in batches(unique(drop), batch_size):
        run(tx, q.DROP_SLA, ids=list(ids), config=config).consume()


def select_fired(tx: Tx, ids: Iterable[str], *, batch_size: int = BATCH) -> dict[str, Fired]:
    found: dict[str, set[tuple[str, int]]] = {}
    for batch in batches(unique(ids), batch_size):
        for r in run(tx, q.LOAD_FIRED, ids=list(batch)):
            found.setdefault(r["ticket_id"], set()).add((r["clock"], r["level"]))
    return {k: frozenset(v) for k, v in found.items()}


def claim_level(tx: Tx, ticket_id: str, clock: str, level: int, at: dt.datetime) -> bool:
    """Record the level as fired; False when it already was (by this job or another)."""
    summary = run(
        tx, q.CLAIM_LEVEL, ticket_id=ticket_id, clock=clock, level=level, fired_at=to_us(at)
    ).consume()
    return summary.counters.nodes_created == 1


def clock_worklog(
    tx: Tx, ids: Iterable[str], *, batch_size: int = BATCH
) -> dict[str, list[WorklogEntry]]:
    """The entries the clocks read (status steps and pending reasons), in ``seq`` order,
    from the ``(:WorklogEntry)`` nodes (the SQLite ``worklog`` columns)."""
    result: dict[str, list[WorklogEntry]] = {}
    # each ticket once, so that its entries come from one batch, in order
    for batch in batches(unique(ids), batch_size):
        for r in run(tx, q.CLOCK_WORKLOG, ids=list(batch)):
            ticket_id = r["ticket_id"]
            result.setdefault(ticket_id, []).append(
                WorklogEntry(
                    ticket_id=ticket_id,
                    at=from_us(r["at"]),
                    actor="",
                    kind=WorklogKind(r["kind"]),
                    seq=r["seq"],
                    field=r["field"],
                    old=r["old_value"],
                    new=r["new_value"],
                )
            )
    return result


def sla_due(tx: Tx, now_us: int, limit: int) -> list[str]:
    """The tickets whose next check has come by ``now``, the most overdue first."""
    return [r["ticket_id"] for r in run(tx, q.SLA_DUE, now_us=now_us, limit=limit)]


def sla_stale(tx: Tx, config: str, limit: int) -> list[str]:
    """Active tickets last evaluated (or found uncovered) under another configuration
    than ``config``, or never, in number order."""
    return [r["id"] for r in run(tx, q.SLA_STALE, config=config, limit=limit)]
