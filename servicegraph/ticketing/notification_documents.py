"""What a notification carries: the webhook document and the template context.

Two contracts with the outside, kept in one place so each reads whole: the JSON document a
webhook receiver parses (``webhook_document``: versioned by ``WEBHOOK_VERSION``, keys
sorted and compact because those bytes are signed) and the names a template may read
(``message_context``; the shipped and configured templates are checked against it at load,
``notification_samples``). Who gets a message, in which language and under which key is
the notifier's business (``notifications``); this module only says what a message about an
event says of its ticket, the people around it and an SLA clock (``sla_context``).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servicegraph.ticketing.model import Incident
from servicegraph.ticketing.people import Agent, Contact, Directory, Group
from servicegraph.ticketing.sla import Clock
from servicegraph.ticketing.sla_config import EscalationLevel


class NotificationEvent(enum.StrEnum):
    CREATED = "created"
    ASSIGNED = "assigned"
    REPLIED = "replied"  # a comment to the requester
    RESOLVED = "resolved"
    CLOSED = "closed"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    ESCALATED = "escalated"  # a declared escalation level fired (the manager, on-call)


EVENTS: tuple[str, ...] = tuple(e.value for e in NotificationEvent)
ESCALATION_EVENTS = frozenset(
    {NotificationEvent.AT_RISK, NotificationEvent.BREACHED, NotificationEvent.ESCALATED}
)
WEBHOOK_VERSION = 1  # the document's "version": raised when a field changes meaning


@dataclass(frozen=True, slots=True)
class Recipient:
    """Whom a message goes to: what templates read of them, what the language map keys."""

    kind: str  # requester, agent, group, address
    key: str  # contact id, login, group id or the address
    name: str
    email: str
    organisation: str | None = None


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def _url(template: str | None, ticket: Incident) -> str | None:
    return None if template is None else template.format(id=ticket.id, number=ticket.number)


def _ticket_fields(ticket: Incident, ticket_url: str | None) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "number": ticket.number,
        "type": ticket.type.value,
        "title": ticket.title,
        "description": ticket.description,
        "status": ticket.status.value,
        "priority": ticket.priority,
        "impact": ticket.impact,
        "urgency": ticket.urgency,
        "channel": ticket.channel.value,
        "requester": ticket.requester,
        "organisation": ticket.organisation,
        "service": ticket.service,
        "category": ticket.category,
        "assignment_group": ticket.assignment_group,
        "assignee": ticket.assignee,
        "pending_reason": ticket.pending_reason,
        "resolution_code": ticket.resolution_code,
        "resolution": ticket.resolution,
        "close_code": ticket.close_code,
        "external_ref": ticket.external_ref,
        "tags": list(ticket.tags),
        "url": _url(ticket_url, ticket),
    }


_TIMES = ("opened_at", "updated_at", "first_response_at", "resolved_at", "closed_at")


def sla_context(clock: Clock, level: EscalationLevel | int) -> dict[str, Any]:
    """An escalation's clock as messages read it (``sla`` in contexts and documents)."""
    if isinstance(level, EscalationLevel):
        number, share = level.number, level.share
    else:
        number = level
        share = clock.elapsed / clock.target if clock.target else 1.0
    return {
        "clock": clock.kind.value,
        "level": number,
        "share": share,  # of the target where the level fires: 1.0 is the breach
        "state": clock.state.value,
        "due": clock.due,
        "target": clock.target,
        "elapsed": clock.elapsed,
        "remaining": clock.remaining,
        "breached_at": clock.breached_at,
    }


def webhook_document(
    ticket: Incident,
    event: NotificationEvent,
    *,
    key: str,
    actor: str,
    text: str,
    sla: Mapping[str, Any] | None,
    now: dt.datetime,
    ticket_url: str | None = None,
) -> str:
    """The JSON body of a webhook delivery (keys sorted, compact: the bytes signed)."""
    fields = _ticket_fields(ticket, ticket_url)
    fields.update({name: _iso(getattr(ticket, name)) for name in _TIMES})
    clock = None
    if sla is not None:
        clock = {
            k: (_iso(v) if isinstance(v, dt.datetime) else v.total_seconds())
            if isinstance(v, dt.datetime | dt.timedelta)
            else v
            for k, v in sla.items()
        }
    document = {
        "version": WEBHOOK_VERSION,
        "event": event.value,
        "idempotency_key": key,
        "occurred_at": _iso(now),
        "actor": actor,
        "ticket": fields,
        "text": text or None,
        "sla": clock,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _person(record: Agent | Contact | Group | None) -> dict[str, Any] | None:
    if record is None:
        return None
    if isinstance(record, Agent):
        return {
            "login": record.login,
            "id": record.login,
            "name": record.name,
            "email": record.email,
        }
    return {"id": record.id, "name": record.name, "email": record.email}


def message_context(
    ticket: Incident,
    directory: Directory,
    event: NotificationEvent,
    actor: str,
    recipient: Recipient,
    text: str,
    sla: Mapping[str, Any] | None,
    now: dt.datetime,
    *,
    ticket_url: str | None = None,
) -> dict[str, Any]:
    """What a template may read: ``ticket`` (its fields, times as datetimes), ``event``,
    ``actor`` {login, name}, ``recipient`` {kind, name, email}, ``requester``,
    ``assignee``, ``group`` ({id, name, email} or None), ``text`` (the reply or the
    resolution), ``sla`` (escalations: clock, level, state, due, target, elapsed,
    remaining, breached_at; else None), ``now``."""
    fields = _ticket_fields(ticket, ticket_url)
    fields.update({name: getattr(ticket, name) for name in _TIMES})
    who = directory.agents.get(actor)
    contact = directory.contacts.get(ticket.requester) if ticket.requester else None
    assignee = directory.agents.get(ticket.assignee) if ticket.assignee else None
    group = directory.groups.get(ticket.assignment_group) if ticket.assignment_group else None
    return {
        "event": event.value,
        "ticket": fields,
        "actor": {"login": actor, "name": who.name if who is not None else actor},
        "recipient": {"kind": recipient.kind, "name": recipient.name, "email": recipient.email},
        "requester": _person(contact),
        "assignee": _person(assignee),
        "group": _person(group),
        "text": text,
        "sla": dict(sla) if sla is not None else None,
        "now": now,
    }
