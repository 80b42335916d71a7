"""Incident, problem and change records, and the worklog that tells who did what.

Correlation opens, updates and resolves incidents and opens problems; people work them
through ``servicegraph.ticketing.service`` (acknowledge, assign, comment, resolve, link to
a problem, record a known error, plan a change), each step leaving a worklog entry.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field


class TicketType(enum.StrEnum):
    """What a desk ticket is: something broken, or something asked for (ITIL)."""

    INCIDENT = "incident"
    SERVICE_REQUEST = "service_request"


class Channel(enum.StrEnum):
    """How a ticket reached the desk (reported per channel by the desk's reports)."""

    PHONE = "phone"
    EMAIL = "email"
    PORTAL = "portal"
    MONITORING = "monitoring"
    API = "api"
    CHAT = "chat"
    IMPORT = "import"


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
    # worked by people (servicegraph.ticketing.service)
    acknowledged_at: dt.datetime | None = None
    acknowledged_by: str | None = None
    assignee: str | None = None
    resolved_by: str | None = None  # None when correlation resolved it (all alerts clear)
    resolution: str | None = None


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


class ChangeStatus(enum.StrEnum):
    PLANNED = "planned"
    APPROVED = "approved"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ChangeRisk(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(slots=True)
class Change:
    """A change to configuration items (ITIL change request), planned in a time window."""

    id: str
    number: int
    title: str
    status: ChangeStatus
    risk: ChangeRisk
    created_at: dt.datetime
    updated_at: dt.datetime
    created_by: str
    description: str = ""
    ci_ids: list[str] = field(default_factory=list)
    planned_start: dt.datetime | None = None
    planned_end: dt.datetime | None = None


class WorklogKind(enum.StrEnum):
    CREATED = "created"
    COMMENT = "comment"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    RESOLVED = "resolved"
    LINKED = "linked"  # an incident linked to a problem (logged on both)
    KNOWN_ERROR = "known_error"


@dataclass(frozen=True, slots=True)
class WorklogEntry:
    """One step of work on a ticket (incident ``inc-``, problem ``prb-``, change ``chg-``)."""

    ticket_id: str
    at: dt.datetime
    actor: str
    kind: WorklogKind
    text: str = ""
    seq: int = 0  # assigned by the store; orders entries with equal times
