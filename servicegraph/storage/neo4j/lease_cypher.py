"""The Cypher of leases held by one process among many (the leader of the background jobs)
(a catalogue: see ``catalogue.py``).

One ``(:Lease {name})`` node per lease held, unique on ``name``: who holds it
(``holder``), since when (``acquired_at``) and until when (``expires_at``), integer
microseconds since the epoch as every desk time. A released lease's node is deleted; an
expired one stays until someone takes it over.

The times come from the Neo4j server's clock (``timestamp()``), never the caller's: the
holders run on several hosts, and a lease is exclusive only if they all agree on when it
ends. A host whose clock ran a minute ahead would take over a live leader's lease a minute
early; with the server's one clock, what a host's clock says does not matter. The caller
gives durations only (the ttl), measured on the server from the moment the statement runs.
"""

from __future__ import annotations

from typing import Any

from servicegraph.storage.neo4j.catalogue import Catalogue, Statement

LEASE = "Lease"

# The write lock of the leases' one-statement transactions: not the desk's, so that a
# leader's renewal never queues behind a long desk unit (a correlation batch) and misses
# its ttl, which would hand the background jobs to another process while this one still
# runs them.
LEASE_LOCK = "leases"

LABELS: tuple[str, ...] = (LEASE,)
RELATIONSHIP_TYPES: tuple[str, ...] = ()
PROPERTY_KEYS: tuple[str, ...] = ("name", "holder", "acquired_at", "expires_at")
FUNCTIONS: tuple[str, ...] = ("timestamp",)
PARAMETERS: dict[str, Any] = {
    "holder": "",
    "name": "",
    "ttl": 30_000_000,
}

CATALOGUE = Catalogue(
    "leases",
    labels=LABELS,
    relationship_types=RELATIONSHIP_TYPES,
    property_keys=PROPERTY_KEYS,
    parameters=PARAMETERS,
    functions=FUNCTIONS,
)
_statement = CATALOGUE.statement

# Each statement runs holding ``LEASE_LOCK``: Neo4j runs read committed, and a SET does not
# re-read what its WHERE read, so without the lock two callers could both find a lease
# expired and both take it.

# Takes the lease when nobody holds it or its holder's time ran out (``acquired_at`` is
# the takeover's); renews it when ``$holder`` holds it already. ``held``: whether
# ``$holder`` holds it now.
ACQUIRE = _statement(
    "ACQUIRE",
    """
    MERGE (l:Lease {name: $name})
    WITH l, timestamp() * 1000 AS now
    WITH l, now, l.holder IS NULL OR l.expires_at <= now AS free,
         l.holder = $holder AND l.expires_at > now AS mine
    SET l.acquired_at = CASE WHEN free THEN now ELSE l.acquired_at END,
        l.expires_at = CASE WHEN free OR mine THEN now + $ttl ELSE l.expires_at END,
        l.holder = CASE WHEN free THEN $holder ELSE l.holder END
    RETURN l.holder = $holder AS held
    """,
    "name",
    "holder",
    "ttl",
)
# Extends the lease of a holder that still holds it; one whose time ran out has lost it,
# even if nobody took it over yet (it takes it again with ACQUIRE).
RENEW = _statement(
    "RENEW",
    """
    MATCH (l:Lease {name: $name})
    WITH l, timestamp() * 1000 AS now
    WHERE l.holder = $holder AND l.expires_at > now
    SET l.expires_at = now + $ttl
    RETURN l.name AS name
    """,
    "name",
    "holder",
    "ttl",
)
RELEASE = _statement(
    "RELEASE",
    "MATCH (l:Lease {name: $name}) WHERE l.holder = $holder DELETE l",
    "name",
    "holder",
)

# Constraints and indexes (each CREATE ... IF NOT EXISTS), the write locks and the
# counters this part needs; ``schema.py`` creates them all in the desk's migration.
SCHEMA: tuple[Statement, ...] = (
    _statement(
        "SCHEMA[lease_name]",
        "CREATE CONSTRAINT lease_name IF NOT EXISTS FOR (l:Lease) REQUIRE l.name IS UNIQUE",
    ),
)
LOCKS: tuple[str, ...] = (LEASE_LOCK,)
SEQUENCES: tuple[str, ...] = ()
