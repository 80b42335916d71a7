"""The sender job: empties the outbox through the channels, one message at a time.

A run claims a batch of due messages (leased to this sender, ``OutboxStore.claim``),
sends each and marks it sent or failed *right after* sending it, in its own short
transaction. So a sender killed at any instant (``kill -9`` included) has lost nothing:
messages it had marked are done, the rest are still in the outbox and go out once their
lease expires, to whichever sender claims them. The one it was sending when it died may
have arrived: it is sent again, with the same idempotency key (the mail's Message-ID,
the webhook's ``Idempotency-Key``), by which the receiver recognises it. That is the
only repetition possible: "at most once per key" on the receiving side.

Failures never reach ticket work: the ticket's unit only wrote the outbox, and the
sender holds no transaction while a message is on the wire. A failed delivery is tried
again after the retry policy's backoff, and after ``max_attempts`` it is a dead letter
(``servicegraph notifications dead`` lists them, ``retry`` sends them again).

A batch is not sent past its lease: when less than twice the channel timeout is left,
the rest of the batch is given back (``release``) for the next claim, so a slow server
never lets a lease run out under a message that is still being sent.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from servicegraph.cmdb.model import utcnow
from servicegraph.delivery.channel import DeliveryFailed, Transport
from servicegraph.ticketing.outbox import OutboxChannel, OutboxEntry, OutboxStore, RetryPolicy

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0


@dataclass
class SendReport:
    claimed: int = 0
    sent: int = 0
    failed: int = 0  # failed and to be tried again
    dead: int = 0  # failed for the last time
    released: int = 0  # claimed, not tried (lease nearly over, or stopping)
    pruned: int = 0

    def add(self, other: SendReport) -> None:
        for name in ("claimed", "sent", "failed", "dead", "released", "pruned"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


class OutboxSender:
    def __init__(
        self,
        store: OutboxStore,
        transports: Mapping[OutboxChannel, Transport],
        *,
        retry: RetryPolicy,
        batch_size: int = 50,
        lease: dt.timedelta = dt.timedelta(minutes=5),
        sent_retention: dt.timedelta | None = dt.timedelta(days=7),
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.store = store
        self.transports = dict(transports)
        self.retry = retry
        self.batch_size = batch_size
        self.lease = lease
        self.sent_retention = sent_retention
        self.clock = clock
        timeout = max((t.timeout_s for t in self.transports.values()), default=10.0)
        # stop taking messages of a batch when less than this is left of its lease
        self.margin_s = min(lease.total_seconds() / 2, 2 * timeout)
        self._pruned_at = -PRUNE_EVERY_S
        self._lock = threading.Lock()  # one run at a time per sender (scheduler + CLI)

    def run_once(self, stop: threading.Event | None = None) -> SendReport:
        """Claim one batch and deliver it (see the module docstring)."""
        with self._lock:
            report = SendReport()
            self._prune(report)
            started = time.monotonic()
            batch = self.store.claim(
                self.clock(),
                limit=self.batch_size,
                lease=self.lease,
                max_attempts=self.retry.max_attempts,
            )
            report.claimed = len(batch)
            deadline = started + self.lease.total_seconds() - self.margin_s
            for index, entry in enumerate(batch):
                if (stop is not None and stop.is_set()) or time.monotonic() >= deadline:
                    rest = [e.id for e in batch[index:]]
                    self.store.release(rest)
                    report.released += len(rest)
                    break
                self._deliver(entry, report)
            return report

    def drain(
        self, stop: threading.Event | None = None, *, budget_s: float | None = None
    ) -> SendReport:
        """Batches until none is due, ``stop`` is set or ``budget_s`` seconds are spent
        (then the next run goes on), and the connections are closed."""
        total = SendReport()
        deadline = None if budget_s is None else time.monotonic() + budget_s
        try:
            while True:
                report = self.run_once(stop)
                total.add(report)
                if report.claimed < self.batch_size or (stop is not None and stop.is_set()):
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
        finally:
            self.close()
        return total

    def loop(self, stop: threading.Event, interval: float) -> SendReport:
        """Drain, wait ``interval`` seconds, and again, until ``stop`` is set."""
        total = SendReport()
        while not stop.is_set():
            try:
                total.add(self.drain(stop))
            except Exception:  # the store busy or gone: say so, try again next time
                log.exception("sending notifications failed")
            stop.wait(interval)
        return total

    def close(self) -> None:
        for transport in self.transports.values():
            transport.close()

    def _deliver(self, entry: OutboxEntry, report: SendReport) -> None:
        message = entry.message
        transport = self.transports.get(message.channel)
        try:
            if transport is None:
                raise DeliveryFailed(
                    f"no {message.channel.value} channel is configured", permanent=True
                )
            transport.send(message)
        except DeliveryFailed as exc:
            error = str(exc)
        except Exception as exc:  # a bug in a channel: this message fails, not the batch
            log.exception("sending outbox message %s failed", entry.id)
            error = f"unexpected {type(exc).__name__}: {exc}"
        else:
            self.store.mark_sent(entry.id, self.clock())
            report.sent += 1
            return
        due = self.store.mark_failed(entry.id, self.clock(), error, retry=self.retry)
        if due is None:
            report.dead += 1
            log.warning(
                "notification %s to %s is a dead letter after %d attempts: %s",
                message.key, message.target, entry.attempts, error,
            )  # fmt: skip
        else:
            report.failed += 1
            log.info(
                "notification %s to %s failed (attempt %d), next at %s: %s",
                message.key, message.target, entry.attempts, due.isoformat(), error,
            )  # fmt: skip

    def _prune(self, report: SendReport) -> None:
        if self.sent_retention is None:
            return
        now = time.monotonic()
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            report.pruned = self.store.prune_sent(self.clock() - self.sent_retention)
