"""One leader among the API worker processes of ``serve --workers N``.

Every worker answers requests, but only one may run the background work (the correlation
worker and the periodic jobs). They elect it with an exclusive ``flock`` on a file in the
data directory: the kernel releases the lock when its holder exits, however it exits, so
another worker takes over at its next try.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class Leadership:
    """Tries for the lock every ``interval`` seconds in a thread; runs ``on_elected`` once,
    in that thread, when it gets it."""

    def __init__(self, path: Path, on_elected: Callable[[], None], interval: float = 2.0):
        self.path = path
        self._on_elected = on_elected
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None

    @property
    def leading(self) -> bool:
        return self._fd is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop trying; a leader keeps its lock until ``release`` or the process exits."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._try_lock():
                log.info("this worker (pid %d) runs the background jobs", os.getpid())
                self._on_elected()
                return
            self._stop.wait(self._interval)

    def _try_lock(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True
