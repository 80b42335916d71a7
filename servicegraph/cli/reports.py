"""The desk's reports on the command line: ``servicegraph report NAME [--from --to --by
FIELD --per day|week|month --timezone TZ --group/--service/--priority/--type/--channel]
[--csv|--json]``.

Each figure is defined in ``servicegraph.ticketing.reports`` (and the README's "Reports"
section). A table by default (durations in days, hours or minutes, shares as per cent);
``--csv`` and ``--json`` give every figure as a number: durations in seconds, shares
between 0 and 1, an empty cell or null where no ticket counts. A bad option prints the
option and what is wrong with it on one line and exits 1.
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table

from servicegraph.cli.common import EXIT_USAGE, fail, open_services, out, print_json
from servicegraph.cmdb.errors import CmdbError, ValidationFailed
from servicegraph.ticketing.reports import (
    AGEING,
    GroupBy,
    Report,
    ReportName,
    columns,
    flat,
    report_query,
)

# the domain's names of a query's parts as this command's options
_OPTIONS = {"name": "NAME", "from": "--from", "to": "--to"}

_NAMES = ", ".join(n.value for n in ReportName)
_FIELDS = ", ".join(b.value for b in GroupBy)


def _refuse(exc: ValidationFailed, as_json: bool) -> NoReturn:
    option = _OPTIONS.get(exc.field or "", f"--{exc.field}")
    if as_json:
        print_json({"errors": [{"field": exc.field, "option": option, "message": exc.reason}]})
    fail(f"{option}: {exc.reason}")


def report(
    name: Annotated[str, typer.Argument(help=f"The report: {_NAMES}.")],
    start: Annotated[
        str | None,
        typer.Option("--from", help="From this date or ISO time on (inclusive)."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", help="Up to this date (the whole day) or ISO time (exclusive)."),
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help=f"Group by one of {_FIELDS}.")] = None,
    per: Annotated[
        str | None, typer.Option("--per", help="Cut into day, week (ISO) or month periods.")
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option("--timezone", help="Days, weeks and months of this IANA zone (default UTC)."),
    ] = None,
    group: Annotated[str | None, typer.Option(help="Only this assignment group.")] = None,
    service: Annotated[str | None, typer.Option(help="Only this service.")] = None,
    priority: Annotated[str | None, typer.Option(help="Only this priority (1..5).")] = None,
    ticket_type: Annotated[
        str | None, typer.Option("--type", help="Only incident or service_request.")
    ] = None,
    channel: Annotated[str | None, typer.Option(help="Only tickets of this channel.")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV, durations in seconds.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """A report of the desk's tickets: MTTA, MTTR, SLA compliance, backlog and ageing,
    volumes, reassignments, reopens, the source tool's SLA verdict."""
    if as_csv and as_json:
        fail("--csv and --json: choose one", EXIT_USAGE)
    try:
        query = report_query(
            name,
            start=start,
            end=end,
            by=by,
            per=per,
            timezone=timezone,
            group=group,
            service=service,
            priority=priority,
            type=ticket_type,
            channel=channel,
        )
    except ValidationFailed as exc:
        _refuse(exc, as_json)
    with open_services(read_only=True) as services:
        try:
            result = services.desk.reports.run(query)
        except ValidationFailed as exc:
            _refuse(exc, as_json)
        except CmdbError as exc:
            fail(str(exc))
    if as_json:
        print_json(as_document(result))
    elif as_csv:
        _print_csv(result)
    else:
        _print_table(result)


def as_document(result: Report) -> dict[str, Any]:
    """The report as JSON: what was asked, and the rows' figures (``reports.flat``)."""
    q = result.query
    return {
        "report": q.name.value,
        "title": result.definition.title,
        "counted_at": result.definition.instant,
        "from": q.start,
        "to": q.end,
        "by": q.by,
        "per": q.per,
        "timezone": q.timezone,
        "filter": {k: v for k, v in vars(q.filter).items() if v is not None},
        "generated_at": result.generated_at,
        "rows": [flat(r) for r in result.rows],
    }


def _print_csv(result: Report) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    names = columns(result.query.name)
    writer.writerow(names)
    for row in result.rows:
        figures = flat(row)
        writer.writerow(["" if figures[n] is None else _plain(figures[n]) for n in names])


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _print_table(result: Report) -> None:
    q = result.query
    window = f"{q.start.isoformat() if q.start else 'the first ticket'} to "
    window += q.end.isoformat() if q.end else "now"
    title = f"{result.definition.title} ({q.name.value}), by {result.definition.instant}"
    names, lines = _table(result)
    table = Table(title=title, caption=window)
    for i, name in enumerate(names):
        # every cell in full (the headings wrap instead)
        heading = _heading(name, q.by)
        widest = max((len(line[i]) for line in lines), default=0)
        if name in ("period", "key", "clock"):
            widest = max(widest, len(heading))
        table.add_column(heading, min_width=widest or None)
    for line in lines:
        table.add_row(*line)
    out.print(table)
    if not result.rows:
        out.print("no tickets count in this window", highlight=False)


# what a table shows, to fit a terminal (--csv and --json give every figure): no highest
# durations nor the business p90, no instant of a backlog (the end of its period, or now);
# compliance a line per clock
_LEFT_OUT = ("max_s", "business_p90_s", "at")
_CLOCK_FIGURES = ("met", "missed", "compliance", "breached_running")


def _table(result: Report) -> tuple[list[str], list[list[str]]]:
    q = result.query
    head = [n for n in ("period", "key") if (n == "period" and q.per) or (n == "key" and q.by)]
    if q.name is not ReportName.SLA:
        names = head + [
            n for n in columns(q.name) if n not in ("period", "key") and not n.endswith(_LEFT_OUT)
        ]
        return names, [[_cell(n, flat(row)[n]) for n in names] for row in result.rows]
    names = [*head, "clock", *_CLOCK_FIGURES]
    lines = []
    for row in result.rows:
        figures = flat(row)
        for clock in ("response", "resolution"):
            values = {n: figures[n] for n in head} | {"clock": clock}
            values |= {f: figures[f"{clock}_{f}"] for f in _CLOCK_FIGURES}
            lines.append([_cell(n, values[n]) for n in names])
    return names, lines


def _heading(name: str, by: GroupBy | None) -> str:
    if name == "key" and by is not None:
        return by.value
    if name in _AGES:
        return _AGES[name]
    short = name.removesuffix("_s")
    for long, brief in _SHORT:
        short = short.replace(long, brief)
    return short.replace("_", " ")


_AGES = dict(zip(AGEING, ("<1d", "1-3d", "3-7d", "7-30d", ">30d"), strict=True))
# table headings that fit a terminal
_SHORT = (("business_", "biz "), ("compliance", "met %"), ("breached_running", "breached now"))


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-" if name != "key" else "(none)"
    if name.endswith("_s"):
        return duration(float(value))
    if name.endswith(("compliance", "rate", "share")) and isinstance(value, float):
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dt.datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value)


def duration(seconds: float) -> str:
    """``3.2d``, ``4.1h``, ``12m``, ``30s``: a duration at a glance (--csv and --json give
    the seconds)."""
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"
