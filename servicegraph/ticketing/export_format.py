"""The desk's records in an export file (format version 5; versions 2 to 4 still read): each as
one JSON object, both ways.

The file as a whole (one header, the graph's sections, then these, one trailer with the
counts of all) is composed by ``servicegraph.runtime.export``; the graph's records are
``servicegraph.cmdb.export_format``'s. The desk's sections, in the order they must appear:

* the directory: ``organisation``, ``agent``, ``group`` (with its ``members``: membership
  is written once, on the group's side), ``contact``, then the catalogue: ``service``,
  ``category``; each with ``updated_at``, when the record was last saved;
* the tickets: ``alert``, ``alert_cycle``, ``incident`` (every desk field: the ticket's
  type as ``ticket_type``, since ``type`` names the record's section; channel, requester,
  service, category, affected CIs, priority override, routing's priority bounds
  ``priority_floor``/``priority_ceiling``, group, agent, pending reason, codes, tags,
  custom fields, routing rule...), ``problem``, ``problem_incident``
  (an incident recorded as an instance of a problem, and when), ``freeze_window``,
  ``change`` (with its CIs in order, and its approvals, tasks and accepted conflicts as
  lists of objects), ``ticket_link``, ``worklog`` (with its ``seq``, and the field
  changed, old and new).

Alerts come before incidents because a store files an incident under its root alert's
name when the incident is saved. Within a section, records come in the strictly
increasing order of ``KEYS`` (the order ``TicketSnapshot`` reads them in): one pass over a
file finds a duplicated record without keeping every key in memory.

Every field is written, and a record missing one, or carrying one this release does not
know, is refused: a file from a newer release is never restored with a field silently
dropped. Bad values raise ``ValidationFailed`` naming ``<type>.<field>``. Times are ISO
8601 in UTC with microseconds, as in the graph's sections.

So a record that gains a field is a new version of the file: a file of the version
before still restores, read with that version's records (``DECODERS``), never with a
field taken as missing. Version 3 added the incident's ``priority_floor`` and
``priority_ceiling`` (null: that side open; the ceiling never less urgent than the
floor). A version-2 incident has no bounds, and one whose priority a routing rule's bound
had frozen (``priority_set_by`` "routing") gets the bounds its reason names instead, as
migration 11 of the SQLite store does (``tickets_routing.legacy_bounds``). Version 4
added the incident's SLA and report fields: ``first_response_at``, ``reassignment_count``,
``external_ref`` (its number in the tool it was imported from), ``sla_tier`` and
``service_hours``; a version-3 incident was answered when it was acknowledged. Version 5
added change and problem management: the change's type, template, implementer, risk
reasons, approvals, tasks, accepted conflicts, plans, actual times and close code, the
problem's assignee, analysis, fixing change and resolution, the alert's ``change_id``,
and the ``freeze_window`` section. A version-4 change's status is read as migration 13 of
the SQLite store maps it (planned -> draft, approved -> scheduled, in_progress ->
implementing, completed -> closed with close code "successful"); the new fields take
their defaults. Each version's sections are ``VERSION_SECTIONS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.export_format import format_time
from servicegraph.events.model import Alert, AlertCycle, EventStatus
from servicegraph.ticketing.catalogue import Category, Service
from servicegraph.ticketing.change_model import (
    ApprovalDecision,
    ChangeApproval,
    ChangeTask,
    ChangeType,
    ConflictOverride,
    FreezeWindow,
    TaskStatus,
)
from servicegraph.ticketing.export_values import (
    FLAG,
    INT,
    OBJECT,
    OPT_PRIORITY,
    OPT_TEXT,
    OPT_TIME,
    TEXT,
    TEXT_TUPLE,
    TEXTS,
    TIME,
    Codec,
    Decode,
    Encode,
    defaults_json,
    defaults_value,
    enum_field,
    enum_value,
    enum_values,
    fields,
    items,
    label_map,
    number_value,
    one_of,
    same,
    severity_value,
    text_list,
    time_list,
)
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import (
    Change,
    ChangeRisk,
    ChangeStatus,
    Channel,
    Incident,
    LinkKind,
    Problem,
    ProblemStatus,
    TicketLink,
    TicketType,
    WorklogEntry,
    WorklogKind,
)
from servicegraph.ticketing.people import Agent, Contact, Group, Organisation
from servicegraph.ticketing.ports import ProblemLink, Stamped
from servicegraph.ticketing.tickets_routing import ROUTING, legacy_bounds

DIRECTORY_SECTIONS = ("organisation", "agent", "group", "contact", "service", "category")
TICKET_SECTIONS = (
    "alert",
    "alert_cycle",
    "incident",
    "problem",
    "problem_incident",
    "freeze_window",
    "change",
    "ticket_link",
    "worklog",
)
SECTIONS = DIRECTORY_SECTIONS + TICKET_SECTIONS
# the sections of each version of the file (version 5 added ``freeze_window``)
_BEFORE_5 = tuple(s for s in SECTIONS if s != "freeze_window")
VERSION_SECTIONS: Mapping[int, tuple[str, ...]] = {
    2: _BEFORE_5,
    3: _BEFORE_5,
    4: _BEFORE_5,
    5: SECTIONS,
}

Record = (
    Stamped[Any]  # of an Organisation, Agent, Group, Contact, Service or Category
    | Alert
    | AlertCycle
    | Incident
    | Problem
    | ProblemLink
    | FreezeWindow
    | Change
    | TicketLink
    | WorklogEntry
)

ORGANISATION = Codec(
    "organisation",
    Organisation,
    fields(("id", TEXT), ("name", TEXT), ("domains", (list, text_list)), ("notes", TEXT)),
    stamped=True,
)
# membership is the group's ``members``; an agent's ``groups`` are the same pairs
AGENT = Codec(
    "agent",
    Agent,
    fields(
        ("login", TEXT),
        ("name", TEXT),
        ("email", TEXT),
        ("phone", OPT_TEXT),
        ("roles", (enum_values, text_list)),
        ("active", FLAG),
    ),
    stamped=True,
)
GROUP = Codec(
    "group",
    Group,
    fields(
        ("id", TEXT),
        ("name", TEXT),
        ("email", OPT_TEXT),
        ("manager", OPT_TEXT),
        ("description", TEXT),
        ("members", (list, text_list)),
    ),
    stamped=True,
)
CONTACT = Codec(
    "contact",
    Contact,
    fields(
        ("id", TEXT),
        ("name", TEXT),
        ("email", OPT_TEXT),
        ("organisation", OPT_TEXT),
        ("phone", OPT_TEXT),
        ("vip", FLAG),
        ("active", FLAG),
    ),
    stamped=True,
)
SERVICE = Codec(
    "service",
    Service,
    fields(
        ("id", TEXT),
        ("name", TEXT),
        ("ci_id", OPT_TEXT),
        ("owner_group", OPT_TEXT),
        ("request_types", (enum_values, text_list)),
        ("defaults", (defaults_json, defaults_value)),
        ("description", TEXT),
        ("active", FLAG),
    ),
    stamped=True,
)
CATEGORY = Codec(
    "category",
    Category,
    fields(
        ("path", TEXT),
        ("name", TEXT),
        ("owner_group", OPT_TEXT),
        ("defaults", (defaults_json, defaults_value)),
        ("types", (enum_values, text_list)),
    ),
    stamped=True,
)
ALERT = Codec(
    "alert",
    Alert,
    fields(
        ("fingerprint", TEXT),
        ("source", TEXT),
        ("name", TEXT),
        ("severity", (lambda s: s.name.lower(), severity_value)),
        ("status", enum_field(EventStatus)),
        ("labels", (dict, label_map)),
        ("summary", TEXT),
        ("first_seen", TIME),
        ("last_seen", TIME),
        ("last_change", TIME),
        ("count", INT),
        ("ci_id", OPT_TEXT),
        ("incident_id", OPT_TEXT),
        ("cleared_at", OPT_TIME),
        ("flapping", FLAG),
        ("transitions", (lambda ts: [format_time(t) for t in ts], time_list)),
        ("reported_at", OPT_TIME),
        ("change_id", OPT_TEXT),
    ),
)
# the alert of versions 2 to 4: not linked to a change (``decode_v4``)
ALERT_V4 = Codec("alert", Alert, tuple(f for f in ALERT.fields if f[0] != "change_id"))
ALERT_CYCLE = Codec(
    "alert_cycle",
    AlertCycle,
    fields(
        ("fingerprint", TEXT),
        ("fired_at", TIME),
        ("cleared_at", OPT_TIME),
        ("incident_id", OPT_TEXT),
    ),
)
INCIDENT = Codec(
    "incident",
    Incident,
    fields(
        ("id", TEXT),
        ("number", INT),
        ("type", enum_field(TicketType)),
        ("title", TEXT),
        ("description", TEXT),
        ("status", enum_field(TicketStatus)),
        ("channel", enum_field(Channel)),
        ("opened_at", TIME),
        ("updated_at", TIME),
        ("last_alert_at", TIME),
        ("created_by", OPT_TEXT),
        ("requester", OPT_TEXT),
        ("organisation", OPT_TEXT),
        ("service", OPT_TEXT),
        ("category", OPT_TEXT),
        ("priority", INT),
        ("impact", TEXT),
        ("urgency", TEXT),
        ("priority_reason", OPT_TEXT),
        ("priority_set_by", OPT_TEXT),
        ("priority_floor", OPT_PRIORITY),
        ("priority_ceiling", OPT_PRIORITY),
        ("assignment_group", OPT_TEXT),
        ("assignee", OPT_TEXT),
        ("routed_by", OPT_TEXT),
        ("pending_reason", OPT_TEXT),
        ("root_ci_id", OPT_TEXT),
        ("root_inferred", FLAG),
        ("root_confidence", (same, number_value)),
        ("root_fingerprint", OPT_TEXT),
        ("affected_ci_ids", TEXTS),
        ("business_services", TEXTS),
        ("flapping", FLAG),
        ("clear_since", OPT_TIME),
        ("alert_count", INT),
        ("acknowledged_at", OPT_TIME),
        ("acknowledged_by", OPT_TEXT),
        ("resolved_at", OPT_TIME),
        ("resolved_by", OPT_TEXT),
        ("resolution_code", OPT_TEXT),
        ("resolution", OPT_TEXT),
        ("close_code", OPT_TEXT),
        ("closed_at", OPT_TIME),
        ("reopen_count", INT),
        ("problem_id", OPT_TEXT),
        ("tags", TEXTS),
        ("custom_fields", OBJECT),
        ("first_response_at", OPT_TIME),
        ("reassignment_count", INT),
        ("external_ref", OPT_TEXT),
        ("sla_tier", OPT_TEXT),
        ("service_hours", OPT_TEXT),
    ),
)
_BOUNDS = ("priority_floor", "priority_ceiling")  # version 3
_SLA = ("first_response_at", "reassignment_count", "external_ref", "sla_tier", "service_hours")
# the incident of version 3: without the SLA fields of version 4 (``decode_v3``)
INCIDENT_V3 = Codec("incident", Incident, tuple(f for f in INCIDENT.fields if f[0] not in _SLA))
# the incident of version 2: without the bounds either (``decode_v2``)
INCIDENT_V2 = Codec(
    "incident", Incident, tuple(f for f in INCIDENT_V3.fields if f[0] not in _BOUNDS)
)
# a problem's incidents are its ``problem_incident`` records (with the time of each link)
PROBLEM = Codec(
    "problem",
    Problem,
    fields(
        ("id", TEXT),
        ("number", INT),
        ("title", TEXT),
        ("status", enum_field(ProblemStatus)),
        ("created_at", TIME),
        ("updated_at", TIME),
        ("root_ci_id", OPT_TEXT),
        ("reason", TEXT),
        ("signature", TEXT),
        ("known_error", OPT_TEXT),
        ("workaround", OPT_TEXT),
        ("assignee", OPT_TEXT),
        ("description", TEXT),
        ("root_cause", TEXT),
        ("fix", TEXT),
        ("fixing_change_id", OPT_TEXT),
        ("resolved_at", OPT_TIME),
        ("closed_at", OPT_TIME),
        ("resolution", TEXT),
    ),
)
# what version 5 added to the problem: its assignee, analysis, fix and resolution
_ANALYSIS = (
    "assignee",
    "description",
    "root_cause",
    "fix",
    "fixing_change_id",
    "resolved_at",
    "closed_at",
    "resolution",
)
# the problem of versions 2 to 4 (``decode_v4``)
PROBLEM_V4 = Codec("problem", Problem, tuple(f for f in PROBLEM.fields if f[0] not in _ANALYSIS))
PROBLEM_INCIDENT = Codec(
    "problem_incident",
    ProblemLink,
    fields(("problem_id", TEXT), ("incident_id", TEXT), ("linked_at", TIME)),
)
CHANGE = Codec(
    "change",
    Change,
    fields(
        ("id", TEXT),
        ("number", INT),
        ("title", TEXT),
        ("description", TEXT),
        ("status", enum_field(ChangeStatus)),
        ("risk", enum_field(ChangeRisk)),
        ("created_at", TIME),
        ("updated_at", TIME),
        ("created_by", TEXT),
        ("ci_ids", TEXTS),
        ("planned_start", OPT_TIME),
        ("planned_end", OPT_TIME),
        ("change_type", enum_field(ChangeType)),
        ("template", OPT_TEXT),
        ("assignee", OPT_TEXT),
        ("risk_reasons", TEXTS),
        ("risk_assessed_at", OPT_TIME),
        ("approvals_required", INT),
        (
            "approvals",
            items(
                ChangeApproval,
                ("approver", TEXT),
                ("decision", enum_field(ApprovalDecision)),
                ("at", TIME),
                ("comment", TEXT),
            ),
        ),
        (
            "tasks",
            items(
                ChangeTask,
                ("number", INT),
                ("title", TEXT),
                ("assignee", OPT_TEXT),
                ("status", enum_field(TaskStatus)),
                ("done_at", OPT_TIME),
                ("done_by", OPT_TEXT),
            ),
        ),
        (
            "conflict_overrides",
            items(ConflictOverride, ("other", TEXT), ("reason", TEXT), ("by", TEXT), ("at", TIME)),
        ),
        ("implementation_plan", TEXT),
        ("backout_plan", TEXT),
        ("actual_start", OPT_TIME),
        ("actual_end", OPT_TIME),
        ("close_code", OPT_TEXT),
        ("close_notes", TEXT),
    ),
)
# A change of versions 2 to 4: its fields up to the planned window, in the statuses of
# then, read as migration 13 maps them (completed: closed, ``decode_v4`` adds its code).
_V4_CHANGE_STATUS: tuple[Encode, Decode] = (
    enum_value,
    one_of(
        {
            "planned": ChangeStatus.DRAFT,
            "approved": ChangeStatus.SCHEDULED,
            "in_progress": ChangeStatus.IMPLEMENTING,
            "completed": ChangeStatus.CLOSED,
            "failed": ChangeStatus.FAILED,
            "cancelled": ChangeStatus.CANCELLED,
        }
    ),
)
_CHANGE_V4_FIELDS = fields(
    ("id", TEXT),
    ("number", INT),
    ("title", TEXT),
    ("description", TEXT),
    ("status", _V4_CHANGE_STATUS),
    ("risk", enum_field(ChangeRisk)),
    ("created_at", TIME),
    ("updated_at", TIME),
    ("created_by", TEXT),
    ("ci_ids", TEXTS),
    ("planned_start", OPT_TIME),
    ("planned_end", OPT_TIME),
)
CHANGE_V4 = Codec("change", Change, _CHANGE_V4_FIELDS)
CLOSED_BEFORE_5 = "successful"  # the close code of a change completed before version 5
# a period no change may be planned in (all CIs, or those named and what depends on them)
FREEZE_WINDOW = Codec(
    "freeze_window",
    FreezeWindow,
    fields(
        ("id", TEXT),
        ("name", TEXT),
        ("starts_at", TIME),
        ("ends_at", TIME),
        ("created_at", TIME),
        ("created_by", TEXT),
        ("reason", TEXT),
        ("ci_ids", TEXT_TUPLE),
    ),
)
TICKET_LINK = Codec(
    "ticket_link",
    TicketLink,
    fields(
        ("source_id", TEXT),
        ("kind", enum_field(LinkKind)),
        ("target_id", TEXT),
        ("created_at", TIME),
        ("created_by", TEXT),
    ),
)
WORKLOG = Codec(
    "worklog",
    WorklogEntry,
    fields(
        ("seq", INT),
        ("ticket_id", TEXT),
        ("at", TIME),
        ("actor", TEXT),
        ("kind", enum_field(WorklogKind)),
        ("text", TEXT),
        ("field", OPT_TEXT),
        ("old", OPT_TEXT),
        ("new", OPT_TEXT),
    ),
)

CODECS: dict[str, Codec] = {
    c.section: c
    for c in (
        ORGANISATION,
        AGENT,
        GROUP,
        CONTACT,
        SERVICE,
        CATEGORY,
        ALERT,
        ALERT_CYCLE,
        INCIDENT,
        PROBLEM,
        PROBLEM_INCIDENT,
        FREEZE_WINDOW,
        CHANGE,
        TICKET_LINK,
        WORKLOG,
    )
}
assert tuple(CODECS) == SECTIONS
_BY_KIND = {c.kind: c for c in CODECS.values()}

# The strictly increasing key of each section's records (see the module docstring): what
# it is called in errors, and how it is read from a record.
KEYS: dict[str, tuple[str, Callable[[Any], tuple[Any, ...]]]] = {
    "organisation": ("id", lambda s: (s.record.id,)),
    "agent": ("login", lambda s: (s.record.login,)),
    "group": ("id", lambda s: (s.record.id,)),
    "contact": ("id", lambda s: (s.record.id,)),
    "service": ("id", lambda s: (s.record.id,)),
    "category": ("path", lambda s: (s.record.path,)),
    "alert": ("fingerprint", lambda a: (a.fingerprint,)),
    "alert_cycle": ("fingerprint and fired_at", lambda c: (c.fingerprint, c.fired_at)),
    "incident": ("number", lambda i: (i.number,)),
    "problem": ("number", lambda p: (p.number,)),
    "problem_incident": ("problem_id and incident_id", lambda k: (k.problem_id, k.incident_id)),
    "freeze_window": ("id", lambda w: (w.id,)),
    "change": ("number", lambda c: (c.number,)),
    "ticket_link": (
        "source_id, kind and target_id",
        lambda k: (k.source_id, k.kind.value, k.target_id),
    ),
    "worklog": ("seq", lambda e: (e.seq,)),
}
assert tuple(KEYS) == SECTIONS


def codec_of(record: Record) -> Codec:
    kind = type(record.record) if isinstance(record, Stamped) else type(record)
    return _BY_KIND[kind]


def encode(record: Record) -> dict[str, Any]:
    """The JSON object of one record (its ``type`` is its section)."""
    return codec_of(record).encode(record)


def decode(obj: Mapping[str, Any]) -> Record:
    """The record of one JSON object of a version-5 file; ValidationFailed names
    ``<type>.<field>``."""
    return _decode(obj, CODECS)


# the records of each older version (a section it lacks is an unknown record type)
_V4_CODECS = {
    **{s: c for s, c in CODECS.items() if s in VERSION_SECTIONS[4]},
    "alert": ALERT_V4,
    "problem": PROBLEM_V4,
    "change": CHANGE_V4,
}
_V3_CODECS = {**_V4_CODECS, "incident": INCIDENT_V3}
_V2_CODECS = {**_V4_CODECS, "incident": INCIDENT_V2}


def _closed(record: Record) -> Record:
    """A change closed in a file before version 5 was completed: successfully (migration
    13); no status of then reads as closed otherwise."""
    if isinstance(record, Change) and record.status is ChangeStatus.CLOSED:
        record.close_code = CLOSED_BEFORE_5
    return record


def decode_v4(obj: Mapping[str, Any]) -> Record:
    """The record of one JSON object of a version-4 file: no freeze windows, a change in
    the statuses of then and without the fields of change management, a problem without
    its analysis, an alert without its change (see the module docstring)."""
    return _closed(_decode(obj, _V4_CODECS))


def _responded(record: Record) -> Record:
    """A ticket of a file before version 4 was answered when acknowledged (migration 12)."""
    if isinstance(record, Incident):
        record.first_response_at = record.acknowledged_at
    return record


def decode_v3(obj: Mapping[str, Any]) -> Record:
    """The record of one JSON object of a version-3 file: an incident without the SLA
    fields (``first_response_at`` its acknowledgement, as migration 12 sets it); the
    other records as version 4 has them (``decode_v4``)."""
    return _closed(_responded(_decode(obj, _V3_CODECS)))


def decode_v2(obj: Mapping[str, Any]) -> Record:
    """The record of one JSON object of a version-2 file: an incident has no bounds, or
    those of the routing override it carries (see the module docstring)."""
    record = _decode(obj, _V2_CODECS)
    if isinstance(record, Incident) and record.priority_set_by == ROUTING:
        record.priority_floor, record.priority_ceiling = legacy_bounds(record.priority_reason)
        record.priority_reason = record.priority_set_by = None
    return _closed(_responded(record))


# each version of the file's desk records (``servicegraph.runtime.export`` composes them)
DECODERS: Mapping[int, Callable[[Mapping[str, Any]], Record]] = {
    2: decode_v2,
    3: decode_v3,
    4: decode_v4,
    5: decode,
}
assert set(DECODERS) == set(VERSION_SECTIONS)


def _decode(obj: Mapping[str, Any], codecs: Mapping[str, Codec]) -> Record:
    kind = obj.get("type")
    codec = codecs.get(kind) if isinstance(kind, str) else None
    if codec is None:
        raise ValidationFailed(
            f"unknown record type {kind!r}; known: {', '.join(codecs)}", field="type"
        )
    record = codec.decode(obj)
    if isinstance(record, WorklogEntry) and record.seq < 1:
        raise ValidationFailed("must be positive", field="worklog.seq")
    if isinstance(record, Incident | Problem | Change) and record.number < 1:
        raise ValidationFailed("must be positive", field=f"{codec.section}.number")
    if isinstance(record, Incident):
        _check_bounds(record)
    if isinstance(record, FreezeWindow) and record.ends_at <= record.starts_at:
        raise ValidationFailed("must be after starts_at", field="freeze_window.ends_at")
    return record  # type: ignore[no-any-return]


def _check_bounds(incident: Incident) -> None:
    """A ceiling less urgent than the floor leaves no priority (``priority.clamp``)."""
    floor, ceiling = incident.priority_floor, incident.priority_ceiling
    if floor is not None and ceiling is not None and ceiling > floor:
        raise ValidationFailed(
            f"P{ceiling} is less urgent than the floor P{floor} (1 is the most urgent)",
            field="incident.priority_ceiling",
        )


def order_key(section: str, record: Any) -> tuple[Any, ...]:
    """The key ``record`` of ``section`` must come in, strictly increasing."""
    return KEYS[section][1](record)


def key_name(section: str) -> str:
    """What the key of ``section`` is (for the error that names it)."""
    return KEYS[section][0]
