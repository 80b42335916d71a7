"""What every write of change management shares: the service's collaborators, the checks
(CIs exist, people are agents, change managers decide, conflicts resolved, templates
respected), lifecycle steps and the worklog entries that tell them.

``ChangeService`` (``changes.py``) is built on it, with the CAB's decisions
(``change_cab.py``) and the tasks and freeze windows (``change_tasks.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from servicegraph.cmdb.context import current_change_context
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.model import utcnow
from servicegraph.cmdb.ports import GraphStore
from servicegraph.ticketing.change_analysis import ChangeAnalysis
from servicegraph.ticketing.change_config import ChangePolicy, ChangeTemplate
from servicegraph.ticketing.change_model import (
    Change,
    ChangeStatus,
)
from servicegraph.ticketing.errors import (
    ApprovalRefused,
    ConflictsUnresolved,
    TicketNotFound,
)
from servicegraph.ticketing.intake import text as intake_text
from servicegraph.ticketing.lifecycle import ActorKind, Transition
from servicegraph.ticketing.model import WorklogEntry, WorklogKind
from servicegraph.ticketing.people import Agent, DeskRole, Directory
from servicegraph.ticketing.ports import TicketStore, TicketUnit
from servicegraph.ticketing.tickets_work import as_text, entry

Clock = Callable[[], dt.datetime]

MAX_TITLE = 200
MAX_TEXT = 20_000
MAX_LIMIT = 1000
MAX_TASKS = 200
MAX_CALENDAR = dt.timedelta(days=400)


def no_people() -> Directory:
    return Directory()


def clean(value: str | None, field: str, *, limit: int, required: bool = False) -> str:
    """The desk's one text check (``intake.text``), optional unless ``required``: most
    of a change's texts may be empty."""
    return intake_text(value, field, limit=limit, required=required)


def aware(value: dt.datetime | None, field: str) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValidationFailed("needs a time zone (e.g. 2026-11-01T12:00:00Z)", field=field)
    return value


def planned_window(
    start: dt.datetime | None, end: dt.datetime | None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    start = aware(start, "planned_start")
    end = aware(end, "planned_end")
    if start is not None and end is not None and end <= start:
        raise ValidationFailed("must be after planned_start", field="planned_end")
    return start, end


def current_actor() -> str:
    return current_change_context().actor


class ChangeWork:
    def __init__(
        self,
        store: TicketStore,
        graph: GraphStore,
        analysis: ChangeAnalysis,
        *,
        directory: Callable[[], Directory] = no_people,
        policy: ChangePolicy | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.graph = graph
        self.analysis = analysis
        self.directory = directory
        self.policy = policy or ChangePolicy()
        self.clock = clock

    def _load(self, unit: TicketUnit, change_id: str) -> Change:
        change = unit.load_changes([change_id]).get(change_id)
        if change is None:
            raise TicketNotFound("change", change_id, field="change_id")
        return change

    def _existing_cis(self, ci_ids: Sequence[str]) -> list[str]:
        """The ids, checked to exist; a CI merged into another stands for its survivor."""
        found = self.graph.get_cis(ci_ids)
        result = []
        for index, ci_id in enumerate(ci_ids):
            ci = found.get(ci_id)
            if ci is None:
                raise ValidationFailed(
                    f"no configuration item with id '{ci_id}'", field=f"ci_ids.{index}"
                )
            result.append(ci.merged_into or ci_id)
        return list(dict.fromkeys(result))

    def _agent(self, login: str) -> Agent | None:
        return self.directory().agents.get(login)

    def _assignee(self, login: str | None) -> str | None:
        if login is None:
            return None
        agent = self._agent(login)
        if agent is None or not agent.active:
            state = "inactive" if agent is not None else "unknown"
            raise ValidationFailed(f"'{login}' is an {state} agent", field="assignee")
        return login

    def _change_manager(self, change: Change, actor: str, action: str) -> Agent:
        agent = self._agent(actor)
        if agent is None or not agent.active or DeskRole.CHANGE_MANAGER not in agent.roles:
            raise ApprovalRefused(
                change.id,
                actor,
                f"only an active agent with the change_manager role may {action}",
            )
        return agent

    def _no_open_conflicts(self, change: Change) -> None:
        open_ = [c for c in self.analysis.conflicts(change) if c.overridden is None]
        if open_:
            raise ConflictsUnresolved(change.id, [f"{c.other}: {c.detail}" for c in open_])

    def _template(self, name: str | None) -> ChangeTemplate:
        if not name:
            raise ValidationFailed("a standard change comes from a template", field="template")
        template = self.policy.templates.get(name)
        if template is None:
            known = ", ".join(sorted(self.policy.templates)) or "none configured"
            raise ValidationFailed(
                f"unknown template '{name}'; templates: {known}", field="template"
            )
        return template

    def _within_template(self, change: Change) -> None:
        template = self._template(change.template)
        if change.risk.rank > template.max_risk.rank:
            raise ValidationFailed(
                f"its risk is {change.risk.value}, above the {template.max_risk.value} "
                f"template '{template.name}' allows: raise a normal change",
                field="ci_ids",
            )

    def _fields(self, change: Change, extra: dict[str, object]) -> dict[str, object]:
        return {
            "planned_start": change.planned_start,
            "planned_end": change.planned_end,
            "implementation_plan": change.implementation_plan,
            "backout_plan": change.backout_plan,
            "template": change.template,
            **extra,
        }

    def _check(
        self,
        change: Change,
        step: str,
        kind: ActorKind,
        *,
        reason: str | None = None,
        close_code: str | None = None,
    ) -> Transition:
        """The transition ``step`` takes from the change's status, or ``InvalidState``."""
        machine = self.policy.lifecycles[change.change_type]
        extra: dict[str, object] = {"reason": reason, "close_code": close_code}
        return machine.check(
            change.status.value,
            step,
            kind.value,
            self._fields(change, extra),
            ticket_id=change.id,
        )

    def _step(
        self,
        change: Change,
        step: str,
        kind: ActorKind,
        now: dt.datetime,
        actor: str,
        *,
        reason: str | None = None,
        close_code: str | None = None,
    ) -> list[WorklogEntry]:
        transition = self._check(change, step, kind, reason=reason, close_code=close_code)
        return self._moved(change, transition, now, actor, reason)

    def _moved(
        self,
        change: Change,
        transition: Transition,
        now: dt.datetime,
        actor: str,
        reason: str | None,
    ) -> list[WorklogEntry]:
        old = change.status
        change.status = ChangeStatus(transition.target)
        text = f"{transition.name}: {old.value} -> {change.status.value}"
        if reason:
            text += f" ({reason})"
        return [
            entry(
                change.id,
                now,
                actor,
                WorklogKind.TRANSITION,
                text,
                field="status",
                old=old.value,
                new=change.status.value,
            )
        ]

    def _assess(self, change: Change, now: dt.datetime) -> None:
        assessment = self.analysis.risk(change)
        change.risk = assessment.level
        change.risk_reasons = list(assessment.reasons)
        change.risk_assessed_at = now
        change.approvals_required = self.policy.approvals_required(
            change.change_type, assessment.level
        )

    def _risk_entry(
        self, change: Change, before: Change | None, now: dt.datetime, actor: str
    ) -> WorklogEntry:
        reasons = "; ".join(change.risk_reasons)
        needs = f"; needs {change.approvals_required} CAB approval(s)"
        text = f"risk {change.risk.value}: {reasons}" + (needs if change.approvals_required else "")
        old = before.risk.value if before is not None else None
        return entry(
            change.id,
            now,
            actor,
            WorklogKind.CHANGED,
            text,
            field="risk",
            old=old,
            new=change.risk.value,
        )

    def _names(self, ci_ids: Sequence[str]) -> str:
        found = self.graph.get_cis(ci_ids)
        return ", ".join(found[i].name if i in found else i for i in ci_ids) or "(none)"

    def _field_entries(
        self, before: Change, after: Change, now: dt.datetime, actor: str
    ) -> list[WorklogEntry]:
        fields = (
            "title",
            "description",
            "ci_ids",
            "planned_start",
            "planned_end",
            "assignee",
            "implementation_plan",
            "backout_plan",
        )
        entries = []
        for name in fields:
            old, new = getattr(before, name), getattr(after, name)
            if old != new:
                if name == "ci_ids":  # people read names; the entry's old/new keep the ids
                    shown = f"CIs: {self._names(old)} -> {self._names(new)}"
                else:
                    shown = f"{name}: {as_text(_shown(old)) or '(none)'} -> {as_text(_shown(new))}"
                entries.append(
                    entry(
                        after.id,
                        now,
                        actor,
                        WorklogKind.CHANGED,
                        shown,
                        field=name,
                        old=_shown(old),
                        new=_shown(new),
                    )
                )
        return entries


def _shown(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value
