"""The Cypher of the durable event inbox and the correlation cursor (a catalogue: see
``catalogue.py``).

* ``(:InboxBatch {seq, events, received_at, body})`` what one append stored: ``events``
  events numbered ``seq - events + 1 .. seq``, received at ``received_at`` (microseconds
  since the epoch, UTC), ``body`` their wire form zlib-compressed (bytes), exactly the
  SQLite inbox's row (``sqlite/inbox.py``).
* ``(:Sequence {name: 'inbox_seq'})`` the highest event number ever given. An append
  increments it first, which locks the node until the append commits: appends commit one
  at a time and in the order of their numbers, so a reader that sees number N has seen
  every number below it, and the cursor never skips an append still committing.
* ``(:Sequence {name: 'inbox_cursor'})`` the last number whose effects are committed,
  advanced by the correlation unit in the transaction that writes the effects.
* ``(:InboxSeen {key, seq})`` the key of every event correlated (``sqlite/inbox.py``
  ``event_key``), written in the same transaction: a redelivery is dropped when claimed.
"""

from __future__ import annotations

from typing import Any

from servicegraph.storage.neo4j.catalogue import Catalogue, Statement

SEQUENCE_INBOX = "inbox_seq"
SEQUENCE_CURSOR = "inbox_cursor"

LABELS: tuple[str, ...] = ("InboxBatch", "InboxSeen", "Sequence")
RELATIONSHIP_TYPES: tuple[str, ...] = ()
PROPERTY_KEYS: tuple[str, ...] = (
    "seq",
    "events",
    "received_at",
    "body",
    "key",
    "name",
    "value",
)
FUNCTIONS: tuple[str, ...] = ("coalesce", "count", "min", "sum")
PARAMETERS: dict[str, Any] = {
    "after": 0,
    "before_us": 0,
    "count": 1,
    "keys": [0],
    "limit": 100,
    "name": SEQUENCE_CURSOR,
    "rows": [{"events": 1, "received_at": 0, "body": "", "seq": 1, "key": 0}],
    "through": 0,
    "value": 0,
}

CATALOGUE = Catalogue(
    "inbox",
    labels=LABELS,
    relationship_types=RELATIONSHIP_TYPES,
    property_keys=PROPERTY_KEYS,
    parameters=PARAMETERS,
    functions=FUNCTIONS,
)
_statement = CATALOGUE.statement

SCHEMA: tuple[Statement, ...] = (
    _statement(
        "SCHEMA[inbox_batch_seq]",
        "CREATE CONSTRAINT inbox_batch_seq IF NOT EXISTS "
        "FOR (b:InboxBatch) REQUIRE b.seq IS UNIQUE",
    ),
    _statement(
        "SCHEMA[inbox_batch_received]",
        "CREATE INDEX inbox_batch_received IF NOT EXISTS FOR (b:InboxBatch) ON (b.received_at)",
    ),
    _statement(
        "SCHEMA[inbox_seen_key]",
        "CREATE CONSTRAINT inbox_seen_key IF NOT EXISTS FOR (s:InboxSeen) REQUIRE s.key IS UNIQUE",
    ),
    _statement(
        "SCHEMA[inbox_seen_seq]",
        "CREATE INDEX inbox_seen_seq IF NOT EXISTS FOR (s:InboxSeen) ON (s.seq)",
    ),
)
LOCKS: tuple[str, ...] = ()
SEQUENCES: tuple[str, ...] = (SEQUENCE_INBOX, SEQUENCE_CURSOR)

# -- appending ---------------------------------------------------------------------------

# Takes the next ``count`` numbers (and the sequence node's lock, until commit).
TAKE_NUMBERS = _statement(
    "TAKE_NUMBERS",
    """
    MATCH (s:Sequence {name: 'inbox_seq'})
    SET s.value = s.value + $count
    RETURN s.value AS value
    """,
    "count",
)
# rows: [{seq, events, received_at, body}]
APPEND_BATCHES = _statement(
    "APPEND_BATCHES",
    """
    UNWIND $rows AS row
    CREATE (:InboxBatch {seq: row.seq, events: row.events, received_at: row.received_at,
                         body: row.body})
    """,
    "rows",
)
NEWEST_BATCHES = _statement(
    "NEWEST_BATCHES",
    """
    MATCH (b:InboxBatch) WHERE b.seq < $after
    RETURN b.seq AS seq, b.events AS events, b.received_at AS received_at, b.body AS body
    ORDER BY b.seq DESC LIMIT $limit
    """,
    "after",
    "limit",
)

# -- claiming ----------------------------------------------------------------------------

READ_COUNTER = _statement(
    "READ_COUNTER",
    "MATCH (s:Sequence {name: $name}) RETURN s.value AS value",
    "name",
)
SET_CURSOR = _statement(
    "SET_CURSOR",
    "MATCH (s:Sequence {name: 'inbox_cursor'}) SET s.value = $value",
    "value",
)
BATCHES_AFTER = _statement(
    "BATCHES_AFTER",
    """
    MATCH (b:InboxBatch) WHERE b.seq > $after
    RETURN b.seq AS seq, b.events AS events, b.received_at AS received_at, b.body AS body
    ORDER BY b.seq LIMIT $limit
    """,
    "after",
    "limit",
)
SEEN_KEYS = _statement(
    "SEEN_KEYS",
    "MATCH (s:InboxSeen) WHERE s.key IN $keys RETURN s.key AS key",
    "keys",
)
# rows: [{key, seq}]
REMEMBER_KEYS = _statement(
    "REMEMBER_KEYS",
    "UNWIND $rows AS row CREATE (:InboxSeen {key: row.key, seq: row.seq})",
    "rows",
)
FORGET_KEYS = _statement(
    "FORGET_KEYS",
    """
    MATCH (s:InboxSeen) WHERE s.seq > $after AND s.seq <= $through
    DELETE s
    """,
    "after",
    "through",
)

# -- reading and pruning -----------------------------------------------------------------

WAITING = _statement(
    "WAITING",
    """
    MATCH (b:InboxBatch) WHERE b.seq > $after
    RETURN coalesce(sum(CASE WHEN b.seq - $after < b.events THEN b.seq - $after
                             ELSE b.events END), 0) AS count,
           min(b.received_at) AS oldest
    """,
    "after",
)
STORED = _statement(
    "STORED",
    "MATCH (b:InboxBatch) RETURN coalesce(sum(b.events), 0) AS count",
)
# The first batch kept by a prune: one still waiting, or received since ``before_us``.
FIRST_KEPT = _statement(
    "FIRST_KEPT",
    """
    MATCH (b:InboxBatch) WHERE b.seq > $after OR b.received_at >= $before_us
    RETURN b.seq - b.events AS through ORDER BY b.seq LIMIT 1
    """,
    "after",
    "before_us",
)
# One bounded batch of a prune (run until it deletes nothing).
PRUNE_BATCHES = _statement(
    "PRUNE_BATCHES",
    """
    MATCH (b:InboxBatch) WHERE b.seq <= $through
    WITH b LIMIT $limit
    WITH b, b.events AS events DELETE b
    RETURN count(*) AS batches, coalesce(sum(events), 0) AS events
    """,
    "through",
    "limit",
)
PRUNE_SEEN = _statement(
    "PRUNE_SEEN",
    """
    MATCH (s:InboxSeen) WHERE s.seq <= $through
    WITH s LIMIT $limit DELETE s
    RETURN count(*) AS deleted
    """,
    "through",
    "limit",
)
