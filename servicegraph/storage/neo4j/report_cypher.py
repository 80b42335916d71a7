"""The Cypher of the desk reports (MTTA, MTTR, SLA compliance, ...) (a catalogue: see
``catalogue.py``).

The statements read the ``(:Incident)`` nodes (part T's: the ``incident`` columns, times
as integer microseconds) and the ``(:SlaRecord)`` nodes (part C's: the ``ticket_sla``
columns), joined by ``ticket_id``; they never write. Each aggregates what Cypher can, one
row per *bucket* and *raw key*, and ``reports.py`` turns buckets into period labels and raw
keys into group keys, merging rows that land in the same (period, key):

- the bucket of an instant ``at`` (with ``$per``) is its UTC day, cut into pieces at the
  period boundaries that fall inside it (``$cuts``: UTC day -> boundaries in it, computed
  in Python by ``report_periods``), so that every instant of a piece has the same label;
  a day ``$cuts`` does not hold (outside the span computed, or a day on which the time
  zone's offset changes) is labelled per instant (``exact``). UTC needs no cuts.
- the raw key is the property ``$by`` names; grouped by CI, the JSON list of affected CIs
  and the root CI (Cypher cannot read JSON: Python expands them into one key per CI).

Windows are half-open ranges on one indexed instant; an open end is the smallest or the
largest integer, so that the range always reads the index.
"""

from __future__ import annotations

from typing import Any

from servicegraph.storage.neo4j.catalogue import Catalogue, Statement

DAY_US = 86_400_000_000
CLOCKS = ("response", "resolution")
ACTIVE = "['new', 'assigned', 'in_progress', 'pending']"
SOLVED = "['resolved', 'closed']"

LABELS: tuple[str, ...] = ("Incident", "SlaRecord")
RELATIONSHIP_TYPES: tuple[str, ...] = ()
PROPERTY_KEYS: tuple[str, ...] = (
    # (:Incident)
    "id",
    "status",
    "opened_at",
    "updated_at",
    "resolved_at",
    "closed_at",
    "first_response_at",
    "priority",
    "type",
    "channel",
    "service",
    "assignment_group",
    "root_ci_id",
    "reopen_count",
    "reassignment_count",
    "custom_fields",
    # (:SlaRecord)
    "ticket_id",
    *(f"{c}_{part}" for c in CLOCKS for part in ("elapsed_s", "due_at", "state", "paused")),
    *(f"{c}_breached_at" for c in CLOCKS),
    # row maps
    "clock",
    "breached",
    "at",
)
FUNCTIONS: tuple[str, ...] = (
    "coalesce",
    "collect",
    "count",
    "max",
    "min",
    "size",
    "sum",
    "toString",
)
PARAMETERS: dict[str, Any] = {
    "by": "service",
    "channel": "email",
    "ci": False,
    "cuts": {"20000": [1_728_000_000_000_000]},
    "end": 2**63 - 1,
    "group": "noc",
    "now": 1_700_000_000_000_000,
    "per": False,
    "priority": 3,
    "service": "mail",
    "since": 1_700_000_000_000_000,
    "start": -(2**63),
    "type": "incident",
    "until": 1_700_000_000_000_000,
    "utc": True,
}

CATALOGUE = Catalogue(
    "reports",
    labels=LABELS,
    relationship_types=RELATIONSHIP_TYPES,
    property_keys=PROPERTY_KEYS,
    parameters=PARAMETERS,
    functions=FUNCTIONS,
)
_statement = CATALOGUE.statement

# -- fragments ---------------------------------------------------------------------------

_FILTERS = (
    "($group IS NULL OR i.assignment_group = $group) "
    "AND ($service IS NULL OR i.service = $service) "
    "AND ($priority IS NULL OR i.priority = $priority) "
    "AND ($type IS NULL OR i.type = $type) "
    "AND ($channel IS NULL OR i.channel = $channel)"
)
_FILTER_PARAMS = ("group", "service", "priority", "type", "channel")
# the raw key of a ticket (see the module docstring)
_KEY = (
    "CASE WHEN $by IS NULL THEN null ELSE i[$by] END AS k1, "
    "CASE WHEN $ci THEN i.root_ci_id END AS k2"
)
_KEY_PARAMS = ("by", "ci")
_BUCKET_PARAMS = ("per", "utc", "cuts")
_GROUPED = (*_FILTER_PARAMS, *_KEY_PARAMS, *_BUCKET_PARAMS)


def _bucket(carry: str) -> str:
    """From rows holding ``i``, ``at`` and ``carry``: ``carry``, the bucket of ``at``
    (``day``, ``piece``, ``exact``) and the raw key (``k1``, ``k2``)."""
    keep = f"{carry}, " if carry else ""
    return f"""
    WITH {keep}i, at, CASE WHEN $per THEN at / {DAY_US} END AS day
    WITH {keep}i, at, day,
         CASE WHEN day IS NULL OR ($utc AND at >= 0) THEN []
              WHEN at < 0 THEN null
              ELSE $cuts[toString(day)] END AS cuts
    WITH {keep}day,
         CASE WHEN cuts IS NULL THEN at END AS exact,
         CASE WHEN cuts IS NULL THEN 0 ELSE size([c IN cuts WHERE c <= at]) END AS piece,
         {_KEY}
    """


_GROUP = "day, piece, exact, k1, k2"

# Tickets by opening, in the window, kept by the filters.
_OPENED = f"""
    MATCH (i:Incident)
    WHERE i.opened_at >= $start AND i.opened_at < $end AND {_FILTERS}
    WITH i, i.opened_at AS at
"""
# Resolved or closed tickets by their resolution instant, in the window: those with a
# ``resolved_at``, then those closed without one (each half reads its own index).
_SOLVED = f"""
    CALL () {{
        MATCH (i:Incident)
        WHERE i.resolved_at >= $start AND i.resolved_at < $end AND i.status IN {SOLVED}
        RETURN i, i.resolved_at AS at
        UNION ALL
        MATCH (i:Incident)
        WHERE i.closed_at >= $start AND i.closed_at < $end AND i.status = 'closed'
          AND i.resolved_at IS NULL
        RETURN i, i.closed_at AS at
    }}
    WITH i, at WHERE {_FILTERS}
"""


def _running_breached(clock: str) -> str:
    """A running ``clock`` that has breached as of ``$now``: so marked by the last
    evaluation, or overdue since (due passed, not paused)."""
    return (
        f"(s.{clock}_state = 'breached' OR (s.{clock}_state IN ['ok', 'at_risk'] "
        f"AND s.{clock}_paused = 0 AND s.{clock}_due_at <= $now))"
    )


def _stopped(clock: str) -> str:
    return f"s.{clock}_state IN ['met', 'missed']"


# -- the figures ---------------------------------------------------------------------------

VOLUME = _statement(
    "VOLUME",
    f"{_OPENED} {_bucket('')} RETURN {_GROUP}, count(*) AS n",
    "start",
    "end",
    *_GROUPED,
)
REASSIGNMENTS = _statement(
    "REASSIGNMENTS",
    f"""
    {_OPENED}
    WITH i, at, i.reassignment_count AS moves
    {_bucket("moves")}
    RETURN {_GROUP}, count(*) AS n, sum(CASE WHEN moves > 0 THEN 1 ELSE 0 END) AS reassigned,
           sum(moves) AS total, max(moves) AS top
    """,
    "start",
    "end",
    *_GROUPED,
)
# The source's verdict is a key of the custom fields' JSON text, which Cypher cannot read:
# the candidates (their text names the key) come back grouped by that text, and Python
# keeps those whose ``made_sla`` is a boolean.
SOURCE_SLA = _statement(
    "SOURCE_SLA",
    f"""
    {_OPENED}
    WITH i, at, i.custom_fields AS fields WHERE fields CONTAINS '"made_sla"'
    {_bucket("fields")}
    RETURN {_GROUP}, fields, count(*) AS n
    """,
    "start",
    "end",
    *_GROUPED,
)
REOPENS = _statement(
    "REOPENS",
    f"""
    {_SOLVED}
    WITH i, at, i.reopen_count AS reopens
    {_bucket("reopens")}
    RETURN {_GROUP}, count(*) AS n, sum(CASE WHEN reopens > 0 THEN 1 ELSE 0 END) AS reopened
    """,
    "start",
    "end",
    *_GROUPED,
)


def _durations(clock: str) -> Statement:
    """Calendar durations (microseconds, never negative) of every ticket that counts and
    the business durations (seconds) its stopped ``clock`` measured, listed per group."""
    source = (
        f"""
        MATCH (i:Incident)
        WHERE i.first_response_at >= $start AND i.first_response_at < $end AND {_FILTERS}
        WITH i, i.first_response_at AS at
        """
        if clock == "response"
        else _SOLVED
    )
    return _statement(
        f"DURATIONS[{clock}]",
        f"""
        {source}
        OPTIONAL MATCH (s:SlaRecord {{ticket_id: i.id}})
        WITH i, at,
             CASE WHEN at > i.opened_at THEN at - i.opened_at ELSE 0 END AS calendar,
             CASE WHEN {_stopped(clock)} THEN s.{clock}_elapsed_s END AS business
        {_bucket("calendar, business")}
        RETURN {_GROUP}, collect(calendar) AS calendar, collect(business) AS business
        """,
        "start",
        "end",
        *_GROUPED,
    )


DURATIONS = {clock: _durations(clock) for clock in CLOCKS}

# Both clocks of the tickets resolved in the window whose clocks stopped (met or missed).
COMPLIANCE_STOPPED = _statement(
    "COMPLIANCE_STOPPED",
    f"""
    {_SOLVED}
    MATCH (s:SlaRecord {{ticket_id: i.id}})
    WHERE {" OR ".join(_stopped(c) for c in CLOCKS)}
    WITH i, at, s
    {_bucket("s")}
    RETURN {_GROUP},
    """
    + ", ".join(
        f"sum(CASE WHEN s.{c}_state = '{state}' THEN 1 ELSE 0 END) AS {c}_{state}"
        for c in CLOCKS
        for state in ("met", "missed")
    ),
    "start",
    "end",
    *_GROUPED,
)
# Running clocks of open tickets breached as of ``$now``, by their breach instant (the
# one marked, or the due time passed since) in the window, per clock.
COMPLIANCE_RUNNING = _statement(
    "COMPLIANCE_RUNNING",
    f"""
    MATCH (i:Incident)
    WHERE i.status IN {ACTIVE} AND {_FILTERS}
    MATCH (s:SlaRecord {{ticket_id: i.id}})
    UNWIND [
    """
    + ", ".join(
        f"{{clock: '{c}', breached: {_running_breached(c)}, "
        f"at: coalesce(s.{c}_breached_at, s.{c}_due_at)}}"
        for c in CLOCKS
    )
    + f"""
    ] AS c
    WITH i, c WHERE c.breached AND c.at >= $start AND c.at < $end
    WITH i, c.clock AS clock, c.at AS at
    {_bucket("clock")}
    RETURN clock, {_GROUP}, count(*) AS n
    """,
    "start",
    "end",
    "now",
    *_GROUPED,
)
EARLIEST_OPENED = _statement(
    "EARLIEST_OPENED",
    f"MATCH (i:Incident) WHERE {_FILTERS} RETURN min(i.opened_at) AS opened",
    *_FILTER_PARAMS,
)
# The backlog intervals: tickets opened by ``$until`` still open, or that left it after
# ``$since`` (said per status, as the SQLite adapter says it), with when they left it.
INTERVALS = _statement(
    "INTERVALS",
    f"""
    MATCH (i:Incident)
    WHERE i.opened_at <= $until AND {_FILTERS}
      AND (i.status IN {ACTIVE}
           OR (i.status IN {SOLVED} AND i.resolved_at > $since)
           OR (i.status = 'closed' AND i.resolved_at IS NULL AND i.closed_at > $since)
           OR (i.status = 'cancelled' AND coalesce(i.closed_at, i.updated_at) > $since))
    RETURN {_KEY}, i.opened_at AS opened,
           CASE WHEN i.status IN {ACTIVE} THEN null
                WHEN i.status IN {SOLVED} THEN coalesce(i.resolved_at, i.closed_at)
                ELSE coalesce(i.closed_at, i.updated_at) END AS left
    """,
    "until",
    "since",
    *_FILTER_PARAMS,
    *_KEY_PARAMS,
)

# -- what /metrics shows ---------------------------------------------------------------------

GAUGES_OPEN = _statement(
    "GAUGES_OPEN",
    f"""
    MATCH (i:Incident) WHERE i.status IN {ACTIVE}
    RETURN i.assignment_group AS group, i.priority AS priority, count(*) AS n
    """,
)
GAUGES_BREACHED = _statement(
    "GAUGES_BREACHED",
    f"""
    MATCH (i:Incident) WHERE i.status IN {ACTIVE}
    MATCH (s:SlaRecord {{ticket_id: i.id}})
    RETURN i.assignment_group AS group, """
    + ", ".join(f"sum(CASE WHEN {_running_breached(c)} THEN 1 ELSE 0 END) AS {c}" for c in CLOCKS),
    "now",
)
# every ticket whose clock breached (running or stopped): one scan of the clocks for both
GAUGES_EVER = _statement(
    "GAUGES_EVER",
    "MATCH (s:SlaRecord) RETURN "
    + ", ".join(
        f"count(CASE WHEN s.{c}_breached_at IS NOT NULL OR {_running_breached(c)} "
        f"THEN 1 END) AS {c}"
        for c in CLOCKS
    ),
    "now",
)

# Constraints and indexes (each CREATE ... IF NOT EXISTS), the write locks and the
# counters this part needs; ``schema.py`` creates them all in the desk's migration. The
# windows' instants, as SQLite's incident_opened, incident_resolved, incident_closing;
# (:SlaRecord {ticket_id}) is part C's constraint. An index part T declares on the same
# property first makes one of these a no-op (IF NOT EXISTS: same schema).
SCHEMA: tuple[Statement, ...] = tuple(
    _statement(
        f"SCHEMA[{name}]",
        f"CREATE INDEX {name} IF NOT EXISTS FOR (i:Incident) ON (i.{prop})",
    )
    for name, prop in (
        ("report_incident_opened", "opened_at"),
        ("report_incident_resolved", "resolved_at"),
        ("report_incident_closed", "closed_at"),
        ("report_incident_first_response", "first_response_at"),
        ("report_incident_status", "status"),
    )
)
LOCKS: tuple[str, ...] = ()
SEQUENCES: tuple[str, ...] = ()
