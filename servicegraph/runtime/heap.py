"""The cyclic garbage collector's policy: its full passes kept off the serving and
correlation path, and paused through a large import.

A full pass walks every container object the process holds. Once the topology projection
is loaded, and again as correlation state grows through a storm (alerts, incidents, their
root-cause trackers: over a million references after 40,000 alerts), one pass takes a
tenth to half a second, and CPython starts one each time the long-lived heap has grown by a
quarter: a fifth of a storm's correlation time went to them, and every pass stalled the
events of the moment.

Objects the collector is told to ignore (``gc.freeze``) are still freed by reference
counting when dropped; what freezing gives up is only the reclaiming of reference *cycles*
among them. The correlator makes none (``tests/correlation/test_heap.py`` holds it to that),
so a process whose work is correlation batches can freeze what every batch leaves behind and
run a full pass only now and then, as a safety net for cycles made elsewhere.

An import is the other extreme: one unit of work that allocates millions of objects and
keeps them to its end (``collector_paused``).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

# How often a correlation process walks its whole heap after all: one pause (about 0.75 s
# with a 100,000-CI projection) every ten minutes, to reclaim cycles nobody expected.
FULL_PASS_INTERVAL_S = 600.0


def settle_heap() -> None:
    """Collect garbage, then exclude everything the process holds now (modules, the app,
    the topology projection) from the collector's passes. Called once a long-running
    process has loaded what it keeps."""
    gc.collect()
    gc.freeze()


class BatchHeap:
    """The collector's policy in a process that correlates batch after batch (the embedded
    worker process, a Celery worker): after each batch what survived is frozen, so that
    automatic passes only ever walk the objects of the batch at hand; every
    ``full_interval_s`` everything is unfrozen and walked once.

    Not for the API process correlating in a thread: requests in flight when a batch ends
    would be frozen, and the cycles asyncio and Starlette leave behind would wait for the
    next full pass instead of the next automatic one.
    """

    def __init__(
        self,
        full_interval_s: float = FULL_PASS_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.full_interval_s = full_interval_s
        self._clock = clock
        self._last_full: float | None = None  # never: the first batch settles the heap

    def settle(self) -> None:
        """A full pass over everything, frozen or not, then freeze: at start, once the
        projection is loaded, and every ``full_interval_s``."""
        started = time.perf_counter()
        first = self._last_full is None
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self._last_full = self._clock()
        took_ms = (time.perf_counter() - started) * 1000
        if found and not first:
            # cycles frozen since the last pass: memory held up to full_interval_s
            log.info("full garbage collection: %d unreachable objects, %.0f ms", found, took_ms)
        else:
            log.debug("full garbage collection: %d unreachable objects, %.0f ms", found, took_ms)

    def after_batch(self) -> None:
        if self._last_full is None or self._clock() - self._last_full >= self.full_interval_s:
            self.settle()
        else:
            gc.freeze()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one large unit of work: a bulk import.

    Reconciling a 100,000-CI batch allocates millions of small container objects (prepared
    records, CIs, relationships, history entries, rows) that all live until the batch is
    written. Each time the long-lived heap has grown by a quarter CPython walks all of it
    in a full pass, so the passes grow with the batch: ``benchmarks.bench_load`` (100,000
    CIs, 300,000 relationships) spends about a quarter of its CPU time in them without the
    pause (5 to 6 s of a 22 s load, 4 s of a 17 s replay), none with it. Those objects
    form no cycles: reference counting frees them as usual, and the few cycles made
    meanwhile are collected once the block ends and the collector runs again.

    Process-wide, so it belongs to entry points that do one large thing (the ``import``
    command, an import job), never to a domain service, nor around work in a process that
    serves requests or correlates (their collections would wait as long). Nests: the
    collector is re-enabled only if it was enabled on entry.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
