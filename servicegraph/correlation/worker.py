"""The in-process correlation worker: drains the inbox in a background thread.

Used when no broker is configured (``serve`` on the embedded store). Ingestion calls
``notify`` after persisting events, so latency is one batch, not one poll interval; the
poll interval still matters for events written by other processes, and for resolving
incidents whose hold time expires while no events arrive.
"""

from __future__ import annotations

import logging
import threading

from servicegraph.correlation.correlator import BatchResult, Correlator

log = logging.getLogger(__name__)


class CorrelationWorker:
    def __init__(self, correlator: Correlator, *, poll_interval: float = 0.05) -> None:
        self.correlator = correlator
        self.poll_interval = poll_interval
        self.totals = BatchResult()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="correlation", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def notify(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        backoff = self.poll_interval
        while not self._stop.is_set():
            try:
                result = self.correlator.process_pending()
                self.totals.merge(result)
                backoff = self.poll_interval
            except Exception:  # keep the worker alive; the batch was rolled back
                log.exception("correlation batch failed; retrying in %.1f s", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if result.events == 0:
                self._wake.wait(self.poll_interval)
                self._wake.clear()
