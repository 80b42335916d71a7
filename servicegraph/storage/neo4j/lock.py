"""The write lock that makes units of work run one at a time.

Neo4j runs transactions at *read committed*: two units that both look up serial number
``FOC1`` before either commits would both find nothing and both create a CI, and no
constraint can stop the second one when the two CIs get different ids. SQLite avoids this
with ``BEGIN IMMEDIATE``; here every unit of work (``Neo4jGraphStore.write``) starts by
setting a property on the one ``(:WriteLock {name: 'graph'})`` node. That takes Neo4j's
exclusive lock on the node, held until commit or rollback, so units run one at a time
across every process and host, and whatever a unit reads stays true until it commits.
Readers take no locks and are never blocked. Waiting writers queue inside Neo4j; set the
server's ``db.lock.acquisition.timeout`` to bound the wait (docker-compose.yml sets 120 s).

Taking the lock is the start of a unit, before any of the caller's work, so it is safe to
retry on transient errors and lost connections; nothing after it is (see the store).
"""

from __future__ import annotations

import os
import socket
import threading
import time

import neo4j
from neo4j import Transaction
from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError

from servicegraph.cmdb.errors import StoreUnavailable
from servicegraph.storage.neo4j import cypher
from servicegraph.storage.neo4j.records import LOCK_RETRY_DELAYS, rollback_quietly, run


def begin_locked(
    session: neo4j.Session,
    purpose: str,
    *,
    max_retry_time: float,
    database: str,
    shown_uri: str,
    lock: str = cypher.WRITE_LOCK_NAME,
) -> Transaction:
    """Begin a transaction holding the write lock named ``lock`` (the graph's, or the
    desk's: ``desk_schema.DESK_LOCK``), retrying what fails before any work for up to
    ``max_retry_time`` seconds. ``StoreUnavailable`` when the database has no such lock
    node: it was never migrated."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    deadline = time.monotonic() + max_retry_time
    for attempt in range(len(LOCK_RETRY_DELAYS) + 1):
        tx: Transaction | None = None
        try:
            tx = session.begin_transaction(metadata={"app": "servicegraph", "unit": purpose})
            record = run(tx, cypher.TAKE_WRITE_LOCK, name=lock, holder=holder).single()
        except (TransientError, SessionExpired, ServiceUnavailable):
            if tx is not None:
                rollback_quietly(tx)
            if attempt == len(LOCK_RETRY_DELAYS) or time.monotonic() >= deadline:
                raise
            time.sleep(LOCK_RETRY_DELAYS[attempt])
            continue
        except BaseException:
            if tx is not None:
                rollback_quietly(tx)
            raise
        if record is None:
            rollback_quietly(tx)
            raise StoreUnavailable(
                f"Neo4j database '{database}' at {shown_uri} has no servicegraph "
                "schema; run migrations (servicegraph migrate)"
            )
        return tx
    raise AssertionError("unreachable")
