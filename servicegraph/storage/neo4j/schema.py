"""Every migration of a Neo4j database: the configuration graph's (``cypher.py``), then
the desk's, whose constraints, indexes, write locks and counters each part of the desk
declares in its own catalogue (``*_cypher.py``: ``SCHEMA``, ``LOCKS``, ``SEQUENCES``).

Append new migrations; never edit a released one.
"""

from __future__ import annotations

from servicegraph.storage.neo4j import (
    change_cypher,
    cypher,
    directory_cypher,
    inbox_cypher,
    lease_cypher,
    outbox_cypher,
    poll_cypher,
    report_cypher,
    ticket_cypher,
    token_cypher,
)
from servicegraph.storage.neo4j.cypher import Migration

# The lock every unit of desk work takes first (people's work, correlation batches,
# directory and outbox writes): the desk's units run one at a time across hosts, and never
# wait for an import holding the graph's lock.
DESK_LOCK = "desk"

DESK_PARTS = (
    ticket_cypher,
    change_cypher,
    inbox_cypher,
    directory_cypher,
    token_cypher,
    poll_cypher,
    outbox_cypher,
    report_cypher,
    lease_cypher,
)

_LOCKS = (DESK_LOCK, *(lock for part in DESK_PARTS for lock in part.LOCKS))
_SEQUENCES = tuple(name for part in DESK_PARTS for name in part.SEQUENCES)

MIGRATIONS: tuple[Migration, ...] = (
    *cypher.MIGRATIONS,
    Migration(
        2,
        "the desk: tickets, changes, SLA clocks, inbox, directory, tokens, outbox, leases",
        tuple(statement for part in DESK_PARTS for statement in part.SCHEMA),
        (
            (cypher.CREATE_SEQUENCES, {"names": list(_SEQUENCES)}),
            *((cypher.CREATE_WRITE_LOCK, {"name": name}) for name in dict.fromkeys(_LOCKS)),
        ),
    ),
    Migration(
        3,
        "incidents saved before their root alert are named when it is saved",
        ticket_cypher.SCHEMA_3,
        ((ticket_cypher.NAME_UNNAMED_INCIDENTS, {}),),
    ),
)
