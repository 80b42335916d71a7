"""The embedded correlation worker: drains the inbox in a loop.

Used when no broker is configured (``serve`` on the embedded store), in a thread of the API
process or, with ``embedded_worker_process``, in a child process of its own
(``servicegraph.runtime.worker_process``). Ingestion calls ``notify`` after persisting events,
so latency is one batch, not one poll interval; the poll interval still matters for events
written by other processes, and for resolving incidents whose hold time expires while no
events arrive.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from servicegraph.correlation.correlator import Correlator
from servicegraph.correlation.policy import BatchResult

log = logging.getLogger(__name__)


class Signal(Protocol):
    """``threading.Event``, or the pipe-backed signals of ``worker_process`` when the
    loop runs in a child process."""

    def set(self) -> None: ...
    def clear(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class CorrelationWorker:
    def __init__(
        self,
        correlator: Correlator,
        *,
        poll_interval: float = 0.05,
        wake: Signal | None = None,
        stop: Signal | None = None,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self.correlator = correlator
        self.on_batch = on_batch  # metrics, for instance: called after every batch
        self.poll_interval = poll_interval
        self.totals = BatchResult()
        self._wake: Signal = wake if wake is not None else threading.Event()
        self._stop: Signal = stop if stop is not None else threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the loop in a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="correlation", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def notify(self) -> None:
        self._wake.set()

    def alive(self) -> tuple[bool, str]:
        """Whether the loop runs, and what to tell an operator when it does not."""
        if self._thread is None:
            return False, "not started"
        if not self._thread.is_alive():
            return False, "the correlation thread has ended"
        return True, "running in a thread"

    def run(self) -> None:
        """Correlate until stopped: batch after batch while events wait, then sleep until
        notified or the poll interval passes."""
        backoff = self.poll_interval
        while not self._stop.is_set():
            self._wake.clear()  # before the batch: a notice that comes during it is kept
            try:
                result = self.correlator.process_pending()
                self.totals.merge(result)
                if self.on_batch is not None:
                    self.on_batch(result)
                backoff = self.poll_interval
            except Exception:  # keep the worker alive; the batch was rolled back
                log.exception("correlation batch failed; retrying in %.1f s", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if result.events == 0:
                self._wake.wait(self.poll_interval)
