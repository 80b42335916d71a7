"""The Neo4j unit of ticket work (``servicegraph.ticketing.ports.TicketUnit``): one
transaction holding the desk's write lock (``schema.DESK_LOCK``) in the database of the
configuration graph. People's work (``tickets.py``) and correlation batches
(``event_inbox.py``, which adds the inbox claim) both write through it, so both leave the
same records, and holding the lock is what makes their read-then-write safe at Neo4j's
*read committed*.

The mirror of ``storage/sqlite/ticket_unit.py``: nodes are its rows (``ticket_cypher``),
written and read by the SQLite codecs; changes, freeze windows and SLA clocks are part
C's (``change_nodes``, ``sla_nodes``), the outbox part O's (``outbox.enqueue``). Numbers
and worklog ``seq`` come from ``(:Sequence)`` counters that every write raises to the
highest it holds, so that ``next_*_number`` continues after restored records as SQLite's
``max(number) + 1`` does, without reading an index.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import neo4j

from servicegraph.cmdb.errors import StoreUnavailable
from servicegraph.events.model import Alert, AlertCycle
from servicegraph.storage.neo4j import change_nodes, cypher, outbox, sla_nodes
from servicegraph.storage.neo4j import ticket_cypher as q
from servicegraph.storage.neo4j.catalogue import Statement
from servicegraph.storage.neo4j.records import Tx, batches, run, unique
from servicegraph.storage.sqlite.file import from_us, to_us
from servicegraph.storage.sqlite.incident_rows import (
    alert_row,
    incident_row,
    opt_us,
    problem_row,
    to_alert,
    to_incident,
    to_problem,
)
from servicegraph.ticketing.change_model import FreezeWindow
from servicegraph.ticketing.model import (
    Change,
    Incident,
    Problem,
    TicketLink,
    WorklogEntry,
    WorklogKind,
)
from servicegraph.ticketing.outbox import OutboxMessage
from servicegraph.ticketing.ports import ProblemLink
from servicegraph.ticketing.sla_projection import Fired, SlaProjector, SlaRecord

# where each people's column stands in a whole incident row
_PEOPLE_AT = tuple(q.INCIDENT_PROPERTIES.index(c) for c in q.PEOPLE_PROPERTIES)


# -- rows: the SQLite codecs' tuples as property maps ---------------------------------------


def incident_properties(incident: Incident) -> dict[str, Any]:
    """The ``(:Incident)`` properties ``save_incidents`` writes: the incident row, and the
    CIs people named as a list (absent when none; the ``ticket_ci`` rows)."""
    props = dict(zip(q.INCIDENT_PROPERTIES, incident_row(incident), strict=True))
    props[q.INCIDENT_CI_IDS] = list(incident.affected_ci_ids) or None
    return props


def people_properties(incident: Incident) -> dict[str, Any]:
    """What ``update_incidents`` writes: the people's columns (``PEOPLE_COLUMNS``)."""
    row = incident_row(incident)
    props: dict[str, Any] = {"id": incident.id}
    props.update((q.PEOPLE_PROPERTIES[n], row[k]) for n, k in enumerate(_PEOPLE_AT))
    props[q.INCIDENT_CI_IDS] = list(incident.affected_ci_ids) or None
    return props


def worklog_row(entry: WorklogEntry, seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "ticket_id": entry.ticket_id,
        "at": to_us(entry.at),
        "actor": entry.actor,
        "kind": entry.kind.value,
        "text": entry.text,
        "field": entry.field,
        "old_value": entry.old,
        "new_value": entry.new,
    }


def record_worklog(r: neo4j.Record) -> WorklogEntry:
    """The entry ``worklog_row`` wrote."""
    return WorklogEntry(
        ticket_id=r["ticket_id"],
        at=from_us(r["at"]),
        actor=r["actor"],
        kind=WorklogKind(r["kind"]),
        text=r["text"],
        seq=r["seq"],
        field=r["field"],
        old=r["old_value"],
        new=r["new_value"],
    )


def record_incident(r: neo4j.Record) -> Incident:
    return to_incident(tuple(r[name] for name in q.INCIDENT_FIELDS))


def record_alert(r: neo4j.Record) -> Alert:
    return to_alert(tuple(r[name] for name in q.ALERT_PROPERTIES))


def record_problem(r: neo4j.Record, incident_ids: list[str]) -> Problem:
    return to_problem(tuple(r[name] for name in q.PROBLEM_PROPERTIES), incident_ids)


# -- reads shared by the unit and the store ------------------------------------------------


def select(tx: Tx, statement: Statement, key: str, values: Iterable[Any], size: int) -> list[Any]:
    """Every record ``statement`` returns for ``values`` (its list parameter ``key``),
    a batch of ``size`` values per statement."""
    found: list[Any] = []
    for batch in batches(unique(values), size):
        found.extend(run(tx, statement, **{key: list(batch)}))
    return found


def select_incidents(tx: Tx, ids: Iterable[str], size: int) -> dict[str, Incident]:
    incidents = (record_incident(r) for r in select(tx, q.LOAD_INCIDENTS, "ids", ids, size))
    return {i.id: i for i in incidents}


def problem_incidents(tx: Tx, problem_ids: Iterable[str], size: int) -> dict[str, list[str]]:
    """Each problem's incidents in the order they were linked."""
    result: dict[str, list[str]] = {}
    for r in select(tx, q.PROBLEM_INCIDENTS, "ids", problem_ids, size):
        result.setdefault(r["problem_id"], []).append(r["incident_id"])
    return result


def with_incidents(tx: Tx, records: list[neo4j.Record], size: int) -> list[Problem]:
    """Problems from their records, with their incident links."""
    links = problem_incidents(tx, [r["id"] for r in records], size)
    return [record_problem(r, links.get(r["id"], [])) for r in records]


def alerts_by_incident(tx: Tx, incident_ids: Iterable[str], size: int) -> dict[str, list[Alert]]:
    """The alerts of each incident, oldest first (incidents without any are absent)."""
    found = [record_alert(r) for r in select(tx, q.ALERTS_OF, "ids", incident_ids, size)]
    # batches each keep the order; across batches, the order of the incidents is free
    found.sort(key=lambda a: (a.first_seen, a.fingerprint))
    result: dict[str, list[Alert]] = {}
    for alert in found:
        result.setdefault(alert.incident_id or "", []).append(alert)
    return result


def read_counter(tx: Tx, name: str) -> int:
    record = run(tx, cypher.READ_SEQUENCE, name=name).single()
    if record is None:
        raise StoreUnavailable(
            f"the Neo4j database has no '{name}' counter; run migrations (servicegraph migrate)"
        )
    return int(record["value"])


def _raise_counter(tx: Tx, name: str, value: int) -> None:
    if run(tx, cypher.RAISE_SEQUENCE, name=name, value=value).single() is None:
        raise StoreUnavailable(
            f"the Neo4j database has no '{name}' counter; run migrations (servicegraph migrate)"
        )


def _advance_counter(tx: Tx, name: str, count: int) -> int:
    record = run(tx, cypher.ADVANCE_SEQUENCE, name=name, count=count).single()
    if record is None:
        raise StoreUnavailable(
            f"the Neo4j database has no '{name}' counter; run migrations (servicegraph migrate)"
        )
    return int(record["value"])


class Neo4jTicketUnit:
    """A unit of ticket work on ``tx``, a transaction holding the desk lock; statements
    carry at most ``batch_size`` records each."""

    def __init__(self, tx: neo4j.Transaction, sla: SlaProjector | None, batch_size: int) -> None:
        self._tx = tx
        self._batch = batch_size
        self._sla = sla if sla is not None and sla.enabled else None
        # the tickets whose clocks ``flush_sla`` evaluates again, as last saved
        self._changed: dict[str, Incident] = {}
        self._fresh: set[str] = set()  # of those, the ones this unit inserted
        self._appended: dict[str, list[WorklogEntry]] = {}  # ... and their entries

    def _write(self, statement: Statement, rows: Sequence[dict[str, Any]]) -> None:
        for batch in batches(rows, self._batch):
            run(self._tx, statement, rows=list(batch)).consume()

    # -- reads ------------------------------------------------------------------------------

    def state_version(self) -> int:
        return read_counter(self._tx, q.SEQUENCE_STATE)

    def load_incidents(self, ids: Iterable[str]) -> dict[str, Incident]:
        return select_incidents(self._tx, ids, self._batch)

    def active_incidents(self, resolved_since: dt.datetime) -> list[Incident]:
        since = to_us(resolved_since)
        return [record_incident(r) for r in run(self._tx, q.ACTIVE_INCIDENTS, since=since)]

    def incidents_with_root(self, ci_ids: Iterable[str], since: dt.datetime) -> list[Incident]:
        since_us = to_us(since)
        found = [
            record_incident(r)
            for batch in batches(unique(ci_ids), self._batch)
            for r in run(self._tx, q.INCIDENTS_WITH_ROOT, ci_ids=list(batch), since=since_us)
        ]
        return sorted(found, key=lambda i: i.opened_at)

    def incidents_named(self, signature: str, since: dt.datetime) -> list[str]:
        rows = run(self._tx, q.INCIDENTS_NAMED, signature=signature, since=to_us(since))
        return [r["id"] for r in rows]

    def count_roots_named(self, signature: str, since: dt.datetime) -> int:
        record = run(
            self._tx, q.COUNT_ROOTS_NAMED, signature=signature, since=to_us(since)
        ).single()
        return 0 if record is None else int(record["roots"])

    def load_alerts(self, fingerprints: Iterable[str]) -> dict[str, Alert]:
        rows = select(self._tx, q.LOAD_ALERTS, "fingerprints", fingerprints, self._batch)
        return {a.fingerprint: a for a in map(record_alert, rows)}

    def alerts_of(self, incident_ids: Iterable[str]) -> dict[str, list[Alert]]:
        return alerts_by_incident(self._tx, incident_ids, self._batch)

    def load_problems(self, ids: Iterable[str]) -> dict[str, Problem]:
        records = select(self._tx, q.LOAD_PROBLEMS, "ids", ids, self._batch)
        return {p.id: p for p in with_incidents(self._tx, records, self._batch)}

    def find_problem(self, signature: str) -> Problem | None:
        record = run(self._tx, q.FIND_PROBLEM, signature=signature).single()
        return None if record is None else record_problem(record, [])

    # -- alerts and incidents -----------------------------------------------------------------

    def save_alerts(self, alerts: Sequence[Alert]) -> None:
        rows = [dict(zip(q.ALERT_PROPERTIES, alert_row(a), strict=True)) for a in alerts]
        self._write(q.SAVE_ALERTS, rows)

    def _known(self, incidents: Sequence[Incident]) -> set[str]:
        ids = [i.id for i in incidents]
        return {r["id"] for r in select(self._tx, q.KNOWN_INCIDENTS, "ids", ids, self._batch)}

    def save_incidents(self, incidents: Sequence[Incident]) -> None:
        if not incidents:
            return
        rows = [{"props": incident_properties(i)} for i in incidents]  # naive times: here
        if self._sla is not None:  # which are new: their whole history is in this unit
            known = self._known(incidents)
            self._fresh.update(i.id for i in incidents if i.id not in known)
        self._write(q.SAVE_INCIDENTS, rows)
        _raise_counter(self._tx, q.SEQUENCE_INCIDENT, max(i.number for i in incidents))
        if self._sla is not None:
            self._changed.update((i.id, i) for i in incidents)

    def update_incidents(self, incidents: Sequence[Incident]) -> None:
        if not incidents:
            return
        rows = [{"props": people_properties(i)} for i in incidents]
        self._write(q.UPDATE_INCIDENTS, rows)
        if self._sla is not None:  # not those absent from the store, which it did not update
            known = self._known(incidents)
            self._changed.update((i.id, i) for i in incidents if i.id in known)

    def next_incident_number(self) -> int:
        return read_counter(self._tx, q.SEQUENCE_INCIDENT) + 1

    # -- SLA clocks (ticketing.sla_projection) ----------------------------------------------

    def flush_sla(self) -> None:
        """Re-evaluate the clocks of the tickets this unit saved, from their history, as
        the last step before the commit (the stores' ``unit`` call it), as SQLite's."""
        if self._sla is None or not self._changed:
            return
        incidents = dict(sorted(self._changed.items()))
        self._changed.clear()
        older = [i for i in incidents if i not in self._fresh]
        worklog = sla_nodes.clock_worklog(self._tx, older, batch_size=self._batch) if older else {}
        worklog.update((i, self._appended.get(i, [])) for i in incidents if i in self._fresh)
        fired = sla_nodes.select_fired(self._tx, older, batch_size=self._batch) if older else {}
        fresh, self._fresh = self._fresh, set()
        self._appended.clear()
        records, drop = self._sla.project_all(incidents, worklog, fired)
        sla_nodes.save_sla(
            self._tx, records, drop, fresh, self._sla.config.version, batch_size=self._batch
        )

    def load_sla(self, ids: Iterable[str]) -> dict[str, SlaRecord]:
        return sla_nodes.select_sla(self._tx, ids, batch_size=self._batch)

    def save_sla(
        self, records: Sequence[SlaRecord], drop: Sequence[str] = (), config: str = ""
    ) -> None:
        sla_nodes.save_sla(self._tx, records, drop, config=config, batch_size=self._batch)

    def fired_levels(self, ids: Iterable[str]) -> dict[str, Fired]:
        return sla_nodes.select_fired(self._tx, ids, batch_size=self._batch)

    def claim_escalation(self, ticket_id: str, clock: str, level: int, at: dt.datetime) -> bool:
        return sla_nodes.claim_level(self._tx, ticket_id, clock, level, at)

    def clock_worklog(self, ids: Iterable[str]) -> dict[str, list[WorklogEntry]]:
        return sla_nodes.clock_worklog(self._tx, ids, batch_size=self._batch)

    def reevaluate_sla(self, ids: Iterable[str]) -> bool:
        if self._sla is None:
            return False
        self._changed.update(self.load_incidents(ids))
        return True

    # -- problems ------------------------------------------------------------------------------

    def save_problem(self, problem: Problem) -> None:
        row = dict(zip(q.PROBLEM_PROPERTIES, problem_row(problem), strict=True))
        run(self._tx, q.SAVE_PROBLEMS, rows=[row]).consume()
        _raise_counter(self._tx, q.SEQUENCE_PROBLEM, problem.number)

    def next_problem_number(self) -> int:
        return read_counter(self._tx, q.SEQUENCE_PROBLEM) + 1

    def link_problem(self, problem_id: str, incident_ids: Sequence[str], at: dt.datetime) -> None:
        linked_at = to_us(at)
        for batch in batches(unique(incident_ids), self._batch):
            ids = list(batch)
            run(
                self._tx, q.LINK_PROBLEM, problem_id=problem_id, ids=ids, linked_at=linked_at
            ).consume()
            run(self._tx, q.SET_PROBLEM_ID, problem_id=problem_id, ids=ids).consume()

    # -- changes and freeze windows (part C's nodes) ------------------------------------------

    def save_change(self, change: Change) -> None:
        change_nodes.save_change(self._tx, change)

    def load_changes(self, ids: Iterable[str]) -> dict[str, Change]:
        return change_nodes.changes_by_id(self._tx, ids, batch_size=self._batch)

    def changes_touching(self, start: dt.datetime, end: dt.datetime) -> list[Change]:
        return change_nodes.changes_touching(self._tx, to_us(start), to_us(end))

    def freeze_windows(
        self, start: dt.datetime | None, end: dt.datetime | None
    ) -> list[FreezeWindow]:
        return change_nodes.freeze_windows(self._tx, opt_us(start), opt_us(end))

    def save_freeze_window(self, window: FreezeWindow) -> None:
        change_nodes.save_freeze_window(self._tx, window)

    def delete_freeze_window(self, window_id: str) -> bool:
        return change_nodes.delete_freeze_window(self._tx, window_id)

    def next_change_number(self) -> int:
        return change_nodes.next_change_number(self._tx)

    # -- worklog, outbox, links, cycles --------------------------------------------------------

    def _remember(self, entries: Sequence[WorklogEntry]) -> None:
        if self._fresh:
            for e in entries:
                if e.ticket_id in self._fresh:
                    self._appended.setdefault(e.ticket_id, []).append(e)

    def append_worklog(self, entries: Sequence[WorklogEntry]) -> None:
        if not entries:
            return
        for e in entries:
            to_us(e.at)  # a naive time is refused before a number is taken
        last = _advance_counter(self._tx, q.SEQUENCE_WORKLOG, len(entries))
        first = last - len(entries) + 1
        rows = [worklog_row(e, first + n) for n, e in enumerate(entries)]
        self._remember(entries)
        self._write(q.APPEND_WORKLOG, rows)

    def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        outbox.enqueue(self._tx, messages, batch_size=self._batch)

    def save_links(self, links: Sequence[TicketLink]) -> None:
        rows = [
            {
                "source_id": k.source_id,
                "kind": k.kind.value,
                "target_id": k.target_id,
                "created_at": to_us(k.created_at),
                "created_by": k.created_by,
            }
            for k in links
        ]
        self._write(q.SAVE_LINKS, rows)

    def delete_links(self, links: Sequence[TicketLink]) -> None:
        rows = [
            {"source_id": k.source_id, "kind": k.kind.value, "target_id": k.target_id}
            for k in links
        ]
        self._write(q.DELETE_LINKS, rows)

    def record_cycles(self, cycles: Sequence[AlertCycle]) -> None:
        rows = [
            {
                "fingerprint": c.fingerprint,
                "fired_at": to_us(c.fired_at),
                "cleared_at": opt_us(c.cleared_at),
                "incident_id": c.incident_id,
            }
            for c in cycles
        ]
        self._write(q.RECORD_CYCLES, rows)

    def touched(self) -> int:
        return _advance_counter(self._tx, q.SEQUENCE_STATE, 1)

    # -- restoring an export (servicegraph import --from-export) -----------------------------

    def restore_problem_links(self, links: Sequence[ProblemLink]) -> None:
        rows = [
            {
                "problem_id": k.problem_id,
                "incident_id": k.incident_id,
                "linked_at": to_us(k.linked_at),
            }
            for k in links
        ]
        self._write(q.RESTORE_PROBLEM_LINKS, rows)

    def restore_worklog(self, entries: Sequence[WorklogEntry]) -> None:
        unnumbered = next((e for e in entries if e.seq < 1), None)
        if unnumbered is not None:
            raise ValueError(f"a restored worklog entry of {unnumbered.ticket_id} has no seq")
        if not entries:
            return
        rows = [worklog_row(e, e.seq) for e in entries]
        self._remember(entries)
        self._write(q.APPEND_WORKLOG, rows)
        # later entries are numbered after the highest (a repeated seq: the constraint)
        _raise_counter(self._tx, q.SEQUENCE_WORKLOG, max(e.seq for e in entries))
