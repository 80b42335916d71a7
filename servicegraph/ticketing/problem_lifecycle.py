"""The problem lifecycle, as data (``lifecycle.py``'s format and evaluator), and the pure
step that moves a problem along it.

Default lifecycle (ITIL problem control, then error control)::

    step                from                          to             requires
    investigate         open                          investigating  assignee
    record_known_error  open, investigating           known_error    known_error
    resolve             open, investigating,          resolved       resolution
                        known_error
    close               resolved                      closed         -
    reopen              resolved                      investigating  reason
                                                      (or open)
    cancel              open, investigating,          closed         resolution
                        known_error

``cancel`` closes a problem that will not be fixed: a duplicate, one that cannot be
reproduced, a known error whose fix nobody will pay for; ``resolution`` says which (there
is no fixed list: "duplicate of PRB12" is worth more than a code). ``reopen`` is not
windowed, unlike a ticket's: a fix that did not hold shows when the incidents come back,
which may be months later. A closed problem is final. Steps are the ``agent``'s and the
``system``'s (a job, or the change service, acting for the desk).

A requirement holds when the step gives the field or the problem already has it: a
problem that has an assignee is investigated without naming one again, one whose error
was recorded before may go back to known error as it is. A field given to a step it does
not belong to (a resolution on ``investigate``) is refused, not dropped.

A deployment may declare its own lifecycle, naming only the problem statuses
(``ProblemStatus``): they are what the KEDB (known_error), the queues and the reports
understand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.errors import InvalidState
from servicegraph.ticketing.lifecycle import ActorKind, StateMachine, Transition
from servicegraph.ticketing.model import Problem, ProblemStatus, WorklogEntry, WorklogKind
from servicegraph.ticketing.tickets_work import entry

_ACTIVE = ["open", "investigating", "known_error"]
_ACTORS = ["agent", "system"]

# fmt: off
DEFAULT_PROBLEM_LIFECYCLE: dict[str, Any] = {
    "initial": "open",
    "actors": _ACTORS,
    "states": {
        "open": None, "investigating": None, "known_error": None, "resolved": None,
        "closed": {"final": True},
    },
    "transitions": {
        "investigate": {"from": ["open"], "to": "investigating", "actors": _ACTORS,
                        "requires": ["assignee"]},
        "record_known_error": {"from": ["open", "investigating"], "to": "known_error",
                               "actors": _ACTORS, "requires": ["known_error"]},
        "resolve": {"from": _ACTIVE, "to": "resolved", "actors": _ACTORS,
                    "requires": ["resolution"]},
        "close": {"from": ["resolved"], "to": "closed", "actors": _ACTORS},
        # to investigating by name; to open (asked by status) when nobody holds it
        "reopen": {"from": ["resolved"], "to": ["investigating", "open"], "actors": _ACTORS,
                   "requires": ["reason"]},
        "cancel": {"from": _ACTIVE, "to": "closed", "actors": _ACTORS,
                   "requires": ["resolution"]},
    },
}
# fmt: on


def load_problem_lifecycle(
    declaration: Mapping[str, Any] | None = None, *, path: str = "desk.problems.lifecycle"
) -> StateMachine:
    """The lifecycle ``declaration`` configures, or the default one; refused (naming the
    field path) when it is no valid lifecycle or names a status problems do not have."""
    machine = StateMachine.load(
        DEFAULT_PROBLEM_LIFECYCLE if declaration is None else declaration, path=path
    )
    known = {s.value for s in ProblemStatus}
    for state in machine.states:
        if state not in known:
            raise ValidationFailed(
                f"problems have the statuses {', '.join(sorted(known))}; "
                "a lifecycle names some of them",
                field=f"{path}.states.{state}",
            )
    return machine


@dataclass(frozen=True)
class ProblemStepFields:
    """What a step may carry (checked and trimmed by the caller); the lifecycle says which
    one it requires. ``reason`` is a note any step may carry, and what reopen requires."""

    assignee: str | None = None
    known_error: str | None = None
    workaround: str | None = None
    resolution: str | None = None
    reason: str | None = None


# the target statuses each field belongs to (``reason`` belongs to every step)
_FIELD_TARGETS: dict[str, tuple[ProblemStatus, ...]] = {
    "assignee": (ProblemStatus.INVESTIGATING,),
    "known_error": (ProblemStatus.KNOWN_ERROR,),
    "workaround": (ProblemStatus.KNOWN_ERROR,),
    "resolution": (ProblemStatus.RESOLVED, ProblemStatus.CLOSED),
}


def take_problem_step(
    machine: StateMachine,
    problem: Problem,
    step: str,
    fields: ProblemStepFields,
    *,
    actor: str,
    actor_kind: ActorKind,
    now: dt.datetime,
) -> list[WorklogEntry]:
    """Move ``problem`` by ``step`` (a step name or a target status) and log it: one entry
    for the step (TRANSITION, field status, old -> new; KNOWN_ERROR for the step into
    known_error, whose text is the error and its workaround, as the KEDB has always logged
    it), then one per other field the step changed (ASSIGNED for the assignee, CHANGED for
    the resolution; a reopened problem's resolution stays in its entry's old value).

    Raises ``InvalidState`` naming the steps allowed when the status or the actor's kind
    refuses the step ("already resolved since ..." when the problem is there), and
    ``ValidationFailed`` naming the field when a required one is missing, or one is given
    to a step it does not belong to. Nothing is changed then."""
    given = {k: v for k, v in vars(fields).items() if v is not None}
    held = {
        name: value
        for name, value in (("assignee", problem.assignee), ("known_error", problem.known_error))
        if value
    }
    transition = _checked(machine, problem, step, {**held, **given}, actor_kind)
    target = ProblemStatus(transition.target)
    for name, targets in _FIELD_TARGETS.items():
        if name in given and target not in targets:
            belongs = " or ".join(t.value for t in targets)
            raise ValidationFailed(
                f"'{transition.name}' moves the problem to {target}; {name} belongs to {belongs}",
                field=name,
            )
    if target is ProblemStatus.INVESTIGATING and not (fields.assignee or problem.assignee):
        raise ValidationFailed(
            f"nobody investigates it: name an assignee before it can be {target}",
            field="assignee",
        )
    old = problem.status
    log = [_step_entry(problem, transition, old, target, fields, now, actor)]
    log += _apply_target(problem, old, target, fields, now, actor)
    problem.status = target
    return log


def _checked(
    machine: StateMachine,
    problem: Problem,
    step: str,
    fields: Mapping[str, object],
    actor_kind: ActorKind,
) -> Transition:
    try:
        return machine.check(problem.status, step, actor_kind, fields, ticket_id=problem.id)
    except InvalidState as exc:
        target = next((t.target for t in machine.transitions if t.name == step), step)
        if target != problem.status or exc.detail:
            raise
        when = {
            ProblemStatus.RESOLVED: problem.resolved_at,
            ProblemStatus.CLOSED: problem.closed_at,
        }.get(problem.status)
        detail = f"already {problem.status}" + (f" since {when.isoformat()}" if when else "")
        raise InvalidState(
            exc.current, exc.requested, exc.allowed, ticket_id=problem.id,
            actor_kind=actor_kind, detail=detail, as_status=step in machine.states,
        ) from None  # fmt: skip


def _step_entry(
    problem: Problem,
    transition: Transition,
    old: ProblemStatus,
    target: ProblemStatus,
    fields: ProblemStepFields,
    now: dt.datetime,
    actor: str,
) -> WorklogEntry:
    if target is ProblemStatus.KNOWN_ERROR:
        error = fields.known_error or problem.known_error or ""
        workaround = fields.workaround or problem.workaround
        text = error + (f"\nworkaround: {workaround}" if workaround else "")
        kind = WorklogKind.KNOWN_ERROR
    else:
        notes = [n for n in (fields.reason, fields.resolution) if n]
        text = transition.name + (": " + " / ".join(notes) if notes else "")
        kind = WorklogKind.TRANSITION
    return entry(problem.id, now, actor, kind, text, field="status", old=old, new=target)


def _apply_target(
    problem: Problem,
    old: ProblemStatus,
    target: ProblemStatus,
    fields: ProblemStepFields,
    now: dt.datetime,
    actor: str,
) -> list[WorklogEntry]:
    """Set what entering ``target`` (and leaving ``old``) means, logging each field."""
    log: list[WorklogEntry] = []

    def put(name: str, value: str) -> None:
        before = getattr(problem, name)
        if before != value:
            shown = f"{name}: {before or '(none)'} -> {value or '(none)'}"
            log.append(
                entry(problem.id, now, actor, WorklogKind.CHANGED, shown, field=name,
                      old=before, new=value)
            )  # fmt: skip
            setattr(problem, name, value)

    if fields.assignee is not None and fields.assignee != problem.assignee:
        text = f"assigned to {fields.assignee}" + (
            f" (was {problem.assignee})" if problem.assignee else ""
        )
        log.append(
            entry(problem.id, now, actor, WorklogKind.ASSIGNED, text, field="assignee",
                  old=problem.assignee, new=fields.assignee)
        )  # fmt: skip
        problem.assignee = fields.assignee
    if target is ProblemStatus.KNOWN_ERROR:
        # the step's KNOWN_ERROR entry tells the texts; earlier ones are in earlier entries
        problem.known_error = fields.known_error or problem.known_error
        problem.workaround = fields.workaround or problem.workaround
    if target is ProblemStatus.RESOLVED:
        put("resolution", fields.resolution or "")
        problem.resolved_at = now
    elif old is ProblemStatus.RESOLVED and target is not ProblemStatus.CLOSED:
        put("resolution", "")  # reopened: the resolution it had stays in this entry
        problem.resolved_at = None
    if target is ProblemStatus.CLOSED:
        if old is not ProblemStatus.RESOLVED:  # cancelled: why it closes without a fix
            put("resolution", fields.resolution or "")
        elif fields.resolution:  # the final word on how it was resolved
            put("resolution", fields.resolution)
        problem.closed_at = now
    return log
