"""The Cypher of the desk directory (people, groups, catalogue) (a catalogue: see
``catalogue.py``).

One node per row of SQLite's directory tables (migration 9), labelled after the table,
its properties the table's columns with SQLite's encodings (lists and defaults as JSON
text, booleans as 0/1, ``updated_at`` in integer microseconds), unique on the table's
primary key: ``(:DeskAgent {login})``, ``(:DeskGroup {id})``,
``(:DeskGroupMember {group_id, login})``, ``(:DeskOrganisation {id})``,
``(:DeskContact {id})``, ``(:DeskService {id})``, ``(:DeskCategory {path})``. SQLite's
``meta`` row ``directory_version`` is the ``(:Sequence {name: 'directory_version'})``
counter. SQLite's unique index on ``lower(email)`` of contacts has no Neo4j equivalent (no
expression indexes): the save checks it (``DUPLICATE_EMAIL``) in its locked transaction.
"""

from __future__ import annotations

from typing import Any

from servicegraph.storage.neo4j.catalogue import Catalogue, Statement

SEQUENCE_VERSION = "directory_version"

# label -> (key, the columns in the order of SQLite's row readers, ``updated_at`` last)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "DeskAgent": ("login", ("login", "name", "email", "phone", "roles", "active")),
    "DeskGroup": ("id", ("id", "name", "email", "manager", "description")),
    "DeskOrganisation": ("id", ("id", "name", "domains", "notes")),
    "DeskContact": (
        "id",
        ("id", "name", "email", "organisation", "phone", "vip", "active"),
    ),
    "DeskService": (
        "id",
        (
            "id",
            "name",
            "ci_id",
            "owner_group",
            "request_types",
            "defaults",
            "description",
            "active",
        ),
    ),
    "DeskCategory": ("path", ("path", "name", "owner_group", "defaults", "types")),
}
MEMBER = "DeskGroupMember"

LABELS: tuple[str, ...] = (*TABLES, MEMBER)
RELATIONSHIP_TYPES: tuple[str, ...] = ()
PROPERTY_KEYS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [c for _, columns in TABLES.values() for c in columns] + ["updated_at", "group_id"]
    )
)
FUNCTIONS: tuple[str, ...] = ("count", "toLower")
PARAMETERS: dict[str, Any] = {
    "emails": [""],
    "group_ids": [""],
    "logins": [""],
    "rows": [{}],
}

CATALOGUE = Catalogue(
    "directory",
    labels=LABELS,
    relationship_types=RELATIONSHIP_TYPES,
    property_keys=PROPERTY_KEYS,
    parameters=PARAMETERS,
    functions=FUNCTIONS,
)
_statement = CATALOGUE.statement

# Every record of a table, ordered by key, its columns then ``updated_at``.
ALL: dict[str, Statement] = {
    label: _statement(
        f"ALL[{label}]",
        f"MATCH (n:{label}) RETURN "
        + ", ".join(f"n.{c} AS {c}" for c in (*columns, "updated_at"))
        + f" ORDER BY n.{key}",
    )
    for label, (key, columns) in TABLES.items()
}
# Upserts by key: a saved record replaces the stored one whole (its row's every column).
UPSERT: dict[str, Statement] = {
    label: _statement(
        f"UPSERT[{label}]",
        f"UNWIND $rows AS row MERGE (n:{label} {{{key}: row.{key}}}) SET n = row",
        "rows",
    )
    for label, (key, _) in TABLES.items()
}
# only pairs whose both ends exist: the store checks no references
MEMBERS = _statement(
    "MEMBERS",
    """
    MATCH (m:DeskGroupMember)
    WHERE EXISTS { MATCH (:DeskGroup {id: m.group_id}) }
      AND EXISTS { MATCH (:DeskAgent {login: m.login}) }
    RETURN m.group_id AS group_id, m.login AS login
    ORDER BY group_id, login
    """,
)
DROP_MEMBERS_OF_AGENTS = _statement(
    "DROP_MEMBERS_OF_AGENTS",
    "UNWIND $logins AS login MATCH (m:DeskGroupMember {login: login}) DELETE m",
    "logins",
)
DROP_MEMBERS_OF_GROUPS = _statement(
    "DROP_MEMBERS_OF_GROUPS",
    "UNWIND $group_ids AS id MATCH (m:DeskGroupMember {group_id: id}) DELETE m",
    "group_ids",
)
ADD_MEMBERS = _statement(
    "ADD_MEMBERS",
    "UNWIND $rows AS row MERGE (:DeskGroupMember {group_id: row.group_id, login: row.login})",
    "rows",
)
# an address of the batch that two contacts now hold (case-insensitively, as SQLite's
# unique index on lower(email))
DUPLICATE_EMAIL = _statement(
    "DUPLICATE_EMAIL",
    """
    UNWIND $emails AS e
    MATCH (c:DeskContact) WHERE toLower(c.email) = e
    WITH e, count(c) AS holders WHERE holders > 1
    RETURN e AS email LIMIT 1
    """,
    "emails",
)
HOLDS_RECORDS = _statement(
    "HOLDS_RECORDS",
    "RETURN " + " OR ".join(f"EXISTS {{ MATCH (:{label}) }}" for label in LABELS) + " AS held",
)

# Constraints and indexes (each CREATE ... IF NOT EXISTS), the write locks and the
# counters this part needs; ``schema.py`` creates them all in the desk's migration.
SCHEMA: tuple[Statement, ...] = (
    *(
        _statement(
            f"SCHEMA[{label}_key]",
            f"CREATE CONSTRAINT desk_{label[4:].lower()}_key IF NOT EXISTS "
            f"FOR (n:{label}) REQUIRE n.{key} IS UNIQUE",
        )
        for label, (key, _) in TABLES.items()
    ),
    _statement(
        "SCHEMA[DeskGroupMember_key]",
        "CREATE CONSTRAINT desk_groupmember_key IF NOT EXISTS "
        "FOR (m:DeskGroupMember) REQUIRE (m.group_id, m.login) IS UNIQUE",
    ),
    # SQLite's desk_group_member_login: an agent's memberships (the composite constraint's
    # index serves the group's)
    _statement(
        "SCHEMA[desk_group_member_login]",
        "CREATE INDEX desk_group_member_login IF NOT EXISTS FOR (m:DeskGroupMember) ON (m.login)",
    ),
)
LOCKS: tuple[str, ...] = ()
SEQUENCES: tuple[str, ...] = (SEQUENCE_VERSION,)
