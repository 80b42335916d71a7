"""Service-desk work in GraphQL: changes, and the mutations that work incidents, problems,
known errors and changes (``servicegraph.ticketing.service``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import strawberry

from servicegraph.access.model import Permission
from servicegraph.cmdb.errors import CmdbError
from servicegraph.graphql.base import (
    ChangeRiskEnum,
    ChangeStatusEnum,
    Ticket,
    aware,
    mutation_field,
    query_field,
)
from servicegraph.graphql.cmdb import CIType, resolve_ref
from servicegraph.graphql.context import Info
from servicegraph.graphql.errors import Failure, InvalidInput, InvalidState, NotFound, as_failure
from servicegraph.graphql.monitoring import IncidentType, ProblemType
from servicegraph.ticketing.model import Change, ChangeRisk, ChangeStatus
from servicegraph.ticketing.ports import ChangeFilter
from servicegraph.ticketing.service import NewChange, NewProblem

T = TypeVar("T")


@strawberry.type(name="Change", description="A change to CIs, planned in a time window.")
class ChangeType(Ticket):
    title: str
    description: str
    status: ChangeStatusEnum  # type: ignore[valid-type]
    risk: ChangeRiskEnum  # type: ignore[valid-type]
    ci_ids: list[strawberry.ID]
    planned_start: dt.datetime | None
    planned_end: dt.datetime | None
    created_at: dt.datetime
    created_by: str
    updated_at: dt.datetime

    @classmethod
    def of(cls, c: Change) -> ChangeType:
        return cls(
            id=strawberry.ID(c.id),
            number=c.number,
            title=c.title,
            description=c.description,
            status=c.status,
            risk=c.risk,
            ci_ids=[strawberry.ID(i) for i in c.ci_ids],
            planned_start=c.planned_start,
            planned_end=c.planned_end,
            created_at=c.created_at,
            created_by=c.created_by,
            updated_at=c.updated_at,
        )

    @strawberry.field(description="The CIs it changes.")
    async def cis(self, info: Info) -> list[CIType]:
        found = await info.context.loaders.cis.load_many([str(i) for i in self.ci_ids])
        return [CIType.of(ci) for ci in found if ci is not None]


@strawberry.input
class ChangeFilterInput:
    status: ChangeStatusEnum | None = None  # type: ignore[valid-type]
    ci_id: strawberry.ID | None = None


@strawberry.type
class TicketQuery:
    @query_field(description="Changes, newest first.")
    def changes(
        self, info: Info, filter: ChangeFilterInput | None = None, first: int = 50
    ) -> list[ChangeType]:
        f = filter or ChangeFilterInput()
        ci_ids = (resolve_ref(info, str(f.ci_id), "filter.ciId"),) if f.ci_id else None
        query = ChangeFilter(status=f.status, ci_ids=ci_ids, limit=first)
        return [ChangeType.of(c) for c in info.context.services.desk.changes.find(query)]

    @query_field()
    def change(self, info: Info, id: strawberry.ID) -> ChangeType | None:
        change = info.context.services.desk.changes.get_many([str(id)]).get(str(id))
        return ChangeType.of(change) if change is not None else None


# -- mutations ----------------------------------------------------------------------------------


@strawberry.type
class IncidentPayload:
    incident: IncidentType


@strawberry.type
class ProblemPayload:
    problem: ProblemType


@strawberry.type
class ChangePayload:
    change: ChangeType


IncidentResult = Annotated[
    IncidentPayload | InvalidInput | NotFound | InvalidState, strawberry.union("IncidentResult")
]
ProblemResult = Annotated[
    ProblemPayload | InvalidInput | NotFound | InvalidState, strawberry.union("ProblemResult")
]
ChangeResult = Annotated[ChangePayload | InvalidInput | NotFound, strawberry.union("ChangeResult")]


@strawberry.input
class CreateProblemInput:
    title: str
    description: str | None = None
    root_ci_id: strawberry.ID | None = None
    incident_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Incidents that are instances of it."
    )
    known_error: str | None = strawberry.field(
        default=None, description="Its cause, when already known: it is then a known error."
    )
    workaround: str | None = None


@strawberry.input
class KnownErrorInput:
    problem_id: strawberry.ID | None = strawberry.field(
        default=None, description="The problem that becomes a known error; none: a new one."
    )
    title: str | None = strawberry.field(default=None, description="For a new problem.")
    root_ci_id: strawberry.ID | None = strawberry.field(
        default=None, description="For a new problem."
    )
    known_error: str
    workaround: str | None = None


@strawberry.input
class CreateChangeInput:
    title: str
    ci_ids: list[strawberry.ID]
    description: str | None = None
    risk: ChangeRiskEnum = ChangeRisk.MEDIUM  # type: ignore[valid-type]
    status: ChangeStatusEnum = ChangeStatus.PLANNED  # type: ignore[valid-type]
    planned_start: dt.datetime | None = None
    planned_end: dt.datetime | None = None


async def _attempt(
    call: Callable[[], Awaitable[T]], prefix: str = ""
) -> tuple[T | None, Failure | None]:
    try:
        return await call(), None
    except CmdbError as exc:
        failure = as_failure(exc, prefix)
        if failure is None:
            raise
        return None, failure


@strawberry.type
class TicketMutation:
    @mutation_field(
        Permission.WORK_INCIDENTS,
        description="Say the incident is being worked on (once; not when resolved).",
    )
    async def acknowledge_incident(
        self, info: Info, incident_id: strawberry.ID, note: str | None = None
    ) -> IncidentResult:
        desk = info.context.services.desk
        done, failure = await _attempt(
            lambda: info.context.write(desk.incidents.acknowledge, str(incident_id), note)
        )
        return failure or IncidentPayload(incident=IncidentType.of(done))  # type: ignore[return-value,arg-type]

    @mutation_field(Permission.WORK_INCIDENTS, description="Give the incident to someone.")
    async def assign_incident(
        self, info: Info, incident_id: strawberry.ID, assignee: str
    ) -> IncidentResult:
        desk = info.context.services.desk
        done, failure = await _attempt(
            lambda: info.context.write(desk.incidents.assign, str(incident_id), assignee)
        )
        return failure or IncidentPayload(incident=IncidentType.of(done))  # type: ignore[return-value,arg-type]

    @mutation_field(Permission.WORK_INCIDENTS, description="Add a comment to the worklog.")
    async def comment_on_incident(
        self, info: Info, incident_id: strawberry.ID, text: str
    ) -> IncidentResult:
        desk = info.context.services.desk
        done, failure = await _attempt(
            lambda: info.context.write(desk.incidents.comment, str(incident_id), text)
        )
        return failure or IncidentPayload(incident=IncidentType.of(done))  # type: ignore[return-value,arg-type]

    @mutation_field(
        Permission.WORK_INCIDENTS,
        description="Resolve the incident by hand. It reopens if its root alert fires again.",
    )
    async def resolve_incident(
        self, info: Info, incident_id: strawberry.ID, resolution: str
    ) -> IncidentResult:
        desk = info.context.services.desk
        done, failure = await _attempt(
            lambda: info.context.write(desk.incidents.resolve, str(incident_id), resolution)
        )
        return failure or IncidentPayload(incident=IncidentType.of(done))  # type: ignore[return-value,arg-type]

    @mutation_field(
        Permission.MANAGE_PROBLEMS, description="Record the incident as an instance of a problem."
    )
    async def link_incident_to_problem(
        self, info: Info, incident_id: strawberry.ID, problem_id: strawberry.ID
    ) -> IncidentResult:
        desk = info.context.services.desk
        done, failure = await _attempt(
            lambda: info.context.write(
                desk.incidents.link_problem, str(incident_id), str(problem_id)
            )
        )
        return failure or IncidentPayload(incident=IncidentType.of(done))  # type: ignore[return-value,arg-type]

    @mutation_field(Permission.MANAGE_PROBLEMS, description="Open a problem by hand.")
    async def create_problem(self, info: Info, input: CreateProblemInput) -> ProblemResult:
        desk = info.context.services.desk

        async def call() -> ProblemType:
            root = (
                resolve_ref(info, str(input.root_ci_id), "input.rootCiId")
                if input.root_ci_id
                else None
            )
            new = NewProblem(
                title=input.title,
                description=input.description or "",
                root_ci_id=root,
                incident_ids=tuple(str(i) for i in input.incident_ids or ()),
                known_error=input.known_error,
                workaround=input.workaround,
            )
            return ProblemType.of(await info.context.write(desk.problems.create, new))

        done, failure = await _attempt(call, "input.")
        return failure or ProblemPayload(problem=done)  # type: ignore[return-value,arg-type]

    @mutation_field(
        Permission.MANAGE_PROBLEMS,
        description="Record a known error (cause and workaround): on a problem, or as a new one.",
    )
    async def create_known_error(self, info: Info, input: KnownErrorInput) -> ProblemResult:
        desk = info.context.services.desk

        async def call() -> ProblemType:
            if input.problem_id is not None:
                problem = await info.context.write(
                    desk.problems.record_known_error,
                    str(input.problem_id),
                    input.known_error,
                    input.workaround,
                )
                return ProblemType.of(problem)
            root = (
                resolve_ref(info, str(input.root_ci_id), "input.rootCiId")
                if input.root_ci_id
                else None
            )
            problem = await info.context.write(
                lambda: desk.problems.create_known_error(
                    input.known_error, input.workaround, title=input.title, root_ci_id=root
                )
            )
            return ProblemType.of(problem)

        done, failure = await _attempt(call, "input.")
        return failure or ProblemPayload(problem=done)  # type: ignore[return-value,arg-type]

    @mutation_field(Permission.MANAGE_CHANGES, description="Plan a change to CIs.")
    async def create_change(self, info: Info, input: CreateChangeInput) -> ChangeResult:
        desk = info.context.services.desk

        async def call() -> ChangeType:
            ci_ids = tuple(
                resolve_ref(info, str(ref), f"input.ciIds.{n}")
                for n, ref in enumerate(input.ci_ids)
            )
            new = NewChange(
                title=input.title,
                ci_ids=ci_ids,
                description=input.description or "",
                risk=input.risk,
                status=input.status,
                planned_start=aware(input.planned_start),
                planned_end=aware(input.planned_end),
            )
            return ChangeType.of(await info.context.write(desk.changes.create, new))

        done, failure = await _attempt(call, "input.")
        return failure or ChangePayload(change=done)  # type: ignore[return-value,arg-type]
