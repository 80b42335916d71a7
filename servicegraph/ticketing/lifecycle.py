"""Lifecycles as data: the states of a ticket (or a change) and the steps between them.

Why data: desks differ in what their statuses mean and in who may move a ticket where
(GLPI keeps a per-profile status matrix, Znuny lets an admin edit the change state
machine, iTop declares each lifecycle in XML). A lifecycle declared as a mapping, as
loaded from YAML, lets a deployment tune it without code, and lets one small evaluator
serve tickets now and changes later. The evaluator is pure: it answers "may this kind of
actor take this step now, and with which fields?" and raises otherwise; the ticket
service applies the step and logs it.

Declaration shape (every name is lower case letters, digits and underscores)::

    initial: new
    actors: [agent, requester, system]     # optional; these three by default
    states:
      new:                                 # nothing to say about a plain state
      closed: {final: true}                # final: no step leaves it
    transitions:
      pend:
        from: [assigned, in_progress]      # one state or a list
        to: pending                        # or a list: the first is taken when the step
                                           # is asked for by name, the others by status
        actors: [agent]
        requires: {pending_reason: [awaiting_requester, awaiting_vendor]}  # or [field]
      reopen:
        from: resolved
        to: [assigned, in_progress]
        actors: [agent, requester, system]
        requires: [reason]
        windowed: true                     # only within the reopen window

The declaration is refused, naming the field path (``lifecycle.transitions.pend.to``),
when a transition names an unknown state or actor, there is no initial state, a state
cannot be reached from the initial one, a state that is not final has no way out, a final
one has, or two steps lead from one state to the same status (asking for a status must
name one step). A step name may not also be a status, for the same reason.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.errors import InvalidState


class TicketStatus(enum.StrEnum):
    """The statuses of the desk's default ticket lifecycle (``DEFAULT_TICKET_LIFECYCLE``)."""

    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    PENDING = "pending"  # SLA clocks pause here; the reason says on whom the ticket waits
    RESOLVED = "resolved"  # the requester may still reopen it, within the reopen window
    CLOSED = "closed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        """Still being worked (not resolved, closed or cancelled): what "open" means in
        queues, in correlation and in counts."""
        return self in _ACTIVE


_ACTIVE = frozenset(
    {TicketStatus.NEW, TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS, TicketStatus.PENDING}
)
ACTIVE_STATUSES: tuple[str, ...] = tuple(sorted(s.value for s in _ACTIVE))


class PendingReason(enum.StrEnum):
    """Why a ticket waits: the value ``pend`` requires in its ``pending_reason`` field."""

    AWAITING_REQUESTER = "awaiting_requester"
    AWAITING_VENDOR = "awaiting_vendor"
    AWAITING_CHANGE = "awaiting_change"


class ActorKind(enum.StrEnum):
    """Who takes a step, as coarse kinds: roles and permissions are ``access``'s business."""

    AGENT = "agent"
    REQUESTER = "requester"
    SYSTEM = "system"  # correlation, routing, the auto-close job


# How long after resolution a ticket may still be reopened, unless the caller says otherwise.
DEFAULT_REOPEN_WINDOW = dt.timedelta(days=7)

_OPEN = ["new", "assigned", "in_progress", "pending"]
_ANYONE = ["agent", "requester", "system"]

# The desk's ticket lifecycle. System steps: routing assigns, correlation resolves an
# incident whose alerts are all clear and reopens it when they fire again, the auto-close
# job closes. A requester resumes by answering, closes by accepting the solution, cancels
# what they asked for. Reassigning is assign from assigned or in_progress. Reopen goes back
# to the assignee's queue (assigned) by default, to in_progress when asked for by status,
# and to new when nobody is assigned (a monitoring incident only its group holds).
# fmt: off
DEFAULT_TICKET_LIFECYCLE: dict[str, Any] = {
    "initial": "new",
    "actors": _ANYONE,
    "states": {
        "new": None, "assigned": None, "in_progress": None, "pending": None, "resolved": None,
        "closed": {"final": True}, "cancelled": {"final": True},
    },
    "transitions": {
        "assign": {"from": ["new", "assigned", "in_progress"], "to": "assigned",
                   "actors": ["agent", "system"]},
        "start": {"from": ["assigned"], "to": "in_progress", "actors": ["agent"]},
        "pend": {"from": ["assigned", "in_progress"], "to": "pending", "actors": ["agent"],
                 "requires": {"pending_reason": [reason.value for reason in PendingReason]}},
        "resume": {"from": ["pending"], "to": "in_progress", "actors": _ANYONE},
        "resolve": {"from": _OPEN, "to": "resolved", "actors": ["agent", "system"],
                    "requires": ["resolution_code"]},
        "close": {"from": ["resolved"], "to": "closed", "actors": _ANYONE,
                  "requires": ["close_code"]},
        "cancel": {"from": _OPEN, "to": "cancelled", "actors": ["agent", "requester"],
                   "requires": ["reason"]},
        "reopen": {"from": ["resolved"], "to": ["assigned", "in_progress", "new"],
                   "actors": _ANYONE, "requires": ["reason"], "windowed": True},
    },
}
# fmt: on

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_STATE_KEYS = {"final"}
_TRANSITION_KEYS = {"from", "to", "actors", "requires", "windowed"}
_ROOT_KEYS = {"initial", "actors", "states", "transitions"}


@dataclass(frozen=True, slots=True)
class Requirement:
    """A field a step needs, non-blank, and when ``choices`` is set, one of them."""

    field: str
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """One step to one target. A declared step with several targets gives one per target,
    sharing the name; ``default`` marks the one taken when the step is asked for by name."""

    name: str
    sources: frozenset[str]
    target: str
    actors: frozenset[str]
    requires: tuple[Requirement, ...] = ()
    windowed: bool = False
    default: bool = True


class StateMachine:
    """A validated lifecycle; build it with ``StateMachine.load`` (or the module's ``load``)."""

    def __init__(
        self,
        initial: str,
        states: Mapping[str, bool],
        transitions: Iterable[Transition],
        actor_kinds: Iterable[str],
    ) -> None:
        self.initial = initial
        self._final = {name for name, final in states.items() if final}
        self.states: tuple[str, ...] = tuple(states)
        self.transitions: tuple[Transition, ...] = tuple(transitions)
        self.actor_kinds: frozenset[str] = frozenset(actor_kinds)
        self._names = {t.name for t in self.transitions}

    @classmethod
    def load(cls, declaration: Mapping[str, Any], *, path: str = "lifecycle") -> StateMachine:
        """Validate ``declaration`` (shape in the module docstring) and build the machine;
        ``path`` prefixes the field paths that errors name."""
        root = _mapping(declaration, path)
        _no_unknown_keys(root, _ROOT_KEYS, path)
        actors = _names(root.get("actors", [k.value for k in ActorKind]), f"{path}.actors")
        states = _parse_states(root.get("states"), f"{path}.states")
        if root.get("initial") is None:
            raise ValidationFailed("no initial state; name one", field=f"{path}.initial")
        initial = _known(root["initial"], states, f"{path}.initial", "state")
        specs = _mapping(root.get("transitions"), f"{path}.transitions")
        transitions: list[Transition] = []
        for name, spec in specs.items():
            field = f"{path}.transitions.{name}"
            _check_name(name, field)
            if name in states:
                raise ValidationFailed(
                    "is also a status; a step asked for by name or by status must be one step",
                    field=field,
                )
            transitions.extend(_parse_transition(name, spec, field, states, set(actors)))
        _check_graph(initial, states, transitions, path)
        return cls(initial, states, transitions, actors)

    def is_final(self, state: str) -> bool:
        return state in self._final

    def allowed(
        self,
        current: str,
        actor_kind: str,
        *,
        resolved_at: dt.datetime | None = None,
        now: dt.datetime | None = None,
        reopen_window: dt.timedelta = DEFAULT_REOPEN_WINDOW,
    ) -> tuple[Transition, ...]:
        """The steps ``actor_kind`` may take from ``current``, one per target, in declared
        order. Windowed steps (reopen) are left out once the window has passed, and kept
        when ``resolved_at`` or ``now`` is not given, since then nothing says it has."""
        _known(current, self.states, "status", "status")
        _known(actor_kind, sorted(self.actor_kinds), "actor_kind", "actor kind")
        return tuple(
            t
            for t in self.transitions
            if current in t.sources
            and actor_kind in t.actors
            and not (t.windowed and _window_over(resolved_at, now, reopen_window))
        )

    def allowed_names(
        self,
        current: str,
        actor_kind: str,
        *,
        resolved_at: dt.datetime | None = None,
        now: dt.datetime | None = None,
        reopen_window: dt.timedelta = DEFAULT_REOPEN_WINDOW,
    ) -> tuple[str, ...]:
        """``allowed`` as step names, each once (what a client shows as buttons)."""
        steps = self.allowed(
            current, actor_kind, resolved_at=resolved_at, now=now, reopen_window=reopen_window
        )
        return tuple(dict.fromkeys(t.name for t in steps))

    def check(
        self,
        current: str,
        step: str,
        actor_kind: str,
        fields: Mapping[str, object] | None = None,
        *,
        ticket_id: str = "",
        resolved_at: dt.datetime | None = None,
        now: dt.datetime | None = None,
        reopen_window: dt.timedelta = DEFAULT_REOPEN_WINDOW,
    ) -> Transition:
        """The transition that takes ``step`` (a step name, or a target status) from
        ``current`` for ``actor_kind``, with ``fields`` holding what it requires.

        Raises ``InvalidState`` when the state, the actor's kind or the reopen window
        (``now`` past ``resolved_at + reopen_window``) refuses the step, naming the steps
        allowed instead; ``ValidationFailed`` naming the field when a required field is
        missing, blank or not one of its choices, or when ``current``, ``step`` or
        ``actor_kind`` is unknown. A windowed step needs ``resolved_at`` and ``now``.
        """
        _known(current, self.states, "status", "status")
        _known(actor_kind, sorted(self.actor_kinds), "actor_kind", "actor kind")
        candidates = self._candidates(current, step)

        def refuse(detail: str | None = None) -> InvalidState:
            allowed = self.allowed_names(
                current, actor_kind, resolved_at=resolved_at, now=now, reopen_window=reopen_window
            )
            return InvalidState(
                current,
                step,
                allowed,
                ticket_id=ticket_id,
                actor_kind=actor_kind,
                detail=detail,
                as_status=step in self.states,
            )

        if not candidates:
            raise refuse()
        taken = [t for t in candidates if actor_kind in t.actors]
        if not taken:
            who = ", ".join(sorted(candidates[0].actors))
            raise refuse(f"only {who} may")
        transition = taken[0]
        if transition.windowed:
            if resolved_at is None or now is None:
                raise ValueError(f"'{transition.name}' is windowed: pass resolved_at and now")
            if _window_over(resolved_at, now, reopen_window):
                ended = (resolved_at + reopen_window).isoformat()
                raise refuse(f"the {_span(reopen_window)} reopen window ended at {ended}")
        _check_fields(transition, fields or {})
        return transition

    def _candidates(self, current: str, step: str) -> list[Transition]:
        if step in self._names:
            return [
                t for t in self.transitions if t.name == step and t.default and current in t.sources
            ]
        if step in self.states:
            return [t for t in self.transitions if t.target == step and current in t.sources]
        raise ValidationFailed(
            f"unknown step '{step}'; steps: {', '.join(sorted(self._names))}; "
            f"statuses: {', '.join(self.states)}",
            field="transition",
        )


def load(declaration: Mapping[str, Any] | None = None, *, path: str = "lifecycle") -> StateMachine:
    """The lifecycle ``declaration`` configures, or the desk's default ticket lifecycle."""
    return StateMachine.load(
        DEFAULT_TICKET_LIFECYCLE if declaration is None else declaration, path=path
    )


def auto_close_due(resolved_at: dt.datetime, now: dt.datetime, auto_close_days: int | None) -> bool:
    """Whether a resolved ticket is due for the auto-close job (GLPI's "administrative
    closure"): ``auto_close_days`` calendar days (not business days: the requester's silence
    is what counts) after ``resolved_at``; 0 closes at once, ``None`` never."""
    if auto_close_days is None:
        return False
    if isinstance(auto_close_days, bool) or auto_close_days < 0:
        raise ValidationFailed(
            "must be a number of days, 0 or more (or empty: never)", field="auto_close_days"
        )
    return now >= resolved_at + dt.timedelta(days=auto_close_days)


def _window_over(
    resolved_at: dt.datetime | None, now: dt.datetime | None, window: dt.timedelta
) -> bool:
    return resolved_at is not None and now is not None and now > resolved_at + window


def _span(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    units = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
    unit, size = next((unit, size) for unit, size in units if seconds % size == 0)
    return f"{seconds // size}-{unit}"


def _known(value: object, known: Iterable[str], field: str, noun: str) -> str:
    names = list(known)
    if value not in names:
        raise ValidationFailed(f"unknown {noun} {value!r}; known: {', '.join(names)}", field=field)
    return str(value)


def _check_fields(transition: Transition, fields: Mapping[str, object]) -> None:
    for need in transition.requires:
        value = fields.get(need.field)
        one_of = f" (one of {', '.join(need.choices)})" if need.choices else ""
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValidationFailed(
                f"'{transition.name}' needs {need.field}{one_of}", field=need.field
            )
        if need.choices is not None and value not in need.choices:
            raise ValidationFailed(
                f"must be one of {', '.join(need.choices)}, not {value!r}", field=need.field
            )


def _mapping(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not value:
        raise ValidationFailed("must be a non-empty mapping", field=field)
    return value


def _no_unknown_keys(spec: Mapping[str, Any], known: set[str], field: str) -> None:
    unknown = set(spec) - known
    if unknown:
        raise ValidationFailed(
            f"unknown keys {sorted(map(str, unknown))}; use {', '.join(sorted(known))}",
            field=field,
        )


def _check_name(name: object, field: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationFailed(
            f"{name!r} is not a name: lower case letters, digits and underscores", field=field
        )
    return name


def _names(value: object, field: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValidationFailed("must be a name or a non-empty list of names", field=field)
    return tuple(dict.fromkeys(_check_name(item, field) for item in items))


def _parse_states(value: object, field: str) -> dict[str, bool]:
    states: dict[str, bool] = {}
    for name, spec in _mapping(value, field).items():
        _check_name(name, field)
        spec = {} if spec is None else spec
        if not isinstance(spec, Mapping):
            raise ValidationFailed("must be empty or a mapping", field=f"{field}.{name}")
        _no_unknown_keys(spec, _STATE_KEYS, f"{field}.{name}")
        final = spec.get("final", False)
        if not isinstance(final, bool):
            raise ValidationFailed("must be true or false", field=f"{field}.{name}.final")
        states[name] = final
    return states


def _parse_transition(
    name: str, spec: object, field: str, states: Mapping[str, bool], actors: set[str]
) -> list[Transition]:
    body = _mapping(spec, field)
    _no_unknown_keys(body, _TRANSITION_KEYS, field)
    for key in ("from", "to", "actors"):
        if key not in body:
            raise ValidationFailed(f"'{name}' needs '{key}'", field=f"{field}.{key}")
    ends: dict[str, tuple[str, ...]] = {}
    for key in ("from", "to"):
        names = _names(body[key], f"{field}.{key}")
        ends[key] = tuple(_known(state, states, f"{field}.{key}", "state") for state in names)
    names = _names(body["actors"], f"{field}.actors")
    who = [_known(actor, sorted(actors), f"{field}.actors", "actor kind") for actor in names]
    windowed = body.get("windowed", False)
    if not isinstance(windowed, bool):
        raise ValidationFailed("must be true or false", field=f"{field}.windowed")
    requires = _parse_requires(body.get("requires", []), f"{field}.requires")
    return [
        Transition(
            name, frozenset(ends["from"]), target, frozenset(who), requires, windowed, i == 0
        )
        for i, target in enumerate(ends["to"])
    ]


def _parse_requires(value: object, field: str) -> tuple[Requirement, ...]:
    if isinstance(value, list | tuple):
        return tuple(Requirement(_check_name(item, field)) for item in value)
    if not isinstance(value, Mapping):
        raise ValidationFailed("must be a list of fields or a mapping field: choices", field=field)
    needs: list[Requirement] = []
    for name, choices in value.items():
        _check_name(name, field)
        if choices is None:
            needs.append(Requirement(name))
            continue
        if not isinstance(choices, list | tuple) or not choices:
            raise ValidationFailed("must be empty or a list of choices", field=f"{field}.{name}")
        if not all(isinstance(c, str) and c for c in choices):
            raise ValidationFailed("choices must be non-empty strings", field=f"{field}.{name}")
        needs.append(Requirement(name, tuple(dict.fromkeys(choices))))
    return tuple(needs)


def _check_graph(
    initial: str, states: Mapping[str, bool], transitions: list[Transition], path: str
) -> None:
    """Every state reachable, every non-final state with a way out, no way out of a final
    one, and at most one step from a state to a status."""
    through: dict[tuple[str, str], str] = {}
    for t in transitions:
        for source in sorted(t.sources):
            if states[source]:
                raise ValidationFailed(
                    f"leaves final state '{source}'", field=f"{path}.transitions.{t.name}.from"
                )
            other = through.setdefault((source, t.target), t.name)
            if other != t.name:
                raise ValidationFailed(
                    f"'{other}' already leads from '{source}' to '{t.target}'; "
                    "asking for a status must name one step",
                    field=f"{path}.transitions.{t.name}.to",
                )
    reached, frontier = {initial}, [initial]
    while frontier:
        state = frontier.pop()
        for t in transitions:
            if state in t.sources and t.target not in reached:
                reached.add(t.target)
                frontier.append(t.target)
    for state, final in states.items():
        if state not in reached:
            raise ValidationFailed(
                f"cannot be reached from the initial state '{initial}'",
                field=f"{path}.states.{state}",
            )
        if not final and not any(state in t.sources for t in transitions):
            raise ValidationFailed(
                "no step leaves it; add one or mark it final: true",
                field=f"{path}.states.{state}",
            )
