"""The desk's records in an export file (format version 3; version 2 still read): each as
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
  (an incident recorded as an instance of a problem, and when), ``change`` (with its CIs in
  order), ``ticket_link``, ``worklog`` (with its ``seq``, and the field changed, old and
  new).

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
migration 11 of the SQLite store does (``tickets_routing.legacy_bounds``).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.cmdb.export_format import format_time
from servicegraph.events.model import Alert, AlertCycle, EventStatus, Severity
from servicegraph.ticketing.catalogue import Category, Defaults, Service
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
from servicegraph.ticketing.priority import HIGHEST, LOWEST
from servicegraph.ticketing.tickets_routing import ROUTING, legacy_bounds

DIRECTORY_SECTIONS = ("organisation", "agent", "group", "contact", "service", "category")
TICKET_SECTIONS = (
    "alert",
    "alert_cycle",
    "incident",
    "problem",
    "problem_incident",
    "change",
    "ticket_link",
    "worklog",
)
SECTIONS = DIRECTORY_SECTIONS + TICKET_SECTIONS

Record = (
    Stamped[Any]  # of an Organisation, Agent, Group, Contact, Service or Category
    | Alert
    | AlertCycle
    | Incident
    | Problem
    | ProblemLink
    | Change
    | TicketLink
    | WorklogEntry
)

# -- one value of a field, both ways ----------------------------------------------------------
# A decoder takes the JSON value and the field's name; it raises ValueError whose text says
# what is wrong (the record's decoder names the field).

Decode = Callable[[Any], Any]
Encode = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    return value


def _integer(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("must be an integer")
    return value


def _number(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError("must be a number")
    return float(value)


def _priority(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not HIGHEST <= value <= LOWEST:
        raise ValueError(f"must be a priority from {HIGHEST} (most urgent) to {LOWEST}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _time(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 time")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'{value}' is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"'{value}' has no time zone")
    return parsed.astimezone(dt.UTC)


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of texts")
    return list(value)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("must be an object")
    return dict(value)


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError("must be an object of texts")
    return dict(value)


def _times(value: Any) -> list[dt.datetime]:
    if not isinstance(value, list):
        raise ValueError("must be a list of times")
    return [_time(v) for v in value]


def _optional(decode: Decode) -> Decode:
    return lambda value: None if value is None else decode(value)


def _choice(kind: type[enum.Enum]) -> Decode:
    values = {str(m.value): m for m in kind}

    def decode(value: Any) -> Any:
        if not isinstance(value, str) or value not in values:
            raise ValueError(f"{value!r} is not one of {', '.join(values)}")
        return values[value]

    return decode


def _severity(value: Any) -> Severity:
    names = [s.name.lower() for s in Severity]
    if not isinstance(value, str) or value not in names:
        raise ValueError(f"{value!r} is not one of {', '.join(names)}")
    return Severity[value.upper()]


def _defaults(value: Any) -> Defaults:
    obj = _object(value)
    unknown = set(obj) - _DEFAULTS_KEYS
    if unknown:
        raise ValueError(f"unknown key '{sorted(unknown)[0]}'")
    return Defaults(**obj)  # checks its own values (ValidationFailed naming defaults.<key>)


_DEFAULTS_KEYS = {"group", "priority", "impact", "urgency", "custom_fields"}


def _defaults_json(d: Defaults) -> dict[str, Any]:
    return {
        "group": d.group,
        "priority": d.priority,
        "impact": d.impact,
        "urgency": d.urgency,
        "custom_fields": dict(d.custom_fields),
    }


def _enum_value(member: Any) -> Any:
    return None if member is None else member.value


def _time_text(value: dt.datetime | None) -> str | None:
    return None if value is None else format_time(value)


def _values(members: Any) -> list[Any]:
    return [m.value for m in members]


# A field: its name in the record, its key in the JSON object, the encoder, the decoder.
Field = tuple[str, str, Encode, Decode]
TEXT: tuple[Encode, Decode] = (_same, _text)
OPT_TEXT: tuple[Encode, Decode] = (_same, _optional(_text))
INT: tuple[Encode, Decode] = (_same, _integer)
FLAG: tuple[Encode, Decode] = (_same, _flag)
OPT_PRIORITY: tuple[Encode, Decode] = (_same, _optional(_priority))
TIME: tuple[Encode, Decode] = (format_time, _time)
OPT_TIME: tuple[Encode, Decode] = (_time_text, _optional(_time))
TEXTS: tuple[Encode, Decode] = (list, _texts)
OBJECT: tuple[Encode, Decode] = (dict, _object)


def _enum(kind: type[enum.Enum], *, optional: bool = False) -> tuple[Encode, Decode]:
    decode = _choice(kind)
    return (_enum_value, _optional(decode) if optional else decode)


def _fields(*specs: tuple[str, tuple[Encode, Decode]]) -> tuple[Field, ...]:
    """Fields named alike in the record and the file; ``type`` names the record's section
    in the file, so a record's own ``type`` (a ticket's) is written as ``ticket_type``."""
    return tuple(
        (name, "ticket_type" if name == "type" else name, enc, dec) for name, (enc, dec) in specs
    )


# -- each record type -------------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    """How one section's records are written and read: the record class, its fields (every
    field the export carries, in the order written), and whether it comes ``Stamped`` with
    the time it was last saved (the directory's records)."""

    section: str
    kind: type
    fields: tuple[Field, ...]
    stamped: bool = False

    def encode(self, record: Any) -> dict[str, Any]:
        inner = record.record if self.stamped else record
        obj: dict[str, Any] = {"type": self.section}
        for name, key, encode, _ in self.fields:
            obj[key] = encode(getattr(inner, name))
        if self.stamped:
            obj["updated_at"] = format_time(record.updated_at)
        return obj

    def decode(self, obj: Mapping[str, Any]) -> Any:
        keys = [key for _, key, _, _ in self.fields]
        expected = {"type", *keys, *(("updated_at",) if self.stamped else ())}
        unknown = sorted(set(obj) - expected)
        if unknown:
            raise ValidationFailed(
                "is not a field of this record (a file from a newer servicegraph?)",
                field=f"{self.section}.{unknown[0]}",
            )
        values: dict[str, Any] = {}
        for name, key, _, decode in self.fields:
            values[name] = self._value(obj, key, decode)
        try:
            record = self.kind(**values)
        except ValidationFailed as exc:  # the record's own checks (people, catalogue)
            raise ValidationFailed(exc.reason, field=f"{self.section}.{exc.field}") from None
        except ValidationErrors as exc:
            first = exc.errors[0]
            raise ValidationFailed(first.reason, field=f"{self.section}.{first.field}") from None
        if self.stamped:
            return Stamped(record, self._value(obj, "updated_at", _time))
        return record

    def _value(self, obj: Mapping[str, Any], key: str, decode: Decode) -> Any:
        if key not in obj:
            raise ValidationFailed("is required", field=f"{self.section}.{key}")
        try:
            return decode(obj[key])
        except ValidationFailed as exc:  # a value's own checks (defaults.priority)
            inner = exc.field if exc.field and exc.field.startswith(key) else key
            raise ValidationFailed(exc.reason, field=f"{self.section}.{inner}") from None
        except ValueError as exc:
            raise ValidationFailed(str(exc), field=f"{self.section}.{key}") from None


ORGANISATION = Codec(
    "organisation",
    Organisation,
    _fields(("id", TEXT), ("name", TEXT), ("domains", (list, _texts)), ("notes", TEXT)),
    stamped=True,
)
# membership is the group's ``members``; an agent's ``groups`` are the same pairs
AGENT = Codec(
    "agent",
    Agent,
    _fields(
        ("login", TEXT),
        ("name", TEXT),
        ("email", TEXT),
        ("phone", OPT_TEXT),
        ("roles", (_values, _texts)),
        ("active", FLAG),
    ),
    stamped=True,
)
GROUP = Codec(
    "group",
    Group,
    _fields(
        ("id", TEXT),
        ("name", TEXT),
        ("email", OPT_TEXT),
        ("manager", OPT_TEXT),
        ("description", TEXT),
        ("members", (list, _texts)),
    ),
    stamped=True,
)
CONTACT = Codec(
    "contact",
    Contact,
    _fields(
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
    _fields(
        ("id", TEXT),
        ("name", TEXT),
        ("ci_id", OPT_TEXT),
        ("owner_group", OPT_TEXT),
        ("request_types", (_values, _texts)),
        ("defaults", (_defaults_json, _defaults)),
        ("description", TEXT),
        ("active", FLAG),
    ),
    stamped=True,
)
CATEGORY = Codec(
    "category",
    Category,
    _fields(
        ("path", TEXT),
        ("name", TEXT),
        ("owner_group", OPT_TEXT),
        ("defaults", (_defaults_json, _defaults)),
        ("types", (_values, _texts)),
    ),
    stamped=True,
)
ALERT = Codec(
    "alert",
    Alert,
    _fields(
        ("fingerprint", TEXT),
        ("source", TEXT),
        ("name", TEXT),
        ("severity", (lambda s: s.name.lower(), _severity)),
        ("status", _enum(EventStatus)),
        ("labels", (dict, _labels)),
        ("summary", TEXT),
        ("first_seen", TIME),
        ("last_seen", TIME),
        ("last_change", TIME),
        ("count", INT),
        ("ci_id", OPT_TEXT),
        ("incident_id", OPT_TEXT),
        ("cleared_at", OPT_TIME),
        ("flapping", FLAG),
        ("transitions", (lambda ts: [format_time(t) for t in ts], _times)),
        ("reported_at", OPT_TIME),
    ),
)
ALERT_CYCLE = Codec(
    "alert_cycle",
    AlertCycle,
    _fields(
        ("fingerprint", TEXT),
        ("fired_at", TIME),
        ("cleared_at", OPT_TIME),
        ("incident_id", OPT_TEXT),
    ),
)
INCIDENT = Codec(
    "incident",
    Incident,
    _fields(
        ("id", TEXT),
        ("number", INT),
        ("type", _enum(TicketType)),
        ("title", TEXT),
        ("description", TEXT),
        ("status", _enum(TicketStatus)),
        ("channel", _enum(Channel)),
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
        ("root_confidence", (_same, _number)),
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
    ),
)
_BOUNDS = ("priority_floor", "priority_ceiling")  # version 3
# the incident of version 2: without the bounds (``decode_v2``)
INCIDENT_V2 = Codec("incident", Incident, tuple(f for f in INCIDENT.fields if f[0] not in _BOUNDS))
# a problem's incidents are its ``problem_incident`` records (with the time of each link)
PROBLEM = Codec(
    "problem",
    Problem,
    _fields(
        ("id", TEXT),
        ("number", INT),
        ("title", TEXT),
        ("status", _enum(ProblemStatus)),
        ("created_at", TIME),
        ("updated_at", TIME),
        ("root_ci_id", OPT_TEXT),
        ("reason", TEXT),
        ("signature", TEXT),
        ("known_error", OPT_TEXT),
        ("workaround", OPT_TEXT),
    ),
)
PROBLEM_INCIDENT = Codec(
    "problem_incident",
    ProblemLink,
    _fields(("problem_id", TEXT), ("incident_id", TEXT), ("linked_at", TIME)),
)
CHANGE = Codec(
    "change",
    Change,
    _fields(
        ("id", TEXT),
        ("number", INT),
        ("title", TEXT),
        ("description", TEXT),
        ("status", _enum(ChangeStatus)),
        ("risk", _enum(ChangeRisk)),
        ("created_at", TIME),
        ("updated_at", TIME),
        ("created_by", TEXT),
        ("ci_ids", TEXTS),
        ("planned_start", OPT_TIME),
        ("planned_end", OPT_TIME),
    ),
)
TICKET_LINK = Codec(
    "ticket_link",
    TicketLink,
    _fields(
        ("source_id", TEXT),
        ("kind", _enum(LinkKind)),
        ("target_id", TEXT),
        ("created_at", TIME),
        ("created_by", TEXT),
    ),
)
WORKLOG = Codec(
    "worklog",
    WorklogEntry,
    _fields(
        ("seq", INT),
        ("ticket_id", TEXT),
        ("at", TIME),
        ("actor", TEXT),
        ("kind", _enum(WorklogKind)),
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
    """The record of one JSON object of a version-3 file; ValidationFailed names
    ``<type>.<field>``."""
    return _decode(obj, CODECS)


_V2_CODECS = {**CODECS, "incident": INCIDENT_V2}


def decode_v2(obj: Mapping[str, Any]) -> Record:
    """The record of one JSON object of a version-2 file: an incident has no bounds, or
    those of the routing override it carries (see the module docstring)."""
    record = _decode(obj, _V2_CODECS)
    if isinstance(record, Incident) and record.priority_set_by == ROUTING:
        record.priority_floor, record.priority_ceiling = legacy_bounds(record.priority_reason)
        record.priority_reason = record.priority_set_by = None
    return record


# each version of the file's desk records (``servicegraph.runtime.export`` composes them)
DECODERS: Mapping[int, Callable[[Mapping[str, Any]], Record]] = {2: decode_v2, 3: decode}


def _decode(obj: Mapping[str, Any], codecs: Mapping[str, Codec]) -> Record:
    kind = obj.get("type")
    codec = codecs.get(kind) if isinstance(kind, str) else None
    if codec is None:
        raise ValidationFailed(
            f"unknown record type {kind!r}; known: {', '.join(SECTIONS)}", field="type"
        )
    record = codec.decode(obj)
    if isinstance(record, WorklogEntry) and record.seq < 1:
        raise ValidationFailed("must be positive", field="worklog.seq")
    if isinstance(record, Incident | Problem | Change) and record.number < 1:
        raise ValidationFailed("must be positive", field=f"{codec.section}.number")
    if isinstance(record, Incident):
        _check_bounds(record)
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
