"""Prometheus Alertmanager webhook payloads (version 4) -> events.

Alertmanager groups alerts and re-sends a group's alerts at every notification; each alert
carries Alertmanager's own fingerprint (a hash of its label set), which we use as the alert
identity. The event id includes status and times, so a redelivered notification is
recognised while a new firing after a resolve is not.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from servicegraph.collectors.monitoring.payload import aware, parse_body
from servicegraph.correlation.model import Event, EventStatus, Severity, fingerprint_of

SOURCE = "alertmanager"


class AlertmanagerAlert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: dt.datetime
    endsAt: dt.datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class AlertmanagerPayload(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str = ""
    alerts: list[AlertmanagerAlert] = Field(min_length=1)


_ADAPTER = TypeAdapter(AlertmanagerPayload)


def parse(body: bytes, received_at: dt.datetime) -> list[Event]:
    payload = parse_body(body, _ADAPTER, what="alertmanager webhook")
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
