"""The embedded correlation worker in a child process of ``serve``.

A thread shares the API's interpreter lock: during an alert storm correlation and the
webhooks and GraphQL queries take turns on one core. With ``embedded_worker_process`` the
worker loop runs in a child process of its own (spawned, so it starts from a clean
interpreter and loads the topology projection itself), still without a broker. The API
wakes it after each ingestion by writing a byte into a pipe, and stops it by closing the
pipe; a supervisor thread restarts it if it dies. A pipe rather than a
``multiprocessing.Event``: an event's lock, taken by a process that is then killed, would
stay taken and hang whoever wakes the worker next. Exactly-once holds as with any worker:
its batches commit together with the inbox position.

The child reports each batch's counts back through a second pipe, so that the API's
``/metrics`` counts what it correlates without a shared metrics directory.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import select
import signal
import struct
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess

from servicegraph.config import Settings
from servicegraph.correlation.policy import BatchResult
from servicegraph.runtime.worker import CorrelationWorker

log = logging.getLogger(__name__)

_MAX_RESTART_DELAY = 30.0
_QUIET = 5.0  # seconds without a report after which ``on_batch`` hears of an empty batch
_HEALTHY_RUN = 60.0  # a process that ran this long before dying restarts at once


class _Pipe:
    """The child's end of its pipe from the API: a byte means "events arrived", end of file
    means "stop". Offers the two signals ``CorrelationWorker`` waits on."""

    def __init__(self, connection: Connection) -> None:
        self._fd = connection.fileno()
        self._connection = connection  # keeps the descriptor open
        self.closed = False

    def read(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` for a wake-up or the end; True if either came."""
        if self.closed:
            return True
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return False
        if not os.read(self._fd, 4096):
            self.closed = True
        return True


class _Wake:
    def __init__(self, pipe: _Pipe) -> None:
        self._pipe = pipe

    def set(self) -> None:  # only the API wakes the worker
        pass

    def clear(self) -> None:
        self._pipe.read(0)  # what is already there

    def is_set(self) -> bool:
        return self._pipe.read(0)

    def wait(self, timeout: float | None = None) -> bool:
        return self._pipe.read(timeout)


class _Stop:
    def __init__(self, pipe: _Pipe) -> None:
        self._pipe = pipe

    def set(self) -> None:  # only the API stops the worker
        pass

    def clear(self) -> None:
        pass

    def is_set(self) -> bool:
        self._pipe.read(0)
        return self._pipe.closed

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._pipe.closed:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            self._pipe.read(left)
        return self._pipe.closed


_REPORT = struct.Struct("<III")  # events claimed, redeliveries dropped, dates clamped


def _reporter(connection: Connection) -> Callable[[BatchResult], None]:
    """The child's side of the report pipe: one record per batch that claimed events."""
    fd = connection.fileno()
    os.set_blocking(fd, False)

    def report(result: BatchResult) -> None:
        if result.events:
            # a full pipe (the API is not reading): the count is lost, not the batch;
            # a broken one: the API is gone and the worker stops on its own
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(fd, _REPORT.pack(result.events, result.redeliveries, result.clamped))

    return report


def _child(settings: Settings, connection: Connection, reports: Connection) -> None:
    from servicegraph.bootstrap import bootstrap
    from servicegraph.runtime.heap import BatchHeap

    # Ctrl-C reaches the whole process group: the API stops the child by closing the pipe
    # once it has stopped taking requests.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: correlation: %(message)s")
    pipe = _Pipe(connection)
    services = bootstrap(settings)
    try:
        services.impact.refresh()
        heap = BatchHeap()
        heap.settle()
        report = _reporter(reports)

        def after_batch(result: BatchResult) -> None:
            report(result)
            if result.events:
                heap.after_batch()

        worker = CorrelationWorker(
            services.correlator,
            poll_interval=settings.correlation.poll_interval_s,
            wake=_Wake(pipe),
            stop=_Stop(pipe),
            on_batch=after_batch,
        )
        worker.run()
    finally:
        services.close()


class CorrelationProcess:
    """Starts, wakes, restarts and stops the worker process."""

    def __init__(
        self,
        settings: Settings,
        *,
        restart_delay: float = 1.0,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self._settings = settings
        # what the child reports, in a thread of this process; also called with an empty
        # result when it reported nothing for ``_QUIET`` seconds (gauges stay current)
        self._on_batch = on_batch
        self._restart_delay = restart_delay
        self._context = multiprocessing.get_context("spawn")
        self._halt = threading.Event()
        self._lock = threading.Lock()  # the current process and its pipe
        self._process: SpawnProcess | None = None
        self._writer: Connection | None = None
        self._spawned_at = 0.0
        self._supervisor: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        if self._supervisor is not None:
            return
        self._halt.clear()
        self._spawn()
        self._supervisor = threading.Thread(
            target=self._supervise, name="correlation-supervisor", daemon=True
        )
        self._supervisor.start()

    def alive(self) -> tuple[bool, str]:
        """Whether the child runs, and what to tell an operator when it does not."""
        process = self._process
        if process is None:
            return False, "not started"
        if not process.is_alive():
            return False, f"the correlation process exited (code {process.exitcode}); restarting"
        return True, f"running in process {process.pid}"

    def notify(self) -> None:
        with self._lock:
            writer = self._writer
            if writer is None:
                return
            # a full pipe: already woken; a broken one: dead, and about to be restarted
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(writer.fileno(), b"\0")

    def stop(self, timeout: float = 10.0) -> None:
        self._halt.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout)
            self._supervisor = None
        with self._lock:
            process, self._process = self._process, None
            self._close_writer()
        if process is not None:
            process.join(timeout)
            if process.is_alive():  # a batch that does not finish: it rolls back
                log.warning("correlation process did not stop in %.0f s; killing it", timeout)
                process.kill()
                process.join()

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()  # end of file: the worker stops after its batch
            self._writer = None

    def _spawn(self) -> None:
        reader, writer = self._context.Pipe(duplex=False)
        os.set_blocking(writer.fileno(), False)
        report_reader, report_writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_child,
            args=(self._settings, reader, report_writer),
            name="servicegraph-correlation",
            daemon=True,
        )
        process.start()
        reader.close()  # the child has its own copy; without ours, its death breaks the pipe
        report_writer.close()  # likewise: the child's death ends the reports
        threading.Thread(
            target=self._relay, args=(report_reader,), name="correlation-reports", daemon=True
        ).start()
        with self._lock:
            self._close_writer()
            self._process, self._writer = process, writer
            self._spawned_at = time.monotonic()

    def _relay(self, reports: Connection) -> None:
        """Hand the child's batch reports to ``on_batch`` until the child is gone."""
        fd = reports.fileno()
        try:
            while True:
                ready, _, _ = select.select([fd], [], [], _QUIET)
                if not ready:
                    self._report(BatchResult())
                    continue
                # writes of one record are atomic: reads return whole records
                data = os.read(fd, _REPORT.size * 256)
                if not data:
                    return
                for events, redeliveries, clamped in _REPORT.iter_unpack(data):
                    self._report(
                        BatchResult(events=events, redeliveries=redeliveries, clamped=clamped)
                    )
        finally:
            reports.close()

    def _report(self, result: BatchResult) -> None:
        if self._on_batch is None:
            return
        try:
            self._on_batch(result)
        except Exception:  # metrics must not end the relay
            log.exception("reporting a correlation batch failed")

    def _supervise(self) -> None:
        delay = self._restart_delay
        while not self._halt.wait(0.5):
            process = self._process
            if process is None or process.is_alive():
                continue
            if time.monotonic() - self._spawned_at > _HEALTHY_RUN:
                delay = self._restart_delay
            log.warning(
                "correlation process exited (code %s); restarting in %.0f s",
                process.exitcode,
                delay,
            )
            if self._halt.wait(delay):
                return
            self._spawn()
            delay = min(delay * 2, _MAX_RESTART_DELAY)
