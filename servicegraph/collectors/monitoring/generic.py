"""The generic JSON event API: for any tool that can POST JSON.

Identity: ``fingerprint`` if given, else a hash of the source, the name and the labels
named in ``fingerprint_labels`` (default: all labels). Idempotency: ``event_id`` if given,
else a hash of the whole event including its time, so a retried POST is counted once.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from servicegraph.collectors.monitoring.payload import Time, aware, decode_body, to_events
from servicegraph.events.model import Event, EventStatus, Severity, digest, fingerprint_of

SOURCE = "generic"
MAX_BATCH = 10_000

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class GenericEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    status: Literal["firing", "resolved"] = "firing"
    severity: str = "warning"
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = SOURCE
    labels: dict[str, str] = {}
    summary: str = ""
    occurred_at: Time | None = None
    fingerprint: _NonEmpty | None = None
    fingerprint_labels: list[str] | None = None
    event_id: _NonEmpty | None = None
    ci_id: str | None = None


class GenericBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    events: Annotated[list[GenericEvent], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


# Not strict: a time may also be given as Unix seconds (a number, or a string of one), as
# scripts often send it; the strings are RFC 3339 (``Time``).
_ONE = msgspec.json.Decoder(GenericEvent, strict=False)
_MANY = msgspec.json.Decoder(GenericBatch, strict=False)
_TIMES = ("occurred_at",)


def parse_one(body: bytes, received_at: dt.datetime) -> list[Event]:
    event = decode_body(body, _ONE, what="event")
    return to_events([event], to_event, received_at, what="event", path=None, times=_TIMES)


def parse_batch(body: bytes, received_at: dt.datetime) -> list[Event]:
    batch = decode_body(body, _MANY, what="event batch")
    return to_events(
        batch.events, to_event, received_at, what="event batch", path="events", times=_TIMES
    )


def to_event(g: GenericEvent, received_at: dt.datetime) -> Event:
    labels = dict(g.labels)
    if g.ci_id:
        labels["ci_id"] = g.ci_id
    occurred = aware(g.occurred_at, received_at) if g.occurred_at else received_at
    fields = g.fingerprint_labels if g.fingerprint_labels is not None else list(labels)
    fingerprint = g.fingerprint or fingerprint_of(g.source, g.name, labels, fields)
    status = EventStatus(g.status)
    return Event(
        source=g.source,
        name=g.name,
        status=status,
        severity=Severity.parse(g.severity),
        occurred_at=occurred,
        fingerprint=fingerprint,
        event_id=g.event_id
        or digest(g.source, fingerprint, status.value, occurred, g.severity, g.summary),
        labels=labels,
        summary=g.summary,
        received_at=received_at,
    )
