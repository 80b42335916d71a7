"""Incident and problem records (lean; the ticketing issue deepens them)."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field


class IncidentStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class ProblemStatus(enum.StrEnum):
    OPEN = "open"
    KNOWN_ERROR = "known_error"
    RESOLVED = "resolved"


@dataclass(slots=True)
class Incident:
    id: str
    number: int
    title: str
    status: IncidentStatus
    opened_at: dt.datetime
    updated_at: dt.datetime
    last_alert_at: dt.datetime
    priority: int = 5  # 1 (highest) .. 5
    impact: str = "low"
    urgency: str = "low"
    root_ci_id: str | None = None
    root_inferred: bool = False
    root_confidence: float = 0.0
    root_fingerprint: str | None = None
    business_services: list[str] = field(default_factory=list)
    flapping: bool = False
    clear_since: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    reopen_count: int = 0
    problem_id: str | None = None
    alert_count: int = 0


@dataclass(slots=True)
class Problem:
    id: str
    number: int
    title: str
    status: ProblemStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    root_ci_id: str | None
    reason: str  # why it was opened: recurrence on a CI, or a recurring root cause
    signature: str  # what makes incidents instances of this problem
    incident_ids: list[str] = field(default_factory=list)
    known_error: str | None = None
    workaround: str | None = None
