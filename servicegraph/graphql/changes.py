"""Change management in GraphQL: changes, their calendar with conflicts and freeze
windows, a risk preview for a set of CIs, and the mutations of the change lifecycle
(``servicegraph.ticketing.changes``, wired as ``services.desk.changes``).

This module reads arguments, resolves CI references and turns the service's refusals into
the members of ``ChangeResult`` (``InvalidInput`` naming the field as the client wrote it,
``NotFound``, ``InvalidState`` with the steps allowed instead; a CAB refusal and
unresolved conflicts are ``InvalidState`` too, with the message saying what to do).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, TypeVar

import strawberry

from servicegraph.access.model import Permission
from servicegraph.cmdb.errors import CmdbError
from servicegraph.cmdb.model import new_id, utcnow
from servicegraph.graphql.base import aware, mutation_field, query_field
from servicegraph.graphql.change_types import (
    CalendarEntryType,
    CalendarType,
    ChangeFilterInput,
    ChangeType,
    ConflictType,
    CreateChangeInput,
    CreateFreezeWindowInput,
    FreezeWindowType,
    RiskType,
    TaskStatusEnum,
    UpdateChangeInput,
)
from servicegraph.graphql.cmdb import resolve_ref
from servicegraph.graphql.context import Info
from servicegraph.graphql.errors import (
    Failure,
    InvalidInput,
    InvalidState,
    NotFound,
    as_failure,
    renamed,
)
from servicegraph.ticketing.change_model import Change, ChangeRisk, ChangeStatus
from servicegraph.ticketing.changes import ChangeEdit, NewChange
from servicegraph.ticketing.ports import ChangeFilter

T = TypeVar("T")


@strawberry.type
class ChangePayload:
    change: ChangeType


@strawberry.type
class FreezeWindowPayload:
    freeze_window: FreezeWindowType


@strawberry.type
class Deleted:
    id: strawberry.ID


ChangeResult = Annotated[
    ChangePayload | InvalidInput | NotFound | InvalidState, strawberry.union("ChangeResult")
]
FreezeWindowResult = Annotated[
    FreezeWindowPayload | InvalidInput | NotFound, strawberry.union("FreezeWindowResult")
]
DeleteResult = Annotated[Deleted | NotFound, strawberry.union("DeleteFreezeWindowResult")]


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


def _refs(info: Info, refs: list[strawberry.ID] | None, field: str) -> tuple[str, ...]:
    return tuple(resolve_ref(info, str(r), f"{field}.{n}") for n, r in enumerate(refs or ()))


# The lifecycle names a step ``transition``; the mutations' argument is ``step``.
_STEP = {"transition": "step"}


async def _changed(
    info: Info, call: Callable[[], Change], renames: Mapping[str, str] = _STEP
) -> ChangeResult:
    """``call`` (a write of the change service) in the writer, its refusal as a result
    naming the arguments (``renames``: the service's field -> the argument)."""

    async def run() -> ChangeType:
        return ChangeType.of(await info.context.write(call))

    done, failure = await _attempt(run)
    if failure is not None:
        return renamed(failure, renames)  # type: ignore[return-value]
    return ChangePayload(change=done)  # type: ignore[arg-type]


@strawberry.type
class ChangeQuery:
    @query_field(description="Changes, newest first.")
    def changes(
        self, info: Info, filter: ChangeFilterInput | None = None, first: int = 50
    ) -> list[ChangeType]:
        f = filter or ChangeFilterInput()
        ci_ids = (resolve_ref(info, str(f.ci_id), "filter.ciId"),) if f.ci_id else None
        query = ChangeFilter(status=f.status, ci_ids=ci_ids, assignee=f.assignee, limit=first)
        return [ChangeType.of(c) for c in info.context.services.desk.changes.find(query)]

    @query_field()
    def change(self, info: Info, id: strawberry.ID) -> ChangeType | None:
        change = info.context.services.desk.changes.get_many([str(id)]).get(str(id))
        return ChangeType.of(change) if change is not None else None

    @query_field(
        description="Changes planned or carried out in [start, end) and the freeze windows "
        "there, each change with its conflicts (at most 400 days)."
    )
    def change_calendar(self, info: Info, start: dt.datetime, end: dt.datetime) -> CalendarType:
        calendar = info.context.services.desk.changes.calendar(
            aware(start) or start, aware(end) or end
        )
        return CalendarType(
            start=calendar.start,
            end=calendar.end,
            entries=[
                CalendarEntryType(
                    change=ChangeType.of(c),
                    conflicts=[ConflictType.of(x) for x in calendar.conflicts.get(c.id, [])],
                )
                for c in calendar.changes
            ],
            freeze_windows=[FreezeWindowType.of(w) for w in calendar.freeze_windows],
        )

    @query_field(description="Freeze windows overlapping [start, end) (either open).")
    def freeze_windows(
        self, info: Info, start: dt.datetime | None = None, end: dt.datetime | None = None
    ) -> list[FreezeWindowType]:
        found = info.context.services.desk.changes.freeze_windows(aware(start), aware(end))
        return [FreezeWindowType.of(w) for w in found]

    @query_field(
        description="The risk a change on these CIs would have now: what fails or degrades, "
        "single points of failure, open work on them, earlier failed changes."
    )
    def change_risk(self, info: Info, ci_ids: list[strawberry.ID]) -> RiskType:
        resolved = _refs(info, ci_ids, "ciIds")
        now = utcnow()
        probe = Change(
            id=new_id("chg"),
            number=0,
            title="risk preview",
            status=ChangeStatus.DRAFT,
            risk=ChangeRisk.LOW,
            created_at=now,
            updated_at=now,
            created_by="",
            ci_ids=list(resolved),
        )
        return RiskType.of(info.context.services.desk.changes.analysis.risk(probe))


@strawberry.type
class ChangeMutation:
    @mutation_field(
        Permission.MANAGE_CHANGES,
        description="Raise a change (a draft, its risk computed from the graph).",
    )
    async def create_change(self, info: Info, input: CreateChangeInput) -> ChangeResult:
        changes = info.context.services.desk.changes

        async def call() -> ChangeType:
            new = NewChange(
                title=input.title or "",
                ci_ids=_refs(info, input.ci_ids, "input.ciIds"),
                description=input.description or "",
                change_type=input.type,
                template=input.template,
                planned_start=aware(input.planned_start),
                planned_end=aware(input.planned_end),
                assignee=input.assignee,
                implementation_plan=input.implementation_plan or "",
                backout_plan=input.backout_plan or "",
            )
            return ChangeType.of(await info.context.write(changes.create, new))

        done, failure = await _attempt(call, "input.")
        return failure or ChangePayload(change=done)  # type: ignore[return-value,arg-type]

    @mutation_field(
        Permission.MANAGE_CHANGES,
        description="Edit a change; new CIs or a new window recompute its risk and send a "
        "change the CAB has seen back to assessment.",
    )
    async def update_change(
        self, info: Info, change_id: strawberry.ID, input: UpdateChangeInput
    ) -> ChangeResult:
        changes = info.context.services.desk.changes

        async def call() -> ChangeType:
            edit = ChangeEdit(
                title=input.title,
                description=input.description,
                ci_ids=_refs(info, input.ci_ids, "input.ciIds") if input.ci_ids else None,
                planned_start=aware(input.planned_start),
                planned_end=aware(input.planned_end),
                assignee=input.assignee,
                implementation_plan=input.implementation_plan,
                backout_plan=input.backout_plan,
            )
            return ChangeType.of(await info.context.write(changes.update, str(change_id), edit))

        done, failure = await _attempt(call, "input.")
        return failure or ChangePayload(change=done)  # type: ignore[return-value,arg-type]

    @mutation_field(
        Permission.MANAGE_CHANGES,
        description="Take a lifecycle step (assess, request_approval, start, complete, "
        "close, fail, cancel; schedule for a standard change).",
    )
    async def transition_change(
        self,
        info: Info,
        change_id: strawberry.ID,
        step: str,
        reason: str | None = None,
        close_code: str | None = None,
        close_notes: str | None = None,
    ) -> ChangeResult:
        changes = info.context.services.desk.changes
        return await _changed(
            info,
            lambda: changes.transition(
                str(change_id), step, reason=reason, close_code=close_code, close_notes=close_notes
            ),
        )

    @mutation_field(
        Permission.MANAGE_CHANGES,
        description="Approve as a CAB member (a change manager, not the requester).",
    )
    async def approve_change(
        self, info: Info, change_id: strawberry.ID, comment: str | None = None
    ) -> ChangeResult:
        changes = info.context.services.desk.changes
        return await _changed(info, lambda: changes.approve(str(change_id), comment))

    @mutation_field(Permission.MANAGE_CHANGES, description="Reject as a CAB member: to draft.")
    async def reject_change(
        self, info: Info, change_id: strawberry.ID, reason: str
    ) -> ChangeResult:
        changes = info.context.services.desk.changes
        return await _changed(info, lambda: changes.reject(str(change_id), reason))

    @mutation_field(
        Permission.MANAGE_CHANGES,
        description="Accept a conflict with another change or a freeze window, saying why "
        "(a change manager): it no longer blocks approval.",
    )
    async def override_change_conflict(
        self, info: Info, change_id: strawberry.ID, other_id: strawberry.ID, reason: str
    ) -> ChangeResult:
        changes = info.context.services.desk.changes
        return await _changed(
            info, lambda: changes.override_conflict(str(change_id), str(other_id), reason)
        )

    @mutation_field(Permission.MANAGE_CHANGES, description="Add an implementation task.")
    async def add_change_task(
        self, info: Info, change_id: strawberry.ID, title: str, assignee: str | None = None
    ) -> ChangeResult:
        changes = info.context.services.desk.changes
        return await _changed(info, lambda: changes.add_task(str(change_id), title, assignee))

    @mutation_field(Permission.MANAGE_CHANGES, description="Finish, cancel or hand on a task.")
    async def update_change_task(
        self,
        info: Info,
        change_id: strawberry.ID,
        number: int,
        status: TaskStatusEnum | None = None,  # type: ignore[valid-type]
        assignee: str | None = None,
    ) -> ChangeResult:
        changes = info.context.services.desk.changes
        return await _changed(
            info,
            lambda: changes.update_task(str(change_id), number, status=status, assignee=assignee),
        )

    @mutation_field(Permission.MANAGE_CHANGES, description="Declare a freeze window.")
    async def create_freeze_window(
        self, info: Info, input: CreateFreezeWindowInput
    ) -> FreezeWindowResult:
        changes = info.context.services.desk.changes

        async def call() -> FreezeWindowType:
            window = await info.context.write(
                lambda: changes.create_freeze_window(
                    input.name,
                    aware(input.starts_at) or input.starts_at,
                    aware(input.ends_at) or input.ends_at,
                    reason=input.reason or "",
                    ci_ids=_refs(info, input.ci_ids, "input.ciIds"),
                )
            )
            return FreezeWindowType.of(window)

        done, failure = await _attempt(call, "input.")
        return failure or FreezeWindowPayload(freeze_window=done)  # type: ignore[return-value,arg-type]

    @mutation_field(Permission.MANAGE_CHANGES, description="Lift a freeze window.")
    async def delete_freeze_window(self, info: Info, id: strawberry.ID) -> DeleteResult:
        changes = info.context.services.desk.changes

        async def call() -> Deleted:
            await info.context.write(lambda: changes.delete_freeze_window(str(id)))
            return Deleted(id=id)

        done, failure = await _attempt(call)
        return failure or done  # type: ignore[return-value]
