"""One timeline per configuration item: everything that happened to it, in time order.

It joins the CI's recorded changes (attributes, relationships, identifiers, staleness,
merges) with the monitoring and service-desk records about it: alerts fired and cleared,
incidents opened and resolved with the work done on them, problems and changes. CIs merged
into the item are part of its timeline, as in ``HistoryService.timeline``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.history import HistoryService
from servicegraph.cmdb.model import HistoryEntry, HistoryKind
from servicegraph.cmdb.ports import GraphStore
from servicegraph.events.model import Alert, EventStatus
from servicegraph.ticketing.model import Change, Incident, Problem, WorklogEntry, WorklogKind
from servicegraph.ticketing.ports import ChangeFilter, TicketStore


class TimelineKind(enum.StrEnum):
    CI_CHANGE = "ci_change"
    ALERT_FIRED = "alert_fired"
    ALERT_CLEARED = "alert_cleared"
    INCIDENT_OPENED = "incident_opened"
    INCIDENT_RESOLVED = "incident_resolved"
    INCIDENT_WORK = "incident_work"
    PROBLEM_OPENED = "problem_opened"
    PROBLEM_WORK = "problem_work"
    CHANGE_CREATED = "change_created"
    CHANGE_WORK = "change_work"


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One moment of a CI's life. Exactly one of the record fields is set, by kind:
    ``history`` for CI changes, ``alert``, ``incident``, ``problem``, ``change``; work on a
    ticket sets ``work`` and the ticket."""

    at: dt.datetime
    kind: TimelineKind
    ci_id: str  # the CI the entry is about (a merged CI's id for its own past)
    summary: str
    actor: str | None = None
    source: str | None = None
    history: HistoryEntry | None = None
    alert: Alert | None = None
    incident: Incident | None = None
    problem: Problem | None = None
    change: Change | None = None
    work: WorklogEntry | None = None


_SKIPPED_WORK = frozenset({WorklogKind.CREATED, WorklogKind.RESOLVED})  # told by the record


class TimelineService:
    def __init__(self, graph: GraphStore, history: HistoryService, tickets: TicketStore) -> None:
        self.graph = graph
        self.history = history
        self.tickets = tickets

    def timeline(
        self,
        ci_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[TimelineEntry]:
        """Everything that happened to the CI between ``since`` and ``until`` (both
        inclusive), oldest first; entries with the same time keep the order in which they
        were recorded."""
        for value, field in ((since, "since"), (until, "until")):
            if value is not None and value.tzinfo is None:
                raise ValidationFailed("needs a time zone (e.g. 2026-11-01T12:00:00Z)", field=field)
        if since is not None and until is not None and until < since:
            raise ValidationFailed("must not be before since", field="until")
        changes = self.history.timeline(ci_id, since=since, until=until)  # raises UnknownCI
        ids = [ci_id, *self.graph.merged_into(ci_id)]
        entries = self._ci_changes(changes, set(ids))
        entries += self._alerts(self.tickets.alerts_on(ids))
        incidents = self.tickets.incidents_of(ids)
        problems = self.tickets.problems_of(ids)
        changes_of = self._changes_of(ids)
        tickets: dict[str, Incident | Problem | Change] = {}
        tickets.update((i.id, i) for i in incidents)
        tickets.update((p.id, p) for p in problems)
        tickets.update((c.id, c) for c in changes_of)
        entries += self._incidents(incidents, ci_id)
        entries += [
            TimelineEntry(
                p.created_at,
                TimelineKind.PROBLEM_OPENED,
                p.root_ci_id or ci_id,
                f"problem PRB{p.number} opened: {p.title}",
                problem=p,
            )
            for p in problems
        ]
        entries += [
            TimelineEntry(
                c.created_at,
                TimelineKind.CHANGE_CREATED,
                ci_id,
                f"change CHG{c.number} created ({c.status}, {c.risk} risk): {c.title}" + _window(c),
                actor=c.created_by,
                change=c,
            )
            for c in changes_of
        ]
        entries += self._work(self.tickets.worklog(tickets), tickets, ci_id)
        in_window = [
            e
            for e in entries
            if (since is None or e.at >= since) and (until is None or e.at <= until)
        ]
        in_window.sort(key=lambda e: e.at)  # stable: recording order among equal times
        return in_window

    def _changes_of(self, ids: list[str]) -> list[Change]:
        return self.tickets.find_changes(ChangeFilter(ci_ids=tuple(ids), limit=100_000))

    def _ci_changes(self, changes: list[HistoryEntry], own: set[str]) -> list[TimelineEntry]:
        others = {e.other_ci_id for e in changes if e.other_ci_id} | {
            str(e.new)
            for e in changes
            if e.kind in (HistoryKind.MERGED_INTO, HistoryKind.MERGED_FROM) and e.new
        }
        names = {i: ci.name for i, ci in self.graph.get_cis(others).items()} if others else {}
        result = []
        for e in changes:
            ci_id = e.ci_id if e.ci_id in own or e.other_ci_id is None else e.other_ci_id
            result.append(
                TimelineEntry(
                    e.at,
                    TimelineKind.CI_CHANGE,
                    ci_id,
                    describe_change(e, names, own),
                    actor=e.actor,
                    source=e.source,
                    history=e,
                )
            )
        return result

    @staticmethod
    def _alerts(alerts: Iterable[Alert]) -> list[TimelineEntry]:
        result = []
        for a in alerts:
            ci_id = a.ci_id or ""
            severity = a.severity.name.lower()
            result.append(
                TimelineEntry(
                    a.first_seen,
                    TimelineKind.ALERT_FIRED,
                    ci_id,
                    f"alert {a.name} fired ({severity}, {a.source})"
                    + (f": {a.summary}" if a.summary else ""),
                    source=a.source,
                    alert=a,
                )
            )
            if a.status is EventStatus.RESOLVED and a.cleared_at is not None:
                result.append(
                    TimelineEntry(
                        a.cleared_at,
                        TimelineKind.ALERT_CLEARED,
                        ci_id,
                        f"alert {a.name} cleared ({a.source})",
                        source=a.source,
                        alert=a,
                    )
                )
        return result

    @staticmethod
    def _incidents(incidents: Iterable[Incident], ci_id: str) -> list[TimelineEntry]:
        result = []
        for i in incidents:
            result.append(
                TimelineEntry(
                    i.opened_at,
                    TimelineKind.INCIDENT_OPENED,
                    i.root_ci_id or ci_id,
                    f"incident INC{i.number} opened (priority {i.priority}): {i.title}",
                    source="correlation",
                    incident=i,
                )
            )
            if i.resolved_at is not None:
                how = (
                    f"by {i.resolved_by}: {i.resolution}"
                    if i.resolved_by
                    else "(all its alerts cleared)"
                )
                result.append(
                    TimelineEntry(
                        i.resolved_at,
                        TimelineKind.INCIDENT_RESOLVED,
                        i.root_ci_id or ci_id,
                        f"incident INC{i.number} resolved {how}",
                        actor=i.resolved_by,
                        source=None if i.resolved_by else "correlation",
                        incident=i,
                    )
                )
        return result

    @staticmethod
    def _work(
        worklog: dict[str, list[WorklogEntry]],
        tickets: dict[str, Incident | Problem | Change],
        ci_id: str,
    ) -> list[TimelineEntry]:
        result = []
        seen: set[tuple[dt.datetime, str, str]] = set()  # a link is logged on both tickets
        for ticket_id, entries in worklog.items():
            ticket = tickets[ticket_id]
            for w in entries:
                if w.kind in _SKIPPED_WORK or (w.at, w.kind, w.text) in seen:
                    continue
                seen.add((w.at, w.kind, w.text))
                label = w.kind.replace("_", " ")
                text = f": {w.text}" if w.text else ""
                if isinstance(ticket, Incident):
                    kind, name = TimelineKind.INCIDENT_WORK, f"incident INC{ticket.number}"
                    entry = TimelineEntry(
                        w.at, kind, ci_id, f"{name} {label}{text}", w.actor, incident=ticket, work=w
                    )
                elif isinstance(ticket, Problem):
                    kind, name = TimelineKind.PROBLEM_WORK, f"problem PRB{ticket.number}"
                    entry = TimelineEntry(
                        w.at, kind, ci_id, f"{name} {label}{text}", w.actor, problem=ticket, work=w
                    )
                else:
                    kind, name = TimelineKind.CHANGE_WORK, f"change CHG{ticket.number}"
                    entry = TimelineEntry(
                        w.at, kind, ci_id, f"{name} {label}{text}", w.actor, change=ticket, work=w
                    )
                result.append(entry)
        return result


def _window(change: Change) -> str:
    if change.planned_start is None and change.planned_end is None:
        return ""
    start = change.planned_start.isoformat() if change.planned_start else "?"
    end = change.planned_end.isoformat() if change.planned_end else "?"
    return f" [planned {start} .. {end}]"


def _short(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe_change(e: HistoryEntry, names: dict[str, str], own: set[str]) -> str:
    """One line saying what a history entry changed, for people."""
    kind = e.kind
    if kind is HistoryKind.CREATED:
        snapshot = e.new if isinstance(e.new, dict) else {}
        return f"created {snapshot.get('class', 'CI')} '{snapshot.get('name', e.ci_id)}'"
    if kind is HistoryKind.ATTRIBUTE:
        if e.old is None:
            return f"attribute {e.field} set to {_short(e.new)}"
        if e.new is None:
            return f"attribute {e.field} removed (was {_short(e.old)})"
        return f"attribute {e.field}: {_short(e.old)} -> {_short(e.new)}"
    if kind in (HistoryKind.NAME, HistoryKind.LIFECYCLE, HistoryKind.OPERATIONAL_STATE):
        what = {"name": "name", "lifecycle": "lifecycle", "operational_state": "state"}[kind]
        return f"{what}: {_short(e.old)} -> {_short(e.new)}"
    if kind is HistoryKind.IDENTIFIER_ADDED:
        return f"identifier {e.field} {e.new} added"
    if kind is HistoryKind.IDENTIFIER_REMOVED:
        return f"identifier {e.field} {e.old} removed"
    if e.other_ci_id is not None:
        outgoing = e.ci_id in own
        other = e.other_ci_id if outgoing else e.ci_id
        label = names.get(other, other)
        arrow = f"-{e.field}-> {label}" if outgoing else f"<-{e.field}- {label}"
        verb = {
            HistoryKind.RELATIONSHIP_ADDED: "relationship added",
            HistoryKind.RELATIONSHIP_REMOVED: "relationship removed",
            HistoryKind.RELATIONSHIP_ATTRIBUTE: "relationship attributes changed",
            HistoryKind.RELATIONSHIP_STALE: "relationship stale",
            HistoryKind.RELATIONSHIP_FRESH: "relationship seen again",
        }.get(kind, str(kind))
        return f"{verb}: {arrow}"
    if kind is HistoryKind.STALE:
        return "stale: no source reports it any more"
    if kind is HistoryKind.FRESH:
        return "seen again (no longer stale)"
    if kind is HistoryKind.MERGED_INTO:
        return f"merged into {names.get(str(e.new), str(e.new))}"
    if kind is HistoryKind.MERGED_FROM:
        return f"merged {names.get(str(e.new), str(e.new))} into this CI"
    return str(kind)
