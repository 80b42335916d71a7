"""Monitoring events produced by collectors that watch devices themselves (SNMP polling,
the trap receiver), in one small plain shape.

A ``MonitoringEvent`` says what happened (``kind``: an interface went down, a device
restarted), whether the condition starts or ends (``status``), and how to find the CI it
is about (``management_ip``, ``if_index``, ``if_name``). Its fingerprint is a hash of the
kind and the declared ``fingerprint_fields`` only, not of the source: a linkDown trap and a
poll that saw the same interface go down name the same condition and deduplicate.
``to_event`` hands it to correlation in the shape every other monitoring source uses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from servicegraph.events.model import Event, EventStatus, Severity, digest

# kinds the SNMP collectors emit
INTERFACE_DOWN = "interface_down"  # firing: oper down while admin up; resolved: back up
DEVICE_RESTARTED = "device_restarted"  # coldStart/warmStart trap, or sysUpTime went back
DEVICE_UNREACHABLE = "device_unreachable"  # a poll got no answer; resolved when it answers
SNMP_AUTH_FAILURE = "snmp_auth_failure"  # the agent saw a request with a wrong community
ENTERPRISE_TRAP = "enterprise_trap"  # any other notification, named by its trap OID

# label names understood by correlation's CI mapping (see correlation.mapping)
LABEL_IP = "management_ip"
LABEL_IF_INDEX = "ifIndex"
LABEL_IF_NAME = "ifName"


@dataclass(frozen=True, slots=True)
class MonitoringEvent:
    source: str  # "snmp_trap", "snmp_poll"
    kind: str
    severity: str  # critical, major, minor, warning, info
    status: EventStatus
    occurred_at: dt.datetime
    management_ip: str | None = None  # the device's address: the CI hint
    if_index: int | None = None
    if_name: str | None = None
    device_name: str | None = None  # sysName, for people; not used to map
    summary: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)  # anything else worth keeping
    fingerprint_fields: tuple[str, ...] = (LABEL_IP,)

    def all_labels(self) -> dict[str, str]:
        """``labels`` plus the CI hints under the names correlation maps by."""
        result = {"kind": self.kind, **self.labels}
        if self.management_ip is not None:
            result[LABEL_IP] = self.management_ip
        if self.if_index is not None:
            result[LABEL_IF_INDEX] = str(self.if_index)
        if self.if_name is not None:
            result[LABEL_IF_NAME] = self.if_name
        if self.device_name is not None:
            result["device"] = self.device_name
        return result

    @property
    def fingerprint(self) -> str:
        labels = self.all_labels()
        return digest(
            "snmp", self.kind, {k: labels.get(k) for k in sorted(self.fingerprint_fields)}
        )

    @property
    def event_id(self) -> str:
        """Names this message: the condition, its status and its time."""
        return digest(
            self.fingerprint, self.status.value, self.occurred_at.isoformat(), self.source
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "severity": self.severity,
            "status": self.status.value,
            "occurred_at": self.occurred_at.isoformat(),
            "fingerprint": self.fingerprint,
            "labels": self.all_labels(),
            "summary": self.summary,
        }

    def to_event(self, received_at: dt.datetime | None = None) -> Event:
        """The correlation engine's event for this one."""
        return Event(
            source=self.source,
            name=self.kind,
            status=self.status,
            severity=Severity.parse(self.severity),
            occurred_at=self.occurred_at,
            fingerprint=self.fingerprint,
            event_id=self.event_id,
            labels=self.all_labels(),
            summary=self.summary,
            received_at=received_at,
        )
