"""Asset sync with an ERP on the command line: ``servicegraph erp sources|sync|write-back|
report`` over the services of ``servicegraph.collectors.erp`` (``services.erp_sync``,
``erp_write_back``, ``erp_reports``).

A sync is all or nothing, as ``import`` is: one bad record refuses the run, every bad row
is listed as ``file:line: field 'x': why`` and nothing is written, unless
``--allow-partial`` writes the valid rows and records the others as ``invalid_record``
conflicts. ``--dry-run`` reads the feed and shows, per CI and field, what a run would do.
A feed that cannot be read at all (a missing file, an unreachable ERP, a wrong password)
is one line and exit 1; an undeclared source is a usage error (exit 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Annotated, Any, NoReturn

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.status import Status
from rich.table import Table
from rich.text import Text

from servicegraph.cli.common import (
    EXIT_ERROR,
    EXIT_USAGE,
    JsonOption,
    err,
    fail,
    open_services,
    out,
    print_json,
)
from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.model import ConflictKind
from servicegraph.collectors.erp.records import FeedError
from servicegraph.collectors.erp.reports import AssetReport
from servicegraph.collectors.erp.spec import ErpSource, location
from servicegraph.collectors.erp.sync import (
    SyncRefused,
    SyncResult,
    UnknownSource,
    dry_run_lines,
)
from servicegraph.collectors.erp.writeback import WriteBackResult
from servicegraph.runtime.heap import collector_paused

erp_app = typer.Typer(
    help="Asset sync with an ERP: the declared feeds (settings erp.sources), sync runs, "
    "write-back of what the CMDB knows better, and the reconciliation reports.",
    no_args_is_help=True,
)

SourceArgument = Annotated[
    str, typer.Argument(help="The ERP source, as declared under erp.sources (or erp:<name>).")
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Read and compare, show what would change; write nothing.")
]

SHOWN_ROWS = 50  # refused rows listed before "... and N more"
ACTOR = "cli:erp-sync"
# the dry run's actions as dry_run_lines spells them (sync.Action)
ACTION_STYLES = {
    "create": "green",
    "update": "yellow",
    "stale": "red",
    "conflict": "magenta",
    "fresh": "cyan",
    "unchanged": "dim",
}
# SyncResult.summary key -> the row the summary table shows
SUMMARY_ROWS = (
    ("created", "cis_created"),
    ("updated", "cis_updated"),
    ("unchanged", "cis_unchanged"),
    ("marked stale", "cis_marked_stale"),
    ("conflicts", "conflicts"),
    ("rejected", "rejected"),
    ("history entries", "history_entries"),
)


# -- sources ---------------------------------------------------------------------------------


@erp_app.command("sources")
def sources(as_json: JsonOption = False) -> None:
    """The declared ERP feeds.

    Per feed: its kind, where it reads (a URL without its credentials), its schedule,
    whether it is the whole inventory, the attributes it owns and its write-back."""
    with open_services(read_only=True) as services:
        declared = sorted(services.erp_sync.sources.values(), key=lambda s: s.name)
    rows = [_source_json(s) for s in declared]
    if as_json:
        print_json(rows)
        return
    if not rows:
        err.print("no ERP source declared: add one under erp.sources in the settings")
        return
    table = Table(title=f"ERP sources ({len(rows)})", title_justify="left")
    for column in ("name", "kind", "where", "schedule", "complete", "owns", "write-back"):
        table.add_column(column, overflow="fold")
    for row in rows:
        back = row["write_back"]
        table.add_row(
            *map(
                Text,
                (
                    row["name"],
                    row["kind"],
                    row["where"] or "-",
                    _every(row["schedule"]),
                    "yes" if row["complete"] else "no (never marks stale)",
                    ", ".join(row["owns"]) or "-",
                    "-" if back is None else f"{back['target']} ({', '.join(back['fields'])})",
                ),
            )
        )
    out.print(table)


def _source_json(source: ErpSource) -> dict[str, Any]:
    back = source.write_back
    target = None
    if back is not None:
        target = str(back.path) if back.path is not None else f"{back.model} (Tryton)"
    return {
        "name": source.name,
        "source": source.source_name,
        "kind": source.kind,
        "where": location(source),
        "schedule": source.schedule_s,
        "complete": source.complete,
        "allow_partial": source.allow_partial,
        "owns": list(source.owns),
        "write_back": None if back is None else {"target": target, "fields": dict(back.fields)},
    }


def _every(seconds: float) -> str:
    if not seconds:
        return "on demand"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"every {seconds / size:g} {unit}"
    return f"every {seconds:g} s"


# -- sync ------------------------------------------------------------------------------------


class ReadProgress:
    """The feed's ``progress(done, total)`` drawn on stderr: "reading SOURCE..." until the
    feed first reports, then a bar when it knows its total, a spinner and a count when it
    does not; once the last record is read (the feed's last call is ``(n, n)``), the
    status "reconciling N assets..." until the run ends. Transient, and only on a
    terminal: nothing of it stays on the screen or lands in a redirected stderr."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._status: Status | None = None
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._reconciling = False

    def __enter__(self) -> ReadProgress:
        self._show_status(f"reading {self.source}...")
        return self

    def __call__(self, done: int, total: int | None) -> None:
        # on a file or a pipe a bar is noise (and rich's Progress.stop writes an empty line
        # to a console that is not interactive)
        if self._reconciling or not err.is_interactive:
            return
        if self._progress is None or self._task is None:
            self._stop()
            self._progress, self._task = self._start(total)
        self._progress.update(self._task, completed=done, total=total)
        if total is not None and done >= total:
            self._reconciling = True
            self._show_status(f"reconciling {done:,} assets...")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _start(self, total: int | None) -> tuple[Progress, TaskID]:
        if total is not None:
            progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            )
        else:  # a feed that pages without a total (HTTP): a count, not a guessed bar
            progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("{task.completed:,} records"),
                console=err,
                transient=True,
            )
        progress.start()
        return progress, progress.add_task(f"reading {self.source}", total=total)

    def _show_status(self, message: str) -> None:
        self._stop()
        self._status = err.status(message)
        self._status.start()

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None
        if self._status is not None:
            self._status.stop()
            self._status = None


@erp_app.command("sync")
def sync(
    source: SourceArgument,
    dry_run: DryRunOption = False,
    allow_partial: Annotated[
        bool,
        typer.Option(
            "--allow-partial",
            help="Write the valid records when some are bad; the bad ones are recorded as "
            "invalid_record conflicts (see `servicegraph conflicts`).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Read a feed and reconcile its assets; --dry-run shows what would change.

    The assets are recorded as the source erp:<name>. One bad record refuses the run
    (every bad row is listed) unless --allow-partial; --dry-run shows per CI and field
    what the run would create, change or mark stale, and writes nothing."""
    with open_services() as services:
        try:
            # one large unit of work (a dry run's is rolled back) in a process doing nothing else
            with ReadProgress(source) as progress, change_context(actor=ACTOR), collector_paused():
                result = services.erp_sync.sync(
                    source, dry_run=dry_run, allow_partial=allow_partial, progress=progress
                )
        except UnknownSource as exc:
            fail(str(exc), EXIT_USAGE)
        except FeedError as exc:
            fail(str(exc))
        except SyncRefused as exc:
            _refused(exc, source, as_json)
    if as_json:
        print_json(result)
        return
    if result.dry_run:
        _print_plan(result)
    _print_summary(result)
    _print_problems(result, allow_partial)
    for note in result.notes:
        err.print(Text(f"note: {note}"), soft_wrap=True)
    if result.dry_run:
        err.print("dry run: nothing was written")


def _refused(exc: SyncRefused, source: str, as_json: bool) -> NoReturn:
    """Every bad row (the first SHOWN_ROWS on the terminal, all of them in JSON), exit 1."""
    if as_json:
        print_json({"written": False, "rejected": exc.errors})
    for error in exc.errors[:SHOWN_ROWS]:
        err.print(Text.assemble(("invalid: ", "red"), str(error)), soft_wrap=True)
    if len(exc.errors) > SHOWN_ROWS:
        err.print(f"... and {len(exc.errors) - SHOWN_ROWS:,} more")
    fail(
        f"{len(exc.errors):,} invalid record(s) from {source}; nothing was written; "
        "fix the rows or pass --allow-partial",
        EXIT_ERROR,
    )


def _print_plan(result: SyncResult) -> None:
    for line in dry_run_lines(result):
        text = Text(line)
        if not line.startswith(" "):  # a CI's line starts with its action
            action = line.split(" ", 1)[0]
            text.stylize(f"bold {ACTION_STYLES.get(action, '')}".strip(), 0, len(action))
        elif line.lstrip().startswith("conflict:"):
            text.stylize(ACTION_STYLES["conflict"])
        out.print(text, soft_wrap=True)


def _print_summary(result: SyncResult) -> None:
    what = "dry run of" if result.dry_run else "sync of"
    # the heading and the note as lines, not the table's title and caption: those wrap
    # at the narrow table's width
    out.print(
        Text(f"{what} {result.source} (run {result.run_id}): {result.records:,} records"),
        soft_wrap=True,
    )
    table = Table()
    table.add_column("")
    table.add_column("count", justify="right")
    for label, key in SUMMARY_ROWS:
        table.add_row(label, f"{result.summary.get(key, 0):,}")
    out.print(table)
    out.print(
        "complete: what the feed no longer lists counts a missed run towards stale"
        if result.complete
        else "not complete: nothing it leaves out is counted as gone from the ERP",
        soft_wrap=True,
        highlight=False,
    )


def _print_problems(result: SyncResult, allow_partial: bool) -> None:
    """Rejected rows and conflicts on stderr; the rejected rows a partial run recorded as
    invalid_record conflicts are shown once, as rejected."""
    rejected = {e.origin for e in result.rejected}
    if result.written:
        how = "left out, recorded as an invalid_record conflict"
    else:
        how = "a real run leaves it out" if allow_partial else "it refuses a real run"
    for error in result.rejected:
        err.print(Text.assemble(("rejected: ", "red"), f"{error} ({how})"), soft_wrap=True)
    for conflict in result.conflicts:
        if conflict.kind is ConflictKind.INVALID_RECORD and conflict.item in rejected:
            continue
        err.print(Text.assemble(("conflict: ", "magenta"), str(conflict)), soft_wrap=True)


# -- write-back ------------------------------------------------------------------------------


@erp_app.command("write-back")
def write_back(
    source: SourceArgument, dry_run: DryRunOption = False, as_json: JsonOption = False
) -> None:
    """Send what the CMDB knows better to the ERP (the source's write_back).

    Each field of write_back.fields gets its CMDB fact (serial numbers, state ...); only
    fields that differ from what the ERP holds are written, so a second run writes
    nothing."""
    with open_services(read_only=True) as services:
        try:
            with err.status(f"comparing the CMDB with {source}..."):
                result = services.erp_write_back.run(source, dry_run=dry_run)
        except UnknownSource as exc:
            fail(str(exc), EXIT_USAGE)
        except FeedError as exc:
            fail(str(exc))
    if as_json:
        print_json(result)
        return
    _print_write_back(result)


def _print_write_back(result: WriteBackResult) -> None:
    for change in result.changes:
        out.print(
            Text.assemble(
                (change.key, "bold"),
                f" ({change.name}) {change.field}: {_short(change.old)} -> {_short(change.new)}",
            ),
            soft_wrap=True,
        )
    records = len({c.key for c in result.changes})
    compared = f"{result.assets:,} assets of {result.source} compared"
    if result.dry_run:
        err.print(
            f"{records:,} records would be written ({compared}); dry run: nothing was written",
            soft_wrap=True,
        )
    else:
        err.print(f"{result.written:,} records written ({compared})", soft_wrap=True)


# -- report ----------------------------------------------------------------------------------


@erp_app.command("report")
def report(
    source: Annotated[
        str | None,
        typer.Argument(help="Only this ERP source's assets (default: every source's)."),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Also dry-run SOURCE's feed (reads the ERP, writes nothing) for the values "
            "the ERP states that a stronger source contradicts.",
        ),
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="Most rows of each section.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Ghost assets, unregistered devices and mismatches between the ERP and discovery.

    Ghost assets: the ERP lists them, discovery has not seen them lately. Unregistered
    devices: discovery sees them, no ERP feed lists them. Mismatches: one asset with two
    serials; with --live, also the ERP's values a stronger source contradicts."""
    if live and source is None:
        fail("--live dry-runs one feed: name the SOURCE", EXIT_USAGE)
    # a live report dry-runs the feed: a rolled-back unit of work, which needs write access
    with open_services(read_only=not live) as services:
        try:
            what = f"reading {source} (dry run)..." if live else "reading the estate..."
            with err.status(what):
                found = services.erp_reports.report(source, live=live)
        except UnknownSource as exc:
            fail(str(exc), EXIT_USAGE)
        except FeedError as exc:
            fail(str(exc))
    if as_json:
        print_json(_report_json(found, limit))
        return
    _print_report(found, limit)


def _report_json(found: AssetReport, limit: int) -> dict[str, Any]:
    return {
        "source": found.source,
        "erp_assets": found.erp_assets,
        "discovered": found.discovered,
        "counts": {
            "ghosts": len(found.ghosts),
            "unregistered": len(found.unregistered),
            "mismatches": len(found.mismatches),
        },
        "ghosts": found.ghosts[:limit],
        "unregistered": found.unregistered[:limit],
        "mismatches": found.mismatches[:limit],
    }


def _print_report(found: AssetReport, limit: int) -> None:
    assets = f"{found.erp_assets:,} ERP assets" + (f" of {found.source}" if found.source else "")
    _section(
        f"ghost assets: {len(found.ghosts):,} of {assets} not discovered",
        ("name", "class", "ERP source", "ERP id", "last discovered", "CI"),
        [
            (g.name, g.ci_class, g.source, g.key, _when(g.last_discovered), g.ci_id)
            for g in found.ghosts
        ],
        limit,
    )
    _section(
        f"unregistered devices: {len(found.unregistered):,} of {found.discovered:,} "
        "discovered, in no ERP feed",
        ("name", "class", "seen by", "last seen", "serial number", "CI"),
        [
            (
                u.name,
                u.ci_class,
                ", ".join(u.seen_by),
                _when(u.last_seen),
                u.serial_number or "-",
                u.ci_id,
            )
            for u in found.unregistered
        ],
        limit,
    )
    _section(
        f"mismatches: {len(found.mismatches):,} among {assets}",
        ("name", "ERP id", "field", "ERP value", "CMDB value", "detail"),
        [
            (m.name, m.key or "-", m.field, _short(m.erp_value), _short(m.cmdb_value), m.detail)
            for m in found.mismatches
        ],
        limit,
    )


def _section(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], limit: int) -> None:
    if not rows:
        out.print(Text(f"{title}: none"), soft_wrap=True)
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows[:limit]:
        table.add_row(*map(Text, row))  # Text: values are data, not Rich markup
    out.print(table)
    if len(rows) > limit:
        err.print(f"... and {len(rows) - limit:,} more (--limit)")


def _when(at: Any) -> str:
    return "never" if at is None else f"{at:%Y-%m-%d %H:%M}Z"


def _short(value: Any) -> str:
    if value is None:
        return "-"
    text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
