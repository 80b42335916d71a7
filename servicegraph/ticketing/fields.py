"""Custom fields: extra typed fields a deployment declares per ticket type and category.

Why: every desk wants to ask something the model does not know ("which laptop model?",
"which VPN profile?"); Znuny calls them dynamic fields, GLPI and iTop add them by plugin
or data model. Here they are declared in the settings file, as data, and checked by one
schema, so the portal, the API and the importer refuse the same values with the same
messages.

Declaration (``custom_fields:`` in the settings file)::

    service_request:                  # a ticket type: its tickets get these fields
      laptop_model: {type: choice, choices: [x1, t14], required: true}
    category:network:                 # a category: tickets filed under it or below
      site: {type: str, max_length: 40}
    category:network/vpn:             # ... and under network/vpn, the site field too
      vpn_profile: {type: choice, choices: [staff, contractor], default: staff}

Types and their keys (all take ``required``, ``default``, ``label``, ``description``):
``str`` (``max_length``, ``pattern``: the whole value must match), ``int`` and ``float``
(``min``, ``max``), ``bool``, ``date``, ``datetime``, ``choice`` (``choices``, needed) and
``list[str]`` (``choices``, ``max_items``, optional).

A ticket's fields are its type's, then its category's from the root down: a category
inherits its parents' fields, and a field declared again nearer the ticket replaces the
farther declaration (to make it required there, say). A field has one type everywhere,
since a ticket keeps its values when it moves to another category.

Values come back JSON-friendly, as they are stored and sent: dates as ``YYYY-MM-DD``,
date-times as ISO 8601 in UTC (a time without offset is taken as UTC), so that a value
reads the same before and after a round trip through the store. An empty string is no
value; ``None`` clears an optional field.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.ticketing.catalogue import check_path
from servicegraph.ticketing.model import TicketType

CATEGORY_PREFIX = "category:"

# Python types pydantic coerces each declared type to, and what to say when it cannot.
_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "str": TypeAdapter(str),
    "int": TypeAdapter(int),
    "float": TypeAdapter(float),
    "bool": TypeAdapter(bool),
    "date": TypeAdapter(dt.date),
    "datetime": TypeAdapter(dt.datetime),
    "choice": TypeAdapter(str),
    "list[str]": TypeAdapter(list[str]),
}
_EXPECTED = {
    "str": "must be text",
    "int": "must be a whole number",
    "float": "must be a number",
    "bool": "must be true or false",
    "date": "must be a date (YYYY-MM-DD)",
    "datetime": "must be a date and time (ISO 8601, e.g. 2026-03-01T09:30:00+01:00)",
    "choice": "must be text",  # with its choices named, see FieldSpec.coerce
    "list[str]": "must be a list of texts",
}
FIELD_TYPES = tuple(_ADAPTERS)
_COMMON_KEYS = {"type", "required", "default", "label", "description"}
_TYPE_KEYS: dict[str, set[str]] = {
    "str": {"max_length", "pattern"},
    "int": {"min", "max"},
    "float": {"min", "max"},
    "bool": set(),
    "date": set(),
    "datetime": set(),
    "choice": {"choices"},
    "list[str]": {"choices", "max_items"},
}
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class _Invalid(ValueError):
    """A value the field refuses; the schema turns it into ValidationFailed naming it."""


@dataclass(frozen=True)
class FieldSpec:
    """One declared custom field; ``scope`` is where (``service_request``,
    ``category:network/vpn``), ``default`` the coerced default (None: none)."""

    name: str
    type: str
    scope: str
    required: bool = False
    default: object = None
    label: str | None = None
    description: str | None = None
    choices: tuple[str, ...] | None = None
    max_length: int | None = None
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    max_items: int | None = None

    def coerce(self, value: object) -> object:
        """``value`` as this field's type, JSON-friendly; ``None`` for no value."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, bool) and self.type in ("int", "float"):
            raise _Invalid(_EXPECTED[self.type])  # pydantic would take True for 1
        if self.type in ("date", "datetime") and not isinstance(value, str | dt.date):
            raise _Invalid(_EXPECTED[self.type])  # nor a number of seconds for a date
        try:
            coerced = _ADAPTERS[self.type].validate_python(value)
        except PydanticValidationError:
            expected = _EXPECTED[self.type]
            if self.type == "choice" and self.choices is not None:
                expected = f"must be one of {', '.join(self.choices)}"
            raise _Invalid(f"{expected}, not {value!r}") from None
        return self._constrained(coerced)

    def _constrained(self, value: Any) -> object:
        if isinstance(value, str):
            value = value.strip()
        if self.type == "str":
            if self.max_length is not None and len(value) > self.max_length:
                raise _Invalid(f"must be at most {self.max_length} characters, not {len(value)}")
            if self.pattern is not None and not re.fullmatch(self.pattern, value):
                raise _Invalid(f"{value!r} does not match the pattern {self.pattern}")
        elif self.type in ("int", "float"):
            if not math.isfinite(value):
                raise _Invalid(f"must be a finite number, not {value}")
            if self.min is not None and value < self.min:
                raise _Invalid(f"must be at least {self.min}, not {value}")
            if self.max is not None and value > self.max:
                raise _Invalid(f"must be at most {self.max}, not {value}")
        elif self.type == "choice":
            self._one_of([value])
        elif self.type == "list[str]":
            value = [item.strip() for item in value]
            self._one_of(value)
            if self.max_items is not None and len(value) > self.max_items:
                raise _Invalid(f"must have at most {self.max_items} items, not {len(value)}")
        elif self.type == "datetime":
            aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
            return aware.astimezone(dt.UTC).isoformat()
        elif self.type == "date":
            return value.isoformat()
        return value

    def _one_of(self, values: Iterable[str]) -> None:
        if self.choices is None:
            return
        for value in values:
            if value not in self.choices:
                raise _Invalid(f"must be one of {', '.join(self.choices)}, not {value!r}")


class CustomFieldSchema:
    """The custom fields of a deployment, by scope; build it with ``build``."""

    def __init__(
        self, scopes: Mapping[str, Mapping[str, FieldSpec]], ticket_types: Iterable[str]
    ) -> None:
        self._scopes = {scope: dict(fields) for scope, fields in scopes.items()}
        self.ticket_types = tuple(ticket_types)

    @classmethod
    def build(
        cls,
        declaration: Mapping[str, Any] | None,
        *,
        ticket_types: Iterable[str] | None = None,
        path: str = "custom_fields",
    ) -> CustomFieldSchema:
        """The schema ``declaration`` declares (shape in the module docstring), refused
        naming the path at fault (``custom_fields.service_request.laptop_model.type``).
        ``ticket_types`` are the type scopes allowed (by default ``TicketType``'s)."""
        types = tuple(ticket_types or (t.value for t in TicketType))
        if declaration is None:
            return cls({}, types)
        if not isinstance(declaration, Mapping):
            raise ValidationFailed(
                "must map a ticket type or category:<path> to fields", field=path
            )
        scopes: dict[str, dict[str, FieldSpec]] = {}
        first: dict[str, FieldSpec] = {}  # each name's first declaration, for its type
        for scope, fields in declaration.items():
            where = f"{path}.{scope}"
            scope = _scope(scope, types, where)
            if not isinstance(fields, Mapping):
                raise ValidationFailed("must map field names to their declarations", field=where)
            scopes[scope] = {}
            for name, spec in fields.items():
                field = _parse_field(name, spec, scope, f"{where}.{name}")
                seen = first.setdefault(field.name, field)
                if seen.type != field.type:
                    raise ValidationFailed(
                        f"is {field.type!r} but {seen.type!r} under {seen.scope!r}: a custom "
                        "field has one type everywhere",
                        field=f"{where}.{name}.type",
                    )
                scopes[scope][field.name] = field
        return cls(scopes, types)

    def fields_for(
        self, ticket_type: str, category_path: str | None = None
    ) -> dict[str, FieldSpec]:
        """The fields of a ticket of ``ticket_type`` filed under ``category_path``: the
        type's, then each category's from the root down, the nearest declaration winning."""
        if ticket_type not in self.ticket_types:
            raise ValidationFailed(
                f"unknown ticket type {ticket_type!r}; types: {', '.join(self.ticket_types)}",
                field="ticket_type",
            )
        merged = dict(self._scopes.get(ticket_type, {}))
        if category_path is not None:
            parts = check_path(category_path, "category").split("/")
            for depth in range(1, len(parts) + 1):
                scope = CATEGORY_PREFIX + "/".join(parts[:depth])
                merged.update(self._scopes.get(scope, {}))
        return merged

    def validate(
        self,
        ticket_type: str,
        category_path: str | None,
        values: Mapping[str, object],
        *,
        partial: bool = False,
        item: str | None = None,
    ) -> dict[str, object]:
        """``values`` coerced (JSON-friendly, in declaration order), defaults filled in.

        With ``partial`` (an update), fields not given are neither required nor defaulted,
        but a required field given as empty is still refused. Errors name
        ``custom_fields.<name>`` (and ``item``, the ticket, when given): an unknown field,
        a value of the wrong type or out of its bounds, a missing required one. One error
        raises ``ValidationFailed``; several raise ``ValidationErrors`` listing each.
        """
        specs = self.fields_for(ticket_type, category_path)
        if not isinstance(values, Mapping):
            raise ValidationFailed(
                "must map field names to values", item=item, field="custom_fields"
            )
        errors: list[ValidationFailed] = []
        out: dict[str, object] = {}

        def fail(name: str, message: str) -> None:
            errors.append(ValidationFailed(message, item=item, field=f"custom_fields.{name}"))

        for name, value in values.items():
            spec = specs.get(name)
            if spec is None:
                fail(name, f"no such custom field {_where(ticket_type, category_path)}; "
                     f"fields: {', '.join(specs) or 'none'}")  # fmt: skip
                continue
            try:
                out[name] = spec.coerce(value)
            except _Invalid as exc:
                fail(name, str(exc))
                continue
            if out[name] is None and spec.required:
                fail(name, f"is required {_where(ticket_type, category_path)}")
        for name, spec in specs.items():
            if partial or name in values:
                continue
            if spec.default is not None:  # a copy: the caller may change the list it gets
                out[name] = list(spec.default) if isinstance(spec.default, list) else spec.default
            elif spec.required:
                fail(name, f"is required {_where(ticket_type, category_path)}")
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ValidationErrors(errors)
        return {name: out[name] for name in specs if name in out}


def _where(ticket_type: str, category_path: str | None) -> str:
    return f"for {ticket_type}" + (f" in {category_path}" if category_path else "")


def _scope(scope: object, ticket_types: tuple[str, ...], field: str) -> str:
    if isinstance(scope, str) and scope.startswith(CATEGORY_PREFIX):
        return CATEGORY_PREFIX + check_path(scope[len(CATEGORY_PREFIX) :], field)
    if scope not in ticket_types:
        raise ValidationFailed(
            f"unknown ticket type {scope!r}; use one of {', '.join(ticket_types)}, "
            f"or {CATEGORY_PREFIX}<path> for a category",
            field=field,
        )
    return str(scope)


def _parse_field(name: object, spec: object, scope: str, field: str) -> FieldSpec:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationFailed(
            "field names are lower case letters, digits and underscores", field=field
        )
    if not isinstance(spec, Mapping):
        raise ValidationFailed("must be a mapping with at least 'type'", field=field)
    kind = spec.get("type")
    if kind not in _TYPE_KEYS:
        raise ValidationFailed(
            f"unknown type {kind!r}; use one of {', '.join(FIELD_TYPES)}", field=f"{field}.type"
        )
    known = _COMMON_KEYS | _TYPE_KEYS[kind]
    unknown = sorted(str(key) for key in spec if key not in known)
    if unknown:
        raise ValidationFailed(
            f"unknown keys {unknown} for a {kind} field; use {', '.join(sorted(known))}",
            field=field,
        )
    if kind == "choice" and "choices" not in spec:
        raise ValidationFailed("a choice field needs choices", field=f"{field}.choices")
    parsed = FieldSpec(
        name,
        kind,
        scope,
        required=_flag(spec.get("required", False), f"{field}.required"),
        label=_text(spec.get("label"), f"{field}.label"),
        description=_text(spec.get("description"), f"{field}.description"),
        **_constraints(kind, spec, field),
    )
    if spec.get("default") is None:
        return parsed
    try:
        return replace(parsed, default=parsed.coerce(spec["default"]))
    except _Invalid as exc:
        raise ValidationFailed(f"the default {exc}", field=f"{field}.default") from None


def _constraints(kind: str, spec: Mapping[str, Any], field: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list | tuple) or not choices:
            raise ValidationFailed("must be a non-empty list", field=f"{field}.choices")
        if not all(isinstance(c, str) and c.strip() == c and c for c in choices):
            raise ValidationFailed("choices are non-blank texts", field=f"{field}.choices")
        if len(set(choices)) != len(choices):
            raise ValidationFailed("choices must be distinct", field=f"{field}.choices")
        found["choices"] = tuple(choices)
    for key in ("max_length", "max_items"):
        if key in spec:
            found[key] = _count(spec[key], f"{field}.{key}")
    if "pattern" in spec:
        try:
            if not isinstance(spec["pattern"], str):
                raise TypeError("must be text")
            re.compile(spec["pattern"])
        except (re.error, TypeError) as exc:
            raise ValidationFailed(
                f"not a regular expression: {exc}", field=f"{field}.pattern"
            ) from None
        found["pattern"] = spec["pattern"]
    for key in ("min", "max"):
        if key in spec:
            found[key] = _bound(spec[key], kind, f"{field}.{key}")
    if "min" in found and "max" in found and found["min"] > found["max"]:
        raise ValidationFailed(f"is above max {found['max']}", field=f"{field}.min")
    return found


def _bound(value: object, kind: str, field: str) -> float:
    numeric = int if kind == "int" else int | float
    if isinstance(value, bool) or not isinstance(value, numeric):
        whole = "a whole number" if kind == "int" else "a number"
        raise ValidationFailed(f"must be {whole}", field=field)
    return value


def _count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationFailed("must be a whole number, 1 or more", field=field)
    return value


def _flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed("must be true or false", field=field)
    return value


def _text(value: object, field: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValidationFailed("must be text", field=field)
    return value
