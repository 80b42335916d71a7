"""The embedded scheduler: without a broker, `serve` runs the periodic jobs itself.

One daemon thread per periodic job (``jobs.PERIODIC``: housekeeping, stale cleanup, the
desk's auto-close, discovery, polling) calls the same function a Celery beat entry would
enqueue, at the configured interval. Correlation is not scheduled here: the in-process
correlation worker (``correlation.worker``) drains the inbox continuously instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from servicegraph.bootstrap import Services

log = logging.getLogger(__name__)


class EmbeddedScheduler:
    def __init__(
        self,
        services: Services,
        schedule: Mapping[str, float],
        jobs: Mapping[str, Callable[[Services], Any]],
    ) -> None:
        unknown = sorted(set(schedule) - set(jobs))
        if unknown:
            raise ValueError(f"schedule names unknown jobs {unknown}; known: {sorted(jobs)}")
        self._services = services
        self._entries = {name: (interval, jobs[name]) for name, interval in schedule.items()}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._stop.clear()  # started again after a lost and regained leadership
        for name, (interval, job) in self._entries.items():
            if interval <= 0:
                continue
            thread = threading.Thread(
                target=self._loop, args=(name, interval, job), name=f"job-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _loop(self, name: str, interval: float, job: Callable[[Services], Any]) -> None:
        while not self._stop.wait(interval):
            try:
                job(self._services)
            except Exception:  # the next run may succeed; say what failed
                log.exception("scheduled job %s failed", name)
