"""The Cypher of changes with their approvals, tasks and CIs, freeze windows, SLA clocks
and escalations (a catalogue: see ``catalogue.py``).

The nodes are the rows of the SQLite tables (``storage/sqlite/change_rows.py``,
``sla_rows.py``), property for column, so that the SQLite row codecs read and write them:

* ``(:Change)`` a ``change_request`` row, unique ``id``, plus ``ci_ids``: the change's CIs
  in their order (the ``change_ci`` rows), and ``(:Change)-[:CHANGES]->(:CI)`` to those of
  them that exist, replaced whenever the change is saved. The list is the truth (a change
  may name a CI the graph does not hold); the relationships are the graph's view of it.
* ``(:FreezeWindow)`` a ``freeze_window`` row (its ``ci_ids`` the same JSON text).
* ``(:SlaRecord)`` a ``ticket_sla`` row, unique ``ticket_id``; ``(:SlaNone)`` a
  ``ticket_sla_none`` row; ``(:SlaEscalation)`` an ``sla_escalation`` row, unique
  (ticket_id, clock, level): claiming a level is a ``MERGE`` on that key.
* ``sla_due_at`` on the ``(:Incident)`` node (part T's), mirroring the record's due time
  as ``incident.sla_due_at`` does; the clocks read ``(:WorklogEntry)`` nodes (part T's).
"""

from __future__ import annotations

from typing import Any

from servicegraph.storage.neo4j.catalogue import Catalogue, Statement
from servicegraph.storage.sqlite.change_rows import CHANGE_COLUMNS, FREEZE_COLUMNS
from servicegraph.storage.sqlite.sla_rows import SLA_COLUMNS
from servicegraph.ticketing.lifecycle import ACTIVE_STATUSES


def _names(columns: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in columns.split(","))


# The properties of each node, in the order of the SQLite codecs' row tuples.
CHANGE_PROPERTIES = _names(CHANGE_COLUMNS)
FREEZE_PROPERTIES = _names(FREEZE_COLUMNS)
SLA_PROPERTIES = _names(SLA_COLUMNS)
CHANGE_CI_IDS = "ci_ids"  # the Change property holding the change_ci rows, in order
# The worklog columns the clocks read (part T's WorklogEntry nodes).
CLOCK_WORKLOG_PROPERTIES = ("seq", "ticket_id", "at", "kind", "field", "old_value", "new_value")

LABELS: tuple[str, ...] = (
    "Change",
    "CI",
    "FreezeWindow",
    "SlaRecord",
    "SlaNone",
    "SlaEscalation",
    "Incident",
    "WorklogEntry",
)
RELATIONSHIP_TYPES: tuple[str, ...] = ("CHANGES",)
PROPERTY_KEYS: tuple[str, ...] = tuple(
    sorted(
        {
            *CHANGE_PROPERTIES,
            CHANGE_CI_IDS,
            *FREEZE_PROPERTIES,
            *SLA_PROPERTIES,
            *CLOCK_WORKLOG_PROPERTIES,
            # SlaNone, SlaEscalation
            "config",
            "clock",
            "level",
            "fired_at",
            # Incident (part T's node): what the SLA queries read and set
            "status",
            "number",
            "sla_due_at",
            # row maps only
            "due_at",
        }
    )
)
FUNCTIONS: tuple[str, ...] = ("coalesce", "count")
PARAMETERS: dict[str, Any] = {
    "after_id": "",
    "after_number": 0,
    "assignee": None,
    "ci_ids": None,
    "clock": "response",
    "config": "v1",
    "end_us": 0,
    "fired_at": 0,
    "id": "frz-0",
    "ids": [],
    "level": 1,
    "limit": 100,
    "now_us": 0,
    "rows": [],
    "start_us": 0,
    "status": None,
    "ticket_id": "inc-0",
}

CATALOGUE = Catalogue(
    "changes",
    labels=LABELS,
    relationship_types=RELATIONSHIP_TYPES,
    property_keys=PROPERTY_KEYS,
    parameters=PARAMETERS,
    functions=FUNCTIONS,
)
_statement = CATALOGUE.statement


def _columns(variable: str, names: tuple[str, ...]) -> str:
    return ", ".join(f"{variable}.{name} AS {name}" for name in names)


_CHANGE = _columns("c", (*CHANGE_PROPERTIES, CHANGE_CI_IDS))
_FREEZE = _columns("w", FREEZE_PROPERTIES)
_SLA = _columns("s", SLA_PROPERTIES)

# -- changes ---------------------------------------------------------------------------

# rows: [{<CHANGE_PROPERTIES>, ci_ids}]. Every property is replaced (a cleared field
# goes), and the CHANGES relationships follow ``ci_ids``: no CI node, no relationship.
SAVE_CHANGES = _statement(
    "SAVE_CHANGES",
    """
    UNWIND $rows AS row
    MERGE (c:Change {id: row.id})
    SET c = row
    WITH c
    CALL (c) {
        MATCH (c)-[old:CHANGES]->()
        DELETE old
    }
    CALL (c) {
        UNWIND c.ci_ids AS ci_id
        MATCH (ci:CI {id: ci_id})
        MERGE (c)-[:CHANGES]->(ci)
    }
    """,
    "rows",
)
CHANGES_BY_ID = _statement(
    "CHANGES_BY_ID",
    f"UNWIND $ids AS id MATCH (c:Change {{id: id}}) RETURN {_CHANGE}",
    "ids",
)
# As SQLite's ``_TOUCHING``: every implementing change, and those whose planned or actual
# window overlaps [start, end) (half-open; a window without its end is none), one index
# seek per way (change_status, change_planned_end, change_actual_end).
CHANGES_TOUCHING = _statement(
    "CHANGES_TOUCHING",
    f"""
    CALL () {{
        MATCH (c:Change {{status: 'implementing'}}) RETURN c
      UNION
        MATCH (c:Change) WHERE c.planned_end > $start_us AND c.planned_start < $end_us
        RETURN c
      UNION
        MATCH (c:Change) WHERE c.actual_end > $start_us AND c.actual_start < $end_us
        RETURN c
    }}
    WITH c ORDER BY c.number
    RETURN {_CHANGE}
    """,
    "start_us",
    "end_us",
)
# Newest first: the number index read backwards, until ``$limit`` changes pass the filters
# (as SQLite walks its unique index on the number). A CI filter reads ``ci_ids``, the
# truth, which may name CIs the graph does not hold.
FIND_CHANGES = _statement(
    "FIND_CHANGES",
    f"""
    MATCH (c:Change)
    WHERE c.number IS NOT NULL
      AND ($status IS NULL OR c.status = $status)
      AND ($assignee IS NULL OR c.assignee = $assignee)
      AND ($ci_ids IS NULL OR any(ci_id IN c.ci_ids WHERE ci_id IN $ci_ids))
    WITH c ORDER BY c.number DESC LIMIT $limit
    RETURN {_CHANGE}
    """,
    "status",
    "assignee",
    "ci_ids",
    "limit",
)
# The export, a page at a time in number order.
DUMP_CHANGES = _statement(
    "DUMP_CHANGES",
    f"""
    MATCH (c:Change) WHERE c.number > $after_number
    WITH c ORDER BY c.number LIMIT $limit
    RETURN {_CHANGE}
    """,
    "after_number",
    "limit",
)

# The highest number: the index read backwards, one entry (``next_change_number``).
LAST_CHANGE_NUMBER = _statement(
    "LAST_CHANGE_NUMBER",
    """
    MATCH (c:Change) WHERE c.number IS NOT NULL
    WITH c ORDER BY c.number DESC LIMIT 1
    RETURN c.number AS number
    """,
)
COUNT_CHANGES = _statement("COUNT_CHANGES", "MATCH (c:Change) RETURN count(c) AS n")

# -- freeze windows --------------------------------------------------------------------

# rows: [{<FREEZE_PROPERTIES>}]
SAVE_FREEZE_WINDOWS = _statement(
    "SAVE_FREEZE_WINDOWS",
    "UNWIND $rows AS row MERGE (w:FreezeWindow {id: row.id}) SET w = row",
    "rows",
)
FREEZE_WINDOWS = _statement(
    "FREEZE_WINDOWS",
    f"""
    MATCH (w:FreezeWindow) WHERE w.ends_at > $start_us AND w.starts_at < $end_us
    WITH w ORDER BY w.starts_at, w.id
    RETURN {_FREEZE}
    """,
    "start_us",
    "end_us",
)
DELETE_FREEZE_WINDOW = _statement(
    "DELETE_FREEZE_WINDOW",
    "MATCH (w:FreezeWindow {id: $id}) DELETE w RETURN count(*) AS deleted",
    "id",
)
DUMP_FREEZE_WINDOWS = _statement(
    "DUMP_FREEZE_WINDOWS",
    f"""
    MATCH (w:FreezeWindow) WHERE w.id > $after_id
    WITH w ORDER BY w.id LIMIT $limit
    RETURN {_FREEZE}
    """,
    "after_id",
    "limit",
)

COUNT_FREEZE_WINDOWS = _statement(
    "COUNT_FREEZE_WINDOWS", "MATCH (w:FreezeWindow) RETURN count(w) AS n"
)

# -- SLA clocks ------------------------------------------------------------------------

LOAD_SLA = _statement(
    "LOAD_SLA",
    f"UNWIND $ids AS id MATCH (s:SlaRecord {{ticket_id: id}}) RETURN {_SLA}",
    "ids",
)
# rows: [{<SLA_PROPERTIES>}]; a ticket with clocks is no longer one no policy covers.
SAVE_SLA = _statement(
    "SAVE_SLA",
    """
    UNWIND $rows AS row
    MERGE (s:SlaRecord {ticket_id: row.ticket_id})
    SET s = row
    WITH s
    CALL (s) {
        MATCH (n:SlaNone {ticket_id: s.ticket_id})
        DELETE n
    }
    """,
    "rows",
)
# rows: [{id, due_at}]; a null due time removes the property (SQLite's NULL).
SET_SLA_DUE = _statement(
    "SET_SLA_DUE",
    "UNWIND $rows AS row MATCH (i:Incident {id: row.id}) SET i.sla_due_at = row.due_at",
    "rows",
)
# Tickets no policy covers under $config: marked so, their clocks and due time gone.
DROP_SLA = _statement(
    "DROP_SLA",
    """
    UNWIND $ids AS id
    MERGE (n:SlaNone {ticket_id: id})
    SET n.config = $config
    WITH id
    CALL (id) {
        MATCH (s:SlaRecord {ticket_id: id})
        DELETE s
    }
    CALL (id) {
        MATCH (i:Incident {id: id})
        REMOVE i.sla_due_at
    }
    """,
    "ids",
    "config",
)
LOAD_FIRED = _statement(
    "LOAD_FIRED",
    """
    UNWIND $ids AS id
    MATCH (e:SlaEscalation {ticket_id: id})
    RETURN e.ticket_id AS ticket_id, e.clock AS clock, e.level AS level
    """,
    "ids",
)
# Once per (ticket, clock, level): the uniqueness constraint makes the MERGE atomic even
# without the desk lock; whether it created the node says whether this call claimed it.
CLAIM_LEVEL = _statement(
    "CLAIM_LEVEL",
    """
    MERGE (e:SlaEscalation {ticket_id: $ticket_id, clock: $clock, level: $level})
    ON CREATE SET e.fired_at = $fired_at
    """,
    "ticket_id",
    "clock",
    "level",
    "fired_at",
)
# The entries the clocks read (status steps and pending reasons), as SQLite's
# ``clock_worklog`` selects them.
CLOCK_WORKLOG = _statement(
    "CLOCK_WORKLOG",
    f"""
    UNWIND $ids AS id
    MATCH (w:WorklogEntry {{ticket_id: id}})
    WHERE w.kind = 'transition' OR w.field = 'pending_reason'
    WITH w ORDER BY w.seq
    RETURN {_columns("w", CLOCK_WORKLOG_PROPERTIES)}
    """,
    "ids",
)
SLA_DUE = _statement(
    "SLA_DUE",
    """
    MATCH (s:SlaRecord) WHERE s.next_check_at <= $now_us
    WITH s ORDER BY s.next_check_at, s.ticket_id LIMIT $limit
    RETURN s.ticket_id AS ticket_id
    """,
    "now_us",
    "limit",
)
# Active tickets whose clocks (or whose mark that no policy covers them) were evaluated
# under another configuration than $config, or never: what a configuration change leaves
# to evaluate again.
_ACTIVE = "[" + ", ".join(f"'{status}'" for status in ACTIVE_STATUSES) + "]"
SLA_STALE = _statement(
    "SLA_STALE",
    f"""
    MATCH (i:Incident) WHERE i.status IN {_ACTIVE}
    OPTIONAL MATCH (s:SlaRecord {{ticket_id: i.id}})
    OPTIONAL MATCH (n:SlaNone {{ticket_id: i.id}})
    WITH i, coalesce(s.config, n.config, '') AS evaluated
    WHERE evaluated <> $config
    WITH i ORDER BY i.number LIMIT $limit
    RETURN i.id AS id
    """,
    "config",
    "limit",
)


# Constraints and indexes (each CREATE ... IF NOT EXISTS), the write locks and the
# counters this part needs; ``schema.py`` creates them all in the desk's migration.
def _schema(name: str, text: str) -> Statement:
    return _statement(f"SCHEMA[{name}]", text)


SCHEMA: tuple[Statement, ...] = (
    _schema(
        "change_id",
        "CREATE CONSTRAINT change_id IF NOT EXISTS FOR (c:Change) REQUIRE c.id IS UNIQUE",
    ),
    # find_changes' order (read backwards) and the export's pages
    _schema(
        "change_number", "CREATE INDEX change_number IF NOT EXISTS FOR (c:Change) ON (c.number)"
    ),
    # changes_touching's three ways (SQLite: change_request_status, _window, _ended)
    _schema(
        "change_status", "CREATE INDEX change_status IF NOT EXISTS FOR (c:Change) ON (c.status)"
    ),
    _schema(
        "change_planned_end",
        "CREATE INDEX change_planned_end IF NOT EXISTS FOR (c:Change) ON (c.planned_end)",
    ),
    _schema(
        "change_actual_end",
        "CREATE INDEX change_actual_end IF NOT EXISTS FOR (c:Change) ON (c.actual_end)",
    ),
    _schema(
        "freeze_window_id",
        "CREATE CONSTRAINT freeze_window_id IF NOT EXISTS "
        "FOR (w:FreezeWindow) REQUIRE w.id IS UNIQUE",
    ),
    _schema(
        "freeze_window_ends",
        "CREATE INDEX freeze_window_ends IF NOT EXISTS FOR (w:FreezeWindow) ON (w.ends_at)",
    ),
    _schema(
        "sla_record_ticket",
        "CREATE CONSTRAINT sla_record_ticket IF NOT EXISTS "
        "FOR (s:SlaRecord) REQUIRE s.ticket_id IS UNIQUE",
    ),
    # sla_due (SQLite: ticket_sla_next)
    _schema(
        "sla_record_next_check",
        "CREATE INDEX sla_record_next_check IF NOT EXISTS FOR (s:SlaRecord) ON (s.next_check_at)",
    ),
    _schema(
        "sla_none_ticket",
        "CREATE CONSTRAINT sla_none_ticket IF NOT EXISTS "
        "FOR (n:SlaNone) REQUIRE n.ticket_id IS UNIQUE",
    ),
    _schema(
        "sla_escalation_key",
        "CREATE CONSTRAINT sla_escalation_key IF NOT EXISTS "
        "FOR (e:SlaEscalation) REQUIRE (e.ticket_id, e.clock, e.level) IS UNIQUE",
    ),
    # select_fired reads by ticket alone, which the composite index does not serve
    _schema(
        "sla_escalation_ticket",
        "CREATE INDEX sla_escalation_ticket IF NOT EXISTS FOR (e:SlaEscalation) ON (e.ticket_id)",
    ),
)
LOCKS: tuple[str, ...] = ()
SEQUENCES: tuple[str, ...] = ()
