"""The configuration graph on the command line: import and export, a CI and its history,
merges, conflicts, counts and the schema. Impact analysis is in ``cli/impact.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from servicegraph.bootstrap import Services
from servicegraph.cli.common import (
    EXIT_CONFLICTS,
    EXIT_USAGE,
    JsonOption,
    err,
    fail,
    names,
    open_services,
    out,
    parse_time,
    print_json,
    resolve,
)
from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.errors import CmdbError, ReconciliationConflicts, ValidationErrors
from servicegraph.cmdb.importer import read_files
from servicegraph.cmdb.observation import ObservationBatch
from servicegraph.cmdb.reconciliation import ConflictPolicy, ReconcileReport
from servicegraph.runtime.heap import collector_paused
from servicegraph.ticketing.timeline import (
    DEFAULT_PAGE,
    MAX_PAGE,
    TimelineEntry,
    TimelineKind,
)

# records per transaction of an import into Neo4j, and of a restore (--commit-every)
DEFAULT_COMMIT_EVERY = 20_000

CIArgument = Annotated[str, typer.Argument(help="The CI (id, key or kind:value).")]


def migrate() -> None:
    """Create or upgrade the store's schema (every command also does this on start)."""
    with open_services():  # opening the services creates or upgrades every schema
        err.print("store schema is current")


def import_(
    files: Annotated[
        list[Path] | None, typer.Argument(help="JSON or CSV files, applied together.")
    ] = None,
    source: Annotated[
        str, typer.Option(help="Name of the data source (drives precedence and staleness).")
    ] = "import",
    complete: Annotated[
        bool,
        typer.Option(
            help="The files are the source's whole inventory: items missing from it count a "
            "missed run towards staleness."
        ),
    ] = False,
    allow_conflicts: Annotated[
        bool,
        typer.Option(help="Import the rest when records conflict; conflicts are recorded."),
    ] = False,
    as_json: JsonOption = False,
    from_export: Annotated[
        Path | None,
        typer.Option(
            "--from-export",
            help="Restore a whole export written by `servicegraph export` (the graph, and the "
            "desk's tickets, people and catalogue) into this (empty) store, with its history, "
            "ids and times.",
        ),
    ] = None,
    commit_every: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Records per transaction. FILES on SQLite: one transaction, all or nothing, "
            f"unless given; on Neo4j: {DEFAULT_COMMIT_EVERY:,} unless given (a failure "
            "part-way keeps the earlier transactions; importing the same files again is "
            f"safe). --from-export: {DEFAULT_COMMIT_EVERY:,}.",
        ),
    ] = None,
) -> None:
    """Import CIs and relationships. See the README for the format and --commit-every."""
    if from_export is not None:
        if files:
            fail("give either FILES or --from-export, not both", EXIT_USAGE)
        _restore_export(from_export, commit_every or DEFAULT_COMMIT_EVERY, as_json)
        return
    if not files:
        fail("give the files to import (or --from-export FILE)", EXIT_USAGE)
    on_conflict: ConflictPolicy = "record" if allow_conflicts else "fail"
    with open_services() as services:
        if commit_every is None and services.settings.store == "neo4j":
            commit_every = DEFAULT_COMMIT_EVERY  # one transaction of a large load runs out
        with err.status("reading files..."):
            batch = read_files(files, services.classes, source=source, complete=complete)
        try:
            # one large batch in a process that does nothing else
            with change_context(actor=f"cli:{source}"), collector_paused():
                if commit_every is None:
                    report = _apply_at_once(services, batch, on_conflict)
                else:
                    report = _apply_in_slices(services, batch, on_conflict, commit_every)
        except ReconciliationConflicts as exc:
            if as_json:
                print_json({"conflicts": exc.conflicts, "written": False})
            fail(
                f"{exc}\nnothing was imported; fix the records or pass --allow-conflicts",
                EXIT_CONFLICTS,
            )
        _print_import(report, source, as_json)


def _apply_at_once(
    services: Services, batch: ObservationBatch, on_conflict: ConflictPolicy
) -> ReconcileReport:
    with err.status(
        f"reconciling {len(batch.cis):,} CIs and {len(batch.relationships):,} relationships..."
    ):
        return services.reconciler.apply(batch, on_conflict=on_conflict)


def _apply_in_slices(
    services: Services, batch: ObservationBatch, on_conflict: ConflictPolicy, commit_every: int
) -> ReconcileReport:
    """The batch in transactions of ``commit_every`` records, with a progress bar; a
    failure part-way says what stays committed."""
    committed = [0, 0]  # records committed, records in all (once planned)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    with progress:
        task = progress.add_task(
            f"reconciling {len(batch.cis):,} CIs and {len(batch.relationships):,} "
            f"relationships, {commit_every:,} a transaction",
            total=None,
        )

        def advance(done: int, total: int) -> None:
            committed[:] = [done, total]
            progress.update(task, completed=done, total=total)

        try:
            return services.reconciler.apply_in_slices(
                batch, slice_size=commit_every, on_conflict=on_conflict, progress=advance
            )
        except (ReconciliationConflicts, ValidationErrors):
            raise  # found before anything is written
        except CmdbError as exc:
            done, total = committed
            if done == 0:
                raise
            fail(
                f"{exc}\n{done:,} of {total:,} records were committed in earlier transactions "
                "and stay; the rest were not imported. Importing the same files again is safe: "
                "it finds the committed records unchanged and writes the rest",
            )


def _print_import(report: ReconcileReport, source: str, as_json: bool) -> None:
    summary = report.summary()
    if as_json:
        print_json({"run_id": report.run_id, **summary, "conflict_details": report.conflicts})
        return
    table = Table(title=f"import from {source} (run {report.run_id})", title_justify="left")
    table.add_column("")
    table.add_column("count", justify="right")
    for key, value in summary.items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    out.print(table)
    for conflict in report.conflicts:
        err.print(f"[yellow]conflict:[/] {conflict}", highlight=False)


def _restore_export(path: Path, commit_every: int, as_json: bool) -> None:
    from servicegraph.runtime.export import Stores, import_all, read_all, summary

    with open_services() as services:
        with err.status(f"checking {path}...") as status:
            export = read_all(path)
            total = sum(export.counts.values())
            status.update(f"restoring {total:,} records...")
            with collector_paused():
                counts = import_all(
                    Stores.of(services),
                    export,
                    commit_every=commit_every,
                    progress=lambda n: status.update(f"restoring {n:,} of {total:,} records..."),
                )
        if as_json:
            print_json({"from_export": str(path), "version": export.version, "counts": counts})
            return
        err.print(f"restored {summary(counts)} from {path}", highlight=False)


def export(
    file: Annotated[
        Path | None, typer.Argument(help="Where to write the export (JSON Lines).")
    ] = None,
    graphml: Annotated[
        Path | None,
        typer.Option(
            "--graphml",
            help="Instead: write a CI's neighbourhood (or with --impact what fails with the "
            "CIs) as GraphML to this file, for yEd or Gephi.",
        ),
    ] = None,
    ci: Annotated[
        list[str] | None,
        typer.Option(
            "--ci", help="With --graphml: the CI (id, key or identifier); repeat with --impact."
        ),
    ] = None,
    depth: Annotated[
        int | None,
        typer.Option(help="With --graphml: the neighbourhood's depth (1), or the impact's bound."),
    ] = None,
    impact: Annotated[
        bool, typer.Option("--impact", help="With --graphml: the impact of the CIs failing.")
    ] = False,
    max_nodes: Annotated[
        int, typer.Option(help="With --graphml: most CIs of a neighbourhood.")
    ] = 10_000,
    yed: Annotated[
        bool, typer.Option("--yed/--no-yed", help="With --graphml: yEd's labels and colours.")
    ] = True,
) -> None:
    """Write the whole graph with its history, keys, sightings and conflicts, and the
    desk (tickets with their alerts, worklog and links, problems, changes, people and the
    service catalogue) to FILE, for `servicegraph import --from-export` into another store
    (e.g. SQLite to Neo4j); or, with --graphml, a CI's neighbourhood or impact for a graph
    editor."""
    if (file is None) == (graphml is None):
        fail("give one of FILE (a whole export) and --graphml FILE", EXIT_USAGE)
    if graphml is not None:
        _export_graphml(graphml, ci or [], depth, impact, max_nodes, yed)
        return
    assert file is not None
    _export_all(file)


def _export_graphml(
    path: Path, refs: list[str], depth: int | None, impact: bool, max_nodes: int, yed: bool
) -> None:
    from servicegraph.cmdb.graphml import impact_graph, neighbourhood_graph, to_graphml

    if not refs or (len(refs) > 1 and not impact):
        fail("--graphml needs one --ci (several only with --impact)", EXIT_USAGE)
    with open_services(read_only=True) as services:
        ids = resolve(services, refs)
        if impact:
            result = services.impact.impact(ids, depth=depth)
            graph = impact_graph(services.catalog, result, services.relationship_rules)
        else:
            graph = neighbourhood_graph(
                services.catalog, ids[0], depth=depth or 1, max_nodes=max_nodes
            )
        try:
            path.write_text(to_graphml(graph, yed=yed), encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write {path}: {exc.strerror or exc}")
    what = "impact" if impact else "neighbourhood"
    err.print(
        f"wrote the {what} of {', '.join(refs)}: {graph.number_of_nodes():,} CIs and "
        f"{graph.number_of_edges():,} relationships to {path}",
        highlight=False,
    )
    if graph.graph.get("truncated"):
        err.print(f"[yellow]warning:[/] stopped at --max-nodes {max_nodes:,}", highlight=False)


def _export_all(file: Path) -> None:
    from servicegraph.runtime.export import Stores, export_all, summary

    with open_services(read_only=True) as services:
        partial = file.with_name(file.name + ".partial")
        try:
            with (
                err.status(f"exporting to {file}...") as status,
                partial.open("w", encoding="utf-8") as handle,
            ):
                counts = export_all(
                    Stores.of(services),
                    handle,
                    progress=lambda n: status.update(f"exported {n:,} records..."),
                )
            partial.replace(file)
        except OSError as exc:
            fail(f"cannot write {file}: {exc.strerror or exc}")
        finally:
            partial.unlink(missing_ok=True)
        err.print(f"exported {summary(counts)} to {file}", highlight=False)


def show(ci: CIArgument, as_json: JsonOption = False) -> None:
    """A CI with its identifiers, attributes, relationships and sources."""
    with open_services(read_only=True) as services:
        (ci_id,) = resolve(services, [ci])
        item = services.catalog.require(ci_id)
        rels = services.catalog.relationships([ci_id])
        sightings = services.catalog.sightings(ci_id)
        if as_json:
            print_json({"ci": item, "relationships": rels, "sightings": sightings})
            return
        out.print(
            f"[bold]{item.name}[/] [dim]{item.id}[/]  {item.ci_class}  "
            f"{item.lifecycle.value}  {item.operational_state.value}"
            + ("  [yellow]stale[/]" if item.stale else "")
        )
        for kind, value in item.identifiers:
            out.print(f"  {kind}: {value}", highlight=False)
        for attr, value in sorted(item.attributes.items()):
            source = item.attribute_sources.get(attr, "?")
            out.print(f"  {attr} = {value!r}  [dim]({source})[/]", highlight=False)
        named = names(services, [r.from_id for r in rels] + [r.to_id for r in rels])
        for rel in rels:
            out.print(
                f"  {named.get(rel.from_id, rel.from_id)} -{rel.type}-> "
                f"{named.get(rel.to_id, rel.to_id)}"
                + (f" {dict(rel.attributes)}" if rel.attributes else ""),
                highlight=False,
            )
        for s in sightings:
            out.print(
                f"  seen by {s.source}: last {s.last_seen:%Y-%m-%d %H:%M:%S}Z, "
                f"missed runs {s.missed_runs}" + (" (stale)" if s.stale else ""),
                highlight=False,
            )


def _short(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def history(
    ci: CIArgument,
    since: Annotated[str | None, typer.Option(help="ISO 8601 start time.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 end time.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_PAGE, help="Most entries to show (a page).")
    ] = DEFAULT_PAGE,
    after: Annotated[
        str | None,
        typer.Option(help="Continue after this cursor (printed below a page with more)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The CI's timeline, oldest first: its changes (attributes, identifiers, relationships,
    merges), every fire and clear of its alerts, and every step of its tickets (opened,
    assigned, commented, resolved with the resolution as written, reopened and why), for
    the CI and the CIs merged into it. A page at a time: --limit, then --after."""
    with open_services(read_only=True) as services:
        (ci_id,) = resolve(services, [ci])
        page = services.desk.timeline.page(
            ci_id,
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
            limit=limit,
            after=after,
        )
        named = names(services, [ci_id, *(e.ci_id for e in page.entries if e.ci_id)])
        if as_json:
            print_json([_timeline_json(e, named) for e in page.entries])
        else:
            title = f"history of {named.get(ci_id, ci_id)} ({ci_id})"
            table = Table(title=title, title_justify="left")
            for column in ("time (UTC)", "kind", "CI", "what happened", "actor", "source"):
                table.add_column(column, overflow="fold")
            for e in page.entries:
                cells = (named.get(e.ci_id, e.ci_id), e.summary, e.actor or "", e.source or "")
                # Text: "[cycle 2 of 4, INC1]" is not Rich markup
                table.add_row(f"{e.at:%Y-%m-%d %H:%M:%S}", e.kind.value, *map(Text, cells))
            out.print(table)
        if page.next_cursor is not None:  # never a silent cut: say how to go on
            err.print(
                f"more entries: servicegraph history {ci} --after {page.next_cursor}"
                + (f" --limit {limit}" if limit != DEFAULT_PAGE else ""),
                highlight=False,
                soft_wrap=True,
            )


def _timeline_json(e: TimelineEntry, named: dict[str, str]) -> dict[str, Any]:
    """An entry for scripts: ``type`` is the timeline kind, ``kind`` what happened (the
    CMDB history kind of a CI change, fired or cleared, the worklog kind of a ticket's
    step), with the record's details; CIs by id and name."""
    row: dict[str, Any] = {
        "at": e.at,
        "type": e.kind,
        "ci_id": e.ci_id,
        "ci_name": named.get(e.ci_id),
        "summary": e.summary,
        "actor": e.actor,
        "source": e.source,
        "cursor": e.cursor,
        "related": [{"id": r.id, "name": r.name, "role": r.role} for r in e.related],
    }
    if e.history is not None:
        h = e.history
        row |= {"kind": h.kind, "field": h.field, "old": h.old, "new": h.new}
        row |= {"other_ci_id": h.other_ci_id, "seq": h.seq}
    elif e.alert is not None and e.cycle is not None:
        a, c = e.alert, e.cycle
        row["kind"] = "fired" if e.kind is TimelineKind.ALERT_FIRED else "cleared"
        row["alert"] = {"fingerprint": a.fingerprint, "name": a.name, "source": a.source}
        row["alert"] |= {"severity": a.severity.name.lower(), "status": a.status}
        row["cycle"] = {"fired_at": c.fired_at, "cleared_at": c.cleared_at}
        row["cycle"]["incident_id"] = c.incident_id
    else:
        ticket = e.incident or e.problem or e.change
        assert ticket is not None
        w = e.work
        row["kind"] = w.kind if w is not None else e.kind.rsplit("_", 1)[-1]
        row["ticket"] = {"id": ticket.id, "number": ticket.number, "title": ticket.title}
        row["ticket"]["status"] = ticket.status
        if w is not None:
            row["work"] = {"text": w.text, "field": w.field, "old": w.old, "new": w.new}
        row |= {"status_from": e.status_from, "status_to": e.status_to, "reason": e.reason}
        row["resolution"] = e.resolution
    return row


def as_of(
    ci: CIArgument,
    at: Annotated[str, typer.Argument(help="ISO 8601 time, e.g. 2026-11-01T12:00:00Z.")],
) -> None:
    """The CI and its relationships as they were at a past time (JSON)."""
    with open_services(read_only=True) as services:
        (ci_id,) = resolve(services, [ci])
        when = parse_time(at, "AT")
        assert when is not None
        state = services.history.as_of(ci_id, when)
        if state is None:
            fail(f"{ci_id} did not exist at {when.isoformat()}")
        print_json(state)


def merge(
    survivor: Annotated[str, typer.Argument(help="The CI that stays.")],
    duplicate: Annotated[str, typer.Argument(help="The CI merged into it and retired.")],
) -> None:
    """Merge a duplicate CI into another, keeping both histories."""
    with open_services() as services:
        survivor_id, duplicate_id = resolve(services, [survivor, duplicate])
        with change_context(actor="cli"):
            services.reconciler.merge(survivor_id, duplicate_id)
        err.print(f"merged {duplicate_id} into {survivor_id}")


def conflicts(
    limit: Annotated[int, typer.Option(min=1)] = 100,
    as_json: JsonOption = False,
) -> None:
    """Reconciliation conflicts recorded so far, newest first."""
    with open_services(read_only=True) as services:
        items = services.catalog.conflicts(limit=limit)
        if as_json:
            print_json(items)
            return
        for c in items:
            out.print(f"{c.detected_at:%Y-%m-%d %H:%M:%S} [{c.source}] {c}", highlight=False)


def stats(as_json: JsonOption = False) -> None:
    """Counts of CIs, relationships, history entries and conflicts."""
    with open_services(read_only=True) as services:
        counts = services.catalog.counts()
        if as_json:
            print_json(counts)
            return
        for key, value in counts.items():
            out.print(f"{key.replace('_', ' ')}: {value:,}")
