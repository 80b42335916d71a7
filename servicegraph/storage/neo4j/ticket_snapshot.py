"""Export view of the Neo4j ticket repository (``TicketStore.snapshot``): every alert,
cycle, incident, problem (and its links), freeze window, change, ticket link and worklog
entry, in the orders the port states, the counterpart of ``storage/sqlite/ticket_dump.py``.

Why it is spooled: Neo4j runs *read committed*, so a transaction that reads page after
page sees what units commit meanwhile, and the view would not be one moment. Holding the
desk lock for the whole export would give one moment, but an export runs as long as its
file takes to write, and every unit of desk work would wait for it (a unit the exporting
process opens itself would wait forever). So the view is copied, under the desk lock
(``schema.DESK_LOCK``: no unit commits meanwhile), a page at a time into temporary files
of its own, one per listing, and the lock is released; the listings then stream those
files a page at a time. Memory stays bounded by a page, the view is one moment, and
writers wait only while the records are copied, as they wait for a big unit of work.

The restore side is the ticket unit's (``ticket_unit.py``: the writes, with
``restore_problem_links`` and ``restore_worklog``).
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from servicegraph.events.model import Alert, AlertCycle
from servicegraph.storage.neo4j import change_nodes
from servicegraph.storage.neo4j import ticket_cypher as q
from servicegraph.storage.neo4j.records import Tx, run
from servicegraph.storage.neo4j.ticket_unit import (
    record_alert,
    record_incident,
    record_problem,
    record_worklog,
)
from servicegraph.storage.sqlite.file import from_us, to_us
from servicegraph.storage.sqlite.incident_rows import opt_dt
from servicegraph.ticketing.change_model import FreezeWindow
from servicegraph.ticketing.model import (
    Change,
    Incident,
    LinkKind,
    Problem,
    TicketLink,
    WorklogEntry,
)
from servicegraph.ticketing.ports import ProblemLink

# the listings, by the snapshot's method name (``counts`` names the same)
LISTINGS = (
    "alerts",
    "alert_cycles",
    "incidents",
    "problems",
    "problem_links",
    "freeze_windows",
    "changes",
    "links",
    "worklog",
)


def _cycle(r: Any) -> AlertCycle:
    return AlertCycle(
        r["fingerprint"], from_us(r["fired_at"]), opt_dt(r["cleared_at"]), r["incident_id"]
    )


def _link(r: Any) -> TicketLink:
    return TicketLink(
        r["source_id"],
        r["target_id"],
        LinkKind(r["kind"]),
        from_us(r["created_at"]),
        r["created_by"],
    )


def _pages(tx: Tx, page: int) -> dict[str, Iterator[list[Any]]]:
    """Each listing's records, a page at a time, keyed on its order (no statement stays
    open between pages)."""

    def keyed(
        fetch: Callable[[Any], list[Any]], start: Any, key: Callable[[Any], Any]
    ) -> Iterator[list[Any]]:
        after = start
        while True:
            records = fetch(after)
            if records:
                yield records
            if len(records) < page:
                return
            after = key(records[-1])

    def alerts(after: str) -> list[Alert]:
        return [record_alert(r) for r in run(tx, q.DUMP_ALERTS, after=after, limit=page)]

    def cycles(after: tuple[str, int]) -> list[AlertCycle]:
        rows = run(tx, q.DUMP_ALERT_CYCLES, after=after[0], after_at=after[1], limit=page)
        return [_cycle(r) for r in rows]

    def incidents(after: int) -> list[Incident]:
        rows = run(tx, q.DUMP_INCIDENTS, after_number=after, limit=page)
        return [record_incident(r) for r in rows]

    def problems(after: int) -> list[Problem]:
        rows = run(tx, q.DUMP_PROBLEMS, after_number=after, limit=page)
        return [record_problem(r, []) for r in rows]

    def problem_links() -> Iterator[list[ProblemLink]]:
        after = ""
        while True:
            ids = [r["id"] for r in run(tx, q.DUMP_PROBLEM_IDS, after=after, limit=page)]
            links = [
                ProblemLink(r["problem_id"], r["incident_id"], from_us(r["linked_at"]))
                for r in run(tx, q.PROBLEM_LINKS, ids=ids)
            ]
            if links:
                yield links
            if len(ids) < page:
                return
            after = ids[-1]

    def links(after: tuple[str, str, str]) -> list[TicketLink]:
        rows = run(
            tx,
            q.DUMP_LINKS,
            after=after[0],
            after_kind=after[1],
            after_target=after[2],
            limit=page,
        )
        return [_link(r) for r in rows]

    def worklog(after: int) -> list[WorklogEntry]:
        rows = run(tx, q.DUMP_WORKLOG, after_number=after, limit=page)
        return [record_worklog(r) for r in rows]

    def whole(records: Iterator[Any]) -> Iterator[list[Any]]:
        batch: list[Any] = []
        for record in records:
            batch.append(record)
            if len(batch) == page:
                yield batch
                batch = []
        if batch:
            yield batch

    lowest = -(2**63)
    return {
        "alerts": keyed(alerts, "", lambda a: a.fingerprint),
        "alert_cycles": keyed(cycles, ("", lowest), lambda c: (c.fingerprint, to_us(c.fired_at))),
        "incidents": keyed(incidents, lowest, lambda i: i.number),
        "problems": keyed(problems, lowest, lambda p: p.number),
        "problem_links": problem_links(),
        "freeze_windows": whole(change_nodes.all_freeze_windows(tx, batch_size=page)),
        "changes": whole(change_nodes.all_changes(tx, batch_size=page)),
        "links": keyed(links, ("", "", ""), lambda k: (k.source_id, k.kind.value, k.target_id)),
        "worklog": keyed(worklog, lowest, lambda e: e.seq),
    }


class Neo4jTicketSnapshot:
    """What ``Neo4jTicketStore.snapshot`` yields (``ticketing.ports.TicketSnapshot``):
    the records as copied by ``copy``, streamed from its temporary files; ``close``
    deletes them."""

    def __init__(self, page: int) -> None:
        self._page = page
        self._dir = tempfile.TemporaryDirectory(prefix="servicegraph-desk-export-")
        self._counts = dict.fromkeys(LISTINGS, 0)

    def _path(self, name: str) -> Path:
        return Path(self._dir.name) / f"{name}.pickle"

    def copy(self, tx: Tx) -> None:
        """Copy every record ``tx`` sees, listing by listing, a page at a time."""
        for name, pages in _pages(tx, self._page).items():
            with self._path(name).open("wb") as out:
                for records in pages:
                    pickle.dump(records, out, protocol=pickle.HIGHEST_PROTOCOL)
                    self._counts[name] += len(records)

    def close(self) -> None:
        self._dir.cleanup()

    def _read(self, name: str) -> Iterator[Any]:
        # a file handle of each iteration's own: two listings may be read side by side
        with self._path(name).open("rb") as spool:
            yield from _load(spool)

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    def alerts(self) -> Iterator[Alert]:
        return self._read("alerts")

    def alert_cycles(self) -> Iterator[AlertCycle]:
        return self._read("alert_cycles")

    def incidents(self) -> Iterator[Incident]:
        return self._read("incidents")

    def problems(self) -> Iterator[Problem]:
        return self._read("problems")

    def problem_links(self) -> Iterator[ProblemLink]:
        return self._read("problem_links")

    def freeze_windows(self) -> Iterator[FreezeWindow]:
        return self._read("freeze_windows")

    def changes(self) -> Iterator[Change]:
        return self._read("changes")

    def links(self) -> Iterator[TicketLink]:
        return self._read("links")

    def worklog(self) -> Iterator[WorklogEntry]:
        return self._read("worklog")


def _load(spool: IO[bytes]) -> Iterator[Any]:
    """The records of a spool file, a page at a time (files this process wrote)."""
    while True:
        try:
            records = pickle.load(spool)  # our own temporary file
        except EOFError:
            return
        yield from records
