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

The sender's side is the ``OutboxStore`` port (claims with a lease, one message marked
at a time, dead letters) and the ``RetryPolicy`` that spaces the attempts; the sender job
itself is ``servicegraph.delivery.sender``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


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


# -- the sender's side -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A queued message as the outbox holds it, with its delivery state.

    ``attempts`` counts the deliveries *started* (a claim starts one), so that a message
    whose sending kills the sender every time still reaches the dead letters."""

    id: int
    message: OutboxMessage
    attempts: int
    next_attempt_at: dt.datetime
    claimed_until: dt.datetime | None = None
    sent_at: dt.datetime | None = None
    dead_at: dt.datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a failed delivery is tried again: after ``base`` x 2^(attempts-1), at most
    ``cap``, and never after ``max_attempts`` deliveries started (then it is a dead
    letter). No jitter: one message's schedule is the same whoever sends it, so a test, a
    log and an operator can say when the next attempt is due."""

    max_attempts: int = 8
    base: dt.timedelta = dt.timedelta(seconds=30)
    cap: dt.timedelta = dt.timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base <= dt.timedelta(0) or self.cap < self.base:
            raise ValueError("the backoff needs 0 < base <= cap")

    def delay(self, attempts: int) -> dt.timedelta:
        """The wait after the ``attempts``-th failed delivery (1: the first)."""
        exponent = max(0, attempts - 1)
        if exponent >= 40:  # 2**40 x any base is past every cap
            return self.cap
        grown: dt.timedelta = self.base * (2**exponent)
        return min(self.cap, grown)

    def next_attempt(self, attempts: int, now: dt.datetime) -> dt.datetime | None:
        """When to try again after ``attempts`` deliveries failed, or None: dead letter."""
        if attempts >= self.max_attempts:
            return None
        return now + self.delay(attempts)


@dataclass(frozen=True, slots=True)
class OutboxCounts:
    pending: int  # waiting to be sent (due or retrying later), claimed ones included
    sent: int  # sent and not yet pruned
    dead: int  # dead letters


class OutboxStore(Protocol):
    """The outbox as the sender job sees it (adapter: ``storage.sqlite.outbox``).

    Contract:

    - ``claim`` hands out due messages (not sent, not dead, ``next_attempt_at <= now``,
      not leased or their lease expired), oldest first, and leases each until ``now +
      lease``: no other claim returns it before then, whichever process asks. Claiming
      counts a delivery attempt. A message whose lease expired after ``max_attempts``
      claims (its sender died each time) becomes a dead letter instead of being claimed.
    - ``mark_sent`` / ``mark_failed`` end one delivery, one message at a time, so that a
      sender killed mid-batch loses nothing and repeats at most the message it was
      sending. ``mark_failed`` schedules the next attempt by ``retry`` (from the
      attempts claimed) or makes the message a dead letter.
    - ``release`` gives back claimed messages that were not tried (a stopping sender),
      without counting the attempt their claim counted.
    - ``retry`` turns dead letters (all, or those with the given ids) back into due
      messages with no attempts; it returns how many.

    Errors: ``StoreError`` / ``StoreUnavailable`` like every port.
    """

    def claim(
        self, now: dt.datetime, *, limit: int, lease: dt.timedelta, max_attempts: int
    ) -> list[OutboxEntry]: ...

    def mark_sent(self, entry_id: int, at: dt.datetime) -> None: ...

    def mark_failed(
        self, entry_id: int, at: dt.datetime, error: str, *, retry: RetryPolicy
    ) -> dt.datetime | None:
        """Record a failed delivery; returns the next attempt's time, None if now dead."""
        ...

    def release(self, entry_ids: Sequence[int]) -> None: ...

    def dead_letters(self, *, limit: int = 100) -> list[OutboxEntry]:
        """Dead letters, the most recent first."""
        ...

    def retry(self, entry_ids: Sequence[int] | None, now: dt.datetime) -> int: ...

    def get(self, entry_ids: Sequence[int]) -> dict[int, OutboxEntry]: ...

    def counts(self) -> OutboxCounts: ...

    def prune_sent(self, before: dt.datetime) -> int:
        """Delete messages sent before ``before``; returns how many. Their keys then no
        longer keep a message with the same key out of the outbox."""
        ...
