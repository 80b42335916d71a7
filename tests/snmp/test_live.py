"""Against real agents and real net-snmp tools on loopback: SNMPv3, misbehaving agents,
traps sent with ``snmptrap``, polling, metrics, and secrets that must never show."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from servicegraph.bootstrap import Services
from servicegraph.collectors.snmp.client import SessionFactory, SessionOptions
from servicegraph.collectors.snmp.credentials import Credential, CredentialSet, Secret
from servicegraph.collectors.snmp.discovery import DiscoveryOptions, run_discovery, save_report
from servicegraph.collectors.snmp.metrics import SnmpMetrics
from servicegraph.collectors.snmp.poller import Poller
from servicegraph.collectors.snmp.targets import Target
from servicegraph.collectors.snmp.traps import TrapReceiver, TrapUser
from servicegraph.events.device import MonitoringEvent
from servicegraph.ticketing.ports import IncidentFilter
from tests.snmp.conftest import TOPOLOGY_HOSTS
from tests.snmp.helpers import community, discover, expected, find, interfaces_of
from tests.snmp.simulator import Simulator, free_udp_port
from tests.support import require_executable

QUICK = SessionOptions(timeout=0.5, retries=1)


def _v3(simulator: Simulator, context: str, **changes: str) -> Credential:
    user = simulator.v3
    assert user is not None
    values = {
        "user": user.user,
        "auth_protocol": "sha",
        "auth_key": user.auth_key,
        "priv_protocol": "aes",
        "priv_key": user.priv_key,
        **changes,
    }
    return Credential(
        "v3",
        "3",
        user=values["user"],
        auth_protocol=values["auth_protocol"],
        auth_key=Secret(values["auth_key"]),
        priv_protocol=values["priv_protocol"],
        priv_key=Secret(values["priv_key"]),
        context=context,
    )


def test_snmpv3_with_authentication_and_aes_privacy(
    simulator: Simulator, recordings: dict[str, Any], services: Services
) -> None:
    want = expected(recordings["c3560"])
    target = Target("127.0.0.1", simulator.port, credential=_v3(simulator, "c3560"))

    report = discover(services, [target])

    (result,) = report.results
    assert result.outcome == "ok", result.error
    device = find(services, "serial_number", want.serial or "")
    assert device.name == want.sys_name
    assert len(interfaces_of(services, device.id)) == len(want.interface_names)


def test_snmpv3_with_a_wrong_key_is_an_authentication_failure(
    simulator: Simulator, services: Services
) -> None:
    target = Target(
        "127.0.0.1",
        simulator.port,
        credential=_v3(simulator, "c3560", auth_key="not-the-key-1"),
    )
    report = discover(services, [target], session=QUICK)
    (result,) = report.results
    assert result.outcome == "auth_failure", result.error


class _Garbage(asyncio.DatagramProtocol):
    """An "agent" that answers everything with bytes that are not SNMP."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(b"\x30\x03garbage", addr)


def test_dead_silent_and_broken_agents_do_not_hold_up_the_others(
    simulator: Simulator, services: Services
) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # receives, never answers
    closed_port = free_udp_port()

    async def run() -> Any:
        loop = asyncio.get_running_loop()
        garbage, _ = await loop.create_datagram_endpoint(_Garbage, local_addr=("127.0.0.1", 0))
        bad = [
            Target("127.0.0.1", silent.getsockname()[1], credential=community("silent")),
            Target("127.0.0.1", closed_port, credential=community("closed")),
            Target("127.0.0.1", garbage.get_extra_info("sockname")[1], credential=community("x")),
            Target("192.0.2.1.invalid", 161, credential=community("unresolvable")),
        ]
        good = [Target(h, simulator.port) for h in TOPOLOGY_HOSTS.values()]
        try:
            return await run_discovery(
                services.reconciler,
                [*bad, *good],
                credentials=CredentialSet(default=community("public")),
                session_options=QUICK,
                options=DiscoveryOptions(concurrency=4, device_timeout=30),
                complete=False,
            )
        finally:
            garbage.close()

    started = time.monotonic()
    try:
        report = asyncio.run(run())
    finally:
        silent.close()
    elapsed = time.monotonic() - started

    outcomes = {r.target.label: r.outcome for r in report.results}
    assert [outcomes[Target(h, simulator.port).label] for h in TOPOLOGY_HOSTS.values()] == [
        "ok"
    ] * 5
    assert (
        sorted(o for label, o in outcomes.items() if "127.0.0.1" in label or "invalid" in label)
        == ["timeout"] * 4
    )
    # each bad agent costs its own worker about timeout x attempts, never everyone's time
    assert elapsed < 8, elapsed
    assert report.devices == 5


def test_metrics_and_the_run_report_have_each_outcome_and_no_secret(
    simulator: Simulator, services: Services, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cret-community-4711"
    registry = CollectorRegistry()
    targets = [
        Target("127.0.0.1", simulator.port, credential=community("c3560")),
        Target(
            "127.0.0.1",
            simulator.port,
            credential=Credential("guess", "2c", community=Secret(secret)),
        ),
    ]
    with caplog.at_level(logging.DEBUG):
        report = asyncio.run(
            run_discovery(
                services.reconciler,
                targets,
                credentials=CredentialSet(),
                session_options=SessionOptions(timeout=0.3, retries=0),
                options=DiscoveryOptions(),
                complete=False,
                metrics=SnmpMetrics(registry),
            )
        )
    text = generate_latest(registry).decode()
    assert 'servicegraph_snmp_device_results_total{outcome="ok"} 1.0' in text
    assert 'servicegraph_snmp_device_results_total{outcome="timeout"} 1.0' in text
    assert 'servicegraph_snmp_device_outcome{servicegraph_snmp_device_outcome="ok"' in text
    assert 'servicegraph_snmp_discovery_runs_total{result="loaded"} 1.0' in text
    assert "servicegraph_snmp_varbinds_total" in text
    path = save_report(report, tmp_path)
    saved = json.loads(path.read_text())
    assert sorted(saved["outcomes"].items()) == [("ok", 1), ("timeout", 1)]
    for where in (text, path.read_text(), caplog.text, repr(report)):
        assert secret not in where


def _trap_commands(port: int) -> list[list[str]]:
    snmptrap = require_executable("snmptrap", install_hint="apt-get install snmp")
    where = f"127.0.0.1:{port}"
    return [
        [
            snmptrap,
            "-v2c",
            "-c",
            "traps-v2c",
            where,
            "",
            "1.3.6.1.6.3.1.1.5.3",
            "1.3.6.1.2.1.2.2.1.1.10102",
            "i",
            "10102",
            "1.3.6.1.2.1.2.2.1.7.10102",
            "i",
            "1",
            "1.3.6.1.2.1.2.2.1.8.10102",
            "i",
            "2",
            "1.3.6.1.2.1.31.1.1.1.1.10102",
            "s",
            "Gi0/2",
        ],
        [
            snmptrap,
            "-v2c",
            "-c",
            "traps-v2c",
            where,
            "",
            "1.3.6.1.6.3.1.1.5.4",
            "1.3.6.1.2.1.2.2.1.1.10102",
            "i",
            "10102",
        ],
        [
            snmptrap,
            "-v3",
            "-e",
            "0x8000000001020304",
            "-u",
            "trapper",
            "-l",
            "authPriv",
            "-a",
            "SHA",
            "-A",
            "trap-auth-key",
            "-x",
            "AES",
            "-X",
            "trap-priv-key",
            where,
            "",
            "1.3.6.1.6.3.1.1.5.1",
        ],
        [
            snmptrap,
            "-v1",
            "-c",
            "traps-v2c",
            where,
            "1.3.6.1.4.1.30065",
            "192.0.2.77",
            "6",
            "3",
            "",
            "1.3.6.1.4.1.30065.9.1",
            "s",
            "fan 2 failed",
        ],
        [snmptrap, "-v2c", "-c", "not-a-trap-community", where, "", "1.3.6.1.6.3.1.1.5.1"],
    ]


async def _receive(
    commands: Callable[[int], list[list[str]]], wanted: int, **receiver_options: Any
) -> list[MonitoringEvent]:
    events: list[MonitoringEvent] = []
    receiver = TrapReceiver(events.append, host="127.0.0.1", port=0, **receiver_options)
    await receiver.start()
    try:
        for command in commands(receiver.port):
            process = await asyncio.create_subprocess_exec(
                *command, env={**os.environ, "MIBS": ""}, stderr=subprocess.PIPE
            )
            _, stderr = await asyncio.wait_for(process.communicate(), 10)
            assert process.returncode == 0, stderr.decode()
        for _ in range(50):  # bounded: 5 s
            if len(events) >= wanted:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # and nothing more arrives
    finally:
        await receiver.stop()
    return events


TRAP_USER = TrapUser(
    Credential(
        "trapper",
        "3",
        user="trapper",
        auth_protocol="sha",
        auth_key=Secret("trap-auth-key"),
        priv_protocol="aes",
        priv_key=Secret("trap-priv-key"),
    ),
    "0x8000000001020304",
)


def test_traps_sent_with_net_snmp_arrive_as_events() -> None:
    events = asyncio.run(
        _receive(_trap_commands, 4, communities=[Secret("traps-v2c")], users=[TRAP_USER])
    )
    got = [(e.kind, e.status.value, e.management_ip, e.if_index, e.if_name) for e in events]
    assert got == [
        ("interface_down", "firing", "127.0.0.1", 10102, "Gi0/2"),
        ("interface_down", "resolved", "127.0.0.1", 10102, None),
        ("device_restarted", "firing", "127.0.0.1", None, None),  # v3 authPriv
        ("enterprise_trap", "firing", "192.0.2.77", None, None),  # v1: agent-addr
    ]
    assert events[0].fingerprint == events[1].fingerprint
    assert events[3].labels["1.3.6.1.4.1.30065.9.1"] == "fan 2 failed"
    assert "traps-v2c" not in str([e.to_dict() for e in events])


def test_a_link_down_trap_is_mapped_to_the_discovered_interface(
    simulator: Simulator, services: Services
) -> None:
    discover(
        services,
        [Target(TOPOLOGY_HOSTS["acc1"], simulator.port)],
        credentials=CredentialSet(default=community("public")),
    )
    acc1 = find(services, "serial_number", "SGACC0001")
    gi02 = next(i for i in interfaces_of(services, acc1.id) if i.attributes["if_name"] == "Gi0/2")

    def commands(port: int) -> list[list[str]]:
        snmptrap = require_executable("snmptrap", install_hint="apt-get install snmp")
        return [
            [
                snmptrap,
                "-v2c",
                "-c",
                "traps-v2c",
                f"127.0.0.1:{port}",
                "",
                "1.3.6.1.6.3.1.1.5.3",
                "1.3.6.1.2.1.2.2.1.1.10102",
                "i",
                "10102",
                # a relay names the agent: acc1's management address
                "1.3.6.1.6.3.18.1.3.0",
                "a",
                TOPOLOGY_HOSTS["acc1"],
            ]
        ]

    (event,) = asyncio.run(_receive(commands, 1, communities=[Secret("traps-v2c")]))
    services.correlator.ingest([event.to_event(event.occurred_at)])
    services.correlator.drain()
    assert services.tickets.find_incidents(IncidentFilter(ci_ids=(gi02.id,)))


def test_polling_reports_a_restart_and_an_interface_going_down(simulator: Simulator) -> None:
    async def run() -> list[list[MonitoringEvent]]:
        factory = SessionFactory(QUICK)
        poller = Poller(factory, CredentialSet())
        rounds = []
        # the same device (address and port) answers from acc1, then from acc1 rebooted
        for name in ("acc1", "acc1", "acc1-rebooted", "acc1"):
            target = Target("127.0.0.1", simulator.port, credential=community(name))
            rounds.append(await poller.poll_once([target]))
        silent = Target("127.0.0.1", free_udp_port(), credential=community("acc1"))
        await poller.poll_once([silent])
        rounds.append(await poller.poll_once([silent]))
        factory.close()
        return rounds

    first, steady, rebooted, back, _ = rounds = asyncio.run(run())
    assert first == [] and steady == []
    assert [(e.kind, e.status.value, e.if_name) for e in rebooted] == [
        ("device_restarted", "firing", None),
        ("interface_down", "firing", "Gi0/2"),
    ]
    assert all(e.management_ip == "127.0.0.1" and e.device_name == "acc1" for e in rebooted)
    assert [(e.kind, e.status.value) for e in back] == [("interface_down", "resolved")]
    assert rounds[4] == []  # a device never seen answering: no news yet
