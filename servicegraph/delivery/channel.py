"""What a delivery channel is to the sender: something that sends one outbox message or
says why it could not (``DeliveryFailed``), and never raises anything else on purpose."""

from __future__ import annotations

from typing import Protocol

from servicegraph.ticketing.outbox import OutboxMessage


class DeliveryFailed(Exception):
    """A message did not get through. ``permanent``: the peer refused it for good (an SMTP
    5xx, an HTTP 4xx); it is still retried up to the attempt limit, since such refusals
    are often a full mailbox or a misconfigured endpoint that someone fixes, and the
    error says which it was."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        self.reason = reason
        self.permanent = permanent
        super().__init__(f"{'permanent' if permanent else 'temporary'}: {reason}")


class Transport(Protocol):
    timeout_s: float  # the longest one network operation of ``send`` may block

    def send(self, message: OutboxMessage) -> None:
        """Deliver ``message`` (raise ``DeliveryFailed`` when it did not get through)."""

    def close(self) -> None:
        """Drop any connection kept between messages."""
