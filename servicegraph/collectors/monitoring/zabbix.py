"""Zabbix webhook media type payloads -> events.

The media-type script shipped in ``contrib/zabbix/servicegraph_media_type.js`` posts one
JSON object per problem or recovery. A recovery carries the problem's event id, so both
share the fingerprint.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from servicegraph.collectors.monitoring.payload import UtcTime, aware, parse_body
from servicegraph.events.model import Event, EventStatus, Severity

SOURCE = "zabbix"


_STATUSES = ("PROBLEM", "FIRING", "RESOLVED", "OK", "RECOVERY")


class ZabbixTag(BaseModel):
    tag: str
    value: str = ""


class ZabbixEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, description="{EVENT.ID}: the problem event")
    recovery_id: str = Field(default="", description="{EVENT.RECOVERY.ID} on recovery")
    status: str = Field(
        description="PROBLEM, RESOLVED (or OK / RECOVERY), in any case",
        json_schema_extra={"enum": [*_STATUSES, *(s.lower() for s in _STATUSES)]},
    )
    name: str = Field(min_length=1, description="{EVENT.NAME}")
    severity: str = "Warning"
    host: str = ""
    host_ip: str = ""
    trigger_id: str = ""
    time: UtcTime | None = None
    message: str = ""
    tags: list[ZabbixTag] = Field(default_factory=list)

    @field_validator("status")
    @classmethod
    def _status(cls, value: str) -> str:
        text = value.strip().upper()
        if text in ("PROBLEM", "FIRING"):
            return "firing"
        if text in ("RESOLVED", "OK", "RECOVERY"):
            return "resolved"
        raise ValueError("must be PROBLEM or RESOLVED")


_ADAPTER = TypeAdapter(ZabbixEvent)


def parse(body: bytes, received_at: dt.datetime) -> list[Event]:
    return [to_event(parse_body(body, _ADAPTER, what="zabbix webhook"), received_at)]


def to_event(z: ZabbixEvent, received_at: dt.datetime) -> Event:
    labels = {t.tag: t.value for t in z.tags}
    if z.host:
        labels.setdefault("host", z.host)
    if z.host_ip:
        labels.setdefault("ip", z.host_ip)
    if z.trigger_id:
        labels.setdefault("trigger_id", z.trigger_id)
    status = EventStatus(z.status)
    fingerprint = f"zbx:{z.event_id}"
    return Event(
        source=SOURCE,
        name=z.name,
        status=status,
        severity=Severity.parse(z.severity),
        occurred_at=aware(z.time, received_at) if z.time else received_at,
        fingerprint=fingerprint,
        event_id=f"{fingerprint}|{status.value}|{z.recovery_id}",
        labels=labels,
        summary=z.message,
        received_at=received_at,
    )
