"""What the pushed formats share: a JSON body decoded and validated by msgspec in one pass
(into the format's Structs, without building Python dicts first), its first bad field
reported in one format (``alerts.0.startsAt``, ``body`` for the body as a whole), and
times read as UTC."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

import msgspec

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.events.model import Event

T = TypeVar("T")
S = TypeVar("S")

# The field named when the fault is the body as a whole (not JSON, nested too deep).
BODY = "body"
_TOO_DEEP = "the JSON is nested too deeply; no event format nests more than a few levels"

# A time of a payload, in RFC 3339. One without an offset is read as UTC, Go's zero time
# (0001-01-01) as "not given" (``aware``). msgspec describes only times that must have an
# offset as ``date-time``: said here for the OpenAPI description.
Time = Annotated[dt.datetime, msgspec.Meta(extra_json_schema={"format": "date-time"})]


def decode_body(body: bytes, decoder: msgspec.json.Decoder[T], *, what: str) -> T:
    """The payload of a JSON ``body``; raises ValidationFailed naming the field at fault."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        reason, field = reason_and_field(str(exc))
        raise ValidationFailed(reason, item=what, field=field) from None
    except msgspec.DecodeError as exc:
        raise ValidationFailed(
            f"the body is not valid JSON: {exc}", item=what, field=BODY
        ) from None
    except RecursionError:  # msgspec recurses per level, and raises past Python's limit
        raise ValidationFailed(_TOO_DEEP, item=what, field=BODY) from None


# msgspec's ValidationError carries no path but in its text, which ends with it:
# "Expected `str` of length >= 1 - at `$.events[1].name`" (dict keys are "[...]").
_AT = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_STEP = re.compile(r"[.\[\]]+")
# the two messages that name the field in their text, not in the path
_NAMED = re.compile(
    r"^Object (?P<fault>missing required|contains unknown) field `(?P<name>.*)`$", re.DOTALL
)


def reason_and_field(message: str) -> tuple[str, str]:
    """The reason and the field (``alerts.1.startsAt``; ``body`` for the body as a whole)
    of a msgspec ValidationError's message: msgspec's reason, but "Field required" for a
    missing field (the field names it)."""
    match = _AT.match(message)
    assert match is not None  # the pattern matches any text
    reason, path = match["reason"], match["path"] or ""
    parts = [p for p in _STEP.split(path) if p and p != "..."]
    named = _NAMED.match(reason)
    if named:
        parts.append(named["name"])
        if named["fault"] == "missing required":
            reason = "Field required"
    return reason, ".".join(parts) or BODY


_ZERO = dt.timedelta(0)


def aware(value: dt.datetime, default: dt.datetime) -> dt.datetime:
    """UTC-aware time; Go's zero time (0001-01-01) and naive times are handled. Raises
    OverflowError when the conversion leaves years 1 to 9999."""
    if value.year <= 1:
        return default
    tz = value.tzinfo
    if tz is dt.UTC:
        return value
    if tz is None or tz.utcoffset(value) == _ZERO:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


OUT_OF_RANGE = "the time is out of range once converted to UTC (years 1 to 9999)"


def to_events(
    items: Sequence[S],
    to_event: Callable[[S, dt.datetime], Event],
    received_at: dt.datetime,
    *,
    what: str,
    path: str | None,
    times: tuple[str, ...],
) -> list[Event]:
    """The events of a payload's ``items``, which the list at ``path`` of the body holds
    (None: the body is the one item). A time that cannot be converted to UTC
    (``9999-12-31T23:59:59-23:59``) is a bad field, the first of ``times`` to fail named."""
    try:
        return [to_event(item, received_at) for item in items]
    except OverflowError:
        raise ValidationFailed(
            OUT_OF_RANGE, item=what, field=_out_of_range(items, path, times)
        ) from None


def _out_of_range(items: Sequence[S], path: str | None, times: tuple[str, ...]) -> str:
    for index, item in enumerate(items):
        for name in times:
            value: dt.datetime | None = getattr(item, name)
            if value is None:
                continue
            try:
                aware(value, value)
            except OverflowError:
                return name if path is None else f"{path}.{index}.{name}"
    return path or BODY
