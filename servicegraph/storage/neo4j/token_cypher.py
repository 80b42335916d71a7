"""The Cypher of API tokens (a catalogue: see ``catalogue.py``).

One ``(:ApiToken)`` node per row of SQLite's ``api_token``, its properties the table's
columns (times as integer microseconds since the epoch, a revoked token's ``revoked_at``
set, an active one's absent), both of the table's keys unique: ``id`` and ``name``.
"""

from __future__ import annotations

from typing import Any

from servicegraph.storage.neo4j.catalogue import Catalogue, Statement

TOKEN = "ApiToken"

# in the order of the SQLite adapter's columns (``storage.sqlite.tokens._COLUMNS``), so its
# row codec reads a record's values
COLUMNS: tuple[str, ...] = (
    "id",
    "name",
    "role",
    "secret_sha256",
    "created_at",
    "created_by",
    "revoked_at",
    "holder",
)
_RETURN = ", ".join(f"t.{c} AS {c}" for c in COLUMNS)

LABELS: tuple[str, ...] = (TOKEN,)
RELATIONSHIP_TYPES: tuple[str, ...] = ()
PROPERTY_KEYS: tuple[str, ...] = COLUMNS
FUNCTIONS: tuple[str, ...] = ()
PARAMETERS: dict[str, Any] = {
    "at": 1_700_000_000_000_000,
    "id": "",
    "name": "",
    "row": {},
}

CATALOGUE = Catalogue(
    "tokens",
    labels=LABELS,
    relationship_types=RELATIONSHIP_TYPES,
    property_keys=PROPERTY_KEYS,
    parameters=PARAMETERS,
    functions=FUNCTIONS,
)
_statement = CATALOGUE.statement

NAME_USED = _statement(
    "NAME_USED", "MATCH (t:ApiToken {name: $name}) RETURN t.id AS id LIMIT 1", "name"
)
ADD = _statement("ADD", "CREATE (t:ApiToken) SET t = $row", "row")
BY_ID = _statement("BY_ID", f"MATCH (t:ApiToken {{id: $id}}) RETURN {_RETURN}", "id")
BY_NAME = _statement("BY_NAME", f"MATCH (t:ApiToken {{name: $name}}) RETURN {_RETURN}", "name")
ALL = _statement("ALL", f"MATCH (t:ApiToken) RETURN {_RETURN} ORDER BY t.created_at, t.id")
# the first revocation time is kept: a revoked token is not revoked again
REVOKE = _statement(
    "REVOKE",
    """
    MATCH (t:ApiToken {id: $id}) WHERE t.revoked_at IS NULL
    SET t.revoked_at = $at
    RETURN t.id AS id
    """,
    "id",
    "at",
)

# Constraints and indexes (each CREATE ... IF NOT EXISTS), the write locks and the
# counters this part needs; ``schema.py`` creates them all in the desk's migration.
SCHEMA: tuple[Statement, ...] = (
    _statement(
        "SCHEMA[api_token_id]",
        "CREATE CONSTRAINT api_token_id IF NOT EXISTS FOR (t:ApiToken) REQUIRE t.id IS UNIQUE",
    ),
    _statement(
        "SCHEMA[api_token_name]",
        "CREATE CONSTRAINT api_token_name IF NOT EXISTS FOR (t:ApiToken) REQUIRE t.name IS UNIQUE",
    ),
)
LOCKS: tuple[str, ...] = ()
SEQUENCES: tuple[str, ...] = ()
