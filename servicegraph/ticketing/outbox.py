"""Messages waiting to be sent: the notification outbox.

Why an outbox: a notification must go out exactly when the ticket change that causes it
commits, and never block that change. So the message is *written* in the unit of the
change (``TicketUnit.enqueue``: a crash before the commit loses both, after it keeps
both) and *sent* later by a job that reads the outbox. ``key`` is the idempotency key:
enqueueing a message whose key is already queued does nothing, and receivers get it with
every delivery attempt, so that a retry after a crash is recognisable downstream.

Messages are rendered when they are enqueued (subject and body as the recipient will
read them, or the JSON document of a webhook), so what is sent does not depend on the
templates or the ticket as they are when the sender runs.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass


class OutboxChannel(enum.StrEnum):
    EMAIL = "email"  # target: an address
    WEBHOOK = "webhook"  # target: the name of a configured endpoint


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One rendered message for one recipient (an address or a webhook endpoint)."""

    key: str  # idempotency key: unique per event, ticket and recipient
    event: str  # what happened: created, assigned, at_risk, breached, replied, resolved ...
    ticket_id: str | None
    channel: OutboxChannel
    target: str
    subject: str
    body: str
    created_at: dt.datetime
