"""Routing tickets to groups: the facts routing needs, read once, and the decision, checked
against the directory. One router serves both the people's desk (``TicketService.create``)
and correlation, which hands it each incident it opens (``Correlator(router=...)``), so
a monitoring incident lands in the same queue a person filing it would have chosen.

Why check the decision against the directory: the rules and the defaults name groups as
text (a CI's ``support_group`` attribute is free text typed into the CMDB, the triage
group a setting), and a ticket filed under a group nobody can see is lost. A group the
directory does not hold is passed over, saying so in the decision's reasons, for the next
default: another affected CI's support group, the service's owner, the triage group.

The facts: each affected CI's class and attributes, and its support group, its own or,
when it has none, that of the CI it is ``PART_OF`` (an interface's switch): monitoring
maps many alerts to interfaces, and it is the switch that names its team.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.cmdb.model import ConfigurationItem
from servicegraph.cmdb.ports import GraphStore
from servicegraph.ticketing.catalogue import Catalogue, Service
from servicegraph.ticketing.fields import CustomFieldSchema
from servicegraph.ticketing.model import Channel, Incident, TicketType, WorklogEntry, WorklogKind
from servicegraph.ticketing.people import Directory
from servicegraph.ticketing.routing import (
    SUPPORT_GROUP_ATTRIBUTE,
    RoutingDecision,
    RoutingRules,
    TicketFacts,
    route,
)
from servicegraph.ticketing.tickets_policy import DeskPolicy

log = logging.getLogger(__name__)

# priority_set_by of a priority a routing rule's bounds froze, before the ticket kept the
# bounds themselves (migration 11, export format 3); read as a configured default
ROUTING = "routing"
PARENT_TYPES = ("PART_OF",)  # whose support group a CI without one inherits


@dataclasses.dataclass(frozen=True, slots=True)
class CIFacts:
    """What routing knows of one affected CI."""

    ci_class: str
    attributes: Mapping[str, Any]
    support_group: str | None


def support_group_of(attributes: Mapping[str, Any]) -> str | None:
    value = attributes.get(SUPPORT_GROUP_ATTRIBUTE)
    return value.strip() if isinstance(value, str) and value.strip() else None


def read_ci_facts(graph: GraphStore, cis: Mapping[str, ConfigurationItem]) -> dict[str, CIFacts]:
    """Routing facts of ``cis`` (by id), reading the parents of those without a support
    group in one query."""
    orphans = [ci_id for ci_id, ci in cis.items() if support_group_of(ci.attributes) is None]
    inherited: dict[str, str] = {}
    if orphans:
        links = graph.relationships(orphans, direction="out", types=PARENT_TYPES)
        parents = graph.get_cis({r.to_id for r in links if r.from_id in cis})
        for r in sorted(links, key=lambda r: r.key):
            parent = parents.get(r.to_id)
            group = support_group_of(parent.attributes) if parent is not None else None
            if group is not None:
                inherited.setdefault(r.from_id, group)
    return {
        ci_id: CIFacts(
            ci.ci_class,
            ci.attributes,
            support_group_of(ci.attributes) or inherited.get(ci_id),
        )
        for ci_id, ci in cis.items()
    }


def decide(
    facts: TicketFacts,
    rules: RoutingRules,
    directory: Directory,
    *,
    triage_group: str,
    support_groups: Sequence[str] = (),
    service_owner: str | None = None,
) -> RoutingDecision | None:
    """The routing decision for ``facts``, its group one the directory holds; None when
    not even the triage group exists. ``support_groups`` are the affected CIs' (primary
    first), ``service_owner`` the owner of the ticket's service or category."""
    groups = directory.groups
    decision = route(
        facts,
        rules,
        triage_group=triage_group,
        ci_support_group=support_groups[0] if support_groups else None,
        service_owner_group=service_owner,
    )
    if decision.group in groups:
        return decision
    skipped = [f"{decision.rule} chose group '{decision.group}', which the directory does not hold"]
    fallbacks = [
        (g, "default:ci_support_group", f"the CI's support group {g}") for g in support_groups
    ]
    if service_owner:
        fallbacks.append((service_owner, "default:service_owner", f"the owner {service_owner}"))
    fallbacks.append((triage_group, "default:triage", f"the triage group {triage_group}"))
    for group, rule, why in fallbacks:
        if group == decision.group:
            continue
        if group in groups:
            reasons = (*decision.reasons, *skipped, f"so {why}")
            return dataclasses.replace(decision, group=group, rule=rule, reasons=reasons)
        skipped.append(f"{rule} group '{group}' is not in the directory either")
    return None


def routed_entry(
    ticket: Incident,
    decision: RoutingDecision,
    at: dt.datetime,
    actor: str,
    old: str | None,
    priority: str | None = None,
) -> WorklogEntry:
    """The ROUTED history entry: the group, the rule that chose it and why, and, when its
    bounds moved the priority, how (``priority``: ``bounds_note``)."""
    moved = f"; priority by {priority}" if priority else ""
    return WorklogEntry(
        ticket_id=ticket.id,
        at=at,
        actor=actor,
        kind=WorklogKind.ROUTED,
        text=f"routed to {decision.group} by {decision.rule}: "
        + "; ".join(decision.reasons)
        + moved,
        field="assignment_group",
        old=old,
        new=decision.group,
    )


def priority_bounds(decision: RoutingDecision) -> tuple[int | None, int | None]:
    """The decision's (floor, ceiling) as a ticket keeps them (``priority.clamp``'s terms:
    the floor the least urgent priority allowed, the ceiling the most urgent). Rules'
    bounds combine, so one rule's floor may be more urgent than another's ceiling; the
    floor wins then, as in ``RoutingDecision.clamp`` (a ticket handled too urgently costs
    less than one handled too late): the ceiling is kept at the floor, which makes the
    pair one ``clamp`` takes and pins the priority to the floor, as the decision did."""
    return _consistent(decision.priority_floor, decision.priority_ceiling)


def _consistent(floor: int | None, ceiling: int | None) -> tuple[int | None, int | None]:
    if floor is not None and ceiling is not None and ceiling > floor:
        ceiling = floor
    return floor, ceiling


def apply_bounds(ticket: Incident, decision: RoutingDecision, rules: RoutingRules) -> str | None:
    """Keep the decision's bounds on ``ticket`` and its priority within them, unless an
    agent overrode it (the override wins; the bounds apply again once it ends). Returns
    how the bounds moved the priority, for the ROUTED entry, or None."""
    ticket.priority_floor, ticket.priority_ceiling = priority_bounds(decision)
    if ticket.agent_override:
        return None
    before = ticket.priority
    ticket.priority = ticket.bounded(before)
    return bounds_note(ticket, decision, before, rules)


def bounds_note(
    ticket: Incident, decision: RoutingDecision, before: int, rules: RoutingRules
) -> str | None:
    """How the ticket's bounds moved its priority from ``before``, naming the matched
    rules that set a bound; None when they did not move it."""
    if ticket.priority == before:
        return None
    bounds = []
    if ticket.priority_floor is not None:
        bounds.append(f"at least as urgent as P{ticket.priority_floor}")
    if ticket.priority_ceiling is not None:
        bounds.append(f"at most as urgent as P{ticket.priority_ceiling}")
    setters = [
        f"'{r.name}'"
        for r in rules.rules
        if r.name in decision.matched
        and (r.then.priority_floor is not None or r.then.priority_ceiling is not None)
    ]
    by = "routing rule " + ", ".join(setters) if setters else "routing"
    return f"{by}: {' and '.join(bounds)} (P{before} -> P{ticket.priority})"


_LEGACY_FLOOR = re.compile(r"\bat least as urgent as P([1-5])\b")
_LEGACY_CEILING = re.compile(r"\bat most as urgent as P([1-5])\b")


def legacy_bounds(reason: str | None) -> tuple[int | None, int | None]:
    """The bounds a routing override of an older release names in its reason (``ROUTING``
    in ``priority_set_by``; the text ``bounds_note`` still writes, "routing rule 'vpn': at
    least as urgent as P2 (P5 -> P2)"), as ``priority_bounds`` keeps them. Migration 11
    reads the same words in SQL; a version-2 export is read with this."""
    floor = _LEGACY_FLOOR.search(reason or "")
    ceiling = _LEGACY_CEILING.search(reason or "")
    return _consistent(
        int(floor.group(1)) if floor else None, int(ceiling.group(1)) if ceiling else None
    )


class TicketRouter:
    """Routes with the current directory, catalogue and rules (read per call, since an
    import may change them at any time; the providers cache by version)."""

    def __init__(
        self,
        graph: GraphStore,
        directory: Callable[[], Directory],
        catalogue: Callable[[], Catalogue],
        policy: DeskPolicy,
    ) -> None:
        self.graph = graph
        self.directory = directory
        self.catalogue = catalogue
        self.policy = policy
        self._by_ci: tuple[Catalogue | None, dict[str, Service]] = (None, {})

    def decide(
        self,
        facts: TicketFacts,
        directory: Directory,
        *,
        support_groups: Sequence[str] = (),
        service_owner: str | None = None,
    ) -> RoutingDecision | None:
        return decide(
            facts,
            self.policy.routing,
            directory,
            triage_group=self.policy.triage_group,
            support_groups=support_groups,
            service_owner=service_owner,
        )

    def __call__(
        self, incidents: Sequence[Incident], at: dt.datetime, actor: str
    ) -> list[WorklogEntry]:
        """Route incidents correlation just opened, by their root CI and the services
        they hit: group, routing rule, tags, priority bounds, custom fields and the
        catalogue service. Returns their ROUTED entries. Monitoring must not stop because
        routing failed (a directory that cannot be read): the error is logged and the
        incidents stay in no group, where the unassigned list shows them."""
        if not incidents:
            return []
        try:
            return self._route_monitoring(incidents, at, actor)
        except Exception:
            log.exception("routing %d monitoring incident(s) failed", len(incidents))
            return []

    def _route_monitoring(
        self, incidents: Sequence[Incident], at: dt.datetime, actor: str
    ) -> list[WorklogEntry]:
        directory, catalogue = self.directory(), self.catalogue()
        roots = {i.root_ci_id for i in incidents if i.root_ci_id}
        facts = read_ci_facts(self.graph, self.graph.get_cis(roots)) if roots else {}
        by_ci = self._services_by_ci(catalogue)
        entries: list[WorklogEntry] = []
        for incident in incidents:
            if incident.assignment_group is not None:
                continue  # routed already (a reopened incident keeps its queue)
            root = facts.get(incident.root_ci_id or "")
            service = next((by_ci[s] for s in incident.business_services if s in by_ci), None)
            ticket_facts = TicketFacts(
                type=incident.type,
                channel=Channel.MONITORING,
                title=incident.title,
                service=service.id if service is not None else incident.service,
                priority=incident.priority,
                cis=((root.ci_class, root.attributes),) if root is not None else (),
            )
            decision = self.decide(
                ticket_facts,
                directory,
                support_groups=[root.support_group] if root and root.support_group else [],
                service_owner=service.owner_group if service is not None else None,
            )
            if decision is None:
                continue
            if service is not None and incident.service is None:
                incident.service = service.id
            entries.append(self._apply(incident, decision, at, actor))
        return entries

    def _apply(
        self, incident: Incident, decision: RoutingDecision, at: dt.datetime, actor: str
    ) -> WorklogEntry:
        """The decision on a monitoring incident: group, rule, tags, custom fields, and
        the bounds, which correlation applies again to the matrix's priority with every
        batch (``correlation.assessment``)."""
        incident.assignment_group = decision.group
        incident.routed_by = decision.rule
        incident.tags = list(dict.fromkeys([*incident.tags, *decision.tags]))
        moved = apply_bounds(incident, decision, self.policy.routing)
        extra = _custom_fields(
            self.policy.custom_fields, incident.type, decision.custom_fields, incident.custom_fields
        )
        incident.custom_fields = {**incident.custom_fields, **extra}
        return routed_entry(incident, decision, at, actor, None, moved)

    def _services_by_ci(self, catalogue: Catalogue) -> dict[str, Service]:
        """The catalogue's services by business_service CI, cached per catalogue object."""
        seen, cached = self._by_ci
        if seen is not catalogue:
            cached = {s.ci_id: s for s in catalogue.services.values() if s.ci_id and s.active}
            self._by_ci = (catalogue, cached)
        return cached


def _custom_fields(
    schema: CustomFieldSchema,
    ticket_type: TicketType,
    wanted: Mapping[str, Any],
    current: Mapping[str, Any],
) -> dict[str, Any]:
    """The custom field values a rule sets on a monitoring incident that has none of
    them yet, each kept only if the schema takes it (a rule cannot break a ticket)."""
    result: dict[str, Any] = {}
    for name, value in wanted.items():
        if name in current:
            continue
        try:
            result.update(schema.validate(ticket_type, None, {name: value}, partial=True))
        except (ValidationFailed, ValidationErrors) as exc:  # the rule and the schema disagree
            log.warning("routing sets custom field %s=%r, refused: %s", name, value, exc)
    return result


def unique(values: Iterable[str | None]) -> list[str]:
    """The non-empty values, each once, in order."""
    return list(dict.fromkeys(v for v in values if v))
