"""The desk's settings: each part checked whole at start-up naming its path; one priority
matrix for tickets and correlation; the auto-close job on the schedule, in-process and in
Celery."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from pydantic import ValidationError

from servicegraph import tasks
from servicegraph.config import DeskSettings, Settings
from servicegraph.runtime import jobs
from servicegraph.ticketing.lifecycle import DEFAULT_TICKET_LIFECYCLE
from servicegraph.ticketing.priority import DEFAULT_PRIORITY_MATRIX


def _matrix(**cells: int) -> dict[str, dict[str, int]]:
    matrix = copy.deepcopy(DEFAULT_PRIORITY_MATRIX)
    for cell, value in cells.items():
        impact, urgency = cell.split("__")
        matrix[impact][urgency] = value
    return matrix


def _lifecycle(**changes: Any) -> dict[str, Any]:
    declaration = copy.deepcopy(DEFAULT_TICKET_LIFECYCLE)
    declaration["states"] = {**declaration["states"], **changes}
    return declaration


@pytest.mark.parametrize(
    ("desk", "says"),
    [
        ({"routing": [{"name": "x", "when": {"colour": "red"}}]}, "desk.routing.x.when.colour"),
        ({"routing": [{"then": {"priority_floor": 9}}]}, "desk.routing.0.then.priority_floor"),
        ({"custom_fields": {"incident": {"n": {"type": "number"}}}},
         "desk.custom_fields.incident.n.type"),
        ({"priority_matrix": _matrix(low__low=6)}, "desk.priority_matrix.low.low"),
        ({"priority_matrix": _matrix(high__low=5)}, "desk.priority_matrix.high.low"),
        ({"lifecycle": {"initial": "new"}}, "desk.lifecycle.states"),
        ({"lifecycle": _lifecycle(escalated=None)}, "desk.lifecycle.states.escalated"),
        ({"triage_group": "has space"}, "desk.triage_group"),
        ({"auto_close_days": -1}, "auto_close_days"),
        ({"reopen_window_days": -0.5}, "reopen_window_days"),
        ({"auto_assign": True, "unknown": 1}, "unknown"),
    ],
)  # fmt: skip
def test_a_bad_desk_setting_is_refused_naming_its_path(desk: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(desk=DeskSettings(**desk))
    assert says in str(info.value)


def test_the_desk_policy_is_built_from_the_settings() -> None:
    settings = DeskSettings(
        routing=[{"name": "vpn", "when": {"category": "network/vpn"}, "then": {"group": "noc"}}],
        triage_group="first-line",
        auto_assign=True,
        auto_close_days=None,
        reopen_window_days=2.5,
    )
    policy = settings.policy()
    assert [r.name for r in policy.routing.rules] == ["vpn"]
    assert (policy.triage_group, policy.auto_assign, policy.auto_close_days) == (
        "first-line", True, None,
    )  # fmt: skip
    assert policy.reopen_window.total_seconds() == 2.5 * 86400
    assert "reopen" in policy.lifecycle.allowed_names("resolved", "agent")


def test_tickets_and_correlation_share_one_priority_matrix() -> None:
    custom = _matrix(high__low=2)
    assert Settings(desk={"priority_matrix": custom}).correlation.priority_matrix == custom
    assert Settings(correlation={"priority_matrix": custom}).desk.priority_matrix == custom
    assert (
        Settings(correlation={"priority_matrix": custom}).correlation.policy().priority_matrix
        == custom
    )
    with pytest.raises(ValidationError, match="share one matrix"):
        Settings(desk={"priority_matrix": custom}, correlation={"priority_matrix": _matrix()})
    with pytest.raises(ValidationError, match=re.escape("correlation.priority_matrix.medium.high")):
        Settings(correlation={"priority_matrix": _matrix(medium__high=4)})


def test_auto_close_runs_on_the_schedule_in_process_and_in_celery() -> None:
    assert Settings().schedule["auto_close"] == 3600.0
    assert jobs.PERIODIC["auto_close"] is jobs.auto_close
    assert tasks.ROUTES["servicegraph.auto_close"] == {"queue": "default"}
    assert tasks.auto_close.name == "servicegraph.auto_close"
    assert tasks.auto_close.autoretry_for == tasks.TRANSIENT
