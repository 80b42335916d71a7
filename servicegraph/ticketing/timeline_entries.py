"""What a CI's timeline is made of: its entries, their keys (order and cursors), pages,
and how a CMDB history entry reads for people.

``timeline.py`` reads the records about a CI and builds these; the GraphQL and CLI entry
points show them.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.model import HistoryEntry, HistoryKind
from servicegraph.events.model import Alert, AlertCycle
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Change, Incident, Problem, WorklogEntry, WorklogKind

# correlation.steps.ACTOR: the actor of correlation's worklog entries (ticketing may not
# import correlation; the two must agree, which the timeline tests check)
MONITORING_ACTOR = "correlation"


class TimelineKind(enum.StrEnum):
    CI_CHANGE = "ci_change"
    ALERT_FIRED = "alert_fired"
    ALERT_CLEARED = "alert_cleared"
    INCIDENT_OPENED = "incident_opened"
    INCIDENT_TRANSITION = "incident_transition"  # a lifecycle step other than the two below
    INCIDENT_RESOLVED = "incident_resolved"
    INCIDENT_REOPENED = "incident_reopened"
    INCIDENT_WORK = "incident_work"  # comments, acknowledgements, assignments, field changes
    PROBLEM_OPENED = "problem_opened"
    PROBLEM_WORK = "problem_work"
    CHANGE_CREATED = "change_created"
    CHANGE_WORK = "change_work"


class RelatedRole(enum.StrEnum):
    """How a CI an entry names relates to it."""

    RELATIONSHIP = "relationship"  # the other end of a relationship change
    MERGED = "merged"  # the CI merged into this one, or this one into
    ALERT = "alert"  # the CI the alert is on
    ROOT = "root"  # the ticket's root cause
    AFFECTED = "affected"  # a CI the ticket (or change) affects


@dataclass(frozen=True, slots=True)
class RelatedCI:
    id: str
    name: str | None  # None: the store holds no CI with that id (any more)
    role: RelatedRole


@dataclass(frozen=True, slots=True)
class Resolution:
    """A resolution as it was written, whatever happened to the ticket afterwards."""

    at: dt.datetime
    by: str
    text: str | None
    code: str | None = None


class Rank(enum.IntEnum):
    """The order of entries that share a time: the CI's own changes, then alerts, then
    tickets (their records, their work in log order, then what only a record tells)."""

    CI = 0
    ALERT = 1
    RECORD = 2
    WORK = 3
    LATE = 4


_CURSOR = "tl1."
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True, order=True)
class EntryKey:
    """The stable sort key of an entry: time (microseconds), rank, a record id, a number."""

    at_us: int
    rank: int
    ref: str
    seq: int

    @classmethod
    def of(cls, at: dt.datetime, rank: Rank, ref: str, seq: int) -> EntryKey:
        return cls((at - _EPOCH) // dt.timedelta(microseconds=1), int(rank), ref, seq)

    def time(self) -> dt.datetime:
        return _EPOCH + dt.timedelta(microseconds=self.at_us)

    def cursor(self) -> str:
        raw = f"{self.at_us}.{self.rank}.{self.seq}.{self.ref}".encode()
        return _CURSOR + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def parse(cls, cursor: str, field: str = "after") -> EntryKey:
        """The key a cursor of ``cursor()`` holds; ValidationFailed naming ``field``."""
        try:
            if not cursor.startswith(_CURSOR):
                raise ValueError(cursor)
            body = cursor[len(_CURSOR) :]
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
            at_us, rank, seq, ref = raw.split(".", 3)
            return cls(int(at_us), int(rank), ref, int(seq))
        except ValueError:  # also base64's and UTF-8's errors
            raise ValidationFailed(
                "is not a timeline cursor (pass the cursor of an entry, or the page's next cursor)",
                field=field,
            ) from None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One moment of a CI's life. The record fields are set by kind: ``history`` for CI
    changes; ``alert`` and its ``cycle``; ``incident``, ``problem`` or ``change`` (their
    current records) with ``work``, the worklog entry that tells the moment."""

    at: dt.datetime
    kind: TimelineKind
    ci_id: str  # the CI the entry is about (a merged CI's id for its own past)
    summary: str
    key: EntryKey
    actor: str | None = None
    source: str | None = None
    related: tuple[RelatedCI, ...] = ()
    history: HistoryEntry | None = None
    alert: Alert | None = None
    cycle: AlertCycle | None = None
    incident: Incident | None = None
    problem: Problem | None = None
    change: Change | None = None
    work: WorklogEntry | None = None
    status_from: str | None = None  # a lifecycle step's statuses (resolve, reopen too)
    status_to: str | None = None
    resolution: Resolution | None = None  # INCIDENT_RESOLVED: as written, kept on reopen
    reason: str | None = None  # INCIDENT_REOPENED: why

    @property
    def cursor(self) -> str:
        return self.key.cursor()


@dataclass(frozen=True, slots=True)
class TimelinePage:
    entries: list[TimelineEntry]
    has_more: bool
    next_cursor: str | None  # pass as ``after`` for the next page; None on the last


# -- how records read for people -------------------------------------------------------------


def _resolves(w: WorklogEntry) -> bool:
    return w.kind is WorklogKind.RESOLVED or (
        w.kind is WorklogKind.TRANSITION and w.new == TicketStatus.RESOLVED
    )


def reopens(w: WorklogEntry) -> bool:
    if w.kind is WorklogKind.REOPENED:
        return True
    if w.kind is not WorklogKind.TRANSITION or w.new is None:
        return False
    return w.old in (TicketStatus.RESOLVED, TicketStatus.CLOSED) and w.new in _ACTIVE


_ACTIVE = frozenset(s.value for s in TicketStatus if s.active)
_RESOLUTION_FIELDS = ("resolution", "resolution_code")


def told(text: str) -> str:
    """What a step's text says after its label: correlation logs "reopened by monitoring:
    NodeDown fired again on core-1", the desk "reopen: <reason>" or "resolve (code):
    <notes>"; the reason is what follows the colon."""
    head, sep, rest = text.partition(": ")
    return rest if sep and head.split(" ", 1)[0] in _STEP_LABELS else text


_STEP_LABELS = frozenset({"resolve", "resolved", "reopen", "reopened"})


def fold_resolutions(log: Sequence[WorklogEntry]) -> tuple[dict[int, Resolution], set[int]]:
    """The resolutions of a worklog, by the index of the entry that tells each, and the
    indices of the entries folded into them. A resolve may be logged as several entries of
    one moment (one actor, one time): the status step, the resolution text, its code. A
    reopen clears the resolution fields in the same moment: those entries fold into it (the
    resolution they withdraw is on the timeline already)."""
    moments: dict[tuple[dt.datetime, str], list[int]] = {}
    for index, w in enumerate(log):
        moments.setdefault((w.at, w.actor), []).append(index)
    found: dict[int, Resolution] = {}
    folded: set[int] = set()
    for (at, actor), indices in moments.items():
        notes = {
            log[i].field: i
            for i in indices
            if log[i].kind is WorklogKind.CHANGED and log[i].field in _RESOLUTION_FIELDS
        }
        if any(reopens(log[i]) for i in indices):
            folded.update(notes.values())
        steps = [i for i in indices if _resolves(log[i])]
        if not steps:
            continue
        anchor = next((i for i in steps if log[i].kind is WorklogKind.TRANSITION), steps[0])
        written = next((i for i in steps if log[i].kind is WorklogKind.RESOLVED), None)
        if written is not None:
            text: str | None = log[written].text
        elif "resolution" in notes:
            text = log[notes["resolution"]].new
        else:
            text = told(log[anchor].text) or None
        code = log[notes["resolution_code"]].new if "resolution_code" in notes else None
        found[anchor] = Resolution(at=at, by=actor, text=text, code=code)
        folded.update(i for i in (*steps, *notes.values()) if i != anchor)
    return found, folded


def resolved_summary(label: str, by: str | None, text: str | None, code: str | None) -> str:
    if by is None:
        return f"{label} resolved (all its alerts cleared)"
    return (
        f"{label} resolved by {by}" + (f" [{code}]" if code else "") + (f": {text}" if text else "")
    )


def duration(span: dt.timedelta) -> str:
    seconds = max(0, int(span.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


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
