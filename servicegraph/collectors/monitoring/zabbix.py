"""Zabbix webhook media type payloads -> events.

The media-type script shipped in ``contrib/zabbix/servicegraph_media_type.js`` posts one
JSON object per problem or recovery. A recovery carries the problem's event id, so both
share the fingerprint.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.collectors.monitoring.payload import Time, aware, decode_body, to_events
from servicegraph.events.model import Event, EventStatus, Severity

SOURCE = "zabbix"

# the spellings of a status, in any case (stripped of blanks)
_STATUSES = {
    "PROBLEM": EventStatus.FIRING,
    "FIRING": EventStatus.FIRING,
    "RESOLVED": EventStatus.RESOLVED,
    "OK": EventStatus.RESOLVED,
    "RECOVERY": EventStatus.RESOLVED,
}
_BAD_STATUS = "must be PROBLEM or RESOLVED (or FIRING, OK, RECOVERY), in any case"


class ZabbixTag(msgspec.Struct, frozen=True):
    tag: str
    value: str = ""


class ZabbixEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    event_id: Annotated[
        str, msgspec.Meta(min_length=1, description="{EVENT.ID}: the problem event")
    ]
    recovery_id: Annotated[str, msgspec.Meta(description="{EVENT.RECOVERY.ID} on recovery")] = ""
    status: Annotated[
        str,
        msgspec.Meta(
            description="PROBLEM, RESOLVED (or OK / RECOVERY), in any case",
            extra_json_schema={"enum": [*_STATUSES, *(s.lower() for s in _STATUSES)]},
        ),
    ]
    name: Annotated[str, msgspec.Meta(min_length=1, description="{EVENT.NAME}")]
    severity: str = "Warning"
    host: str = ""
    host_ip: str = ""
    trigger_id: str = ""
    time: Time | None = None
    message: str = ""
    tags: list[ZabbixTag] = []


# Not strict, as the generic format (a time may be Unix seconds): the media type script is
# the user's to change.
_DECODER = msgspec.json.Decoder(ZabbixEvent, strict=False)
_WHAT = "zabbix webhook"


def parse(body: bytes, received_at: dt.datetime) -> list[Event]:
    event = decode_body(body, _DECODER, what=_WHAT)
    if status_of(event) is None:
        raise ValidationFailed(_BAD_STATUS, item=_WHAT, field="status")
    return to_events([event], to_event, received_at, what=_WHAT, path=None, times=("time",))


def status_of(z: ZabbixEvent) -> EventStatus | None:
    """The status ``z`` says, None if it is none of the spellings."""
    return _STATUSES.get(z.status.strip().upper())


def to_event(z: ZabbixEvent, received_at: dt.datetime) -> Event:
    labels = {t.tag: t.value for t in z.tags}
    if z.host:
        labels.setdefault("host", z.host)
    if z.host_ip:
        labels.setdefault("ip", z.host_ip)
    if z.trigger_id:
        labels.setdefault("trigger_id", z.trigger_id)
    status = status_of(z)
    if status is None:
        raise ValueError(f"zabbix status {z.status!r}: {_BAD_STATUS}")
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
