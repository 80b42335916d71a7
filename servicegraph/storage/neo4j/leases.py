"""Leases that one process among many, on several hosts, holds at a time (the leader of
the background jobs), in the graph's Neo4j database: the port (``Leases``) and its Neo4j
adapter (``Neo4jLeases``).

Today ``runtime/leader.py`` elects the leader with a ``flock`` on a file in DATA_DIR,
which elects one process per host: with the desk in Neo4j, API processes on two hosts
would both run the correlation worker and the periodic jobs. A lease in the shared
database elects one across hosts. The kernel frees a ``flock`` when its holder dies; a
lease in a database cannot know, so it lapses by time instead: the holder renews it well
within its ``ttl`` (every ttl/3, say), and a holder that was killed (``kill -9``), hung or
cut off loses it at most ``ttl`` after its last renewal, and another process takes over.
A holder whose ``renew`` returns False has lost the lease and must stop the work it
guards at once: someone else may be doing it already.

The port is the smallest both elections satisfy: ``try_acquire`` / ``renew`` /
``release``, by lease name and holder. A ``flock`` adapter ignores the ttl (its lease
lapses when the process exits, however it exits) and renews by still holding its
descriptor; the Neo4j one counts time on the server's clock (``lease_cypher`` says why),
in one short transaction per call holding its own write lock (``lease_cypher.LEASE_LOCK``),
never the desk's, so a renewal never waits behind ticket work.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from neo4j import Transaction

from servicegraph.storage.neo4j import lease_cypher
from servicegraph.storage.neo4j.records import run

if TYPE_CHECKING:  # the store imports the schema, which imports the catalogues
    from servicegraph.storage.neo4j.store import Neo4jGraphStore

T = TypeVar("T")


class Leases(Protocol):
    """Named leases, each held by at most one holder at a time among every process that
    shares the backend. ``holder`` names the process (``host:pid:random``, unique per
    try: a restarted process is another holder). Adapters raise ``StoreUnavailable`` or
    ``StoreError`` chained to the backend's error; a caller that cannot reach the backend
    must assume it lost the lease."""

    def try_acquire(self, name: str, holder: str, ttl: dt.timedelta) -> bool:
        """Take lease ``name`` for ``holder`` for ``ttl`` when nobody holds it or its
        holder's time ran out; True when ``holder`` holds it now (also when it did
        already: then it is renewed). Never waits for the lease."""

    def renew(self, name: str, holder: str, ttl: dt.timedelta) -> bool:
        """Extend ``holder``'s lease to ``ttl`` from now; False when ``holder`` no longer
        holds it (released, expired, taken over): the caller stops what it guards."""

    def release(self, name: str, holder: str) -> None:
        """Give the lease up at once, if ``holder`` holds it (otherwise nothing)."""


def _ttl_us(ttl: dt.timedelta) -> int:
    if ttl <= dt.timedelta(0):
        raise ValueError(f"a lease's ttl must be positive, not {ttl}")
    return ttl // dt.timedelta(microseconds=1)


def _check(name: str, holder: str) -> None:
    if not name:
        raise ValueError("a lease needs a name")
    if not holder:
        raise ValueError("a lease's holder needs a name")


class Neo4jLeases:
    """``Leases`` over a ``Neo4jGraphStore``'s database: ``(:Lease)`` nodes."""

    def __init__(self, graph: Neo4jGraphStore) -> None:
        self._graph = graph

    def _locked(self, purpose: str, work: Callable[[Transaction], T]) -> T:
        return self._graph.run_locked(purpose, lease_cypher.LEASE_LOCK, work)

    def try_acquire(self, name: str, holder: str, ttl: dt.timedelta) -> bool:
        _check(name, holder)
        ttl_us = _ttl_us(ttl)

        def work(tx: Transaction) -> bool:
            record = run(tx, lease_cypher.ACQUIRE, name=name, holder=holder, ttl=ttl_us).single()
            return record is not None and bool(record["held"])

        return self._locked(f"taking the lease '{name}'", work)

    def renew(self, name: str, holder: str, ttl: dt.timedelta) -> bool:
        _check(name, holder)
        ttl_us = _ttl_us(ttl)

        def work(tx: Transaction) -> bool:
            record = run(tx, lease_cypher.RENEW, name=name, holder=holder, ttl=ttl_us).single()
            return record is not None

        return self._locked(f"renewing the lease '{name}'", work)

    def release(self, name: str, holder: str) -> None:
        _check(name, holder)
        self._locked(
            f"releasing the lease '{name}'",
            lambda tx: run(tx, lease_cypher.RELEASE, name=name, holder=holder).consume(),
        )
