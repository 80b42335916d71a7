"""Shared helpers: parse a JSON body with pydantic and report the first bad field."""

from __future__ import annotations

import datetime as dt
from typing import TypeVar

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from servicegraph.cmdb.errors import ValidationFailed

T = TypeVar("T")


def parse_body(body: bytes, adapter: TypeAdapter[T], *, what: str) -> T:
    """Validate a JSON body; raise ValidationFailed naming the field (``alerts.0.startsAt``)."""
    # pydantic parses and validates the bytes in one pass, without building Python dicts
    try:
        return adapter.validate_json(body)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise ValidationFailed(
                f"the body is not valid JSON: {first['msg']}", item=what
            ) from None
        location = ".".join(str(part) for part in first["loc"]) or None
        raise ValidationFailed(first["msg"], item=what, field=location) from None


_ZERO = dt.timedelta(0)


def aware(value: dt.datetime, default: dt.datetime) -> dt.datetime:
    """UTC-aware time; Go's zero time (0001-01-01) and naive times are handled."""
    if value.year <= 1:
        return default
    tz = value.tzinfo
    if tz is dt.UTC:
        return value
    if tz is None or tz.utcoffset(value) == _ZERO:  # pydantic's own UTC is not dt.UTC
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
