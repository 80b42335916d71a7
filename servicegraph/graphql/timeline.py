"""A CI's past in GraphQL: one timeline of everything that happened to it, and the CI as it
was at a moment."""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry
from strawberry.scalars import JSON

from servicegraph.cmdb.model import CIState
from servicegraph.graphql.base import (
    LifecycleEnum,
    OperationalStateEnum,
    Worklog,
    aware,
    query_field,
)
from servicegraph.graphql.cmdb import CIType, Identifier, RelationshipType, load_ci, resolve_ref
from servicegraph.graphql.context import Info
from servicegraph.graphql.monitoring import AlertType, IncidentType, ProblemType
from servicegraph.graphql.tickets import ChangeType
from servicegraph.ticketing import timeline as domain
from servicegraph.ticketing.timeline import TimelineKind

TimelineKindEnum = strawberry.enum(TimelineKind, name="TimelineKind")


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


@strawberry.type(description="An alert on the CI fired or cleared.")
class AlertEntry(TimelineEntry):
    alert: AlertType


@strawberry.type(description="An incident about the CI opened, resolved or was worked on.")
class IncidentEntry(TimelineEntry):
    incident: IncidentType
    work: Worklog | None


@strawberry.type(description="A problem about the CI opened or was worked on.")
class ProblemEntry(TimelineEntry):
    problem: ProblemType
    work: Worklog | None


@strawberry.type(description="A change to the CI was planned or worked on.")
class ChangeEntry(TimelineEntry):
    change: ChangeType
    work: Worklog | None


def _entry(e: domain.TimelineEntry) -> TimelineEntry:
    common: dict[str, Any] = {
        "at": e.at,
        "kind": e.kind,
        "ci_id": strawberry.ID(e.ci_id),
        "summary": e.summary,
        "actor": e.actor,
        "source": e.source,
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
        return AlertEntry(**common, alert=AlertType.of(e.alert))
    if e.incident is not None:
        return IncidentEntry(**common, incident=IncidentType.of(e.incident), work=work)
    if e.problem is not None:
        return ProblemEntry(**common, problem=ProblemType.of(e.problem), work=work)
    assert e.change is not None
    return ChangeEntry(**common, change=ChangeType.of(e.change), work=work)


def timeline_of(
    info: Info, ci_id: str, since: dt.datetime | None, until: dt.datetime | None
) -> list[TimelineEntry]:
    entries = info.context.services.desk.timeline.timeline(
        ci_id, since=aware(since), until=aware(until)
    )
    return [_entry(e) for e in entries]


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

    @query_field(description="The CI as it was at a past time; null if it did not exist yet.")
    def ci_as_of(self, info: Info, id: strawberry.ID, at: dt.datetime) -> CISnapshot | None:
        target = resolve_ref(info, str(id), "id")
        when = aware(at)
        assert when is not None
        state = info.context.services.history.as_of(target, when)
        return CISnapshot.of(state) if state is not None else None


TIMELINE_TYPES = (CIChangeEntry, AlertEntry, IncidentEntry, ProblemEntry, ChangeEntry)
