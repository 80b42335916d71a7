"""The ITIL priority matrix: impact x urgency gives a priority, 1 (highest) to 5 (lowest).

Why a module of its own: the desk computes a ticket's priority the same way whether a
person fills the form or correlation opens an incident, and an agent may override it only
with a reason that is logged (DESIGN.md §2); routing rules may also raise or cap it. One
pure function decides, so the ticket service, correlation and the routing evaluator agree.

The matrix is validated whole when loaded: all nine cells, each 1..5, and monotone
(raising impact or urgency never lowers the priority), so a typo in the settings file is
refused at start-up naming the cell (``priority_matrix.high.low``), not discovered when
a major outage is filed as P5.

Direction, once for all: a priority is a number and **1 is the highest**. "Higher
priority" means a smaller number; ``clamp``'s ``floor`` and ``ceiling`` are named for the
priority, not for the number (see there).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from servicegraph.cmdb.errors import ValidationFailed

HIGHEST = 1
LOWEST = 5


class Impact(enum.StrEnum):
    """How much of the business is affected (correlation derives it from the services hit)."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Urgency(enum.StrEnum):
    """How fast the business needs it back (correlation derives it from alert severity)."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


# The same cells as ``servicegraph.correlation.policy.DEFAULT_PRIORITY_MATRIX``, which is to
# import it from here; rows are impact, columns urgency.
DEFAULT_PRIORITY_MATRIX: dict[str, dict[str, int]] = {
    "high": {"high": 1, "medium": 2, "low": 3},
    "medium": {"high": 2, "medium": 3, "low": 4},
    "low": {"high": 3, "medium": 4, "low": 5},
}

_Level = TypeVar("_Level", Impact, Urgency)


@dataclass(frozen=True)
class PriorityMatrix:
    """A validated, complete impact x urgency matrix; build it with ``build`` or ``default``."""

    cells: Mapping[tuple[Impact, Urgency], int]

    @classmethod
    def build(cls, mapping: Mapping[str, Any], *, path: str = "priority_matrix") -> PriorityMatrix:
        """The matrix ``mapping`` declares (``{impact: {urgency: priority}}``, as in
        ``DEFAULT_PRIORITY_MATRIX``), refused naming the cell at fault under ``path``."""
        if not isinstance(mapping, Mapping):
            raise ValidationFailed("must map impact to {urgency: priority}", field=path)
        _exactly(mapping, Impact, path, "impact")
        cells: dict[tuple[Impact, Urgency], int] = {}
        for impact in Impact:
            row = mapping[impact.value]
            if not isinstance(row, Mapping):
                raise ValidationFailed("must map urgency to priority", field=f"{path}.{impact}")
            _exactly(row, Urgency, f"{path}.{impact}", "urgency")
            for urgency in Urgency:
                cells[impact, urgency] = check_priority(
                    row[urgency.value], f"{path}.{impact}.{urgency}"
                )
        _check_monotone(cells, path)
        return cls(MappingProxyType(cells))

    @classmethod
    def default(cls) -> PriorityMatrix:
        return cls.build(DEFAULT_PRIORITY_MATRIX)

    def priority(self, impact: Impact | str, urgency: Urgency | str) -> int:
        """The cell for ``impact`` and ``urgency``; unknown levels name ``impact``/``urgency``."""
        return self.cells[level(Impact, impact, "impact"), level(Urgency, urgency, "urgency")]

    def as_dict(self) -> dict[str, dict[str, int]]:
        """The matrix in the shape ``build`` takes (for settings dumps and the API)."""
        return {i.value: {u.value: self.cells[i, u] for u in Urgency} for i in Impact}


@dataclass(frozen=True, slots=True)
class PriorityDecision:
    """What priority a ticket gets and why: ``computed`` from the matrix, and ``priority``
    the one it gets, which differs only when ``overridden`` (then ``reason`` says why);
    ``by`` is who decided (an agent, or None for the desk itself)."""

    priority: int
    computed: int
    overridden: bool
    reason: str | None = None
    by: str | None = None


def decide(
    matrix: PriorityMatrix,
    impact: Impact | str,
    urgency: Urgency | str,
    override: int | None = None,
    reason: str | None = None,
    by: str | None = None,
) -> PriorityDecision:
    """The ticket's priority from ``impact`` x ``urgency``, or ``override`` with its reason.

    An override needs a non-blank ``reason`` (``ValidationFailed`` on ``priority_reason``)
    and must be 1..5 (on ``priority``). An override equal to the computed priority is no
    override: there is nothing to explain, and the ticket keeps following the matrix when
    impact or urgency change later.
    """
    impact, urgency = level(Impact, impact, "impact"), level(Urgency, urgency, "urgency")
    computed = matrix.priority(impact, urgency)
    why = reason.strip() if isinstance(reason, str) and reason.strip() else None
    if override is None:
        return PriorityDecision(computed, computed, False, why, by)
    chosen = check_priority(override, "priority")
    if chosen == computed:
        return PriorityDecision(computed, computed, False, why, by)
    if why is None:
        raise ValidationFailed(
            f"overriding priority {computed} (from {impact} impact x {urgency} urgency) "
            f"with {chosen} needs a reason",
            field="priority_reason",
        )
    return PriorityDecision(chosen, computed, True, why, by)


def clamp(priority: int, floor: int | None = None, ceiling: int | None = None) -> int:
    """``priority`` kept between ``floor`` and ``ceiling``, for routing rules.

    Both are priorities, and 1 is the highest: ``floor`` is the lowest priority allowed
    (the *largest* number: ``floor=3`` lifts a P4 or P5 to P3, "at least P3"), ``ceiling``
    the highest allowed (the *smallest* number: ``ceiling=2`` lowers a P1 to P2, "never
    above P2"). ``None`` leaves that side open. The ceiling may not be below the floor
    (``ceiling=4`` with ``floor=2``: ``ValidationFailed`` on ``ceiling``).
    """
    value = check_priority(priority, "priority")
    if floor is not None:
        value = min(value, check_priority(floor, "floor"))
    if ceiling is not None:
        ceiling = check_priority(ceiling, "ceiling")
        if floor is not None and ceiling > floor:
            raise ValidationFailed(
                f"ceiling P{ceiling} is a lower priority than floor P{floor} (1 is highest)",
                field="ceiling",
            )
        value = max(value, ceiling)
    return value


def check_priority(value: object, field: str) -> int:
    """``value`` as a priority 1..5, or ``ValidationFailed`` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int) or not HIGHEST <= value <= LOWEST:
        raise ValidationFailed(
            f"{value!r} is not a priority from {HIGHEST} (highest) to {LOWEST} (lowest)",
            field=field,
        )
    return value


def level(kind: type[_Level], value: object, field: str) -> _Level:
    """``value`` (any case, surrounding spaces ignored) as an impact or urgency level."""
    try:
        return kind(str(value).strip().lower())
    except ValueError:
        known = ", ".join(member.value for member in kind)
        raise ValidationFailed(f"{value!r} is not one of {known}", field=field) from None


def _exactly(
    mapping: Mapping[str, Any], kind: type[Impact] | type[Urgency], path: str, noun: str
) -> None:
    known = [member.value for member in kind]
    for key in mapping:
        if key not in known:
            raise ValidationFailed(
                f"unknown {noun} {key!r}; levels: {', '.join(known)}", field=f"{path}.{key}"
            )
    for key in known:
        if key not in mapping:
            raise ValidationFailed(
                f"missing; every {noun} level needs a priority", field=f"{path}.{key}"
            )


def _check_monotone(cells: Mapping[tuple[Impact, Urgency], int], path: str) -> None:
    impacts, urgencies = list(Impact), list(Urgency)  # from high to low
    for (impact, urgency), priority in cells.items():
        i, u = impacts.index(impact), urgencies.index(urgency)
        below = []
        if i + 1 < len(impacts):
            below.append((impacts[i + 1], urgency))
        if u + 1 < len(urgencies):
            below.append((impact, urgencies[u + 1]))
        for lower in below:
            if priority > cells[lower]:
                raise ValidationFailed(
                    f"is {priority} but {lower[0]} impact x {lower[1]} urgency is "
                    f"{cells[lower]}: raising impact or urgency must never lower the priority",
                    field=f"{path}.{impact}.{urgency}",
                )
