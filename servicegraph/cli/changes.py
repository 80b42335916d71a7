"""Change management on the command line: ``servicegraph change list|show|create|update|
step|approve|reject|override|task-add|task-update|calendar|risk|freeze-add|freeze-list|
freeze-remove``.

Each command calls the desk's change service (``services.desk.changes``), which checks and
logs every step: the risk comes from the graph when a change is raised, assessed or
replanned; the CAB's approvals (agents with the change_manager role, never the requester)
schedule it; conflicts with other changes and freeze windows block approval until a
change manager overrides them. You are the actor of what you do: your login, or with
``--as`` the agent's login you work as. A refusal prints the option at fault and what is
wrong with it on one line (``--planned-end: must be after planned_start``), or with
``--json`` that as JSON, and exits 1; nothing is written then.

CIs are given as an id, an import key or ``kind:value`` (``--ci core-1``), as everywhere
in the CLI; times in ISO 8601, UTC when they name no zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from servicegraph.bootstrap import Services
from servicegraph.cli.common import (
    JsonOption,
    fail,
    names,
    out,
    parse_time,
    print_json,
)
from servicegraph.cli.desk_errors import ActorOption, DeskErrors
from servicegraph.cmdb.errors import UnknownCI, ValidationFailed
from servicegraph.cmdb.model import new_id, utcnow
from servicegraph.ticketing.change_conflicts import Conflict
from servicegraph.ticketing.change_model import (
    Change,
    ChangeRisk,
    ChangeStatus,
    ChangeType,
    FreezeWindow,
    TaskStatus,
)
from servicegraph.ticketing.change_risk import RiskAssessment
from servicegraph.ticketing.durations import human_duration
from servicegraph.ticketing.model import WorklogEntry

change_app = typer.Typer(
    help="Change management: raise changes on CIs, assess their risk from the graph, have "
    "the CAB approve them, implement and review them; the change calendar, conflicts and "
    "freeze windows.",
    no_args_is_help=True,
)

E = TypeVar("E", bound=StrEnum)

ChangeArgument = Annotated[str, typer.Argument(help="The change's id (chg-...).")]
CiOption = Annotated[
    list[str] | None,
    typer.Option("--ci", help="A CI it changes (id, key, kind:value); repeat for more."),
]
StartOption = Annotated[str | None, typer.Option(help="Planned start (ISO 8601, UTC default).")]
EndOption = Annotated[str | None, typer.Option(help="Planned end (after the start).")]
AssigneeOption = Annotated[str | None, typer.Option(help="The agent who implements it.")]
PlanOption = Annotated[str | None, typer.Option(help="How it is done.")]
BackoutOption = Annotated[str | None, typer.Option(help="How it is undone if it goes wrong.")]

# The domain's field names as this command line's options, for the one line of a refusal;
# a field not named here is ``--field-name``.
OPTIONS = {
    "ci_ids": "--ci",
    "change_id": "CHANGE",
    "transition": "STEP",
    "step": "STEP",
    "other_id": "OTHER",
    "number": "NUMBER",
    "window_id": "WINDOW",
    "starts_at": "--start",
    "ends_at": "--end",
    "start": "--from",
    "end": "--to",
    "limit": "--first",
}


ERRORS = DeskErrors(OPTIONS)
_desk = ERRORS.desk  # the services, you the actor, refusals as one line naming the option


def _ci_ids(services: Services, refs: Sequence[str], option: str = "--ci") -> tuple[str, ...]:
    ids = []
    for ref in refs:
        try:
            ids.append(services.catalog.resolve(ref))
        except (UnknownCI, ValidationFailed) as exc:
            fail(f"{option}: {ref}: {exc}")
    return tuple(ids)


def _enum(kind: type[E], value: str, option: str) -> E:
    try:
        return kind(value.strip().lower())
    except ValueError:
        fail(f"{option}: '{value}' is not one of {', '.join(k.value for k in kind)}")


# -- printing ------------------------------------------------------------------------------------


def _at(value: dt.datetime | None) -> str:
    return f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC" if value is not None else "-"


def _span(start: dt.datetime | None, end: dt.datetime | None) -> str:
    """``2026-12-01 22:00 UTC -> 2026-12-02 00:00 UTC (2 hours)``, open ends as ``-``."""
    if start is None and end is None:
        return "not set"
    text = f"{_at(start)} -> {_at(end)}"
    if start is not None and end is not None:
        text += f" ({human_duration(end - start)})"
    return text


def _slot(start: dt.datetime | None, end: dt.datetime | None) -> str:
    """A window in a table cell: ``2026-12-01 22:00, 2 hours`` (UTC), or ``-``."""
    if start is None or end is None:
        return "-"
    return f"{start.astimezone(dt.UTC):%Y-%m-%d %H:%M}, {human_duration(end - start)}"


def _cis(ci_ids: Sequence[str], known: Mapping[str, str]) -> str:
    return ", ".join(known.get(i, i) for i in ci_ids) or "-"


def _summary(c: Change, known: Mapping[str, str]) -> str:
    approvals = ""
    if c.approvals_required:
        approvals = f", {len(c.approved_by())}/{c.approvals_required} approvals"
    return (
        f"#{c.number} {c.id} [{c.status.value}] {c.change_type.value}, risk {c.risk.value}"
        f"{approvals}, on {_cis(c.ci_ids, known)}: {c.title}"
    )


def _print_change(services: Services, c: Change, as_json: bool) -> None:
    """A change after a write: JSON of the record, or its one-line summary."""
    if as_json:
        print_json(c)
        return
    _say(_summary(c, names(services, c.ci_ids)))


def _conflict_line(c: Conflict) -> str:
    line = f"{c.kind.value} with {c.other} [{c.other_id}]: {c.detail}"
    if c.overridden is not None:
        o = c.overridden
        line += f" (overridden by {o.by} on {_at(o.at)}: {o.reason})"
    return line


def _show(services: Services, c: Change, as_json: bool) -> None:
    changes = services.desk.changes
    steps = list(changes.allowed_steps(c))
    conflicts = changes.conflicts(c.id)
    worklog: list[WorklogEntry] = services.desk.incidents.worklog([c.id]).get(c.id, [])
    known = names(services, c.ci_ids)
    if as_json:
        print_json(
            {
                "change": c,
                "ci_names": known,
                "conflicts": conflicts,
                "allowed_steps": steps,
                "worklog": worklog,
            }
        )
        return
    _say(_summary(c, known))
    _say(f"  status: {c.status.value}; type: {c.change_type.value}")
    if c.template:
        _say(f"  template: {c.template}")
    _say(f"  CIs: {_cis(c.ci_ids, known)}")
    _say(f"  requested by {c.created_by} on {_at(c.created_at)}; assignee: {c.assignee or '-'}")
    assessed = f" (assessed {_at(c.risk_assessed_at)})" if c.risk_assessed_at else ""
    _say(f"  risk: {c.risk.value}{assessed}")
    for reason in c.risk_reasons:
        _say(f"    - {reason}")
    approved = c.approved_by()
    _say(
        f"  approvals: {len(approved)} of {c.approvals_required} needed"
        + (f" (approved by {', '.join(approved)})" if approved else "")
    )
    for a in c.approvals:
        said = f": {a.comment}" if a.comment else ""
        _say(f"    - {a.decision.value} by {a.approver} on {_at(a.at)}{said}")
    _say(f"  window planned: {_span(c.planned_start, c.planned_end)}")
    if c.actual_start or c.actual_end:
        _say(f"  window actual: {_span(c.actual_start, c.actual_end)}")
    if c.description:
        _say(f"  description: {c.description}")
    _say(f"  implementation plan: {c.implementation_plan or '-'}")
    _say(f"  backout plan: {c.backout_plan or '-'}")
    if c.close_code:
        notes = f": {c.close_notes}" if c.close_notes else ""
        _say(f"  close code: {c.close_code}{notes}")
    _say(f"  tasks: {len(c.tasks) or 'none'}")
    for t in c.tasks:
        who = f" ({t.assignee})" if t.assignee else ""
        done = f", done by {t.done_by} on {_at(t.done_at)}" if t.done_at else ""
        _say(f"    {t.number}. [{t.status.value}] {t.title}{who}{done}")
    _say(f"  conflicts: {len(conflicts) or 'none'}")
    for conflict in conflicts:
        _say(f"    - {_conflict_line(conflict)}")
    _say(f"  allowed steps: {', '.join(steps) or 'none'} (the CAB: approve, reject)")
    table = Table("at (UTC)", "actor", "kind", "text", title="worklog", title_justify="left")
    for e in worklog:
        at = f"{e.at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}"
        table.add_row(at, e.actor, e.kind.value, Text(e.text))
    out.print(table)


def _say(text: str) -> None:
    out.print(text, highlight=False, soft_wrap=True, markup=False)


def _print_risk(risk: RiskAssessment, ci_ids: Sequence[str], known: Mapping[str, str]) -> None:
    _say(f"risk {risk.level.value} (score {risk.score}) for a change on {_cis(ci_ids, known)}")
    for reason in risk.reasons:
        _say(f"  - {reason}")
    for s in risk.services:
        spofs = f"; single points of failure: {_cis(s.spof_ci_ids, known)}" if s.spof_ci_ids else ""
        what = "fails" if s.fails else "degrades"
        level = f"criticality {s.criticality}" if s.criticality is not None else "no criticality"
        _say(f"  service {s.name} ({level}) {what}{spofs}")


def _freeze_line(w: FreezeWindow, known: Mapping[str, str]) -> str:
    scope = f"on {_cis(w.ci_ids, known)}" if w.ci_ids else "every CI"
    why = f": {w.reason}" if w.reason else ""
    return f"{w.id} '{w.name}' {_span(w.starts_at, w.ends_at)}, {scope}{why}"


# -- commands ------------------------------------------------------------------------------------


@change_app.command("list")
def change_list(
    status: Annotated[str | None, typer.Option(help="A status (draft, approval ...).")] = None,
    ci: Annotated[str | None, typer.Option("--ci", help="Changes on this CI.")] = None,
    assignee: Annotated[str | None, typer.Option(help="Changes this agent implements.")] = None,
    first: Annotated[int, typer.Option(help="At most this many (1..1000).")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Changes, newest first."""
    from servicegraph.ticketing.ports import ChangeFilter

    wanted = _enum(ChangeStatus, status, "--status") if status is not None else None
    with _desk(None, as_json, read_only=True) as services:
        ci_ids = _ci_ids(services, [ci]) if ci else None
        found = services.desk.changes.find(
            ChangeFilter(status=wanted, ci_ids=ci_ids, assignee=assignee, limit=first)
        )
        if as_json:
            print_json(found)
            return
        known = names(services, [i for c in found for i in c.ci_ids])
        table = Table(title=f"{len(found)} changes", title_justify="left")
        columns = ("#", "id", "status", "type", "risk", "approvals", "CIs", "window (UTC)", "title")
        for column in columns:
            table.add_column(column, overflow="fold")
        for c in found:
            table.add_row(
                str(c.number),
                c.id,
                c.status.value,
                c.change_type.value,
                c.risk.value,
                f"{len(c.approved_by())}/{c.approvals_required}",
                _cis(c.ci_ids, known),
                _slot(c.planned_start, c.planned_end),
                Text(c.title),
            )
        out.print(table)


@change_app.command("show")
def change_show(change: ChangeArgument, as_json: JsonOption = False) -> None:
    """A change: status, type, risk and why, approvals, window, plans, tasks, conflicts,
    the steps allowed now and its worklog."""
    with _desk(None, as_json, read_only=True) as services:
        _show(services, services.desk.changes.get(change), as_json)


@change_app.command("create")
def change_create(
    title: Annotated[
        str | None, typer.Option(help="What changes (a standard change: the template's).")
    ] = None,
    ci: CiOption = None,
    change_type: Annotated[
        str, typer.Option("--type", help="normal, standard (from a template) or emergency.")
    ] = ChangeType.NORMAL.value,
    template: Annotated[
        str | None, typer.Option(help="A standard change's template (desk.changes.templates).")
    ] = None,
    description: Annotated[str, typer.Option()] = "",
    planned_start: StartOption = None,
    planned_end: EndOption = None,
    assignee: AssigneeOption = None,
    implementation_plan: PlanOption = None,
    backout_plan: BackoutOption = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Raise a change (a draft); its risk is computed from the graph, with the reasons."""
    from servicegraph.ticketing.changes import NewChange

    kind = _enum(ChangeType, change_type, "--type")
    start = parse_time(planned_start, "--planned-start")
    end = parse_time(planned_end, "--planned-end")
    with _desk(actor, as_json) as services:
        new = NewChange(
            title=title or "",
            ci_ids=_ci_ids(services, ci or []),
            description=description,
            change_type=kind,
            template=template,
            planned_start=start,
            planned_end=end,
            assignee=assignee,
            implementation_plan=implementation_plan or "",
            backout_plan=backout_plan or "",
        )
        created = services.desk.changes.create(new)
        _print_change(services, created, as_json)
        if not as_json:
            for reason in created.risk_reasons:
                _say(f"  - {reason}")


@change_app.command("update")
def change_update(
    change: ChangeArgument,
    title: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    ci: Annotated[
        list[str] | None, typer.Option("--ci", help="The CIs it changes, all of them (replaced).")
    ] = None,
    planned_start: StartOption = None,
    planned_end: EndOption = None,
    assignee: Annotated[str | None, typer.Option(help="An agent; '' for nobody.")] = None,
    implementation_plan: PlanOption = None,
    backout_plan: BackoutOption = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Edit a change; new CIs or a new window recompute its risk, and send a change the
    CAB has seen back to assessment (approvals withdrawn)."""
    from servicegraph.ticketing.changes import ChangeEdit

    start = parse_time(planned_start, "--planned-start")
    end = parse_time(planned_end, "--planned-end")
    with _desk(actor, as_json) as services:
        edit = ChangeEdit(
            title=title,
            description=description,
            ci_ids=_ci_ids(services, ci) if ci else None,
            planned_start=start,
            planned_end=end,
            assignee=assignee,
            implementation_plan=implementation_plan,
            backout_plan=backout_plan,
        )
        _print_change(services, services.desk.changes.update(change, edit), as_json)


@change_app.command("step")
def change_step(
    change: ChangeArgument,
    step: Annotated[
        str,
        typer.Argument(
            help="assess, request_approval, start, complete, close, fail, cancel (schedule: "
            "a standard change), or a status."
        ),
    ],
    reason: Annotated[str | None, typer.Option(help="For fail and cancel.")] = None,
    close_code: Annotated[
        str | None, typer.Option(help="For close: successful or successful_with_issues.")
    ] = None,
    close_notes: Annotated[str | None, typer.Option(help="For close and fail.")] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take a lifecycle step (`change show` lists those allowed now)."""
    with _desk(actor, as_json) as services:
        done = services.desk.changes.transition(
            change,
            step.strip().lower(),  # a status as GraphQL shows it (REVIEW) is fine too
            reason=reason,
            close_code=close_code,
            close_notes=close_notes,
        )
        _print_change(services, done, as_json)


@change_app.command("approve")
def change_approve(
    change: ChangeArgument,
    comment: Annotated[str | None, typer.Option()] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve as a CAB member (a change manager, not the requester); with enough
    approvals the change is scheduled."""
    with _desk(actor, as_json) as services:
        _print_change(services, services.desk.changes.approve(change, comment), as_json)


@change_app.command("reject")
def change_reject(
    change: ChangeArgument,
    reason: Annotated[str, typer.Option(help="Why (the requester reads it).")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject as a CAB member: the change goes back to draft, its approvals withdrawn."""
    with _desk(actor, as_json) as services:
        _print_change(services, services.desk.changes.reject(change, reason), as_json)


@change_app.command("override")
def change_override(
    change: ChangeArgument,
    other: Annotated[
        str, typer.Argument(help="The other change's id, or the freeze window's (frz-...).")
    ],
    reason: Annotated[str, typer.Option(help="Why the conflict is acceptable.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Accept a conflict with another change or a freeze window, saying why (a change
    manager): it no longer blocks approval, and stays listed as overridden."""
    with _desk(actor, as_json) as services:
        done = services.desk.changes.override_conflict(change, other, reason)
        _print_change(services, done, as_json)


@change_app.command("task-add")
def change_task_add(
    change: ChangeArgument,
    title: Annotated[str, typer.Option(help="What to do.")],
    assignee: Annotated[str | None, typer.Option(help="The agent who does it.")] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add an implementation task (the change cannot complete while one is open)."""
    with _desk(actor, as_json) as services:
        done = services.desk.changes.add_task(change, title, assignee)
        if as_json:
            print_json(done)
            return
        task = done.tasks[-1]
        _say(f"{done.id} task {task.number}: {task.title}")


@change_app.command("task-update")
def change_task_update(
    change: ChangeArgument,
    number: Annotated[int, typer.Argument(help="The task's number (1, 2 ...).")],
    status: Annotated[str | None, typer.Option(help="open, done or cancelled.")] = None,
    assignee: Annotated[str | None, typer.Option(help="Give it to this agent.")] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Mark a task done or cancelled (or open again), or give it to someone."""
    if status is None and assignee is None:
        fail("give --status, --assignee or both")
    wanted = _enum(TaskStatus, status, "--status") if status is not None else None
    with _desk(actor, as_json) as services:
        done = services.desk.changes.update_task(change, number, status=wanted, assignee=assignee)
        if as_json:
            print_json(done)
            return
        task = next(t for t in done.tasks if t.number == number)
        who = f" ({task.assignee})" if task.assignee else ""
        _say(f"{done.id} task {task.number} [{task.status.value}]: {task.title}{who}")


@change_app.command("calendar")
def change_calendar(
    start: Annotated[str, typer.Option("--from", help="From (ISO 8601).")],
    end: Annotated[str, typer.Option("--to", help="To, at most 400 days later.")],
    as_json: JsonOption = False,
) -> None:
    """Changes planned or carried out in [--from, --to) and the freeze windows there, each
    change with its conflicts."""
    begin, until = parse_time(start, "--from"), parse_time(end, "--to")
    assert begin is not None and until is not None
    with _desk(None, as_json, read_only=True) as services:
        calendar = services.desk.changes.calendar(begin, until)
        if as_json:
            print_json(
                {
                    "start": calendar.start,
                    "end": calendar.end,
                    "changes": [
                        {"change": c, "conflicts": calendar.conflicts.get(c.id, [])}
                        for c in calendar.changes
                    ],
                    "freeze_windows": calendar.freeze_windows,
                }
            )
            return
        ci_ids = [i for c in calendar.changes for i in c.ci_ids]
        ci_ids += [i for w in calendar.freeze_windows for i in w.ci_ids]
        known = names(services, ci_ids)
        _say(f"change calendar {_span(calendar.start, calendar.end)}")
        table = Table(title=f"{len(calendar.changes)} changes", title_justify="left")
        for column in ("#", "id", "status", "risk", "window (UTC)", "CIs", "title", "conflicts"):
            table.add_column(column, overflow="fold")
        for c in calendar.changes:
            found = calendar.conflicts.get(c.id, [])
            open_ = sum(1 for x in found if x.overridden is None)
            table.add_row(
                str(c.number),
                c.id,
                c.status.value,
                c.risk.value,
                _slot(c.planned_start, c.planned_end),
                _cis(c.ci_ids, known),
                Text(c.title),
                f"{len(found)} ({open_} open)" if found else "-",
            )
        out.print(table)
        _say(f"freeze windows: {len(calendar.freeze_windows) or 'none'}")
        for w in calendar.freeze_windows:
            _say(f"  {_freeze_line(w, known)}")
        for c in calendar.changes:
            for conflict in calendar.conflicts.get(c.id, []):
                _say(f"conflict: change {c.number}: {_conflict_line(conflict)}")


@change_app.command("risk")
def change_risk(
    ci: Annotated[list[str], typer.Argument(help="The CIs a change would touch.")],
    as_json: JsonOption = False,
) -> None:
    """The risk a change on these CIs would have now, with why (nothing is written)."""
    with _desk(None, as_json, read_only=True) as services:
        ci_ids = _ci_ids(services, ci, "CI")
        now = utcnow()
        probe = Change(  # never saved: the analysis reads a change's CIs
            id=new_id("chg"),
            number=0,
            title="risk preview",
            status=ChangeStatus.DRAFT,
            risk=ChangeRisk.LOW,
            created_at=now,
            updated_at=now,
            created_by="",
            ci_ids=list(ci_ids),
        )
        risk = services.desk.changes.analysis.risk(probe)
        if as_json:
            print_json(risk)
            return
        _print_risk(risk, ci_ids, names(services, [*ci_ids, *(s.ci_id for s in risk.services)]))


@change_app.command("freeze-add")
def freeze_add(
    name: Annotated[str, typer.Option(help="What it is (Year-end freeze).")],
    start: Annotated[str, typer.Option(help="From (ISO 8601).")],
    end: Annotated[str, typer.Option(help="Until (after --start).")],
    reason: Annotated[str, typer.Option()] = "",
    ci: Annotated[
        list[str] | None,
        typer.Option("--ci", help="Freeze only this CI and what depends on it; none: all."),
    ] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Declare a freeze window: changes planned in it conflict with it."""
    begin, until = parse_time(start, "--start"), parse_time(end, "--end")
    assert begin is not None and until is not None
    with _desk(actor, as_json) as services:
        window = services.desk.changes.create_freeze_window(
            name, begin, until, reason=reason, ci_ids=_ci_ids(services, ci or [])
        )
        if as_json:
            print_json(window)
            return
        _say(_freeze_line(window, names(services, window.ci_ids)))


@change_app.command("freeze-list")
def freeze_list(
    start: Annotated[str | None, typer.Option("--from", help="Overlapping from.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Overlapping until.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Freeze windows (overlapping [--from, --to) when given), by start."""
    begin, until = parse_time(start, "--from"), parse_time(end, "--to")
    with _desk(None, as_json, read_only=True) as services:
        windows = services.desk.changes.freeze_windows(begin, until)
        if as_json:
            print_json(windows)
            return
        known = names(services, [i for w in windows for i in w.ci_ids])
        _say(f"{len(windows)} freeze windows")
        for w in windows:
            _say(f"  {_freeze_line(w, known)}")


@change_app.command("freeze-remove")
def freeze_remove(
    window: Annotated[str, typer.Argument(help="The freeze window's id (frz-...).")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Lift a freeze window."""
    with _desk(actor, as_json) as services:
        services.desk.changes.delete_freeze_window(window)
        if as_json:
            print_json({"deleted": window})
            return
        _say(f"freeze window {window} lifted")
