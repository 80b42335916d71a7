"""Changes (ITIL change requests) and freeze windows: the records change management keeps.

A change names the CIs it touches and a planned window; its lifecycle (draft -> assessment
-> approval -> scheduled -> implementing -> review -> closed, or failed / cancelled) is data
(``change_lifecycle``), its risk comes from the graph (``change_risk``), its conflicts with
other changes and with freeze windows are computed when asked (``change_conflicts``) so
that both sides of a conflict always list it. What people decide is kept on the change:
the CAB's approvals, the overrides of conflicts (each with a reason), the implementation
tasks.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field


class ChangeStatus(enum.StrEnum):
    """The statuses of the default change lifecycle (``change_lifecycle``)."""

    DRAFT = "draft"
    ASSESSMENT = "assessment"  # risk and impact computed from the graph, plans written
    APPROVAL = "approval"  # waiting for the CAB: as many approvals as the risk asks
    SCHEDULED = "scheduled"  # approved, waiting for its window
    IMPLEMENTING = "implementing"  # alerts on its CIs are expected (change-aware correlation)
    REVIEW = "review"  # post-implementation review
    CLOSED = "closed"  # done, with a close code (successful, successful with issues)
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        """Still to be done or being done: what conflicts and the change calendar count."""
        return self not in _ENDED


_ENDED = frozenset({ChangeStatus.CLOSED, ChangeStatus.FAILED, ChangeStatus.CANCELLED})
# Statuses in which a change's window is a commitment: conflicts and correlation use it.
COMMITTED_STATUSES = frozenset(
    {ChangeStatus.SCHEDULED, ChangeStatus.IMPLEMENTING, ChangeStatus.REVIEW}
)


class ChangeType(enum.StrEnum):
    STANDARD = "standard"  # pre-approved, from a template: no CAB
    NORMAL = "normal"  # assessed and approved by the CAB
    EMERGENCY = "emergency"  # fast track: one approval whatever the risk


class ChangeRisk(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    VERY_HIGH = "very_high"

    @property
    def rank(self) -> int:
        return _RISK_RANK[self]


_RISK_RANK = {ChangeRisk.LOW: 0, ChangeRisk.MEDIUM: 1, ChangeRisk.HIGH: 2, ChangeRisk.VERY_HIGH: 3}


class ApprovalDecision(enum.StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class ChangeApproval:
    """One CAB member's decision on a change (an agent with the change-manager role)."""

    approver: str  # the agent's login
    decision: ApprovalDecision
    at: dt.datetime
    comment: str = ""


class TaskStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class ChangeTask:
    """One implementation task of a change (Znuny's work order, GLPI's change task)."""

    number: int  # 1, 2, ... within the change
    title: str
    assignee: str | None = None
    status: TaskStatus = TaskStatus.OPEN
    done_at: dt.datetime | None = None
    done_by: str | None = None


@dataclass(frozen=True, slots=True)
class ConflictOverride:
    """A conflict someone accepted, with why: it no longer blocks approval. ``other`` is
    the other change's id or the freeze window's id."""

    other: str
    reason: str
    by: str
    at: dt.datetime


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
    created_by: str  # the requester: never one of its approvers
    description: str = ""
    ci_ids: list[str] = field(default_factory=list)
    planned_start: dt.datetime | None = None
    planned_end: dt.datetime | None = None
    change_type: ChangeType = ChangeType.NORMAL
    template: str | None = None  # the standard-change template it was made from
    assignee: str | None = None  # who implements it
    # risk as last computed from the graph (``change_risk``), with the reasons, and when
    risk_reasons: list[str] = field(default_factory=list)
    risk_assessed_at: dt.datetime | None = None
    approvals_required: int = 0  # what the risk (and type) asks of the CAB
    approvals: list[ChangeApproval] = field(default_factory=list)
    tasks: list[ChangeTask] = field(default_factory=list)
    conflict_overrides: list[ConflictOverride] = field(default_factory=list)
    implementation_plan: str = ""
    backout_plan: str = ""
    actual_start: dt.datetime | None = None  # when implementation began
    actual_end: dt.datetime | None = None  # when it ended (review, failed)
    close_code: str | None = None  # successful, successful_with_issues, failed ...
    close_notes: str = ""

    @property
    def window(self) -> tuple[dt.datetime, dt.datetime] | None:
        """The planned window, when both ends are set."""
        if self.planned_start is None or self.planned_end is None:
            return None
        return self.planned_start, self.planned_end

    def approved_by(self) -> list[str]:
        return [a.approver for a in self.approvals if a.decision is ApprovalDecision.APPROVED]

    def rejected_by(self) -> list[str]:
        return [a.approver for a in self.approvals if a.decision is ApprovalDecision.REJECTED]


@dataclass(frozen=True, slots=True)
class FreezeWindow:
    """A blackout period (a year-end freeze, a product launch): changes planned in it
    conflict with it. ``ci_ids`` empty: every CI; else those CIs and what depends on them
    (a freeze on a business service covers the CIs it needs: ``change_conflicts``)."""

    id: str
    name: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    created_at: dt.datetime
    created_by: str
    reason: str = ""
    ci_ids: tuple[str, ...] = ()
