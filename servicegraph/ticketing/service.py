"""People's work on monitoring incidents: acknowledge, assign, comment, resolve, link to a
problem.

Every step is one unit of work that checks the ticket's state, changes it and appends a
worklog entry with the time and the actor (the ``ChangeContext`` the entry point set).
Rules:

- an incident is acknowledged once, and not after it is resolved; acknowledging one that
  is assigned to you starts work on it (the lifecycle's ``start``);
- assigning and resolving are the desk's lifecycle steps, taken by ``TicketService``
  (``tickets.py``) so that one state machine rules every ticket: the assignee must be an
  active agent of the incident's group, a resolved incident cannot be resolved again, nor
  assigned before it is reopened; comments are always allowed;
- an incident is an instance of at most one problem; linking it to a second one is refused
  (linking it to its own problem again changes nothing); a resolved or closed problem
  takes no new incidents.

Problems are ``problems.py``'s, changes ``changes.py``'s.

Correlation keeps resolving and reopening incidents from alerts: an incident resolved by
hand while its root alert still fires reopens on the alert's next repeat.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from servicegraph.cmdb.context import current_change_context
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.model import utcnow
from servicegraph.events.model import Alert
from servicegraph.ticketing.errors import InvalidState, InvalidTransition, TicketNotFound
from servicegraph.ticketing.lifecycle import ActorKind, TicketStatus
from servicegraph.ticketing.model import (
    Incident,
    WorklogEntry,
    WorklogKind,
)
from servicegraph.ticketing.ports import (
    IncidentFilter,
    TicketStore,
    TicketUnit,
)
from servicegraph.ticketing.tickets import TicketService
from servicegraph.ticketing.tickets_work import StepFields, responded, take_step

Clock = Callable[[], dt.datetime]

MAX_TEXT = 20_000
MAX_NAME = 200
MAX_LIMIT = 1000


def _text(value: str | None, field: str, *, limit: int, required: bool = True) -> str:
    text = (value or "").strip()
    if required and not text:
        raise ValidationFailed("must not be empty", field=field)
    if len(text) > limit:
        raise ValidationFailed(f"is longer than {limit} characters", field=field)
    return text


def _limit(value: int, field: str = "limit") -> int:
    if not 1 <= value <= MAX_LIMIT:
        raise ValidationFailed(f"must be between 1 and {MAX_LIMIT}", field=field)
    return value


def _aware(value: dt.datetime | None, field: str) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValidationFailed("needs a time zone (e.g. 2026-11-01T12:00:00Z)", field=field)
    return value


def _actor() -> str:
    return current_change_context().actor


def _log(
    ticket_id: str, at: dt.datetime, actor: str, kind: WorklogKind, text: str = ""
) -> WorklogEntry:
    return WorklogEntry(ticket_id=ticket_id, at=at, actor=actor, kind=kind, text=text)


RESOLUTION_CODE = "solved"  # what a resolution written by hand is filed as


class IncidentService:
    """The monitoring-era operations on incidents (GraphQL's acknowledge, assign, resolve,
    comment, link to a problem); assigning and resolving go through ``tickets``."""

    def __init__(
        self, store: TicketStore, tickets: TicketService, *, clock: Clock = utcnow
    ) -> None:
        self.store = store
        self.tickets = tickets
        self.clock = clock

    # -- reads ----------------------------------------------------------------------------

    def get(self, incident_id: str) -> Incident:
        incident = self.store.get_incidents([incident_id]).get(incident_id)
        if incident is None:
            raise TicketNotFound("incident", incident_id, field="incident_id")
        return incident

    def get_many(self, ids: Iterable[str]) -> dict[str, Incident]:
        return self.store.get_incidents(ids)

    def find(self, query: IncidentFilter) -> list[Incident]:
        _limit(query.limit)
        _aware(query.opened_since, "opened_since")
        if query.max_priority is not None and not 1 <= query.max_priority <= 5:
            raise ValidationFailed("must be a priority from 1 to 5", field="max_priority")
        return self.store.find_incidents(query)

    def open_incidents_of(self, ci_ids: Iterable[str]) -> dict[str, list[Incident]]:
        return self.store.open_incidents_of(ci_ids)

    def alerts(self, incident_ids: Iterable[str]) -> dict[str, list[Alert]]:
        return self.store.incident_alerts(incident_ids)

    def worklog(self, ticket_ids: Iterable[str]) -> dict[str, list[WorklogEntry]]:
        return self.store.worklog(ticket_ids)

    def updated_since(self, since: dt.datetime, limit: int = 500) -> list[Incident]:
        return self.store.incidents_updated_since(since, limit)

    def last_number(self) -> int:
        return self.store.last_incident_number()

    # -- work -----------------------------------------------------------------------------

    def _work(
        self,
        incident_id: str,
        step: Callable[[TicketUnit, Incident, dt.datetime, str], list[WorklogEntry]],
    ) -> Incident:
        now, actor = self.clock(), _actor()
        with self.store.unit() as unit:
            incident = unit.load_incidents([incident_id]).get(incident_id)
            if incident is None:
                raise TicketNotFound("incident", incident_id, field="incident_id")
            entries = step(unit, incident, now, actor)
            if entries:
                incident.updated_at = max(now, incident.updated_at)
                unit.update_incidents([incident])
                unit.append_worklog(entries)
                unit.touched()
        return incident

    def acknowledge(self, incident_id: str, note: str | None = None) -> Incident:
        """The incident is being worked on: sets ``acknowledged_at`` and ``_by``; its
        assignee acknowledging an assigned incident starts it (in progress)."""
        text = _text(note, "note", limit=MAX_TEXT, required=False)
        machine = self.tickets.policy.lifecycle

        def step(unit: TicketUnit, i: Incident, now: dt.datetime, actor: str) -> list[WorklogEntry]:
            if not i.status.active:
                raise InvalidState(
                    i.status, "acknowledge", machine.allowed_names(i.status, ActorKind.AGENT),
                    ticket_id=i.id, actor_kind=ActorKind.AGENT,
                    detail="there is nothing to acknowledge",
                )  # fmt: skip
            if i.acknowledged_at is not None:
                raise InvalidTransition(
                    i.id,
                    f"was already acknowledged by {i.acknowledged_by} at "
                    f"{i.acknowledged_at.isoformat()}",
                )
            i.acknowledged_at, i.acknowledged_by = now, actor
            responded(i, now)  # a monitoring incident's response is its acknowledgement
            entries = [_log(i.id, now, actor, WorklogKind.ACKNOWLEDGED, text)]
            starts = "start" in machine.allowed_names(i.status, ActorKind.AGENT)
            if i.status is TicketStatus.ASSIGNED and i.assignee == actor and starts:
                entries += take_step(
                    machine, i, "start", StepFields(reason="acknowledged"), actor=actor,
                    actor_kind=ActorKind.AGENT, now=now,
                    reopen_window=self.tickets.policy.reopen_window,
                )  # fmt: skip
            return entries

        return self._work(incident_id, step)

    def assign(self, incident_id: str, assignee: str) -> Incident:
        """Give the incident to an agent of its group (``TicketService.assign``); an
        incident without a group takes the agent's."""
        who = _text(assignee, "assignee", limit=MAX_NAME)
        return self._as_incident(incident_id, lambda: self.tickets.assign(incident_id, agent=who))

    def comment(self, incident_id: str, text: str) -> Incident:
        body = _text(text, "text", limit=MAX_TEXT)

        def step(unit: TicketUnit, i: Incident, now: dt.datetime, actor: str) -> list[WorklogEntry]:
            return [_log(i.id, now, actor, WorklogKind.COMMENT, body)]

        return self._work(incident_id, step)

    def resolve(
        self, incident_id: str, resolution: str, *, resolution_code: str = RESOLUTION_CODE
    ) -> Incident:
        """Resolve by hand, through the lifecycle's ``resolve`` step, with the notes."""
        text = _text(resolution, "resolution", limit=MAX_TEXT)
        return self._as_incident(
            incident_id,
            lambda: self.tickets.transition(
                incident_id, "resolve", resolution_code=resolution_code, resolution=text
            ),
        )

    def _as_incident(self, incident_id: str, work: Callable[[], Incident]) -> Incident:
        """``work`` on the ticket service, its unknown ticket said as this API says it."""
        try:
            return work()
        except TicketNotFound as exc:
            if exc.ticket_id != incident_id or exc.field != "ticket_id":
                raise
            raise TicketNotFound("incident", incident_id, field="incident_id") from None

    def link_problem(self, incident_id: str, problem_id: str) -> Incident:
        """Record the incident as an instance of the problem."""

        def step(unit: TicketUnit, i: Incident, now: dt.datetime, actor: str) -> list[WorklogEntry]:
            problem = unit.load_problems([problem_id]).get(problem_id)
            if problem is None:
                raise TicketNotFound("problem", problem_id, field="problem_id")
            if i.problem_id == problem_id:
                return []
            if i.problem_id is not None:
                raise InvalidTransition(
                    i.id, f"is already an instance of problem {i.problem_id}; it has one problem"
                )
            if not problem.status.active:
                raise InvalidTransition(
                    problem.id, f"is {problem.status} and takes no new incidents"
                )
            i.problem_id = problem_id
            unit.link_problem(problem_id, [i.id], now)
            problem.updated_at = now
            unit.save_problem(problem)
            text = f"incident {i.id} is an instance of problem {problem_id}"
            unit.append_worklog([_log(problem_id, now, actor, WorklogKind.LINKED, text)])
            return [_log(i.id, now, actor, WorklogKind.LINKED, text)]

        return self._work(incident_id, step)
