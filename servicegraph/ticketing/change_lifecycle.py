"""The change lifecycles, as data (``lifecycle.py``'s format and evaluator): one per change
type, since a standard change skips what makes a normal one safe.

- **normal**: draft -> assessment (the risk is computed from the graph) -> approval (the
  CAB: as many approvals as the risk asks) -> scheduled -> implementing -> review ->
  closed; failed from implementing or review; cancelled before implementation. A CAB
  rejection sends it back to draft; new CIs or a new window after assessment send it back
  to assessment, approvals withdrawn (the CAB approved another change).
- **emergency**: the same steps; one approval whatever the risk (``change_config``).
- **standard**: pre-approved from a template: draft -> scheduled -> implementing ->
  review -> closed, no CAB.

Steps people take are the ``agent``'s; ``schedule`` after approval, ``reject`` and
``reassess`` are the ``system``'s: the change service takes them when the CAB's decisions
or an edit call for them, so that nobody schedules a change the CAB has not approved.
Required fields are the change's own (``ChangeService`` passes them): a change goes to
the CAB with a window and its implementation and backout plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.change_model import ChangeStatus, ChangeType
from servicegraph.ticketing.lifecycle import StateMachine

# close codes of a change that did what it meant to (a problem it fixes may be resolved)
SUCCESSFUL_CLOSE_CODES = ("successful", "successful_with_issues")

_PLANNED = ["planned_start", "planned_end"]
_BEFORE_IMPLEMENTATION = ["draft", "assessment", "approval", "scheduled"]
_AFTER = {
    "start": {"from": "scheduled", "to": "implementing", "actors": ["agent"]},
    "complete": {"from": "implementing", "to": "review", "actors": ["agent"]},
    "close": {
        "from": "review",
        "to": "closed",
        "actors": ["agent"],
        "requires": {"close_code": list(SUCCESSFUL_CLOSE_CODES)},
    },
    "fail": {
        "from": ["implementing", "review"],
        "to": "failed",
        "actors": ["agent"],
        "requires": ["reason"],
    },
}
_STATES_AFTER = {"implementing": None, "review": None, "closed": {"final": True}}
_ENDS = {"failed": {"final": True}, "cancelled": {"final": True}}

# fmt: off
NORMAL_CHANGE_LIFECYCLE: dict[str, Any] = {
    "initial": "draft",
    "actors": ["agent", "system"],
    "states": {
        "draft": None, "assessment": None, "approval": None, "scheduled": None,
        **_STATES_AFTER, **_ENDS,
    },
    "transitions": {
        "assess": {"from": "draft", "to": "assessment", "actors": ["agent"]},
        "request_approval": {
            "from": "assessment", "to": "approval", "actors": ["agent"],
            "requires": [*_PLANNED, "implementation_plan", "backout_plan"],
        },
        "schedule": {"from": "approval", "to": "scheduled", "actors": ["system"]},
        "reject": {"from": "approval", "to": "draft", "actors": ["system"],
                   "requires": ["reason"]},
        "reassess": {"from": ["approval", "scheduled"], "to": "assessment",
                     "actors": ["system"], "requires": ["reason"]},
        **_AFTER,
        "cancel": {"from": _BEFORE_IMPLEMENTATION, "to": "cancelled", "actors": ["agent"],
                   "requires": ["reason"]},
    },
}

STANDARD_CHANGE_LIFECYCLE: dict[str, Any] = {
    "initial": "draft",
    "actors": ["agent", "system"],
    "states": {"draft": None, "scheduled": None, **_STATES_AFTER, **_ENDS},
    "transitions": {
        "schedule": {"from": "draft", "to": "scheduled", "actors": ["agent"],
                     "requires": [*_PLANNED, "template"]},
        **_AFTER,
        "cancel": {"from": ["draft", "scheduled"], "to": "cancelled", "actors": ["agent"],
                   "requires": ["reason"]},
    },
}
# fmt: on

DEFAULT_CHANGE_LIFECYCLES: dict[str, dict[str, Any]] = {
    ChangeType.NORMAL.value: NORMAL_CHANGE_LIFECYCLE,
    ChangeType.EMERGENCY.value: NORMAL_CHANGE_LIFECYCLE,
    ChangeType.STANDARD.value: STANDARD_CHANGE_LIFECYCLE,
}


def load_change_lifecycles(
    declarations: Mapping[str, Any] | None = None, *, path: str = "desk.changes.lifecycles"
) -> dict[ChangeType, StateMachine]:
    """One machine per change type: the built-in ones, each replaced by the declaration
    of its type when ``declarations`` has one. A declaration may only name the change
    statuses (``ChangeStatus``): they are what the calendar, conflicts and correlation
    understand."""
    given = dict(declarations or {})
    unknown = set(given) - {t.value for t in ChangeType}
    if unknown:
        raise ValidationFailed(
            f"unknown change types {sorted(unknown)}; use {', '.join(t.value for t in ChangeType)}",
            field=path,
        )
    known = {s.value for s in ChangeStatus}
    machines: dict[ChangeType, StateMachine] = {}
    for change_type in ChangeType:
        declaration = given.get(change_type.value, DEFAULT_CHANGE_LIFECYCLES[change_type.value])
        where = f"{path}.{change_type.value}"
        machine = StateMachine.load(declaration, path=where)
        for state in machine.states:
            if state not in known:
                raise ValidationFailed(
                    f"changes have the statuses {', '.join(sorted(known))}; "
                    "a lifecycle names some of them",
                    field=f"{where}.states.{state}",
                )
        machines[change_type] = machine
    return machines
