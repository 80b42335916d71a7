"""The priority matrix: the default cells, matrices refused naming the cell, decisions with
and without an override, and clamping in both directions (1 is the highest priority)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.correlation.policy import DEFAULT_PRIORITY_MATRIX as CORRELATION_MATRIX
from servicegraph.correlation.policy import IMPACT_LEVELS, URGENCY_LEVELS
from servicegraph.ticketing.priority import (
    DEFAULT_PRIORITY_MATRIX,
    Impact,
    PriorityDecision,
    PriorityMatrix,
    Urgency,
    clamp,
    decide,
)

MATRIX = PriorityMatrix.default()


def test_same_levels_and_cells_as_correlation() -> None:
    assert tuple(Impact) == IMPACT_LEVELS
    assert tuple(Urgency) == URGENCY_LEVELS
    assert DEFAULT_PRIORITY_MATRIX == CORRELATION_MATRIX
    assert MATRIX.as_dict() == CORRELATION_MATRIX


@pytest.mark.parametrize(
    ("impact", "urgency", "priority"),
    [
        ("high", "high", 1),
        ("high", "medium", 2),
        ("high", "low", 3),
        ("medium", "high", 2),
        ("medium", "medium", 3),
        ("medium", "low", 4),
        ("low", "high", 3),
        ("low", "medium", 4),
        ("low", "low", 5),
        (Impact.HIGH, Urgency.LOW, 3),
        (" High ", "LOW", 3),  # as typed in a form
    ],
)
def test_default_cells(impact: str, urgency: str, priority: int) -> None:
    assert MATRIX.priority(impact, urgency) == priority


def _matrix(**cells: Any) -> dict[str, dict[str, Any]]:
    """The default matrix with cells set by ``impact__urgency=priority``."""
    matrix: dict[str, dict[str, Any]] = copy.deepcopy(DEFAULT_PRIORITY_MATRIX)
    for key, value in cells.items():
        impact, urgency = key.split("__")
        matrix[impact][urgency] = value
    return matrix


def _without(impact: str, urgency: str | None = None) -> dict[str, Any]:
    matrix: dict[str, Any] = copy.deepcopy(DEFAULT_PRIORITY_MATRIX)
    if urgency is None:
        del matrix[impact]
    else:
        del matrix[impact][urgency]
    return matrix


@pytest.mark.parametrize(
    ("mapping", "field", "text"),
    [
        (_without("medium"), "priority_matrix.medium", "missing"),
        (_without("low", "high"), "priority_matrix.low.high", "missing"),
        ({**DEFAULT_PRIORITY_MATRIX, "critical": {}}, "priority_matrix.critical", "unknown impact"),
        (_matrix(high__urgent=1), "priority_matrix.high.urgent", "unknown urgency 'urgent'"),
        (_matrix(high__high=0), "priority_matrix.high.high", "0 is not a priority from 1"),
        (_matrix(low__low=6), "priority_matrix.low.low", "6 is not a priority"),
        (_matrix(low__high="3"), "priority_matrix.low.high", "'3'"),
        (_matrix(low__high=True), "priority_matrix.low.high", "True"),
        ({**DEFAULT_PRIORITY_MATRIX, "low": [3, 4, 5]}, "priority_matrix.low", "must map urgency"),
        ([1, 2, 3], "priority_matrix", "must map impact"),
        # monotone: raising impact or urgency never lowers the priority
        (_matrix(high__low=5), "priority_matrix.high.low", "medium impact x low urgency is 4"),
        (_matrix(medium__high=4), "priority_matrix.medium.high", "low impact x high urgency is 3"),
        (_matrix(high__high=3), "priority_matrix.high.high", "medium impact x high urgency is 2"),
        (_matrix(low__high=5), "priority_matrix.low.high", "low impact x medium urgency is 4"),
    ],
)
def test_bad_matrices_name_the_cell(mapping: Any, field: str, text: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        PriorityMatrix.build(mapping)
    assert info.value.field == field
    assert text in str(info.value)


def test_a_configured_matrix_and_its_path() -> None:
    flat = PriorityMatrix.build(_matrix(low__high=2, medium__high=2, high__low=2, medium__low=3))
    assert flat.priority("low", "high") == 2
    with pytest.raises(ValidationFailed) as info:
        PriorityMatrix.build(_without("low", "low"), path="desk.priority_matrix")
    assert info.value.field == "desk.priority_matrix.low.low"


@pytest.mark.parametrize(
    ("impact", "urgency", "field"),
    [("critical", "high", "impact"), ("high", "asap", "urgency"), (None, "low", "impact")],
)
def test_unknown_levels_name_impact_or_urgency(impact: Any, urgency: Any, field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        decide(MATRIX, impact, urgency)
    assert info.value.field == field
    assert "high, medium, low" in str(info.value)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("high", "high"), PriorityDecision(1, 1, False)),
        (("low", "medium"), PriorityDecision(4, 4, False)),
        (("low", "low", None, None, "desk"), PriorityDecision(5, 5, False, None, "desk")),
        (
            ("low", "low", 1, "CEO's laptop", "ann"),
            PriorityDecision(1, 5, True, "CEO's laptop", "ann"),
        ),
        (
            ("high", "high", 5, " test system ", "ann"),
            PriorityDecision(5, 1, True, "test system", "ann"),
        ),
        # an override equal to the computed priority is no override and needs no reason
        (("medium", "medium", 3, None, "ann"), PriorityDecision(3, 3, False, None, "ann")),
    ],
)
def test_decide(args: tuple[Any, ...], expected: PriorityDecision) -> None:
    assert decide(MATRIX, *args) == expected


@pytest.mark.parametrize(
    ("override", "reason", "field", "text"),
    [
        (1, None, "priority_reason", "overriding priority 4 (from low impact x medium urgency)"),
        (1, "", "priority_reason", "needs a reason"),
        (2, "   ", "priority_reason", "needs a reason"),
        (0, "why", "priority", "0 is not a priority from 1 (highest) to 5 (lowest)"),
        (6, "why", "priority", "6 is not a priority"),
        (2.0, "why", "priority", "2.0"),
        (True, "why", "priority", "True"),
        ("1", "why", "priority", "'1'"),
    ],
)
def test_bad_overrides_name_the_field(override: Any, reason: Any, field: str, text: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        decide(MATRIX, "low", "medium", override, reason, "carol")
    assert info.value.field == field
    assert text in str(info.value)


@pytest.mark.parametrize(
    ("priority", "floor", "ceiling", "clamped"),
    [
        (5, None, None, 5),
        (5, 3, None, 3),  # floor 3: at least P3, a P5 is lifted
        (2, 3, None, 2),  # already above the floor
        (1, None, 2, 2),  # ceiling 2: never above P2, a P1 is lowered
        (4, None, 2, 4),
        (1, 4, 2, 2),
        (5, 4, 2, 4),
        (3, 4, 2, 3),
        (3, 3, 3, 3),  # floor and ceiling equal: always that priority
        (1, 3, 3, 3),
    ],
)
def test_clamp_directions(
    priority: int, floor: int | None, ceiling: int | None, clamped: int
) -> None:
    assert clamp(priority, floor, ceiling) == clamped


@pytest.mark.parametrize(
    ("priority", "floor", "ceiling", "field"),
    [
        (0, None, None, "priority"),
        (3, 6, None, "floor"),
        (3, None, 0, "ceiling"),
        (3, 2, 4, "ceiling"),  # the ceiling is a lower priority than the floor
        (3, True, None, "floor"),
    ],
)
def test_clamp_refuses(priority: int, floor: Any, ceiling: Any, field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        clamp(priority, floor, ceiling)
    assert info.value.field == field
