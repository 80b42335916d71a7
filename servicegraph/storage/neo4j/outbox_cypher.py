"""The Cypher of the notification outbox (a catalogue: see ``catalogue.py``).

One ``(:OutboxMessage)`` node per row of SQLite's ``notification_outbox``, its properties
the table's columns (times as integer microseconds), ``id`` from the ``outbox_message``
counter. SQLite finds the messages still waiting (not sent, not dead) through a partial
index; Neo4j has none, so a waiting message also carries the label ``:OutboxPending``,
kept in step with ``sent_at`` and ``dead_at`` by every statement here, and the due scan
reads the range index on ``:OutboxPending(next_attempt_at)``: sent messages kept until
their retention ends are never walked by a claim. A range index holds only the nodes that
have the property, so the ``sent_at`` and ``dead_at`` indexes are SQLite's partial
``dead_at IS NOT NULL`` index already.
"""

from __future__ import annotations

from typing import Any

from servicegraph.storage.neo4j.catalogue import Catalogue, Statement

OUTBOX = "OutboxMessage"
PENDING = "OutboxPending"
SEQUENCE_OUTBOX = "outbox_message"

# in the order of the SQLite adapter's columns (``storage.sqlite.outbox._COLUMNS``), so its
# row codec reads a record's values
COLUMNS: tuple[str, ...] = (
    "id",
    "key",
    "event",
    "ticket_id",
    "channel",
    "target",
    "subject",
    "body",
    "created_at",
    "attempts",
    "next_attempt_at",
    "claimed_until",
    "sent_at",
    "dead_at",
    "last_error",
)
_RETURN = ", ".join(f"m.{c} AS {c}" for c in COLUMNS)

LABELS: tuple[str, ...] = (OUTBOX, PENDING)
RELATIONSHIP_TYPES: tuple[str, ...] = ()
PROPERTY_KEYS: tuple[str, ...] = COLUMNS
FUNCTIONS: tuple[str, ...] = ("coalesce", "count", "toString")
PARAMETERS: dict[str, Any] = {
    "at": 1_700_000_000_000_000,
    "before": 1_700_000_000_000_000,
    "due": 1_700_000_000_000_000,
    "dead": 1_700_000_000_000_000,
    "error": "",
    "id": 1,
    "ids": [1],
    "keys": [""],
    "limit": 100,
    "max_attempts": 8,
    "rows": [{}],
    "until": 1_700_000_000_000_000,
}

CATALOGUE = Catalogue(
    "outbox",
    labels=LABELS,
    relationship_types=RELATIONSHIP_TYPES,
    property_keys=PROPERTY_KEYS,
    parameters=PARAMETERS,
    functions=FUNCTIONS,
)
_statement = CATALOGUE.statement

# -- enqueueing (in the ticket unit's transaction) ------------------------------------------

QUEUED_KEYS = _statement(
    "QUEUED_KEYS",
    "UNWIND $keys AS key MATCH (m:OutboxMessage {key: key}) RETURN m.key AS key",
    "keys",
)
# MERGE, not CREATE: the key is the idempotency key, and a key queued meanwhile (by a
# writer that did not hold the desk lock) stays as it is, as INSERT OR IGNORE leaves it
ENQUEUE = _statement(
    "ENQUEUE",
    """
    UNWIND $rows AS row
    MERGE (m:OutboxMessage {key: row.key})
    ON CREATE SET m = row, m:OutboxPending
    """,
    "rows",
)

# -- the sender's side --------------------------------------------------------------------

# a message whose lease ran out after its last allowed attempt: its sender died while
# sending it, each time; tried no more
DEAD_LETTER_ABANDONED = _statement(
    "DEAD_LETTER_ABANDONED",
    """
    MATCH (m:OutboxPending)
    WHERE m.next_attempt_at <= $at AND m.attempts >= $max_attempts
      AND m.claimed_until IS NOT NULL AND m.claimed_until <= $at
    SET m.dead_at = $at, m.claimed_until = null,
        m.last_error = 'the sender stopped while sending it, ' + toString(m.attempts)
            + ' times' + coalesce('; before: ' + m.last_error, '')
    REMOVE m:OutboxPending
    """,
    "at",
    "max_attempts",
)
CLAIM = _statement(
    "CLAIM",
    f"""
    MATCH (m:OutboxPending)
    WHERE m.next_attempt_at <= $at
      AND (m.claimed_until IS NULL OR m.claimed_until <= $at)
      AND m.attempts < $max_attempts
    WITH m ORDER BY m.next_attempt_at, m.id LIMIT $limit
    SET m.attempts = m.attempts + 1, m.claimed_until = $until
    RETURN {_RETURN}
    """,
    "at",
    "max_attempts",
    "limit",
    "until",
)
MARK_SENT = _statement(
    "MARK_SENT",
    """
    MATCH (m:OutboxMessage {id: $id}) WHERE m.sent_at IS NULL
    SET m.sent_at = $at, m.claimed_until = null
    REMOVE m:OutboxPending
    """,
    "id",
    "at",
)
WAITING_ATTEMPTS = _statement(
    "WAITING_ATTEMPTS",
    """
    MATCH (m:OutboxMessage {id: $id}) WHERE m.sent_at IS NULL AND m.dead_at IS NULL
    RETURN m.attempts AS attempts
    """,
    "id",
)
RESCHEDULE = _statement(
    "RESCHEDULE",
    """
    MATCH (m:OutboxMessage {id: $id})
    SET m.claimed_until = null, m.last_error = $error, m.next_attempt_at = $due
    """,
    "id",
    "error",
    "due",
)
DEAD_LETTER = _statement(
    "DEAD_LETTER",
    """
    MATCH (m:OutboxMessage {id: $id})
    SET m.claimed_until = null, m.last_error = $error, m.dead_at = $dead
    REMOVE m:OutboxPending
    """,
    "id",
    "error",
    "dead",
)
RELEASE = _statement(
    "RELEASE",
    """
    UNWIND $ids AS id
    MATCH (m:OutboxMessage {id: id}) WHERE m.sent_at IS NULL AND m.dead_at IS NULL
    SET m.claimed_until = null,
        m.attempts = CASE WHEN m.attempts > 0 THEN m.attempts - 1 ELSE 0 END
    """,
    "ids",
)
DEAD_LETTERS = _statement(
    "DEAD_LETTERS",
    f"""
    MATCH (m:OutboxMessage) WHERE m.dead_at IS NOT NULL
    RETURN {_RETURN}
    ORDER BY m.dead_at DESC, m.id DESC LIMIT $limit
    """,
    "limit",
)
RETRY_ALL = _statement(
    "RETRY_ALL",
    """
    MATCH (m:OutboxMessage) WHERE m.dead_at IS NOT NULL AND m.sent_at IS NULL
    SET m.dead_at = null, m.attempts = 0, m.claimed_until = null, m.next_attempt_at = $at,
        m:OutboxPending
    RETURN count(m) AS count
    """,
    "at",
)
RETRY_IDS = _statement(
    "RETRY_IDS",
    """
    UNWIND $ids AS id
    MATCH (m:OutboxMessage {id: id}) WHERE m.dead_at IS NOT NULL AND m.sent_at IS NULL
    SET m.dead_at = null, m.attempts = 0, m.claimed_until = null, m.next_attempt_at = $at,
        m:OutboxPending
    RETURN count(m) AS count
    """,
    "ids",
    "at",
)
GET = _statement(
    "GET",
    f"UNWIND $ids AS id MATCH (m:OutboxMessage {{id: id}}) RETURN {_RETURN}",
    "ids",
)
COUNTS = _statement(
    "COUNTS",
    """
    RETURN COUNT { MATCH (m:OutboxPending) } AS pending,
           COUNT { MATCH (m:OutboxMessage) WHERE m.sent_at IS NOT NULL } AS sent,
           COUNT { MATCH (m:OutboxMessage) WHERE m.dead_at IS NOT NULL } AS dead
    """,
)
# one bounded batch of a prune (the caller repeats it until a batch is short)
PRUNE_SENT = _statement(
    "PRUNE_SENT",
    """
    MATCH (m:OutboxMessage) WHERE m.sent_at < $before
    WITH m LIMIT $limit
    DETACH DELETE m
    RETURN count(*) AS count
    """,
    "before",
    "limit",
)

# Constraints and indexes (each CREATE ... IF NOT EXISTS), the write locks and the
# counters this part needs; ``schema.py`` creates them all in the desk's migration.
SCHEMA: tuple[Statement, ...] = (
    _statement(
        "SCHEMA[outbox_id]",
        "CREATE CONSTRAINT outbox_id IF NOT EXISTS FOR (m:OutboxMessage) REQUIRE m.id IS UNIQUE",
    ),
    _statement(
        "SCHEMA[outbox_key]",
        "CREATE CONSTRAINT outbox_key IF NOT EXISTS FOR (m:OutboxMessage) REQUIRE m.key IS UNIQUE",
    ),
    # SQLite's partial notification_outbox_due: the waiting messages by due time
    _statement(
        "SCHEMA[outbox_due]",
        "CREATE INDEX outbox_due IF NOT EXISTS FOR (m:OutboxPending) ON (m.next_attempt_at)",
    ),
    # SQLite's partial notification_outbox_dead (a range index skips nodes without it)
    _statement(
        "SCHEMA[outbox_dead]",
        "CREATE INDEX outbox_dead IF NOT EXISTS FOR (m:OutboxMessage) ON (m.dead_at)",
    ),
    # counting and pruning sent messages
    _statement(
        "SCHEMA[outbox_sent]",
        "CREATE INDEX outbox_sent IF NOT EXISTS FOR (m:OutboxMessage) ON (m.sent_at)",
    ),
)
LOCKS: tuple[str, ...] = ()
SEQUENCES: tuple[str, ...] = (SEQUENCE_OUTBOX,)
