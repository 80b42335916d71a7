"""Every Cypher statement of the Neo4j adapter, and the graph schema they use, as data.

Nothing else in servicegraph writes Cypher: the adapter (``store.py``) runs these named
statements and nothing more, and ``tests/unit/test_cypher_lint.py`` runs every one of them
through Neo4j's own parser and semantic analysis (``@neo4j-cypher/language-support``,
pinned in ``tools/cypher-lint``) against the labels, relationship types, property keys,
functions, procedures and parameters declared below. A statement that uses anything not
declared here fails that test.

The graph
---------
* ``(:CI)`` one node per configuration item, unique ``id``. Its properties are exactly the
  map built by the adapter (``CI_PROPERTIES``): attribute maps are JSON strings (Neo4j
  properties cannot hold maps or nulls), and every attribute whose value Neo4j can store
  (string, number, boolean, homogeneous list of those) is also projected as a property
  ``attr_<name>`` so that ``find_cis`` can filter on it. The JSON is the truth; the
  projection is rebuilt on every write.
* ``(:CI)-[:DEPENDS_ON|RUNS_ON|...]->(:CI)`` one real, typed relationship per CMDB
  relationship, so that traversals are native bounded variable-length patterns. ``key``
  (unique per type) backs the (from, type, to) identity that ``MERGE`` keeps under the
  write lock. Removed relationships stay, flagged ``removed``, as in SQLite.
* Bookkeeping records are nodes keyed by CI id, like rows of the SQLite tables:
  ``(:Identifier {kind, value, ci_id})`` unique (kind, value); ``(:SourceKey {source, key,
  ci_id})`` unique (source, key); ``(:CISighting)`` unique (ci_id, source);
  ``(:RelationshipSighting)`` unique (from_id, type, to_id, source); ``(:SourceSweep)``
  unique source; ``(:HistoryEntry)`` unique ``seq``, indexed by ``ci_id`` and
  ``other_ci_id`` so that an item's whole timeline is one query; ``(:Conflict)`` unique id.
* ``(:Sequence {name, value})`` counters (change sequence, history seq, conflict id),
  ``(:WriteLock {name})`` the node every unit of work locks first (see ``store.py``) and
  ``(:SchemaVersion {name, version})`` the applied migration.

Times are Neo4j ``DATETIME`` values in UTC (the driver maps them to aware Python
datetimes); seqs, counters and ids are 64-bit integers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servicegraph.storage.neo4j.catalogue import Catalogue, Statement

# -- the declared schema ---------------------------------------------------------------

# Relationship types of the configuration graph. Must equal the built-in types of
# ``servicegraph.cmdb.relationships`` (a test checks): configuration can add class pairs to
# a type, never a new type, so every type is known when the statements are built.
RELATIONSHIP_TYPES: tuple[str, ...] = (
    "CONNECTED_TO",
    "DEPENDS_ON",
    "HOSTED_ON",
    "LOCATED_IN",
    "MEMBER_OF",
    "PART_OF",
    "RUNS_ON",
)

LABELS: tuple[str, ...] = (
    "CI",
    "Identifier",
    "SourceKey",
    "CISighting",
    "RelationshipSighting",
    "SourceSweep",
    "HistoryEntry",
    "Conflict",
    "Sequence",
    "WriteLock",
    "SchemaVersion",
)

# Properties of a (:CI) node, besides the ``attr_<name>`` projections.
CI_PROPERTIES: tuple[str, ...] = (
    "id",
    "class",
    "name",
    "attributes",
    "attribute_sources",
    "lifecycle",
    "operational_state",
    "stale",
    "merged_into",
    "created_at",
    "updated_at",
    "version",
    "change_seq",
)
ATTRIBUTE_PREFIX = "attr_"

# Properties of a configuration relationship.
RELATIONSHIP_PROPERTIES: tuple[str, ...] = (
    "key",
    "attributes",
    "created_at",
    "updated_at",
    "removed",
    "stale",
    "change_seq",
)

# Every property key a statement names, including the keys of the row maps it unwinds
# (the linter cannot tell ``row.from_id`` from a node property).
PROPERTY_KEYS: tuple[str, ...] = tuple(
    sorted(
        {
            *CI_PROPERTIES,
            *RELATIONSHIP_PROPERTIES,
            # Identifier, SourceKey
            "kind",
            "value",
            "ci_id",
            "source",
            # sightings
            "from_id",
            "type",
            "to_id",
            "first_seen",
            "last_seen",
            "last_run",
            "missed_runs",
            "swept",
            # SourceSweep
            "run_id",
            "done",
            "sweep",
            # HistoryEntry
            "seq",
            "at",
            "field",
            "old",
            "new",
            "actor",
            "other_ci_id",
            # Conflict
            "detected_at",
            "item",
            "identifier_kind",
            "identifier_value",
            "detail",
            # Sequence, WriteLock, SchemaVersion
            "holder",
            "acquired_at",
            "migrated_at",
            # row maps only
            "props",
            "was_stale",
        }
    )
)

# Built-in functions and procedures the statements call; anything else is a lint error.
FUNCTIONS: tuple[str, ...] = (
    "coalesce",
    "count",
    "datetime",
    "keys",
    "toLower",
    "type",
)
# procedure -> its arguments (name, Cypher type)
PROCEDURES: Mapping[str, tuple[tuple[str, str], ...]] = {
    "db.awaitIndexes": (("timeOutSeconds", "INTEGER"),),
}

# Every parameter with an example value of its type (what the linter is told).
PARAMETERS: Mapping[str, Any] = {
    "after": "",
    "at": "2026-01-01T00:00:00Z",
    "attributes": {},
    "before": "2026-01-01T00:00:00Z",
    "change_seq": 1,
    "ci_class": None,
    "ci_id": "ci-0",
    "count": 1,
    "from_ci": "ci-0",
    "holder": "host:pid",
    "ids": [],
    "include_merged": False,
    "include_removed": False,
    "incoming": True,
    "keys": [],
    "limit": 100,
    "name": "graph",
    "name_contains": None,
    "names": [],
    "outgoing": True,
    "rows": [],
    "run_id": "run-0",
    "since": None,
    "since_seq": 0,
    "source": "snmp",
    "stale": None,
    "stale_after": 3,
    "sweep": 1,
    "timeout": 300,
    "to_ci": "ci-1",
    "types": None,
    "until": None,
    "value": 0,
    "version": 1,
}


STATEMENTS: dict[str, Statement] = {}
CATALOGUE = Catalogue(
    "graph",
    labels=LABELS,
    relationship_types=RELATIONSHIP_TYPES,
    property_keys=PROPERTY_KEYS,
    parameters=PARAMETERS,
    functions=FUNCTIONS,
    procedures=PROCEDURES,
    statements=STATEMENTS,
)


def _statement(name: str, text: str, *parameters: str) -> Statement:
    return CATALOGUE.statement(name, text, *parameters)


def _per_type(name: str, template: str, *parameters: str) -> dict[str, Statement]:
    """One statement per relationship type: a type cannot be a parameter in Neo4j 5."""
    return {
        t: _statement(f"{name}[{t}]", template.replace("$$TYPE$$", t), *parameters)
        for t in RELATIONSHIP_TYPES
    }


# A pattern matching every configuration relationship and nothing else.
_ANY_TYPE = "|".join(RELATIONSHIP_TYPES)

# The columns of a CI, as ``_ci`` in store.py reads them.
_CI_COLUMNS = """
    c.id AS id, c.class AS class, c.name AS name, c.attributes AS attributes,
    c.attribute_sources AS attribute_sources, c.lifecycle AS lifecycle,
    c.operational_state AS operational_state, c.stale AS stale, c.merged_into AS merged_into,
    c.created_at AS created_at, c.updated_at AS updated_at, c.version AS version,
    COLLECT { MATCH (i:Identifier {ci_id: c.id}) RETURN [i.kind, i.value] } AS identifiers
"""

# The columns of a relationship between (a) and (b), as ``_relationship`` reads them.
_REL_COLUMNS = """
    a.id AS from_id, type(r) AS type, b.id AS to_id, r.attributes AS attributes,
    r.created_at AS created_at, r.updated_at AS updated_at, r.removed AS removed,
    r.stale AS stale
"""

_HISTORY_COLUMNS = """
    h.seq AS seq, h.at AS at, h.ci_id AS ci_id, h.kind AS kind, h.field AS field,
    h.old AS old, h.new AS new, h.source AS source, h.actor AS actor, h.run_id AS run_id,
    h.other_ci_id AS other_ci_id
"""

_CONFLICT_COLUMNS = """
    x.id AS id, x.detected_at AS detected_at, x.kind AS kind, x.source AS source,
    x.item AS item, x.identifier_kind AS identifier_kind,
    x.identifier_value AS identifier_value, x.ci_id AS ci_id, x.other_ci_id AS other_ci_id,
    x.detail AS detail, x.run_id AS run_id
"""

_SIGHTING_COLUMNS = """
    s.source AS source, s.first_seen AS first_seen, s.last_seen AS last_seen,
    s.last_run AS last_run, s.missed_runs AS missed_runs, s.stale AS stale
"""

# -- schema and migrations -------------------------------------------------------------

SCHEMA_VERSION_NAME = "servicegraph"
WRITE_LOCK_NAME = "graph"
SEQUENCE_CHANGE = "change"
SEQUENCE_HISTORY = "history"
SEQUENCE_CONFLICT = "conflict"
SEQUENCES = (SEQUENCE_CHANGE, SEQUENCE_HISTORY, SEQUENCE_CONFLICT)

READ_SCHEMA_VERSION = _statement(
    "READ_SCHEMA_VERSION",
    "OPTIONAL MATCH (v:SchemaVersion {name: $name}) RETURN v.version AS version",
    "name",
)
SET_SCHEMA_VERSION = _statement(
    "SET_SCHEMA_VERSION",
    """
    MERGE (v:SchemaVersion {name: $name})
    WITH v WHERE coalesce(v.version, 0) < $version
    SET v.version = $version, v.migrated_at = datetime()
    """,
    "name",
    "version",
)
CREATE_SEQUENCES = _statement(
    "CREATE_SEQUENCES",
    "UNWIND $names AS name MERGE (s:Sequence {name: name}) ON CREATE SET s.value = 0",
    "names",
)
CREATE_WRITE_LOCK = _statement("CREATE_WRITE_LOCK", "MERGE (l:WriteLock {name: $name})", "name")
AWAIT_INDEXES = _statement("AWAIT_INDEXES", "CALL db.awaitIndexes($timeout)", "timeout")


def _schema(name: str, text: str) -> Statement:
    return _statement(f"SCHEMA[{name}]", text)


_SCHEMA_1: list[Statement] = [
    _schema("ci_id", "CREATE CONSTRAINT ci_id IF NOT EXISTS FOR (c:CI) REQUIRE c.id IS UNIQUE"),
    _schema("ci_class", "CREATE INDEX ci_class IF NOT EXISTS FOR (c:CI) ON (c.class)"),
    _schema(
        "ci_merged_into",
        "CREATE INDEX ci_merged_into IF NOT EXISTS FOR (c:CI) ON (c.merged_into)",
    ),
    _schema(
        "ci_change_seq", "CREATE INDEX ci_change_seq IF NOT EXISTS FOR (c:CI) ON (c.change_seq)"
    ),
    _schema(
        "identifier_key",
        "CREATE CONSTRAINT identifier_key IF NOT EXISTS "
        "FOR (i:Identifier) REQUIRE (i.kind, i.value) IS UNIQUE",
    ),
    _schema(
        "identifier_ci", "CREATE INDEX identifier_ci IF NOT EXISTS FOR (i:Identifier) ON (i.ci_id)"
    ),
    _schema(
        "source_key",
        "CREATE CONSTRAINT source_key IF NOT EXISTS "
        "FOR (k:SourceKey) REQUIRE (k.source, k.key) IS UNIQUE",
    ),
    _schema(
        "source_key_key", "CREATE INDEX source_key_key IF NOT EXISTS FOR (k:SourceKey) ON (k.key)"
    ),
    _schema(
        "source_key_ci", "CREATE INDEX source_key_ci IF NOT EXISTS FOR (k:SourceKey) ON (k.ci_id)"
    ),
    _schema(
        "ci_sighting_key",
        "CREATE CONSTRAINT ci_sighting_key IF NOT EXISTS "
        "FOR (s:CISighting) REQUIRE (s.ci_id, s.source) IS UNIQUE",
    ),
    _schema(
        "ci_sighting_ci",
        "CREATE INDEX ci_sighting_ci IF NOT EXISTS FOR (s:CISighting) ON (s.ci_id)",
    ),
    _schema(
        "ci_sighting_source",
        "CREATE INDEX ci_sighting_source IF NOT EXISTS FOR (s:CISighting) ON (s.source)",
    ),
    _schema(
        "relationship_sighting_key",
        "CREATE CONSTRAINT relationship_sighting_key IF NOT EXISTS FOR (s:RelationshipSighting) "
        "REQUIRE (s.from_id, s.type, s.to_id, s.source) IS UNIQUE",
    ),
    _schema(
        "relationship_sighting_source",
        "CREATE INDEX relationship_sighting_source IF NOT EXISTS "
        "FOR (s:RelationshipSighting) ON (s.source)",
    ),
    _schema(
        "source_sweep",
        "CREATE CONSTRAINT source_sweep IF NOT EXISTS "
        "FOR (w:SourceSweep) REQUIRE w.source IS UNIQUE",
    ),
    _schema(
        "history_seq",
        "CREATE CONSTRAINT history_seq IF NOT EXISTS FOR (h:HistoryEntry) REQUIRE h.seq IS UNIQUE",
    ),
    _schema(
        "history_ci", "CREATE INDEX history_ci IF NOT EXISTS FOR (h:HistoryEntry) ON (h.ci_id)"
    ),
    _schema(
        "history_other_ci",
        "CREATE INDEX history_other_ci IF NOT EXISTS FOR (h:HistoryEntry) ON (h.other_ci_id)",
    ),
    _schema(
        "conflict_id",
        "CREATE CONSTRAINT conflict_id IF NOT EXISTS FOR (x:Conflict) REQUIRE x.id IS UNIQUE",
    ),
    _schema(
        "sequence_name",
        "CREATE CONSTRAINT sequence_name IF NOT EXISTS FOR (s:Sequence) REQUIRE s.name IS UNIQUE",
    ),
    _schema(
        "write_lock_name",
        "CREATE CONSTRAINT write_lock_name IF NOT EXISTS "
        "FOR (l:WriteLock) REQUIRE l.name IS UNIQUE",
    ),
    _schema(
        "schema_version_name",
        "CREATE CONSTRAINT schema_version_name IF NOT EXISTS "
        "FOR (v:SchemaVersion) REQUIRE v.name IS UNIQUE",
    ),
]
for _type in RELATIONSHIP_TYPES:
    _lower = _type.lower()
    _SCHEMA_1.append(
        _schema(
            f"rel_{_lower}_key",
            f"CREATE CONSTRAINT rel_{_lower}_key IF NOT EXISTS "
            f"FOR ()-[r:{_type}]-() REQUIRE r.key IS UNIQUE",
        )
    )
    _SCHEMA_1.append(
        _schema(
            f"rel_{_lower}_change_seq",
            f"CREATE INDEX rel_{_lower}_change_seq IF NOT EXISTS "
            f"FOR ()-[r:{_type}]-() ON (r.change_seq)",
        )
    )


@dataclass(frozen=True)
class Migration:
    """One schema version: schema commands (each in its own transaction, as Neo4j
    requires), then idempotent data statements, each with its parameters."""

    version: int
    description: str
    schema: tuple[Statement, ...]
    data: tuple[tuple[Statement, Mapping[str, Any]], ...]


# The graph's migrations; `schema.MIGRATIONS` appends the desk's. Append new migrations;
# never edit a released one.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "configuration graph, identification, sightings, history, conflicts",
        tuple(_SCHEMA_1),
        (
            (CREATE_SEQUENCES, {"names": list(SEQUENCES)}),
            (CREATE_WRITE_LOCK, {"name": WRITE_LOCK_NAME}),
        ),
    ),
)

# -- units of work ---------------------------------------------------------------------

# The first statement of every unit of work: see ``Neo4jGraphStore.write``.
TAKE_WRITE_LOCK = _statement(
    "TAKE_WRITE_LOCK",
    """
    MATCH (l:WriteLock {name: $name})
    SET l.holder = $holder, l.acquired_at = datetime()
    RETURN l.name AS name
    """,
    "name",
    "holder",
)
READ_SEQUENCE = _statement(
    "READ_SEQUENCE", "MATCH (s:Sequence {name: $name}) RETURN s.value AS value", "name"
)
ADVANCE_SEQUENCE = _statement(
    "ADVANCE_SEQUENCE",
    "MATCH (s:Sequence {name: $name}) SET s.value = s.value + $count RETURN s.value AS value",
    "name",
    "count",
)
# Restores: a counter never goes back.
RAISE_SEQUENCE = _statement(
    "RAISE_SEQUENCE",
    """
    MATCH (s:Sequence {name: $name})
    SET s.value = CASE WHEN s.value < $value THEN $value ELSE s.value END
    RETURN s.value AS value
    """,
    "name",
    "value",
)

# -- CIs and identifiers ---------------------------------------------------------------

LOAD_CIS = _statement(
    "LOAD_CIS",
    f"UNWIND $ids AS id MATCH (c:CI {{id: id}}) RETURN {_CI_COLUMNS}",
    "ids",
)
CI_SUMMARIES = _statement(
    "CI_SUMMARIES",
    "UNWIND $ids AS id MATCH (c:CI {id: id}) RETURN c.id AS id, c.name AS name, "
    "c.attributes AS attributes",
    "ids",
)
FIND_CIS = _statement(
    "FIND_CIS",
    f"""
    MATCH (c:CI)
    WHERE c.id > $after
      AND ($ci_class IS NULL OR c.class = $ci_class)
      AND ($name_contains IS NULL OR toLower(c.name) CONTAINS toLower($name_contains))
      AND ($stale IS NULL OR c.stale = $stale)
      AND ($include_merged OR c.merged_into IS NULL)
      AND all(k IN keys($attributes) WHERE
              ($attributes[k] IS NULL AND c['{ATTRIBUTE_PREFIX}' + k] IS NULL)
              OR c['{ATTRIBUTE_PREFIX}' + k] = $attributes[k])
    WITH c ORDER BY c.id LIMIT $limit
    RETURN {_CI_COLUMNS}
    """,
    "after",
    "ci_class",
    "name_contains",
    "stale",
    "include_merged",
    "attributes",
    "limit",
)
# rows: [{props: <CI_PROPERTIES and attr_* projections>}], the times as ISO text
# (``records.time_text``) that the statement stores as DATETIMEs.
_CI_TIMES = (
    "c.created_at = datetime(row.props.created_at), c.updated_at = datetime(row.props.updated_at)"
)
INSERT_CIS = _statement(
    "INSERT_CIS", f"UNWIND $rows AS row CREATE (c:CI) SET c = row.props, {_CI_TIMES}", "rows"
)
# Replaces every property, so that projections of removed attributes go too.
UPDATE_CIS = _statement(
    "UPDATE_CIS",
    f"UNWIND $rows AS row MATCH (c:CI {{id: row.props.id}}) SET c = row.props, {_CI_TIMES}",
    "rows",
)
# rows: [{kind, value}]
LOOKUP_IDENTIFIERS = _statement(
    "LOOKUP_IDENTIFIERS",
    """
    UNWIND $rows AS row
    MATCH (i:Identifier {kind: row.kind, value: row.value})
    RETURN i.kind AS kind, i.value AS value, i.ci_id AS ci_id
    """,
    "rows",
)
# rows: [{kind, value, ci_id}]
CREATE_IDENTIFIERS = _statement(
    "CREATE_IDENTIFIERS",
    "UNWIND $rows AS row CREATE (:Identifier {kind: row.kind, value: row.value, ci_id: row.ci_id})",
    "rows",
)
DELETE_IDENTIFIERS = _statement(
    "DELETE_IDENTIFIERS",
    "UNWIND $rows AS row MATCH (i:Identifier {kind: row.kind, value: row.value}) DELETE i",
    "rows",
)

# -- source keys -----------------------------------------------------------------------

LOOKUP_KEYS = _statement(
    "LOOKUP_KEYS",
    """
    UNWIND $keys AS key
    MATCH (k:SourceKey {source: $source, key: key})
    RETURN k.key AS key, k.ci_id AS ci_id
    """,
    "source",
    "keys",
)
LOOKUP_KEYS_ANY_SOURCE = _statement(
    "LOOKUP_KEYS_ANY_SOURCE",
    "UNWIND $keys AS key MATCH (k:SourceKey {key: key}) RETURN k.key AS key, k.ci_id AS ci_id",
    "keys",
)
# rows: [{key, ci_id}]
SET_KEYS = _statement(
    "SET_KEYS",
    """
    UNWIND $rows AS row
    MERGE (k:SourceKey {source: $source, key: row.key})
    SET k.ci_id = row.ci_id
    """,
    "source",
    "rows",
)
MOVE_KEYS = _statement(
    "MOVE_KEYS", "MATCH (k:SourceKey {ci_id: $from_ci}) SET k.ci_id = $to_ci", "from_ci", "to_ci"
)
# Where both CIs have a sighting by one source, the survivor's is kept ...
DROP_SHADOWED_SIGHTINGS = _statement(
    "DROP_SHADOWED_SIGHTINGS",
    """
    MATCH (s:CISighting {ci_id: $from_ci})
    WHERE EXISTS { MATCH (:CISighting {ci_id: $to_ci, source: s.source}) }
    DELETE s
    """,
    "from_ci",
    "to_ci",
)
# ... and the others move.
MOVE_SIGHTINGS = _statement(
    "MOVE_SIGHTINGS",
    "MATCH (s:CISighting {ci_id: $from_ci}) SET s.ci_id = $to_ci",
    "from_ci",
    "to_ci",
)

# -- relationships ---------------------------------------------------------------------

# rows: [{from_id, to_id, key, attributes, created_at, updated_at, removed, stale}], the
# times as ISO text.
# Insert or update; ``created_at`` is kept from the first save, as in SQLite. Returns how
# many rows found both ends, so that a missing CI is an error rather than a silent skip.
SAVE_RELATIONSHIPS = _per_type(
    "SAVE_RELATIONSHIPS",
    """
    UNWIND $rows AS row
    MATCH (a:CI {id: row.from_id})
    MATCH (b:CI {id: row.to_id})
    MERGE (a)-[r:$$TYPE$$]->(b)
    ON CREATE SET r.created_at = datetime(row.created_at)
    SET r.key = row.key, r.attributes = row.attributes, r.updated_at = datetime(row.updated_at),
        r.removed = row.removed, r.stale = row.stale, r.change_seq = $change_seq
    RETURN count(r) AS saved
    """,
    "rows",
    "change_seq",
)
# rows: [{from_id, type, to_id}]
LOAD_RELATIONSHIPS = _statement(
    "LOAD_RELATIONSHIPS",
    f"""
    UNWIND $rows AS row
    MATCH (a:CI {{id: row.from_id}})-[r:{_ANY_TYPE}]->(b:CI {{id: row.to_id}})
    WHERE type(r) = row.type
    RETURN {_REL_COLUMNS}
    """,
    "rows",
)
# Relationships leaving ($outgoing) and/or entering ($incoming) the CIs, each once.
RELATIONSHIPS = _statement(
    "RELATIONSHIPS",
    f"""
    CALL () {{
        MATCH (a:CI)-[r:{_ANY_TYPE}]->(b:CI) WHERE $outgoing AND a.id IN $ids
        RETURN a, r, b
      UNION
        MATCH (a:CI)-[r:{_ANY_TYPE}]->(b:CI) WHERE $incoming AND b.id IN $ids
        RETURN a, r, b
    }}
    WITH a, r, b
    WHERE ($types IS NULL OR type(r) IN $types) AND ($include_removed OR NOT r.removed)
    RETURN {_REL_COLUMNS}
    ORDER BY from_id, type, to_id
    """,
    "ids",
    "outgoing",
    "incoming",
    "types",
    "include_removed",
)

# -- sightings and staleness -----------------------------------------------------------

# Returns, per CI, whether this source had it stale before.
RECORD_CI_SIGHTINGS = _statement(
    "RECORD_CI_SIGHTINGS",
    """
    UNWIND $ids AS id
    MERGE (s:CISighting {ci_id: id, source: $source})
    ON CREATE SET s.first_seen = $at, s.stale = false
    WITH s, s.stale AS was_stale
    SET s.last_seen = $at, s.last_run = $run_id, s.missed_runs = 0, s.stale = false
    RETURN s.ci_id AS ci_id, was_stale
    """,
    "ids",
    "source",
    "at",
    "run_id",
)
# rows: [{from_id, type, to_id}]
RECORD_RELATIONSHIP_SIGHTINGS = _statement(
    "RECORD_RELATIONSHIP_SIGHTINGS",
    """
    UNWIND $rows AS row
    MERGE (s:RelationshipSighting
           {from_id: row.from_id, type: row.type, to_id: row.to_id, source: $source})
    ON CREATE SET s.first_seen = $at, s.stale = false
    WITH s, s.stale AS was_stale
    SET s.last_seen = $at, s.last_run = $run_id, s.missed_runs = 0, s.stale = false
    RETURN s.from_id AS from_id, s.type AS type, s.to_id AS to_id, was_stale
    """,
    "rows",
    "source",
    "at",
    "run_id",
)
# The first sightings of items that have none (``record_first_sightings``): created
# without the MERGE's lookup, which costs as much again; the uniqueness constraints refuse
# an item that does have one.
FIRST_CI_SIGHTINGS = _statement(
    "FIRST_CI_SIGHTINGS",
    """
    UNWIND $ids AS id
    CREATE (:CISighting {ci_id: id, source: $source, first_seen: $at, last_seen: $at,
                         last_run: $run_id, missed_runs: 0, stale: false})
    """,
    "ids",
    "source",
    "at",
    "run_id",
)
# rows: [{from_id, type, to_id}]
FIRST_RELATIONSHIP_SIGHTINGS = _statement(
    "FIRST_RELATIONSHIP_SIGHTINGS",
    """
    UNWIND $rows AS row
    CREATE (:RelationshipSighting {from_id: row.from_id, type: row.type, to_id: row.to_id,
                                   source: $source, first_seen: $at, last_seen: $at,
                                   last_run: $run_id, missed_runs: 0, stale: false})
    """,
    "rows",
    "source",
    "at",
    "run_id",
)
# Remembers the run a source sweeps, whether its sweep is finished and its number;
# returns the run before, whether that one was finished, and the number this sweep marks
# its items with. The same run again is a replay when its sweep finished, else the next
# part of it.
CLAIM_SWEEP = _statement(
    "CLAIM_SWEEP",
    """
    MERGE (w:SourceSweep {source: $source})
    WITH w, w.run_id AS previous, coalesce(w.done, true) AS previous_done,
         coalesce(w.sweep, 0) AS number
    WITH w, previous, previous_done, number, coalesce(previous = $run_id, false) AS again
    SET w.run_id = $run_id,
        w.done = CASE WHEN again THEN previous_done ELSE false END,
        w.sweep = CASE WHEN again THEN number ELSE number + 1 END
    RETURN previous, previous_done, w.sweep AS sweep
    """,
    "source",
    "run_id",
)
FINISH_SWEEP = _statement(
    "FINISH_SWEEP", "MATCH (w:SourceSweep {source: $source}) SET w.done = true", "source"
)
# One missed run for at most $limit of the items the source saw before but neither in
# this run nor in an earlier part of this sweep (``swept``, the sweep's number); returns
# them, with whether they crossed the threshold now.
SWEEP_CI_SIGHTINGS = _statement(
    "SWEEP_CI_SIGHTINGS",
    """
    MATCH (s:CISighting {source: $source})
    WHERE (s.last_run IS NULL OR s.last_run <> $run_id)
      AND (s.swept IS NULL OR s.swept <> $sweep)
    WITH s LIMIT $limit
    WITH s, s.missed_runs + 1 AS missed
    SET s.missed_runs = missed, s.stale = missed >= $stale_after, s.swept = $sweep
    RETURN s.ci_id AS ci_id, missed = $stale_after AS newly_stale
    """,
    "source",
    "run_id",
    "stale_after",
    "sweep",
    "limit",
)
SWEEP_RELATIONSHIP_SIGHTINGS = _statement(
    "SWEEP_RELATIONSHIP_SIGHTINGS",
    """
    MATCH (s:RelationshipSighting {source: $source})
    WHERE (s.last_run IS NULL OR s.last_run <> $run_id)
      AND (s.swept IS NULL OR s.swept <> $sweep)
    WITH s LIMIT $limit
    WITH s, s.missed_runs + 1 AS missed
    SET s.missed_runs = missed, s.stale = missed >= $stale_after, s.swept = $sweep
    RETURN s.from_id AS from_id, s.type AS type, s.to_id AS to_id,
           missed = $stale_after AS newly_stale
    """,
    "source",
    "run_id",
    "stale_after",
    "sweep",
    "limit",
)
# Sightings of sources that stopped reporting: stale by age, not by missed runs, at most
# $limit of them a statement (an expiry of 300,000 sightings in parts of bounded size).
EXPIRE_CI_SIGHTINGS = _statement(
    "EXPIRE_CI_SIGHTINGS",
    """
    MATCH (s:CISighting)
    WHERE NOT s.stale AND s.last_seen < $before
    WITH s LIMIT $limit
    SET s.stale = true
    RETURN s.ci_id AS ci_id
    """,
    "before",
    "limit",
)
EXPIRE_RELATIONSHIP_SIGHTINGS = _statement(
    "EXPIRE_RELATIONSHIP_SIGHTINGS",
    """
    MATCH (s:RelationshipSighting)
    WHERE NOT s.stale AND s.last_seen < $before
    WITH s LIMIT $limit
    SET s.stale = true
    RETURN s.from_id AS from_id, s.type AS type, s.to_id AS to_id
    """,
    "before",
    "limit",
)
# Of these CIs, those no source still vouches for.
STALE_EVERYWHERE_CIS = _statement(
    "STALE_EVERYWHERE_CIS",
    """
    UNWIND $ids AS id
    WITH id WHERE NOT EXISTS { MATCH (s:CISighting {ci_id: id}) WHERE NOT s.stale }
    RETURN id AS ci_id
    """,
    "ids",
)
STALE_EVERYWHERE_RELATIONSHIPS = _statement(
    "STALE_EVERYWHERE_RELATIONSHIPS",
    """
    UNWIND $rows AS row
    WITH row WHERE NOT EXISTS {
        MATCH (s:RelationshipSighting {from_id: row.from_id, type: row.type, to_id: row.to_id})
        WHERE NOT s.stale
    }
    RETURN row.from_id AS from_id, row.type AS type, row.to_id AS to_id
    """,
    "rows",
)
SIGHTINGS = _statement(
    "SIGHTINGS",
    f"MATCH (s:CISighting {{ci_id: $ci_id}}) RETURN {_SIGHTING_COLUMNS} ORDER BY source",
    "ci_id",
)

# -- history and conflicts -------------------------------------------------------------

# rows: [{seq, at, ci_id, kind, field, old, new, source, actor, run_id, other_ci_id}];
# ``at`` is ISO text, ``old`` and ``new`` are JSON text, absent values are null (not stored).
CREATE_HISTORY = _statement(
    "CREATE_HISTORY",
    """
    UNWIND $rows AS row
    CREATE (:HistoryEntry {seq: row.seq, at: datetime(row.at), ci_id: row.ci_id, kind: row.kind,
                           field: row.field, old: row.old, new: row.new, source: row.source,
                           actor: row.actor, run_id: row.run_id, other_ci_id: row.other_ci_id})
    """,
    "rows",
)
# An item's timeline in one query: entries about it or naming it as the other end.
HISTORY = _statement(
    "HISTORY",
    f"""
    CALL () {{
        MATCH (h:HistoryEntry) WHERE h.ci_id IN $ids RETURN h
      UNION
        MATCH (h:HistoryEntry) WHERE h.other_ci_id IN $ids RETURN h
    }}
    WITH h
    WHERE ($since IS NULL OR h.at >= $since) AND ($until IS NULL OR h.at <= $until)
    RETURN {_HISTORY_COLUMNS}
    ORDER BY seq
    """,
    "ids",
    "since",
    "until",
)
# One level of merges; the adapter repeats it for merges of merges.
MERGED_INTO = _statement(
    "MERGED_INTO",
    "UNWIND $ids AS id MATCH (c:CI {merged_into: id}) RETURN c.id AS id",
    "ids",
)
# rows: [{id, detected_at, kind, source, item, identifier_kind, identifier_value, ci_id,
# other_ci_id, detail, run_id}]
CREATE_CONFLICTS = _statement(
    "CREATE_CONFLICTS",
    """
    UNWIND $rows AS row
    CREATE (:Conflict {id: row.id, detected_at: row.detected_at, kind: row.kind,
                       source: row.source, item: row.item, identifier_kind: row.identifier_kind,
                       identifier_value: row.identifier_value, ci_id: row.ci_id,
                       other_ci_id: row.other_ci_id, detail: row.detail, run_id: row.run_id})
    """,
    "rows",
)
CONFLICTS = _statement(
    "CONFLICTS",
    f"MATCH (x:Conflict) RETURN {_CONFLICT_COLUMNS} ORDER BY id DESC LIMIT $limit",
    "limit",
)

# -- projections for impact analysis ---------------------------------------------------

DELTA_CIS = _statement(
    "DELTA_CIS",
    """
    MATCH (c:CI) WHERE c.change_seq > $since_seq
    RETURN c.id AS id, c.class AS class, c.merged_into AS merged_into,
           c.attributes AS attributes
    """,
    "since_seq",
)
# One index seek per type (a relationship index belongs to one type).
DELTA_RELATIONSHIPS = _statement(
    "DELTA_RELATIONSHIPS",
    "CALL () { "
    + " UNION ALL ".join(
        f"MATCH (a:CI)-[r:{t}]->(b:CI) WHERE r.change_seq > $since_seq "
        "RETURN a.id AS from_id, type(r) AS type, b.id AS to_id, "
        "r.attributes AS attributes, r.removed AS removed"
        for t in RELATIONSHIP_TYPES
    )
    + " } RETURN from_id, type, to_id, attributes, removed",
    "since_seq",
)
COUNT_CIS = _statement("COUNT_CIS", "MATCH (c:CI) WHERE c.merged_into IS NULL RETURN count(c) AS n")
COUNT_RELATIONSHIPS = _statement(
    "COUNT_RELATIONSHIPS",
    f"MATCH (:CI)-[r:{_ANY_TYPE}]->(:CI) WHERE NOT r.removed RETURN count(r) AS n",
)
COUNT_HISTORY = _statement("COUNT_HISTORY", "MATCH (h:HistoryEntry) RETURN count(h) AS n")
COUNT_CONFLICTS = _statement("COUNT_CONFLICTS", "MATCH (x:Conflict) RETURN count(x) AS n")

# -- export (inside a unit holding the write lock, so a consistent snapshot) -----------

DUMP_CIS = _statement(
    "DUMP_CIS",
    f"MATCH (c:CI) WHERE c.id IS NOT NULL WITH c ORDER BY c.id RETURN {_CI_COLUMNS}",
)
# Ordered by (from, type, to) without sorting the whole graph: CIs in index order, and
# each CI's outgoing relationships sorted on their own.
DUMP_RELATIONSHIPS = _statement(
    "DUMP_RELATIONSHIPS",
    f"""
    MATCH (a:CI) WHERE a.id IS NOT NULL
    WITH a ORDER BY a.id
    CALL (a) {{
        MATCH (a)-[r:{_ANY_TYPE}]->(b:CI)
        RETURN r, b ORDER BY type(r), b.id
    }}
    RETURN {_REL_COLUMNS}
    """,
)
# Bookkeeping records stream in storage order: sorting them would hold them all in memory.
DUMP_SOURCE_KEYS = _statement(
    "DUMP_SOURCE_KEYS",
    "MATCH (k:SourceKey) RETURN k.source AS source, k.key AS key, k.ci_id AS ci_id",
)
DUMP_CI_SIGHTINGS = _statement(
    "DUMP_CI_SIGHTINGS",
    f"MATCH (s:CISighting) RETURN s.ci_id AS ci_id, {_SIGHTING_COLUMNS}",
)
DUMP_RELATIONSHIP_SIGHTINGS = _statement(
    "DUMP_RELATIONSHIP_SIGHTINGS",
    f"""
    MATCH (s:RelationshipSighting)
    RETURN s.from_id AS from_id, s.type AS type, s.to_id AS to_id, {_SIGHTING_COLUMNS}
    """,
)
DUMP_SOURCE_SWEEPS = _statement(
    "DUMP_SOURCE_SWEEPS", "MATCH (w:SourceSweep) RETURN w.source AS source, w.run_id AS run_id"
)
DUMP_HISTORY = _statement(
    "DUMP_HISTORY",
    f"MATCH (h:HistoryEntry) WHERE h.seq IS NOT NULL RETURN {_HISTORY_COLUMNS} ORDER BY seq",
)
DUMP_CONFLICTS = _statement(
    "DUMP_CONFLICTS",
    f"MATCH (x:Conflict) WHERE x.id IS NOT NULL RETURN {_CONFLICT_COLUMNS} ORDER BY id",
)

# -- restore (an empty store; ids, seqs and times are kept) ----------------------------

# rows: [{ci_id, source, first_seen, last_seen, last_run, missed_runs, stale}], the times
# as ISO text
RESTORE_CI_SIGHTINGS = _statement(
    "RESTORE_CI_SIGHTINGS",
    """
    UNWIND $rows AS row
    CREATE (:CISighting {ci_id: row.ci_id, source: row.source,
                         first_seen: datetime(row.first_seen),
                         last_seen: datetime(row.last_seen), last_run: row.last_run,
                         missed_runs: row.missed_runs, stale: row.stale})
    """,
    "rows",
)
# rows: as above with from_id, type, to_id instead of ci_id
RESTORE_RELATIONSHIP_SIGHTINGS = _statement(
    "RESTORE_RELATIONSHIP_SIGHTINGS",
    """
    UNWIND $rows AS row
    CREATE (:RelationshipSighting {from_id: row.from_id, type: row.type, to_id: row.to_id,
                                   source: row.source, first_seen: datetime(row.first_seen),
                                   last_seen: datetime(row.last_seen), last_run: row.last_run,
                                   missed_runs: row.missed_runs, stale: row.stale})
    """,
    "rows",
)
# rows: [{source, run_id}]
RESTORE_SOURCE_SWEEPS = _statement(
    "RESTORE_SOURCE_SWEEPS",
    "UNWIND $rows AS row MERGE (w:SourceSweep {source: row.source}) SET w.run_id = row.run_id",
    "rows",
)

# -- administration --------------------------------------------------------------------

# Empties the database, a batch per call (tests and `--from-export` onto a fresh database
# never need it; the contract tests do).
DELETE_BATCH = _statement(
    "DELETE_BATCH",
    "MATCH (n) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS deleted",
    "limit",
)
# The same, keeping the schema version (the constraints and indexes stay in any case).
DELETE_DATA_BATCH = _statement(
    "DELETE_DATA_BATCH",
    """
    MATCH (n) WHERE NOT n:SchemaVersion
    WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS deleted
    """,
    "limit",
)
