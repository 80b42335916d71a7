"""The configuration graph in GraphQL: the CMDB's queries (a CI, pages of CIs, impact,
dependencies, single points of failure) and its mutations (creating and editing CIs and
relationships, source ``manual``).

The CI and relationship types are in ``cmdb_types``, the impact analysis results in
``impact``; this module holds the query and mutation roots, their inputs, payloads and
pages, and ``resolve_ref``, the one way every query and mutation reads a CI argument.
"""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from servicegraph.access.model import Permission
from servicegraph.cmdb.catalog import CIFilter, CIPage, EditResult, encode_cursor
from servicegraph.cmdb.errors import CmdbError, UnknownCI, ValidationFailed
from servicegraph.graphql.base import (
    LifecycleEnum,
    OperationalStateEnum,
    mutation_field,
    query_field,
)

# Re-exported (``as``): monitoring, tickets and timeline import the CI types from here.
from servicegraph.graphql.cmdb_types import CIType as CIType
from servicegraph.graphql.cmdb_types import Identifier as Identifier
from servicegraph.graphql.cmdb_types import RelationshipType as RelationshipType
from servicegraph.graphql.cmdb_types import load_ci as load_ci
from servicegraph.graphql.context import Info
from servicegraph.graphql.errors import (
    Conflicts,
    InvalidInput,
    NotFound,
    argument,
    as_failure,
)
from servicegraph.graphql.impact import AffectedCI, Dependencies, Impact

# -- pages ---------------------------------------------------------------------------------------


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class CIEdge:
    cursor: str
    node: CIType


@strawberry.type
class CIConnection:
    edges: list[CIEdge]
    nodes: list[CIType]
    page_info: PageInfo

    @classmethod
    def of(cls, page: CIPage) -> CIConnection:
        nodes = [CIType.of(ci) for ci in page.items]
        return cls(
            edges=[CIEdge(cursor=encode_cursor(str(n.id)), node=n) for n in nodes],
            nodes=nodes,
            page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
        )


@strawberry.input(description="All given conditions must hold.")
class CIFilterInput:
    ci_class: str | None = strawberry.field(default=None, name="class")
    name_contains: str | None = None
    attributes: JSON | None = strawberry.field(
        default=None, description='Attribute values that must match exactly, e.g. {"role": "core"}.'
    )
    operational_state: OperationalStateEnum | None = None  # type: ignore[valid-type]
    lifecycle: LifecycleEnum | None = None  # type: ignore[valid-type]
    stale: bool | None = None

    def to_domain(self) -> CIFilter:
        return CIFilter(
            ci_class=self.ci_class,
            name_contains=self.name_contains,
            attributes=_mapping(self.attributes, "attributes"),
            operational_state=self.operational_state,
            lifecycle=self.lifecycle,
            stale=self.stale,
        )


# -- queries ------------------------------------------------------------------------------------


def resolve_ref(info: Info, ref: str, field: str) -> str:
    """The CI id ``ref`` names (an id, a source key or ``kind:value`` identifier), the one
    way every query and mutation reads a CI argument; a failure names ``field``, the
    argument's path as the client wrote it (``ciId``, ``input.fromId``)."""
    with argument(field):
        return info.context.services.catalog.resolve(ref)


@strawberry.type
class CmdbQuery:
    @query_field(description="A CI by id, source key (dist-1) or identifier (hostname:db-1).")
    def ci(self, info: Info, id: strawberry.ID) -> CIType | None:
        catalog = info.context.services.catalog
        try:
            ci_id = catalog.resolve(str(id))
        except (UnknownCI, ValidationFailed):
            return None  # nothing by that name; store failures still raise
        return CIType.of(catalog.require(ci_id))

    @query_field(description="CIs ordered by id, a page at a time (cursor: pageInfo.endCursor).")
    def cis(
        self,
        info: Info,
        filter: CIFilterInput | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> CIConnection:
        query = filter.to_domain() if filter is not None else CIFilter()
        page = info.context.services.catalog.find(query, first=first, after=after)
        return CIConnection.of(page)

    @query_field(description="What fails when this CI fails, with the path to each.")
    def impact(self, info: Info, ci_id: strawberry.ID, depth: int | None = None) -> Impact:
        target = resolve_ref(info, str(ci_id), "ciId")
        return Impact.of(info.context.services.impact.impact([target], depth=depth))

    @query_field(description="What fails when all of these CIs fail together.")
    def impact_of_set(
        self, info: Info, ci_ids: list[strawberry.ID], depth: int | None = None
    ) -> Impact:
        targets = [
            resolve_ref(info, str(ref), f"ciIds.{index}") for index, ref in enumerate(ci_ids)
        ]
        return Impact.of(info.context.services.impact.impact(targets, depth=depth))

    @query_field(description="Everything the service needs, directly or transitively.")
    def dependencies(
        self, info: Info, service_id: strawberry.ID, depth: int | None = None
    ) -> Dependencies:
        target = resolve_ref(info, str(service_id), "serviceId")
        return Dependencies.of(info.context.services.impact.dependencies(target, depth=depth))

    @query_field(description="CIs whose failure alone takes the service down, nearest first.")
    def single_points_of_failure(
        self, info: Info, service_id: strawberry.ID, depth: int | None = None
    ) -> list[AffectedCI]:
        target = resolve_ref(info, str(service_id), "serviceId")
        impact = info.context.services.impact
        return [AffectedCI.of(a) for a in impact.single_points_of_failure(target, depth=depth)]


# -- mutations ------------------------------------------------------------------------------------


@strawberry.input
class CreateCIInput:
    ci_class: str = strawberry.field(name="class")
    name: str
    identifiers: JSON | None = strawberry.field(
        default=None, description='e.g. {"serial_number": "FOC123", "hostname": "web-1"}'
    )
    attributes: JSON | None = None
    lifecycle: LifecycleEnum | None = None  # type: ignore[valid-type]
    operational_state: OperationalStateEnum | None = None  # type: ignore[valid-type]
    key: str | None = strawberry.field(
        default=None, description="Your own stable key for it (source 'manual')."
    )


CI_REF = "A CI: its id, a source key (db-1, key:db-1) or an identifier (hostname:db-1)."


@strawberry.input
class UpdateCIInput:
    id: strawberry.ID = strawberry.field(description=CI_REF)
    name: str | None = None
    identifiers: JSON | None = strawberry.field(default=None, description="Identifiers to add.")
    attributes: JSON | None = strawberry.field(
        default=None, description="Attributes to set (null empties one); others are kept."
    )
    lifecycle: LifecycleEnum | None = None  # type: ignore[valid-type]
    operational_state: OperationalStateEnum | None = None  # type: ignore[valid-type]


@strawberry.input
class RelationshipInput:
    from_id: strawberry.ID = strawberry.field(description=CI_REF)
    type: str
    to_id: strawberry.ID = strawberry.field(description=CI_REF)
    attributes: JSON | None = None


@strawberry.input
class RelationshipKeyInput:
    from_id: strawberry.ID = strawberry.field(description=CI_REF)
    type: str
    to_id: strawberry.ID = strawberry.field(description=CI_REF)


@strawberry.type
class CIPayload:
    ci: CIType
    kept_by_source: JSON = strawberry.field(
        description="Attributes you set that a stronger source keeps: name -> source."
    )


@strawberry.type
class RelationshipPayload:
    relationship: RelationshipType


@strawberry.type
class RemovedPayload:
    removed: bool = strawberry.field(description="False when there was no such relationship.")


CIResult = Annotated[CIPayload | InvalidInput | NotFound | Conflicts, strawberry.union("CIResult")]
RelationshipResult = Annotated[
    RelationshipPayload | InvalidInput | NotFound | Conflicts,
    strawberry.union("RelationshipResult"),
]
RemoveRelationshipResult = Annotated[
    RemovedPayload | InvalidInput | NotFound, strawberry.union("RemoveRelationshipResult")
]


def _ci_payload(result: EditResult) -> CIPayload:
    return CIPayload(ci=CIType.of(result.ci), kept_by_source=JSON(result.kept_by_source))


def _mapping(value: object, field: str) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationFailed("must be a JSON object", field=field)
    return value


@strawberry.type
class CmdbMutation:
    @mutation_field(Permission.EDIT_CMDB, description="Create a CI (source 'manual').")
    async def create_ci(self, info: Info, input: CreateCIInput) -> CIResult:
        catalog = info.context.services.catalog
        try:
            result = await info.context.write(
                lambda: catalog.create_ci(
                    input.ci_class,
                    input.name,
                    identifiers=_mapping(input.identifiers, "identifiers"),  # type: ignore[arg-type]
                    attributes=_mapping(input.attributes, "attributes"),
                    lifecycle=input.lifecycle,
                    operational_state=input.operational_state,
                    key=input.key,
                )
            )
        except CmdbError as exc:
            return _failure(exc, "input.")
        return _ci_payload(result)

    @mutation_field(Permission.EDIT_CMDB, description="Change a CI (source 'manual').")
    async def update_ci(self, info: Info, input: UpdateCIInput) -> CIResult:
        catalog = info.context.services.catalog
        try:
            ci_id = resolve_ref(info, str(input.id), "input.id")
            result = await info.context.write(
                lambda: catalog.update_ci(
                    ci_id,
                    name=input.name,
                    identifiers=_mapping(input.identifiers, "identifiers"),  # type: ignore[arg-type]
                    attributes=_mapping(input.attributes, "attributes"),
                    lifecycle=input.lifecycle,
                    operational_state=input.operational_state,
                )
            )
        except CmdbError as exc:
            return _failure(exc, "input.")
        return _ci_payload(result)

    @mutation_field(
        Permission.EDIT_CMDB, description="Create a relationship, or set its attributes."
    )
    async def create_relationship(self, info: Info, input: RelationshipInput) -> RelationshipResult:
        return await _save_relationship(info, input, must_exist=False)

    @mutation_field(Permission.EDIT_CMDB, description="Set the attributes of a relationship.")
    async def update_relationship(self, info: Info, input: RelationshipInput) -> RelationshipResult:
        return await _save_relationship(info, input, must_exist=True)

    @mutation_field(
        Permission.EDIT_CMDB, description="Remove a relationship (its history is kept)."
    )
    async def remove_relationship(
        self, info: Info, input: RelationshipKeyInput
    ) -> RemoveRelationshipResult:
        catalog = info.context.services.catalog
        try:
            from_id, to_id = _ends(info, input.from_id, input.to_id)
            removed = await info.context.write(
                catalog.remove_relationship, from_id, input.type, to_id
            )
        except CmdbError as exc:
            return _failure(exc, "input.")  # type: ignore[return-value]
        return RemovedPayload(removed=removed)


async def _save_relationship(
    info: Info, input: RelationshipInput, *, must_exist: bool
) -> RelationshipResult:
    catalog = info.context.services.catalog
    try:
        from_id, to_id = _ends(info, input.from_id, input.to_id)
        saved = await info.context.write(
            lambda: catalog.save_relationship(
                from_id,
                input.type,
                to_id,
                _mapping(input.attributes, "attributes"),
                must_exist=must_exist,
            )
        )
    except CmdbError as exc:
        return _failure(exc, "input.")
    return RelationshipPayload(relationship=RelationshipType.of(saved))


def _ends(info: Info, from_ref: strawberry.ID, to_ref: strawberry.ID) -> tuple[str, str]:
    return (
        resolve_ref(info, str(from_ref), "input.fromId"),
        resolve_ref(info, str(to_ref), "input.toId"),
    )


def _failure(exc: CmdbError, prefix: str) -> InvalidInput | NotFound | Conflicts:
    failure = as_failure(exc, prefix)
    if failure is None or not isinstance(failure, InvalidInput | NotFound | Conflicts):
        raise exc
    return failure
