"""The ``servicegraph`` command line.

Every command bootstraps the services from settings (environment, ``SERVICEGRAPH_CONFIG``),
does one job and exits non-zero with one clear line when it cannot. ``--json`` gives
output for scripts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import pydantic
import typer
from rich.console import Console
from rich.table import Table

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.errors import (
    CmdbError,
    ReconciliationConflicts,
    ValidationErrors,
)
from servicegraph.cmdb.identifiers import IdentifierRules
from servicegraph.cmdb.impact import AffectedCI
from servicegraph.cmdb.importer import read_files
from servicegraph.cmdb.lookup import resolve_ci
from servicegraph.cmdb.relationships import ImpactDirection, RelationshipRules
from servicegraph.config import Settings
from servicegraph.redaction import redact_uri

app = typer.Typer(
    name="servicegraph",
    help="Open graph CMDB and monitoring integration for IT service desks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# emoji off: values such as the IPv6 address 2001:db8:100::1 hold emoji codes (:100:)
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFLICTS = 3

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DepthOption = Annotated[
    int | None, typer.Option("--depth", min=1, help="Follow at most this many relationships.")
]


def _fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _services(*, read_only: bool = False) -> Iterator[Services]:
    """The services, or exit 1 with one line. ``read_only`` for commands that only read:
    they then work on a data directory the user may read but not write."""
    try:
        services = bootstrap(Settings(), read_only=read_only)
    except CmdbError as exc:
        _fail(str(exc))
    except pydantic.ValidationError as exc:  # one line per problem, not pydantic's report
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        _fail(f"invalid settings: {problems}")
    except (ValueError, FileNotFoundError) as exc:  # invalid settings or config file
        _fail(f"invalid settings: {exc}")
    try:
        yield services
    except ValidationErrors as exc:
        _fail(str(exc))
    except CmdbError as exc:
        _fail(str(exc))
    finally:
        services.close()


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(_jsonable(value), indent=2, ensure_ascii=False) + "\n")


def _resolve(services: Services, refs: Sequence[str]) -> list[str]:
    rules = IdentifierRules(services.settings.identifier_match_order)
    return [resolve_ci(services.store, ref, rules) for ref in refs]


def _names(services: Services, ids: Sequence[str]) -> dict[str, str]:
    return {ci_id: ci.name for ci_id, ci in services.store.get_cis(ids).items()}


def _path_text(
    item: AffectedCI, names: dict[str, str], rules: RelationshipRules, *, downstream: bool
) -> str:
    """The path as the stored relationships read (``vm1 -HOSTED_ON-> h1``), so an arrow
    points backwards (``h1 <-HOSTED_ON- vm1``) where the walk goes against it.

    ``downstream``: the walk follows failure, from the needed CI to the needing one
    (``impact``); otherwise it goes from the needing CI down to what it needs (``deps``,
    ``spof``). Which end of a relationship needs the other is the type's impact direction.
    """
    parts = []
    for step in item.path:
        label = names.get(step.ci_id, step.ci_id)
        if step.relationship is None:
            parts.append(label)
            continue
        if step.relationship not in rules.names():  # not known here: no direction to show
            parts.append(f"-{step.relationship}- {label}")
            continue
        needs_to_end = rules.get(step.relationship).impact is not ImpactDirection.FROM_TO
        # stored from -> to is the walk's direction when the walk ends at the needed end
        along = needs_to_end != downstream
        arrow = f"-{step.relationship}->" if along else f"<-{step.relationship}-"
        parts.append(f"{arrow} {label}")
    return " ".join(parts)


def _affected_table(
    title: str,
    items: Sequence[AffectedCI],
    names: dict[str, str],
    rules: RelationshipRules,
    *,
    downstream: bool,
) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("CI", "class", "depth", "path"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(
            f"{names.get(item.ci_id, item.ci_id)}\n[dim]{item.ci_id}[/]",
            item.ci_class,
            str(item.depth),
            _path_text(item, names, rules, downstream=downstream),
        )
    return table


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [default: 8000].")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, max=64, help="API processes, for more webhook throughput [default: 1]."
        ),
    ] = None,
) -> None:
    """Run the API (health at /healthz) on the embedded store; no server software needed."""
    import uvicorn

    from servicegraph.http.app import create_app

    with _services() as services:
        settings = services.settings
        if settings.embedded_worker_process is None:
            # correlation on a core of its own, when there is a second one
            settings.embedded_worker_process = (os.cpu_count() or 1) > 1
        bind_host = host or settings.api_host
        processes = workers or settings.api_workers
        bind_port = port or settings.api_port
        # A store that cannot be read (a corrupt file) fails here, in one line, instead of
        # in the app's startup with a traceback: the topology reads every CI and
        # relationship. One process keeps it (the app finds it loaded); with several, each
        # loads its own and this one only reads.
        if processes == 1:
            services.impact.refresh()
        else:
            services.store.graph_delta(0)
        if settings.broker_url:
            correlation = "by Celery workers"
        elif not settings.embedded_worker:
            correlation = "off (embedded_worker is false)"
        else:
            where = "a child process" if settings.embedded_worker_process else "a thread"
            correlation = f"in {where}"
        store = str(settings.sqlite_file)
        if settings.store == "neo4j":
            store = redact_uri(settings.neo4j_uri)
        err.print(
            f"servicegraph on http://{bind_host}:{bind_port} "
            f"(store: {settings.store}, {store}; "
            f"correlation {correlation}"
            + (f"; {processes} API processes)" if processes > 1 else ")"),
            highlight=False,
            soft_wrap=True,  # one line, whatever the terminal's width
        )
        if processes == 1:
            uvicorn.run(create_app(services), host=bind_host, port=bind_port, log_level="info")
            return
        # Several API processes: uvicorn starts each from the environment, and one of them,
        # elected through a lock file, runs the correlation worker and the periodic jobs.
        os.environ["SERVICEGRAPH_API_WORKERS"] = str(processes)
        os.environ["SERVICEGRAPH_EMBEDDED_WORKER_PROCESS"] = str(
            bool(settings.embedded_worker_process)
        ).lower()
        metrics_dir = None
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # /metrics sums all processes
            metrics_dir = tempfile.mkdtemp(prefix="servicegraph-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        try:
            uvicorn.run(
                "servicegraph.http.app:app_from_environment",
                factory=True,
                workers=processes,
                host=bind_host,
                port=bind_port,
                log_level="info",
            )
        finally:
            if metrics_dir is not None:
                shutil.rmtree(metrics_dir, ignore_errors=True)


@app.command()
def migrate() -> None:
    """Create or upgrade the store's schema (every command also does this on start)."""
    with _services() as services:
        services.store.migrate()
        err.print("store schema is current")


@app.command("import")
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
            help="Restore a whole graph written by `servicegraph export` into this (empty) "
            "store, with its history, ids and times.",
        ),
    ] = None,
    commit_every: Annotated[
        int, typer.Option(min=1, help="With --from-export: records per transaction.")
    ] = 20_000,
) -> None:
    """Import CIs and relationships, all or nothing. See the README for the format."""
    if from_export is not None:
        if files:
            _fail("give either FILES or --from-export, not both", EXIT_USAGE)
        _restore_export(from_export, commit_every, as_json)
        return
    if not files:
        _fail("give the files to import (or --from-export FILE)", EXIT_USAGE)
    with _services() as services:
        with err.status("reading files...") as status:
            batch = read_files(files, services.classes, source=source, complete=complete)
            status.update(
                f"reconciling {len(batch.cis):,} CIs and {len(batch.relationships):,} "
                "relationships..."
            )
            try:
                with change_context(actor=f"cli:{source}"):
                    report = services.reconciler.apply(
                        batch, on_conflict="record" if allow_conflicts else "fail"
                    )
            except ReconciliationConflicts as exc:
                status.stop()
                if as_json:
                    _print_json({"conflicts": exc.conflicts, "written": False})
                _fail(
                    f"{exc}\nnothing was imported; fix the records or pass --allow-conflicts",
                    EXIT_CONFLICTS,
                )
        summary = report.summary()
        if as_json:
            _print_json({"run_id": report.run_id, **summary, "conflict_details": report.conflicts})
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
    from servicegraph.cmdb.export import import_graph, read_export

    with _services() as services:
        with err.status(f"checking {path}...") as status:
            export = read_export(path)
            total = sum(export.counts.values())
            status.update(f"restoring {total:,} records...")
            counts = import_graph(
                services.store,
                export,
                commit_every=commit_every,
                progress=lambda n: status.update(f"restoring {n:,} of {total:,} records..."),
            )
        if as_json:
            _print_json({"from_export": str(path), "counts": counts})
            return
        err.print(
            f"restored {counts['ci']:,} CIs, {counts['relationship']:,} relationships, "
            f"{counts['history']:,} history entries and {counts['conflict']:,} conflicts "
            f"from {path}",
            highlight=False,
        )


@app.command()
def export(
    file: Annotated[Path, typer.Argument(help="Where to write the export (JSON Lines).")],
) -> None:
    """Write the whole graph with its history, keys, sightings and conflicts to FILE, for
    `servicegraph import --from-export` into another store (e.g. SQLite to Neo4j)."""
    from servicegraph.cmdb.export import export_graph

    with _services(read_only=True) as services:
        partial = file.with_name(file.name + ".partial")
        try:
            with (
                err.status(f"exporting to {file}...") as status,
                partial.open("w", encoding="utf-8") as handle,
            ):
                counts = export_graph(
                    services.store,
                    handle,
                    store_name=services.settings.store,
                    progress=lambda n: status.update(f"exported {n:,} records..."),
                )
            partial.replace(file)
        except OSError as exc:
            _fail(f"cannot write {file}: {exc.strerror or exc}")
        finally:
            partial.unlink(missing_ok=True)
        err.print(
            f"exported {counts['ci']:,} CIs, {counts['relationship']:,} relationships, "
            f"{counts['history']:,} history entries and {counts['conflict']:,} conflicts "
            f"to {file}",
            highlight=False,
        )


@app.command()
def impact(
    cis: Annotated[list[str], typer.Argument(help="CIs that fail (id, key or kind:value).")],
    depth: DepthOption = None,
    as_json: JsonOption = False,
) -> None:
    """Everything that fails when these CIs fail together, with the path to each."""
    with _services(read_only=True) as services:
        ids = _resolve(services, cis)
        result = services.impact.impact(ids, depth=depth)
        if as_json:
            _print_json(result)
            return
        names = _names(
            services,
            [
                *ids,
                *(s.ci_id for a in result.affected for s in a.path),
                *(g.ci_id for g in result.degraded),
            ],
        )
        failed = ", ".join(names.get(i, i) for i in ids)
        out.print(
            _affected_table(
                f"{len(result.affected)} CIs fail with {failed}; "
                f"{len(result.business_services)} business services",
                result.affected,
                names,
                services.relationship_rules,
                downstream=True,
            )
        )
        for group in result.degraded:
            out.print(
                f"[yellow]degraded:[/] {names.get(group.ci_id, group.ci_id)} "
                f"({group.group}: {group.failed} of {group.size} lost, "
                f"needs {group.min_healthy})",
                highlight=False,
            )
        if result.truncated:
            err.print(f"[yellow]stopped at depth {result.max_depth}; raise --depth to see more")


@app.command()
def spof(
    service: Annotated[str, typer.Argument(help="The business service (id, key or kind:value).")],
    depth: DepthOption = None,
    as_json: JsonOption = False,
) -> None:
    """The single points of failure of a service: CIs whose loss alone takes it down."""
    with _services(read_only=True) as services:
        (service_id,) = _resolve(services, [service])
        items = services.impact.single_points_of_failure(service_id, depth=depth)
        if as_json:
            _print_json({"service_id": service_id, "single_points_of_failure": items})
            return
        names = _names(services, [s.ci_id for a in items for s in a.path])
        out.print(
            _affected_table(
                f"{len(items)} single points of failure of {names.get(service_id, service_id)}",
                items,
                names,
                services.relationship_rules,
                downstream=False,
            )
        )


@app.command()
def deps(
    service: Annotated[str, typer.Argument(help="The CI or service (id, key or kind:value).")],
    depth: DepthOption = None,
    as_json: JsonOption = False,
) -> None:
    """Everything a service depends on, directly or transitively."""
    with _services(read_only=True) as services:
        (service_id,) = _resolve(services, [service])
        result = services.impact.dependencies(service_id, depth=depth)
        if as_json:
            _print_json(result)
            return
        names = _names(services, [s.ci_id for a in result.dependencies for s in a.path])
        out.print(
            _affected_table(
                f"{names.get(service_id, service_id)} depends on {len(result.dependencies)} CIs",
                result.dependencies,
                names,
                services.relationship_rules,
                downstream=False,
            )
        )


@app.command()
def show(
    ci: Annotated[str, typer.Argument(help="The CI (id, key or kind:value).")],
    as_json: JsonOption = False,
) -> None:
    """A CI with its identifiers, attributes, relationships and sources."""
    with _services(read_only=True) as services:
        (ci_id,) = _resolve(services, [ci])
        item = services.store.get_cis([ci_id])[ci_id]
        rels = services.store.relationships([ci_id])
        sightings = services.store.sightings(ci_id)
        if as_json:
            _print_json({"ci": item, "relationships": rels, "sightings": sightings})
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
        names = _names(services, [r.from_id for r in rels] + [r.to_id for r in rels])
        for rel in rels:
            out.print(
                f"  {names.get(rel.from_id, rel.from_id)} -{rel.type}-> "
                f"{names.get(rel.to_id, rel.to_id)}"
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


def _parse_time(value: str | None, option: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        _fail(f"{option}: '{value}' is not an ISO 8601 time such as 2026-11-01T12:00:00Z")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@app.command()
def history(
    ci: Annotated[str, typer.Argument(help="The CI (id, key or kind:value).")],
    since: Annotated[str | None, typer.Option(help="ISO 8601 start time.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 end time.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The CI's timeline: every attribute, identifier and relationship change."""
    with _services(read_only=True) as services:
        (ci_id,) = _resolve(services, [ci])
        entries = services.history.timeline(
            ci_id, since=_parse_time(since, "--since"), until=_parse_time(until, "--until")
        )
        if as_json:
            _print_json(entries)
            return
        names = _names(services, [ci_id, *(e.other_ci_id or e.ci_id for e in entries)])
        table = Table(title=f"history of {names.get(ci_id, ci_id)} ({ci_id})", title_justify="left")
        for column in ("time (UTC)", "change", "what", "old", "new", "source", "actor"):
            table.add_column(column, overflow="fold")
        for e in entries:
            what = e.field or ""
            if e.other_ci_id:
                what = (
                    f"{names.get(e.ci_id, e.ci_id)} -{e.field}-> "
                    f"{names.get(e.other_ci_id, e.other_ci_id)}"
                )
            elif e.ci_id != ci_id:
                what = f"(merged {names.get(e.ci_id, e.ci_id)}) {what}"
            table.add_row(
                f"{e.at:%Y-%m-%d %H:%M:%S}",
                e.kind.value,
                what,
                _short(e.old),
                _short(e.new),
                e.source or "",
                e.actor or "",
            )
        out.print(table)


@app.command("as-of")
def as_of(
    ci: Annotated[str, typer.Argument(help="The CI (id, key or kind:value).")],
    at: Annotated[str, typer.Argument(help="ISO 8601 time, e.g. 2026-11-01T12:00:00Z.")],
) -> None:
    """The CI and its relationships as they were at a past time (JSON)."""
    with _services(read_only=True) as services:
        (ci_id,) = _resolve(services, [ci])
        when = _parse_time(at, "AT")
        assert when is not None
        state = services.history.as_of(ci_id, when)
        if state is None:
            _fail(f"{ci_id} did not exist at {when.isoformat()}")
        _print_json(state)


@app.command()
def merge(
    survivor: Annotated[str, typer.Argument(help="The CI that stays.")],
    duplicate: Annotated[str, typer.Argument(help="The CI merged into it and retired.")],
) -> None:
    """Merge a duplicate CI into another, keeping both histories."""
    with _services() as services:
        survivor_id, duplicate_id = _resolve(services, [survivor, duplicate])
        with change_context(actor="cli"):
            services.reconciler.merge(survivor_id, duplicate_id)
        err.print(f"merged {duplicate_id} into {survivor_id}")


@app.command()
def conflicts(
    limit: Annotated[int, typer.Option(min=1)] = 100,
    as_json: JsonOption = False,
) -> None:
    """Reconciliation conflicts recorded so far, newest first."""
    with _services(read_only=True) as services:
        items = services.store.conflicts(limit=limit)
        if as_json:
            _print_json(items)
            return
        for c in items:
            out.print(f"{c.detected_at:%Y-%m-%d %H:%M:%S} [{c.source}] {c}", highlight=False)


@app.command()
def stats(as_json: JsonOption = False) -> None:
    """Counts of CIs, relationships, history entries and conflicts."""
    with _services(read_only=True) as services:
        counts = services.store.counts()
        if as_json:
            _print_json(counts)
            return
        for key, value in counts.items():
            out.print(f"{key.replace('_', ' ')}: {value:,}")


@app.command()
def incidents(
    status: Annotated[str | None, typer.Option(help="open or resolved.")] = None,
    ci: Annotated[str | None, typer.Option(help="Only incidents touching this CI.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Incidents, newest first: priority, root cause, impacted services."""
    with _services(read_only=True) as services:
        from servicegraph.ticketing.model import IncidentStatus

        try:
            wanted = IncidentStatus(status) if status else None
        except ValueError:
            _fail(f"--status must be one of {', '.join(s.value for s in IncidentStatus)}")
        ci_id = _resolve(services, [ci])[0] if ci else None
        items = services.incidents.list_incidents(status=wanted, ci_id=ci_id, limit=limit)
        if as_json:
            _print_json(items)
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


@app.command()
def problems(as_json: JsonOption = False) -> None:
    """Problems opened from recurring incidents."""
    with _services(read_only=True) as services:
        items = services.incidents.list_problems()
        if as_json:
            _print_json(items)
            return
        for p in items:
            out.print(
                f"PRB{p.number} [{p.status.value}] {p.title}: {p.reason} "
                f"({len(p.incident_ids)} incidents)",
                highlight=False,
            )


@app.command("problem-candidates")
def problem_candidates_(
    days: Annotated[float, typer.Option(min=0.01, help="Look back this many days.")] = 30,
    limit: Annotated[int, typer.Option(min=1)] = 20,
    as_json: JsonOption = False,
) -> None:
    """Which items are behind most of the recent incidents?"""
    from servicegraph.correlation.problems import problem_candidates

    with _services(read_only=True) as services:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        items = problem_candidates(services.correlator, since=since, limit=limit)
        if as_json:
            _print_json(items)
            return
        table = Table(title=f"problem candidates, last {days:g} days", title_justify="left")
        for column in ("CI", "class", "incidents explained", "as root cause"):
            table.add_column(column)
        for c in items:
            table.add_row(
                f"{c.name}\n[dim]{c.ci_id}[/]",
                c.ci_class,
                str(c.incidents_explained),
                str(c.as_root),
            )
        out.print(table)


@app.command()
def unmapped(limit: Annotated[int, typer.Option(min=1)] = 50, as_json: JsonOption = False) -> None:
    """Alerts whose events named no known CI (kept, never dropped)."""
    with _services(read_only=True) as services:
        items = services.incidents.unmapped_alerts(limit)
        if as_json:
            _print_json(items)
            return
        for a in items:
            out.print(
                f"{a.last_seen:%Y-%m-%d %H:%M:%S} [{a.source}] {a.name} {a.status.value} "
                f"x{a.count} labels={a.labels}",
                highlight=False,
            )


@app.command()
def inbox(limit: Annotated[int, typer.Option(min=1)] = 20, as_json: JsonOption = False) -> None:
    """The last events received (did the sender's POST arrive, and has it been correlated?)."""
    with _services(read_only=True) as services:
        items = services.incidents.latest_events(limit)
        pending = services.incidents.pending_count()
        if as_json:
            _print_json([{"seq": seq, "correlated": done, **e.to_json()} for seq, e, done in items])
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


@app.command()
def correlate() -> None:
    """Process every event waiting in the inbox now (the worker does this continuously)."""
    with _services() as services:
        with err.status("correlating..."):
            result = services.correlator.drain()
        _print_json(result)


def _celery_app() -> Any:
    from servicegraph import tasks

    try:
        return tasks.configure(Settings())
    except ValueError as exc:
        _fail(str(exc))


@app.command()
def worker(
    queues: Annotated[
        str, typer.Option(help="Comma-separated queues to consume.")
    ] = "correlate,collect,default",
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Worker processes.")
    ] = 1,
    loglevel: Annotated[str, typer.Option()] = "INFO",
) -> None:
    """Run a Celery worker on the configured broker (SERVICEGRAPH_BROKER_URL)."""
    celery_app = _celery_app()
    celery_app.worker_main(
        ["worker", "-Q", queues, "-c", str(concurrency), f"--loglevel={loglevel}", "-E"]
    )


@app.command()
def beat(loglevel: Annotated[str, typer.Option()] = "INFO") -> None:
    """Run the Celery beat scheduler: enqueues the periodic jobs of the `schedule` setting."""
    celery_app = _celery_app()
    schedule_file = Settings().data_dir / "celerybeat-schedule"
    schedule_file.parent.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", f"--loglevel={loglevel}", "-s", str(schedule_file)])


# -- SNMP ---------------------------------------------------------------------------------------

SnmpTargets = Annotated[
    list[str] | None,
    typer.Argument(
        help="IP addresses, names, HOST:PORT or CIDR ranges to sweep "
        "[default: the snmp.targets setting]."
    ),
]
CommunityOption = Annotated[
    str | None,
    typer.Option(
        envvar="SERVICEGRAPH_SNMP_COMMUNITY",
        help="SNMPv1/v2c community (the variable keeps it out of the process list).",
    ),
]
VersionOption = Annotated[
    str | None, typer.Option("--snmp-version", help="1, 2c or 3 [default: 2c; 3 with --v3-user].")
]
V3UserOption = Annotated[str | None, typer.Option("--v3-user", help="SNMPv3 user name.")]
V3AuthProtoOption = Annotated[
    str | None, typer.Option("--v3-auth-protocol", help="md5, sha, sha224 ... sha512.")
]
V3AuthKeyOption = Annotated[
    str | None, typer.Option("--v3-auth-key", envvar="SERVICEGRAPH_SNMP_AUTH_KEY")
]
V3PrivProtoOption = Annotated[
    str | None, typer.Option("--v3-priv-protocol", help="des, 3des, aes, aes192, aes256 ...")
]
V3PrivKeyOption = Annotated[
    str | None, typer.Option("--v3-priv-key", envvar="SERVICEGRAPH_SNMP_PRIV_KEY")
]
V3ContextOption = Annotated[str, typer.Option("--v3-context", help="SNMPv3 context name.")]
SnmpPortOption = Annotated[
    int | None, typer.Option("--port", min=1, max=65535, help="Agent UDP port [default: 161].")
]


def _snmp_setup(
    services: Services, targets: list[str] | None, port: int | None, **credential: Any
) -> tuple[Any, list[Any], Any]:
    """The command-line credential, the targets and the credential set, or exit 2."""
    from servicegraph.cli.snmp import cli_credential
    from servicegraph.collectors.snmp.credentials import CredentialError
    from servicegraph.collectors.snmp.targets import TargetError, parse_targets

    snmp = services.settings.snmp
    try:
        given = cli_credential(**credential)
        credentials = snmp.credential_set(default=given)
        expressions = targets or snmp.targets
        if not expressions:
            _fail("give targets, or list the inventory in the snmp.targets setting", EXIT_USAGE)
        found = parse_targets(
            expressions,
            default_port=port or snmp.port,
            max_sweep_hosts=snmp.max_sweep_hosts,
            credential=given,
        )
    except (CredentialError, TargetError) as exc:
        _fail(str(exc), EXIT_USAGE)
    return given, found, credentials


@app.command()
def discover(
    targets: SnmpTargets = None,
    community: CommunityOption = None,
    snmp_version: VersionOption = None,
    v3_user: V3UserOption = None,
    v3_auth_protocol: V3AuthProtoOption = None,
    v3_auth_key: V3AuthKeyOption = None,
    v3_priv_protocol: V3PrivProtoOption = None,
    v3_priv_key: V3PrivKeyOption = None,
    v3_context: V3ContextOption = "",
    port: SnmpPortOption = None,
    crawl_depth: Annotated[
        int | None, typer.Option(min=0, help="Follow LLDP/CDP neighbours this many steps.")
    ] = None,
    allow_subnet: Annotated[
        list[str] | None, typer.Option(help="A subnet crawling may enter (repeatable).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Devices at once.")] = None,
    timeout: Annotated[float | None, typer.Option(min=0.01, help="Seconds per answer.")] = None,
    retries: Annotated[int | None, typer.Option(min=0)] = None,
    max_repetitions: Annotated[int | None, typer.Option(min=1, max=1000)] = None,
    complete: Annotated[
        bool | None,
        typer.Option(
            "--complete/--partial",
            help="Whether this run is the whole SNMP inventory, so that what it misses counts "
            "towards staleness [default: complete without TARGETs, partial with].",
        ),
    ] = None,
    metrics_file: Annotated[
        Path | None, typer.Option(help="Write the run's Prometheus metrics to this file.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Discover devices over SNMP into the graph: system, interfaces, hardware, addresses
    and LLDP/CDP links; prints a summary."""
    import asyncio

    from prometheus_client import CollectorRegistry, write_to_textfile

    from servicegraph.cli.snmp import DiscoveryProgress, summary
    from servicegraph.collectors.snmp.credentials import CredentialError, parse_subnets
    from servicegraph.collectors.snmp.discovery import run_discovery, save_report
    from servicegraph.collectors.snmp.metrics import SnmpMetrics

    with _services() as services:
        snmp = services.settings.snmp
        _, found, credentials = _snmp_setup(
            services,
            targets,
            port,
            community=community,
            version=snmp_version,
            user=v3_user,
            auth_protocol=v3_auth_protocol,
            auth_key=v3_auth_key,
            priv_protocol=v3_priv_protocol,
            priv_key=v3_priv_key,
            context=v3_context,
        )
        try:
            subnets = parse_subnets(allow_subnet, item="--allow-subnet") if allow_subnet else None
            options = snmp.discovery_options(
                concurrency=concurrency,
                crawl_depth=crawl_depth,
                allowed_subnets=subnets,
                default_port=port,
            )
            session = snmp.session_options(
                timeout=timeout, retries=retries, max_repetitions=max_repetitions
            )
        except (CredentialError, ValueError) as exc:
            _fail(str(exc), EXIT_USAGE)
        registry = CollectorRegistry()
        progress = DiscoveryProgress(err, len(found), enabled=not as_json)
        with progress.shown(), change_context(actor="snmp-discovery"):
            report = asyncio.run(
                run_discovery(
                    services.reconciler,
                    found,
                    credentials=credentials,
                    session_options=session,
                    options=options,
                    complete=complete if complete is not None else not targets,
                    engine=snmp.engine,
                    metrics=SnmpMetrics(registry),
                    on_result=progress.update,
                )
            )
        path = save_report(report, services.settings.data_dir / "snmp" / "runs")
        if metrics_file is not None:
            write_to_textfile(str(metrics_file), registry)
        if as_json:
            _print_json({**report.to_dict(), "report_file": str(path)})
        else:
            for table in summary(report):
                out.print(table)
            err.print(f"run report: {path}", highlight=False)
        if not any(r.snapshot for r in report.results):
            _fail("no device answered")


@app.command()
def poll(
    targets: SnmpTargets = None,
    community: CommunityOption = None,
    snmp_version: VersionOption = None,
    v3_user: V3UserOption = None,
    v3_auth_protocol: V3AuthProtoOption = None,
    v3_auth_key: V3AuthKeyOption = None,
    v3_priv_protocol: V3PrivProtoOption = None,
    v3_priv_key: V3PrivKeyOption = None,
    v3_context: V3ContextOption = "",
    port: SnmpPortOption = None,
    interval: Annotated[
        float | None, typer.Option(min=0.01, help="Seconds between polls [default: 60].")
    ] = None,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many polls.")] = None,
    ingest: Annotated[
        bool, typer.Option(help="Hand events to correlation (the durable inbox).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Events as JSON lines.")] = False,
) -> None:
    """Poll devices (sysUpTime, interface status) and report changes as events: interface
    down/up, restarts, devices that stop answering."""
    import asyncio

    from servicegraph.cli.snmp import print_events
    from servicegraph.cmdb.model import utcnow
    from servicegraph.collectors.snmp.client import SessionFactory
    from servicegraph.collectors.snmp.poller import Poller

    with _services() as services:
        snmp = services.settings.snmp
        _, found, credentials = _snmp_setup(
            services,
            targets,
            port,
            community=community,
            version=snmp_version,
            user=v3_user,
            auth_protocol=v3_auth_protocol,
            auth_key=v3_auth_key,
            priv_protocol=v3_priv_protocol,
            priv_key=v3_priv_key,
            context=v3_context,
        )

        def sink(events: list[Any]) -> None:
            print_events(events, out, as_json=as_json)
            if ingest:
                services.correlator.ingest([e.to_event(utcnow()) for e in events])

        async def run() -> None:
            factory = SessionFactory(snmp.session_options(), engine=snmp.engine)
            poller = Poller(factory, credentials, concurrency=snmp.concurrency)
            try:
                rounds = 0
                while count is None or rounds < count:
                    if rounds:
                        await asyncio.sleep(interval or snmp.poll_interval)
                    events = await poller.poll_once(found)
                    if events:
                        sink(events)
                    rounds += 1
            finally:
                factory.close()

        try:
            asyncio.run(run())
        except KeyboardInterrupt:
            err.print("stopped")


@app.command()
def traps(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: 0.0.0.0].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="UDP port [default: 1162].")
    ] = None,
    community: Annotated[
        list[str] | None,
        typer.Option(
            envvar="SERVICEGRAPH_SNMP_TRAP_COMMUNITY",
            help="Accepted v1/v2c community (repeatable) [default: snmp.trap_communities].",
        ),
    ] = None,
    ingest: Annotated[
        bool, typer.Option(help="Hand events to correlation (the durable inbox).")
    ] = True,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on 127.0.0.1:PORT.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Events as JSON lines.")] = False,
) -> None:
    """Receive SNMP traps (v1, v2c, v3) and turn them into events: linkDown/linkUp,
    cold/warm start, authentication failures and enterprise traps."""
    import asyncio

    from prometheus_client import CollectorRegistry, start_http_server

    from servicegraph.cli.snmp import print_events
    from servicegraph.cmdb.model import utcnow
    from servicegraph.collectors.snmp.credentials import CredentialError, Secret
    from servicegraph.collectors.snmp.metrics import SnmpMetrics
    from servicegraph.collectors.snmp.traps import TrapReceiver, TrapReceiverError

    with _services() as services:
        snmp = services.settings.snmp
        try:
            users = snmp.trap_user_list()
        except CredentialError as exc:
            _fail(str(exc), EXIT_USAGE)
        communities = (
            [Secret(c) for c in community]
            if community
            else [Secret(c.get_secret_value()) for c in snmp.trap_communities]
        )
        registry = CollectorRegistry()
        if metrics_port is not None:
            start_http_server(metrics_port, addr="127.0.0.1", registry=registry)

        def on_event(event: Any) -> None:
            print_events([event], out, as_json=as_json)
            if ingest:
                services.correlator.ingest([event.to_event(utcnow())])

        async def run() -> None:
            receiver = TrapReceiver(
                on_event,
                host=host or snmp.trap_host,
                port=snmp.trap_port if port is None else port,
                communities=communities,
                users=users,
                metrics=SnmpMetrics(registry),
            )
            await receiver.start()
            err.print(f"listening for traps on udp {receiver.host}:{receiver.port}")
            try:
                await asyncio.Event().wait()
            finally:
                await receiver.stop()

        try:
            asyncio.run(run())
        except TrapReceiverError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            err.print("stopped")


# -- API tokens and the GraphQL schema -------------------------------------------------------

token_app = typer.Typer(
    help="API tokens for /graphql and the webhooks: roles viewer, engineer, problem_manager, "
    "admin, integration.",
    no_args_is_help=True,
)
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    role: Annotated[
        str,
        typer.Option(help="viewer, engineer, problem_manager, admin or integration."),
    ],
    name: Annotated[str, typer.Option(help="Who or what uses it; recorded as the actor.")],
    as_json: JsonOption = False,
) -> None:
    """Create a token and print its secret, this once (only a hash is stored)."""
    import getpass

    with _services() as services:
        token, secret = services.tokens.create(name, role, created_by=getpass.getuser())
    if as_json:
        _print_json({"id": token.id, "name": token.name, "role": token.role, "token": secret})
        return
    out.print(secret, highlight=False, soft_wrap=True)
    err.print(
        f"token '{token.name}' ({token.role}, id {token.id}) created; the secret above is shown "
        "only now: keep it safe",
        highlight=False,
    )


@token_app.command("list")
def token_list(as_json: JsonOption = False) -> None:
    """Every token with its role and state (never the secret)."""
    with _services(read_only=True) as services:
        tokens = services.tokens.all()
    rows = [
        {
            "id": t.id,
            "name": t.name,
            "role": t.role.value,
            "created_at": t.created_at,
            "created_by": t.created_by,
            "revoked_at": t.revoked_at,
        }
        for t in tokens
    ]
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "name", "role", "created", "by", "state")
    for t in tokens:
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        table.add_row(
            t.id, t.name, t.role.value, f"{t.created_at:%Y-%m-%d %H:%M}", t.created_by, state
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke(token: Annotated[str, typer.Argument(help="The token's id or name.")]) -> None:
    """Revoke a token: it stops working at once."""
    with _services() as services:
        revoked = services.tokens.revoke(token)
    err.print(f"token '{revoked.name}' ({revoked.id}) revoked", highlight=False)


@app.command("graphql-schema")
def graphql_schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the SDL here instead of stdout.")
    ] = None,
    check: Annotated[
        bool, typer.Option(help="Exit 1 if --output differs from the schema (for CI).")
    ] = False,
) -> None:
    """Print the GraphQL schema (SDL), as committed in schema.graphql."""
    from servicegraph.graphql.schema import sdl

    text = sdl()
    if check:
        if output is None:
            _fail("--check needs --output FILE", EXIT_USAGE)
        current = output.read_text() if output.exists() else ""
        if current != text:
            _fail(f"{output} is out of date: run `servicegraph graphql-schema -o {output}`")
        return
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)


def main() -> None:
    app()
