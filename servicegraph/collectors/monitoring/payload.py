"""Shared helpers: parse a JSON body with pydantic and report the first bad field."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, TypeVar

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from servicegraph.cmdb.errors import ValidationFailed

T = TypeVar("T")


def parse_body(body: bytes, adapter: TypeAdapter[T], *, what: str) -> T:
    """Validate a JSON body; raise ValidationFailed naming the field (``alerts.0.startsAt``)."""
    try:
        data: Any = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"the body is not valid JSON: {exc}", item=what) from None
    try:
        return adapter.validate_python(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or None
        raise ValidationFailed(first["msg"], item=what, field=location) from None


def aware(value: dt.datetime, default: dt.datetime) -> dt.datetime:
    """UTC-aware time; Go's zero time (0001-01-01) and naive times are handled."""
    if value.year <= 1:
        return default
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
