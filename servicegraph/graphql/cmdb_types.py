"""The configuration item and relationship types of the GraphQL schema (``CI``,
``Relationship``), and how a resolver loads a CI by id.

Every other part of the schema shows CIs with these: the CMDB queries and mutations
(``cmdb``), impact analysis (``impact``), incidents (``monitoring``), tickets and the
timeline. They reach relationships, neighbours, open incidents and history through the
request's loaders, batched per request.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from servicegraph.cmdb.catalog import neighbour_ids
from servicegraph.cmdb.model import ConfigurationItem, Relationship
from servicegraph.graphql.base import LifecycleEnum, OperationalStateEnum
from servicegraph.graphql.context import Info

if TYPE_CHECKING:
    from servicegraph.graphql.monitoring import IncidentType
    from servicegraph.graphql.timeline import TimelineEntry

_MONITORING = "servicegraph.graphql.monitoring"
_TIMELINE = "servicegraph.graphql.timeline"


@strawberry.enum
class Direction(enum.Enum):
    OUT = "out"
    IN = "in"
    BOTH = "both"


@strawberry.type
class Identifier:
    kind: str
    value: str


@strawberry.type(name="CI", description="A configuration item.")
class CIType:
    id: strawberry.ID
    ci_class: str = strawberry.field(name="class")
    name: str
    attributes: JSON
    attribute_sources: JSON = strawberry.field(
        description="Which source set each attribute (source precedence)."
    )
    identifiers: list[Identifier]
    lifecycle: LifecycleEnum  # type: ignore[valid-type]
    operational_state: OperationalStateEnum  # type: ignore[valid-type]
    stale: bool
    merged_into: strawberry.ID | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int

    @classmethod
    def of(cls, ci: ConfigurationItem) -> CIType:
        return cls(
            id=strawberry.ID(ci.id),
            ci_class=ci.ci_class,
            name=ci.name,
            attributes=JSON(dict(ci.attributes)),
            attribute_sources=JSON(dict(ci.attribute_sources)),
            identifiers=[Identifier(kind=k, value=v) for k, v in ci.identifiers],
            lifecycle=ci.lifecycle,
            operational_state=ci.operational_state,
            stale=ci.stale,
            merged_into=strawberry.ID(ci.merged_into) if ci.merged_into else None,
            created_at=ci.created_at,
            updated_at=ci.updated_at,
            version=ci.version,
        )

    @strawberry.field(description="Current relationships (removed ones are in its history).")
    async def relationships(
        self, info: Info, direction: Direction = Direction.BOTH, types: list[str] | None = None
    ) -> list[RelationshipType]:
        rels = await info.context.loaders.relationships.load(str(self.id))
        return [RelationshipType.of(r) for r in _select(str(self.id), rels, direction, types)]

    @strawberry.field(description="The CIs at the other end of its relationships.")
    async def neighbours(
        self, info: Info, direction: Direction = Direction.BOTH, types: list[str] | None = None
    ) -> list[CIType]:
        rels = await info.context.loaders.relationships.load(str(self.id))
        ids = neighbour_ids(str(self.id), _select(str(self.id), rels, direction, types))
        found = await info.context.loaders.cis.load_many(ids)
        return [CIType.of(ci) for ci in found if ci is not None]

    @strawberry.field(description="Open incidents whose root cause or an alert is on this CI.")
    async def open_incidents(
        self, info: Info
    ) -> list[Annotated[IncidentType, strawberry.lazy(_MONITORING)]]:
        from servicegraph.graphql.monitoring import IncidentType

        incidents = await info.context.loaders.open_incidents.load(str(self.id))
        return [IncidentType.of(i) for i in incidents]

    @strawberry.field(
        description="Its timeline: changes, alerts, incidents, problems and changes, oldest first."
    )
    def history(
        self, info: Info, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> list[Annotated[TimelineEntry, strawberry.lazy(_TIMELINE)]]:
        from servicegraph.graphql.timeline import timeline_of

        return timeline_of(info, str(self.id), since, until)


def _select(
    ci_id: str, rels: list[Relationship], direction: Direction, types: list[str] | None
) -> list[Relationship]:
    wanted = set(types) if types is not None else None
    return [
        r
        for r in rels
        if (wanted is None or r.type in wanted)
        and (
            direction is Direction.BOTH
            or (direction is Direction.OUT and r.from_id == ci_id)
            or (direction is Direction.IN and r.to_id == ci_id)
        )
    ]


async def load_ci(info: Info, ci_id: str | None) -> CIType | None:
    if ci_id is None:
        return None
    ci = await info.context.loaders.cis.load(ci_id)
    return CIType.of(ci) if ci is not None else None


@strawberry.type(
    name="Relationship", description="A directed, typed relationship: from -type-> to."
)
class RelationshipType:
    type: str
    from_id: strawberry.ID
    to_id: strawberry.ID
    attributes: JSON
    created_at: dt.datetime
    updated_at: dt.datetime
    stale: bool
    removed: bool

    @classmethod
    def of(cls, r: Relationship) -> RelationshipType:
        return cls(
            type=r.type,
            from_id=strawberry.ID(r.from_id),
            to_id=strawberry.ID(r.to_id),
            attributes=JSON(dict(r.attributes)),
            created_at=r.created_at,
            updated_at=r.updated_at,
            stale=r.stale,
            removed=r.removed,
        )

    @strawberry.field(name="from")
    async def from_ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.from_id))

    @strawberry.field
    async def to(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.to_id))
