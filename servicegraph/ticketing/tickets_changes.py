"""Editing a ticket's fields, overriding its priority and checking links, as pure steps.

Like ``tickets_work``: each function changes the ticket in place and returns one CHANGED
entry per field that changed (custom fields one each, as ``custom_fields.<name>``), or
raises naming the field, before anything is saved.

Rules: a closed or cancelled ticket is read-only. A monitoring incident's title, impact
and urgency follow its alerts (correlation rewrites them with every batch), so they are
refused there; its priority can still be overridden, and it can be given CIs. When impact
or urgency change, the priority follows the matrix again, within the ticket's routing
bounds (``priority_floor``/``priority_ceiling``: clamped, never frozen), unless an agent
overrode it (a priority the catalogue set was a default, and the agent's new facts are
better). An agent's override wins over the bounds; setting the priority back to the
bounded matrix's ends it. Empty text clears the requester, service or category.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.catalogue import Catalogue
from servicegraph.ticketing.errors import InvalidState
from servicegraph.ticketing.intake import MAX_TEXT, MAX_TITLE, choice, tag_list, text
from servicegraph.ticketing.lifecycle import ActorKind
from servicegraph.ticketing.model import (
    Channel,
    Incident,
    LinkKind,
    TicketLink,
    WorklogEntry,
    WorklogKind,
)
from servicegraph.ticketing.people import Directory
from servicegraph.ticketing.priority import Impact, Urgency, check_priority, level
from servicegraph.ticketing.tickets_policy import DeskPolicy
from servicegraph.ticketing.tickets_work import changed, entry

_CORRELATION_FIELDS = ("title", "impact", "urgency")


@dataclass(frozen=True)
class TicketChanges:
    """What to change; None = unchanged; for lists, the new whole value."""

    title: str | None = None
    description: str | None = None
    requester: str | None = None
    service: str | None = None
    category: str | None = None
    impact: str | None = None
    urgency: str | None = None
    affected_ci_ids: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    custom_fields: Mapping[str, object] | None = None  # merged; a None value clears one


def check_editable(t: Incident, policy: DeskPolicy, actor_kind: ActorKind) -> None:
    if policy.lifecycle.is_final(t.status):
        raise InvalidState(
            t.status, "update", (), ticket_id=t.id, actor_kind=actor_kind,
            detail=f"a {t.status} ticket is read-only",
        )  # fmt: skip


def apply_changes(
    t: Incident,
    changes: TicketChanges,
    *,
    ci_ids: list[str] | None,
    directory: Directory,
    catalogue: Catalogue,
    policy: DeskPolicy,
    actor: str,
    now: dt.datetime,
) -> list[WorklogEntry]:
    """Apply ``changes`` to ``t``; ``ci_ids`` are ``changes.affected_ci_ids`` checked and
    resolved by the caller. Raises before changing anything when a value is refused."""
    check_editable(t, policy, ActorKind.AGENT)
    if t.channel is Channel.MONITORING:
        for name in _CORRELATION_FIELDS:
            if getattr(changes, name) is not None:
                raise ValidationFailed(
                    "follows the incident's alerts (correlation keeps it current); "
                    "override the priority instead",
                    field=name,
                )
    values: dict[str, object] = {}
    if changes.title is not None:
        values["title"] = text(changes.title, "title", limit=MAX_TITLE)
    if changes.description is not None:
        values["description"] = text(
            changes.description, "description", limit=MAX_TEXT, required=False
        )
    if changes.requester is not None:
        values.update(_requester(directory, changes.requester))
    if changes.service is not None:
        wanted = text(changes.service, "service", limit=200, required=False)
        values["service"] = catalogue.service(wanted, ticket_type=t.type).id if wanted else None
    if changes.category is not None:
        wanted = text(changes.category, "category", limit=500, required=False)
        path = catalogue.category(wanted, ticket_type=t.type).path if wanted else None
        values["category"] = path
    if changes.impact is not None:
        values["impact"] = level(Impact, changes.impact, "impact")
    if changes.urgency is not None:
        values["urgency"] = level(Urgency, changes.urgency, "urgency")
    if ci_ids is not None:
        values["affected_ci_ids"] = ci_ids
    if changes.tags is not None:
        values["tags"] = tag_list(changes.tags)
    category = values.get("category", t.category)
    fields = _custom_fields(t, changes.custom_fields, _optional_str(category), policy)
    log: list[WorklogEntry] = []
    for name, value in values.items():
        if getattr(t, name) != value:
            log.append(changed(t, now, actor, name, getattr(t, name), value))
            setattr(t, name, value)
    for name in sorted(set(fields) | set(t.custom_fields)):
        old, new = t.custom_fields.get(name), fields.get(name)
        if old != new:
            log.append(changed(t, now, actor, f"custom_fields.{name}", old, new))
    t.custom_fields = fields
    if "impact" in values or "urgency" in values:
        log += _follow_matrix(t, policy, actor, now)
    return log


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _requester(directory: Directory, value: str) -> dict[str, object]:
    wanted = text(value, "requester", limit=320, required=False)
    if not wanted:
        return {"requester": None, "organisation": None}
    contact = directory.contact(wanted)
    if not contact.active:
        raise ValidationFailed(f"contact '{contact.id}' is inactive", field="requester")
    organisation = directory.organisation_of(contact)
    return {
        "requester": contact.id,
        "organisation": organisation.id if organisation is not None else None,
    }


def _custom_fields(
    t: Incident,
    given: Mapping[str, object] | None,
    category: str | None,
    policy: DeskPolicy,
) -> dict[str, object]:
    """The ticket's custom fields after the change: the given ones coerced and merged (a
    None value clears one); the whole set checked again when the category moved, since
    the new one may declare other fields or require one."""
    schema = policy.custom_fields
    merged = dict(t.custom_fields)
    if given is not None:
        if not isinstance(given, Mapping):
            raise ValidationFailed("must map field names to values", field="custom_fields")
        coerced = schema.validate(t.type, category, given, partial=True)
        for name in given:
            merged.pop(name, None)
        merged.update({k: v for k, v in coerced.items() if v is not None})
    if category != t.category:
        return schema.validate(t.type, category, merged)
    return merged


def _follow_matrix(
    t: Incident, policy: DeskPolicy, actor: str, now: dt.datetime
) -> list[WorklogEntry]:
    if t.agent_override:
        return []
    computed, how = _desk_priority(t, policy)
    log = []
    if t.priority_reason is not None:  # a configured default, replaced by the facts
        log.append(changed(t, now, actor, "priority_reason", t.priority_reason, None))
        t.priority_reason = t.priority_set_by = None
    if computed != t.priority:
        why = f"priority: P{t.priority} -> P{computed} ({how})"
        log.append(changed(t, now, actor, "priority", t.priority, computed, why))
        t.priority = computed
    return log


def _desk_priority(t: Incident, policy: DeskPolicy) -> tuple[int, str]:
    """The priority the ticket gets without an override: the matrix's within its routing
    bounds, and how it came (for the history)."""
    matrix = policy.priority_matrix.priority(t.impact, t.urgency)
    how = f"{t.impact} impact x {t.urgency} urgency"
    bounded = t.bounded(matrix)
    if bounded < matrix:
        how += f" gives P{matrix}; routing keeps it at least as urgent as P{t.priority_floor}"
    elif bounded > matrix:
        how += f" gives P{matrix}; routing keeps it at most as urgent as P{t.priority_ceiling}"
    return bounded, how


def override_priority(
    t: Incident, priority: int, reason: str, policy: DeskPolicy, actor: str, now: dt.datetime
) -> list[WorklogEntry]:
    """An agent's priority, with the reason logged; it wins over routing's bounds. One
    equal to what the ticket would have without it (the matrix's within the bounds) ends
    any override: the ticket follows impact and urgency again."""
    check_editable(t, policy, ActorKind.AGENT)
    why = text(reason, "priority_reason", limit=MAX_TEXT, required=False) or None
    chosen = check_priority(priority, "priority")
    desk, how = _desk_priority(t, policy)
    if chosen != desk and why is None:
        raise ValidationFailed(
            f"overriding priority {desk} (from {how}) with {chosen} needs a reason",
            field="priority_reason",
        )
    new_reason = why if chosen != desk else None
    new_by = actor if new_reason is not None else None
    log = []
    if chosen != t.priority:
        shown = f"priority: P{t.priority} -> P{chosen}" + (
            f": {new_reason}" if new_reason else " (the matrix's)"
        )
        log.append(changed(t, now, actor, "priority", t.priority, chosen, shown))
    if new_reason != t.priority_reason:
        log.append(changed(t, now, actor, "priority_reason", t.priority_reason, new_reason))
    t.priority, t.priority_reason, t.priority_set_by = chosen, new_reason, new_by
    return log


def link_kind(value: object) -> LinkKind:
    return choice(LinkKind, value, "kind")


def check_link(
    source: Incident, kind: LinkKind, target_id: str, links: Mapping[str, list[TicketLink]]
) -> TicketLink | None:
    """Refuse a link that contradicts the ones stored (``links``: ``links_of`` the source
    and target); the existing link when it is stored already (a related link either way
    round), else None. A ticket is the duplicate of one ticket and the child of one
    parent, and no ticket is its own ancestor (the caller walks further up, see
    ``ancestors``)."""
    if target_id == source.id:
        raise ValidationFailed("a ticket cannot be linked to itself", field="target_id")
    mine = links.get(source.id, [])
    for link in mine:
        same = (link.source_id, link.kind, link.target_id) == (source.id, kind, target_id)
        reverse = kind is LinkKind.RELATED and (link.source_id, link.kind, link.target_id) == (
            target_id,
            kind,
            source.id,
        )
        if same or reverse:
            return link
    if kind is LinkKind.DUPLICATE_OF:
        for link in mine:
            if link.kind is LinkKind.DUPLICATE_OF and link.source_id == source.id:
                raise ValidationFailed(
                    f"{source.id} is already a duplicate of {link.target_id}", field="target_id"
                )
            if link.kind is LinkKind.DUPLICATE_OF and link.source_id == target_id:
                raise ValidationFailed(
                    f"{target_id} is a duplicate of {source.id}: the other way round",
                    field="target_id",
                )
    if kind is LinkKind.PARENT_OF:
        for link in links.get(target_id, []):
            if link.kind is LinkKind.PARENT_OF and link.target_id == target_id:
                raise ValidationFailed(
                    f"{target_id} already has a parent, {link.source_id}", field="target_id"
                )
    return None


def linked_entries(
    link: TicketLink, at: dt.datetime, actor: str, *, removed: bool = False
) -> list[WorklogEntry]:
    """The LINKED entry on each end of a link (added, or removed)."""
    what = f"{link.source_id} {link.kind.value.replace('_', ' ')} {link.target_id}"
    shown = ("unlinked: " if removed else "linked: ") + what
    old, new = (what, None) if removed else (None, what)
    return [
        entry(ticket, at, actor, WorklogKind.LINKED, shown, field="links", old=old, new=new)
        for ticket in (link.source_id, link.target_id)
    ]
