"""One leader among the API processes that could run the background work (the correlation
worker and the periodic jobs): every process answers requests, only the leader runs it.

Two elections:

- ``FileElection``: an exclusive ``flock`` on a file in the data directory, for the worker
  processes of one ``serve --workers N`` on one host. The kernel releases the lock when its
  holder exits, however it exits, so another worker takes over at its next try.
- ``LeaseElection``: a lease in the shared store (``storage/neo4j/leases.py``), for API
  processes on several hosts sharing one Neo4j. A database cannot see its holder die, so
  the lease lapses ``ttl`` after its last renewal; the leader renews it every
  ``interval`` seconds, and one whose renewal fails stops the jobs at once (another
  process may hold the lease by then) and campaigns again.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from servicegraph.cmdb.errors import CmdbError

log = logging.getLogger(__name__)


class Election(Protocol):
    def try_acquire(self) -> bool:
        """Become the leader if nobody is; True when this process leads now."""

    def renew(self) -> bool:
        """Still the leader? (Renews a lease.) False: stop leading at once."""

    def release(self) -> None:
        """Stop leading, so that another process takes over without waiting."""


class FileElection:
    """An exclusive ``flock`` on ``path``: one leader per host."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
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

    def renew(self) -> bool:
        return self._fd is not None  # held until released or the process exits

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


class Leases(Protocol):
    """Named leases held by one holder at a time among every process sharing the store
    (``storage/neo4j/leases.py`` documents the contract)."""

    def try_acquire(self, name: str, holder: str, ttl: dt.timedelta) -> bool: ...

    def renew(self, name: str, holder: str, ttl: dt.timedelta) -> bool: ...

    def release(self, name: str, holder: str) -> None: ...


class LeaseElection:
    """The lease ``name`` in a store every host shares. A store that cannot be reached
    counts as a lost lease (the holder cannot tell whether it still holds it)."""

    def __init__(self, leases: Leases, name: str, ttl: dt.timedelta) -> None:
        self._leases = leases
        self.name = name
        self.ttl = ttl
        # unique per process start: a restarted process is another holder
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def try_acquire(self) -> bool:
        try:
            return self._leases.try_acquire(self.name, self.holder, self.ttl)
        except CmdbError as exc:
            log.warning("cannot campaign for the lease '%s': %s", self.name, exc)
            return False

    def renew(self) -> bool:
        try:
            return self._leases.renew(self.name, self.holder, self.ttl)
        except CmdbError as exc:
            log.error("cannot renew the lease '%s': %s", self.name, exc)
            return False

    def release(self) -> None:
        try:
            self._leases.release(self.name, self.holder)
        except CmdbError as exc:  # it lapses by itself after its ttl
            log.warning("cannot release the lease '%s': %s", self.name, exc)


class Leadership:
    """Campaigns every ``interval`` seconds in a thread; runs ``on_elected`` in that thread
    when elected, then checks (renews) the election every ``interval`` and runs
    ``on_lost`` as soon as it is lost, and campaigns again."""

    def __init__(
        self,
        election: Election,
        on_elected: Callable[[], None],
        on_lost: Callable[[], None] | None = None,
        interval: float = 2.0,
    ) -> None:
        self.election = election
        self._on_elected = on_elected
        self._on_lost = on_lost
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._leading = False

    @property
    def leading(self) -> bool:
        return self._leading

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop campaigning; a leader keeps leading until ``release`` or the process exits."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def release(self) -> None:
        if self._leading:
            self.election.release()
            self._leading = False

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._leading:
                if self.election.try_acquire():
                    self._leading = True
                    log.info("this process (pid %d) runs the background jobs", os.getpid())
                    self._on_elected()
            elif not self.election.renew():
                self._leading = False
                log.error("lost the leadership: this process stops the background jobs")
                if self._on_lost is not None:
                    self._on_lost()
            self._stop.wait(self._interval)
