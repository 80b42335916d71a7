"""Changes (with their CIs, approvals, tasks and accepted conflicts) and freeze windows as
Neo4j nodes: the counterpart of ``storage/sqlite/change_rows.py``, for the ticket unit
and store of the Neo4j desk, on a transaction they hold (``tx``).

A node's properties are the SQLite row, column for column (``change_cypher``), so the
SQLite codecs (``change_row``/``change_of``, ``freeze_row``/``freeze_of``) turn them into
domain objects and back: one encoding of a change, whichever store keeps it. Writes and
reads by id go in batches of ``batch_size`` records (the graph store's)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import neo4j

from servicegraph.storage.neo4j import change_cypher as q
from servicegraph.storage.neo4j.catalogue import Statement
from servicegraph.storage.neo4j.records import Tx, batches, run, unique
from servicegraph.storage.sqlite.change_rows import change_of, change_row, freeze_of, freeze_row
from servicegraph.ticketing.change_model import Change, FreezeWindow
from servicegraph.ticketing.ports import ChangeFilter

BATCH = 1000  # records per statement when the caller names no batch size
# the unbounded ends of a period, as SQLite's ``freeze_windows`` says them
_NO_START, _NO_END = -(2**62), 2**62


def change_properties(change: Change) -> dict[str, Any]:
    """The property map of a ``(:Change)`` node: its ``change_request`` row, and its CIs
    in order. A naive datetime is refused here (``to_us``), before anything is written."""
    props = dict(zip(q.CHANGE_PROPERTIES, change_row(change), strict=True))
    props[q.CHANGE_CI_IDS] = list(change.ci_ids)
    return props


def freeze_properties(window: FreezeWindow) -> dict[str, Any]:
    return dict(zip(q.FREEZE_PROPERTIES, freeze_row(window), strict=True))


def _change(r: neo4j.Record) -> Change:
    ci_ids = r[q.CHANGE_CI_IDS]
    return change_of(tuple(r[name] for name in q.CHANGE_PROPERTIES), list(ci_ids or []))


def _freeze(r: neo4j.Record) -> FreezeWindow:
    return freeze_of(tuple(r[name] for name in q.FREEZE_PROPERTIES))


def save_changes(tx: Tx, changes: Sequence[Change], *, batch_size: int = BATCH) -> None:
    """Keep ``changes`` whole (a field cleared is gone) with their CHANGES relationships."""
    rows = [change_properties(c) for c in changes]
    for batch in batches(rows, batch_size):
        run(tx, q.SAVE_CHANGES, rows=list(batch)).consume()


def save_change(tx: Tx, change: Change) -> None:
    save_changes(tx, [change])


def changes_by_id(tx: Tx, ids: Iterable[str], *, batch_size: int = BATCH) -> dict[str, Change]:
    found: dict[str, Change] = {}
    for batch in batches(unique(ids), batch_size):
        for r in run(tx, q.CHANGES_BY_ID, ids=list(batch)):
            change = _change(r)
            found[change.id] = change
    return found


def changes_touching(tx: Tx, start_us: int, end_us: int) -> list[Change]:
    """Changes planned or carried out within ``[start, end)`` (microseconds), and every
    change implementing now, ended ones included (the caller filters by status); in
    number order."""
    return [_change(r) for r in run(tx, q.CHANGES_TOUCHING, start_us=start_us, end_us=end_us)]


def find_changes(tx: Tx, query: ChangeFilter) -> list[Change]:
    """``TicketStore.find_changes``: newest first, each filter given narrowing."""
    return [
        _change(r)
        for r in run(
            tx,
            q.FIND_CHANGES,
            status=None if query.status is None else query.status.value,
            assignee=query.assignee,
            ci_ids=None if query.ci_ids is None else list(query.ci_ids),
            limit=query.limit,
        )
    ]


def next_change_number(tx: Tx) -> int:
    """One more than the highest change number (restored numbers included), as SQLite's
    ``coalesce(max(number), 0) + 1``."""
    record = run(tx, q.LAST_CHANGE_NUMBER).single()
    return 1 if record is None else int(record["number"]) + 1


def freeze_windows(tx: Tx, start_us: int | None, end_us: int | None) -> list[FreezeWindow]:
    """Freeze windows overlapping ``[start, end)`` (either end None: unbounded), by start."""
    return [
        _freeze(r)
        for r in run(
            tx,
            q.FREEZE_WINDOWS,
            start_us=_NO_START if start_us is None else start_us,
            end_us=_NO_END if end_us is None else end_us,
        )
    ]


def save_freeze_windows(
    tx: Tx, windows: Sequence[FreezeWindow], *, batch_size: int = BATCH
) -> None:
    rows = [freeze_properties(w) for w in windows]
    for batch in batches(rows, batch_size):
        run(tx, q.SAVE_FREEZE_WINDOWS, rows=list(batch)).consume()


def save_freeze_window(tx: Tx, window: FreezeWindow) -> None:
    save_freeze_windows(tx, [window])


def delete_freeze_window(tx: Tx, window_id: str) -> bool:
    record = run(tx, q.DELETE_FREEZE_WINDOW, id=window_id).single()
    return record is not None and int(record["deleted"]) > 0


# -- export and restore (the desk export) -----------------------------------------------


def all_changes(tx: Tx, *, batch_size: int = BATCH) -> Iterator[Change]:
    """Every change in number order, read a page at a time (keyed on the number, so that
    no statement stays open between pages while the caller reads other records)."""
    after = -(2**63)
    while True:
        page = [_change(r) for r in run(tx, q.DUMP_CHANGES, after_number=after, limit=batch_size)]
        yield from page
        if len(page) < batch_size:
            return
        after = page[-1].number


def all_freeze_windows(tx: Tx, *, batch_size: int = BATCH) -> Iterator[FreezeWindow]:
    """Every freeze window in id order, a page at a time."""
    after = ""
    while True:
        page = [
            _freeze(r) for r in run(tx, q.DUMP_FREEZE_WINDOWS, after_id=after, limit=batch_size)
        ]
        yield from page
        if len(page) < batch_size:
            return
        after = page[-1].id


def counts(tx: Tx) -> dict[str, int]:
    """The export's counts of these records, by ``TicketSnapshot`` listing name."""
    return {
        "freeze_windows": _count(tx, q.COUNT_FREEZE_WINDOWS),
        "changes": _count(tx, q.COUNT_CHANGES),
    }


def _count(tx: Tx, statement: Statement) -> int:
    record = run(tx, statement).single()
    return 0 if record is None else int(record["n"])


def restore_changes(tx: Tx, changes: Iterable[Change], *, batch_size: int = BATCH) -> None:
    """Write exported changes as they were (numbers included), a batch at a time."""
    save_changes(tx, list(changes), batch_size=batch_size)


def restore_freeze_windows(
    tx: Tx, windows: Iterable[FreezeWindow], *, batch_size: int = BATCH
) -> None:
    save_freeze_windows(tx, list(windows), batch_size=batch_size)
