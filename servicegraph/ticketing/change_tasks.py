"""A change's implementation tasks, and the freeze windows changes must keep out of."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.model import new_id
from servicegraph.ticketing.change_model import (
    Change,
    ChangeTask,
    FreezeWindow,
    TaskStatus,
)
from servicegraph.ticketing.change_work import (
    MAX_TASKS,
    MAX_TEXT,
    MAX_TITLE,
    ChangeWork,
    aware,
    clean,
    current_actor,
)
from servicegraph.ticketing.errors import (
    InvalidTransition,
    TicketNotFound,
)
from servicegraph.ticketing.model import WorklogKind
from servicegraph.ticketing.tickets_work import entry


class ChangeTasks(ChangeWork):
    def add_task(self, change_id: str, title: str, assignee: str | None = None) -> Change:
        text = clean(title, "title", limit=MAX_TITLE, required=True)
        who = self._assignee(assignee)
        now, actor = self.clock(), current_actor()
        with self.store.unit() as unit:
            change = self._load(unit, change_id)
            if not change.status.active:
                raise InvalidTransition(change.id, f"is {change.status.value}; it takes no tasks")
            if len(change.tasks) >= MAX_TASKS:
                raise ValidationFailed(f"a change has at most {MAX_TASKS} tasks", field="title")
            number = max((t.number for t in change.tasks), default=0) + 1
            change.tasks = [*change.tasks, ChangeTask(number, text, who)]
            change.updated_at = now
            unit.save_change(change)
            shown = f"task {number} '{text}'" + (f" for {who}" if who else "")
            unit.append_worklog(
                [
                    entry(
                        change.id,
                        now,
                        actor,
                        WorklogKind.CHANGED,
                        f"{shown} added",
                        field="tasks",
                        old=None,
                        new=text,
                    )
                ]
            )
        return change

    def update_task(
        self,
        change_id: str,
        number: int,
        *,
        status: TaskStatus | None = None,
        assignee: str | None = None,
    ) -> Change:
        """Mark a task done or cancelled (or open again), or give it to someone."""
        who = self._assignee(assignee) if assignee else None
        now, actor = self.clock(), current_actor()
        with self.store.unit() as unit:
            change = self._load(unit, change_id)
            if not change.status.active:
                raise InvalidTransition(change.id, f"is {change.status.value}")
            task = next((t for t in change.tasks if t.number == number), None)
            if task is None:
                raise ValidationFailed(f"{change_id} has no task {number}", field="number")
            done = status is TaskStatus.DONE and task.status is not TaskStatus.DONE
            kept = status in (None, task.status)
            updated = replace(
                task,
                status=status or task.status,
                assignee=who or task.assignee,
                # kept unless the status really changes (done twice is still done once)
                done_at=now if done else (task.done_at if kept else None),
                done_by=actor if done else (task.done_by if kept else None),
            )
            if updated == task:
                return change
            change.tasks = [updated if t.number == number else t for t in change.tasks]
            change.updated_at = now
            unit.save_change(change)
            parts = []
            if updated.status is not task.status:
                parts.append(f"{task.status.value} -> {updated.status.value}")
            if updated.assignee != task.assignee:
                parts.append(f"assignee {task.assignee or '(none)'} -> {updated.assignee}")
            unit.append_worklog(
                [
                    entry(
                        change.id,
                        now,
                        actor,
                        WorklogKind.CHANGED,
                        f"task {number} '{task.title}': {', '.join(parts)}",
                        field="tasks",
                        old=task.status.value,
                        new=updated.status.value,
                    )
                ]
            )
        return change

    def _tasks_done(self, change: Change) -> None:
        waiting = [t for t in change.tasks if t.status is TaskStatus.OPEN]
        if waiting:
            listed = ", ".join(f"{t.number} '{t.title}'" for t in waiting)
            raise InvalidTransition(change.id, f"has open tasks: {listed}; finish or cancel them")

    def create_freeze_window(
        self,
        name: str,
        starts_at: dt.datetime,
        ends_at: dt.datetime,
        *,
        reason: str = "",
        ci_ids: Sequence[str] = (),
    ) -> FreezeWindow:
        """A blackout period; with CIs, only changes touching them (or what depends on
        them: a business service) conflict with it."""
        title = clean(name, "name", limit=MAX_TITLE, required=True)
        start = aware(starts_at, "starts_at")
        end = aware(ends_at, "ends_at")
        assert start is not None and end is not None
        if end <= start:
            raise ValidationFailed("must be after starts_at", field="ends_at")
        scope = tuple(self._existing_cis(ci_ids)) if ci_ids else ()
        window = FreezeWindow(
            id=new_id("frz"),
            name=title,
            starts_at=start,
            ends_at=end,
            reason=clean(reason, "reason", limit=MAX_TEXT),
            ci_ids=scope,
            created_at=self.clock(),
            created_by=current_actor(),
        )
        with self.store.unit() as unit:
            unit.save_freeze_window(window)
        return window

    def delete_freeze_window(self, window_id: str) -> None:
        with self.store.unit() as unit:
            if not unit.delete_freeze_window(window_id):
                raise TicketNotFound("freeze window", window_id, field="window_id")
