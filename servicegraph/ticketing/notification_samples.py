"""The samples every notification template is rendered against when it is loaded.

``Templates.load`` renders each template with these contexts, so a template that reads a
name the context lacks, or fails on an empty field, is refused when the desk starts,
named, not at the first ticket it would have mailed. The samples cover what real
messages meet: a ticket with every field set and a bare one, an agent and the system as
actor, with and without text, an SLA clock at risk and a breached one. They are fixtures of
that check, not rules of who is told what, hence a module of their own.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Channel, Incident, TicketType
from servicegraph.ticketing.notification_documents import (
    ESCALATION_EVENTS,
    NotificationEvent,
    Recipient,
    message_context,
    sla_context,
)
from servicegraph.ticketing.people import Agent, Contact, Directory, Group
from servicegraph.ticketing.sla import Clock, ClockKind, ClockState
from servicegraph.ticketing.sla_config import EscalationLevel

_T0 = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)


def _directory() -> Directory:
    return Directory.build(
        agents=[
            Agent("sample.agent", "Sam Agent", "sam.agent@example.org", groups=("sample-group",)),
            Agent("sample.manager", "Mia Manager", "mia@example.org", groups=("sample-group",)),
        ],
        groups=[Group("sample-group", "Sample group", manager="sample.manager")],
        contacts=[Contact("sample-contact", "Chris Contact", email="chris@example.com")],
    )


def _tickets() -> list[Incident]:
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


def _clocks() -> list[Clock]:
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
    directory = _directory()
    recipients = [
        Recipient("requester", "sample-contact", "Chris Contact", "chris@example.com"),
        Recipient("agent", "sample.agent", "Sam Agent", "sam.agent@example.org"),
    ]
    samples: dict[str, list[dict[str, Any]]] = {}
    for event in NotificationEvent:
        contexts = []
        for index, ticket in enumerate(_tickets()):
            actor = "sample.manager" if index == 0 else "system"
            text = "Could you restart the client?\nThanks." if index == 0 else ""
            clock = _clocks()[index] if event in ESCALATION_EVENTS else None
            level = EscalationLevel(2, ClockKind.RESOLUTION, 0.75) if index == 0 else 1
            sla = sla_context(clock, level) if clock is not None else None
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
