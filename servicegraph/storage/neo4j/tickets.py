"""Neo4j adapter of the ticketing repository port (``servicegraph.ticketing.ports``):
the reads, units of people's work (``ticket_unit.py``) and the export view
(``ticket_snapshot.py``), the counterpart of ``storage/sqlite/tickets.py``.

Tickets live in the database of the configuration graph, linked to the CIs they concern
(``ticket_cypher``). A unit takes the desk's write lock (``schema.DESK_LOCK``), which
correlation batches take too, so that a unit of ticket work is serialised with them;
``touched`` advances the state version (the ``desk_state`` counter) so that workers
reload the incidents people changed. Reads run in managed read transactions, retried by
the driver; nothing they read needs the lock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from neo4j import ManagedTransaction
from neo4j.exceptions import DriverError, Neo4jError

from servicegraph.events.model import Alert, AlertCycle
from servicegraph.storage.neo4j import change_nodes, schema, sla_nodes
from servicegraph.storage.neo4j import ticket_cypher as q
from servicegraph.storage.neo4j.records import Tx, batches, run, unique
from servicegraph.storage.neo4j.store import Neo4jGraphStore
from servicegraph.storage.neo4j.ticket_snapshot import Neo4jTicketSnapshot
from servicegraph.storage.neo4j.ticket_unit import (
    Neo4jTicketUnit,
    alerts_by_incident,
    read_counter,
    record_alert,
    record_incident,
    record_worklog,
    select,
    select_incidents,
    with_incidents,
)
from servicegraph.storage.sqlite.file import from_us, to_us
from servicegraph.storage.sqlite.incident_rows import dumps, opt_dt, opt_us
from servicegraph.ticketing.change_model import FreezeWindow
from servicegraph.ticketing.model import (
    Change,
    Incident,
    LinkKind,
    Problem,
    TicketLink,
    WorklogEntry,
)
from servicegraph.ticketing.ports import (
    ChangeFilter,
    IncidentFilter,
    ProblemFilter,
    TicketOrder,
)
from servicegraph.ticketing.sla_projection import SlaProjector, SlaRecord

T = TypeVar("T")

# IncidentFilter's order -> the listing statements' order
_ORDER = {TicketOrder.NEWEST: "NEWEST", TicketOrder.QUEUE: "QUEUE", TicketOrder.DUE: "DUE"}
_KEY_SIZE = {TicketOrder.NEWEST: 1, TicketOrder.QUEUE: 3, TicketOrder.DUE: 2}


def _key(after: tuple[int, ...], size: int) -> tuple[int, ...]:
    if len(after) != size:
        raise ValueError(f"a cursor of this order has {size} parts, not {len(after)}")
    return after


def _tag_needles(tag: str) -> list[str]:
    """A tag as a whole element of a ticket's JSON list of tags (``dumps``, compact): its
    encoding between the list's delimiters. An element's own quotes are escaped, so an
    unescaped quote next to a delimiter is always an element's end."""
    text = dumps(tag)
    return [f"{before}{text}{after}" for before in "[," for after in ",]"]


def listing(query: IncidentFilter) -> tuple[tuple[str, str], dict[str, Any]] | None:
    """The statement of ``find_incidents`` (its anchor and order) and its parameters;
    None when the filter's fields contradict each other (nothing can hold them all)."""
    after = query.after
    cursor: dict[str, Any]
    if query.order is TicketOrder.QUEUE:
        p, o, n = _key(after, 3) if after is not None else (None, None, None)
        cursor = {"after_priority": p, "after_opened": o, "after_number": n}
    elif query.order is TicketOrder.DUE:
        d, n = _key(after, 2) if after is not None else (None, None)
        cursor = {"after_due": d, "after_number": n}
    else:
        cursor = {"after_number": _key(after, 1)[0] if after is not None else None}
    if (
        query.open is not None
        and query.status is not None
        and query.status.active is not query.open
    ):
        return None  # a status that ``open`` excludes: every field set must hold
    anchor = (
        "CIS"
        if query.ci_ids is not None
        else "GROUP"
        if query.assignment_group is not None
        else "AGENT"
        if query.assignee is not None
        else "ALL"
    )
    params: dict[str, Any] = {
        "status": query.status.value if query.status is not None else None,
        "open": query.open,
        "unassigned": query.unassigned,
        "assignee": query.assignee,
        "assignment_group": query.assignment_group,
        "type": query.type.value if query.type is not None else None,
        "channel": query.channel.value if query.channel is not None else None,
        "requester": query.requester,
        "organisation": query.organisation,
        "service": query.service,
        "max_priority": query.max_priority,
        "category": query.category,
        "category_below": None if query.category is None else query.category + "/",
        "tag_needles": None if query.tag is None else _tag_needles(query.tag),
        "text": None if query.text is None else query.text.lower(),
        "opened_since": opt_us(query.opened_since),
        "resolved_before": opt_us(query.resolved_before),
        "limit": query.limit,
        **cursor,
    }
    if query.ci_ids is not None:
        params["ci_ids"] = list(query.ci_ids)
    return (anchor, _ORDER[query.order]), params


class Neo4jTicketStore:
    """The ticket repository in the Neo4j database of ``graph``."""

    def __init__(self, graph: Neo4jGraphStore) -> None:
        self._graph = graph
        self._batch = graph.batch_size
        self._sla: SlaProjector | None = None

    def keep_sla(self, projector: SlaProjector) -> None:
        self._sla = projector

    def _read(self, action: str, work: Callable[[ManagedTransaction], T]) -> T:
        return self._graph.read(action, work)

    def ping(self) -> None:
        self._read("reading tickets", lambda tx: read_counter(tx, q.SEQUENCE_STATE))

    @contextmanager
    def unit(self) -> Iterator[Neo4jTicketUnit]:
        purpose = "a unit of ticket work"
        with self._graph.locked(purpose, schema.DESK_LOCK) as tx:
            try:
                unit = Neo4jTicketUnit(tx, self._sla, self._batch)
                yield unit
                unit.flush_sla()
            except (Neo4jError, DriverError) as exc:
                raise self._graph.error(exc, purpose) from exc

    # -- incidents and alerts -----------------------------------------------------------------

    def get_incidents(self, ids: Iterable[str]) -> dict[str, Incident]:
        wanted = unique(ids)
        return self._read("reading tickets", lambda tx: select_incidents(tx, wanted, self._batch))

    def find_incidents(self, query: IncidentFilter) -> list[Incident]:
        found = listing(query)
        if found is None:
            return []
        key, params = found
        statement = q.FIND_INCIDENTS[key]

        def work(tx: ManagedTransaction) -> list[Incident]:
            return [record_incident(r) for r in run(tx, statement, **params)]

        return self._read("listing tickets", work)

    def open_incidents_of(self, ci_ids: Iterable[str]) -> dict[str, list[Incident]]:
        ids = unique(ci_ids)

        def work(tx: ManagedTransaction) -> dict[str, list[Incident]]:
            result: dict[str, list[Incident]] = {}
            for r in select(tx, q.OPEN_INCIDENTS_OF, "ci_ids", ids, self._batch):
                result.setdefault(r["ci"], []).append(record_incident(r))
            return result

        return self._read("reading the tickets of CIs", work)

    def incidents_of(self, ci_ids: Iterable[str]) -> list[Incident]:
        ids = unique(ci_ids)

        def work(tx: ManagedTransaction) -> list[Incident]:
            rows = select(tx, q.INCIDENTS_OF, "ci_ids", ids, self._batch)
            found = {i.id: i for i in map(record_incident, rows)}
            return sorted(found.values(), key=lambda i: i.number)

        return self._read("reading the tickets of CIs", work)

    def incident_alerts(self, incident_ids: Iterable[str]) -> dict[str, list[Alert]]:
        ids = unique(incident_ids)
        return self._read("reading alerts", lambda tx: alerts_by_incident(tx, ids, self._batch))

    def alerts_on(self, ci_ids: Iterable[str]) -> list[Alert]:
        ids = unique(ci_ids)

        def work(tx: ManagedTransaction) -> list[Alert]:
            found = [record_alert(r) for r in select(tx, q.ALERTS_ON, "ci_ids", ids, self._batch)]
            return sorted(found, key=lambda a: (a.first_seen, a.fingerprint))

        return self._read("reading alerts", work)

    def incidents_updated_since(self, since: dt.datetime, limit: int) -> list[Incident]:
        since_us = to_us(since)

        def work(tx: ManagedTransaction) -> list[Incident]:
            rows = run(tx, q.INCIDENTS_UPDATED_SINCE, since=since_us, limit=limit)
            return [record_incident(r) for r in rows]

        return self._read("reading updated tickets", work)

    def last_incident_number(self) -> int:
        return self._read(
            "reading the last ticket number", lambda tx: read_counter(tx, q.SEQUENCE_INCIDENT)
        )

    # -- history import --------------------------------------------------------------------

    def refs_known(self, refs: Iterable[str]) -> set[str]:
        wanted = unique(refs)

        def work(tx: ManagedTransaction) -> set[str]:
            rows = select(tx, q.REFS_KNOWN, "refs", wanted, self._batch)
            return {r["external_ref"] for r in rows}

        return self._read("reading external references", work)

    # -- problems -------------------------------------------------------------------------------

    def _problems(self, action: str, fetch: Callable[[Tx], list[Any]]) -> list[Problem]:
        return self._read(action, lambda tx: with_incidents(tx, fetch(tx), self._batch))

    def get_problems(self, ids: Iterable[str]) -> dict[str, Problem]:
        wanted = unique(ids)
        problems = self._problems(
            "reading problems", lambda tx: select(tx, q.LOAD_PROBLEMS, "ids", wanted, self._batch)
        )
        return {p.id: p for p in problems}

    def find_problems(self, query: ProblemFilter) -> list[Problem]:
        params = {
            "status": query.status.value if query.status is not None else None,
            "root_ci_ids": None if query.root_ci_ids is None else list(query.root_ci_ids),
            "assignee": query.assignee,
            "limit": query.limit,
        }
        return self._problems(
            "listing problems", lambda tx: list(run(tx, q.FIND_PROBLEMS, **params))
        )

    def _by_number(self, action: str, fetch: Callable[[Tx], list[Any]]) -> list[Problem]:
        # statements of several batches each return their page in order: merge them
        problems = {p.id: p for p in self._problems(action, fetch)}
        return sorted(problems.values(), key=lambda p: p.number)

    def problems_of(self, ci_ids: Iterable[str]) -> list[Problem]:
        ids = unique(ci_ids)
        return self._by_number(
            "reading the problems of CIs",
            lambda tx: select(tx, q.PROBLEMS_OF, "ci_ids", ids, self._batch),
        )

    def problems_fixed_by(self, change_ids: Iterable[str]) -> list[Problem]:
        ids = unique(change_ids)
        return self._by_number(
            "reading the problems changes fix",
            lambda tx: select(tx, q.PROBLEMS_FIXED_BY, "ids", ids, self._batch),
        )

    def known_errors_for(self, ci_ids: Iterable[str], signatures: Iterable[str]) -> list[Problem]:
        cis, names = unique(ci_ids), unique(signatures)

        def fetch(tx: Tx) -> list[Any]:
            found: list[Any] = []
            for batch in batches(cis, self._batch):
                found.extend(run(tx, q.KNOWN_ERRORS_FOR, ci_ids=list(batch), signatures=[]))
            for batch in batches(names, self._batch):
                found.extend(run(tx, q.KNOWN_ERRORS_FOR, ci_ids=[], signatures=list(batch)))
            return found

        return self._by_number("reading known errors", fetch)

    # -- changes and worklog --------------------------------------------------------------------

    def get_changes(self, ids: Iterable[str]) -> dict[str, Change]:
        wanted = unique(ids)
        return self._read(
            "reading changes",
            lambda tx: change_nodes.changes_by_id(tx, wanted, batch_size=self._batch),
        )

    def find_changes(self, query: ChangeFilter) -> list[Change]:
        return self._read("listing changes", lambda tx: change_nodes.find_changes(tx, query))

    def changes_touching(self, start: dt.datetime, end: dt.datetime) -> list[Change]:
        start_us, end_us = to_us(start), to_us(end)
        return self._read(
            "reading changes", lambda tx: change_nodes.changes_touching(tx, start_us, end_us)
        )

    def freeze_windows(
        self, start: dt.datetime | None = None, end: dt.datetime | None = None
    ) -> list[FreezeWindow]:
        start_us, end_us = opt_us(start), opt_us(end)
        return self._read(
            "reading freeze windows",
            lambda tx: change_nodes.freeze_windows(tx, start_us, end_us),
        )

    def worklog(self, ticket_ids: Iterable[str]) -> dict[str, list[WorklogEntry]]:
        ids = unique(ticket_ids)

        def work(tx: ManagedTransaction) -> dict[str, list[WorklogEntry]]:
            result: dict[str, list[WorklogEntry]] = {}
            # each ticket in one batch: its entries come in seq order
            for r in select(tx, q.WORKLOG, "ids", ids, self._batch):
                result.setdefault(r["ticket_id"], []).append(record_worklog(r))
            return result

        return self._read("reading the worklog", work)

    # -- SLA clocks (part C's nodes) ------------------------------------------------------

    def sla_of(self, ticket_ids: Iterable[str]) -> dict[str, SlaRecord]:
        ids = unique(ticket_ids)
        return self._read(
            "reading SLA clocks", lambda tx: sla_nodes.select_sla(tx, ids, batch_size=self._batch)
        )

    def sla_due(self, now: dt.datetime, limit: int) -> list[str]:
        now_us = to_us(now)
        return self._read("reading due SLA clocks", lambda tx: sla_nodes.sla_due(tx, now_us, limit))

    def sla_stale(self, config: str, limit: int) -> list[str]:
        return self._read(
            "reading stale SLA clocks", lambda tx: sla_nodes.sla_stale(tx, config, limit)
        )

    # -- what correlation could not place, and totals ---------------------------------------------

    def unmapped_alerts(self, limit: int = 100) -> list[Alert]:
        return self._read(
            "reading unmapped alerts",
            lambda tx: [record_alert(r) for r in run(tx, q.UNMAPPED_ALERTS, limit=limit)],
        )

    def counts(self) -> dict[str, int]:
        def work(tx: ManagedTransaction) -> dict[str, int]:
            record = run(tx, q.COUNTS).single()
            assert record is not None  # aggregates always return a row
            return {key: int(value) for key, value in record.data().items()}

        return self._read("counting tickets", work)

    # -- links, alert cycles, load -------------------------------------------------------------

    def links_of(self, ticket_ids: Iterable[str]) -> dict[str, list[TicketLink]]:
        ids = unique(ticket_ids)
        wanted = set(ids)

        def work(tx: ManagedTransaction) -> dict[str, list[TicketLink]]:
            found: dict[tuple[str, str, str], TicketLink] = {}
            for r in select(tx, q.LINKS_OF, "ids", ids, self._batch):
                link = TicketLink(
                    r["source_id"],
                    r["target_id"],
                    LinkKind(r["kind"]),
                    from_us(r["created_at"]),
                    r["created_by"],
                )
                found[(link.source_id, link.kind.value, link.target_id)] = link
            ordered = sorted(
                found.items(), key=lambda kv: (kv[1].created_at, kv[0][0], kv[0][1], kv[0][2])
            )
            result: dict[str, list[TicketLink]] = {}
            for _, link in ordered:
                for end in {link.source_id, link.target_id} & wanted:
                    result.setdefault(end, []).append(link)
            return result

        return self._read("reading ticket links", work)

    def alert_cycles(self, fingerprints: Iterable[str]) -> dict[str, list[AlertCycle]]:
        wanted = unique(fingerprints)

        def work(tx: ManagedTransaction) -> dict[str, list[AlertCycle]]:
            result: dict[str, list[AlertCycle]] = {}
            # each alert in one batch: its cycles come in firing order
            for r in select(tx, q.ALERT_CYCLES, "fingerprints", wanted, self._batch):
                result.setdefault(r["fingerprint"], []).append(
                    AlertCycle(
                        r["fingerprint"],
                        from_us(r["fired_at"]),
                        opt_dt(r["cleared_at"]),
                        r["incident_id"],
                    )
                )
            return result

        return self._read("reading alert cycles", work)

    def open_counts(self, logins: Iterable[str]) -> dict[str, int]:
        wanted = unique(logins)

        def work(tx: ManagedTransaction) -> dict[str, int]:
            rows = select(tx, q.OPEN_COUNTS, "logins", wanted, self._batch)
            return {r["login"]: int(r["n"]) for r in rows if r["n"]}

        return self._read("counting open tickets", work)

    # -- export (servicegraph export): see ticket_snapshot.py -----------------------------------

    @contextmanager
    def snapshot(self) -> Iterator[Neo4jTicketSnapshot]:
        """Export view: the records copied under the desk lock, then streamed from
        temporary files while writers carry on (``ticket_snapshot``)."""
        purpose = "copying the tickets for an export"
        view = Neo4jTicketSnapshot(self._batch)
        try:
            with self._graph.locked(purpose, schema.DESK_LOCK) as tx:
                try:
                    view.copy(tx)
                except (Neo4jError, DriverError) as exc:
                    raise self._graph.error(exc, purpose) from exc
            yield view
        finally:
            view.close()
