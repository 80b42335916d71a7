"""Impact analysis in GraphQL: what fails when CIs fail (``Impact``), what a service needs
(``Dependencies``), and the CIs each analysis reaches with the path that reaches them.

The analyses themselves are ``cmdb.impact``'s; these types only show their results, and
load the CIs they name through the request's loaders.
"""

from __future__ import annotations

import strawberry

from servicegraph.cmdb.impact import AffectedCI as DomainAffected
from servicegraph.cmdb.impact import DependencyResult, ImpactResult
from servicegraph.graphql.cmdb_types import CIType, load_ci
from servicegraph.graphql.context import Info


@strawberry.type(description="One hop of a path: this CI needs the previous one via relationship.")
class PathStep:
    ci_id: strawberry.ID
    relationship: str | None = strawberry.field(description="None for the first step.")

    @strawberry.field
    async def ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.ci_id))


@strawberry.type(description="A CI reached by an analysis, with the path that reaches it.")
class AffectedCI:
    ci_id: strawberry.ID
    ci_class: str = strawberry.field(name="class")
    depth: int
    _path: strawberry.Private[DomainAffected]

    @classmethod
    def of(cls, item: DomainAffected) -> AffectedCI:
        return cls(
            ci_id=strawberry.ID(item.ci_id), ci_class=item.ci_class, depth=item.depth, _path=item
        )

    @strawberry.field(description="From the failed CI (or the service) to this one.")
    def path(self) -> list[PathStep]:
        return [
            PathStep(ci_id=strawberry.ID(s.ci_id), relationship=s.relationship)
            for s in self._path.path
        ]

    @strawberry.field
    async def ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.ci_id))


@strawberry.type(description="A redundancy group that lost members but keeps its CI up.")
class DegradedGroup:
    ci_id: strawberry.ID
    group: str
    failed: int
    size: int
    min_healthy: int

    @strawberry.field
    async def ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.ci_id))


@strawberry.type
class Impact:
    failed_ids: list[strawberry.ID]
    affected: list[AffectedCI] = strawberry.field(description="Nearest first.")
    business_services: list[AffectedCI]
    degraded: list[DegradedGroup]
    max_depth: int
    truncated: bool = strawberry.field(description="The depth bound stopped the propagation.")

    @classmethod
    def of(cls, result: ImpactResult) -> Impact:
        affected = [AffectedCI.of(a) for a in result.affected]
        services = set(result.business_services)
        return cls(
            failed_ids=[strawberry.ID(i) for i in result.failed],
            affected=affected,
            business_services=[a for a in affected if str(a.ci_id) in services],
            degraded=[
                DegradedGroup(
                    ci_id=strawberry.ID(d.ci_id),
                    group=d.group,
                    failed=d.failed,
                    size=d.size,
                    min_healthy=d.min_healthy,
                )
                for d in result.degraded
            ],
            max_depth=result.max_depth,
            truncated=result.truncated,
        )

    @strawberry.field
    async def failed(self, info: Info) -> list[CIType]:
        found = await info.context.loaders.cis.load_many([str(i) for i in self.failed_ids])
        return [CIType.of(ci) for ci in found if ci is not None]


@strawberry.type
class Dependencies:
    service_id: strawberry.ID
    dependencies: list[AffectedCI] = strawberry.field(description="Nearest first.")

    @classmethod
    def of(cls, result: DependencyResult) -> Dependencies:
        return cls(
            service_id=strawberry.ID(result.service_id),
            dependencies=[AffectedCI.of(a) for a in result.dependencies],
        )

    @strawberry.field
    async def service(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.service_id))
