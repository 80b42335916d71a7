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

Beside it, each with one job: ``notification_policy`` (the settings it reads),
``notification_documents`` (what a message says: the webhook document, the template
context) and ``notification_samples`` (what the templates are rendered against at load).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Incident, WorklogEntry, WorklogKind
from servicegraph.ticketing.notification_documents import (
    ESCALATION_EVENTS,
    NotificationEvent,
    Recipient,
    message_context,
    sla_context,
    webhook_document,
)
from servicegraph.ticketing.notification_policy import NotificationPolicy, WebhookRoute
from servicegraph.ticketing.outbox import OutboxChannel, OutboxMessage
from servicegraph.ticketing.people import Agent, Contact, Directory, Group, check_email
from servicegraph.ticketing.sla import Clock
from servicegraph.ticketing.sla_config import EscalationLevel

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Cause:
    """One event of a change and what the message says of it."""

    event: NotificationEvent
    discriminator: str  # with the ticket and event, what makes the cause unique
    recipients: tuple[Recipient, ...]
    text: str = ""
    sla: Mapping[str, Any] | None = None

    def key(self, ticket: Incident, recipient: str) -> str:
        """The idempotency key of this cause's message to ``recipient`` (a mail address,
        ``webhook:<route>``)."""
        return idempotency_key(ticket.id, self.event, self.discriminator, recipient)

    def message(
        self,
        ticket: Incident,
        key: str,
        channel: OutboxChannel,
        target: str,
        subject: str,
        body: str,
        now: dt.datetime,
    ) -> OutboxMessage:
        """The outbox message of this cause on ``ticket``, on either channel."""
        return OutboxMessage(
            key=key,
            event=self.event.value,
            ticket_id=ticket.id,
            channel=channel,
            target=target,
            subject=subject,
            body=body,
            created_at=now,
        )


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
            people += escalation_recipients(directory, ticket, name)
        sla = sla_context(clock, level)
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
        key = cause.key(ticket, recipient.email)
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
        return cause.message(ticket, key, OutboxChannel.EMAIL, recipient.email, subject, body, now)

    def _webhook(
        self, ticket: Incident, cause: _Cause, route: WebhookRoute, actor: str, now: dt.datetime
    ) -> OutboxMessage:
        key = cause.key(ticket, f"webhook:{route.name}")
        document = webhook_document(
            ticket, cause.event, key=key, actor=actor, text=cause.text, sla=cause.sla, now=now,
            ticket_url=self.policy.ticket_url,
        )  # fmt: skip
        subject = f"{cause.event.value} {ticket.id}"
        return cause.message(ticket, key, OutboxChannel.WEBHOOK, route.name, subject, document, now)

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


def escalation_recipients(directory: Directory, ticket: Incident, name: str) -> list[Recipient]:
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


# -- keys ------------------------------------------------------------------------------------


def _us(value: dt.datetime) -> int:
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def idempotency_key(ticket_id: str, event: str, discriminator: str, recipient: str) -> str:
    """``<ticket>.<event>.<24 hex digits>``: the same cause and recipient, the same key."""
    parts = "\x1f".join((ticket_id, str(event), discriminator, recipient.casefold()))
    digest = hashlib.sha256(parts.encode()).hexdigest()[:24]
    return f"{ticket_id}.{event}.{digest}"
