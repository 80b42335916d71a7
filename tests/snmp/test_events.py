"""Notifications and poll samples -> monitoring events (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from servicegraph.collectors.snmp import mibs
from servicegraph.collectors.snmp.credentials import Credential, CredentialError, Secret
from servicegraph.collectors.snmp.poller import PollSample, changes
from servicegraph.collectors.snmp.traps import TrapUser, trap_event
from servicegraph.events.device import MonitoringEvent
from servicegraph.events.model import EventStatus, Severity

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=1)
LINK_VARBINDS = [
    ((*mibs.IF_INDEX, 10102), 10102),
    ((*mibs.IF_ADMIN_STATUS, 10102), 1),
    ((*mibs.IF_OPER_STATUS, 10102), 2),
    ((*mibs.IF_NAME, 10102), b"Gi0/2"),
]


def _trap(oid: tuple[int, ...], *extra: tuple[tuple[int, ...], object]) -> MonitoringEvent:
    varbinds = [(mibs.SYS_UPTIME, 100), (mibs.SNMP_TRAP_OID, oid), *extra]
    event = trap_event("192.0.2.10", varbinds, T0)  # type: ignore[arg-type]
    assert event is not None
    return event


def test_link_down_and_up_are_one_condition() -> None:
    down = _trap(mibs.TRAP_LINK_DOWN, *LINK_VARBINDS)
    up = _trap(mibs.TRAP_LINK_UP, *LINK_VARBINDS)
    assert (down.kind, down.status, up.status) == (
        "interface_down",
        EventStatus.FIRING,
        EventStatus.RESOLVED,
    )
    assert (down.management_ip, down.if_index, down.if_name) == ("192.0.2.10", 10102, "Gi0/2")
    assert down.fingerprint == up.fingerprint
    assert down.event_id != up.event_id
    other = _trap(mibs.TRAP_LINK_DOWN, ((*mibs.IF_INDEX, 10103), 10103))
    assert other.fingerprint != down.fingerprint


def test_a_trap_and_a_poll_of_the_same_interface_share_the_fingerprint() -> None:
    trap = _trap(mibs.TRAP_LINK_DOWN, *LINK_VARBINDS)
    before = PollSample(T0, True, 100, "acc1", {10102: ("up", "up")}, {10102: "Gi0/2"})
    after = PollSample(T1, True, 6100, "acc1", {10102: ("up", "down")}, {10102: "Gi0/2"})
    (polled,) = changes("192.0.2.10", before, after)
    assert polled.source != trap.source
    assert polled.fingerprint == trap.fingerprint


@pytest.mark.parametrize(
    ("oid", "kind", "severity"),
    [
        (mibs.TRAP_COLD_START, "device_restarted", "warning"),
        (mibs.TRAP_WARM_START, "device_restarted", "warning"),
        (mibs.TRAP_AUTH_FAILURE, "snmp_auth_failure", "minor"),
        ((1, 3, 6, 1, 4, 1, 9, 0, 17), "enterprise_trap", "warning"),
    ],
)
def test_trap_kinds(oid: tuple[int, ...], kind: str, severity: str) -> None:
    event = _trap(oid)
    assert (event.kind, event.severity, event.status) == (kind, severity, EventStatus.FIRING)


def test_an_enterprise_trap_keeps_its_varbinds_but_never_the_community() -> None:
    event = _trap(
        (1, 3, 6, 1, 4, 1, 30065, 3, 1),
        ((1, 3, 6, 1, 4, 1, 30065, 9, 1), b"fan 2 failed"),
        (mibs.SNMP_TRAP_COMMUNITY, b"s3cret-community"),
        (mibs.SNMP_TRAP_ADDRESS, b"\x0a\x01\x02\x03"),  # a v1 agent-addr, as pysnmp passes it
    )
    assert event.management_ip == "10.1.2.3"
    assert event.labels["1.3.6.1.4.1.30065.9.1"] == "fan 2 failed"
    assert event.labels["enterprise"] == "Arista"
    assert "s3cret" not in str(event.to_dict())


def test_a_notification_without_trap_oid_is_no_event() -> None:
    assert trap_event("192.0.2.1", [(mibs.SYS_UPTIME, 1)], T0) is None


def test_events_become_correlation_events() -> None:
    event = _trap(mibs.TRAP_LINK_DOWN, *LINK_VARBINDS).to_event(T1)
    assert (event.name, event.status, event.severity) == (
        "interface_down",
        EventStatus.FIRING,
        Severity.MAJOR,
    )
    assert event.labels["management_ip"] == "192.0.2.10"
    assert (event.labels["ifIndex"], event.labels["ifName"]) == ("10102", "Gi0/2")
    assert event.received_at == T1


def test_v3_trap_users_need_the_sender_engine_id() -> None:
    user = Credential("t", "3", user="u", auth_protocol="sha", auth_key=Secret("k" * 8))
    assert TrapUser(user, "0x80000000010203").engine_id == "80000000010203"
    with pytest.raises(CredentialError, match="engine_id"):
        TrapUser(user, "xyz")


def _sample(at: dt.datetime, uptime: int | None, **status: tuple[str, str]) -> PollSample:
    table = {int(k[2:]): v for k, v in status.items()}
    return PollSample(at, True, uptime, "sw1", table, {i: f"Gi0/{i}" for i in table})


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (None, _sample(T1, 100, if1=("up", "down")), []),  # the first sample is no news
        (_sample(T0, 100, if1=("up", "up")), _sample(T1, 6100, if1=("up", "up")), []),
        (
            _sample(T0, 100, if1=("up", "up")),
            _sample(T1, 6100, if1=("up", "down")),
            [("interface_down", "firing", 1)],
        ),
        (
            _sample(T0, 100, if1=("up", "lowerLayerDown")),
            _sample(T1, 6100, if1=("up", "up")),
            [("interface_down", "resolved", 1)],
        ),
        (  # shut down on purpose: the condition ends, no new alarm
            _sample(T0, 100, if1=("up", "down")),
            _sample(T1, 6100, if1=("down", "down")),
            [("interface_down", "resolved", 1)],
        ),
        (
            _sample(T0, 100, if1=("down", "down")),
            _sample(T1, 6100, if1=("up", "down")),
            [("interface_down", "firing", 1)],
        ),
        (_sample(T0, 500_000), _sample(T1, 4_200), [("device_restarted", "firing", None)]),
        (  # TimeTicks wrapped after 497 days: not a restart
            _sample(T0, 2**32 - 3_000),
            _sample(T1, 3_000),
            [],
        ),
        (
            _sample(T0, 100),
            PollSample(T1, False, error="no response"),
            [("device_unreachable", "firing", None)],
        ),
        (
            PollSample(T0, False, error="no response"),
            _sample(T1, 100),
            [("device_unreachable", "resolved", None)],
        ),
    ],
)
def test_poll_changes(
    before: PollSample | None, after: PollSample, expected: list[tuple[str, str, int | None]]
) -> None:
    events = changes("192.0.2.10", before, after)
    assert [(e.kind, e.status.value, e.if_index) for e in events] == expected
    assert all(e.management_ip == "192.0.2.10" and e.source == "snmp_poll" for e in events)
