"""The desk's people and service catalogue on the command line:
``servicegraph people import|list`` and ``servicegraph catalogue import|show``.

Imports are all or nothing: every bad row is listed as ``file:line: field 'x': why`` (with
``--json``, as a list of objects on stdout) and the command exits 1 having written nothing.
A replayed import changes nothing and says so.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table

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
from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.ticketing.catalogue import Defaults, Service
from servicegraph.ticketing.desk_directory import ImportReport
from servicegraph.ticketing.directory import KINDS, Kind
from servicegraph.ticketing.people import Agent, Contact, Directory, Group, Organisation

people_app = typer.Typer(
    help="The desk's people: agents, groups (queues), organisations (customers), contacts.",
    no_args_is_help=True,
)
catalogue_app = typer.Typer(
    help="The service catalogue: services (business_service CIs) and the category tree.",
    no_args_is_help=True,
)

KindOption = Annotated[
    str | None,
    typer.Option(
        "--kind",
        help="agents, groups, organisations or contacts: what every FILE holds. By default "
        "a file whose name has one kind in it (agents.csv, new-groups-2024.csv) holds that "
        "kind, and a "
        'JSON object keyed by kind ({"agents": [...], ...}) holds several.',
    ),
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Check and count, write nothing.")]


def _kind_of(path: Path, kind: str | None) -> Kind | None:
    """The kind a file holds: ``--kind``, else the one its name starts with."""
    if kind is not None:
        if kind not in KINDS:
            fail(f"--kind: '{kind}' is not one of {', '.join(KINDS)}", EXIT_USAGE)
        return kind
    words = re.split(r"[^a-z]+", path.stem.lower().replace("organization", "organisation"))
    named = {k for k in KINDS for w in words if w in (k, k[:-1])}
    return named.pop() if len(named) == 1 else None  # "agents-and-groups.json": say so


def _refused(exc: ValidationErrors | ValidationFailed, as_json: bool) -> NoReturn:
    """List every problem (not the first 20 the exception's text shows) and exit 1."""
    errors = exc.errors if isinstance(exc, ValidationErrors) else [exc]
    if as_json:
        print_json(
            {
                "written": False,
                "errors": [{"item": e.item, "field": e.field, "message": e.reason} for e in errors],
            }
        )
    for e in errors:
        err.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
    fail(f"{len(errors)} problem(s); nothing was imported", EXIT_ERROR)


def _print_report(report: ImportReport, title: str, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "dry_run": report.dry_run,
                "changed": report.changed,
                "version": report.version,
                "counts": report.counts,
            }
        )
        return
    table = Table(title=title, title_justify="left")
    for column in ("", "created", "updated", "unchanged"):
        table.add_column(column, justify="right" if column else "left")
    for kind, count in report.counts.items():
        table.add_row(kind, f"{count.created:,}", f"{count.updated:,}", f"{count.unchanged:,}")
    out.print(table)
    if report.dry_run:
        err.print("dry run: nothing was written", highlight=False)
    elif report.changed == 0:
        err.print("nothing changed: the directory already holds all of it", highlight=False)


@people_app.command("import")
def people_import(
    files: Annotated[list[Path], typer.Argument(help="CSV (header row) or JSON files.")],
    kind: KindOption = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Import agents, groups, organisations and contacts as one unit (references may cross
    files); records are added or replaced by login or id."""
    sources = [(_kind_of(path, kind), path) for path in files]
    with open_services() as services, err.status(f"reading {len(files)} file(s)...") as status:
        try:
            report = services.directory.import_people(sources, dry_run=dry_run)
        except (ValidationErrors, ValidationFailed) as exc:
            status.stop()
            _refused(exc, as_json)
    title = "people import" + (" (dry run)" if dry_run else "")
    _print_report(report, title, as_json)


def _rows(directory: Directory, kind: str, search: str | None) -> list[dict[str, Any]]:
    needle = (search or "").casefold()
    records: list[Any] = sorted(
        getattr(directory, kind).values(),
        key=lambda r: r.login if isinstance(r, Agent) else r.id,
    )
    rows = []
    for r in records:
        row = _row(r)
        if needle and not any(needle in str(v).casefold() for v in row.values()):
            continue
        rows.append(row)
    return rows


def _row(r: Agent | Group | Organisation | Contact) -> dict[str, Any]:
    if isinstance(r, Agent):
        return {
            "login": r.login,
            "name": r.name,
            "email": r.email,
            "groups": list(r.groups),
            "roles": [role.value for role in r.roles],
            "active": r.active,
            "phone": r.phone,
        }
    if isinstance(r, Group):
        return {
            "id": r.id,
            "name": r.name,
            "email": r.email,
            "manager": r.manager,
            "members": list(r.members),
            "description": r.description,
        }
    if isinstance(r, Organisation):
        return {"id": r.id, "name": r.name, "domains": list(r.domains), "notes": r.notes}
    return {
        "id": r.id,
        "name": r.name,
        "email": r.email,
        "organisation": r.organisation,
        "phone": r.phone,
        "vip": r.vip,
        "active": r.active,
    }


@people_app.command("list")
def people_list(
    kind: Annotated[str, typer.Argument(help="agents, groups, organisations or contacts.")],
    search: Annotated[
        str | None, typer.Option(help="Only records with this text in a field.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Every record of one kind (by login or id), inactive ones included."""
    if kind not in KINDS:
        fail(f"KIND: '{kind}' is not one of {', '.join(KINDS)}", EXIT_USAGE)
    with open_services(read_only=True) as services:
        rows = _rows(services.directory.directory(), kind, search)
    if as_json:
        print_json(rows)
        return
    if not rows:
        err.print(f"no {kind}", highlight=False)
        return
    table = Table(*rows[0].keys())
    for row in rows:
        table.add_row(*(_cell(v) for v in row.values()))
    out.print(table)
    err.print(f"{len(rows):,} {kind}", highlight=False)


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


@catalogue_app.command("import")
def catalogue_import(
    file: Annotated[
        Path, typer.Argument(help='YAML or JSON: {"services": [...], "categories": [...]}.')
    ],
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Add or replace services and categories; what the file does not name stays (retire a
    service with active: false). Each ci_id names a business_service CI (id, key or
    identifier); owner and default groups must exist."""
    with open_services() as services:
        try:
            report = services.directory.import_catalogue(file, dry_run=dry_run)
        except (ValidationErrors, ValidationFailed) as exc:
            _refused(exc, as_json)
    _print_report(report, "catalogue import" + (" (dry run)" if dry_run else ""), as_json)


@catalogue_app.command("show")
def catalogue_show(as_json: JsonOption = False) -> None:
    """The services and the category tree."""
    with open_services(read_only=True) as services:
        catalogue = services.directory.catalogue()
        names = {
            ci_id: ci.name
            for ci_id, ci in services.catalog.get(
                [s.ci_id for s in catalogue.services.values() if s.ci_id]
            ).items()
        }
    services_ = sorted(catalogue.services.values(), key=lambda s: s.id)
    categories = sorted(catalogue.categories.values(), key=lambda c: c.path)
    if as_json:
        print_json(
            {
                "services": [_service_row(s, names) for s in services_],
                "categories": [
                    {
                        "path": c.path,
                        "name": c.name,
                        "owner_group": c.owner_group,
                        "types": [t.value for t in c.types],
                        "applies_to": [t.value for t in catalogue.types_for(c.path)],
                        "defaults": _defaults(c.defaults),
                    }
                    for c in categories
                ],
            }
        )
        return
    table = Table("id", "name", "CI", "owner", "types", "defaults", "state", title="services")
    for s in services_:
        defaults = ", ".join(
            f"{k}={v}" for k, v in _defaults(s.defaults).items() if v not in (None, {})
        )
        table.add_row(
            s.id,
            s.name,
            names.get(s.ci_id or "", s.ci_id or ""),
            s.owner_group or "",
            ", ".join(t.value for t in s.request_types),
            defaults,
            "active" if s.active else "retired",
        )
    out.print(table)
    tree = Table("category", "name", "owner", "types", title="categories")
    for c in categories:
        depth = c.path.count("/")
        types = ", ".join(t.value for t in catalogue.types_for(c.path))
        tree.add_row("  " * depth + c.path.rpartition("/")[2], c.name, c.owner_group or "", types)
    out.print(tree)


def _defaults(d: Defaults) -> dict[str, Any]:
    return {
        "group": d.group,
        "priority": d.priority,
        "impact": d.impact,
        "urgency": d.urgency,
        "custom_fields": dict(d.custom_fields),
    }


def _service_row(s: Service, names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "ci_id": s.ci_id,
        "ci_name": names.get(s.ci_id or ""),
        "owner_group": s.owner_group,
        "request_types": [t.value for t in s.request_types],
        "defaults": _defaults(s.defaults),
        "description": s.description,
        "active": s.active,
    }
