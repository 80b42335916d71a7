"""Events on the wire: the one JSON form an ``Event`` takes between processes.

msgspec writes the dataclass as it is: an object per event, its fields by name, the status
as its word, the severity as its number (``Severity`` is ordered), times in RFC 3339.
The durable inbox stores this form, and Celery tasks carry it (as the equivalent plain
dicts, which Celery's JSON serializer writes the same way), so that an event read back is
the event that was written: ids and fingerprints, the idempotency keys, are untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from servicegraph.events.model import Event

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(list[Event])


def encode_events(events: Sequence[Event]) -> bytes:
    """A JSON array of ``events``."""
    return _ENCODER.encode(events)


def decode_events(data: bytes | str) -> list[Event]:
    """The events of ``encode_events``. Raises msgspec.DecodeError (its ValidationError
    when the JSON is not an array of events)."""
    return _DECODER.decode(data)


def events_to_dicts(events: Sequence[Event]) -> list[dict[str, Any]]:
    """``encode_events`` as plain dicts and strings (for a JSON serializer of its own)."""
    result: list[dict[str, Any]] = msgspec.to_builtins(events)
    return result


def events_from_dicts(data: Sequence[Mapping[str, Any]]) -> list[Event]:
    """The events of ``events_to_dicts``. Raises msgspec.ValidationError naming the field
    (``Expected `str`, got `int` - at `$[0].name```)."""
    return msgspec.convert(data, list[Event])
