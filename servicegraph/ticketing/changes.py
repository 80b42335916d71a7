"""Change management: changes planned, assessed from the graph, approved by the CAB,
implemented and reviewed (ITIL change enablement).

Every write is one ``TicketStore`` unit: the change is loaded in it, checked, changed and
saved with one worklog entry per step and per changed field, or nothing at all when a
check refuses. The rules:

- a change starts as a draft (nobody creates one already approved or completed); its
  lifecycle is its type's (``change_lifecycle``), and a step the lifecycle does not allow
  is ``InvalidState`` naming the allowed ones;
- its risk is computed from the graph (``change_analysis``: the services that fail or
  degrade if its CIs fail together, single points of failure, open incidents and
  problems on the CIs, earlier failed changes) when it is created, assessed, and whenever
  its CIs or window change; the level sets the approvals it needs (``change_config``);
  new CIs or a new window once it went to the CAB send it back to assessment, approvals
  withdrawn;
- approvers are active agents with the change_manager role, never its requester, each
  once; enough approvals schedule it, one rejection sends it back to draft;
- conflicts with other changes and freeze windows (``change_conflicts``) are computed
  when asked, so both sides list them; one not overridden (by a change manager, with a
  reason) blocks approval and the scheduling of a standard change;
- a standard change comes from a template and may not be riskier than the template
  allows; implementation cannot complete while a task is open; closing successfully
  proposes resolving the problems the change fixes (a PROPOSED entry on each).

Errors: ``ValidationFailed`` naming the field, ``TicketNotFound``, ``InvalidState``,
``ApprovalRefused`` and ``ConflictsUnresolved`` (both ``InvalidTransition``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, replace

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.model import new_id
from servicegraph.ticketing.change_cab import ChangeCab
from servicegraph.ticketing.change_conflicts import Conflict
from servicegraph.ticketing.change_lifecycle import SUCCESSFUL_CLOSE_CODES
from servicegraph.ticketing.change_model import (
    Change,
    ChangeRisk,
    ChangeStatus,
    ChangeType,
    FreezeWindow,
)
from servicegraph.ticketing.change_risk import RiskAssessment
from servicegraph.ticketing.change_tasks import ChangeTasks
from servicegraph.ticketing.change_work import (
    MAX_CALENDAR,
    MAX_LIMIT,
    MAX_TEXT,
    MAX_TITLE,
    aware,
    clean,
    current_actor,
    planned_window,
)
from servicegraph.ticketing.errors import (
    InvalidTransition,
    TicketNotFound,
)
from servicegraph.ticketing.lifecycle import ActorKind
from servicegraph.ticketing.model import WorklogEntry, WorklogKind
from servicegraph.ticketing.ports import ChangeFilter, TicketUnit
from servicegraph.ticketing.tickets_work import entry

# statuses in which the CIs and the window may still change: once implementation began,
# what was done is what the record must say
PLANNING = frozenset(
    {
        ChangeStatus.DRAFT,
        ChangeStatus.ASSESSMENT,
        ChangeStatus.APPROVAL,
        ChangeStatus.SCHEDULED,
    }
)
WITH_CAB = frozenset({ChangeStatus.APPROVAL, ChangeStatus.SCHEDULED})


@dataclass(frozen=True)
class NewChange:
    title: str
    ci_ids: tuple[str, ...]
    description: str = ""
    change_type: ChangeType = ChangeType.NORMAL
    template: str | None = None  # a standard change's template (``desk.changes.templates``)
    planned_start: dt.datetime | None = None
    planned_end: dt.datetime | None = None
    assignee: str | None = None
    implementation_plan: str = ""
    backout_plan: str = ""


@dataclass(frozen=True)
class ChangeEdit:
    """Fields to change; None leaves a field as it is (an empty assignee clears it)."""

    title: str | None = None
    description: str | None = None
    ci_ids: tuple[str, ...] | None = None
    planned_start: dt.datetime | None = None
    planned_end: dt.datetime | None = None
    assignee: str | None = None
    implementation_plan: str | None = None
    backout_plan: str | None = None


@dataclass(frozen=True)
class ChangeCalendar:
    """Changes and freeze windows in a period, with every change's conflicts."""

    start: dt.datetime
    end: dt.datetime
    changes: tuple[Change, ...]
    freeze_windows: tuple[FreezeWindow, ...]
    conflicts: dict[str, list[Conflict]]  # change id -> its conflicts


class ChangeService(ChangeCab, ChangeTasks):
    """See the module docstring; the CAB's decisions are ``ChangeCab``'s, tasks and freeze
    windows ``ChangeTasks``', the shared checks and entries ``ChangeWork``'s."""

    def get(self, change_id: str) -> Change:
        change = self.store.get_changes([change_id]).get(change_id)
        if change is None:
            raise TicketNotFound("change", change_id, field="change_id")
        return change

    def get_many(self, ids: Iterable[str]) -> dict[str, Change]:
        return self.store.get_changes(ids)

    def find(self, query: ChangeFilter) -> list[Change]:
        if not 1 <= query.limit <= MAX_LIMIT:
            raise ValidationFailed(f"must be between 1 and {MAX_LIMIT}", field="limit")
        return self.store.find_changes(query)

    def allowed_steps(self, change: Change) -> tuple[str, ...]:
        """The steps an agent may take on it now (the CAB's are approve and reject)."""
        machine = self.policy.lifecycles[change.change_type]
        return machine.allowed_names(change.status.value, ActorKind.AGENT.value)

    def risk(self, change_id: str) -> RiskAssessment:
        """The risk as the graph says now (the stored one is as of ``risk_assessed_at``)."""
        return self.analysis.risk(self.get(change_id))

    def conflicts(self, change_id: str) -> list[Conflict]:
        return self.analysis.conflicts(self.get(change_id))

    def calendar(self, start: dt.datetime, end: dt.datetime) -> ChangeCalendar:
        """What is planned or carried out in ``[start, end)``: active and ended changes
        (drafts too: a calendar shows what is coming), freeze windows, conflicts."""
        start = aware(start, "start") or start
        end = aware(end, "end") or end
        if end <= start:
            raise ValidationFailed("must be after start", field="end")
        if end - start > MAX_CALENDAR:
            raise ValidationFailed(
                f"a calendar spans at most {MAX_CALENDAR.days} days", field="end"
            )
        changes = self.store.changes_touching(start, end)
        freezes = self.store.freeze_windows(start, end)
        conflicts = self.analysis.conflicts_among(changes, freezes)
        return ChangeCalendar(start, end, tuple(changes), tuple(freezes), conflicts)

    def freeze_windows(
        self, start: dt.datetime | None = None, end: dt.datetime | None = None
    ) -> list[FreezeWindow]:
        return self.store.freeze_windows(aware(start, "start"), aware(end, "end"))

    def create(self, new: NewChange) -> Change:
        """A new change, as a draft, with its risk computed from the graph."""
        template = None
        if new.change_type is ChangeType.STANDARD:
            template = self._template(new.template)
        elif new.template is not None:
            raise ValidationFailed("only a standard change comes from a template", field="template")
        title = clean(
            new.title or (template.title if template else ""),
            "title",
            limit=MAX_TITLE,
            required=True,
        )
        if not new.ci_ids:
            raise ValidationFailed("name at least one configuration item", field="ci_ids")
        start, end = planned_window(new.planned_start, new.planned_end)
        ci_ids = self._existing_cis(new.ci_ids)
        assignee = self._assignee(new.assignee)
        now, actor = self.clock(), current_actor()
        change = Change(
            id=new_id("chg"),
            number=0,
            title=title,
            description=clean(
                new.description or (template.description if template else ""),
                "description",
                limit=MAX_TEXT,
            ),
            status=ChangeStatus.DRAFT,
            risk=ChangeRisk.LOW,
            ci_ids=ci_ids,
            planned_start=start,
            planned_end=end,
            created_at=now,
            updated_at=now,
            created_by=actor,
            change_type=new.change_type,
            template=template.name if template else None,
            assignee=assignee,
            implementation_plan=clean(
                new.implementation_plan or (template.implementation_plan if template else ""),
                "implementation_plan",
                limit=MAX_TEXT,
            ),
            backout_plan=clean(
                new.backout_plan or (template.backout_plan if template else ""),
                "backout_plan",
                limit=MAX_TEXT,
            ),
        )
        self._assess(change, now)
        if template is not None:
            self._within_template(change)
        with self.store.unit() as unit:
            change.number = unit.next_change_number()
            unit.save_change(change)
            unit.append_worklog(
                [
                    entry(change.id, now, actor, WorklogKind.CREATED, title),
                    self._risk_entry(change, None, now, actor),
                ]
            )
        return change

    def update(self, change_id: str, edit: ChangeEdit) -> Change:
        """Change fields; new CIs or a new window recompute the risk, and send a change
        the CAB has seen back to assessment."""
        now, actor = self.clock(), current_actor()
        with self.store.unit() as unit:
            change = self._load(unit, change_id)
            if not change.status.active:
                raise InvalidTransition(change.id, f"is {change.status.value}; it changes no more")
            before = replace(change)
            if edit.title is not None:
                change.title = clean(edit.title, "title", limit=MAX_TITLE, required=True)
            if edit.description is not None:
                change.description = clean(edit.description, "description", limit=MAX_TEXT)
            if edit.implementation_plan is not None:
                change.implementation_plan = clean(
                    edit.implementation_plan, "implementation_plan", limit=MAX_TEXT
                )
            if edit.backout_plan is not None:
                change.backout_plan = clean(edit.backout_plan, "backout_plan", limit=MAX_TEXT)
            if edit.assignee is not None:
                change.assignee = self._assignee(edit.assignee or None)
            replanned = self._replan(change, edit)
            entries = self._field_entries(before, change, now, actor)
            if not entries:
                return change
            if replanned:
                self._assess(change, now)
                entries.append(self._risk_entry(change, before, now, actor))
                if change.change_type is ChangeType.STANDARD:
                    # no CAB to send it back to: the template's limit and the conflicts
                    # are what scheduling it checked, so they are checked again
                    self._within_template(change)
                    if change.status is ChangeStatus.SCHEDULED:
                        self._no_open_conflicts(change)
                elif change.status in WITH_CAB:
                    what = "CIs" if change.ci_ids != before.ci_ids else "window"
                    entries += self._step(
                        change,
                        "reassess",
                        ActorKind.SYSTEM,
                        now,
                        actor,
                        reason=f"the {what} changed after the CAB saw it: approvals withdrawn",
                    )
                    change.approvals = []
            change.updated_at = now
            unit.save_change(change)
            unit.append_worklog(entries)
        return change

    def _replan(self, change: Change, edit: ChangeEdit) -> bool:
        """Apply new CIs and window; True when either changed."""
        wants = edit.ci_ids is not None or edit.planned_start is not None
        wants = wants or edit.planned_end is not None
        if not wants:
            return False
        if change.status not in PLANNING:
            raise InvalidTransition(
                change.id,
                f"is {change.status.value}: its CIs and window are what was done; "
                "record the difference in the review",
            )
        ci_ids = change.ci_ids
        if edit.ci_ids is not None:
            if not edit.ci_ids:
                raise ValidationFailed("name at least one configuration item", field="ci_ids")
            ci_ids = self._existing_cis(edit.ci_ids)
        start, end = planned_window(
            edit.planned_start or change.planned_start, edit.planned_end or change.planned_end
        )
        changed = (ci_ids, start, end) != (change.ci_ids, change.planned_start, change.planned_end)
        change.ci_ids, change.planned_start, change.planned_end = ci_ids, start, end
        return changed

    def transition(
        self,
        change_id: str,
        step: str,
        *,
        reason: str | None = None,
        close_code: str | None = None,
        close_notes: str | None = None,
    ) -> Change:
        """Take a lifecycle step (by name or target status) as an agent. The CAB's
        decisions are ``approve`` and ``reject``."""
        now, actor = self.clock(), current_actor()
        with self.store.unit() as unit:
            change = self._load(unit, change_id)
            notes = clean(close_notes, "close_notes", limit=MAX_TEXT)
            why = clean(reason, "reason", limit=MAX_TEXT)
            transition = self._check(
                change, step, ActorKind.AGENT, reason=why or None, close_code=close_code
            )
            target = ChangeStatus(transition.target)
            if target is ChangeStatus.REVIEW:
                self._tasks_done(change)
            if target is ChangeStatus.SCHEDULED:  # a standard change: no CAB to see them
                self._within_template(change)
                self._no_open_conflicts(change)
            entries = self._moved(change, transition, now, actor, why or None)
            if target is ChangeStatus.ASSESSMENT:
                before = replace(change)
                self._assess(change, now)
                entries.append(self._risk_entry(change, before, now, actor))
            elif target is ChangeStatus.APPROVAL:
                change.approvals = []
            elif target is ChangeStatus.IMPLEMENTING:
                change.actual_start = now
            elif target in (ChangeStatus.REVIEW, ChangeStatus.FAILED):
                change.actual_end = change.actual_end or now
            if not target.active:  # closed, failed or cancelled: how it ended, and why
                change.close_code = close_code if target is ChangeStatus.CLOSED else target.value
                change.close_notes = notes or why
            if target is ChangeStatus.CLOSED:
                entries += self._propose_resolutions(unit, change, now, actor)
            change.updated_at = now
            unit.save_change(change)
            unit.append_worklog(entries)
        return change

    def _propose_resolutions(
        self, unit: TicketUnit, change: Change, now: dt.datetime, actor: str
    ) -> list[WorklogEntry]:
        """A change that fixed problems closed successfully: say so on each problem still
        open, proposing to resolve it (the problem manager decides)."""
        if change.close_code not in SUCCESSFUL_CLOSE_CODES:
            return []
        fixed = [p for p in self.store.problems_fixed_by([change.id]) if p.status.active]
        return [
            entry(
                p.id,
                now,
                actor,
                WorklogKind.PROPOSED,
                f"change {change.number} '{change.title}' closed {change.close_code}: "
                "resolve the problem",
                field="status",
                old=p.status.value,
                new="resolved",
            )
            for p in fixed
        ]
