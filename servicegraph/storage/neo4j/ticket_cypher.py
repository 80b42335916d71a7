"""The Cypher of alerts, incidents, service requests, problems, their worklog, links and
alert cycles, as nodes linked to the CIs they concern (a catalogue: see
``catalogue.py``).

Each node is a row of the SQLite table of the same records (``storage/sqlite/
incident_rows.py``), property for column, so that the SQLite codecs read and write them:

* ``(:Alert)`` an ``alert`` row, unique ``fingerprint``; ``-[:RAISED_ON]->(:CI)`` for its
  ``ci_id`` and ``-[:GROUPED_IN]->(:Incident)`` for its ``incident_id``.
* ``(:Incident)`` an ``incident`` row, unique ``id`` and ``number``, with
  ``root_signature`` (the root alert's ``source/name``, set by whichever of the two is
  saved last, as SQLite files it), ``sla_due_at`` (part C's ``sla_nodes`` keep it) and
  ``ci_ids``: the ``ticket_ci`` rows, the CIs people named (``affected_ci_ids``) as a
  list, absent when there are none. Service requests carry the extra label ``:ServiceRequest``.
  ``-[:AFFECTS]->(:CI)`` for each affected CI and the root, ``-[:ROOT_CAUSE]->(:CI)`` for
  the root, ``-[:INSTANCE_OF {problem_id, incident_id, linked_at}]->(:Problem)`` for each
  ``problem_incident`` row.
* ``(:Problem)`` a ``problem`` row, ``-[:ROOT_CAUSE]->(:CI)`` for its root CI.
* ``(:WorklogEntry)`` a ``worklog`` row, unique ``seq``, ``-[:LOGGED_ON]->`` its ticket.
* ``(:TicketLink)`` a ``ticket_link`` row, ``(:AlertCycle)`` an ``alert_cycle`` row.

The properties are the truth: a relationship exists only where the CI (or ticket) node
does, and is replaced whenever the record is written; the queries read the properties,
so that a ticket on a CI the graph does not hold (yet) is found all the same.

Queues: Neo4j has no partial index, so the queue indexes hold every ticket (SQLite's hold
the active ones); a listing anchored on a group or an agent seeks that index's first
property, and the page's order is the index's (``_listing``).
"""

from __future__ import annotations

from typing import Any

from servicegraph.storage.neo4j.catalogue import Catalogue, Statement
from servicegraph.storage.sqlite.incident_rows import (
    ALERT_COLUMNS,
    INCIDENT_COLUMNS,
    PEOPLE_COLUMNS,
    PROBLEM_COLUMNS,
)
from servicegraph.ticketing.lifecycle import ACTIVE_STATUSES
from servicegraph.ticketing.ports import NO_DUE


def _names(columns: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in columns.split(","))


# The properties of each node, in the order of the SQLite codecs' row tuples.
ALERT_PROPERTIES = _names(ALERT_COLUMNS)
INCIDENT_PROPERTIES = _names(INCIDENT_COLUMNS)
INCIDENT_FIELDS = (*INCIDENT_PROPERTIES, "sla_due_at")  # what reads return (``to_incident``)
PEOPLE_PROPERTIES = _names(PEOPLE_COLUMNS)
PROBLEM_PROPERTIES = _names(PROBLEM_COLUMNS)
WORKLOG_PROPERTIES = (
    "seq",
    "ticket_id",
    "at",
    "actor",
    "kind",
    "text",
    "field",
    "old_value",
    "new_value",
)
LINK_PROPERTIES = ("source_id", "kind", "target_id", "created_at", "created_by")
CYCLE_PROPERTIES = ("fingerprint", "fired_at", "cleared_at", "incident_id")
PROBLEM_LINK_PROPERTIES = ("problem_id", "incident_id", "linked_at")
INCIDENT_CI_IDS = "ci_ids"  # the ticket_ci rows of an incident, as a list

# The counters (``(:Sequence)``): numbers continue after the highest written, and the
# state version correlation workers compare (``TicketUnit.state_version``).
SEQUENCE_INCIDENT = "incident_number"
SEQUENCE_PROBLEM = "problem_number"
SEQUENCE_WORKLOG = "worklog_seq"
SEQUENCE_STATE = "desk_state"

_ACTIVE = "[" + ", ".join(f"'{status}'" for status in ACTIVE_STATUSES) + "]"

LABELS: tuple[str, ...] = (
    "Alert",
    "AlertCycle",
    "CI",
    "Change",
    "Incident",
    "Problem",
    "ServiceRequest",
    "TicketLink",
    "WorklogEntry",
)
RELATIONSHIP_TYPES: tuple[str, ...] = (
    "AFFECTS",
    "GROUPED_IN",
    "INSTANCE_OF",
    "LOGGED_ON",
    "RAISED_ON",
    "ROOT_CAUSE",
)
PROPERTY_KEYS: tuple[str, ...] = tuple(
    sorted(
        {
            *ALERT_PROPERTIES,
            *INCIDENT_FIELDS,
            *PROBLEM_PROPERTIES,
            *WORKLOG_PROPERTIES,
            *LINK_PROPERTIES,
            *CYCLE_PROPERTIES,
            *PROBLEM_LINK_PROPERTIES,
            INCIDENT_CI_IDS,
            "root_signature",
            "value",
            # row maps and results
            "props",
            "ci",
            "n",
            "roots",
            "incidents",
            "incidents_open",
            "problems",
            "alerts",
            "alerts_firing",
            "alerts_unmapped",
            "login",
            "alert_cycles",
            "problem_links",
            "links",
            "worklog",
        }
    )
)
FUNCTIONS: tuple[str, ...] = ("coalesce", "count", "toLower", "any")
PARAMETERS: dict[str, Any] = {
    "rows": [],
    "ids": [],
    "ci_ids": None,
    "fingerprints": [],
    "logins": [],
    "refs": [],
    "signatures": [],
    "signature": "test/NodeDown",
    "since": 0,
    "limit": 100,
    "problem_id": "prb-1",
    "linked_at": 0,
    # find_incidents
    "status": None,
    "open": None,
    "unassigned": None,
    "assignee": None,
    "assignment_group": None,
    "type": None,
    "channel": None,
    "requester": None,
    "organisation": None,
    "service": None,
    "max_priority": None,
    "category": None,
    "category_below": None,
    "tag_needles": None,
    "text": None,
    "opened_since": None,
    "resolved_before": None,
    "after_priority": None,
    "after_opened": None,
    "after_number": None,
    "after_due": None,
    # problems
    "root_ci_ids": None,
    # export pages
    "after": "",
    "after_at": 0,
    "after_kind": "",
    "after_target": "",
}

CATALOGUE = Catalogue(
    "tickets",
    labels=LABELS,
    relationship_types=RELATIONSHIP_TYPES,
    property_keys=PROPERTY_KEYS,
    parameters=PARAMETERS,
    functions=FUNCTIONS,
)
_statement = CATALOGUE.statement


def _columns(variable: str, names: tuple[str, ...]) -> str:
    return ", ".join(f"{variable}.{name} AS {name}" for name in names)


_ALERT = _columns("a", ALERT_PROPERTIES)
_INCIDENT = _columns("i", INCIDENT_FIELDS)
_PROBLEM = _columns("p", PROBLEM_PROPERTIES)
_WORKLOG = _columns("w", WORKLOG_PROPERTIES)
_LINK = _columns("k", LINK_PROPERTIES)
_CYCLE = _columns("c", CYCLE_PROPERTIES)

# -- alerts ----------------------------------------------------------------------------

# rows: [{<ALERT_PROPERTIES>}]; the whole row replaced, its relationships with it.
SAVE_ALERTS = _statement(
    "SAVE_ALERTS",
    """
    UNWIND $rows AS row
    MERGE (a:Alert {fingerprint: row.fingerprint})
    SET a = row
    WITH a
    CALL (a) {
        MATCH (a)-[old:RAISED_ON|GROUPED_IN]->()
        DELETE old
    }
    CALL (a) {
        MATCH (ci:CI {id: a.ci_id})
        MERGE (a)-[:RAISED_ON]->(ci)
    }
    CALL (a) {
        MATCH (i:Incident {id: a.incident_id})
        MERGE (a)-[:GROUPED_IN]->(i)
    }
    CALL (a) {
        MATCH (i:Incident {root_fingerprint: a.fingerprint}) WHERE i.root_signature IS NULL
        SET i.root_signature = a.source + '/' + a.name
    }
    """,
    "rows",
)
LOAD_ALERTS = _statement(
    "LOAD_ALERTS",
    f"UNWIND $fingerprints AS f MATCH (a:Alert {{fingerprint: f}}) RETURN {_ALERT}",
    "fingerprints",
)
# each incident's alerts, oldest first (the port's order; the unit's read too)
ALERTS_OF = _statement(
    "ALERTS_OF",
    f"""
    UNWIND $ids AS id
    MATCH (a:Alert {{incident_id: id}})
    WITH a ORDER BY a.first_seen, a.fingerprint
    RETURN {_ALERT}
    """,
    "ids",
)
ALERTS_ON = _statement(
    "ALERTS_ON",
    f"""
    UNWIND $ci_ids AS ci_id
    MATCH (a:Alert {{ci_id: ci_id}})
    WITH a ORDER BY a.first_seen, a.fingerprint
    RETURN {_ALERT}
    """,
    "ci_ids",
)
UNMAPPED_ALERTS = _statement(
    "UNMAPPED_ALERTS",
    f"""
    MATCH (a:Alert) WHERE a.ci_id IS NULL
    WITH a ORDER BY a.last_seen DESC LIMIT $limit
    RETURN {_ALERT}
    """,
    "limit",
)

# -- incidents: writes ------------------------------------------------------------------

# The relationships of an incident, replaced from its properties (CIs that exist only).
_INCIDENT_LINKS = """
    CALL (i) {
        MATCH (i)-[old:AFFECTS|ROOT_CAUSE]->(:CI)
        DELETE old
    }
    CALL (i) {
        UNWIND coalesce(i.ci_ids, []) + coalesce([i.root_ci_id], []) AS ci_id
        MATCH (ci:CI {id: ci_id})
        MERGE (i)-[:AFFECTS]->(ci)
    }
    CALL (i) {
        MATCH (ci:CI {id: i.root_ci_id})
        MERGE (i)-[:ROOT_CAUSE]->(ci)
    }
    CALL (i) {
        WITH i WHERE i.type = 'service_request'
        SET i:ServiceRequest
    }
    CALL (i) {
        WITH i WHERE i.type <> 'service_request'
        REMOVE i:ServiceRequest
    }
"""
# rows: [{props: {<INCIDENT_PROPERTIES>, ci_ids}}]: every column replaced (a null one
# removed), ``sla_due_at`` kept (the SLA clocks'), the root alert's name filed as SQLite
# files it: looked up now, or by SAVE_ALERTS when the alert is saved after the incident.
SAVE_INCIDENTS = _statement(
    "SAVE_INCIDENTS",
    f"""
    UNWIND $rows AS row
    MERGE (i:Incident {{id: row.props.id}})
    SET i += row.props
    WITH i
    CALL (i) {{
        OPTIONAL MATCH (a:Alert {{fingerprint: i.root_fingerprint}})
        SET i.root_signature = a.source + '/' + a.name
    }}
    CALL (i) {{
        MATCH (a:Alert {{incident_id: i.id}})
        MERGE (a)-[:GROUPED_IN]->(i)
    }}
    {_INCIDENT_LINKS}
    """,
    "rows",
)
# rows: [{props: {id, <PEOPLE_PROPERTIES>, ci_ids}}]; absent incidents are not created.
UPDATE_INCIDENTS = _statement(
    "UPDATE_INCIDENTS",
    f"""
    UNWIND $rows AS row
    MATCH (i:Incident {{id: row.props.id}})
    SET i += row.props
    WITH i
    {_INCIDENT_LINKS}
    """,
    "rows",
)
KNOWN_INCIDENTS = _statement(
    "KNOWN_INCIDENTS",
    "UNWIND $ids AS id MATCH (i:Incident {id: id}) RETURN i.id AS id",
    "ids",
)

# -- incidents: reads -------------------------------------------------------------------

LOAD_INCIDENTS = _statement(
    "LOAD_INCIDENTS",
    f"UNWIND $ids AS id MATCH (i:Incident {{id: id}}) RETURN {_INCIDENT}",
    "ids",
)
# What correlation tracks: active monitoring incidents, and those resolved since.
ACTIVE_INCIDENTS = _statement(
    "ACTIVE_INCIDENTS",
    f"""
    CALL () {{
        MATCH (i:Incident) WHERE i.status IN {_ACTIVE} AND i.channel = 'monitoring'
        RETURN i
      UNION
        MATCH (i:Incident) WHERE i.resolved_at >= $since AND i.channel = 'monitoring'
        RETURN i
    }}
    RETURN {_INCIDENT}
    """,
    "since",
)
INCIDENTS_WITH_ROOT = _statement(
    "INCIDENTS_WITH_ROOT",
    f"""
    UNWIND $ci_ids AS ci_id
    MATCH (i:Incident {{root_ci_id: ci_id}}) WHERE i.opened_at >= $since
    WITH DISTINCT i ORDER BY i.opened_at
    RETURN {_INCIDENT}
    """,
    "ci_ids",
    "since",
)
INCIDENTS_NAMED = _statement(
    "INCIDENTS_NAMED",
    """
    MATCH (i:Incident {root_signature: $signature})
    WHERE i.opened_at >= $since AND i.root_ci_id IS NOT NULL
    WITH i ORDER BY i.opened_at
    RETURN i.id AS id
    """,
    "signature",
    "since",
)
COUNT_ROOTS_NAMED = _statement(
    "COUNT_ROOTS_NAMED",
    """
    MATCH (i:Incident {root_signature: $signature}) WHERE i.opened_at >= $since
    RETURN count(DISTINCT i.root_ci_id) AS roots
    """,
    "signature",
    "since",
)
# The tickets on a set of CIs: the root, an alert's CI, or one people named (``ci_ids``,
# the ``ticket_ci`` rows: a list no index holds, read from the tickets that have any).
_ON_CIS = f"""
    CALL () {{
        UNWIND $ci_ids AS ci_id
        MATCH (i:Incident {{root_ci_id: ci_id}})
        RETURN ci_id AS ci, i
      UNION
        UNWIND $ci_ids AS ci_id
        MATCH (a:Alert {{ci_id: ci_id}}) WHERE a.incident_id IS NOT NULL
        MATCH (i:Incident {{id: a.incident_id}})
        RETURN ci_id AS ci, i
      UNION
        MATCH (i:Incident) WHERE i.{INCIDENT_CI_IDS} IS NOT NULL
        UNWIND i.{INCIDENT_CI_IDS} AS ci_id
        WITH ci_id, i WHERE ci_id IN $ci_ids
        RETURN ci_id AS ci, i
    }}
"""
OPEN_INCIDENTS_OF = _statement(
    "OPEN_INCIDENTS_OF",
    f"""
    {_ON_CIS}
    WITH ci, i WHERE i.status IN {_ACTIVE}
    WITH ci, i ORDER BY i.number DESC
    RETURN ci, {_INCIDENT}
    """,
    "ci_ids",
)
INCIDENTS_OF = _statement(
    "INCIDENTS_OF",
    f"""
    {_ON_CIS}
    WITH DISTINCT i ORDER BY i.number
    RETURN {_INCIDENT}
    """,
    "ci_ids",
)
INCIDENTS_UPDATED_SINCE = _statement(
    "INCIDENTS_UPDATED_SINCE",
    f"""
    MATCH (i:Incident) WHERE i.updated_at >= $since
    WITH i ORDER BY i.updated_at, i.id LIMIT $limit
    RETURN {_INCIDENT}
    """,
    "since",
    "limit",
)
REFS_KNOWN = _statement(
    "REFS_KNOWN",
    """
    UNWIND $refs AS ref
    MATCH (i:Incident {external_ref: ref})
    RETURN DISTINCT i.external_ref AS external_ref
    """,
    "refs",
)
OPEN_COUNTS = _statement(
    "OPEN_COUNTS",
    f"""
    UNWIND $logins AS login
    CALL (login) {{
        MATCH (i:Incident {{assignee: login}}) WHERE i.status IN {_ACTIVE}
        RETURN count(i) AS n
    }}
    RETURN login, n
    """,
    "logins",
)
COUNTS = _statement(
    "COUNTS",
    f"""
    CALL () {{ MATCH (a:Alert) RETURN count(a) AS alerts }}
    CALL () {{ MATCH (a:Alert {{status: 'firing'}}) RETURN count(a) AS alerts_firing }}
    CALL () {{ MATCH (a:Alert) WHERE a.ci_id IS NULL RETURN count(a) AS alerts_unmapped }}
    CALL () {{ MATCH (i:Incident) RETURN count(i) AS incidents }}
    CALL () {{
        MATCH (i:Incident) WHERE i.status IN {_ACTIVE} RETURN count(i) AS incidents_open
    }}
    CALL () {{ MATCH (p:Problem) RETURN count(p) AS problems }}
    RETURN alerts, alerts_firing, alerts_unmapped, incidents, incidents_open, problems
    """,
)

# -- listings (find_incidents) -----------------------------------------------------------

# Every filter of ``IncidentFilter`` but the anchor, each holding when its parameter is
# null (``tickets.listing`` passes them); ``open`` as the active statuses are said
# everywhere; a category is itself or one below it; a tag is a whole element of the JSON
# list (``tag_needles``: its encodings between the list's delimiters); ``text`` in the
# title, case-insensitive, no wildcards.
_FILTERS = f"""
    ($status IS NULL OR i.status = $status)
    AND ($open IS NULL OR (i.status IN {_ACTIVE}) = $open)
    AND ($unassigned IS NULL OR (i.assignee IS NULL) = $unassigned)
    AND ($assignee IS NULL OR i.assignee = $assignee)
    AND ($assignment_group IS NULL OR i.assignment_group = $assignment_group)
    AND ($type IS NULL OR i.type = $type)
    AND ($channel IS NULL OR i.channel = $channel)
    AND ($requester IS NULL OR i.requester = $requester)
    AND ($organisation IS NULL OR i.organisation = $organisation)
    AND ($service IS NULL OR i.service = $service)
    AND ($max_priority IS NULL OR i.priority <= $max_priority)
    AND ($category IS NULL OR i.category = $category
         OR i.category STARTS WITH $category_below)
    AND ($tag_needles IS NULL OR any(needle IN $tag_needles WHERE i.tags CONTAINS needle))
    AND ($text IS NULL OR toLower(i.title) CONTAINS $text)
    AND ($opened_since IS NULL OR i.opened_at >= $opened_since)
    AND ($resolved_before IS NULL OR i.resolved_at < $resolved_before)
"""
_FILTER_PARAMETERS = (
    "status",
    "open",
    "unassigned",
    "assignee",
    "assignment_group",
    "type",
    "channel",
    "requester",
    "organisation",
    "service",
    "max_priority",
    "category",
    "category_below",
    "tag_needles",
    "text",
    "opened_since",
    "resolved_before",
    "limit",
)
# Each order's cursor (strictly after the key), as a range on the index's first ordered
# property and the exact comparison of the whole key, and its order.
_DUE = f"coalesce(i.sla_due_at, {NO_DUE})"
_ORDERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "NEWEST": (
        f"i.number < coalesce($after_number, {NO_DUE})",
        "i.number DESC",
        ("after_number",),
    ),
    "QUEUE": (
        f"""i.priority >= coalesce($after_priority, {-NO_DUE})
            AND ($after_priority IS NULL OR i.priority > $after_priority
                 OR i.opened_at > $after_opened
                 OR (i.opened_at = $after_opened AND i.number > $after_number))""",
        "i.priority, i.opened_at, i.number",
        ("after_priority", "after_opened", "after_number"),
    ),
    "DUE": (
        f"""($after_due IS NULL OR {_DUE} > $after_due
            OR ({_DUE} = $after_due AND i.number > $after_number))""",
        f"{_DUE}, i.number",
        ("after_due", "after_number"),
    ),
}
# The anchor of a listing: a group's queue, an agent's (the MATCH seeks the queue index,
# whose every property it names, and a QUEUE page reads in the index's order), the
# tickets on some CIs (few: found from each CI first), or every ticket (the number index,
# or the queue index, in order).
_QUEUE_KEYS = "i.priority IS NOT NULL AND i.opened_at IS NOT NULL AND i.number IS NOT NULL"
_ANCHORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ALL": ("MATCH (i:Incident) WHERE i.number IS NOT NULL", ()),
    "GROUP": (
        f"MATCH (i:Incident) WHERE i.assignment_group = $assignment_group AND {_QUEUE_KEYS}",
        ("i.assignment_group",),
    ),
    "AGENT": (
        f"MATCH (i:Incident) WHERE i.assignee = $assignee AND {_QUEUE_KEYS}",
        ("i.assignee",),
    ),
    "CIS": (_ON_CIS + " WITH DISTINCT i WHERE i.number IS NOT NULL", ()),
}


def _listing(anchor: str, order: str) -> Statement:
    cursor, sort, after = _ORDERS[order]
    match, leading = _ANCHORS[anchor]
    if order == "QUEUE":  # the anchor's property first: the index's order, constant here
        sort = ", ".join((*leading, sort))
        if anchor == "ALL":  # every ticket: the queue index (incident_queue) in order
            match = f"MATCH (i:Incident) WHERE {_QUEUE_KEYS}"
    return _statement(
        f"FIND_INCIDENTS[{anchor},{order}]",
        f"""
        {match}
        AND {cursor}
        AND {_FILTERS}
        WITH i ORDER BY {sort} LIMIT $limit
        RETURN {_INCIDENT}
        """,
        *_FILTER_PARAMETERS,
        *after,
        *(("ci_ids",) if anchor == "CIS" else ()),
    )


FIND_INCIDENTS: dict[tuple[str, str], Statement] = {
    (anchor, order): _listing(anchor, order) for anchor in _ANCHORS for order in _ORDERS
}

# -- problems ---------------------------------------------------------------------------

# row: {<PROBLEM_PROPERTIES>}; its links (INSTANCE_OF) are kept.
SAVE_PROBLEMS = _statement(
    "SAVE_PROBLEMS",
    """
    UNWIND $rows AS row
    MERGE (p:Problem {id: row.id})
    SET p = row
    WITH p
    CALL (p) {
        MATCH (p)-[old:ROOT_CAUSE]->(:CI)
        DELETE old
    }
    CALL (p) {
        MATCH (ci:CI {id: p.root_ci_id})
        MERGE (p)-[:ROOT_CAUSE]->(ci)
    }
    """,
    "rows",
)
LOAD_PROBLEMS = _statement(
    "LOAD_PROBLEMS",
    f"UNWIND $ids AS id MATCH (p:Problem {{id: id}}) RETURN {_PROBLEM}",
    "ids",
)
FIND_PROBLEM = _statement(
    "FIND_PROBLEM",
    f"MATCH (p:Problem {{signature: $signature}}) RETURN {_PROBLEM}",
    "signature",
)
# each problem's incidents in the order they were linked
PROBLEM_INCIDENTS = _statement(
    "PROBLEM_INCIDENTS",
    """
    UNWIND $ids AS id
    MATCH (i:Incident)-[r:INSTANCE_OF]->(:Problem {id: id})
    WITH r ORDER BY r.linked_at, r.incident_id
    RETURN r.problem_id AS problem_id, r.incident_id AS incident_id
    """,
    "ids",
)
# Incidents as instances of a problem (idempotent: the first link's time kept), and the
# problem_id of those that have none.
LINK_PROBLEM = _statement(
    "LINK_PROBLEM",
    """
    MATCH (p:Problem {id: $problem_id})
    UNWIND $ids AS id
    MATCH (i:Incident {id: id})
    MERGE (i)-[r:INSTANCE_OF]->(p)
    ON CREATE SET r.problem_id = p.id, r.incident_id = i.id, r.linked_at = $linked_at
    """,
    "problem_id",
    "ids",
    "linked_at",
)
SET_PROBLEM_ID = _statement(
    "SET_PROBLEM_ID",
    """
    UNWIND $ids AS id
    MATCH (i:Incident {id: id}) WHERE i.problem_id IS NULL
    SET i.problem_id = $problem_id
    """,
    "problem_id",
    "ids",
)
# rows: [{problem_id, incident_id, linked_at}]: links as exported, no incident touched.
RESTORE_PROBLEM_LINKS = _statement(
    "RESTORE_PROBLEM_LINKS",
    """
    UNWIND $rows AS row
    MATCH (p:Problem {id: row.problem_id})
    MATCH (i:Incident {id: row.incident_id})
    MERGE (i)-[r:INSTANCE_OF]->(p)
    SET r = row
    """,
    "rows",
)
FIND_PROBLEMS = _statement(
    "FIND_PROBLEMS",
    f"""
    MATCH (p:Problem) WHERE p.number IS NOT NULL
      AND ($status IS NULL OR p.status = $status)
      AND ($root_ci_ids IS NULL OR p.root_ci_id IN $root_ci_ids)
      AND ($assignee IS NULL OR p.assignee = $assignee)
    WITH p ORDER BY p.number DESC LIMIT $limit
    RETURN {_PROBLEM}
    """,
    "status",
    "root_ci_ids",
    "assignee",
    "limit",
)
PROBLEMS_OF = _statement(
    "PROBLEMS_OF",
    f"""
    CALL () {{
        UNWIND $ci_ids AS ci_id
        MATCH (p:Problem {{root_ci_id: ci_id}})
        RETURN p
      UNION
        {_ON_CIS}
        MATCH (i)-[:INSTANCE_OF]->(p:Problem)
        RETURN p
    }}
    WITH p ORDER BY p.number
    RETURN {_PROBLEM}
    """,
    "ci_ids",
)
PROBLEMS_FIXED_BY = _statement(
    "PROBLEMS_FIXED_BY",
    f"""
    UNWIND $ids AS id
    MATCH (p:Problem {{fixing_change_id: id}})
    WITH DISTINCT p ORDER BY p.number
    RETURN {_PROBLEM}
    """,
    "ids",
)
KNOWN_ERRORS_FOR = _statement(
    "KNOWN_ERRORS_FOR",
    f"""
    CALL () {{
        UNWIND $ci_ids AS ci_id
        MATCH (p:Problem {{root_ci_id: ci_id}})
        RETURN p
      UNION
        UNWIND $signatures AS signature
        MATCH (p:Problem {{signature: signature}})
        RETURN p
    }}
    WITH p WHERE p.known_error IS NOT NULL
    WITH p ORDER BY p.number
    RETURN {_PROBLEM}
    """,
    "ci_ids",
    "signatures",
)

# -- worklog ----------------------------------------------------------------------------

# rows: [{<WORKLOG_PROPERTIES>}], each with its seq; linked to its ticket where it exists.
APPEND_WORKLOG = _statement(
    "APPEND_WORKLOG",
    """
    UNWIND $rows AS row
    CREATE (w:WorklogEntry)
    SET w = row
    WITH w
    CALL (w) {
        MATCH (t:Incident {id: w.ticket_id})
        MERGE (w)-[:LOGGED_ON]->(t)
    }
    CALL (w) {
        MATCH (t:Problem {id: w.ticket_id})
        MERGE (w)-[:LOGGED_ON]->(t)
    }
    CALL (w) {
        MATCH (t:Change {id: w.ticket_id})
        MERGE (w)-[:LOGGED_ON]->(t)
    }
    """,
    "rows",
)
WORKLOG = _statement(
    "WORKLOG",
    f"""
    UNWIND $ids AS id
    MATCH (w:WorklogEntry {{ticket_id: id}})
    WITH w ORDER BY w.seq
    RETURN {_WORKLOG}
    """,
    "ids",
)

# -- links and alert cycles -------------------------------------------------------------

# rows: [{<LINK_PROPERTIES>}]; a link is its source, kind and target: the first kept.
SAVE_LINKS = _statement(
    "SAVE_LINKS",
    """
    UNWIND $rows AS row
    MERGE (k:TicketLink {source_id: row.source_id, kind: row.kind, target_id: row.target_id})
    ON CREATE SET k.created_at = row.created_at, k.created_by = row.created_by
    """,
    "rows",
)
DELETE_LINKS = _statement(
    "DELETE_LINKS",
    """
    UNWIND $rows AS row
    MATCH (k:TicketLink {source_id: row.source_id, kind: row.kind, target_id: row.target_id})
    DELETE k
    """,
    "rows",
)
LINKS_OF = _statement(
    "LINKS_OF",
    f"""
    CALL () {{
        UNWIND $ids AS id
        MATCH (k:TicketLink {{source_id: id}})
        RETURN k
      UNION
        UNWIND $ids AS id
        MATCH (k:TicketLink {{target_id: id}})
        RETURN k
    }}
    WITH k ORDER BY k.created_at, k.source_id, k.kind, k.target_id
    RETURN {_LINK}
    """,
    "ids",
)
# rows: [{<CYCLE_PROPERTIES>}]; one cycle per alert and firing time: a clear updates it.
RECORD_CYCLES = _statement(
    "RECORD_CYCLES",
    """
    UNWIND $rows AS row
    MERGE (c:AlertCycle {fingerprint: row.fingerprint, fired_at: row.fired_at})
    SET c.cleared_at = row.cleared_at, c.incident_id = row.incident_id
    """,
    "rows",
)
ALERT_CYCLES = _statement(
    "ALERT_CYCLES",
    f"""
    UNWIND $fingerprints AS f
    MATCH (c:AlertCycle {{fingerprint: f}})
    WITH c ORDER BY c.fingerprint, c.fired_at
    RETURN {_CYCLE}
    """,
    "fingerprints",
)

# -- the export, a page at a time (``ticket_snapshot.py``) --------------------------------

DUMP_ALERTS = _statement(
    "DUMP_ALERTS",
    f"""
    MATCH (a:Alert) WHERE a.fingerprint > $after
    WITH a ORDER BY a.fingerprint LIMIT $limit
    RETURN {_ALERT}
    """,
    "after",
    "limit",
)
DUMP_ALERT_CYCLES = _statement(
    "DUMP_ALERT_CYCLES",
    f"""
    MATCH (c:AlertCycle) WHERE c.fingerprint >= $after
      AND (c.fingerprint > $after OR c.fired_at > $after_at)
    WITH c ORDER BY c.fingerprint, c.fired_at LIMIT $limit
    RETURN {_CYCLE}
    """,
    "after",
    "after_at",
    "limit",
)
DUMP_INCIDENTS = _statement(
    "DUMP_INCIDENTS",
    f"""
    MATCH (i:Incident) WHERE i.number > $after_number
    WITH i ORDER BY i.number LIMIT $limit
    RETURN {_INCIDENT}
    """,
    "after_number",
    "limit",
)
DUMP_PROBLEMS = _statement(
    "DUMP_PROBLEMS",
    f"""
    MATCH (p:Problem) WHERE p.number > $after_number
    WITH p ORDER BY p.number LIMIT $limit
    RETURN {_PROBLEM}
    """,
    "after_number",
    "limit",
)
# problems a page at a time by id; their links read with PROBLEM_LINKS
DUMP_PROBLEM_IDS = _statement(
    "DUMP_PROBLEM_IDS",
    """
    MATCH (p:Problem) WHERE p.id > $after
    WITH p ORDER BY p.id LIMIT $limit
    RETURN p.id AS id
    """,
    "after",
    "limit",
)
PROBLEM_LINKS = _statement(
    "PROBLEM_LINKS",
    """
    UNWIND $ids AS id
    MATCH (:Incident)-[r:INSTANCE_OF]->(:Problem {id: id})
    WITH r ORDER BY r.problem_id, r.incident_id
    RETURN r.problem_id AS problem_id, r.incident_id AS incident_id, r.linked_at AS linked_at
    """,
    "ids",
)
DUMP_LINKS = _statement(
    "DUMP_LINKS",
    f"""
    MATCH (k:TicketLink) WHERE k.source_id >= $after
      AND (k.source_id > $after OR k.kind > $after_kind
           OR (k.kind = $after_kind AND k.target_id > $after_target))
    WITH k ORDER BY k.source_id, k.kind, k.target_id LIMIT $limit
    RETURN {_LINK}
    """,
    "after",
    "after_kind",
    "after_target",
    "limit",
)
DUMP_WORKLOG = _statement(
    "DUMP_WORKLOG",
    f"""
    MATCH (w:WorklogEntry) WHERE w.seq > $after_number
    WITH w ORDER BY w.seq LIMIT $limit
    RETURN {_WORKLOG}
    """,
    "after_number",
    "limit",
)
DUMP_COUNTS = _statement(
    "DUMP_COUNTS",
    """
    CALL () { MATCH (a:Alert) RETURN count(a) AS alerts }
    CALL () { MATCH (c:AlertCycle) RETURN count(c) AS alert_cycles }
    CALL () { MATCH (i:Incident) RETURN count(i) AS incidents }
    CALL () { MATCH (p:Problem) RETURN count(p) AS problems }
    CALL () { MATCH (:Incident)-[r:INSTANCE_OF]->(:Problem) RETURN count(r) AS problem_links }
    CALL () { MATCH (k:TicketLink) RETURN count(k) AS links }
    CALL () { MATCH (w:WorklogEntry) RETURN count(w) AS worklog }
    RETURN alerts, alert_cycles, incidents, problems, problem_links, links, worklog
    """,
)


# Constraints and indexes (each CREATE ... IF NOT EXISTS), the write locks and the
# counters this part needs; ``schema.py`` creates them all in the desk's migration. The
# names say which SQLite index each stands for.
def _schema(name: str, text: str) -> Statement:
    return _statement(f"SCHEMA[{name}]", text)


def _unique(name: str, label: str, *properties: str) -> Statement:
    keys = ", ".join(f"x.{p}" for p in properties)
    key = keys if len(properties) == 1 else f"({keys})"
    return _schema(
        name, f"CREATE CONSTRAINT {name} IF NOT EXISTS FOR (x:{label}) REQUIRE {key} IS UNIQUE"
    )


def _index(name: str, label: str, *properties: str) -> Statement:
    keys = ", ".join(f"x.{p}" for p in properties)
    return _schema(name, f"CREATE INDEX {name} IF NOT EXISTS FOR (x:{label}) ON ({keys})")


SCHEMA: tuple[Statement, ...] = (
    _unique("alert_fingerprint", "Alert", "fingerprint"),
    _index("alert_incident", "Alert", "incident_id"),
    _index("alert_ci", "Alert", "ci_id"),
    _index("alert_last_seen", "Alert", "last_seen"),  # (unmapped alerts, newest first)
    _index("alert_status", "Alert", "status"),
    _unique("incident_id", "Incident", "id"),
    _unique("incident_number", "Incident", "number"),
    _index("incident_root", "Incident", "root_ci_id", "opened_at"),
    _index("incident_root_signature", "Incident", "root_signature", "opened_at"),
    _index("incident_updated", "Incident", "updated_at"),
    _index("incident_external_ref", "Incident", "external_ref"),
    _index("incident_requester", "Incident", "requester"),
    _index("incident_status_number", "Incident", "status", "number"),
    _index("incident_queue", "Incident", "priority", "opened_at", "number"),
    _index(
        "incident_group_queue", "Incident", "assignment_group", "priority", "opened_at", "number"
    ),
    _index("incident_agent_queue", "Incident", "assignee", "priority", "opened_at", "number"),
    _index("incident_channel", "Incident", "channel"),
    _index("incident_resolved", "Incident", "resolved_at"),
    _unique("problem_id", "Problem", "id"),
    _unique("problem_number", "Problem", "number"),
    _unique("problem_signature", "Problem", "signature"),
    _index("problem_root", "Problem", "root_ci_id"),
    _index("problem_fixing_change", "Problem", "fixing_change_id"),
    _index("problem_status", "Problem", "status"),
    _unique("worklog_seq", "WorklogEntry", "seq"),
    _index("worklog_ticket", "WorklogEntry", "ticket_id"),
    _unique("ticket_link_key", "TicketLink", "source_id", "kind", "target_id"),
    _index("ticket_link_source", "TicketLink", "source_id"),
    _index("ticket_link_target", "TicketLink", "target_id"),
    _unique("alert_cycle_key", "AlertCycle", "fingerprint", "fired_at"),
    _index("alert_cycle_fingerprint", "AlertCycle", "fingerprint"),
    _index("alert_cycle_incident", "AlertCycle", "incident_id"),
)

# Migration 3: SAVE_ALERTS names the incidents saved before their root alert through this
# index, and those saved so before it get their name now.
SCHEMA_3: tuple[Statement, ...] = (
    _index("incident_root_fingerprint", "Incident", "root_fingerprint"),
)
NAME_UNNAMED_INCIDENTS = _statement(
    "NAME_UNNAMED_INCIDENTS",
    """
    MATCH (i:Incident) WHERE i.root_signature IS NULL AND i.root_fingerprint IS NOT NULL
    MATCH (a:Alert {fingerprint: i.root_fingerprint})
    SET i.root_signature = a.source + '/' + a.name
    """,
)
LOCKS: tuple[str, ...] = ()
SEQUENCES: tuple[str, ...] = (
    SEQUENCE_INCIDENT,
    SEQUENCE_PROBLEM,
    SEQUENCE_WORKLOG,
    SEQUENCE_STATE,
)
