"""Lifecycles as data: the desk's default ticket lifecycle, step by step, refusals that name
the state and the allowed steps, declarations refused naming the field path, and a change
lifecycle declared from a mapping and walked with the same machine."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.errors import InvalidState, InvalidTransition, TicketingError
from servicegraph.ticketing.lifecycle import (
    DEFAULT_REOPEN_WINDOW,
    DEFAULT_TICKET_LIFECYCLE,
    ActorKind,
    PendingReason,
    StateMachine,
    TicketStatus,
    auto_close_due,
    load,
)

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
MACHINE = load()

# Every path of the default lifecycle: (step, from, to, actor, fields).
PATHS = [
    ("assign", "new", "assigned", "agent", {}),
    ("assign", "new", "assigned", "system", {}),  # routing
    ("assign", "assigned", "assigned", "agent", {}),  # reassign
    ("assign", "in_progress", "assigned", "agent", {}),  # reassign while worked
    ("start", "assigned", "in_progress", "agent", {}),
    ("pend", "assigned", "pending", "agent", {"pending_reason": "awaiting_vendor"}),
    ("pend", "in_progress", "pending", "agent", {"pending_reason": PendingReason.AWAITING_CHANGE}),
    ("resume", "pending", "in_progress", "requester", {}),  # the requester answered
    ("resume", "pending", "in_progress", "agent", {}),
    ("resume", "pending", "in_progress", "system", {}),
    ("resolve", "new", "resolved", "system", {"resolution_code": "alerts_cleared"}),
    ("resolve", "assigned", "resolved", "agent", {"resolution_code": "fixed"}),
    ("resolve", "in_progress", "resolved", "agent", {"resolution_code": "fixed"}),
    ("resolve", "pending", "resolved", "agent", {"resolution_code": "workaround"}),
    ("close", "resolved", "closed", "agent", {"close_code": "solved"}),
    ("close", "resolved", "closed", "requester", {"close_code": "accepted"}),
    ("close", "resolved", "closed", "system", {"close_code": "auto_closed"}),
    ("cancel", "new", "cancelled", "requester", {"reason": "no longer needed"}),
    ("cancel", "assigned", "cancelled", "agent", {"reason": "duplicate"}),
    ("cancel", "in_progress", "cancelled", "agent", {"reason": "duplicate"}),
    ("cancel", "pending", "cancelled", "requester", {"reason": "bought one myself"}),
    ("reopen", "resolved", "assigned", "requester", {"reason": "still broken"}),
    ("reopen", "resolved", "assigned", "system", {"reason": "alert fired again"}),
    ("reopen", "resolved", "assigned", "agent", {"reason": "wrong fix"}),
]


@pytest.mark.parametrize(("step", "current", "target", "actor", "fields"), PATHS)
def test_every_path_by_name(step: str, current: str, target: str, actor: str, fields: Any) -> None:
    taken = MACHINE.check(current, step, actor, fields, resolved_at=T0, now=T0)
    assert (taken.name, taken.target) == (step, target)
    assert step in MACHINE.allowed_names(current, actor)


@pytest.mark.parametrize(("step", "current", "target", "actor", "fields"), PATHS)
def test_every_path_by_target_status(
    step: str, current: str, target: str, actor: str, fields: Any
) -> None:
    taken = MACHINE.check(current, target, actor, fields, resolved_at=T0, now=T0)
    assert (taken.name, taken.target) == (step, target)


def test_reopen_to_in_progress_is_asked_for_by_status() -> None:
    taken = MACHINE.check(
        "resolved", "in_progress", "agent", {"reason": "x"}, resolved_at=T0, now=T0
    )
    assert (taken.name, taken.target, taken.default) == ("reopen", "in_progress", False)
    # by name it goes back to the assignee's queue
    assert (
        MACHINE.check("resolved", "reopen", "agent", {"reason": "x"}, resolved_at=T0, now=T0).target
        == "assigned"
    )


def test_every_declared_path_is_in_the_table() -> None:
    declared = {(t.name, s, t.target) for t in MACHINE.transitions for s in t.sources}
    tested = {(step, current, target) for step, current, target, _, _ in PATHS}
    # the test above, and the one below
    assert declared - tested == {
        ("reopen", "resolved", "in_progress"),
        ("reopen", "resolved", "new"),
    }


def test_reopen_to_new_when_nobody_holds_the_ticket() -> None:
    taken = MACHINE.check("resolved", "new", "system", {"reason": "x"}, resolved_at=T0, now=T0)
    assert (taken.name, taken.target) == ("reopen", "new")


def test_statuses_and_actors_match_the_enums() -> None:
    assert set(MACHINE.states) == set(TicketStatus)
    assert MACHINE.initial == TicketStatus.NEW
    assert MACHINE.actor_kinds == set(ActorKind)
    assert [s for s in MACHINE.states if MACHINE.is_final(s)] == ["closed", "cancelled"]
    pend = next(t for t in MACHINE.transitions if t.name == "pend")
    assert pend.requires[0].choices == tuple(PendingReason)


@pytest.mark.parametrize(
    ("current", "step", "actor", "allowed", "text"),
    [
        (
            "resolved",
            "start",
            "agent",
            ("close", "reopen"),
            "ticket inc-3 is resolved: cannot start; allowed: close, reopen",
        ),
        ("new", "start", "agent", ("assign", "resolve", "cancel"), "cannot start"),
        ("pending", "pend", "agent", ("resume", "resolve", "cancel"), "cannot pend"),
        ("closed", "reopen", "requester", (), "allowed: none"),
        ("cancelled", "assign", "agent", (), "is cancelled"),
        (
            "assigned",
            "closed",
            "agent",
            ("assign", "start", "pend", "resolve", "cancel"),
            "cannot move to closed",
        ),
        (
            "new",
            "in_progress",
            "agent",
            ("assign", "resolve", "cancel"),
            "cannot move to in_progress",
        ),
        # the actor's kind refuses: the message says who may
        (
            "in_progress",
            "resolve",
            "requester",
            ("cancel",),
            "cannot resolve (only agent, system may); allowed: cancel",
        ),
        ("assigned", "start", "system", ("assign", "resolve"), "(only agent may)"),
        ("new", "cancel", "system", ("assign", "resolve"), "(only agent, requester may)"),
        ("in_progress", "pend", "requester", ("cancel",), "cannot pend (only agent may)"),
    ],
)
def test_refused_steps_name_state_step_and_allowed(
    current: str, step: str, actor: str, allowed: tuple[str, ...], text: str
) -> None:
    fields = {
        "reason": "r",
        "resolution_code": "c",
        "close_code": "c",
        "pending_reason": "awaiting_vendor",
    }
    with pytest.raises(InvalidState) as info:
        MACHINE.check(current, step, actor, fields, ticket_id="inc-3", resolved_at=T0, now=T0)
    err = info.value
    assert (err.current, err.requested, err.allowed, err.actor_kind) == (
        current,
        step,
        allowed,
        actor,
    )
    assert err.ticket_id == "inc-3"
    assert text in str(err)
    # what entry points already translate (GraphQL INVALID_STATE)
    assert isinstance(err, InvalidTransition) and isinstance(err, TicketingError)


@pytest.mark.parametrize(
    ("step", "current", "fields", "field", "text"),
    [
        (
            "pend",
            "assigned",
            {},
            "pending_reason",
            "'pend' needs pending_reason (one of awaiting_requester",
        ),
        ("pend", "assigned", {"pending_reason": "lunch"}, "pending_reason", "not 'lunch'"),
        ("pend", "in_progress", {"pending_reason": None}, "pending_reason", "needs"),
        ("resolve", "in_progress", {}, "resolution_code", "'resolve' needs resolution_code"),
        ("resolve", "new", {"resolution_code": "   "}, "resolution_code", "needs"),
        ("close", "resolved", {"reason": "x"}, "close_code", "'close' needs close_code"),
        ("cancel", "new", {"close_code": "x"}, "reason", "'cancel' needs reason"),
        ("reopen", "resolved", {"reason": ""}, "reason", "'reopen' needs reason"),
        ("in_progress", "resolved", {}, "reason", "needs reason"),  # reopen asked for by status
    ],
)
def test_missing_required_fields_name_the_field(
    step: str, current: str, fields: dict[str, object], field: str, text: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        MACHINE.check(current, step, "agent", fields, resolved_at=T0, now=T0)
    assert info.value.field == field
    assert text in str(info.value)


@pytest.mark.parametrize(
    ("current", "step", "actor", "field"),
    [
        ("open", "start", "agent", "status"),
        ("new", "escalate", "agent", "transition"),
        ("new", "assign", "robot", "actor_kind"),
    ],
)
def test_unknown_names_are_validation_errors(
    current: str, step: str, actor: str, field: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        MACHINE.check(current, step, actor, {})
    assert info.value.field == field


@pytest.mark.parametrize(
    ("since_resolved", "window", "ok"),
    [
        (dt.timedelta(0), DEFAULT_REOPEN_WINDOW, True),
        (DEFAULT_REOPEN_WINDOW, DEFAULT_REOPEN_WINDOW, True),  # the last moment still counts
        (DEFAULT_REOPEN_WINDOW + dt.timedelta(seconds=1), DEFAULT_REOPEN_WINDOW, False),
        (dt.timedelta(minutes=29), dt.timedelta(minutes=30), True),  # correlation's window
        (dt.timedelta(minutes=31), dt.timedelta(minutes=30), False),
    ],
)
def test_reopen_only_within_the_window(
    since_resolved: dt.timedelta, window: dt.timedelta, ok: bool
) -> None:
    now = T0 + since_resolved
    kwargs: dict[str, Any] = {"resolved_at": T0, "now": now, "reopen_window": window}
    assert ("reopen" in MACHINE.allowed_names("resolved", "requester", **kwargs)) is ok
    if ok:
        assert (
            MACHINE.check("resolved", "reopen", "requester", {"reason": "x"}, **kwargs).name
            == "reopen"
        )
        return
    with pytest.raises(InvalidState) as info:
        MACHINE.check(
            "resolved", "reopen", "requester", {"reason": "x"}, ticket_id="inc-9", **kwargs
        )
    assert info.value.allowed == ("close",)
    assert "reopen window ended at" in str(info.value)
    assert (T0 + window).isoformat() in str(info.value)


def test_windowed_step_without_times_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="resolved_at and now"):
        MACHINE.check("resolved", "reopen", "agent", {"reason": "x"})
    # allowed cannot tell without them, so it keeps the step (check still enforces it)
    assert "reopen" in MACHINE.allowed_names("resolved", "agent")


def test_allowed_lists_transitions_per_target_for_the_actor() -> None:
    steps = MACHINE.allowed("resolved", "requester", resolved_at=T0, now=T0)
    assert [(t.name, t.target) for t in steps] == [
        ("close", "closed"),
        ("reopen", "assigned"),
        ("reopen", "in_progress"),
        ("reopen", "new"),
    ]
    assert MACHINE.allowed_names("new", "requester") == ("cancel",)
    assert MACHINE.allowed_names("closed", "agent") == ()


@pytest.mark.parametrize(
    ("after", "days", "due"),
    [
        (dt.timedelta(days=6, hours=23), 7, False),
        (dt.timedelta(days=7), 7, True),
        (dt.timedelta(days=30), 7, True),
        (dt.timedelta(0), 0, True),  # 0: close on resolve
        (dt.timedelta(days=365), None, False),  # None: never
    ],
)
def test_auto_close_due(after: dt.timedelta, days: int | None, due: bool) -> None:
    assert auto_close_due(T0, T0 + after, days) is due


@pytest.mark.parametrize("days", [-1, True])
def test_auto_close_days_must_be_whole_days(days: int) -> None:
    with pytest.raises(ValidationFailed) as info:
        auto_close_due(T0, T0, days)
    assert info.value.field == "auto_close_days"


DROP = object()


def _edit(*edits: tuple[str, object]) -> dict[str, Any]:
    """The default declaration with ``("a.b.c", value)`` set, or dropped for ``DROP``."""
    declaration = copy.deepcopy(DEFAULT_TICKET_LIFECYCLE)
    for where, value in edits:
        *parents, key = where.split(".")
        node = declaration
        for part in parents:
            node = node[part]
        if value is DROP:
            del node[key]
        else:
            node[key] = value
    return declaration


PARK = {"from": "in_progress", "to": "parked", "actors": "agent"}
FINISH = {"from": "in_progress", "to": "resolved", "actors": "agent"}


@pytest.mark.parametrize(
    ("edits", "field", "text"),
    [
        ([("initial", DROP)], "initial", "no initial state"),
        ([("initial", "open")], "initial", "unknown state 'open'"),
        ([("transitions.start.to", "working")], "transitions.start.to", "'working'"),
        (
            [("transitions.pend.from", ["assigned", "waiting"])],
            "transitions.pend.from",
            "'waiting'",
        ),
        (
            [("transitions.start.actors", ["robot"])],
            "transitions.start.actors",
            "unknown actor kind 'robot'",
        ),
        ([("transitions.start.actors", DROP)], "transitions.start.actors", "needs 'actors'"),
        ([("transitions.start.when", "always")], "transitions.start", "unknown keys ['when']"),
        ([("transitions.reopen.windowed", "yes")], "transitions.reopen.windowed", "true or false"),
        (
            [("transitions.pend.requires", {"pending_reason": []})],
            "transitions.pend.requires.pending_reason",
            "list of choices",
        ),
        (
            [("transitions.pend.requires", "pending_reason")],
            "transitions.pend.requires",
            "list of fields",
        ),
        (
            [("states.escalated", None)],
            "states.escalated",
            "cannot be reached from the initial state 'new'",
        ),
        ([("states.resolved", {"final": "no"})], "states.resolved.final", "true or false"),
        ([("states.closed", {"terminal": True})], "states.closed", "unknown keys"),
        (
            [("states.parked", None), ("transitions.park", PARK)],
            "states.parked",
            "no step leaves it",
        ),
        (
            [("transitions.reopen.from", ["resolved", "closed"])],
            "transitions.reopen.from",
            "leaves final state 'closed'",
        ),
        (
            [("transitions.finish", FINISH)],
            "transitions.finish.to",
            "'resolve' already leads from 'in_progress' to 'resolved'",
        ),
        ([("transitions.pending", PARK)], "transitions.pending", "is also a status"),
        ([("transitions.Start Work", FINISH)], "transitions.Start Work", "not a name"),
        ([("transitions", {})], "transitions", "non-empty mapping"),
        ([("version", 2)], "", "unknown keys ['version']"),
        ([("actors", [])], "actors", "non-empty list"),
    ],
)
def test_bad_declarations_name_the_field_path(
    edits: list[tuple[str, object]], field: str, text: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        load(_edit(*edits))
    assert info.value.field == f"lifecycle.{field}".rstrip(".")
    assert text in str(info.value)


def test_the_path_prefix_is_the_callers() -> None:
    with pytest.raises(ValidationFailed) as info:
        load(_edit(("initial", DROP)), path="desk.lifecycles.incident")
    assert info.value.field == "desk.lifecycles.incident.initial"


def test_a_configured_lifecycle_replaces_the_default() -> None:
    # a desk without a pending state
    declaration = _edit(
        ("states.pending", DROP),
        ("transitions.pend", DROP),
        ("transitions.resume", DROP),
        ("transitions.resolve.from", ["new", "assigned", "in_progress"]),
        ("transitions.cancel.from", ["new", "assigned", "in_progress"]),
    )
    machine = load(declaration)
    assert "pending" not in machine.states
    assert machine.allowed_names("in_progress", "agent") == ("assign", "resolve", "cancel")
    assert load() is not machine and "pending" in load().states  # the default is untouched


# The change lifecycle, declared the same way (ITIL normal change; Znuny's ITSMChange and
# iTop's normal change have the same shape): draft -> assessment -> approval -> scheduled ->
# implementing -> review -> closed, or failed, or cancelled on the way.
CHANGE_LIFECYCLE: dict[str, Any] = {
    "initial": "draft",
    "states": {
        "draft": None,
        "assessment": None,
        "approval": None,
        "scheduled": None,
        "implementing": None,
        "review": None,
        "closed": {"final": True},
        "failed": {"final": True},
        "cancelled": {"final": True},
    },
    "transitions": {
        "submit": {"from": "draft", "to": "assessment", "actors": ["agent", "requester"]},
        "assess": {"from": "assessment", "to": "approval", "actors": "agent", "requires": ["risk"]},
        "rework": {
            "from": ["assessment", "approval"],
            "to": "draft",
            "actors": "agent",
            "requires": ["reason"],
        },
        "approve": {
            "from": "approval",
            "to": "scheduled",
            "actors": "agent",
            "requires": ["approved_by"],
        },
        "implement": {"from": "scheduled", "to": "implementing", "actors": ["agent", "system"]},
        "complete": {
            "from": "implementing",
            "to": "review",
            "actors": "agent",
            "requires": {"outcome": ["successful", "backed_out"]},
        },
        "close": {"from": "review", "to": "closed", "actors": "agent", "requires": ["close_code"]},
        "fail": {
            "from": ["implementing", "review"],
            "to": "failed",
            "actors": "agent",
            "requires": ["reason"],
        },
        "cancel": {
            "from": ["draft", "assessment", "approval", "scheduled"],
            "to": "cancelled",
            "actors": ["agent", "requester"],
            "requires": ["reason"],
        },
    },
}


def test_change_lifecycle_from_a_mapping_is_walked_by_the_same_machine() -> None:
    machine = StateMachine.load(CHANGE_LIFECYCLE, path="change_lifecycle")
    walk = [
        ("submit", "requester", {}),
        ("assess", "agent", {"risk": "medium"}),
        ("rework", "agent", {"reason": "no backout plan"}),
        ("submit", "agent", {}),
        ("assess", "agent", {"risk": "low"}),
        ("approve", "agent", {"approved_by": "cab"}),
        ("implement", "system", {}),  # the scheduler starts it at the window
        ("complete", "agent", {"outcome": "successful"}),
        ("close", "agent", {"close_code": "successful"}),
    ]
    state = machine.initial
    visited = [state]
    for step, actor, fields in walk:
        state = machine.check(state, step, actor, fields, ticket_id="chg-1").target
        visited.append(state)
    assert visited == [
        "draft", "assessment", "approval", "draft", "assessment", "approval",
        "scheduled", "implementing", "review", "closed",
    ]  # fmt: skip
    assert machine.is_final(state) and machine.allowed_names(state, "agent") == ()


@pytest.mark.parametrize(
    ("current", "step", "actor", "fields", "error", "attr"),
    [
        ("draft", "approve", "agent", {"approved_by": "cab"}, InvalidState, ("submit", "cancel")),
        ("approval", "approve", "requester", {"approved_by": "me"}, InvalidState, ("cancel",)),
        ("implementing", "complete", "agent", {"outcome": "meh"}, ValidationFailed, "outcome"),
        ("implementing", "failed", "agent", {}, ValidationFailed, "reason"),
        ("assessment", "assess", "agent", {}, ValidationFailed, "risk"),
    ],
)
def test_change_lifecycle_refusals(
    current: str, step: str, actor: str, fields: Any, error: type[Exception], attr: Any
) -> None:
    machine = StateMachine.load(CHANGE_LIFECYCLE, path="change_lifecycle")
    with pytest.raises(error) as info:
        machine.check(current, step, actor, fields, ticket_id="chg-2")
    if isinstance(info.value, InvalidState):
        assert info.value.allowed == attr
        assert str(info.value).startswith(f"ticket chg-2 is {current}: cannot {step}")
    else:
        assert getattr(info.value, "field", None) == attr


def test_change_lifecycle_declaration_errors_use_its_path() -> None:
    broken = copy.deepcopy(CHANGE_LIFECYCLE)
    broken["transitions"]["approve"]["to"] = "approved"
    with pytest.raises(ValidationFailed) as info:
        StateMachine.load(broken, path="change_lifecycle")
    assert info.value.field == "change_lifecycle.transitions.approve.to"
