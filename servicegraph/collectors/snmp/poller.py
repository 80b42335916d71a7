"""Periodic polling of known devices: sysUpTime and interface status, and the monitoring
events their changes mean.

Each poll reads two scalars and two ifTable columns per device (interface names once, and
again when new interfaces appear), so polling stays cheap next to discovery. ``changes``
compares two samples of one device and is pure.

The first sample of a device produces no events: what is down when polling starts may have
been down for months and is not news. Later samples report:

* ``device_unreachable``: firing when a device stops answering, resolved when it answers;
* ``device_restarted``: sysUpTime went backwards (a counter wrap after 497 days is not);
* ``interface_down``: firing when an interface that is administratively up leaves oper
  status up; resolved when it is up again or is shut down on purpose (admin down).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from servicegraph.cmdb.model import utcnow
from servicegraph.collectors.snmp import mibs
from servicegraph.collectors.snmp.ber import Value
from servicegraph.collectors.snmp.client import SessionFactory
from servicegraph.collectors.snmp.credentials import CredentialSet
from servicegraph.collectors.snmp.metrics import SnmpMetrics
from servicegraph.collectors.snmp.session import SnmpError
from servicegraph.collectors.snmp.targets import Target
from servicegraph.events.device import (
    DEVICE_RESTARTED,
    DEVICE_UNREACHABLE,
    INTERFACE_DOWN,
    LABEL_IF_INDEX,
    LABEL_IP,
    MonitoringEvent,
)
from servicegraph.events.model import EventStatus

log = logging.getLogger(__name__)

SOURCE = "snmp_poll"
TIMETICKS_WRAP = 1 << 32


@dataclass(frozen=True)
class PollSample:
    at: dt.datetime
    reachable: bool
    uptime_ticks: int | None = None
    sys_name: str | None = None
    status: Mapping[int, tuple[str | None, str | None]] = field(default_factory=dict)  # admin, oper
    names: Mapping[int, str] = field(default_factory=dict)
    error: str | None = None


def _restarted(before: PollSample, after: PollSample) -> bool:
    if before.uptime_ticks is None or after.uptime_ticks is None:
        return False
    if after.uptime_ticks >= before.uptime_ticks:
        return False
    # TimeTicks wrap at 2^32 hundredths of a second: expected value past the wrap?
    elapsed = int((after.at - before.at).total_seconds() * 100)
    expected = before.uptime_ticks + elapsed
    if expected >= TIMETICKS_WRAP:
        wrapped = expected - TIMETICKS_WRAP
        return abs(after.uptime_ticks - wrapped) > max(6000, elapsed // 10)
    return True


def changes(address: str, before: PollSample | None, after: PollSample) -> list[MonitoringEvent]:
    """The events between two samples of the device at ``address``."""
    if before is None:
        return []
    change = _Change(address, before, after)
    events = _reachability_events(change)
    if not after.reachable:
        return events  # (before may be the last sample it answered, kept across an outage)
    if _restarted(before, after):
        events.append(
            change.event(
                DEVICE_RESTARTED,
                "warning",
                EventStatus.FIRING,
                f"{change.name} restarted "
                f"(sysUpTime {before.uptime_ticks} -> {after.uptime_ticks})",
            )
        )
    return events + _interface_events(change)


@dataclass(frozen=True)
class _Change:
    """Two samples of one device, which the events between them are made from."""

    address: str
    before: PollSample
    after: PollSample

    @property
    def name(self) -> str:
        """The device as the summaries name it."""
        return self.after.sys_name or self.before.sys_name or self.address

    def event(
        self,
        kind: str,
        severity: str,
        status: EventStatus,
        summary: str,
        if_index: int | None = None,
        if_name: str | None = None,
        fingerprint_fields: tuple[str, ...] = (LABEL_IP,),
    ) -> MonitoringEvent:
        return MonitoringEvent(
            source=SOURCE,
            kind=kind,
            severity=severity,
            status=status,
            occurred_at=self.after.at,
            management_ip=self.address,
            if_index=if_index,
            if_name=if_name,
            device_name=self.after.sys_name or self.before.sys_name,
            summary=summary,
            fingerprint_fields=fingerprint_fields,
        )


def _reachability_events(change: _Change) -> list[MonitoringEvent]:
    """``device_unreachable`` firing or resolved, when the device stopped or resumed
    answering."""
    before, after, name = change.before, change.after, change.name
    if before.reachable == after.reachable:
        return []
    if after.reachable:
        return [
            change.event(
                DEVICE_UNREACHABLE, "critical", EventStatus.RESOLVED, f"{name} answers again"
            )
        ]
    return [
        change.event(
            DEVICE_UNREACHABLE,
            "critical",
            EventStatus.FIRING,
            f"{name} does not answer SNMP: {after.error}",
        )
    ]


def _interface_events(change: _Change) -> list[MonitoringEvent]:
    """``interface_down`` for every interface, in ifIndex order, that went down while
    administratively up (firing), or came back up or was shut down (resolved)."""
    before, after, name = change.before, change.after, change.name
    events: list[MonitoringEvent] = []
    fields = (LABEL_IP, LABEL_IF_INDEX)
    for index, (admin, oper) in sorted(after.status.items()):
        old = before.status.get(index)
        if old is None:
            continue
        was_down = old[0] == "up" and old[1] != "up"
        is_down = admin == "up" and oper != "up"
        if was_down == is_down:
            continue
        if_name = after.names.get(index) or before.names.get(index)
        label = if_name or f"ifIndex {index}"
        if is_down:
            events.append(
                change.event(
                    INTERFACE_DOWN,
                    "major",
                    EventStatus.FIRING,
                    f"{label} on {name} is {oper}",
                    if_index=index,
                    if_name=if_name,
                    fingerprint_fields=fields,
                )
            )
        else:
            why = "shut down" if admin != "up" else "up again"
            events.append(
                change.event(
                    INTERFACE_DOWN,
                    "major",
                    EventStatus.RESOLVED,
                    f"{label} on {name} is {why}",
                    if_index=index,
                    if_name=if_name,
                    fingerprint_fields=fields,
                )
            )
    return events


class Poller:
    """Polls targets and remembers the last sample of each (by address and port)."""

    def __init__(
        self,
        factory: SessionFactory,
        credentials: CredentialSet,
        *,
        concurrency: int = 16,
        metrics: SnmpMetrics | None = None,
    ) -> None:
        self.factory = factory
        self.credentials = credentials
        self.metrics = metrics
        self._limit = asyncio.Semaphore(concurrency)
        self.samples: dict[tuple[str, int], PollSample] = {}

    async def sample(self, target: Target) -> PollSample:
        credential = target.credential or self.credentials.for_address(target.host)
        now = utcnow()
        if credential is None:
            return PollSample(now, False, error="no credential for this address")
        previous = self.samples.get((target.host, target.port))
        session = self.factory.open(target.host, target.port, credential)
        try:
            scalars = await session.get([mibs.SYS_UPTIME, mibs.SYS_NAME])
            table = await session.walk(mibs.POLL_COLUMNS)
            admin = table.get(mibs.IF_ADMIN_STATUS, {})
            oper = table.get(mibs.IF_OPER_STATUS, {})
            status = {
                idx[0]: (mibs.IF_STATUS.get(_int(admin.get(idx))), mibs.IF_STATUS.get(_int(v)))
                for idx, v in oper.items()
                if len(idx) == 1
            }
            names = dict(previous.names) if previous else {}
            if set(status) - set(names):
                found = await session.walk((mibs.IF_NAME, mibs.IF_DESCR))
                for column in (mibs.IF_DESCR, mibs.IF_NAME):  # ifName wins
                    for idx, value in found.get(column, {}).items():
                        text = mibs.text(value)
                        if text and len(idx) == 1:
                            names[idx[0]] = text
            return PollSample(
                now,
                True,
                uptime_ticks=mibs.integer(scalars.get(mibs.SYS_UPTIME)),
                sys_name=mibs.text(scalars.get(mibs.SYS_NAME)),
                status=status,
                names=names,
            )
        except SnmpError as exc:
            return PollSample(now, False, error=str(exc))
        finally:
            await session.close()

    async def poll_one(self, target: Target) -> list[MonitoringEvent]:
        async with self._limit:
            try:
                after = await self.sample(target)
            except Exception as exc:  # one device's surprise must not stop the others
                log.exception("polling %s failed", target.label)
                after = PollSample(utcnow(), False, error=f"{type(exc).__name__}: {exc}")
        key = (target.host, target.port)
        before = self.samples.get(key)
        if not after.reachable and before is not None and before.status:
            # keep the last answer, so that the device's return is compared with it (a
            # restart or a port lost during the outage is still reported)
            after = replace(before, reachable=False, error=after.error)
        self.samples[key] = after
        events = changes(target.host, before, after)
        if self.metrics is not None:
            for e in events:
                self.metrics.event(e.source, e.kind, e.status.value)
        return events

    async def poll_once(self, targets: Sequence[Target]) -> list[MonitoringEvent]:
        results = await asyncio.gather(*(self.poll_one(t) for t in targets))
        return [e for events in results for e in events]


def _int(value: Value) -> int:
    return value if isinstance(value, int) else -1
