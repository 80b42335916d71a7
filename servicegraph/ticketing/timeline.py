"""One timeline per configuration item: everything that happened to it, in time order,
with nothing lost.

It joins the CI's recorded changes (attributes, relationships, identifiers, staleness,
merges) with the monitoring and service-desk records about it. CIs merged into the item
are part of its timeline, as in ``HistoryService.timeline``. What makes it lossless:

- every fire/clear *cycle* of an alert is shown (``TicketStore.alert_cycles``), not only
  the alert's current state: an alert that fired and cleared four times shows four times;
- tickets are read from their *worklog*, not from their current record: a resolution an
  agent wrote stays on the timeline with its author and text after correlation reopens the
  incident (which clears the record's resolution: the alert proved it wrong), and the
  reopen itself shows with its reason. Each lifecycle step shows old -> new status and who
  took it; assignments, comments and field changes show as they were logged. The record
  only fills in what an older worklog lacks (no "created" entry, a resolution correlation
  made before it logged its steps);
- CIs are named: each entry lists the CIs it concerns (``related``: id, name, role), and
  ids in logged texts ("fired again on ci-5f0c...") read as names in the summary.

Order: time, then a stable key (the CI's own changes first, then alerts, then ticket work
in the order it was logged), so that ``page`` hands out cursors that return each entry
exactly once, however many entries share a time.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.history import HistoryService
from servicegraph.cmdb.model import HistoryEntry, HistoryKind
from servicegraph.cmdb.ports import GraphStore
from servicegraph.events.model import Alert, AlertCycle, EventStatus
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import (
    Change,
    Incident,
    Problem,
    TicketType,
    WorklogEntry,
    WorklogKind,
)
from servicegraph.ticketing.ports import ChangeFilter, TicketStore
from servicegraph.ticketing.timeline_entries import (
    MONITORING_ACTOR,
    EntryKey,
    Rank,
    RelatedCI,
    RelatedRole,
    Resolution,
    TimelineEntry,
    TimelineKind,
    TimelinePage,
    describe_change,
    duration,
    fold_resolutions,
    reopens,
    resolved_summary,
    told,
)

__all__ = [  # the timeline's model, re-exported for callers of the service
    "EntryKey",
    "RelatedCI",
    "RelatedRole",
    "Resolution",
    "TimelineEntry",
    "TimelineKind",
    "TimelinePage",
    "TimelineService",
    "describe_change",
]

DEFAULT_PAGE = 100
MAX_PAGE = 1000


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
        inclusive), in order (see the module); UnknownCI, or ValidationFailed naming
        ``since`` or ``until``."""
        _check_window(since, until)
        return self._entries(ci_id, since, until)

    def page(
        self,
        ci_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = DEFAULT_PAGE,
        after: str | None = None,
    ) -> TimelinePage:
        """At most ``limit`` entries of ``timeline``, those after the entry whose cursor
        is ``after``; ValidationFailed naming ``limit`` or ``after`` too.

        The CMDB history is read from the cursor's time on; the tickets' worklogs and the
        alert cycles, which the ticket port reads per CI, are read whole and cut here."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationFailed(f"must be between 1 and {MAX_PAGE}", field="limit")
        start = EntryKey.parse(after) if after is not None else None
        _check_window(since, until)
        if start is not None and (since is None or start.time() > since):
            since = start.time()  # entries of that very time are kept, then cut by key
        entries = self._entries(ci_id, since, until)
        if start is not None:
            entries = entries[bisect.bisect_right(entries, start, key=lambda e: e.key) :]
        chunk = entries[:limit]
        more = len(entries) > limit
        return TimelinePage(chunk, more, chunk[-1].cursor if more else None)

    def _entries(
        self, ci_id: str, since: dt.datetime | None, until: dt.datetime | None
    ) -> list[TimelineEntry]:
        changes = self.history.timeline(ci_id, since=since, until=until)  # raises UnknownCI
        ids = [ci_id, *self.graph.merged_into(ci_id)]
        alerts = self.tickets.alerts_on(ids)
        cycles = self.tickets.alert_cycles([a.fingerprint for a in alerts]) if alerts else {}
        incidents = self.tickets.incidents_of(ids)
        problems = self.tickets.problems_of(ids)
        changes_of = self.tickets.find_changes(ChangeFilter(ci_ids=tuple(ids), limit=100_000))
        tickets = [i.id for i in incidents] + [p.id for p in problems]
        tickets += [c.id for c in changes_of]
        worklog = self.tickets.worklog(tickets) if tickets else {}
        numbers = {i.id: i.number for i in incidents}
        # a cycle's incident is usually among them; one the alert has left is looked up
        missing = {c.incident_id for cs in cycles.values() for c in cs} - set(numbers) - {None}
        if missing:
            found = self.tickets.get_incidents(m for m in missing if m is not None)
            numbers.update((i.id, i.number) for i in found.values())
        mentioned = _mentioned(ci_id, changes, alerts, incidents, problems, changes_of)
        names = {i: s.name for i, s in self.graph.summaries(mentioned).items()}
        build = EntryBuilder(ci_id, set(ids), names)
        entries = build.ci_changes(changes)
        entries += build.alerts(alerts, cycles, numbers)
        for incident in incidents:
            entries += build.incident(incident, worklog.get(incident.id, []))
        for problem in problems:
            entries += build.problem(problem, worklog.get(problem.id, []))
        for change in changes_of:
            entries += build.change(change, worklog.get(change.id, []))
        in_window = [
            e
            for e in entries
            if (since is None or e.at >= since) and (until is None or e.at <= until)
        ]
        in_window.sort(key=lambda e: e.key)
        return in_window


def _check_window(since: dt.datetime | None, until: dt.datetime | None) -> None:
    for value, field in ((since, "since"), (until, "until")):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed("needs a time zone (e.g. 2026-11-01T12:00:00Z)", field=field)
    if since is not None and until is not None and until < since:
        raise ValidationFailed("must not be before since", field="until")


def _mentioned(
    ci_id: str,
    changes: Sequence[HistoryEntry],
    alerts: Sequence[Alert],
    incidents: Sequence[Incident],
    problems: Sequence[Problem],
    changes_of: Sequence[Change],
) -> set[str]:
    """Every CI id the entries will name, to look their names up at once."""
    ids = {ci_id}
    for e in changes:
        ids.add(e.ci_id)
        if e.other_ci_id:
            ids.add(e.other_ci_id)
        if e.kind in (HistoryKind.MERGED_INTO, HistoryKind.MERGED_FROM) and e.new:
            ids.add(str(e.new))
    ids.update(a.ci_id for a in alerts if a.ci_id)
    for i in incidents:
        ids.update(i.ci_ids())
    ids.update(p.root_ci_id for p in problems if p.root_ci_id)
    for c in changes_of:
        ids.update(c.ci_ids)
    return ids


@dataclass(frozen=True, slots=True)
class _Step:
    """What a ticket's moment tells, before it becomes an entry."""

    kind: TimelineKind
    summary: str
    actor: str | None = None
    work: WorklogEntry | None = None
    status_from: str | None = None
    status_to: str | None = None
    resolution: Resolution | None = None
    reason: str | None = None


class EntryBuilder:
    """Turns the records of one CI into entries, with the CI names looked up once."""

    def __init__(self, ci_id: str, own: set[str], names: dict[str, str]) -> None:
        self.ci_id = ci_id
        self.own = own
        self.names = names
        ids = sorted(names, key=len, reverse=True)  # the longest first, as alternatives
        self._ids = re.compile("|".join(re.escape(i) for i in ids)) if ids else None
        self._links: set[tuple[dt.datetime, str]] = set()  # a link is logged on both tickets

    def name(self, ci_id: str) -> str:
        return self.names.get(ci_id, ci_id)

    def named(self, text: str) -> str:
        """``text`` with the CI ids it holds replaced by the CIs' names."""
        if self._ids is None or not text:
            return text
        return self._ids.sub(lambda m: self.names[m.group(0)], text)

    def related(self, *pairs: tuple[str | None, RelatedRole]) -> tuple[RelatedCI, ...]:
        seen: dict[str, RelatedCI] = {}
        for ci_id, role in pairs:
            if ci_id and ci_id not in seen:
                seen[ci_id] = RelatedCI(ci_id, self.names.get(ci_id), role)
        return tuple(seen.values())

    # -- the CI's own changes ---------------------------------------------------------------

    def ci_changes(self, changes: Iterable[HistoryEntry]) -> list[TimelineEntry]:
        result = []
        for e in changes:
            ci_id = e.ci_id if e.ci_id in self.own or e.other_ci_id is None else e.other_ci_id
            merged = e.kind in (HistoryKind.MERGED_INTO, HistoryKind.MERGED_FROM) and e.new
            other = e.ci_id if e.ci_id not in self.own else e.other_ci_id
            result.append(
                TimelineEntry(
                    at=e.at,
                    kind=TimelineKind.CI_CHANGE,
                    ci_id=ci_id,
                    summary=describe_change(e, self.names, self.own),
                    key=EntryKey.of(e.at, Rank.CI, "", e.seq),
                    actor=e.actor,
                    source=e.source,
                    related=self.related(
                        (other, RelatedRole.RELATIONSHIP),
                        (str(e.new) if merged else None, RelatedRole.MERGED),
                    ),
                    history=e,
                )
            )
        return result

    # -- alerts, one pair of entries per fire/clear cycle -------------------------------------

    def alerts(
        self,
        alerts: Iterable[Alert],
        cycles: dict[str, list[AlertCycle]],
        numbers: dict[str, int],
    ) -> list[TimelineEntry]:
        result = []
        for a in alerts:
            # an alert recorded before cycles were has its current state as its one cycle
            runs = cycles.get(a.fingerprint) or [_cycle_of(a)]
            where = f" on {self.name(a.ci_id)}" if a.ci_id and a.ci_id != self.ci_id else ""
            related = self.related((a.ci_id, RelatedRole.ALERT))
            for n, c in enumerate(runs):
                which = f"cycle {n + 1} of {len(runs)}"
                if c.incident_id in numbers:
                    which += f", INC{numbers[c.incident_id]}"
                fired = (
                    f"alert {a.name} fired{where} ({a.severity.name.lower()}, {a.source}) "
                    f"[{which}]" + (f": {a.summary}" if a.summary else "")
                )
                moments = [(TimelineKind.ALERT_FIRED, c.fired_at, fired, 2 * n + 1)]
                if c.cleared_at is not None:
                    after = duration(c.cleared_at - c.fired_at)
                    cleared = f"alert {a.name} cleared{where} after {after} ({a.source}) [{which}]"
                    # a clear sorts before the next cycle's firing at the same time
                    moments.append((TimelineKind.ALERT_CLEARED, c.cleared_at, cleared, 2 * n + 2))
                result += [
                    TimelineEntry(
                        at=at,
                        kind=kind,
                        ci_id=a.ci_id or "",
                        summary=summary,
                        key=EntryKey.of(at, Rank.ALERT, a.fingerprint, seq),
                        source=a.source,
                        related=related,
                        alert=a,
                        cycle=c,
                    )
                    for kind, at, summary, seq in moments
                ]
        return result

    # -- incidents and service requests, from their worklog ------------------------------------

    def incident(self, i: Incident, log: Sequence[WorklogEntry]) -> list[TimelineEntry]:
        label = f"{_type_label(i)} INC{i.number}"
        related = self.related(
            (i.root_ci_id, RelatedRole.ROOT), *((c, RelatedRole.AFFECTED) for c in i.ci_ids())
        )
        steps: list[tuple[dt.datetime, EntryKey, _Step]] = []
        if not any(w.kind is WorklogKind.CREATED for w in log):  # logged before there was one
            opened = _Step(
                TimelineKind.INCIDENT_OPENED,
                f"{label} opened (priority {i.priority}): {i.title}",
                actor=i.created_by,
            )
            steps.append((i.opened_at, EntryKey.of(i.opened_at, Rank.RECORD, i.id, 0), opened))
        resolutions, folded = fold_resolutions(log)
        for index, w in enumerate(log):
            if index not in folded and not self._logged_twice(w):
                step = self._step(i, label, w, resolutions.get(index))
                steps.append((w.at, EntryKey.of(w.at, Rank.WORK, i.id, w.seq), step))
        if i.resolved_at is not None and not resolutions:  # resolved before steps were logged
            by = i.resolved_by or MONITORING_ACTOR
            resolved = _Step(
                TimelineKind.INCIDENT_RESOLVED,
                resolved_summary(label, i.resolved_by, i.resolution, i.resolution_code),
                actor=i.resolved_by,
                status_to=TicketStatus.RESOLVED,
                resolution=Resolution(i.resolved_at, by, i.resolution, i.resolution_code),
            )
            steps.append((i.resolved_at, EntryKey.of(i.resolved_at, Rank.LATE, i.id, 0), resolved))
        return [
            TimelineEntry(
                at=at,
                kind=s.kind,
                ci_id=i.root_ci_id or self.ci_id,
                summary=s.summary,
                key=key,
                actor=s.actor,
                source=MONITORING_ACTOR if s.actor in (None, MONITORING_ACTOR) else None,
                related=related,
                incident=i,
                work=s.work,
                status_from=s.status_from,
                status_to=s.status_to,
                resolution=s.resolution,
                reason=s.reason,
            )
            for at, key, s in steps
        ]

    def _step(
        self, i: Incident, label: str, w: WorklogEntry, resolution: Resolution | None
    ) -> _Step:
        """What one worklog entry of an incident tells."""
        old, new = (w.old, w.new) if w.field == "status" else (None, None)
        if w.kind is WorklogKind.CREATED:
            by = "" if w.actor == MONITORING_ACTOR else f" by {w.actor}"
            summary = f"{label} opened{by} (priority {i.priority}): {i.title}"
            return _Step(TimelineKind.INCIDENT_OPENED, summary, w.actor, w)
        if resolution is not None:
            person = None if w.actor == MONITORING_ACTOR else w.actor
            text = self.named(resolution.text or "")
            summary = resolved_summary(label, person, text, resolution.code)
            return _Step(
                TimelineKind.INCIDENT_RESOLVED,
                summary,
                w.actor,
                w,
                status_from=old,
                status_to=new or TicketStatus.RESOLVED,
                resolution=resolution,
            )
        if reopens(w):
            reason = self.named(told(w.text))
            moved = f" ({old} -> {new})" if old and new else ""
            summary = f"{label} reopened by {w.actor}{moved}" + (f": {reason}" if reason else "")
            return _Step(
                TimelineKind.INCIDENT_REOPENED, summary, w.actor, w, old, new, reason=reason or None
            )
        if w.kind is WorklogKind.TRANSITION:
            text = f": {self.named(w.text)}" if w.text else ""
            summary = f"{label} {w.old or '?'} -> {w.new or '?'} by {w.actor}{text}"
            return _Step(TimelineKind.INCIDENT_TRANSITION, summary, w.actor, w, old, new)
        summary = f"{label} {self._work_text(w)}"
        return _Step(TimelineKind.INCIDENT_WORK, summary, w.actor, w, old, new)

    def _work_text(self, w: WorklogEntry) -> str:
        """A work entry in words: its text as logged (CI ids named), or what its field
        change says when the text does not."""
        label = w.kind.replace("_", " ")
        text = self.named(w.text)
        if w.field is not None and w.kind is WorklogKind.CHANGED:
            change = f"{w.field}: {w.old or '(none)'} -> {w.new or '(none)'}"
            return f"{label} {change}" + (f" ({text})" if text and text != change else "")
        if not text and w.kind is WorklogKind.ASSIGNED and w.new:
            who = f"group {w.new}" if w.field == "assignment_group" else w.new
            return f"assigned to {who}" + (f" (was {w.old})" if w.old else "")
        if not text:
            return label
        stem = label.split(" ", 1)[0].removesuffix("ed")  # "assign" of assigned
        return text if text.startswith((label, stem, "un" + stem)) else f"{label}: {text}"

    def _logged_twice(self, w: WorklogEntry) -> bool:
        if w.kind is not WorklogKind.LINKED:
            return False
        seen = (w.at, w.text) in self._links
        self._links.add((w.at, w.text))
        return seen

    # -- problems and changes -------------------------------------------------------------------

    def problem(self, p: Problem, log: Sequence[WorklogEntry]) -> list[TimelineEntry]:
        related = self.related((p.root_ci_id, RelatedRole.ROOT))
        opened = TimelineEntry(
            at=p.created_at,
            kind=TimelineKind.PROBLEM_OPENED,
            ci_id=p.root_ci_id or self.ci_id,
            summary=f"problem PRB{p.number} opened: {p.title}",
            key=EntryKey.of(p.created_at, Rank.RECORD, p.id, 0),
            related=related,
            problem=p,
        )
        return [opened, *self._ticket_work(p.id, f"problem PRB{p.number}", log, related, p)]

    def change(self, c: Change, log: Sequence[WorklogEntry]) -> list[TimelineEntry]:
        related = self.related(*((ci, RelatedRole.AFFECTED) for ci in c.ci_ids))
        created = TimelineEntry(
            at=c.created_at,
            kind=TimelineKind.CHANGE_CREATED,
            ci_id=self.ci_id,
            summary=f"change CHG{c.number} created ({c.status}, {c.risk} risk): {c.title}"
            + _window(c),
            key=EntryKey.of(c.created_at, Rank.RECORD, c.id, 0),
            actor=c.created_by,
            related=related,
            change=c,
        )
        return [created, *self._ticket_work(c.id, f"change CHG{c.number}", log, related, c)]

    def _ticket_work(
        self,
        ticket_id: str,
        label: str,
        log: Sequence[WorklogEntry],
        related: tuple[RelatedCI, ...],
        ticket: Problem | Change,
    ) -> list[TimelineEntry]:
        """The work on a problem or change; its creation is told by its record."""
        is_problem = isinstance(ticket, Problem)
        kind = TimelineKind.PROBLEM_WORK if is_problem else TimelineKind.CHANGE_WORK
        about = (ticket.root_ci_id if isinstance(ticket, Problem) else None) or self.ci_id
        return [
            TimelineEntry(
                at=w.at,
                kind=kind,
                ci_id=about if is_problem else self.ci_id,
                summary=f"{label} {self._work_text(w)}",
                key=EntryKey.of(w.at, Rank.WORK, ticket_id, w.seq),
                actor=w.actor,
                related=related,
                problem=ticket if isinstance(ticket, Problem) else None,
                change=ticket if isinstance(ticket, Change) else None,
                work=w,
            )
            for w in log
            if w.kind not in (WorklogKind.CREATED, WorklogKind.RESOLVED)
            and not self._logged_twice(w)
        ]


def _cycle_of(a: Alert) -> AlertCycle:
    cleared = a.cleared_at if a.status is EventStatus.RESOLVED else None
    return AlertCycle(a.fingerprint, a.first_seen, cleared, a.incident_id)


def _type_label(i: Incident) -> str:
    return "service request" if i.type is TicketType.SERVICE_REQUEST else "incident"


def _window(change: Change) -> str:
    if change.planned_start is None and change.planned_end is None:
        return ""
    start = change.planned_start.isoformat() if change.planned_start else "?"
    end = change.planned_end.isoformat() if change.planned_end else "?"
    return f" [planned {start} .. {end}]"
