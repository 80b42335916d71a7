"""``servicegraph import-tickets``: another tool's ticket history, each incident with its
state changes, assignments, reopens and times (``ticketing.history_import``).

Output and exit codes follow ``servicegraph ticket import``: every bad row on stderr as
``error: FILE:LINE: field 'column': why`` in file order, then one summary line; exit 1
when any row was refused (with ``--strict`` nothing is written then; without it the
other incidents are, and the summary says how many), 0 otherwise. ``--json`` prints the
report on stdout. A progress bar by rows runs on stderr while the log is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from servicegraph.cli.common import (
    EXIT_ERROR,
    EXIT_USAGE,
    JsonOption,
    err,
    fail,
    open_services,
    print_json,
)
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.history_import import ImportReport, LogFormat


def import_tickets(
    file: Annotated[
        Path,
        typer.Argument(
            help="The log: a CSV with a header row (servicenow-event-log: one row per "
            "update of an incident, ServiceNow's columns)."
        ),
    ],
    format: Annotated[
        LogFormat,
        typer.Option(
            "--format",
            help="What the file is: servicenow-event-log (the only format so far).",
            case_sensitive=False,
        ),
    ],
    timezone: Annotated[
        str,
        typer.Option(
            "--timezone",
            help="The zone of the log's times, which name none (an IANA name such as "
            "Europe/Lisbon).",
        ),
    ] = "UTC",
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Read and check the whole log, count what would be imported."
        ),
    ] = False,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Write nothing when any row is bad (default: skip it)."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Import ticket history: each incident with its state changes, assignments, reopens
    and times; incidents already imported (by their number there) are skipped."""
    if not file.is_file():
        fail(f"{file}: cannot read: no such file", EXIT_ERROR)
    with open_services() as services, _bar(file, enabled=not as_json) as progress:
        try:
            report = services.ticket_history.run(
                file,
                format=format,
                name=str(file),
                timezone=timezone,
                dry_run=dry_run,
                strict=strict,
                progress=progress,
            )
        except ValidationFailed as exc:
            if exc.field in ("timezone", "format"):
                fail(f"--{exc.field}: {exc.reason}", EXIT_USAGE)
            raise
    _print(report, file, as_json)


class _Bar:
    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task("reading", total=total)
        self.phase = ""

    def __call__(self, phase: str, rows: int) -> None:
        if phase != self.phase:
            self.phase = phase
            self.progress.reset(self.task, description=phase)
        self.progress.update(self.task, completed=rows)


@contextmanager
def _bar(file: Path, *, enabled: bool) -> Iterator[_Bar]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=err,
        disable=not enabled,
        transient=True,
    )
    with progress:
        yield _Bar(progress, _rows(file))


def _rows(file: Path) -> int:
    """The log's rows, for the bar's total: its lines less the header (quoted line
    breaks make it an estimate; the bar ends when the file does)."""
    lines = 0
    with file.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
    return max(lines - 1, 0)


def _print(report: ImportReport, file: Path, as_json: bool) -> None:
    people = report.people_created
    if as_json:
        print_json(
            {
                "file": str(file),
                "format": report.format.value,
                "dry_run": report.dry_run,
                "strict": report.strict,
                "written": report.written,
                "rows_read": report.rows_read,
                "incidents_read": report.incidents_read,
                "created": report.created,
                "skipped_existing": report.skipped_existing,
                "refused_incidents": report.refused_incidents,
                "refused_rows": report.refused_rows,
                "numbers": [report.first_number, report.last_number]
                if report.first_number is not None
                else [],
                "people_created": people,
                "errors": [
                    {"item": e.item, "field": e.field, "message": e.reason} for e in report.problems
                ],
            }
        )
    else:
        for e in report.problems:
            err.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
    if report.strict and report.problems:
        summary = (
            f"read {report.rows_read:,} row(s): {report.incidents_read:,} incident(s) read, "
            f"{report.refused_incidents:,} refused ({report.refused_rows:,} row(s))"
        )
        outcome = "nothing was imported (--strict)"
    else:
        verb = "would import" if report.dry_run else "imported"
        span = (
            f" (#{report.first_number}..#{report.last_number})"
            if report.first_number is not None
            else ""
        )
        summary = (
            f"{verb} {report.created:,} incident(s){span} from {report.rows_read:,} row(s); "
            f"{report.skipped_existing:,} already imported, skipped; "
            f"{report.refused_incidents:,} refused ({report.refused_rows:,} row(s)); "
            f"new people: {people.groups:,} group(s), {people.agents:,} agent(s), "
            f"{people.contacts:,} contact(s)"
        )
        outcome = "the other incidents were imported"
    if report.dry_run:
        outcome = "dry run: nothing was written"
    if not as_json:
        err.print(summary, highlight=False, soft_wrap=True)
    if report.problems:
        fail(f"{len(report.problems)} problem(s); {outcome}", EXIT_ERROR)
    if report.dry_run and not as_json:
        err.print(outcome, highlight=False)
