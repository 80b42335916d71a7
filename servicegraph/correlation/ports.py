"""The storage port of correlation: the durable event inbox, and the unit of work that
claims its events and writes their effects on tickets in one transaction.

Incidents, alerts and problems are ticketing's aggregate, written through its repository
port (``servicegraph.ticketing.ports``): a ``CorrelationUnit`` is a ``TicketUnit`` that also
claims inbox events, because exactly-once needs the inbox cursor committed with the
effects of the events it passes.

Same rules as the graph store: coarse batch operations; adapters raise ``StoreUnavailable``
or ``StoreError`` chained to the driver's exception.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import NamedTuple, Protocol

from servicegraph.events.model import Event
from servicegraph.ticketing.ports import TicketUnit
from servicegraph.ticketing.sla_projection import SlaProjector


class Claim(NamedTuple):
    read: int  # inbox events consumed, redeliveries included
    events: list[Event]  # those to correlate


class CorrelationUnit(TicketUnit, Protocol):
    """One atomic step of the correlator. Units are serialised across processes, so two
    workers never process the same event, and a worker killed mid-unit leaves the inbox
    as it was: its events are processed again, once, by whoever comes next."""

    def claim_pending(self, limit: int) -> Claim:
        """The next ``limit`` unprocessed inbox events, oldest first, less redeliveries of
        events already correlated."""

    def mark_processed(self, at: dt.datetime) -> None:
        """Everything claimed in this unit is processed (committed with the unit)."""


class EventInbox(Protocol):
    """Where accepted events wait for correlation: persisted before the sender hears 2xx."""

    def close(self) -> None: ...

    def keep_sla(self, projector: SlaProjector) -> None:
        """Keep the SLA clocks of the incidents correlation units save, as ticket units do."""

    def check_writable(self, timeout: float) -> None:
        """Raise StoreError unless events can be appended now: the last append did not
        fail (a full disk, a corrupt file), and the inbox can be locked for writing within
        ``timeout`` seconds."""

    def append(self, events: Sequence[Event], received_at: dt.datetime) -> int:
        """Persist events durably before returning; returns how many were stored.
        Redeliveries (an ``event_id`` seen before) recognised at once are not stored; the
        others are dropped when claimed, so that every event takes effect once."""

    def unit(self) -> AbstractContextManager[CorrelationUnit]: ...

    def pending_count(self) -> int: ...

    def latest_events(self, limit: int) -> list[tuple[int, Event, bool]]:
        """The last events received, newest first: (number, event, correlated yet)."""

    def lag(self) -> tuple[int, dt.datetime | None]:
        """Events waiting, and when the oldest of them was received."""

    def prune(self, before: dt.datetime) -> int:
        """Delete processed events received before ``before``; returns how many. A
        redelivery of a pruned event would be processed again: keep the retention longer
        than any sender retries."""

    def counts(self) -> dict[str, int]:
        """Events stored (``events``) and waiting (``inbox_pending``)."""
