"""Intake: a new ticket as its caller describes it, turned into the ticket to save.

Pure: the caller (``TicketService.create``) reads the directory, the catalogue and the
affected CIs first and hands them in; nothing here touches a store, so every refusal
happens before anything is written, and the rules are tested without one.

What the caller gives wins over the catalogue's defaults (group, impact, urgency,
priority, custom fields, merged service then category, nearest winning), which win over
the built-in ones (medium impact and urgency). The priority follows the matrix unless the
caller overrides it with a reason, or, when the caller said nothing of impact, urgency
and priority, the catalogue sets a default priority. Routing (``tickets_routing``) picks
the group unless the caller named one: a rule, else an affected CI's support group, else
the catalogue's group for the service or category (its default group, else its owner),
else the triage group; rules' tags, priority bounds and custom fields apply either way.
The bounds are kept on the ticket (``priority_floor``/``priority_ceiling``) and its
priority is the matrix's (or the catalogue's default) within them, now and whenever
impact or urgency change; an agent's explicit priority is not bounded (it wins).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.cmdb.model import ConfigurationItem
from servicegraph.ticketing.catalogue import Catalogue, Defaults
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Channel, Incident, TicketType, WorklogEntry, WorklogKind
from servicegraph.ticketing.people import Directory
from servicegraph.ticketing.priority import Impact, PriorityDecision, Urgency, decide, level
from servicegraph.ticketing.routing import RoutingDecision, RoutingRules, TicketFacts
from servicegraph.ticketing.tickets_policy import DeskPolicy
from servicegraph.ticketing.tickets_routing import CIFacts, apply_bounds, routed_entry, unique
from servicegraph.ticketing.tickets_work import entry

MAX_TITLE = 200
MAX_TEXT = 20_000
MAX_TAG = 64
MAX_TAGS = 50
MAX_CIS = 200
CATALOGUE = "catalogue"  # priority_set_by for a catalogue's default priority

_E = TypeVar("_E", bound=enum.StrEnum)

# Routing's decision for the facts, given the affected CIs' support groups and the
# catalogue's group for the ticket's subject: ``TicketRouter.decide`` with the directory.
Decide = Callable[[TicketFacts, Sequence[str], str | None], RoutingDecision | None]


@dataclass(frozen=True)
class NewTicket:
    type: TicketType
    title: str
    description: str = ""
    channel: Channel = Channel.API
    requester: str | None = None  # a contact's id or email (organisation follows from it)
    service: str | None = None  # catalogue service id
    category: str | None = None  # category path
    impact: str | None = None  # high|medium|low; default from catalogue, else "medium"
    urgency: str | None = None
    priority: int | None = None  # an override of the matrix: needs priority_reason
    priority_reason: str | None = None
    assignment_group: str | None = None  # else routing decides
    assignee: str | None = None  # must be a member of the group
    affected_ci_ids: tuple[str, ...] = ()  # CI ids (entry points resolve keys to ids first)
    tags: tuple[str, ...] = ()
    custom_fields: Mapping[str, object] = field(default_factory=dict)
    parent_id: str | None = None  # a PARENT_OF link from that ticket


@dataclass(frozen=True)
class Admission:
    """The ticket to save (its number is the unit's to give) and its first history."""

    ticket: Incident
    entries: list[WorklogEntry]
    decision: RoutingDecision | None  # None when the caller chose the group and no rule matched


def text(value: object, name: str, *, limit: int, required: bool = True) -> str:
    if value is not None and not isinstance(value, str):
        raise ValidationFailed("must be text", field=name)
    stripped = (value or "").strip()
    if required and not stripped:
        raise ValidationFailed("must not be empty", field=name)
    if len(stripped) > limit:
        raise ValidationFailed(f"is longer than {limit} characters", field=name)
    return stripped


def choice(kind: type[_E], value: object, name: str) -> _E:
    try:
        return kind(str(value).strip().lower())
    except ValueError:
        known = ", ".join(m.value for m in kind)
        raise ValidationFailed(f"{value!r} is not one of {known}", field=name) from None


def tag_list(values: Sequence[object], name: str = "tags") -> list[str]:
    if isinstance(values, str):
        raise ValidationFailed("must be a list of tags", field=name)
    if len(values) > MAX_TAGS:
        raise ValidationFailed(f"at most {MAX_TAGS} tags", field=name)
    tags = [text(v, f"{name}.{i}", limit=MAX_TAG) for i, v in enumerate(values)]
    return list(dict.fromkeys(tags))


def resolve_cis(ids: Sequence[str], found: Mapping[str, ConfigurationItem]) -> list[str]:
    """``ids`` checked to exist (``found`` is ``GraphStore.get_cis`` of them and of their
    survivors); a CI merged into another stands for its survivor. Errors name the position
    (``affected_ci_ids.2``)."""
    if isinstance(ids, str):
        raise ValidationFailed("must be a list of CI ids", field="affected_ci_ids")
    if len(ids) > MAX_CIS:
        raise ValidationFailed(f"at most {MAX_CIS} CIs", field="affected_ci_ids")
    result = []
    for index, ci_id in enumerate(ids):
        ci = found.get(ci_id)
        if ci is None:
            msg = f"no configuration item with id '{ci_id}'"
            raise ValidationFailed(msg, field=f"affected_ci_ids.{index}")
        result.append(ci.merged_into or ci_id)
    return list(dict.fromkeys(result))


def admit(
    new: NewTicket,
    *,
    ticket_id: str,
    now: dt.datetime,
    actor: str,
    directory: Directory,
    catalogue: Catalogue,
    policy: DeskPolicy,
    cis: Mapping[str, CIFacts],
    decide_route: Decide,
) -> Admission:
    """The ticket ``new`` describes, checked whole; ``cis`` are the affected CIs' routing
    facts, by id in the caller's order (``resolve_cis`` first). Raises ValidationFailed
    naming the field for the first thing wrong (type, channel, title, requester, service,
    category, impact, urgency, priority, group, assignee, tags, custom fields)."""
    kind = choice(TicketType, new.type, "type")
    channel = _channel(new.channel)
    title = text(new.title, "title", limit=MAX_TITLE)
    description = text(new.description, "description", limit=MAX_TEXT, required=False)
    requester, organisation = _requester(directory, new.requester)
    service = _service(catalogue, new.service, kind)
    category = _category(catalogue, new.category, kind)
    defaults = catalogue.defaults_for(service, category)
    priority = _priority(new, defaults, policy, actor, service, category)
    group = directory.group(new.assignment_group, field="assignment_group").id if (
        new.assignment_group is not None
    ) else None  # fmt: skip
    if new.assignee is not None:
        directory.agent(new.assignee, field="assignee")
    tags = tag_list(new.tags)
    facts = TicketFacts(
        type=kind,
        channel=channel,
        title=title,
        service=service,
        category=category,
        organisation=organisation,
        priority=priority.priority,
        cis=tuple((f.ci_class, f.attributes) for f in cis.values()),
    )
    subject_group = defaults.group or catalogue.owner_group(service, category)
    decision = decide_route(facts, unique(f.support_group for f in cis.values()), subject_group)
    chosen_by = "the caller"
    if group is None:
        group = _routed_group(decision, directory, new.assignee)
        chosen_by = "routing" if decision is not None and group == decision.group else "agent"
    impact, urgency = priority_levels(new, defaults)
    ticket = Incident(
        id=ticket_id,
        number=0,
        title=title,
        status=TicketStatus.NEW,
        opened_at=now,
        updated_at=now,
        last_alert_at=now,
        priority=priority.priority,
        impact=impact,
        urgency=urgency,
        type=kind,
        channel=channel,
        description=description,
        requester=requester,
        organisation=organisation,
        service=service,
        category=category,
        affected_ci_ids=list(cis),
        priority_reason=priority.reason if priority.overridden else None,
        priority_set_by=priority.by if priority.overridden else None,
        assignment_group=group,
        tags=tags,
        created_by=actor,
    )
    entries = [_created(ticket, priority, now, actor)]
    if decision is not None:
        entries += _apply_decision(
            ticket, decision, now, actor, chosen_by=chosen_by, rules=policy.routing
        )
    ticket.custom_fields = _custom_fields(new, defaults, decision, kind, category, policy)
    return Admission(ticket, entries, decision)


def _channel(value: object) -> Channel:
    channel = choice(Channel, value, "channel")
    if channel is Channel.MONITORING:
        raise ValidationFailed(
            "monitoring tickets are raised by correlation from alerts", field="channel"
        )
    return channel


def _requester(directory: Directory, value: str | None) -> tuple[str | None, str | None]:
    """The requester's contact id and organisation (their own, or by mail domain)."""
    if value is None:
        return None, None
    contact = directory.contact(text(value, "requester", limit=320))
    if not contact.active:
        raise ValidationFailed(f"contact '{contact.id}' is inactive", field="requester")
    found = directory.organisation_of(contact)
    return contact.id, found.id if found is not None else None


def priority_levels(new: NewTicket, defaults: Defaults) -> tuple[Impact, Urgency]:
    impact = level(Impact, new.impact or defaults.impact or Impact.MEDIUM, "impact")
    urgency = level(Urgency, new.urgency or defaults.urgency or Urgency.MEDIUM, "urgency")
    return impact, urgency


def _service(catalogue: Catalogue, value: str | None, kind: TicketType) -> str | None:
    if value is None:
        return None
    return catalogue.service(text(value, "service", limit=200), ticket_type=kind).id


def _category(catalogue: Catalogue, value: str | None, kind: TicketType) -> str | None:
    if value is None:
        return None
    return catalogue.category(text(value, "category", limit=500), ticket_type=kind).path


def _priority(
    new: NewTicket,
    defaults: Defaults,
    policy: DeskPolicy,
    actor: str,
    service: str | None,
    category: str | None,
) -> PriorityDecision:
    impact, urgency = priority_levels(new, defaults)
    matrix = policy.priority_matrix
    if new.priority is None:
        if new.priority_reason is not None and new.priority_reason.strip():
            raise ValidationFailed(
                "a priority_reason explains an override: give the priority too", field="priority"
            )
        said = new.impact is not None or new.urgency is not None
        if defaults.priority is not None and not said:
            subject = " / ".join(
                f"{k} '{v}'" for k, v in (("service", service), ("category", category)) if v
            )
            why = f"the catalogue's default priority for {subject}"
            return decide(matrix, impact, urgency, defaults.priority, why, by=CATALOGUE)
        return decide(matrix, impact, urgency)
    return decide(matrix, impact, urgency, new.priority, new.priority_reason, by=actor)


def _routed_group(
    decision: RoutingDecision | None, directory: Directory, assignee: str | None
) -> str:
    """The group routing chose, unless the caller's agent is not in it and belongs to
    one group only: then that one (the agent filing a ticket for themselves)."""
    agent = directory.agents.get(assignee) if assignee is not None else None
    outside = decision is None or (agent is not None and decision.group not in agent.groups)
    if agent is not None and len(agent.groups) == 1 and outside:
        return agent.groups[0]
    if decision is None:
        raise ValidationFailed(
            "routing found no group the directory holds (is the triage group declared?): "
            "name the assignment group",
            field="assignment_group",
        )
    return decision.group


def _created(
    ticket: Incident, priority: PriorityDecision, now: dt.datetime, actor: str
) -> WorklogEntry:
    how = f"P{priority.priority} ({ticket.impact} impact x {ticket.urgency} urgency)"
    if priority.overridden:
        how = f"P{priority.priority}, overriding P{priority.computed}: {priority.reason}"
    words = ticket.type.value.replace("_", " ")
    return entry(ticket.id, now, actor, WorklogKind.CREATED, f"{words} via {ticket.channel}: {how}")


def _apply_decision(
    ticket: Incident,
    decision: RoutingDecision,
    now: dt.datetime,
    actor: str,
    *,
    chosen_by: str,
    rules: RoutingRules,
) -> list[WorklogEntry]:
    """Tags and priority bounds of the decision (kept on the ticket; the priority within
    them unless the caller overrode it); its ROUTED entry when it chose the group, or, when
    the caller (or the assignee's only group) did, when some rule matched."""
    ticket.tags = list(dict.fromkeys([*ticket.tags, *decision.tags]))
    why = apply_bounds(ticket, decision, rules)
    if chosen_by == "routing":
        ticket.routed_by = decision.rule
        return [routed_entry(ticket, decision, now, actor, None, why)]
    reasons = "; ".join(decision.reasons) + (f"; priority by {why}" if why else "")
    if not decision.matched:
        return []
    whose = "the assignee's only group" if chosen_by == "agent" else "the group given"
    shown = f"{whose} {ticket.assignment_group}; rules: {reasons}"
    return [entry(ticket.id, now, actor, WorklogKind.ROUTED, shown)]


def _custom_fields(
    new: NewTicket,
    defaults: Defaults,
    decision: RoutingDecision | None,
    kind: TicketType,
    category: str | None,
    policy: DeskPolicy,
) -> dict[str, Any]:
    """The caller's values over the rules' over the catalogue's; the schema checks the
    caller's strictly and drops what configuration set that it refuses (a rule or a
    default must not make a ticket impossible to file)."""
    schema = policy.custom_fields
    given = new.custom_fields
    if not isinstance(given, Mapping):
        raise ValidationFailed("must map field names to values", field="custom_fields")
    configured = {**defaults.custom_fields, **(decision.custom_fields if decision else {})}
    usable: dict[str, object] = {}
    for name, value in configured.items():
        if name in given:
            continue
        try:
            schema.validate(kind, category, {name: value}, partial=True)
        except (ValidationFailed, ValidationErrors):
            continue
        usable[name] = value
    return schema.validate(kind, category, {**usable, **given})
