"""Impact analysis on the command line: what fails with some CIs (``impact``), what a
service depends on (``deps``) and its single points of failure (``spof``), each item with
the path of relationships that leads to it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich.table import Table

from servicegraph.cli.common import (
    DepthOption,
    JsonOption,
    err,
    names,
    open_services,
    out,
    print_json,
    resolve,
)
from servicegraph.cmdb.impact import AffectedCI
from servicegraph.cmdb.relationships import ImpactDirection, RelationshipRules


def _path_text(
    item: AffectedCI, labels: dict[str, str], rules: RelationshipRules, *, downstream: bool
) -> str:
    """The path as the stored relationships read (``vm1 -HOSTED_ON-> h1``), so an arrow
    points backwards (``h1 <-HOSTED_ON- vm1``) where the walk goes against it.

    ``downstream``: the walk follows failure, from the needed CI to the needing one
    (``impact``); otherwise it goes from the needing CI down to what it needs (``deps``,
    ``spof``). Which end of a relationship needs the other is the type's impact direction.
    """
    parts = []
    for step in item.path:
        label = labels.get(step.ci_id, step.ci_id)
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
    labels: dict[str, str],
    rules: RelationshipRules,
    *,
    downstream: bool,
) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("CI", "class", "depth", "path"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(
            f"{labels.get(item.ci_id, item.ci_id)}\n[dim]{item.ci_id}[/]",
            item.ci_class,
            str(item.depth),
            _path_text(item, labels, rules, downstream=downstream),
        )
    return table


def impact(
    cis: Annotated[list[str], typer.Argument(help="CIs that fail (id, key or kind:value).")],
    depth: DepthOption = None,
    as_json: JsonOption = False,
) -> None:
    """Everything that fails when these CIs fail together, with the path to each."""
    with open_services(read_only=True) as services:
        ids = resolve(services, cis)
        result = services.impact.impact(ids, depth=depth)
        if as_json:
            print_json(result)
            return
        named = names(
            services,
            [
                *ids,
                *(s.ci_id for a in result.affected for s in a.path),
                *(g.ci_id for g in result.degraded),
            ],
        )
        failed = ", ".join(named.get(i, i) for i in ids)
        out.print(
            _affected_table(
                f"{len(result.affected)} CIs fail with {failed}; "
                f"{len(result.business_services)} business services",
                result.affected,
                named,
                services.relationship_rules,
                downstream=True,
            )
        )
        for group in result.degraded:
            out.print(
                f"[yellow]degraded:[/] {named.get(group.ci_id, group.ci_id)} "
                f"({group.group}: {group.failed} of {group.size} lost, "
                f"needs {group.min_healthy})",
                highlight=False,
            )
        if result.truncated:
            err.print(f"[yellow]stopped at depth {result.max_depth}; raise --depth to see more")


def spof(
    service: Annotated[str, typer.Argument(help="The business service (id, key or kind:value).")],
    depth: DepthOption = None,
    as_json: JsonOption = False,
) -> None:
    """The single points of failure of a service: CIs whose loss alone takes it down."""
    with open_services(read_only=True) as services:
        (service_id,) = resolve(services, [service])
        items = services.impact.single_points_of_failure(service_id, depth=depth)
        if as_json:
            print_json({"service_id": service_id, "single_points_of_failure": items})
            return
        named = names(services, [s.ci_id for a in items for s in a.path])
        out.print(
            _affected_table(
                f"{len(items)} single points of failure of {named.get(service_id, service_id)}",
                items,
                named,
                services.relationship_rules,
                downstream=False,
            )
        )


def deps(
    service: Annotated[str, typer.Argument(help="The CI or service (id, key or kind:value).")],
    depth: DepthOption = None,
    as_json: JsonOption = False,
) -> None:
    """Everything a service depends on, directly or transitively."""
    with open_services(read_only=True) as services:
        (service_id,) = resolve(services, [service])
        result = services.impact.dependencies(service_id, depth=depth)
        if as_json:
            print_json(result)
            return
        named = names(services, [s.ci_id for a in result.dependencies for s in a.path])
        out.print(
            _affected_table(
                f"{named.get(service_id, service_id)} depends on {len(result.dependencies)} CIs",
                result.dependencies,
                named,
                services.relationship_rules,
                downstream=False,
            )
        )
