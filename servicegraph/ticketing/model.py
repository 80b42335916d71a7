"""Tickets (incidents and service requests), problems and changes, and the worklog that
tells who did what and which field changed.

An ``Incident`` record is the desk's ticket: an incident, or with ``type`` service_request
a service request (one record type, as ServiceNow's task table holds both), raised by
people or by correlation. Correlation opens, updates, resolves and reopens monitoring
incidents and opens problems; people work tickets through ``servicegraph.ticketing``'s
services; both go through the lifecycle (``lifecycle.py``) and leave worklog entries.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any

# changes live in ``change_model``; kept importable from here, as they always were
from servicegraph.ticketing.change_model import Change as Change
from servicegraph.ticketing.change_model import ChangeRisk as ChangeRisk
from servicegraph.ticketing.change_model import ChangeStatus as ChangeStatus
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.priority import clamp

# ``priority_set_by`` of a priority configuration chose, not an agent: a catalogue's default
# ("catalogue"), and in stores older than migration 11 a routing rule's bound ("routing",
# which that migration turns into the ticket's bounds). Such a priority is a default: the
# matrix, within the bounds, replaces it when impact or urgency change.
CONFIGURED_PRIORITY = frozenset({"catalogue", "routing"})


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


class LinkKind(enum.StrEnum):
    """How two tickets relate; each link is stored once, from ``source`` to ``target``."""

    PARENT_OF = "parent_of"  # the source is the parent (a major incident of its children)
    DUPLICATE_OF = "duplicate_of"
    CAUSED_BY_CHANGE = "caused_by_change"  # the target is a change (chg-)
    RELATED = "related"


@dataclass(frozen=True, slots=True)
class TicketLink:
    source_id: str
    target_id: str
    kind: LinkKind
    created_at: dt.datetime
    created_by: str


class ProblemStatus(enum.StrEnum):
    """The statuses of the default problem lifecycle (``problem_lifecycle``)."""

    OPEN = "open"
    INVESTIGATING = "investigating"  # root-cause analysis under way, an assignee on it
    KNOWN_ERROR = "known_error"  # the cause is known; the workaround is offered on incidents
    RESOLVED = "resolved"  # fixed (typically by its fixing change); may still be reopened
    CLOSED = "closed"

    @property
    def active(self) -> bool:
        """Still worked: takes new incidents and is offered as a known error."""
        return self not in (ProblemStatus.RESOLVED, ProblemStatus.CLOSED)


@dataclass(slots=True)
class Incident:
    """A ticket. Correlation maintains the alert-derived fields (root cause, business
    services, impact, urgency, priority unless overridden, flapping); people the desk's."""

    id: str
    number: int
    title: str
    status: TicketStatus
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
    resolution: str | None = None  # the resolution notes
    # the desk (servicegraph.ticketing.tickets)
    type: TicketType = TicketType.INCIDENT
    channel: Channel = Channel.MONITORING
    description: str = ""
    requester: str | None = None  # a contact's id
    organisation: str | None = None
    service: str | None = None  # a catalogue service's id
    category: str | None = None  # a category path, "network/vpn": category and subcategory
    affected_ci_ids: list[str] = field(default_factory=list)  # beyond the root and alerts
    priority_reason: str | None = None  # set when an agent (or the catalogue) chose it
    priority_set_by: str | None = None
    # Routing's bounds (``priority.clamp``; 1 is the most urgent): the floor is the least
    # urgent priority allowed (the largest number: 2 = "at least as urgent as P2"), the
    # ceiling the most urgent allowed (the smallest number). Kept on the ticket, not folded
    # into the priority, so that the priority keeps following impact x urgency within them
    # (a floor never stops it rising); an agent's override is not bounded.
    priority_floor: int | None = None
    priority_ceiling: int | None = None
    assignment_group: str | None = None
    pending_reason: str | None = None
    resolution_code: str | None = None
    close_code: str | None = None
    closed_at: dt.datetime | None = None
    tags: list[str] = field(default_factory=list)
    custom_fields: dict[str, Any] = field(default_factory=dict)
    routed_by: str | None = None  # the routing rule (or default) that chose the group
    created_by: str | None = None  # None: correlation raised it
    # SLA (migration 12): when the requester first saw an agent act (a reply, work started,
    # a question, the resolution; for monitoring incidents the acknowledgement): the
    # response clock stops there (``ticketing.sla``)
    first_response_at: dt.datetime | None = None
    reassignment_count: int = 0  # times the group changed after the first one (reports)
    external_ref: str | None = None  # the ticket's number in the tool it was imported from
    # what correlation derived from the most critical impacted business service: its
    # ``sla_tier`` and ``service_hours`` attributes choose a monitoring incident's SLA
    # policy and calendar (``ticketing.sla_config``)
    sla_tier: str | None = None
    service_hours: str | None = None
    # derived, read only: when the ticket is next due (its SLA clocks' earliest due time,
    # ``ticketing.sla_projection``), what queues in due order sort by; no write sets it
    sla_due_at: dt.datetime | None = None

    @property
    def priority_overridden(self) -> bool:
        """The priority is not the matrix's: an agent's override or a catalogue default."""
        return self.priority_reason is not None

    @property
    def agent_override(self) -> bool:
        """An agent chose the priority (with a reason): it wins over the matrix and over
        routing's bounds until an agent sets it back to the matrix's."""
        return self.priority_overridden and self.priority_set_by not in CONFIGURED_PRIORITY

    def bounded(self, priority: int) -> int:
        """``priority`` (the matrix's, or a configured default) within the ticket's routing
        bounds; what the ticket's priority is whenever no agent overrode it."""
        return clamp(priority, self.priority_floor, self.priority_ceiling)

    def ci_ids(self) -> list[str]:
        """Every CI the ticket concerns: its root cause, then those people added."""
        root = [self.root_ci_id] if self.root_ci_id else []
        return list(dict.fromkeys(root + self.affected_ci_ids))


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
    assignee: str | None = None  # the problem manager or engineer analysing it
    description: str = ""
    # root-cause analysis: what caused it (the fishbone's head), and the permanent fix
    root_cause: str = ""
    fix: str = ""
    fixing_change_id: str | None = None  # the change that removes the cause
    resolved_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    resolution: str = ""  # how it was resolved (or why it was closed without a fix)


class WorklogKind(enum.StrEnum):
    CREATED = "created"
    COMMENT = "comment"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    RESOLVED = "resolved"
    LINKED = "linked"  # an incident linked to a problem (logged on both)
    KNOWN_ERROR = "known_error"
    TRANSITION = "transition"  # a lifecycle step: field "status", old -> new, text the step
    CHANGED = "changed"  # any other field: field, old -> new
    ROUTED = "routed"  # the routing decision: text names the rule and why
    REOPENED = "reopened"
    REPLY = "reply"  # a comment to the requester (COMMENT is internal to the desk)
    ESCALATED = "escalated"  # an SLA escalation level fired: text says which and what it did
    PROPOSED = "proposed"  # a step proposed to people: field/new say which (resolve a problem)


@dataclass(frozen=True, slots=True)
class WorklogEntry:
    """One step of work on a ticket (incident ``inc-``, problem ``prb-``, change ``chg-``)."""

    ticket_id: str
    at: dt.datetime
    actor: str
    kind: WorklogKind
    text: str = ""
    seq: int = 0  # assigned by the store; orders entries with equal times
    field: str | None = None  # the field a TRANSITION or CHANGED entry changed
    old: str | None = None  # its value before and after, as text (JSON for lists)
    new: str | None = None
