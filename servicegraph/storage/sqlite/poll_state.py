"""SQLite adapter of the SNMP poll state (collectors.snmp.state.PollStateStore).

The samples live in the file that holds incidents (``snmp_poll_sample``), so that every
process that opens it sees them, where a JSON file in a host-local data directory was
seen by that host only. One cycle at a time: a cycle takes a lease (``snmp_poll_lease``,
one row: holder and expiry) in a short transaction, not a transaction held for the
seconds that polling takes, which would stop every other writer of the file; a cycle
whose process died is overtaken when its lease expires.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from servicegraph.cmdb.errors import StoreError
from servicegraph.collectors.snmp.poller import PollSample
from servicegraph.collectors.snmp.state import Key, sample_from_json, sorted_samples
from servicegraph.storage.sqlite.file import SqliteFile, from_us, to_us


def lease_holder() -> str:
    """Who holds a poll lease: this host and process, and a nonce (both adapters)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SqlitePollState:
    def __init__(
        self,
        file: SqliteFile,
        *,
        lease_s: float = 600.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._file = file
        self.lease = dt.timedelta(seconds=lease_s)  # longer than any poll cycle takes
        self._clock = clock

    @contextmanager
    def cycle(self) -> Iterator[dict[Key, PollSample]]:
        holder = lease_holder()
        self._take(holder)
        try:
            samples = self._load()
            yield samples
            self._keep(holder, samples)
        finally:
            self._release(holder)

    def _take(self, holder: str) -> None:
        deadline = time.monotonic() + self.lease.total_seconds()
        while True:
            now = self._clock()
            with self._file._transaction() as conn:
                row = conn.execute(
                    "SELECT holder, expires_at FROM snmp_poll_lease WHERE id = 1"
                ).fetchone()
                if row is None or from_us(row[1]) <= now:
                    conn.execute(
                        "INSERT OR REPLACE INTO snmp_poll_lease (id, holder, expires_at) "
                        "VALUES (1, ?, ?)",
                        (holder, to_us(now + self.lease)),
                    )
                    return
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"another poll cycle ({row[0]}) holds the SNMP poll state until "
                    f"{from_us(row[1]).isoformat()}; this cycle gives up"
                )
            time.sleep(0.2)

    def _load(self) -> dict[Key, PollSample]:
        with self._file.errors("reading the SNMP poll state"):
            rows = self._file._read().execute(
                "SELECT host, port, sample FROM snmp_poll_sample ORDER BY host, port"
            )
            return {(host, int(port)): sample_from_json(sample) for host, port, sample in rows}

    def _keep(self, holder: str, samples: dict[Key, PollSample]) -> None:
        with self._file._transaction() as conn:
            owner = conn.execute("SELECT holder FROM snmp_poll_lease WHERE id = 1").fetchone()
            if owner is None or owner[0] != holder:  # overtaken: a newer cycle's state wins
                return
            conn.execute("DELETE FROM snmp_poll_sample")
            conn.executemany(
                "INSERT INTO snmp_poll_sample (host, port, sample) VALUES (?, ?, ?)",
                sorted_samples(samples),
            )

    def _release(self, holder: str) -> None:
        with self._file._transaction() as conn:
            conn.execute("DELETE FROM snmp_poll_lease WHERE id = 1 AND holder = ?", (holder,))
