"""Rows of the alert, incident and problem tables to domain objects and back, shared by
the incident store (``incidents``) and the ticket store (``tickets``)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import Any

import msgspec

from servicegraph.events.model import Alert, EventStatus, Severity
from servicegraph.storage.sqlite.file import from_us, to_us
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Channel, Incident, Problem, ProblemStatus, TicketType

_encode = msgspec.json.Encoder(order="sorted").encode


def dumps(value: Any) -> str:
    """Compact JSON text with sorted keys (labels compare as text), by msgspec: a storm
    saves a hundred alerts and incidents per batch, at a fifth of the json module's cost."""
    return _encode(value).decode()


def opt_us(value: dt.datetime | None) -> int | None:
    return None if value is None else to_us(value)


def opt_dt(value: int | None) -> dt.datetime | None:
    return None if value is None else from_us(value)


ALERT_COLUMNS = (
    "fingerprint, source, name, severity, status, labels, summary, first_seen, last_seen, "
    "last_change, count, ci_id, incident_id, cleared_at, flapping, transitions, reported_at, "
    "change_id"  # migration 13
)


def upsert(table: str, columns: str, values: str) -> str:
    """Insert a row or update it in place. Not ``INSERT OR REPLACE``: that deletes the old
    row and inserts a new one, rewriting every index entry of the row where an update
    touches only the indexed columns that changed (an incident updated in a storm keeps
    its number, root and opening time)."""
    names = [c.strip() for c in columns.split(",")]
    updates = ", ".join(f"{c} = excluded.{c}" for c in names[1:])
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({values}) "
        f"ON CONFLICT ({names[0]}) DO UPDATE SET {updates}"
    )


SAVE_ALERT = upsert("alert", ALERT_COLUMNS, ", ".join("?" for _ in ALERT_COLUMNS.split(",")))


def alert_row(a: Alert) -> tuple[Any, ...]:
    return (
        a.fingerprint,
        a.source,
        a.name,
        int(a.severity),
        a.status.value,
        dumps(a.labels),
        a.summary,
        to_us(a.first_seen),
        to_us(a.last_seen),
        to_us(a.last_change),
        a.count,
        a.ci_id,
        a.incident_id,
        opt_us(a.cleared_at),
        int(a.flapping),
        dumps([to_us(t) for t in a.transitions]),
        opt_us(a.reported_at),
        a.change_id,
    )


def to_alert(r: tuple[Any, ...]) -> Alert:
    return Alert(
        fingerprint=r[0],
        source=r[1],
        name=r[2],
        severity=Severity(r[3]),
        status=EventStatus(r[4]),
        labels=json.loads(r[5]),
        summary=r[6],
        first_seen=from_us(r[7]),
        last_seen=from_us(r[8]),
        last_change=from_us(r[9]),
        count=r[10],
        ci_id=r[11],
        incident_id=r[12],
        cleared_at=opt_dt(r[13]),
        flapping=bool(r[14]),
        transitions=[from_us(t) for t in json.loads(r[15])],
        reported_at=opt_dt(r[16]),
        change_id=r[17],
    )


INCIDENT_COLUMNS = (
    "id, number, title, status, opened_at, updated_at, last_alert_at, priority, impact, "
    "urgency, root_ci_id, root_inferred, root_confidence, root_fingerprint, business_services, "
    "flapping, clear_since, resolved_at, reopen_count, problem_id, alert_count, "
    "acknowledged_at, acknowledged_by, assignee, resolved_by, resolution, "
    # the desk's (migration 9)
    "type, channel, description, requester, organisation, service, category, affected_ci_ids, "
    "priority_reason, priority_set_by, assignment_group, pending_reason, resolution_code, "
    "close_code, closed_at, tags, custom_fields, routed_by, created_by, "
    # routing's priority bounds (migration 11)
    "priority_floor, priority_ceiling, "
    # SLA and reports (migration 12)
    "first_response_at, reassignment_count, external_ref, sla_tier, service_hours"
)
# what reads select: the columns written, then the due time the SLA projection keeps
# (``sla_rows.save_sla``), which no incident write touches
INCIDENT_FIELDS = f"{INCIDENT_COLUMNS}, sla_due_at"
# what people change (``TicketUnit.update_incidents``): everything but the ticket's identity
# (id, number, opened_at, created_by) and the fields correlation derives from alerts, which
# its own writes keep (priority is the one both write: an agent's override, or
# correlation's matrix within routing's bounds while there is none); the type too, as an
# agent reclassifies an incident that turns out to be a request
PEOPLE_COLUMNS = (
    "title, status, updated_at, priority, impact, urgency, resolved_at, reopen_count, "
    "problem_id, acknowledged_at, acknowledged_by, assignee, resolved_by, resolution, "
    "type, channel, description, requester, organisation, service, category, affected_ci_ids, "
    "priority_reason, priority_set_by, assignment_group, pending_reason, resolution_code, "
    "close_code, closed_at, tags, custom_fields, routed_by, priority_floor, priority_ceiling, "
    "first_response_at, reassignment_count"
)
UPDATE_INCIDENT = (
    "UPDATE incident SET "
    + ", ".join(f"{c.strip()} = ?" for c in PEOPLE_COLUMNS.split(","))
    + " WHERE id = ?"
)
INCIDENT_PLACEHOLDERS = ", ".join("?" for _ in INCIDENT_COLUMNS.split(","))
# An incident saved before its root alert (in the same unit) gets the signature when the
# alert is saved; a fingerprint's source and name never change.
NAME_INCIDENTS_OF_ALERT = (
    "UPDATE incident SET root_signature = ? WHERE root_fingerprint = ? AND root_signature IS NULL"
)
# the root alert's signature, for problems that recur across CIs
SAVE_INCIDENT = upsert(
    "incident",
    f"{INCIDENT_COLUMNS}, root_signature",
    f"{INCIDENT_PLACEHOLDERS}, (SELECT source || '/' || name FROM alert WHERE fingerprint = ?)",
)


def incident_row(i: Incident) -> tuple[Any, ...]:
    return (
        i.id,
        i.number,
        i.title,
        i.status.value,
        to_us(i.opened_at),
        to_us(i.updated_at),
        to_us(i.last_alert_at),
        i.priority,
        i.impact,
        i.urgency,
        i.root_ci_id,
        int(i.root_inferred),
        i.root_confidence,
        i.root_fingerprint,
        dumps(i.business_services),
        int(i.flapping),
        opt_us(i.clear_since),
        opt_us(i.resolved_at),
        i.reopen_count,
        i.problem_id,
        i.alert_count,
        opt_us(i.acknowledged_at),
        i.acknowledged_by,
        i.assignee,
        i.resolved_by,
        i.resolution,
        i.type.value,
        i.channel.value,
        i.description,
        i.requester,
        i.organisation,
        i.service,
        i.category,
        dumps(i.affected_ci_ids),
        i.priority_reason,
        i.priority_set_by,
        i.assignment_group,
        i.pending_reason,
        i.resolution_code,
        i.close_code,
        opt_us(i.closed_at),
        dumps(i.tags),
        dumps(i.custom_fields),
        i.routed_by,
        i.created_by,
        i.priority_floor,
        i.priority_ceiling,
        opt_us(i.first_response_at),
        i.reassignment_count,
        i.external_ref,
        i.sla_tier,
        i.service_hours,
    )


# where each of PEOPLE_COLUMNS stands in a whole row, so that one function says how each
# field is stored
_PEOPLE_AT = tuple(
    [c.strip() for c in INCIDENT_COLUMNS.split(",")].index(c.strip())
    for c in PEOPLE_COLUMNS.split(",")
)


def people_row(i: Incident) -> tuple[Any, ...]:
    """The values of ``UPDATE_INCIDENT``: ``PEOPLE_COLUMNS``, then the id."""
    row = incident_row(i)
    return (*(row[k] for k in _PEOPLE_AT), i.id)


def to_incident(r: tuple[Any, ...]) -> Incident:
    return Incident(
        id=r[0],
        number=r[1],
        title=r[2],
        status=TicketStatus(r[3]),
        opened_at=from_us(r[4]),
        updated_at=from_us(r[5]),
        last_alert_at=from_us(r[6]),
        priority=r[7],
        impact=r[8],
        urgency=r[9],
        root_ci_id=r[10],
        root_inferred=bool(r[11]),
        root_confidence=r[12],
        root_fingerprint=r[13],
        business_services=json.loads(r[14]),
        flapping=bool(r[15]),
        clear_since=opt_dt(r[16]),
        resolved_at=opt_dt(r[17]),
        reopen_count=r[18],
        problem_id=r[19],
        alert_count=r[20],
        acknowledged_at=opt_dt(r[21]),
        acknowledged_by=r[22],
        assignee=r[23],
        resolved_by=r[24],
        resolution=r[25],
        type=TicketType(r[26]),
        channel=Channel(r[27]),
        description=r[28],
        requester=r[29],
        organisation=r[30],
        service=r[31],
        category=r[32],
        affected_ci_ids=json.loads(r[33]),
        priority_reason=r[34],
        priority_set_by=r[35],
        assignment_group=r[36],
        pending_reason=r[37],
        resolution_code=r[38],
        close_code=r[39],
        closed_at=opt_dt(r[40]),
        tags=json.loads(r[41]),
        custom_fields=json.loads(r[42]),
        routed_by=r[43],
        created_by=r[44],
        priority_floor=r[45],
        priority_ceiling=r[46],
        first_response_at=opt_dt(r[47]),
        reassignment_count=r[48],
        external_ref=r[49],
        sla_tier=r[50],
        service_hours=r[51],
        sla_due_at=opt_dt(r[52]) if len(r) > 52 else None,
    )


PROBLEM_COLUMNS = (
    "id, number, title, status, created_at, updated_at, root_ci_id, reason, signature, "
    "known_error, workaround, "
    # migration 13
    "assignee, description, root_cause, fix, fixing_change_id, resolved_at, closed_at, resolution"
)


def to_problem(r: tuple[Any, ...], incident_ids: list[str]) -> Problem:
    return Problem(
        id=r[0],
        number=r[1],
        title=r[2],
        status=ProblemStatus(r[3]),
        created_at=from_us(r[4]),
        updated_at=from_us(r[5]),
        root_ci_id=r[6],
        reason=r[7],
        signature=r[8],
        known_error=r[9],
        workaround=r[10],
        incident_ids=incident_ids,
        assignee=r[11],
        description=r[12],
        root_cause=r[13],
        fix=r[14],
        fixing_change_id=r[15],
        resolved_at=opt_dt(r[16]),
        closed_at=opt_dt(r[17]),
        resolution=r[18],
    )


def problem_row(problem: Problem) -> tuple[Any, ...]:
    return (
        problem.id,
        problem.number,
        problem.title,
        problem.status.value,
        to_us(problem.created_at),
        to_us(problem.updated_at),
        problem.root_ci_id,
        problem.reason,
        problem.signature,
        problem.known_error,
        problem.workaround,
        problem.assignee,
        problem.description,
        problem.root_cause,
        problem.fix,
        problem.fixing_change_id,
        opt_us(problem.resolved_at),
        opt_us(problem.closed_at),
        problem.resolution,
    )


def problem_incidents(conn: sqlite3.Connection, problem_ids: list[str]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for problem_id, incident_id in conn.execute(
        "SELECT problem_id, incident_id FROM problem_incident "
        "WHERE problem_id IN (SELECT value FROM json_each(?)) ORDER BY linked_at, incident_id",
        (dumps(problem_ids),),
    ):
        result.setdefault(problem_id, []).append(incident_id)
    return result
