"""The service desk's tickets on the command line:
``servicegraph ticket create|show|list|assign|transition|comment``.

Each command calls the desk's ticket service (``services.desk.tickets``), which checks and
logs every step. You are the actor of what you do: your login, or with ``--as`` the
agent's login you work as (an agent's login often differs from the account the shell
runs under). A refusal prints the option at fault and what is wrong with it on one line
(``--pending-reason: ...``), or with ``--json`` that as JSON, and exits 1; nothing is
written then.

``import FILE`` raises a ticket per row of a CSV or JSON file, all or none (``--dry-run``
checks only); a refusal lists every bad row as ``FILE:LINE: field 'x': why``.

``list`` prints a page and the cursor of the next one: pass it to ``--after``, with the
same filters, until it prints none.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from servicegraph.bootstrap import Services
from servicegraph.cli.common import (
    EXIT_ERROR,
    JsonOption,
    err,
    fail,
    out,
    print_json,
)
from servicegraph.cli.desk_errors import ActorOption, DeskErrors
from servicegraph.cmdb.errors import UnknownCI, ValidationErrors, ValidationFailed
from servicegraph.ticketing.lifecycle import ActorKind
from servicegraph.ticketing.model import Channel, Incident, TicketType
from servicegraph.ticketing.sla import Clock

ticket_app = typer.Typer(
    help="The service desk's tickets (incidents and service requests): raise, show, list, "
    "assign, take lifecycle steps, comment, import.",
    no_args_is_help=True,
)

TicketArgument = Annotated[str, typer.Argument(help="The ticket's id (inc-...).")]

# The domain's field names as this command line's options, for the one line of a refusal.
OPTIONS = {
    "assignment_group": "--group",
    "group": "--group",
    "assignee": "--agent",
    "agent": "--agent",
    "affected_ci_ids": "--ci",
    "custom_fields": "--field",
    "tags": "--tag",
    "tag": "--tag",
    "type": "--type",
    "parent_id": "--parent",
    "ticket_id": "TICKET",
    "transition": "STEP",
    "step": "STEP",
    "text": "TEXT",
    "after": "--after",
    "first": "--first",
}


ERRORS = DeskErrors(OPTIONS)
_desk = ERRORS.desk  # the services, you the actor, refusals as one line naming the option


def _ci_ids(services: Services, refs: Sequence[str]) -> tuple[str, ...]:
    ids = []
    for ref in refs:
        try:
            ids.append(services.catalog.resolve(ref))
        except (UnknownCI, ValidationFailed) as exc:
            fail(f"--ci: {ref}: {exc}")
    return tuple(ids)


def _field_values(pairs: Sequence[str]) -> dict[str, Any]:
    """``name=value`` pairs; a value that reads as JSON (a number, true, a list) is that,
    anything else is text (quote it, '"42"', to keep a number as text)."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            fail(f"--field: '{pair}' is not name=value")
        try:
            values[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[name.strip()] = raw
    return values


def _enum(kind: type[TicketType] | type[Channel], value: str, option: str) -> Any:
    try:
        return kind(value.strip().lower())
    except ValueError:
        fail(f"{option}: '{value}' is not one of {', '.join(k.value for k in kind)}")


# -- printing ------------------------------------------------------------------------------------


def _summary(t: Incident) -> str:
    who = t.assignee or "nobody"
    return (
        f"#{t.number} {t.id} [{t.status.value}] P{t.priority} {t.type.value} "
        f"group {t.assignment_group or '-'}, agent {who}: {t.title}"
    )


def _print_ticket(t: Incident, as_json: bool) -> None:
    """A ticket after a change: JSON of the record, or its one-line summary."""
    if as_json:
        print_json(t)
        return
    out.print(_summary(t), highlight=False, soft_wrap=True, markup=False)


def _allowed_steps(services: Services, t: Incident) -> list[str]:
    """The steps an agent may take on ``t`` now (reopen only within the window)."""
    tickets = services.desk.tickets
    lifecycle = tickets.policy.lifecycle
    if t.status not in lifecycle.states:  # a status the configured lifecycle dropped
        return []
    steps = lifecycle.allowed_names(
        t.status,
        ActorKind.AGENT,
        resolved_at=t.resolved_at,
        now=tickets.clock(),
        reopen_window=tickets.policy.reopen_window,
    )
    return list(steps)


def _show(services: Services, t: Incident, as_json: bool) -> None:
    tickets = services.desk.tickets
    links = tickets.links(t.id)
    history = tickets.history(t.id)
    steps = _allowed_steps(services, t)
    sla = services.desk.sla.clock_of(t.id)
    known = services.desk.problems.known_errors_for(t)  # the KEDB's offer (problems.py)
    if as_json:
        offered = [
            {
                "problem_id": m.problem.id,
                "number": m.problem.number,
                "title": m.problem.title,
                "known_error": m.problem.known_error,
                "workaround": m.workaround,
                "why": m.why,
            }
            for m in known
        ]
        print_json(
            {
                "ticket": t,
                "sla": sla,
                "links": links,
                "history": history,
                "allowed_steps": steps,
                "known_errors": offered,
            }
        )
        return
    out.print(_summary(t), highlight=False, soft_wrap=True, markup=False)
    if sla is not None:
        out.print(f"  SLA: policy {sla.policy} on the {sla.calendar} calendar", highlight=False)
        for c in sla.clocks:
            out.print(f"    {_clock_line(c)}", highlight=False, soft_wrap=True)
    fields = {
        "channel": t.channel.value,
        "requester": t.requester,
        "organisation": t.organisation,
        "service": t.service,
        "category": t.category,
        "impact x urgency": f"{t.impact} x {t.urgency}",
        "priority override": t.priority_reason and f"{t.priority_reason} ({t.priority_set_by})",
        "routed by": t.routed_by,
        "pending reason": t.pending_reason,
        "resolution": t.resolution_code and f"{t.resolution_code}: {t.resolution or ''}",
        "close code": t.close_code,
        "affected CIs": ", ".join(t.affected_ci_ids),
        "tags": ", ".join(t.tags),
        "custom fields": json.dumps(t.custom_fields, ensure_ascii=False) if t.custom_fields else "",
        "description": t.description,
    }
    for name, value in fields.items():
        if value:
            out.print(f"  {name}: {value}", highlight=False, soft_wrap=True)
    for link in links:
        out.print(f"  link: {link.source_id} {link.kind.value} {link.target_id}", highlight=False)
    out.print(f"  allowed steps: {', '.join(steps) or 'none'}", highlight=False)
    if known:
        out.print("  Known errors:", highlight=False)
        for m in known:  # people's text: printed as it is, never read as markup
            error = m.problem.known_error or m.problem.title
            out.print(f"    PRB{m.problem.number} {m.problem.id} ({m.why}): {error}",
                      markup=False, highlight=False, soft_wrap=True)  # fmt: skip
            if m.workaround:
                out.print(f"      workaround: {m.workaround}", markup=False, highlight=False,
                          soft_wrap=True)  # fmt: skip
    table = Table("at (UTC)", "actor", "kind", "field", "old -> new", "text", title="history")
    for e in history:
        change = f"{e.old or '-'} -> {e.new or '-'}" if e.field else ""
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.kind.value, e.field or "", change, e.text
        )
    out.print(table)


def _duration(value: dt.timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    return " ".join(p for p in (f"{days}d" * bool(days), f"{hours}h" * bool(hours),
                                f"{mins}m" * bool(mins or not (days or hours))) if p)  # fmt: skip


def _clock_line(c: Clock) -> str:
    """``resolution  at_risk  3h 10m of 4h, 50m left, due 2026-11-02 13:00 UTC (paused)``"""
    line = f"{c.kind.value:<10} {c.state.value:<8} {_duration(c.elapsed)} of {_duration(c.target)}"
    if c.stopped_at is not None:
        line += f", stopped {c.stopped_at:%Y-%m-%d %H:%M} UTC"
    elif c.breached_at is not None:
        line += f", breached {c.breached_at:%Y-%m-%d %H:%M} UTC"
    else:
        line += f", {_duration(c.remaining)} left, due {c.due:%Y-%m-%d %H:%M} UTC"
    return line + (" (paused)" if c.paused else "")


# -- commands ------------------------------------------------------------------------------------


@ticket_app.command("create")
def ticket_create(
    title: Annotated[str, typer.Option(help="What is wrong, or what is asked for.")],
    ticket_type: Annotated[
        str, typer.Option("--type", help="incident or service_request.")
    ] = TicketType.INCIDENT.value,
    description: Annotated[str, typer.Option()] = "",
    channel: Annotated[
        str, typer.Option(help="phone, email, portal, monitoring, api, chat, import.")
    ] = Channel.PHONE.value,
    requester: Annotated[str | None, typer.Option(help="A contact's id or email.")] = None,
    service: Annotated[str | None, typer.Option(help="A catalogue service's id.")] = None,
    category: Annotated[str | None, typer.Option(help="A category path (network/vpn).")] = None,
    impact: Annotated[str | None, typer.Option(help="high, medium or low.")] = None,
    urgency: Annotated[str | None, typer.Option(help="high, medium or low.")] = None,
    priority: Annotated[
        int | None, typer.Option(help="1..5 instead of the matrix's (needs --priority-reason).")
    ] = None,
    priority_reason: Annotated[str | None, typer.Option()] = None,
    group: Annotated[str | None, typer.Option(help="The group [default: routing].")] = None,
    agent: Annotated[str | None, typer.Option(help="An agent of the group.")] = None,
    ci: Annotated[
        list[str] | None, typer.Option("--ci", help="An affected CI (id, key, identifier).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag")] = None,
    field: Annotated[
        list[str] | None, typer.Option("--field", help="A custom field: name=value.")
    ] = None,
    parent: Annotated[str | None, typer.Option(help="The parent ticket's id.")] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Raise a ticket; routing picks the group unless --group says it."""
    from servicegraph.ticketing.tickets import NewTicket

    with _desk(actor, as_json) as services:
        new = NewTicket(
            type=_enum(TicketType, ticket_type, "--type"),
            title=title,
            description=description,
            channel=_enum(Channel, channel, "--channel"),
            requester=requester,
            service=service,
            category=category,
            impact=impact,
            urgency=urgency,
            priority=priority,
            priority_reason=priority_reason,
            assignment_group=group,
            assignee=agent,
            affected_ci_ids=_ci_ids(services, ci or []),
            tags=tuple(tag or ()),
            custom_fields=_field_values(field or []),
            parent_id=parent,
        )
        created = services.desk.tickets.create(new)
        _print_ticket(created, as_json)
        if not as_json and created.routed_by:
            err.print(f"routed to {created.assignment_group} by {created.routed_by}")


@ticket_app.command("show")
def ticket_show(ticket: TicketArgument, as_json: JsonOption = False) -> None:
    """A ticket with its links, the steps allowed now and its whole history."""
    with _desk(None, as_json, read_only=True) as services:
        _show(services, services.desk.tickets.get(ticket), as_json)


@ticket_app.command("list")
def ticket_list(
    group: Annotated[str | None, typer.Option(help="A group's tickets, in queue order.")] = None,
    mine: Annotated[bool, typer.Option("--mine", help="Yours (or --as's) only.")] = False,
    status: Annotated[str | None, typer.Option(help="A status (new, pending ...).")] = None,
    open_only: Annotated[
        bool, typer.Option("--open", help="Only tickets still worked (new to pending).")
    ] = False,
    ticket_type: Annotated[str | None, typer.Option("--type")] = None,
    category: Annotated[str | None, typer.Option(help="This category and below.")] = None,
    tag: Annotated[str | None, typer.Option()] = None,
    first: Annotated[int, typer.Option(help="Tickets per page (1..500).")] = 50,
    after: Annotated[str | None, typer.Option(help="The cursor the last page printed.")] = None,
    due: Annotated[
        bool, typer.Option("--due", help="By SLA due time: breached first, no clocks last.")
    ] = False,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """A page of tickets (newest first; with --group or --mine priority then age; with
    --due by SLA due time) and the cursor of the next page."""
    from servicegraph.ticketing.lifecycle import TicketStatus
    from servicegraph.ticketing.ports import IncidentFilter, TicketOrder

    if not 1 <= first <= 500:
        fail("--first: must be between 1 and 500")
    wanted = None
    if status is not None:
        try:
            wanted = TicketStatus(status.strip().lower())
        except ValueError:
            fail(f"--status: '{status}' is not one of {', '.join(s.value for s in TicketStatus)}")
    with _desk(actor, as_json, read_only=True) as services:
        tickets = services.desk.tickets
        agent = actor or getpass.getuser()
        if mine and agent not in tickets.directory().agents:
            fail(f"--as: no agent with login '{agent}' (--mine lists the tickets of --as, "
                 "by default your login)")  # fmt: skip
        plain = wanted is None and not (open_only or ticket_type or category or tag)
        queue_order = TicketOrder.DUE if due else TicketOrder.QUEUE
        if plain and group and not mine:
            page = tickets.queue(group, first=first, after=after, order=queue_order)
        elif plain and mine and not group:
            page = tickets.mine(agent, first=first, after=after, order=queue_order)
        else:
            query = IncidentFilter(
                status=wanted,
                open=True if open_only or (mine and wanted is None) else None,
                assignment_group=group,
                assignee=agent if mine else None,
                type=_enum(TicketType, ticket_type, "--type") if ticket_type else None,
                category=category,
                tag=tag,
                order=queue_order if group or mine or due else TicketOrder.NEWEST,
                limit=first,
            )
            page = tickets.find(query, after=after)
        if as_json:
            print_json({"items": page.items, "next_cursor": page.next_cursor})
            return
        table = Table(title=f"{len(page.items)} tickets", title_justify="left")
        for column in ("#", "id", "P", "status", "type", "group", "agent", "title", "opened"):
            table.add_column(column, overflow="fold")
        for t in page.items:
            table.add_row(
                str(t.number),
                t.id,
                f"P{t.priority}",
                t.status.value,
                t.type.value,
                t.assignment_group or "-",
                t.assignee or "-",
                t.title,
                f"{t.opened_at:%Y-%m-%d %H:%M}",
            )
        out.print(table)
        if page.next_cursor is not None:
            out.print(f"next page: --after {page.next_cursor}", highlight=False, soft_wrap=True)


@ticket_app.command("assign")
def ticket_assign(
    ticket: TicketArgument,
    group: Annotated[str | None, typer.Option(help="The group.")] = None,
    agent: Annotated[str | None, typer.Option(help="An agent of the (new) group.")] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give a ticket to a group, an agent of its group, or both."""
    if group is None and agent is None:
        fail("give --group, --agent or both")
    with _desk(actor, as_json) as services:
        done = services.desk.tickets.assign(ticket, group=group, agent=agent)
        _print_ticket(done, as_json)


@ticket_app.command("transition")
def ticket_transition(
    ticket: TicketArgument,
    step: Annotated[
        str,
        typer.Argument(
            help="start, pend, resume, resolve, close, cancel, reopen, assign, or a status."
        ),
    ],
    pending_reason: Annotated[
        str | None,
        typer.Option(help="For pend: awaiting_requester, awaiting_vendor or awaiting_change."),
    ] = None,
    resolution_code: Annotated[str | None, typer.Option(help="For resolve.")] = None,
    resolution: Annotated[str | None, typer.Option(help="For resolve: the notes.")] = None,
    close_code: Annotated[str | None, typer.Option(help="For close.")] = None,
    reason: Annotated[str | None, typer.Option(help="For cancel and reopen.")] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take a lifecycle step (`ticket show` lists those allowed now)."""
    with _desk(actor, as_json) as services:
        done = services.desk.tickets.transition(
            ticket,
            step.lower(),  # a status as GraphQL shows it (RESOLVED) is fine too
            pending_reason=pending_reason,
            resolution_code=resolution_code,
            resolution=resolution,
            close_code=close_code,
            reason=reason,
        )
        _print_ticket(done, as_json)


@ticket_app.command("comment")
def ticket_comment(
    ticket: TicketArgument,
    text: Annotated[str, typer.Argument(help="The comment.")],
    to_requester: Annotated[
        bool,
        typer.Option(
            "--to-requester",
            help="A reply the requester sees (and is told of); the first one is the "
            "ticket's first response. Default: an internal note.",
        ),
    ] = False,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a comment to a ticket's history: an internal note, or a reply to the requester."""
    with _desk(actor, as_json) as services:
        done = services.desk.tickets.comment(ticket, text, to_requester=to_requester)
        _print_ticket(done, as_json)


def _line_of(e: ValidationFailed) -> int:
    """The line an error's ``file:line`` item names (0 for the file itself)."""
    tail = (e.item or "").rpartition(":")[2]
    return int(tail) if tail.isdigit() else 0


@ticket_app.command("import")
def ticket_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV (header row; type, title, ..., affected_ci_ids and tags ;-separated, "
            "custom.<name>) or JSON (a list of objects, custom_fields an object)."
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row, write nothing.")
    ] = False,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Raise a ticket per row (channel import), routed and checked as `create` does: all
    or nothing, every bad row listed as FILE:LINE: field 'x': why."""
    from servicegraph.ticketing.ticket_import import parse_tickets

    with _desk(actor, as_json) as services:
        rows = parse_tickets(file, resolve_ci=services.catalog.resolve, name=str(file))
        errors = list(rows.errors)
        created: list[Incident] = []
        try:
            created = services.desk.tickets.create_many(
                rows.tickets, dry_run=dry_run or bool(errors), items=rows.items
            )
        except ValidationErrors as exc:
            errors += exc.errors
        if errors:
            errors.sort(key=_line_of)
            if as_json:
                print_json(
                    {
                        "written": False,
                        "errors": [
                            {"item": e.item, "field": e.field, "message": e.reason} for e in errors
                        ],
                    }
                )
            for e in errors:
                err.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
            fail(f"{len(errors)} problem(s); no ticket was imported", EXIT_ERROR)
    numbers = [t.number for t in created]
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "created": 0 if dry_run else len(created),
                "checked": len(created),
                "numbers": [] if dry_run else numbers,
                "tickets": created,
            }
        )
        return
    for t in created:
        out.print(_summary(t), highlight=False, soft_wrap=True, markup=False)
    if dry_run:
        err.print(
            f"dry run: {len(created)} ticket(s) checked; nothing was written", highlight=False
        )
    else:
        span = f"#{numbers[0]}..#{numbers[-1]}" if numbers else "none"
        err.print(f"created {len(created)} ticket(s): {span}", highlight=False)
