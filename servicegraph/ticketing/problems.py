"""Problem management: problems opened by people or by correlation (recurrence), analysed,
recorded as known errors, fixed by a change, resolved and closed.

Every write is one ``TicketStore`` unit: the problem is loaded in it, checked, changed and
saved with one worklog entry per step and per changed field, or nothing at all when a
check refuses. The lifecycle is data (``problem_lifecycle``); a step it does not allow is
``InvalidState`` naming the allowed ones. The rules:

- the assignee is an active agent of the directory; an investigated problem keeps one;
- a closed problem is read-only;
- a problem has one fixing change, which must exist and still be able to fix it (not
  failed or cancelled); a fixing change that failed or was cancelled may be replaced;
  linking is logged on both the problem and the change;
- a resolved or closed problem takes no new incidents (``IncidentService.link_problem``)
  and no fixing change.

Two things are derived when read, never stored, so that they are never stale:

- ``resolution_proposal``: the fixing change closed successfully while the problem is
  still active, so resolving it is proposed (people decide; ``ChangeService`` also logs the
  proposal on the problem when the change closes);
- ``known_errors_for``: the known-error database offered on an incident, the problems
  with a known error whose root CI is one of the incident's CIs, or whose signature is
  its root alert's (``alert:<source>/<name>``) or one of its CIs' (``ci:<id>``), each
  with why it matches; those still known errors first, then resolved and closed ones
  (the knowledge stays: a match then says the fix may not have held).

Errors: ``ValidationFailed`` naming the field, ``TicketNotFound`` (kind, id, field),
``InvalidState`` naming the allowed steps, ``InvalidTransition``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from servicegraph.cmdb.context import current_change_context
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.model import new_id, utcnow
from servicegraph.cmdb.ports import GraphStore
from servicegraph.events.model import Alert
from servicegraph.ticketing.change_lifecycle import SUCCESSFUL_CLOSE_CODES
from servicegraph.ticketing.change_model import Change, ChangeStatus
from servicegraph.ticketing.errors import InvalidState, InvalidTransition, TicketNotFound
from servicegraph.ticketing.intake import MAX_TEXT, MAX_TITLE
from servicegraph.ticketing.intake import text as clean
from servicegraph.ticketing.lifecycle import ActorKind, StateMachine
from servicegraph.ticketing.model import (
    Incident,
    Problem,
    ProblemStatus,
    WorklogEntry,
    WorklogKind,
)
from servicegraph.ticketing.people import Directory
from servicegraph.ticketing.ports import ProblemFilter, TicketStore, TicketUnit
from servicegraph.ticketing.problem_lifecycle import (
    ProblemStepFields,
    load_problem_lifecycle,
    take_problem_step,
)
from servicegraph.ticketing.tickets_work import entry

Clock = Callable[[], dt.datetime]
Step = Callable[[TicketUnit, Problem, dt.datetime, str], list[WorklogEntry]]

MAX_LIMIT = 1000
MAX_ID = 64
# a fixing change that ended so cannot fix anything: another may take its place
_NOT_FIXING = frozenset({ChangeStatus.FAILED, ChangeStatus.CANCELLED})


def _actor() -> str:
    return current_change_context().actor


def _optional(value: str | None, field: str, limit: int = MAX_TEXT) -> str | None:
    """Blank is as good as not given."""
    if value is None:
        return None
    return clean(value, field, limit=limit, required=False) or None


@dataclass(frozen=True)
class NewProblem:
    title: str
    description: str = ""
    root_ci_id: str | None = None
    incident_ids: tuple[str, ...] = ()
    known_error: str | None = None  # the cause, when already known: a known error at once
    workaround: str | None = None
    assignee: str | None = None


@dataclass(frozen=True)
class ProblemEdit:
    """What to change; None = unchanged. Empty text clears a text, the root CI or the
    assignee (not while the problem is investigated: someone must be on it)."""

    title: str | None = None
    description: str | None = None
    root_cause: str | None = None
    fix: str | None = None
    root_ci_id: str | None = None
    assignee: str | None = None


@dataclass(frozen=True)
class KnownErrorMatch:
    """A known error offered on an incident, and why it matches ("same root CI db-1")."""

    problem: Problem
    why: str

    @property
    def workaround(self) -> str | None:
        return self.problem.workaround


def resolution_proposal(problem: Problem, change: Change | None) -> str | None:
    """What to propose when ``change``, the problem's fixing change, closed successfully
    while the problem is still active; None otherwise. A closed change is final, so its
    last update is its closing."""
    if change is None or change.id != problem.fixing_change_id or not problem.status.active:
        return None
    if change.status is not ChangeStatus.CLOSED or change.close_code not in SUCCESSFUL_CLOSE_CODES:
        return None
    how = "successfully" if change.close_code == "successful" else "successfully, with issues,"
    when = change.updated_at.astimezone(dt.UTC)
    return (
        f"change {change.number} '{change.title}' closed {how} on {when:%Y-%m-%d %H:%M} UTC: "
        "resolve the problem"
    )


class ProblemService:
    """See the module docstring; ``directory`` gives the current people (assignees are
    checked against it), ``lifecycle`` the problem lifecycle (the default one unless a
    deployment declares its own)."""

    def __init__(
        self,
        store: TicketStore,
        graph: GraphStore,
        *,
        directory: Callable[[], Directory],
        lifecycle: StateMachine | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.graph = graph
        self.directory = directory
        self.lifecycle = lifecycle or load_problem_lifecycle()
        self.clock = clock

    # -- reads ----------------------------------------------------------------------------

    def get(self, problem_id: str) -> Problem:
        problem = self.store.get_problems([problem_id]).get(problem_id)
        if problem is None:
            raise TicketNotFound("problem", problem_id, field="problem_id")
        return problem

    def get_many(self, ids: Iterable[str]) -> dict[str, Problem]:
        return self.store.get_problems(ids)

    def find(self, query: ProblemFilter) -> list[Problem]:
        if not 1 <= query.limit <= MAX_LIMIT:
            raise ValidationFailed(f"must be between 1 and {MAX_LIMIT}", field="limit")
        return self.store.find_problems(query)

    def history(self, problem_id: str) -> list[WorklogEntry]:
        """Every step and field change of the problem, oldest first."""
        return self.store.worklog([problem_id]).get(problem_id, [])

    def allowed_steps(
        self, status: ProblemStatus, actor_kind: ActorKind = ActorKind.AGENT
    ) -> list[str]:
        """The steps ``actor_kind`` may take from ``status`` (none from a status the
        configured lifecycle does not know)."""
        if status not in self.lifecycle.states:
            return []
        return list(self.lifecycle.allowed_names(status, actor_kind))

    def fixing_change(self, problem: Problem) -> Change | None:
        if problem.fixing_change_id is None:
            return None
        return self.store.get_changes([problem.fixing_change_id]).get(problem.fixing_change_id)

    def resolution_proposal(self, problem: Problem) -> str | None:
        """``resolution_proposal`` with the problem's fixing change as stored now."""
        return resolution_proposal(problem, self.fixing_change(problem))

    def known_errors_for(
        self, incident: Incident, *, alerts: Sequence[Alert] | None = None
    ) -> list[KnownErrorMatch]:
        """The known errors to offer on ``incident`` (see the module docstring), by problem
        number. ``alerts``: the incident's alerts when the caller has them (its root
        alert's signature is read from them), else they are read when needed."""
        ci_ids = incident.ci_ids()
        signature = self._root_signature(incident, alerts)
        signatures = [f"ci:{c}" for c in ci_ids] + ([f"alert:{signature}"] if signature else [])
        if not signatures:
            return []
        found = self.store.known_errors_for(ci_ids, signatures)
        names = self._names({*ci_ids, *(p.root_ci_id for p in found if p.root_ci_id)})
        matches = []
        for problem in found:
            why = _why(problem, incident, signature, names)
            if why:  # the store's answer, checked: every match says why
                matches.append(KnownErrorMatch(problem, why + _fixed(problem)))
        # what is still a known error first: its workaround is what to apply today
        return sorted(matches, key=lambda m: (not m.problem.status.active, m.problem.number))

    def _root_signature(self, incident: Incident, alerts: Sequence[Alert] | None) -> str | None:
        if incident.root_fingerprint is None:
            return None
        if alerts is None:
            alerts = self.store.incident_alerts([incident.id]).get(incident.id, [])
        root = next((a for a in alerts if a.fingerprint == incident.root_fingerprint), None)
        return f"{root.source}/{root.name}" if root is not None else None

    def _names(self, ci_ids: set[str]) -> dict[str, str]:
        """CI id -> name; a CI that is gone is named by its id."""
        found = self.graph.get_cis(sorted(ci_ids)) if ci_ids else {}
        return {ci_id: (found[ci_id].name if ci_id in found else ci_id) for ci_id in ci_ids}

    # -- create -----------------------------------------------------------------------------

    def create(self, new: NewProblem) -> Problem:
        """Open a problem by hand, optionally with its incidents, its assignee and, when
        the cause is already understood, as a known error with a workaround (the
        lifecycle's step into known_error, taken at once)."""
        title = clean(new.title, "title", limit=MAX_TITLE)
        description = clean(new.description, "description", limit=MAX_TEXT, required=False)
        known_error = _optional(new.known_error, "known_error")
        workaround = _optional(new.workaround, "workaround")
        if workaround and not known_error:
            raise ValidationFailed(
                "a workaround belongs to a known error: describe the error too",
                field="known_error",
            )
        assignee = self._assignee(new.assignee)
        root = self._root_ci(new.root_ci_id)
        incident_ids = list(dict.fromkeys(new.incident_ids))
        now, actor = self.clock(), _actor()
        problem_id = new_id("prb")
        with self.store.unit() as unit:
            incidents = unit.load_incidents(incident_ids)
            for index, incident_id in enumerate(incident_ids):
                incident = incidents.get(incident_id)
                if incident is None:
                    raise TicketNotFound("incident", incident_id, field=f"incident_ids.{index}")
                if incident.problem_id is not None:
                    raise InvalidTransition(
                        incident_id,
                        f"is already an instance of problem {incident.problem_id}; "
                        "it has one problem",
                    )
            problem = Problem(
                id=problem_id,
                number=unit.next_problem_number(),
                title=title,
                status=ProblemStatus(self.lifecycle.initial),
                created_at=now,
                updated_at=now,
                root_ci_id=root,
                reason=description or f"opened by {actor}",
                signature=f"manual:{problem_id}",
                incident_ids=incident_ids,
                assignee=assignee,
                description=description,
            )
            entries = [entry(problem.id, now, actor, WorklogKind.CREATED, title)]
            if known_error:
                fields = ProblemStepFields(known_error=known_error, workaround=workaround)
                entries += take_problem_step(
                    self.lifecycle, problem, ProblemStatus.KNOWN_ERROR.value, fields,
                    actor=actor, actor_kind=ActorKind.AGENT, now=now,
                )  # fmt: skip
            unit.save_problem(problem)
            if incident_ids:
                unit.link_problem(problem.id, incident_ids, now)
                for incident in incidents.values():
                    incident.problem_id = problem.id
                    incident.updated_at = max(now, incident.updated_at)
                    text = f"incident {incident.id} is an instance of problem {problem.id}"
                    entries.append(entry(incident.id, now, actor, WorklogKind.LINKED, text))
                unit.update_incidents(list(incidents.values()))
            unit.append_worklog(entries)
            unit.touched()
        return problem

    def create_known_error(
        self,
        known_error: str,
        workaround: str | None = None,
        *,
        title: str | None = None,
        root_ci_id: str | None = None,
    ) -> Problem:
        """A new problem whose cause is already known; its title defaults to the first
        line of the error."""
        error = clean(known_error, "known_error", limit=MAX_TEXT)
        heading = (title or "").strip() or error.splitlines()[0][:MAX_TITLE]
        return self.create(
            NewProblem(
                title=heading, root_ci_id=root_ci_id, known_error=error, workaround=workaround
            )
        )

    # -- work -------------------------------------------------------------------------------

    def _work(self, problem_id: str, step: Step) -> Problem:
        now, actor = self.clock(), _actor()
        with self.store.unit() as unit:
            problem = unit.load_problems([problem_id]).get(problem_id)
            if problem is None:
                raise TicketNotFound("problem", problem_id, field="problem_id")
            entries = step(unit, problem, now, actor)
            if entries:
                problem.updated_at = max(now, problem.updated_at)
                unit.save_problem(problem)
                unit.append_worklog(entries)
                unit.touched()
        return problem

    def transition(
        self,
        problem_id: str,
        step: str,
        *,
        assignee: str | None = None,
        known_error: str | None = None,
        workaround: str | None = None,
        resolution: str | None = None,
        reason: str | None = None,
        actor_kind: ActorKind = ActorKind.AGENT,
    ) -> Problem:
        """Take a lifecycle step (by name, or by target status) with what it carries
        (``problem_lifecycle.take_problem_step``)."""
        fields = ProblemStepFields(
            assignee=self._assignee(assignee),
            known_error=_optional(known_error, "known_error"),
            workaround=_optional(workaround, "workaround"),
            resolution=_optional(resolution, "resolution"),
            reason=_optional(reason, "reason"),
        )
        wanted = clean(step, "transition", limit=MAX_ID).lower()

        def step_(unit: TicketUnit, p: Problem, now: dt.datetime, actor: str) -> list[WorklogEntry]:
            return take_problem_step(
                self.lifecycle, p, wanted, fields, actor=actor, actor_kind=actor_kind, now=now
            )

        return self._work(problem_id, step_)

    def record_known_error(
        self, problem_id: str, known_error: str, workaround: str | None = None
    ) -> Problem:
        """The cause is understood: the problem becomes a known error, with a workaround
        (the lifecycle's step into known_error). On a known error, the error and the
        workaround are recorded anew (an empty workaround keeps the one it has)."""
        error = clean(known_error, "known_error", limit=MAX_TEXT)
        fix = _optional(workaround, "workaround")

        def step(unit: TicketUnit, p: Problem, now: dt.datetime, actor: str) -> list[WorklogEntry]:
            if p.status is not ProblemStatus.KNOWN_ERROR:
                fields = ProblemStepFields(known_error=error, workaround=fix)
                return take_problem_step(
                    self.lifecycle, p, ProblemStatus.KNOWN_ERROR.value, fields, actor=actor,
                    actor_kind=ActorKind.AGENT, now=now,
                )  # fmt: skip
            kept = fix or p.workaround
            if (error, kept) == (p.known_error, p.workaround):
                return []
            p.known_error, p.workaround = error, kept
            text = error + (f"\nworkaround: {kept}" if kept else "")
            return [entry(p.id, now, actor, WorklogKind.KNOWN_ERROR, text)]

        return self._work(problem_id, step)

    def update(self, problem_id: str, edit: ProblemEdit) -> Problem:
        """Change the problem's fields and its root-cause analysis (one entry per field
        that changed: CHANGED, ASSIGNED for the assignee)."""
        values: dict[str, str | None] = {}
        if edit.title is not None:
            values["title"] = clean(edit.title, "title", limit=MAX_TITLE)
        for name in ("description", "root_cause", "fix"):
            value = getattr(edit, name)
            if value is not None:
                values[name] = clean(value, name, limit=MAX_TEXT, required=False)
        if edit.root_ci_id is not None:
            values["root_ci_id"] = self._root_ci(edit.root_ci_id.strip() or None)
        if edit.assignee is not None:
            values["assignee"] = self._assignee(edit.assignee)

        def step(unit: TicketUnit, p: Problem, now: dt.datetime, actor: str) -> list[WorklogEntry]:
            if self.lifecycle.is_final(p.status):
                raise InvalidState(
                    p.status, "update", (), ticket_id=p.id, actor_kind=ActorKind.AGENT,
                    detail=f"a {p.status} problem is read-only",
                )  # fmt: skip
            unassigned = "assignee" in values and values["assignee"] is None
            if unassigned and p.status is ProblemStatus.INVESTIGATING:
                raise ValidationFailed(
                    "an investigated problem keeps an assignee: name another one",
                    field="assignee",
                )
            log = []
            for name, value in values.items():
                old = getattr(p, name)
                if old == value:
                    continue
                if name == "assignee":
                    text = f"assigned to {value}" if value else f"unassigned (was {old})"
                    kind = WorklogKind.ASSIGNED
                elif name == "root_ci_id":  # people read CI names; the ids are old/new
                    cis = self._names({c for c in (old, value) if c})
                    shown = [cis[c] if c else "(none)" for c in (old, value)]
                    text, kind = f"root CI: {shown[0]} -> {shown[1]}", WorklogKind.CHANGED
                else:
                    text = f"{name}: {old or '(none)'} -> {value or '(none)'}"
                    kind = WorklogKind.CHANGED
                log.append(entry(p.id, now, actor, kind, text, field=name, old=old, new=value))
                setattr(p, name, value)
            return log

        return self._work(problem_id, step)

    def link_fixing_change(self, problem_id: str, change_id: str) -> Problem:
        """Record ``change_id`` as the change that removes the problem's cause (logged on
        both); linking it again changes nothing."""
        wanted = clean(change_id, "change_id", limit=MAX_ID)

        def step(unit: TicketUnit, p: Problem, now: dt.datetime, actor: str) -> list[WorklogEntry]:
            change = unit.load_changes([wanted]).get(wanted)
            if change is None:
                raise TicketNotFound("change", wanted, field="change_id")
            if not p.status.active:
                raise InvalidState(
                    p.status, "link_fixing_change",
                    self.allowed_steps(p.status), ticket_id=p.id, actor_kind=ActorKind.AGENT,
                    detail=f"a {p.status} problem takes no fixing change",
                )  # fmt: skip
            if p.fixing_change_id == change.id:
                return []
            if change.status in _NOT_FIXING:
                raise ValidationFailed(
                    f"change {change.number} '{change.title}' is {change.status} and "
                    "fixes nothing now",
                    field="change_id",
                )
            if p.fixing_change_id is not None:
                current = unit.load_changes([p.fixing_change_id]).get(p.fixing_change_id)
                if current is not None and current.status not in _NOT_FIXING:
                    raise InvalidTransition(
                        p.id,
                        f"is fixed by change {current.number} '{current.title}' "
                        f"({current.status}); a problem has one fixing change, replaced "
                        "only when it failed or was cancelled",
                    )
            text = f"change {change.number} '{change.title}' fixes problem {p.number} '{p.title}'"
            old, p.fixing_change_id = p.fixing_change_id, change.id
            return [
                entry(p.id, now, actor, WorklogKind.LINKED, text, field="fixing_change_id",
                      old=old, new=change.id),
                entry(change.id, now, actor, WorklogKind.LINKED, text),
            ]  # fmt: skip

        return self._work(problem_id, step)

    # -- checks ---------------------------------------------------------------------------

    def _assignee(self, login: str | None) -> str | None:
        """An active agent's login; blank for none."""
        wanted = _optional(login, "assignee", limit=200)
        if wanted is None:
            return None
        return self.directory().agent(wanted, field="assignee").login

    def _root_ci(self, ci_id: str | None) -> str | None:
        """The CI, checked to exist; a CI merged into another stands for its survivor."""
        if ci_id is None:
            return None
        ci = self.graph.get_cis([ci_id]).get(ci_id)
        if ci is None:
            raise ValidationFailed(f"no configuration item with id '{ci_id}'", field="root_ci_id")
        return ci.merged_into or ci_id


def _fixed(problem: Problem) -> str:
    """What a match says of a problem no longer active: it was fixed, so a new incident
    that matches is a sign the fix did not hold."""
    if problem.status.active:
        return ""
    when = problem.resolved_at.date().isoformat() if problem.resolved_at else "before"
    return f"; resolved {when}: a new incident may mean the fix did not hold"


def _why(problem: Problem, incident: Incident, signature: str | None, names: dict[str, str]) -> str:
    """Why ``problem`` matches ``incident``: "same root CI db-1", "same alert signature
    prometheus/HostDown" ... joined by "; "; empty when it does not."""
    reasons = []
    root = problem.root_ci_id
    if root is not None and root == incident.root_ci_id:
        reasons.append(f"same root CI {names.get(root, root)}")
    elif root is not None and root in incident.affected_ci_ids:
        reasons.append(f"affected CI {names.get(root, root)} is its root CI")
    kind, _, value = problem.signature.partition(":")
    if kind == "ci" and value != root and value in incident.ci_ids():
        reasons.append(f"recurs on {names.get(value, value)}")
    if kind == "alert" and signature is not None and value == signature:
        reasons.append(f"same alert signature {signature}")
    return "; ".join(reasons)
