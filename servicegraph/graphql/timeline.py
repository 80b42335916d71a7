"""A CI's past in GraphQL: one timeline of everything that happened to it, and the CI as it
was at a moment.

``history`` gives the whole timeline as a list (as it always did); ``timeline`` the same
entries a page at a time (``first``, ``after``: an entry's or ``pageInfo.endCursor``).
Every entry names the CIs it concerns (``relatedCis``, with their names); an alert entry
is one fire or clear of one cycle; an incident entry is one step of the ticket's worklog,
so a resolution shows as it was written, by whom, even after the incident reopened.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry
from strawberry.scalars import JSON

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.model import CIState
from servicegraph.graphql.base import (
    LifecycleEnum,
    OperationalStateEnum,
    TicketStatusEnum,
    Worklog,
    aware,
    query_field,
)
from servicegraph.graphql.change_types import ChangeType
from servicegraph.graphql.cmdb import (
    CIType,
    Identifier,
    PageInfo,
    RelationshipType,
    load_ci,
    resolve_ref,
)
from servicegraph.graphql.context import Info
from servicegraph.graphql.monitoring import AlertType, IncidentType, ProblemType
from servicegraph.ticketing import timeline as domain
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.timeline import MAX_PAGE, RelatedRole, TimelineKind

TimelineKindEnum = strawberry.enum(TimelineKind, name="TimelineKind")
RelatedRoleEnum = strawberry.enum(
    RelatedRole, name="RelatedCIRole", description="How a CI an entry names relates to it."
)


@strawberry.type(description="A CI a timeline entry concerns: its name, its id kept.")
class TimelineRelatedCI:
    id: strawberry.ID
    name: str | None = strawberry.field(description="Null when no CI has the id any more.")
    role: RelatedRoleEnum  # type: ignore[valid-type]

    @strawberry.field
    async def ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.id))


@strawberry.type(description="One fire/clear cycle of an alert (an alert has one per firing).")
class TimelineAlertCycle:
    fingerprint: str
    fired_at: dt.datetime
    cleared_at: dt.datetime | None = strawberry.field(description="Null while it fires.")
    incident_id: strawberry.ID | None = strawberry.field(
        description="The incident the alert belonged to in this cycle."
    )

    @strawberry.field
    async def incident(self, info: Info) -> IncidentType | None:
        if self.incident_id is None:
            return None
        found = await info.context.loaders.incidents.load(str(self.incident_id))
        return IncidentType.of(found) if found is not None else None


@strawberry.type(description="A resolution as it was written, kept after a reopen.")
class TimelineResolution:
    at: dt.datetime
    resolved_by: str = strawberry.field(description="The agent, or correlation.")
    text: str | None
    code: str | None


@strawberry.interface(description="One moment of a CI's life.")
class TimelineEntry:
    at: dt.datetime
    kind: TimelineKindEnum  # type: ignore[valid-type]
    ci_id: strawberry.ID = strawberry.field(
        description="The CI it is about (a merged CI's own past keeps that CI's id)."
    )
    summary: str
    actor: str | None
    source: str | None
    cursor: str = strawberry.field(
        description="Where this entry stands: `timeline(after:)` continues after it."
    )
    related_cis: list[TimelineRelatedCI] = strawberry.field(
        description="The CIs the entry concerns, by name."
    )


@strawberry.type(description="A recorded change of the CI: attribute, relationship, ...")
class CIChangeEntry(TimelineEntry):
    change_kind: str = strawberry.field(description="created, attribute, relationship_added ...")
    field: str | None = strawberry.field(
        description="The attribute, identifier kind or relationship type."
    )
    old: JSON | None
    new: JSON | None
    other_ci_id: strawberry.ID | None = strawberry.field(
        description="The other end of a relationship change."
    )

    @strawberry.field
    async def other_ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.other_ci_id) if self.other_ci_id else None)


@strawberry.type(description="An alert on the CI fired or cleared: one entry per fire, per clear.")
class AlertEntry(TimelineEntry):
    alert: AlertType = strawberry.field(description="The alert as it is now.")
    cycle: TimelineAlertCycle = strawberry.field(description="The cycle this entry is of.")


@strawberry.type(
    description="A step of an incident about the CI: opened, a lifecycle step (resolved, "
    "reopened ...), an assignment, a comment, a field change."
)
class IncidentEntry(TimelineEntry):
    incident: IncidentType = strawberry.field(description="The incident as it is now.")
    work: Worklog | None = strawberry.field(description="The worklog entry of the step.")
    status_from: TicketStatusEnum | None  # type: ignore[valid-type]
    status_to: TicketStatusEnum | None  # type: ignore[valid-type]
    field: str | None = strawberry.field(description="The field a change or step changed.")
    old_value: str | None
    new_value: str | None
    resolution: TimelineResolution | None = strawberry.field(
        description="INCIDENT_RESOLVED: the resolution as written, even after a reopen."
    )
    reason: str | None = strawberry.field(description="INCIDENT_REOPENED: why.")


@strawberry.type(description="A problem about the CI opened or was worked on.")
class ProblemEntry(TimelineEntry):
    problem: ProblemType
    work: Worklog | None


@strawberry.type(description="A change to the CI was planned or worked on.")
class ChangeEntry(TimelineEntry):
    change: ChangeType
    work: Worklog | None


def _status(value: str | None) -> TicketStatus | None:
    try:
        return TicketStatus(value) if value is not None else None
    except ValueError:  # a status of another lifecycle: the worklog's text still tells it
        return None


def _entry(e: domain.TimelineEntry) -> TimelineEntry:
    common: dict[str, Any] = {
        "at": e.at,
        "kind": e.kind,
        "ci_id": strawberry.ID(e.ci_id),
        "summary": e.summary,
        "actor": e.actor,
        "source": e.source,
        "cursor": e.cursor,
        "related_cis": [
            TimelineRelatedCI(id=strawberry.ID(r.id), name=r.name, role=r.role) for r in e.related
        ],
    }
    work = Worklog.of(e.work) if e.work is not None else None
    if e.history is not None:
        h = e.history
        return CIChangeEntry(
            **common,
            change_kind=h.kind.value,
            field=h.field,
            old=h.old,
            new=h.new,
            other_ci_id=strawberry.ID(h.other_ci_id) if h.other_ci_id else None,
        )
    if e.alert is not None:
        c = e.cycle
        assert c is not None
        cycle = TimelineAlertCycle(
            fingerprint=c.fingerprint,
            fired_at=c.fired_at,
            cleared_at=c.cleared_at,
            incident_id=strawberry.ID(c.incident_id) if c.incident_id else None,
        )
        return AlertEntry(**common, alert=AlertType.of(e.alert), cycle=cycle)
    if e.incident is not None:
        return _incident_entry(e, common, work)
    if e.problem is not None:
        return ProblemEntry(**common, problem=ProblemType.of(e.problem), work=work)
    assert e.change is not None
    return ChangeEntry(**common, change=ChangeType.of(e.change), work=work)


def _incident_entry(
    e: domain.TimelineEntry, common: dict[str, Any], work: Worklog | None
) -> IncidentEntry:
    assert e.incident is not None
    r = e.resolution
    w = e.work
    return IncidentEntry(
        **common,
        incident=IncidentType.of(e.incident),
        work=work,
        status_from=_status(e.status_from),
        status_to=_status(e.status_to),
        field=w.field if w else None,
        old_value=w.old if w else None,
        new_value=w.new if w else None,
        resolution=TimelineResolution(at=r.at, resolved_by=r.by, text=r.text, code=r.code)
        if r
        else None,
        reason=e.reason,
    )


def timeline_of(
    info: Info, ci_id: str, since: dt.datetime | None, until: dt.datetime | None
) -> list[TimelineEntry]:
    entries = info.context.services.desk.timeline.timeline(
        ci_id, since=aware(since), until=aware(until)
    )
    return [_entry(e) for e in entries]


@strawberry.type
class TimelineEdge:
    cursor: str
    node: TimelineEntry


@strawberry.type(description="A page of a CI's timeline, oldest first.")
class TimelineConnection:
    edges: list[TimelineEdge]
    nodes: list[TimelineEntry]
    page_info: PageInfo


@strawberry.type(description="A CI as it was at a moment, with the relationships it had then.")
class CISnapshot:
    at: dt.datetime
    id: strawberry.ID
    ci_class: str = strawberry.field(name="class")
    name: str
    attributes: JSON
    identifiers: list[Identifier]
    lifecycle: LifecycleEnum  # type: ignore[valid-type]
    operational_state: OperationalStateEnum  # type: ignore[valid-type]
    stale: bool
    merged_into: strawberry.ID | None
    relationships: list[RelationshipType]

    @classmethod
    def of(cls, state: CIState) -> CISnapshot:
        ci = state.ci
        return cls(
            at=state.at,
            id=strawberry.ID(ci.id),
            ci_class=ci.ci_class,
            name=ci.name,
            attributes=JSON(dict(ci.attributes)),
            identifiers=[Identifier(kind=k, value=v) for k, v in ci.identifiers],
            lifecycle=ci.lifecycle,
            operational_state=ci.operational_state,
            stale=ci.stale,
            merged_into=strawberry.ID(ci.merged_into) if ci.merged_into else None,
            relationships=[RelationshipType.of(r) for r in state.relationships],
        )


@strawberry.type
class TimelineQuery:
    @query_field(
        description="One time-ordered timeline of the CI: attribute and relationship changes, "
        "alerts, incidents, problems and changes (and those of CIs merged into it)."
    )
    def history(
        self,
        info: Info,
        ci_id: strawberry.ID,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[TimelineEntry]:
        target = resolve_ref(info, str(ci_id), "ciId")
        return timeline_of(info, target, since, until)

    @query_field(
        description="The CI's timeline (as `history`) a page at a time: `first` entries "
        "after the entry whose cursor is `after` (`pageInfo.endCursor` of the last page)."
    )
    def timeline(
        self,
        info: Info,
        ci_id: strawberry.ID,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        first: int = domain.DEFAULT_PAGE,
        after: str | None = None,
    ) -> TimelineConnection:
        if not 1 <= first <= MAX_PAGE:
            raise ValidationFailed(f"must be between 1 and {MAX_PAGE}", field="first")
        target = resolve_ref(info, str(ci_id), "ciId")
        page = info.context.services.desk.timeline.page(
            target, since=aware(since), until=aware(until), limit=first, after=after
        )
        nodes = [_entry(e) for e in page.entries]
        return TimelineConnection(
            edges=[TimelineEdge(cursor=n.cursor, node=n) for n in nodes],
            nodes=nodes,
            page_info=PageInfo(has_next_page=page.has_more, end_cursor=page.next_cursor),
        )

    @query_field(description="The CI as it was at a past time; null if it did not exist yet.")
    def ci_as_of(self, info: Info, id: strawberry.ID, at: dt.datetime) -> CISnapshot | None:
        target = resolve_ref(info, str(id), "id")
        when = aware(at)
        assert when is not None
        state = info.context.services.history.as_of(target, when)
        return CISnapshot.of(state) if state is not None else None


TIMELINE_TYPES = (CIChangeEntry, AlertEntry, IncidentEntry, ProblemEntry, ChangeEntry)
