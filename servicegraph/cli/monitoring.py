"""Monitoring on the command line: incidents, problems and problem candidates, alerts that
map to no CI, the inbox of received events, and correlating what waits in it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from servicegraph.cli.common import JsonOption, err, fail, open_services, out, print_json, resolve


def incidents(
    status: Annotated[
        str | None,
        typer.Option(help="open (new to pending), or a status: new, assigned, resolved ..."),
    ] = None,
    ci: Annotated[str | None, typer.Option(help="Only incidents touching this CI.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Incidents, newest first: priority, root cause, impacted services."""
    from servicegraph.ticketing.lifecycle import TicketStatus
    from servicegraph.ticketing.ports import IncidentFilter

    with open_services(read_only=True) as services:
        try:
            wanted = TicketStatus(status) if status and status != "open" else None
        except ValueError:
            fail(f"--status must be open or one of {', '.join(s.value for s in TicketStatus)}")
        ci_ids = tuple(resolve(services, [ci])) if ci else None
        items = services.desk.incidents.find(
            IncidentFilter(
                status=wanted, open=True if status == "open" else None, ci_ids=ci_ids, limit=limit
            )
        )
        if as_json:
            print_json(items)
            return
        table = Table(title=f"{len(items)} incidents", title_justify="left")
        for column in ("#", "P", "status", "title", "root cause", "alerts", "opened (UTC)"):
            table.add_column(column, overflow="fold")
        for i in items:
            root = i.root_ci_id or "-"
            if i.root_inferred:
                root += f" (inferred, {i.root_confidence:.0%})"
            table.add_row(
                str(i.number),
                f"P{i.priority}",
                i.status.value + (" flapping" if i.flapping else ""),
                i.title,
                root,
                str(i.alert_count),
                f"{i.opened_at:%Y-%m-%d %H:%M:%S}",
            )
        out.print(table)


def problems(as_json: JsonOption = False) -> None:
    """Problems opened from recurring incidents."""
    from servicegraph.ticketing.ports import ProblemFilter

    with open_services(read_only=True) as services:
        items = services.desk.problems.find(ProblemFilter())
        if as_json:
            print_json(items)
            return
        for p in items:
            out.print(
                f"PRB{p.number} [{p.status.value}] {p.title}: {p.reason} "
                f"({len(p.incident_ids)} incidents)",
                highlight=False,
            )


def problem_candidates(
    days: Annotated[float, typer.Option(min=0.01, help="Look back this many days.")] = 30,
    limit: Annotated[int, typer.Option(min=1)] = 20,
    as_json: JsonOption = False,
) -> None:
    """Which items are behind most of the recent incidents?"""
    from servicegraph.correlation.problems import problem_candidates as candidates

    with open_services(read_only=True) as services:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        items = candidates(services.correlator, since=since, limit=limit)
        if as_json:
            print_json(items)
            return
        table = Table(title=f"problem candidates, last {days:g} days", title_justify="left")
        for column in ("CI", "class", "incidents explained", "as root cause", "alerts"):
            table.add_column(column)
        table.add_column("why", overflow="fold")
        for c in items:
            table.add_row(
                f"{c.name}\n[dim]{c.ci_id}[/]",
                c.ci_class,
                str(c.incidents_explained),
                str(c.as_root),
                str(c.alerts),
                c.reason,
            )
        out.print(table)


def unmapped(limit: Annotated[int, typer.Option(min=1)] = 50, as_json: JsonOption = False) -> None:
    """Alerts whose events named no known CI (kept, never dropped)."""
    with open_services(read_only=True) as services:
        items = services.correlator.unmapped_alerts(limit)
        if as_json:
            print_json(items)
            return
        for a in items:
            out.print(
                f"{a.last_seen:%Y-%m-%d %H:%M:%S} [{a.source}] {a.name} {a.status.value} "
                f"x{a.count} labels={a.labels}",
                highlight=False,
            )


def inbox(limit: Annotated[int, typer.Option(min=1)] = 20, as_json: JsonOption = False) -> None:
    """The last events received (did the sender's POST arrive, and has it been correlated?)."""
    with open_services(read_only=True) as services:
        items = services.correlator.latest_events(limit)
        pending = services.correlator.pending_count()
        if as_json:
            print_json([{"seq": seq, "correlated": done, **e.to_json()} for seq, e, done in items])
            return
        table = Table(
            title=f"last {len(items)} events received, {pending:,} waiting for correlation",
            title_justify="left",
        )
        for column in ("seq", "received", "source", "event", "status", "labels", "correlated"):
            short = column in ("seq", "status", "correlated")
            table.add_column(column, overflow="fold", no_wrap=short)
        for seq, e, done in items:
            received = e.received_at or e.occurred_at
            table.add_row(
                str(seq),
                f"{received:%Y-%m-%d %H:%M:%S}",
                e.source,
                f"{e.name}\n[dim]{e.event_id}[/]",
                e.status.value,
                " ".join(f"{k}={v}" for k, v in e.labels.items()),
                "yes" if done else "waiting",
            )
        out.print(table)


def correlate() -> None:
    """Process every event waiting in the inbox now (the worker does this continuously)."""
    with open_services() as services:
        with err.status("correlating..."):
            result = services.correlator.drain()
        print_json(result)
