"""Monitoring events and the alerts they update: one normalised model for every source.

An *event* is one message from a monitoring source (an Alertmanager alert in a webhook, a
Zabbix trigger change, a trap). Its *fingerprint* names the condition it reports, so the
firing and the resolved message of one condition share it; its *event id* names the
message itself, so a redelivered webhook is recognised and counted once. An *alert* is the
current state of one fingerprint.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any


class EventStatus(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Severity(enum.IntEnum):
    """Ordered so that ``max`` gives the worst."""

    INFO = 1
    WARNING = 2
    MINOR = 3
    MAJOR = 4
    CRITICAL = 5

    @classmethod
    def parse(cls, value: str | None) -> Severity:
        """Map the many spellings sources use (Prometheus, Zabbix, syslog) to our five."""
        found = _SEVERITY_WORDS.get(value or "")
        if found is not None:  # the usual spelling, without the string work
            return found
        if value is None or not str(value).strip():
            return cls.WARNING
        text = str(value).strip().lower()
        return _SEVERITY_WORDS.get(text, cls.WARNING)


_SEVERITY_WORDS: dict[str, Severity] = {
    "info": Severity.INFO,
    "information": Severity.INFO,
    "informational": Severity.INFO,
    "notice": Severity.INFO,
    "not classified": Severity.INFO,
    "ok": Severity.INFO,
    "none": Severity.INFO,
    "warning": Severity.WARNING,
    "warn": Severity.WARNING,
    "minor": Severity.MINOR,
    "low": Severity.MINOR,
    "average": Severity.MAJOR,
    "major": Severity.MAJOR,
    "error": Severity.MAJOR,
    "high": Severity.MAJOR,
    "page": Severity.CRITICAL,
    "critical": Severity.CRITICAL,
    "disaster": Severity.CRITICAL,
    "emergency": Severity.CRITICAL,
    "alert": Severity.CRITICAL,
    "fatal": Severity.CRITICAL,
}

# Labels that say which CI an event is about, in the order they are tried.
CI_ID_LABEL = "ci_id"
HOST_LABELS = ("fqdn", "hostname", "host", "nodename", "node")
IP_LABELS = ("ip", "address", "management_ip", "agent_address")
INTERFACE_NAME_LABELS = ("ifName", "ifname", "interface", "ifDescr")
INTERFACE_INDEX_LABELS = ("ifIndex", "ifindex")


def digest(*parts: Any) -> str:
    """A stable short hash of JSON-serialisable parts."""
    raw = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


def fingerprint_of(source: str, name: str, labels: Mapping[str, str], fields: Iterable[str]) -> str:
    """Alert identity from declared fields: the source, the alert name and those labels.

    Declaring the fields keeps identity apart from volatile labels (a value, a timestamp)
    that would otherwise make every repeat look new.
    """
    chosen = {k: labels[k] for k in sorted(fields) if k in labels}
    return digest(source, name, chosen)


@dataclass(slots=True)  # a value: never changed once made (not frozen: 1.4 us less each)
class Event:
    source: str  # alertmanager, zabbix, generic, snmp_trap, snmp_poll
    name: str  # alertname, trigger name, trap name
    status: EventStatus
    severity: Severity
    occurred_at: dt.datetime
    fingerprint: str
    event_id: str  # idempotency key of this message
    labels: Mapping[str, str] = field(default_factory=dict)
    summary: str = ""
    received_at: dt.datetime | None = None
    # the time the source gave, when its clock ran ahead of ours and ``occurred_at`` was
    # clamped to the reception (``clamp_clock_skew``)
    reported_at: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """For people (``servicegraph inbox --json``): the severity by name, times as
        ``isoformat`` writes them. Not a wire form, and nothing reads it back: between
        processes an event travels as ``events.wire`` writes it."""
        return {
            "source": self.source,
            "name": self.name,
            "status": self.status.value,
            "severity": self.severity.name.lower(),
            "occurred_at": self.occurred_at.isoformat(),
            "fingerprint": self.fingerprint,
            "event_id": self.event_id,
            "labels": dict(self.labels),
            "summary": self.summary,
            "received_at": self.received_at.isoformat() if self.received_at else None,
            "reported_at": self.reported_at.isoformat() if self.reported_at else None,
        }


def clamp_clock_skew(
    events: Sequence[Event], received_at: dt.datetime, max_skew: dt.timedelta
) -> list[Event]:
    """``events``, those dated more than ``max_skew`` after ``received_at`` dated at the
    reception instead, the source's time kept as ``reported_at``.

    A sender whose clock runs ahead (or a bogus ``9999-12-31``) would otherwise open an
    incident in the future: its age and MTTA negative, its grouping window never passed.
    Identity is not touched: event ids were derived from the message as sent, so a
    redelivery is still recognised."""
    limit = received_at + max_skew
    if all(e.occurred_at <= limit for e in events):  # the usual case: nothing copied
        return list(events)
    return [
        replace(e, occurred_at=received_at, reported_at=e.occurred_at)
        if e.occurred_at > limit
        else e
        for e in events
    ]


@dataclass(slots=True)
class Alert:
    """The current state of one fingerprint. Mutable: the correlator updates it in place
    inside one unit of work."""

    fingerprint: str
    source: str
    name: str
    severity: Severity
    status: EventStatus
    labels: dict[str, str]
    summary: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    last_change: dt.datetime
    count: int = 1
    ci_id: str | None = None
    incident_id: str | None = None
    cleared_at: dt.datetime | None = None
    flapping: bool = False
    # times of recent firing/resolved transitions, for flap detection
    transitions: list[dt.datetime] = field(default_factory=list)
    # the source's time of the latest event that was dated in the future and clamped
    reported_at: dt.datetime | None = None
    # the change under which it fired, expected: it opened no incident of its own
    change_id: str | None = None

    @property
    def firing(self) -> bool:
        return self.status is EventStatus.FIRING


@dataclass(frozen=True, slots=True)
class AlertCycle:
    """One fire/clear cycle of an alert: an alert that fires, clears and fires again four
    times has four, each shown on the CI's timeline (the alert keeps only its latest)."""

    fingerprint: str
    fired_at: dt.datetime
    cleared_at: dt.datetime | None = None
    incident_id: str | None = None
