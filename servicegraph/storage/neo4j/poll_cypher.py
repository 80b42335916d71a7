"""The Cypher of the SNMP poll state and its lease (a catalogue: see ``catalogue.py``).

One ``(:PollSample)`` node per row of SQLite's ``snmp_poll_sample`` (``host``, ``port``, the
sample as the shared codec's JSON text), unique on (host, port) as the table's primary
key; the one ``(:PollLease {id: 1})`` node is the table ``snmp_poll_lease``'s one row: the
cycle that holds the state and until when (integer microseconds since the epoch).

The lease's times come from the Neo4j server's clock (``timestamp()``), not the caller's:
the pollers run on several hosts whose clocks may disagree, and a host whose clock runs
ahead would see a live cycle's lease as expired and start a second cycle beside it. With
one clock, every host agrees on when a lease ends, whatever their own clocks say.
"""

from __future__ import annotations

from typing import Any

from servicegraph.storage.neo4j.catalogue import Catalogue, Statement

SAMPLE = "PollSample"
LEASE = "PollLease"

# The write lock of the poll state's short transactions: not the desk's, so that taking
# or releasing the lease never queues behind a correlation batch or a long desk unit (a
# cycle that cannot start for a minute is a missed cycle), and keeping thousands of
# samples never holds up ticket work.
POLL_LOCK = "poll_state"

LABELS: tuple[str, ...] = (SAMPLE, LEASE)
RELATIONSHIP_TYPES: tuple[str, ...] = ()
PROPERTY_KEYS: tuple[str, ...] = ("host", "port", "sample", "id", "holder", "expires_at")
FUNCTIONS: tuple[str, ...] = ("count", "timestamp")
PARAMETERS: dict[str, Any] = {
    "holder": "",
    "lease": 600_000_000,
    "limit": 1000,
    "rows": [{}],
}

CATALOGUE = Catalogue(
    "poll_state",
    labels=LABELS,
    relationship_types=RELATIONSHIP_TYPES,
    property_keys=PROPERTY_KEYS,
    parameters=PARAMETERS,
    functions=FUNCTIONS,
)
_statement = CATALOGUE.statement

# Takes the lease for ``$holder`` for ``$lease`` microseconds when nobody holds it or its
# holder's lease ran out (a cycle whose process died); either way returns who holds it
# now, and until when. Run holding the poll-state lock: the read and the write are one
# step.
TAKE_LEASE = _statement(
    "TAKE_LEASE",
    """
    MERGE (l:PollLease {id: 1})
    WITH l, timestamp() * 1000 AS now
    WITH l, now, l.holder IS NULL OR l.expires_at <= now AS free
    SET l.holder = CASE WHEN free THEN $holder ELSE l.holder END,
        l.expires_at = CASE WHEN free THEN now + $lease ELSE l.expires_at END
    RETURN l.holder AS holder, l.expires_at AS expires_at
    """,
    "holder",
    "lease",
)
LEASE_HOLDER = _statement("LEASE_HOLDER", "MATCH (l:PollLease {id: 1}) RETURN l.holder AS holder")
RELEASE_LEASE = _statement(
    "RELEASE_LEASE", "MATCH (l:PollLease {id: 1}) WHERE l.holder = $holder DELETE l", "holder"
)
SAMPLES = _statement(
    "SAMPLES",
    """
    MATCH (s:PollSample)
    RETURN s.host AS host, s.port AS port, s.sample AS sample
    ORDER BY host, port
    """,
)
# one bounded batch of forgetting the previous cycle's samples (repeated until short)
DELETE_SAMPLES = _statement(
    "DELETE_SAMPLES",
    """
    MATCH (s:PollSample)
    WITH s LIMIT $limit
    DELETE s
    RETURN count(*) AS count
    """,
    "limit",
)
KEEP_SAMPLES = _statement(
    "KEEP_SAMPLES",
    "UNWIND $rows AS row CREATE (s:PollSample) SET s = row",
    "rows",
)

# Constraints and indexes (each CREATE ... IF NOT EXISTS), the write locks and the
# counters this part needs; ``schema.py`` creates them all in the desk's migration.
SCHEMA: tuple[Statement, ...] = (
    _statement(
        "SCHEMA[poll_sample_key]",
        "CREATE CONSTRAINT poll_sample_key IF NOT EXISTS "
        "FOR (s:PollSample) REQUIRE (s.host, s.port) IS UNIQUE",
    ),
    _statement(
        "SCHEMA[poll_lease_id]",
        "CREATE CONSTRAINT poll_lease_id IF NOT EXISTS FOR (l:PollLease) REQUIRE l.id IS UNIQUE",
    ),
)
LOCKS: tuple[str, ...] = (POLL_LOCK,)
SEQUENCES: tuple[str, ...] = ()
