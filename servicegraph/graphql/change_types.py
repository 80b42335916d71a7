"""The GraphQL types of change management: a change with its risk, approvals, tasks and
conflicts, freeze windows, and the inputs of the mutations (``graphql/changes.py``)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import strawberry

from servicegraph.graphql.base import ChangeRiskEnum, ChangeStatusEnum, Ticket
from servicegraph.graphql.cmdb import CIType
from servicegraph.graphql.context import Info
from servicegraph.ticketing import change_model
from servicegraph.ticketing.change_conflicts import Conflict, ConflictKind
from servicegraph.ticketing.change_model import (
    ApprovalDecision,
    Change,
    ChangeApproval,
    ChangeTask,
    FreezeWindow,
    TaskStatus,
)
from servicegraph.ticketing.change_risk import RiskAssessment, ServiceImpact

# the domain enum is ``change_model.ChangeType``: here ChangeType is the GraphQL Change
if TYPE_CHECKING:
    from servicegraph.graphql.monitoring import ProblemType

ChangeKindEnum = strawberry.enum(change_model.ChangeType, name="ChangeKind")
ApprovalDecisionEnum = strawberry.enum(ApprovalDecision, name="ApprovalDecision")
TaskStatusEnum = strawberry.enum(TaskStatus, name="ChangeTaskStatus")
ConflictKindEnum = strawberry.enum(ConflictKind, name="ChangeConflictKind")


@strawberry.type(name="ChangeApproval", description="One CAB member's decision.")
class ApprovalType:
    approver: str
    decision: ApprovalDecisionEnum  # type: ignore[valid-type]
    at: dt.datetime
    comment: str

    @classmethod
    def of(cls, a: ChangeApproval) -> ApprovalType:
        return cls(approver=a.approver, decision=a.decision, at=a.at, comment=a.comment)


@strawberry.type(name="ChangeTask", description="An implementation task of a change.")
class TaskType:
    number: int
    title: str
    assignee: str | None
    status: TaskStatusEnum  # type: ignore[valid-type]
    done_at: dt.datetime | None
    done_by: str | None

    @classmethod
    def of(cls, t: ChangeTask) -> TaskType:
        return cls(
            number=t.number,
            title=t.title,
            assignee=t.assignee,
            status=t.status,
            done_at=t.done_at,
            done_by=t.done_by,
        )


@strawberry.type(
    name="ChangeConflict",
    description="Another change or a freeze window this change collides with; one not "
    "overridden blocks approval.",
)
class ConflictType:
    kind: ConflictKindEnum  # type: ignore[valid-type]
    other_id: strawberry.ID = strawberry.field(description="A change's or freeze window's id.")
    other: str = strawberry.field(description="What it is, in words.")
    detail: str
    overridden: bool
    override_reason: str | None
    overridden_by: str | None

    @classmethod
    def of(cls, c: Conflict) -> ConflictType:
        o = c.overridden
        return cls(
            kind=c.kind,
            other_id=strawberry.ID(c.other_id),
            other=c.other,
            detail=c.detail,
            overridden=o is not None,
            override_reason=o.reason if o else None,
            overridden_by=o.by if o else None,
        )


@strawberry.type(name="ServiceImpact", description="A business service a change can hit.")
class ServiceImpactType:
    ci_id: strawberry.ID
    name: str
    criticality: int | None
    fails: bool = strawberry.field(description="False: it degrades but keeps running.")
    single_points_of_failure: list[strawberry.ID] = strawberry.field(
        description="The change's CIs each of which alone fails it."
    )

    @classmethod
    def of(cls, s: ServiceImpact) -> ServiceImpactType:
        return cls(
            ci_id=strawberry.ID(s.ci_id),
            name=s.name,
            criticality=s.criticality,
            fails=s.fails,
            single_points_of_failure=[strawberry.ID(i) for i in s.spof_ci_ids],
        )


@strawberry.type(name="ChangeRiskAssessment", description="Risk from the graph, with why.")
class RiskType:
    level: ChangeRiskEnum  # type: ignore[valid-type]
    reasons: list[str]
    services: list[ServiceImpactType]
    score: int

    @classmethod
    def of(cls, r: RiskAssessment) -> RiskType:
        return cls(
            level=r.level,
            reasons=list(r.reasons),
            services=[ServiceImpactType.of(s) for s in r.services],
            score=r.score,
        )


@strawberry.type(name="FreezeWindow", description="A blackout period for changes.")
class FreezeWindowType:
    id: strawberry.ID
    name: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    reason: str
    ci_ids: list[strawberry.ID] = strawberry.field(description="Empty: every CI is frozen.")
    created_at: dt.datetime
    created_by: str

    @classmethod
    def of(cls, w: FreezeWindow) -> FreezeWindowType:
        return cls(
            id=strawberry.ID(w.id),
            name=w.name,
            starts_at=w.starts_at,
            ends_at=w.ends_at,
            reason=w.reason,
            ci_ids=[strawberry.ID(i) for i in w.ci_ids],
            created_at=w.created_at,
            created_by=w.created_by,
        )


@strawberry.type(name="Change", description="A change to CIs, planned in a time window.")
class ChangeType(Ticket):
    title: str
    description: str
    status: ChangeStatusEnum  # type: ignore[valid-type]
    type: ChangeKindEnum  # type: ignore[valid-type]
    template: str | None
    risk: ChangeRiskEnum = strawberry.field(  # type: ignore[valid-type]
        description="As computed from the graph when last assessed (riskReasons say why)."
    )
    risk_reasons: list[str]
    risk_assessed_at: dt.datetime | None
    approvals_required: int
    approvals: list[ApprovalType]
    tasks: list[TaskType]
    assignee: str | None
    ci_ids: list[strawberry.ID]
    planned_start: dt.datetime | None
    planned_end: dt.datetime | None
    actual_start: dt.datetime | None
    actual_end: dt.datetime | None
    implementation_plan: str
    backout_plan: str
    close_code: str | None
    close_notes: str
    created_at: dt.datetime
    created_by: str = strawberry.field(description="The requester: never an approver.")
    updated_at: dt.datetime

    @classmethod
    def of(cls, c: Change) -> ChangeType:
        return cls(
            id=strawberry.ID(c.id),
            number=c.number,
            title=c.title,
            description=c.description,
            status=c.status,
            type=c.change_type,
            template=c.template,
            risk=c.risk,
            risk_reasons=list(c.risk_reasons),
            risk_assessed_at=c.risk_assessed_at,
            approvals_required=c.approvals_required,
            approvals=[ApprovalType.of(a) for a in c.approvals],
            tasks=[TaskType.of(t) for t in c.tasks],
            assignee=c.assignee,
            ci_ids=[strawberry.ID(i) for i in c.ci_ids],
            planned_start=c.planned_start,
            planned_end=c.planned_end,
            actual_start=c.actual_start,
            actual_end=c.actual_end,
            implementation_plan=c.implementation_plan,
            backout_plan=c.backout_plan,
            close_code=c.close_code,
            close_notes=c.close_notes,
            created_at=c.created_at,
            created_by=c.created_by,
            updated_at=c.updated_at,
        )

    @strawberry.field(description="The CIs it changes.")
    async def cis(self, info: Info) -> list[CIType]:
        found = await info.context.loaders.cis.load_many([str(i) for i in self.ci_ids])
        return [CIType.of(ci) for ci in found if ci is not None]

    @strawberry.field(description="Steps an agent may take now (the CAB approves or rejects).")
    def allowed_steps(self, info: Info) -> list[str]:
        changes = info.context.services.desk.changes
        return list(changes.allowed_steps(changes.get(str(self.id))))

    @strawberry.field(description="Its conflicts with other changes and freeze windows, now.")
    def conflicts(self, info: Info) -> list[ConflictType]:
        found = info.context.services.desk.changes.conflicts(str(self.id))
        return [ConflictType.of(c) for c in found]

    @strawberry.field(description="The problems it fixes (their fixing change).")
    def fixes(
        self, info: Info
    ) -> list[Annotated[ProblemType, strawberry.lazy("servicegraph.graphql.monitoring")]]:
        from servicegraph.graphql.monitoring import ProblemType

        found = info.context.services.tickets.problems_fixed_by([str(self.id)])
        return [ProblemType.of(p) for p in found]

    @strawberry.field(description="The risk as the graph says now (risk is as last assessed).")
    def risk_now(self, info: Info) -> RiskType:
        return RiskType.of(info.context.services.desk.changes.risk(str(self.id)))


@strawberry.type(name="ChangeCalendarEntry")
class CalendarEntryType:
    change: ChangeType
    conflicts: list[ConflictType]


@strawberry.type(
    name="ChangeCalendar",
    description="Changes and freeze windows in a period, each change with its conflicts.",
)
class CalendarType:
    start: dt.datetime
    end: dt.datetime
    entries: list[CalendarEntryType]
    freeze_windows: list[FreezeWindowType]


@strawberry.input
class ChangeFilterInput:
    status: ChangeStatusEnum | None = None  # type: ignore[valid-type]
    ci_id: strawberry.ID | None = None
    assignee: str | None = None


@strawberry.input
class CreateChangeInput:
    title: str | None = strawberry.field(
        default=None, description="Required, unless a standard change's template gives it."
    )
    ci_ids: list[strawberry.ID]
    type: ChangeKindEnum = change_model.ChangeType.NORMAL  # type: ignore[valid-type]
    template: str | None = strawberry.field(
        default=None, description="A standard change's template (desk.changes.templates)."
    )
    description: str | None = None
    planned_start: dt.datetime | None = None
    planned_end: dt.datetime | None = None
    assignee: str | None = None
    implementation_plan: str | None = None
    backout_plan: str | None = None


@strawberry.input
class UpdateChangeInput:
    title: str | None = None
    description: str | None = None
    ci_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="New CIs: the risk is recomputed."
    )
    planned_start: dt.datetime | None = None
    planned_end: dt.datetime | None = None
    assignee: str | None = strawberry.field(default=None, description="Empty: nobody.")
    implementation_plan: str | None = None
    backout_plan: str | None = None


@strawberry.input
class CreateFreezeWindowInput:
    name: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    reason: str | None = None
    ci_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only these CIs (and what depends on them); none: all."
    )
