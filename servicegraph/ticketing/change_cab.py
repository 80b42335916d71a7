"""The CAB's decisions on changes: approvals and rejections by change managers (never the
requester, each once), and conflicts accepted with a reason."""

from __future__ import annotations

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.change_model import (
    ApprovalDecision,
    Change,
    ChangeApproval,
    ChangeStatus,
    ConflictOverride,
)
from servicegraph.ticketing.change_work import MAX_TEXT, ChangeWork, clean, current_actor
from servicegraph.ticketing.errors import (
    ApprovalRefused,
    InvalidTransition,
)
from servicegraph.ticketing.lifecycle import ActorKind
from servicegraph.ticketing.model import WorklogKind
from servicegraph.ticketing.tickets_work import entry


class ChangeCab(ChangeWork):
    def approve(self, change_id: str, comment: str | None = None) -> Change:
        """A CAB member approves; with enough approvals the change is scheduled."""
        return self._decide(change_id, ApprovalDecision.APPROVED, comment)

    def reject(self, change_id: str, reason: str) -> Change:
        """A CAB member rejects: the change goes back to draft, its approvals withdrawn."""
        why = clean(reason, "reason", limit=MAX_TEXT, required=True)
        return self._decide(change_id, ApprovalDecision.REJECTED, why)

    def _decide(self, change_id: str, decision: ApprovalDecision, comment: str | None) -> Change:
        now, actor = self.clock(), current_actor()
        text = clean(comment, "comment", limit=MAX_TEXT)
        with self.store.unit() as unit:
            change = self._load(unit, change_id)
            if change.status is not ChangeStatus.APPROVAL:
                raise InvalidTransition(
                    change.id,
                    f"is {change.status.value}: the CAB decides on changes in approval",
                )
            self._approver(change, actor)
            if decision is ApprovalDecision.APPROVED:
                self._no_open_conflicts(change)
            change.approvals = [
                *change.approvals,
                ChangeApproval(actor, decision, now, text),
            ]
            said = f" ({text})" if text else ""
            entries = [
                entry(
                    change.id,
                    now,
                    actor,
                    WorklogKind.CHANGED,
                    f"{decision.value} by {actor}{said}",
                    field="approvals",
                    old=None,
                    new=decision.value,
                )
            ]
            if decision is ApprovalDecision.REJECTED:
                entries += self._step(
                    change,
                    "reject",
                    ActorKind.SYSTEM,
                    now,
                    actor,
                    reason=f"rejected by {actor}: {text}",
                )
                change.approvals = []
            elif len(change.approved_by()) >= change.approvals_required:
                names = ", ".join(change.approved_by())
                entries += self._step(
                    change, "schedule", ActorKind.SYSTEM, now, actor, reason=f"approved by {names}"
                )
            change.updated_at = now
            unit.save_change(change)
            unit.append_worklog(entries)
        return change

    def override_conflict(self, change_id: str, other_id: str, reason: str) -> Change:
        """A change manager accepts a conflict, saying why: it no longer blocks."""
        why = clean(reason, "reason", limit=MAX_TEXT, required=True)
        now, actor = self.clock(), current_actor()
        with self.store.unit() as unit:
            change = self._load(unit, change_id)
            if not change.status.active:
                raise InvalidTransition(change.id, f"is {change.status.value}")
            self._change_manager(change, actor, "override a conflict")
            found = [c for c in self.analysis.conflicts(change) if c.other_id == other_id]
            if not found:
                raise ValidationFailed(
                    f"{change_id} has no conflict with '{other_id}'", field="other_id"
                )
            if all(c.overridden is not None for c in found):
                return change
            change.conflict_overrides = [
                *[o for o in change.conflict_overrides if o.other != other_id],
                ConflictOverride(other_id, why, actor, now),
            ]
            kinds = ", ".join(sorted({c.kind.value for c in found}))
            text = f"conflict with {found[0].other} ({kinds}) overridden: {why}"
            change.updated_at = now
            unit.save_change(change)
            unit.append_worklog(
                [
                    entry(
                        change.id,
                        now,
                        actor,
                        WorklogKind.CHANGED,
                        text,
                        field="conflict_overrides",
                        old=None,
                        new=other_id,
                    )
                ]
            )
        return change

    def _approver(self, change: Change, actor: str) -> None:
        self._change_manager(change, actor, "approve or reject changes")
        if actor == change.created_by:
            raise ApprovalRefused(
                change.id,
                actor,
                f"requested {change.id}: the requester cannot approve their own change",
            )
        if any(a.approver == actor for a in change.approvals):
            raise ApprovalRefused(change.id, actor, f"has already decided on {change.id}")
