"""The value codecs of the desk's export records: how one field's value is written as JSON
and read back (each decoder raises ``ValueError`` saying what is wrong; the record's codec
names the field), and ``Codec``, one section's record type with its fields, both ways.
The records themselves are declared in ``export_format``; ``Items`` are the value objects
a record holds a list of (a change's approvals, tasks and accepted conflicts), each one
JSON object with exactly its fields."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.cmdb.export_format import format_time
from servicegraph.events.model import Severity
from servicegraph.ticketing.catalogue import Defaults
from servicegraph.ticketing.ports import Stamped
from servicegraph.ticketing.priority import HIGHEST, LOWEST

# -- one value of a field, both ways ----------------------------------------------------------
# A decoder takes the JSON value and the field's name; it raises ValueError whose text says
# what is wrong (the record's decoder names the field).

Decode = Callable[[Any], Any]
Encode = Callable[[Any], Any]


def same(value: Any) -> Any:
    return value


def text_value(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    return value


def integer_value(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("must be an integer")
    return value


def number_value(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError("must be a number")
    return float(value)


def priority_value(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not HIGHEST <= value <= LOWEST:
        raise ValueError(f"must be a priority from {HIGHEST} (most urgent) to {LOWEST}")
    return value


def flag_value(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def time_value(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 time")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'{value}' is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"'{value}' has no time zone")
    return parsed.astimezone(dt.UTC)


def text_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of texts")
    return list(value)


def object_value(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("must be an object")
    return dict(value)


def label_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError("must be an object of texts")
    return dict(value)


def time_list(value: Any) -> list[dt.datetime]:
    if not isinstance(value, list):
        raise ValueError("must be a list of times")
    return [time_value(v) for v in value]


def nullable(decode: Decode) -> Decode:
    return lambda value: None if value is None else decode(value)


def choice(kind: type[enum.Enum]) -> Decode:
    return one_of({str(m.value): m for m in kind})


def one_of(values: Mapping[str, Any]) -> Decode:
    """The value each text stands for (an older file's statuses, as they read today)."""

    def decode(value: Any) -> Any:
        if not isinstance(value, str) or value not in values:
            raise ValueError(f"{value!r} is not one of {', '.join(values)}")
        return values[value]

    return decode


def severity_value(value: Any) -> Severity:
    names = [s.name.lower() for s in Severity]
    if not isinstance(value, str) or value not in names:
        raise ValueError(f"{value!r} is not one of {', '.join(names)}")
    return Severity[value.upper()]


def defaults_value(value: Any) -> Defaults:
    obj = object_value(value)
    unknown = set(obj) - DEFAULTS_KEYS
    if unknown:
        raise ValueError(f"unknown key '{sorted(unknown)[0]}'")
    return Defaults(**obj)  # checks its own values (ValidationFailed naming defaults.<key>)


DEFAULTS_KEYS = {"group", "priority", "impact", "urgency", "custom_fields"}


def defaults_json(d: Defaults) -> dict[str, Any]:
    return {
        "group": d.group,
        "priority": d.priority,
        "impact": d.impact,
        "urgency": d.urgency,
        "custom_fields": dict(d.custom_fields),
    }


def enum_value(member: Any) -> Any:
    return None if member is None else member.value


def time_text(value: dt.datetime | None) -> str | None:
    return None if value is None else format_time(value)


def enum_values(members: Any) -> list[Any]:
    return [m.value for m in members]


# A field: its name in the record, its key in the JSON object, the encoder, the decoder.
Field = tuple[str, str, Encode, Decode]
TEXT: tuple[Encode, Decode] = (same, text_value)
OPT_TEXT: tuple[Encode, Decode] = (same, nullable(text_value))
INT: tuple[Encode, Decode] = (same, integer_value)
FLAG: tuple[Encode, Decode] = (same, flag_value)
OPT_PRIORITY: tuple[Encode, Decode] = (same, nullable(priority_value))
TIME: tuple[Encode, Decode] = (format_time, time_value)
OPT_TIME: tuple[Encode, Decode] = (time_text, nullable(time_value))
TEXTS: tuple[Encode, Decode] = (list, text_list)
TEXT_TUPLE: tuple[Encode, Decode] = (list, lambda value: tuple(text_list(value)))
OBJECT: tuple[Encode, Decode] = (dict, object_value)


def enum_field(kind: type[enum.Enum], *, optional: bool = False) -> tuple[Encode, Decode]:
    decode = choice(kind)
    return (enum_value, nullable(decode) if optional else decode)


def fields(*specs: tuple[str, tuple[Encode, Decode]]) -> tuple[Field, ...]:
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
            return Stamped(record, self._value(obj, "updated_at", time_value))
        return record

    def _value(self, obj: Mapping[str, Any], key: str, decode: Decode) -> Any:
        if key not in obj:
            raise ValidationFailed("is required", field=f"{self.section}.{key}")
        try:
            return decode(obj[key])
        except ValidationFailed as exc:  # a value's own checks (defaults.priority)
            inner = exc.field if exc.field and exc.field.startswith(key) else key
            if exc.field and exc.field.startswith("["):  # one of its ``Items``
                inner = f"{key}{exc.field}"
            raise ValidationFailed(exc.reason, field=f"{self.section}.{inner}") from None
        except ValueError as exc:
            raise ValidationFailed(str(exc), field=f"{self.section}.{key}") from None


@dataclass(frozen=True)
class Items:
    """A list of value objects inside a record (a change's approvals): each written as a
    JSON object of ``fields``, read back refusing a missing or unknown key like a record
    (``ValidationFailed`` names ``[<index>].<key>``; the record's codec puts the field's
    name before it)."""

    kind: type
    fields: tuple[Field, ...]

    def encode(self, items: Any) -> list[dict[str, Any]]:
        return [
            {key: enc(getattr(item, name)) for name, key, enc, _ in self.fields} for item in items
        ]

    def decode(self, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise ValueError("must be a list of objects")
        return [self._item(n, obj) for n, obj in enumerate(value)]

    def _item(self, n: int, obj: Any) -> Any:
        if not isinstance(obj, dict):
            raise ValidationFailed("must be an object", field=f"[{n}]")
        unknown = sorted(set(obj) - {key for _, key, _, _ in self.fields})
        if unknown:
            raise ValidationFailed(
                "is not a field of this item (a file from a newer servicegraph?)",
                field=f"[{n}].{unknown[0]}",
            )
        values: dict[str, Any] = {}
        for name, key, _, decode in self.fields:
            if key not in obj:
                raise ValidationFailed("is required", field=f"[{n}].{key}")
            try:
                values[name] = decode(obj[key])
            except ValueError as exc:
                raise ValidationFailed(str(exc), field=f"[{n}].{key}") from None
        return self.kind(**values)


def items(kind: type, *specs: tuple[str, tuple[Encode, Decode]]) -> tuple[Encode, Decode]:
    """The field of a list of ``kind`` objects with these fields (see ``Items``)."""
    codec = Items(kind, fields(*specs))
    return (codec.encode, codec.decode)
