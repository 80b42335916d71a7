"""Neo4j adapter of the SNMP poll state (``collectors.snmp.state.PollStateStore``),
mirroring ``storage.sqlite.poll_state``.

The samples are ``(:PollSample)`` nodes in the graph's database, so a cycle that runs on
any worker of any host finds what the previous cycle left, and the one
``(:PollLease {id: 1})`` node says which cycle holds them: one cycle at a time across
every host, so two pollers never poll the same devices in one cycle. As in SQLite, a
cycle takes the lease in a short transaction, not a transaction held for the seconds
polling takes, and a cycle whose process died is overtaken when its lease expires. Unlike
SQLite, the lease's times are the Neo4j server's (``poll_cypher`` says why): the waiting
loop's deadline is this process's monotonic clock, the lease's expiry the server's.

Every transaction that writes holds the poll state's own write lock
(``poll_cypher.POLL_LOCK``), not the desk's, so a cycle never waits for ticket work. The
samples are the shared codec's JSON (``collectors.snmp.state``), as in SQLite.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from neo4j import ManagedTransaction, Transaction

from servicegraph.cmdb.errors import StoreError
from servicegraph.collectors.snmp.poller import PollSample
from servicegraph.collectors.snmp.state import Key, sample_from_json, sorted_samples
from servicegraph.storage.neo4j import poll_cypher
from servicegraph.storage.neo4j.records import batches, run
from servicegraph.storage.sqlite.file import from_us
from servicegraph.storage.sqlite.poll_state import lease_holder

if TYPE_CHECKING:  # the store imports the schema, which imports the catalogues
    from servicegraph.storage.neo4j.store import Neo4jGraphStore

T = TypeVar("T")
_RETRY_S = 0.2  # between tries for a lease another cycle holds, as SQLite's adapter


class Neo4jPollStateStore:
    """``collectors.snmp.state.PollStateStore`` over a ``Neo4jGraphStore``'s database.
    ``lease_s`` bounds a cycle (longer than any poll cycle takes) and how long a cycle
    waits for another one's lease."""

    def __init__(self, graph: Neo4jGraphStore, *, lease_s: float = 600.0) -> None:
        self._graph = graph
        self.lease = dt.timedelta(seconds=lease_s)

    def _locked(self, purpose: str, work: Callable[[Transaction], T]) -> T:
        return self._graph.run_locked(purpose, poll_cypher.POLL_LOCK, work)

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
        lease_us = self.lease // dt.timedelta(microseconds=1)

        def work(tx: Transaction) -> tuple[str, int]:
            record = run(tx, poll_cypher.TAKE_LEASE, holder=holder, lease=lease_us).single()
            if record is None:
                raise StoreError("taking the SNMP poll lease returned nothing")
            return str(record["holder"]), int(record["expires_at"])

        deadline = time.monotonic() + self.lease.total_seconds()
        while True:
            owner, expires_at = self._locked("taking the SNMP poll lease", work)
            if owner == holder:
                return
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"another poll cycle ({owner}) holds the SNMP poll state until "
                    f"{from_us(expires_at).isoformat()}; this cycle gives up"
                )
            time.sleep(_RETRY_S)

    def _load(self) -> dict[Key, PollSample]:
        def work(tx: ManagedTransaction) -> dict[Key, PollSample]:
            return {
                (r["host"], int(r["port"])): sample_from_json(r["sample"])
                for r in run(tx, poll_cypher.SAMPLES)
            }

        return self._graph.read("reading the SNMP poll state", work)

    def _keep(self, holder: str, samples: dict[Key, PollSample]) -> None:
        rows = [
            {"host": host, "port": port, "sample": sample}
            for host, port, sample in sorted_samples(samples)
        ]
        size = self._graph.batch_size

        def work(tx: Transaction) -> None:
            owner = run(tx, poll_cypher.LEASE_HOLDER).single()
            if owner is None or owner["holder"] != holder:  # overtaken: a newer cycle wins
                return
            while True:
                record = run(tx, poll_cypher.DELETE_SAMPLES, limit=size).single()
                if record is None or int(record["count"]) < size:
                    break
            for batch in batches(rows, size):
                run(tx, poll_cypher.KEEP_SAMPLES, rows=list(batch)).consume()

        self._locked("keeping the SNMP poll state", work)

    def _release(self, holder: str) -> None:
        self._locked(
            "releasing the SNMP poll lease",
            lambda tx: run(tx, poll_cypher.RELEASE_LEASE, holder=holder).consume(),
        )
