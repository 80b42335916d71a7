"""How events become incidents: the correlator's tunable policy (``CorrelationPolicy``, set
from ``correlation:`` settings), the priority matrix, and what one batch did
(``BatchResult``)."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from servicegraph.events.model import (
    Severity,
)

# One matrix for the desk and correlation: ticketing.priority's (these names stay for the
# modules and tests that import them from here).
from servicegraph.ticketing.priority import DEFAULT_PRIORITY_MATRIX, Impact, Urgency

IMPACT_LEVELS = tuple(level.value for level in Impact)
URGENCY_LEVELS = tuple(level.value for level in Urgency)


class ExpectedAlerts(enum.StrEnum):
    """What an alert expected under a change does when it would open an incident."""

    SUPPRESS = "suppress"  # no incident: the alert is linked to the change (its change_id)
    LOW_PRIORITY = "low_priority"  # an incident at P5, tagged, linked to the change


@dataclass(frozen=True)
class CorrelationPolicy:
    group_window: dt.timedelta = dt.timedelta(minutes=5)
    topology_depth: int = 4
    inferred_min_share: float = 0.5
    hold_time: dt.timedelta = dt.timedelta(seconds=60)
    reopen_window: dt.timedelta = dt.timedelta(minutes=30)
    flap_threshold: int = 4
    flap_window: dt.timedelta = dt.timedelta(minutes=10)
    problem_incidents_per_ci: int = 3
    problem_recurring_cis: int = 3
    problem_window: dt.timedelta = dt.timedelta(days=7)
    batch_size: int = 5000
    # events dated further ahead of their reception are dated at the reception
    max_clock_skew: dt.timedelta = dt.timedelta(seconds=300)
    priority_matrix: Mapping[str, Mapping[str, int]] = field(
        default_factory=lambda: DEFAULT_PRIORITY_MATRIX
    )
    # business service criticality (1 = most critical) at or below which impact is high
    high_impact_criticality: int = 2
    # change-aware correlation (``changes``): alerts under an implementing change, and how
    # long after a change ends a new incident on what it touched is blamed on it
    expected_alerts: ExpectedAlerts = ExpectedAlerts.SUPPRESS
    after_change_window: dt.timedelta = dt.timedelta(hours=2)


def urgency_of(severity: Severity) -> str:
    if severity >= Severity.CRITICAL:
        return "high"
    if severity >= Severity.MAJOR:
        return "medium"
    return "low"


@dataclass
class BatchResult:
    events: int = 0
    redeliveries: int = 0  # events dropped: their event id was correlated before
    alerts_created: int = 0
    duplicates: int = 0
    incidents_opened: int = 0
    incidents_updated: int = 0
    incidents_resolved: int = 0
    incidents_reopened: int = 0
    problems_opened: int = 0
    problems_reopened: int = 0  # resolved problems whose incidents came back
    unmapped: int = 0
    clamped: int = 0  # events dated in the future, dated at their reception instead
    expected: int = 0  # firing events held back: expected under a change, no incident

    def merge(self, other: BatchResult) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
