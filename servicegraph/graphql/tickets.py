"""The monitoring-era mutations that work incidents (``servicegraph.ticketing.service``);
problems and known errors are ``problems.py``'s, changes ``changes.py``'s."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import strawberry

from servicegraph.access.model import Permission
from servicegraph.cmdb.errors import CmdbError
from servicegraph.graphql.base import mutation_field
from servicegraph.graphql.context import Info
from servicegraph.graphql.errors import Failure, InvalidInput, InvalidState, NotFound, as_failure
from servicegraph.graphql.monitoring import IncidentType

T = TypeVar("T")


# -- mutations ----------------------------------------------------------------------------------


@strawberry.type
class IncidentPayload:
    incident: IncidentType


IncidentResult = Annotated[
    IncidentPayload | InvalidInput | NotFound | InvalidState, strawberry.union("IncidentResult")
]


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
