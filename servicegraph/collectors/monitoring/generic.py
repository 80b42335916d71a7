"""The generic JSON event API: for any tool that can POST JSON.

Identity: ``fingerprint`` if given, else a hash of the source, the name and the labels
named in ``fingerprint_labels`` (default: all labels). Idempotency: ``event_id`` if given,
else a hash of the whole event including its time, so a retried POST is counted once.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from servicegraph.collectors.monitoring.payload import UtcTime, aware, parse_body
from servicegraph.events.model import Event, EventStatus, Severity, digest, fingerprint_of

SOURCE = "generic"
MAX_BATCH = 10_000


class GenericEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=500)
    status: Literal["firing", "resolved"] = "firing"
    severity: str = "warning"
    source: str = Field(default=SOURCE, min_length=1, max_length=100)
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str = ""
    occurred_at: UtcTime | None = None
    fingerprint: str | None = Field(default=None, min_length=1)
    fingerprint_labels: list[str] | None = None
    event_id: str | None = Field(default=None, min_length=1)
    ci_id: str | None = None


class GenericBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[GenericEvent] = Field(min_length=1, max_length=MAX_BATCH)


_ONE = TypeAdapter(GenericEvent)
_MANY = TypeAdapter(GenericBatch)


def parse_one(body: bytes, received_at: dt.datetime) -> list[Event]:
    return [to_event(parse_body(body, _ONE, what="event"), received_at)]


def parse_batch(body: bytes, received_at: dt.datetime) -> list[Event]:
    batch = parse_body(body, _MANY, what="event batch")
    return [to_event(e, received_at) for e in batch.events]


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
