"""Problem management in GraphQL: the mutations that open, edit and walk problems along
their lifecycle, record known errors, link incidents and the fixing change.

Everything calls the desk's problem service (``servicegraph.ticketing.problems``, wired as
``services.desk.problems``), which checks and logs every step; this module only reads
arguments, resolves CI references and turns the service's refusals into the members of
``ProblemResult`` (``InvalidInput`` naming the field as the client wrote it, ``NotFound``,
``InvalidState`` with the steps allowed instead). Every write needs ``manage_problems``.
The ``Problem`` type and the ``problems`` query are ``monitoring``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated

import strawberry

from servicegraph.access.model import Permission
from servicegraph.cmdb.errors import CmdbError
from servicegraph.graphql.base import mutation_field
from servicegraph.graphql.cmdb import resolve_ref
from servicegraph.graphql.context import Info
from servicegraph.graphql.errors import (
    InvalidInput,
    InvalidState,
    NotFound,
    as_failure,
    renamed,
)
from servicegraph.graphql.monitoring import IncidentType, ProblemType
from servicegraph.graphql.tickets import IncidentPayload, IncidentResult
from servicegraph.ticketing.model import Incident, Problem
from servicegraph.ticketing.problems import NewProblem, ProblemEdit


@strawberry.type
class ProblemPayload:
    problem: ProblemType


ProblemResult = Annotated[
    ProblemPayload | InvalidInput | NotFound | InvalidState, strawberry.union("ProblemResult")
]


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
    assignee: str | None = strawberry.field(
        default=None, description="The agent who analyses it (an active agent's login)."
    )


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


@strawberry.input(description="What to change; a field left out is unchanged.")
class ProblemChangesInput:
    title: str | None = None
    description: str | None = None
    root_cause: str | None = strawberry.field(
        default=None, description="What causes it (root-cause analysis)."
    )
    fix: str | None = strawberry.field(default=None, description="The permanent fix.")
    root_ci_id: strawberry.ID | None = strawberry.field(
        default=None, description="The CI at its root (id, key or identifier); empty: none."
    )
    assignee: str | None = strawberry.field(
        default=None, description="An active agent's login; empty: nobody."
    )

    def to_domain(self, info: Info) -> ProblemEdit:
        root = self.root_ci_id
        if root is not None and str(root).strip():
            root = strawberry.ID(resolve_ref(info, str(root), "changes.rootCiId"))
        return ProblemEdit(
            title=self.title,
            description=self.description,
            root_cause=self.root_cause,
            fix=self.fix,
            root_ci_id=None if root is None else str(root),
            assignee=self.assignee,
        )


def _root(info: Info, ref: strawberry.ID | None) -> str | None:
    return resolve_ref(info, str(ref), "input.rootCiId") if ref else None


# The service names the problem ``problem_id`` and a step ``transition``; the arguments
# are ``problemId`` and ``step``.
_STEP = {"transition": "step"}


async def _result(
    info: Info,
    call: Callable[[], Problem],
    *,
    prefix: str = "",
    renames: Mapping[str, str] | None = None,
) -> ProblemResult:
    """Run ``call`` as a write (in a worker thread, with the caller as the actor; CI
    references are read there too, so that their refusals are answered the same way) and
    answer the problem, or the failure naming ``prefix`` + the field."""
    try:
        problem = await info.context.write(call)
    except CmdbError as exc:
        failure = as_failure(exc, prefix)
        if failure is None:
            raise
        return renamed(failure, renames or {})  # type: ignore[return-value]  # never Conflicts
    return ProblemPayload(problem=ProblemType.of(problem))


@strawberry.type
class ProblemMutation:
    @mutation_field(Permission.MANAGE_PROBLEMS, description="Open a problem by hand.")
    async def create_problem(self, info: Info, input: CreateProblemInput) -> ProblemResult:
        problems = info.context.services.desk.problems

        def create() -> Problem:
            new = NewProblem(
                title=input.title,
                description=input.description or "",
                root_ci_id=_root(info, input.root_ci_id),
                incident_ids=tuple(str(i) for i in input.incident_ids or ()),
                known_error=input.known_error,
                workaround=input.workaround,
                assignee=input.assignee,
            )
            return problems.create(new)

        return await _result(info, create, prefix="input.")

    @mutation_field(
        Permission.MANAGE_PROBLEMS,
        description="Record a known error (cause and workaround): on a problem, or as a new one.",
    )
    async def create_known_error(self, info: Info, input: KnownErrorInput) -> ProblemResult:
        problems = info.context.services.desk.problems

        def record() -> Problem:
            if input.problem_id is not None:
                return problems.record_known_error(
                    str(input.problem_id), input.known_error, input.workaround
                )
            return problems.create_known_error(
                input.known_error,
                input.workaround,
                title=input.title,
                root_ci_id=_root(info, input.root_ci_id),
            )

        return await _result(info, record, prefix="input.")

    @mutation_field(
        Permission.MANAGE_PROBLEMS,
        description="Change a problem's fields and root-cause analysis (not when closed).",
    )
    async def update_problem(
        self, info: Info, problem_id: strawberry.ID, changes: ProblemChangesInput
    ) -> ProblemResult:
        problems = info.context.services.desk.problems
        return await _result(
            info,
            lambda: problems.update(str(problem_id), changes.to_domain(info)),
            prefix="changes.",
            renames={"changes.problemId": "problemId"},
        )

    @mutation_field(
        Permission.MANAGE_PROBLEMS,
        description="Take a lifecycle step (investigate, record_known_error, resolve, close, "
        "reopen, cancel) or move to a status (RESOLVED); Problem.allowedSteps lists the steps "
        "allowed now. investigate needs an assignee (given, or the problem's), "
        "record_known_error a knownError, resolve and cancel a resolution, reopen a reason.",
    )
    async def transition_problem(
        self,
        info: Info,
        problem_id: strawberry.ID,
        step: str,
        assignee: str | None = None,
        known_error: str | None = None,
        workaround: str | None = None,
        resolution: str | None = None,
        reason: str | None = None,
    ) -> ProblemResult:
        problems = info.context.services.desk.problems
        return await _result(
            info,
            lambda: problems.transition(
                str(problem_id),
                step.lower(),  # lifecycle names are lower case; GraphQL shows RESOLVED
                assignee=assignee,
                known_error=known_error,
                workaround=workaround,
                resolution=resolution,
                reason=reason,
            ),
            renames=_STEP,
        )

    @mutation_field(
        Permission.MANAGE_PROBLEMS,
        description="Record the change that removes the problem's cause (one per problem; "
        "one that failed or was cancelled may be replaced). When it closes successfully, "
        "Problem.resolutionProposal proposes resolving the problem.",
    )
    async def link_fixing_change(
        self, info: Info, problem_id: strawberry.ID, change_id: strawberry.ID
    ) -> ProblemResult:
        problems = info.context.services.desk.problems
        return await _result(
            info, lambda: problems.link_fixing_change(str(problem_id), str(change_id))
        )

    @mutation_field(
        Permission.MANAGE_PROBLEMS,
        description="Record the incident as an instance of a problem (not a resolved or "
        "closed one).",
    )
    async def link_incident_to_problem(
        self, info: Info, incident_id: strawberry.ID, problem_id: strawberry.ID
    ) -> IncidentResult:
        incidents = info.context.services.desk.incidents
        try:
            incident: Incident = await info.context.write(
                incidents.link_problem, str(incident_id), str(problem_id)
            )
        except CmdbError as exc:
            failure = as_failure(exc)
            if failure is None:
                raise
            return failure  # type: ignore[return-value]  # never Conflicts
        return IncidentPayload(incident=IncidentType.of(incident))
