"""Who is told what about a ticket, in which language: the messages a change enqueues.

A change of a ticket (``TicketService``'s unit) or an SLA escalation (the escalation
job's unit) asks the ``Notifier`` for its messages and enqueues them in the same unit
(``TicketUnit.enqueue``), so a message exists exactly when its cause committed. The sender
job delivers them later (``servicegraph.delivery``); nothing here touches the network.

Events and who gets a mail (the anchors' complaints in mind: duplicate mails, mails to the
agent who acted, one language for everyone):

- ``created``, ``replied`` (a comment to the requester, ``WorklogKind.REPLY``),
  ``resolved``, ``closed``: the requester, at the contact's address;
- ``assigned``: the new agent; when only the group changed, the group's mailbox, or its
  active members when it has none;
- ``at_risk``, ``breached``, ``escalated`` (a declared escalation level): whom the
  escalation level names: ``group_manager``, ``group`` (its mailbox or members),
  ``assignee`` (the group when nobody holds the ticket), or literal addresses.

Never the person who made the change (by login, contact id or address), never an
inactive agent or contact, and one mail per address and event. Each recipient reads the
language the configured map gives them (by login or contact id, address, organisation,
mail domain), else the default language. Webhook endpoints get one JSON document per
event they subscribe to.

Every message has an idempotency key derived from its cause (ticket, event, the change's
instant or the escalation's clock and level, recipient): the outbox keeps one message per
key, so a unit retried with the same cause enqueues nothing twice, and receivers can drop
a redelivery.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import (
    Channel,
    Incident,
    TicketType,
    WorklogEntry,
    WorklogKind,
)
from servicegraph.ticketing.notification_templates import LANGUAGE_PATTERN, Templates
from servicegraph.ticketing.outbox import OutboxChannel, OutboxMessage
from servicegraph.ticketing.people import Agent, Contact, Directory, Group, check_email
from servicegraph.ticketing.sla import Clock, ClockKind, ClockState
from servicegraph.ticketing.sla_config import EscalationLevel

log = logging.getLogger(__name__)


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
# what an escalation level may name besides literal addresses
ESCALATION_TARGETS = ("group_manager", "group", "assignee")
WEBHOOK_VERSION = 1  # the document's "version": raised when a field changes meaning


def check_escalation_recipient(value: Any, field: str) -> str:
    """One recipient of an escalation level: ``group_manager``, ``group``, ``assignee``
    or a mail address (for the escalation settings' validation)."""
    if isinstance(value, str) and value.strip() in ESCALATION_TARGETS:
        return value.strip()
    if isinstance(value, str) and "@" in value:
        return check_email(value, field)
    raise ValidationFailed(
        f"'{value}' is not one of {', '.join(ESCALATION_TARGETS)} nor a mail address",
        field=field,
    )


@dataclass(frozen=True, slots=True)
class WebhookRoute:
    """A configured endpoint (its URL and secret stay with the sender) and its events."""

    name: str
    events: frozenset[NotificationEvent]


@dataclass(frozen=True)
class NotificationPolicy:
    """What ``notifications:`` settings configure, built and checked (``build``)."""

    templates: Templates
    email_events: frozenset[NotificationEvent] = frozenset()  # empty: no mail at all
    webhooks: tuple[WebhookRoute, ...] = ()
    languages: Mapping[str, str] = field(default_factory=dict)
    ticket_url: str | None = None  # "https://desk.example/tickets/{id}" ({id}, {number})
    timezone: dt.tzinfo = dt.UTC

    @property
    def default_language(self) -> str:
        return self.templates.default_language

    @property
    def active(self) -> bool:
        """Whether any message can come out at all (else the desk skips the notifier)."""
        return bool(self.email_events) or any(w.events for w in self.webhooks)

    @classmethod
    def build(
        cls,
        *,
        email_events: Iterable[str] | None,
        webhooks: Iterable[tuple[str, Iterable[str] | None]] = (),
        default_language: str = "en",
        languages: Mapping[str, str] | None = None,
        templates_dir: Path | None = None,
        ticket_url: str | None = None,
        timezone: dt.tzinfo = dt.UTC,
    ) -> NotificationPolicy:
        """``email_events`` None: no mail (no SMTP server); ``webhooks``: (name, events or
        None for all). Raises ValidationFailed / ValidationErrors naming the setting."""
        if not LANGUAGE_PATTERN.match(default_language):
            raise ValidationFailed(
                f"'{default_language}' is not a language code (en, de ...)",
                field="notifications.default_language",
            )
        if ticket_url is not None:
            try:
                ticket_url.format(id="inc-1", number=1)
            except (KeyError, IndexError, ValueError, AttributeError) as exc:
                raise ValidationFailed(
                    f"may use {{id}} and {{number}} only ({exc})", field="notifications.ticket_url"
                ) from None
        templates = Templates.load(
            EVENTS,
            sample_contexts(ticket_url),
            default_language=default_language,
            directory=templates_dir,
            timezone=timezone,
        )
        mapped = {}
        for key, language in (languages or {}).items():
            where = f"notifications.languages.{key}"
            if not templates.has(language):
                have = ", ".join(sorted(templates.languages))
                raise ValidationFailed(
                    f"no templates in '{language}' (templates: {have})", field=where
                )
            mapped[key.strip().casefold()] = language
        routes = []
        for index, (name, events) in enumerate(webhooks):
            chosen = _events(events, f"notifications.webhooks.{index}.events")
            routes.append(WebhookRoute(name, chosen))
        return cls(
            templates=templates,
            email_events=frozenset()
            if email_events is None
            else _events(email_events, "notifications.events"),
            webhooks=tuple(routes),
            languages=MappingProxyType(mapped),
            ticket_url=ticket_url,
            timezone=timezone,
        )


def _events(values: Iterable[str] | None, field: str) -> frozenset[NotificationEvent]:
    if values is None:
        return frozenset(NotificationEvent)
    chosen = set()
    for index, value in enumerate(values):
        try:
            chosen.add(NotificationEvent(value))
        except ValueError:
            raise ValidationFailed(
                f"'{value}' is not an event; events: {', '.join(EVENTS)}", field=f"{field}.{index}"
            ) from None
    return frozenset(chosen)


@dataclass(frozen=True, slots=True)
class Recipient:
    kind: str  # requester, agent, group, address
    key: str  # contact id, login, group id or the address
    name: str
    email: str
    organisation: str | None = None


@dataclass(frozen=True, slots=True)
class _Cause:
    """One event of a change and what the message says of it."""

    event: NotificationEvent
    discriminator: str  # with the ticket and event, what makes the cause unique
    recipients: tuple[Recipient, ...]
    text: str = ""
    sla: Mapping[str, Any] | None = None


class Notifier:
    """Turns ticket changes and escalations into rendered outbox messages (module doc)."""

    def __init__(self, policy: NotificationPolicy, directory: Callable[[], Directory]) -> None:
        self.policy = policy
        self.directory = directory

    # -- what the ticket service and the escalation job call ----------------------------------

    def for_change(
        self,
        before: Incident | None,
        after: Incident,
        entries: Sequence[WorklogEntry],
        now: dt.datetime,
    ) -> list[OutboxMessage]:
        """The messages of one change of ``after`` (``before`` as it was loaded, None for
        a ticket just created), told by its worklog ``entries``: created, assigned (the
        agent or group changed), replied (each REPLY), resolved, closed."""
        own = [e for e in entries if e.ticket_id == after.id]
        if not own or not self.policy.active:
            return []
        directory = self.directory()
        actor = own[0].actor
        causes: list[_Cause] = []
        stamp = str(_us(now))
        if before is None and any(e.kind is WorklogKind.CREATED for e in own):
            causes.append(_Cause(NotificationEvent.CREATED, stamp, _requester(directory, after)))
        assigned = _assigned(directory, before, after)
        if assigned is not None:
            causes.append(_Cause(NotificationEvent.ASSIGNED, stamp, assigned))
        replies = [e for e in own if e.kind is WorklogKind.REPLY]
        for index, reply in enumerate(replies):
            causes.append(
                _Cause(
                    NotificationEvent.REPLIED,
                    f"{_us(reply.at)}.{index}",
                    _requester(directory, after),
                    text=reply.text,
                )
            )
        for e in own:
            if e.kind is WorklogKind.TRANSITION and e.field == "status":
                if e.new == TicketStatus.RESOLVED and after.status is TicketStatus.RESOLVED:
                    text = after.resolution or ""
                    causes.append(
                        _Cause(
                            NotificationEvent.RESOLVED, stamp, _requester(directory, after), text
                        )
                    )
                elif e.new == TicketStatus.CLOSED and after.status is TicketStatus.CLOSED:
                    causes.append(
                        _Cause(NotificationEvent.CLOSED, stamp, _requester(directory, after))
                    )
        return self._messages(after, causes, actor, directory, now)

    def escalation(
        self,
        ticket: Incident,
        *,
        event: NotificationEvent | str,
        clock: Clock,
        level: EscalationLevel | int,
        recipients: Sequence[str],
        now: dt.datetime,
    ) -> list[OutboxMessage]:
        """The messages of an escalation level firing on ``ticket``'s ``clock``: a mail to
        each of ``recipients`` (``group_manager``, ``group``, ``assignee``, addresses; an
        address of an agent, group or contact is mailed as that one, in their language) and
        the webhook documents of ``event`` (at_risk, breached or escalated). The key comes
        from the ticket, clock and level, so a level that fires twice enqueues nothing
        new."""
        chosen = NotificationEvent(event)
        if chosen not in ESCALATION_EVENTS:
            raise ValueError(f"an escalation notifies at_risk, breached or escalated: {chosen}")
        if not self.policy.active:
            return []
        directory = self.directory()
        people: list[Recipient] = []
        for name in recipients:
            people += _escalation_recipients(directory, ticket, name)
        sla = _sla(clock, level)
        cause = _Cause(chosen, f"{clock.kind.value}.{sla['level']}", tuple(people), sla=sla)
        return self._messages(ticket, [cause], "system", directory, now)

    # -- messages -----------------------------------------------------------------------------

    def _messages(
        self,
        ticket: Incident,
        causes: Sequence[_Cause],
        actor: str,
        directory: Directory,
        now: dt.datetime,
    ) -> list[OutboxMessage]:
        messages: list[OutboxMessage] = []
        excluded = _actor_addresses(directory, actor)
        for cause in causes:
            if cause.event in self.policy.email_events:
                seen: set[str] = set()
                for r in cause.recipients:
                    address = r.email.casefold()
                    if r.key == actor or address in excluded or address in seen:
                        continue
                    seen.add(address)
                    messages.append(self._mail(ticket, cause, r, actor, directory, now))
            for route in self.policy.webhooks:
                if cause.event in route.events:
                    messages.append(self._webhook(ticket, cause, route, actor, now))
        return messages

    def _mail(
        self,
        ticket: Incident,
        cause: _Cause,
        recipient: Recipient,
        actor: str,
        directory: Directory,
        now: dt.datetime,
    ) -> OutboxMessage:
        key = idempotency_key(ticket.id, cause.event, cause.discriminator, recipient.email)
        language = self.language(recipient)
        context = message_context(
            ticket, directory, cause.event, actor, recipient, cause.text, cause.sla, now,
            ticket_url=self.policy.ticket_url,
        )  # fmt: skip
        try:
            rendered = self.policy.templates.render(language, cause.event, context)
            subject, body = rendered.subject, rendered.body
        except ValidationFailed as exc:  # checked at load, but never a reason to fail work
            log.error("notification %s of %s: %s; sent as plain text", key, ticket.id, exc)
            subject = f"[#{ticket.number}] {ticket.title} ({cause.event.value})"
            body = f"{cause.event.value}: {ticket.id} {ticket.title}\n{cause.text}".rstrip() + "\n"
        return OutboxMessage(
            key=key,
            event=cause.event.value,
            ticket_id=ticket.id,
            channel=OutboxChannel.EMAIL,
            target=recipient.email,
            subject=subject,
            body=body,
            created_at=now,
        )

    def _webhook(
        self, ticket: Incident, cause: _Cause, route: WebhookRoute, actor: str, now: dt.datetime
    ) -> OutboxMessage:
        key = idempotency_key(ticket.id, cause.event, cause.discriminator, f"webhook:{route.name}")
        document = webhook_document(
            ticket, cause.event, key=key, actor=actor, text=cause.text, sla=cause.sla, now=now,
            ticket_url=self.policy.ticket_url,
        )  # fmt: skip
        return OutboxMessage(
            key=key,
            event=cause.event.value,
            ticket_id=ticket.id,
            channel=OutboxChannel.WEBHOOK,
            target=route.name,
            subject=f"{cause.event.value} {ticket.id}",
            body=document,
            created_at=now,
        )

    def language(self, recipient: Recipient) -> str:
        """The first language the map gives for the recipient's key (login, contact or
        group id), address, organisation, mail domain or a parent domain; else the
        default language."""
        languages = self.policy.languages
        if languages:
            domain = recipient.email.rpartition("@")[2].casefold()
            candidates = [recipient.key.casefold(), recipient.email.casefold()]
            if recipient.organisation:
                candidates.append(recipient.organisation.casefold())
            while domain:
                candidates += [domain, f"@{domain}"]
                domain = domain.partition(".")[2]
            for candidate in candidates:
                if candidate in languages:
                    return languages[candidate]
        return self.policy.default_language


# -- recipients -------------------------------------------------------------------------------


def _contact(contact: Contact | None, directory: Directory) -> tuple[Recipient, ...]:
    if contact is None or not contact.active or not contact.email:
        return ()
    organisation = directory.organisation_of(contact)
    org = organisation.id if organisation is not None else None
    return (Recipient("requester", contact.id, contact.name, contact.email, org),)


def _requester(directory: Directory, ticket: Incident) -> tuple[Recipient, ...]:
    if ticket.requester is None:
        return ()
    return _contact(directory.contacts.get(ticket.requester), directory)


def _agent(agent: Agent | None) -> tuple[Recipient, ...]:
    if agent is None or not agent.active:
        return ()
    return (Recipient("agent", agent.login, agent.name, agent.email),)


def _group(directory: Directory, group: Group | None) -> tuple[Recipient, ...]:
    """The group's mailbox, else each active member."""
    if group is None:
        return ()
    if group.email:
        return (Recipient("group", group.id, group.name, group.email),)
    found: list[Recipient] = []
    for login in group.members:
        found += _agent(directory.agents.get(login))
    return tuple(found)


def _assigned(
    directory: Directory, before: Incident | None, after: Incident
) -> tuple[Recipient, ...] | None:
    """Who hears of an assignment: the new agent, or the new group when no agent came
    with it; None when neither changed."""
    old_agent = before.assignee if before is not None else None
    old_group = before.assignment_group if before is not None else None
    if after.assignee is not None and after.assignee != old_agent:
        return _agent(directory.agents.get(after.assignee))
    if after.assignment_group is not None and after.assignment_group != old_group:
        if after.assignee is not None:  # moved with its agent: the agent knows
            return None
        return _group(directory, directory.groups.get(after.assignment_group))
    return None


def _escalation_recipients(directory: Directory, ticket: Incident, name: str) -> list[Recipient]:
    group = directory.groups.get(ticket.assignment_group) if ticket.assignment_group else None
    if name == "group_manager":
        if group is None or group.manager is None:
            return []
        return list(_agent(directory.agents.get(group.manager)))
    if name == "group":
        return list(_group(directory, group))
    if name == "assignee":  # nobody holds the ticket: its group
        if ticket.assignee is None:
            return list(_group(directory, group))
        return list(_agent(directory.agents.get(ticket.assignee)))
    try:
        address = check_email(name, "recipients")
    except ValidationFailed:
        log.error("escalation of %s names '%s', which is no recipient; skipped", ticket.id, name)
        return []
    return [_by_address(directory, address)]


def _by_address(directory: Directory, address: str) -> Recipient:
    """An address as the agent, group or contact it belongs to (their name and language),
    else as itself."""
    wanted = address.casefold()
    for agent in directory.agents.values():
        if agent.email.casefold() == wanted:
            return Recipient("agent", agent.login, agent.name, agent.email)
    for group in directory.groups.values():
        if group.email is not None and group.email.casefold() == wanted:
            return Recipient("group", group.id, group.name, group.email)
    contact = directory.find_contact(address)
    if contact is not None and contact.email:
        found = _contact(contact, directory)
        if found:
            return found[0]
    return Recipient("address", address, address, address)


def _actor_addresses(directory: Directory, actor: str) -> frozenset[str]:
    """The addresses of whoever made the change: they never hear of their own work."""
    found = {actor.casefold()} if "@" in actor else set()
    agent = directory.agents.get(actor)
    if agent is not None:
        found.add(agent.email.casefold())
    contact = directory.contacts.get(actor)
    if contact is not None and contact.email:
        found.add(contact.email.casefold())
    return frozenset(found)


# -- keys, documents, contexts ----------------------------------------------------------------


def _us(value: dt.datetime) -> int:
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def idempotency_key(ticket_id: str, event: str, discriminator: str, recipient: str) -> str:
    """``<ticket>.<event>.<24 hex digits>``: the same cause and recipient, the same key."""
    parts = "\x1f".join((ticket_id, str(event), discriminator, recipient.casefold()))
    digest = hashlib.sha256(parts.encode()).hexdigest()[:24]
    return f"{ticket_id}.{event}.{digest}"


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


def _sla(clock: Clock, level: EscalationLevel | int) -> dict[str, Any]:
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


# -- the samples every template is rendered against at load -----------------------------------

_T0 = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)


def _sample_directory() -> Directory:
    return Directory.build(
        agents=[
            Agent("sample.agent", "Sam Agent", "sam.agent@example.org", groups=("sample-group",)),
            Agent("sample.manager", "Mia Manager", "mia@example.org", groups=("sample-group",)),
        ],
        groups=[Group("sample-group", "Sample group", manager="sample.manager")],
        contacts=[Contact("sample-contact", "Chris Contact", email="chris@example.com")],
    )


def _sample_tickets() -> list[Incident]:
    full = Incident(
        id="inc-0123456789abcdef",
        number=42,
        title="VPN drops every ten minutes",
        status=TicketStatus.ASSIGNED,
        opened_at=_T0,
        updated_at=_T0 + dt.timedelta(hours=1),
        last_alert_at=_T0,
        priority=2,
        impact="medium",
        urgency="high",
        type=TicketType.SERVICE_REQUEST,
        channel=Channel.EMAIL,
        description="Since this morning the VPN drops.\nSecond line.",
        requester="sample-contact",
        organisation="sample-org",
        service="vpn",
        category="network/vpn",
        assignment_group="sample-group",
        assignee="sample.agent",
        pending_reason="awaiting_requester",
        resolution_code="fixed",
        resolution="Replaced the gateway's certificate.",
        close_code="done",
        resolved_at=_T0 + dt.timedelta(hours=2),
        closed_at=_T0 + dt.timedelta(days=3),
        first_response_at=_T0 + dt.timedelta(minutes=5),
        external_ref="SR-991",
        tags=["vpn", "vip"],
    )
    bare = Incident(
        id="inc-fedcba9876543210",
        number=7,
        title="x",
        status=TicketStatus.NEW,
        opened_at=_T0,
        updated_at=_T0,
        last_alert_at=_T0,
    )
    return [full, bare]


def _sample_clocks() -> list[Clock]:
    due = _T0 + dt.timedelta(hours=4)
    return [
        Clock(ClockKind.RESOLUTION, dt.timedelta(hours=4), due, dt.timedelta(hours=3),
              dt.timedelta(hours=1), False, ClockState.AT_RISK, None),
        Clock(ClockKind.RESPONSE, dt.timedelta(minutes=15), _T0, dt.timedelta(minutes=20),
              dt.timedelta(minutes=-5), True, ClockState.BREACHED, _T0),
    ]  # fmt: skip


def sample_contexts(ticket_url: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Per event, the contexts every template must render: a ticket with every field
    set and one with none, by a known agent and by the system, with and without text."""
    directory = _sample_directory()
    recipients = [
        Recipient("requester", "sample-contact", "Chris Contact", "chris@example.com"),
        Recipient("agent", "sample.agent", "Sam Agent", "sam.agent@example.org"),
    ]
    samples: dict[str, list[dict[str, Any]]] = {}
    for event in NotificationEvent:
        contexts = []
        for index, ticket in enumerate(_sample_tickets()):
            actor = "sample.manager" if index == 0 else "system"
            text = "Could you restart the client?\nThanks." if index == 0 else ""
            clock = _sample_clocks()[index] if event in ESCALATION_EVENTS else None
            level = EscalationLevel(2, ClockKind.RESOLUTION, 0.75) if index == 0 else 1
            sla = _sla(clock, level) if clock is not None else None
            contexts.append(
                message_context(
                    ticket,
                    directory,
                    event,
                    actor,
                    recipients[index],
                    text,
                    sla,
                    _T0 + dt.timedelta(hours=3),
                    ticket_url=ticket_url,
                )
            )
        samples[event.value] = contexts
    return samples
