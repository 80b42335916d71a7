"""Problem management on the command line: ``servicegraph problem list|show|create|update|
transition|known-error|link-incident|link-change``.

Each command calls the desk's problem service (``services.desk.problems``), which checks
and logs every step. You are the actor of what you do: your login, or with ``--as`` the
agent's login you work as. A refusal prints the option at fault and what is wrong with
it on one line (``--resolution: 'resolve' needs resolution``), or with ``--json`` that as
JSON, and exits 1; nothing is written then. ``show`` names CIs by name and says when the
fixing change closed successfully, proposing to resolve the problem.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from servicegraph.bootstrap import Services
from servicegraph.cli.common import (
    JsonOption,
    fail,
    names,
    out,
    print_json,
)
from servicegraph.cli.desk_errors import ActorOption, DeskErrors
from servicegraph.cmdb.errors import UnknownCI, ValidationFailed
from servicegraph.ticketing.model import Problem, ProblemStatus

problem_app = typer.Typer(
    help="Problem management: open, analyse, record known errors, link incidents and the "
    "fixing change, take lifecycle steps.",
    no_args_is_help=True,
)

ProblemArgument = Annotated[str, typer.Argument(help="The problem's id (prb-...).")]

# The domain's field names as this command line's arguments and options.
OPTIONS = {
    "problem_id": "PROBLEM",
    "incident_id": "INCIDENT",
    "change_id": "CHANGE",
    "transition": "STEP",
    "root_ci_id": "--root-ci",
    "incident_ids": "--incident",
    "limit": "--first",
}


ERRORS = DeskErrors(OPTIONS)
_desk = ERRORS.desk  # the services, you the actor, refusals as one line naming the option


def _ci(services: Services, ref: str | None, option: str = "--root-ci") -> str | None:
    """The CI id ``ref`` (an id, key or identifier) names; blank stays blank (``update``
    clears the root CI with it)."""
    if ref is None or not ref.strip():
        return ref
    try:
        return services.catalog.resolve(ref)
    except (UnknownCI, ValidationFailed) as exc:
        fail(f"{option}: {ref}: {exc}")


def _status(value: str | None) -> ProblemStatus | None:
    if value is None:
        return None
    try:
        return ProblemStatus(value.strip().lower())
    except ValueError:
        fail(f"--status: '{value}' is not one of {', '.join(s.value for s in ProblemStatus)}")


# -- printing ------------------------------------------------------------------------------------


def _summary(p: Problem, cis: dict[str, str]) -> str:
    root = cis.get(p.root_ci_id, p.root_ci_id) if p.root_ci_id else "-"
    return (
        f"PRB{p.number} {p.id} [{p.status.value}] {p.title} (root CI {root}, "
        f"assignee {p.assignee or 'nobody'}, {len(p.incident_ids)} incidents)"
    )


def _print_problem(services: Services, p: Problem, as_json: bool) -> None:
    """A problem after a change: JSON of the record, or its one-line summary."""
    if as_json:
        print_json(p)
        return
    cis = names(services, [p.root_ci_id] if p.root_ci_id else [])
    out.print(_summary(p, cis), markup=False, highlight=False, soft_wrap=True)


def _show(services: Services, p: Problem, as_json: bool) -> None:
    problems = services.desk.problems
    history = problems.history(p.id)
    steps = problems.allowed_steps(p.status)
    change = problems.fixing_change(p)
    proposal = problems.resolution_proposal(p)
    if as_json:
        print_json(
            {
                "problem": p,
                "allowed_steps": steps,
                "fixing_change": change,
                "resolution_proposal": proposal,
                "history": history,
            }
        )
        return
    cis = names(services, [p.root_ci_id] if p.root_ci_id else [])
    out.print(_summary(p, cis), markup=False, highlight=False, soft_wrap=True)
    fields = {
        "signature": p.signature,
        "reason": p.reason,
        "description": p.description,
        "root cause": p.root_cause,
        "fix": p.fix,
        "known error": p.known_error,
        "workaround": p.workaround,
        "fixing change": change and f"{change.number} '{change.title}' [{change.status.value}]",
        "resolved": p.resolved_at and f"{p.resolved_at:%Y-%m-%d %H:%M} UTC",
        "closed": p.closed_at and f"{p.closed_at:%Y-%m-%d %H:%M} UTC",
        "resolution": p.resolution,
        "incidents": ", ".join(p.incident_ids),
    }
    for name, value in fields.items():
        if value:
            out.print(f"  {name}: {value}", markup=False, highlight=False, soft_wrap=True)
    if proposal:
        out.print(f"  proposed: {proposal}", markup=False, highlight=False, soft_wrap=True)
    out.print(f"  allowed steps: {', '.join(steps) or 'none'}", markup=False, highlight=False)
    table = Table("at (UTC)", "actor", "kind", "field", "old -> new", "text", title="history")
    for e in history:
        moved = f"{e.old or '-'} -> {e.new or '-'}" if e.field else ""
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            e.actor,
            e.kind.value,
            e.field or "",
            escape(moved),
            escape(e.text),
        )
    out.print(table)


# -- commands ------------------------------------------------------------------------------------


@problem_app.command("list")
def problem_list(
    status: Annotated[str | None, typer.Option(help="A status (open, known_error ...).")] = None,
    ci: Annotated[str | None, typer.Option("--ci", help="Only those rooted at this CI.")] = None,
    assignee: Annotated[str | None, typer.Option(help="Only those this agent holds.")] = None,
    first: Annotated[int, typer.Option(help="At most this many (1..1000).")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Problems, newest first."""
    from servicegraph.ticketing.ports import ProblemFilter

    wanted = _status(status)
    with _desk(None, as_json, read_only=True) as services:
        root = _ci(services, ci, "--ci")
        query = ProblemFilter(
            status=wanted, root_ci_ids=(root,) if root else None, assignee=assignee, limit=first
        )
        items = services.desk.problems.find(query)
        if as_json:
            print_json(items)
            return
        cis = names(services, {p.root_ci_id for p in items if p.root_ci_id})
        table = Table(title=f"{len(items)} problems", title_justify="left")
        for column in ("#", "id", "status", "assignee", "title", "root CI", "incidents"):
            table.add_column(column, overflow="fold")
        for p in items:
            table.add_row(
                f"PRB{p.number}",
                p.id,
                p.status.value,
                p.assignee or "-",
                escape(p.title),
                cis.get(p.root_ci_id, p.root_ci_id) if p.root_ci_id else "-",
                str(len(p.incident_ids)),
            )
        out.print(table)


@problem_app.command("show")
def problem_show(problem: ProblemArgument, as_json: JsonOption = False) -> None:
    """A problem with its analysis, fixing change, the steps allowed now and its history."""
    with _desk(None, as_json, read_only=True) as services:
        _show(services, services.desk.problems.get(problem), as_json)


@problem_app.command("create")
def problem_create(
    title: Annotated[str, typer.Option(help="What keeps going wrong.")],
    description: Annotated[str, typer.Option()] = "",
    root_ci: Annotated[
        str | None, typer.Option("--root-ci", help="The CI at its root (id, key, identifier).")
    ] = None,
    incident: Annotated[
        list[str] | None, typer.Option("--incident", help="An incident that is an instance.")
    ] = None,
    known_error: Annotated[
        str | None, typer.Option(help="Its cause, when known: a known error at once.")
    ] = None,
    workaround: Annotated[str | None, typer.Option(help="With --known-error.")] = None,
    assignee: Annotated[str | None, typer.Option(help="The agent who analyses it.")] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open a problem by hand."""
    from servicegraph.ticketing.problems import NewProblem

    with _desk(actor, as_json) as services:
        new = NewProblem(
            title=title,
            description=description,
            root_ci_id=_ci(services, root_ci),
            incident_ids=tuple(incident or ()),
            known_error=known_error,
            workaround=workaround,
            assignee=assignee,
        )
        _print_problem(services, services.desk.problems.create(new), as_json)


@problem_app.command("update")
def problem_update(
    problem: ProblemArgument,
    title: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    root_cause: Annotated[str | None, typer.Option(help="What causes it.")] = None,
    fix: Annotated[str | None, typer.Option(help="The permanent fix.")] = None,
    root_ci: Annotated[
        str | None, typer.Option("--root-ci", help="The CI at its root; '' for none.")
    ] = None,
    assignee: Annotated[
        str | None, typer.Option(help="An active agent's login; '' for nobody.")
    ] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a problem's fields and its root-cause analysis."""
    from servicegraph.ticketing.problems import ProblemEdit

    with _desk(actor, as_json) as services:
        edit = ProblemEdit(
            title=title,
            description=description,
            root_cause=root_cause,
            fix=fix,
            root_ci_id=_ci(services, root_ci),
            assignee=assignee,
        )
        _print_problem(services, services.desk.problems.update(problem, edit), as_json)


@problem_app.command("transition")
def problem_transition(
    problem: ProblemArgument,
    step: Annotated[
        str,
        typer.Argument(
            help="investigate, record_known_error, resolve, close, reopen, cancel, or a status."
        ),
    ],
    assignee: Annotated[
        str | None, typer.Option(help="For investigate (unless the problem has one).")
    ] = None,
    known_error: Annotated[str | None, typer.Option(help="For record_known_error.")] = None,
    workaround: Annotated[str | None, typer.Option(help="For record_known_error.")] = None,
    resolution: Annotated[
        str | None, typer.Option(help="For resolve, and cancel (why no fix).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="For reopen; a note on any step.")] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take a lifecycle step (`problem show` lists those allowed now)."""
    with _desk(actor, as_json) as services:
        done = services.desk.problems.transition(
            problem,
            step.lower(),
            assignee=assignee,
            known_error=known_error,
            workaround=workaround,
            resolution=resolution,
            reason=reason,
        )
        _print_problem(services, done, as_json)


@problem_app.command("known-error")
def problem_known_error(
    problem: ProblemArgument,
    known_error: Annotated[str, typer.Argument(help="The cause, as understood.")],
    workaround: Annotated[str | None, typer.Option(help="What restores service meanwhile.")] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record the problem as a known error, with its workaround (offered on new incidents
    on its root CI or with its alert signature)."""
    with _desk(actor, as_json) as services:
        done = services.desk.problems.record_known_error(problem, known_error, workaround)
        _print_problem(services, done, as_json)


@problem_app.command("link-incident")
def problem_link_incident(
    problem: ProblemArgument,
    incident: Annotated[str, typer.Argument(help="The incident's id (inc-...).")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record the incident as an instance of the problem (not a resolved or closed one)."""
    with _desk(actor, as_json) as services:
        services.desk.incidents.link_problem(incident, problem)
        _print_problem(services, services.desk.problems.get(problem), as_json)


@problem_app.command("link-change")
def problem_link_change(
    problem: ProblemArgument,
    change: Annotated[str, typer.Argument(help="The fixing change's id (chg-...).")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record the change that removes the problem's cause; when it closes successfully,
    `problem show` proposes resolving the problem."""
    with _desk(actor, as_json) as services:
        done = services.desk.problems.link_fixing_change(problem, change)
        _print_problem(services, done, as_json)
