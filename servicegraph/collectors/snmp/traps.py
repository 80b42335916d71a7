"""The trap receiver: SNMP notifications (v1, v2c and v3) in, monitoring events out.

pysnmp's notification receiver does the protocol work: communities, USM users (a v3 trap
is authenticated with the *sender's* engine id, so each user is configured with it),
and the conversion of v1 traps to the v2 form. ``trap_event`` maps one notification to an
event and is pure:

* linkDown / linkUp -> ``interface_down`` firing / resolved, with the ifIndex from the
  varbinds (ifIndex, ifAdminStatus, ifOperStatus, ifDescr or ifName instances) and the
  interface name when the trap carries one;
* coldStart / warmStart -> ``device_restarted``;
* authenticationFailure -> ``snmp_auth_failure``;
* anything else -> ``enterprise_trap`` named by its trap OID, varbinds kept as labels.

The device is the agent address: ``snmpTrapAddress.0`` when a relay added it (or a v1 trap
carried its agent-addr), else the packet's source address.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from servicegraph.cmdb.model import utcnow
from servicegraph.collectors.snmp import mibs
from servicegraph.collectors.snmp.ber import Oid, Value
from servicegraph.collectors.snmp.credentials import Credential, CredentialError, Secret
from servicegraph.collectors.snmp.metrics import SnmpMetrics
from servicegraph.collectors.snmp.pysnmp_session import from_pysnmp
from servicegraph.events.device import (
    DEVICE_RESTARTED,
    ENTERPRISE_TRAP,
    INTERFACE_DOWN,
    LABEL_IF_INDEX,
    LABEL_IP,
    SNMP_AUTH_FAILURE,
    MonitoringEvent,
)
from servicegraph.events.model import EventStatus

log = logging.getLogger(__name__)

SOURCE = "snmp_trap"
DEFAULT_PORT = 1162
MAX_LABELS = 20  # varbinds kept from an enterprise trap

_INTERFACE_COLUMNS = (
    mibs.IF_INDEX,
    mibs.IF_ADMIN_STATUS,
    mibs.IF_OPER_STATUS,
    mibs.IF_DESCR,
    mibs.IF_NAME,
)


# not kept as labels: already used, or secret (the community a v1 trap came with)
_NOT_LABELS = frozenset(
    {mibs.SNMP_TRAP_OID, mibs.SYS_UPTIME, mibs.SNMP_TRAP_ADDRESS, mibs.SNMP_TRAP_COMMUNITY}
)


def _dotted(oid: Oid) -> str:
    return ".".join(map(str, oid))


def _show(value: Value) -> str:
    if isinstance(value, tuple):
        return _dotted(value)
    if isinstance(value, bytes):
        text = mibs.text(value)
        return text if text is not None and text.isprintable() else value.hex()
    return "" if value is None else str(getattr(value, "name", value))


def _interface(varbinds: Sequence[tuple[Oid, Value]]) -> tuple[int | None, str | None]:
    index: int | None = None
    names: dict[Oid, str] = {}
    for oid, value in varbinds:
        for column in _INTERFACE_COLUMNS:
            if oid[: len(column)] == column and len(oid) == len(column) + 1:
                index = oid[-1]
                if column in (mibs.IF_NAME, mibs.IF_DESCR):
                    text = mibs.text(value)
                    if text:
                        names[column] = text
    return index, names.get(mibs.IF_NAME) or names.get(mibs.IF_DESCR)


def trap_event(
    source_address: str, varbinds: Sequence[tuple[Oid, Value]], received_at: dt.datetime
) -> MonitoringEvent | None:
    """The event one notification means; ``None`` if it has no snmpTrapOID."""
    values = dict(varbinds)
    trap_oid = values.get(mibs.SNMP_TRAP_OID)
    if not isinstance(trap_oid, tuple):
        return None
    relayed = values.get(mibs.SNMP_TRAP_ADDRESS)
    if isinstance(relayed, bytes):  # pysnmp's v1-to-v2 conversion gives raw octets
        relayed = mibs.address_from_octets(relayed)
    address = relayed if isinstance(relayed, str) and relayed != "0.0.0.0" else source_address

    def event(
        kind: str,
        severity: str,
        summary: str,
        status: EventStatus = EventStatus.FIRING,
        *,
        if_index: int | None = None,
        if_name: str | None = None,
        labels: dict[str, str] | None = None,
        fields: tuple[str, ...] = (LABEL_IP,),
    ) -> MonitoringEvent:
        return MonitoringEvent(
            source=SOURCE,
            kind=kind,
            severity=severity,
            status=status,
            occurred_at=received_at,
            management_ip=address,
            if_index=if_index,
            if_name=if_name,
            summary=summary,
            labels=labels or {"trap_oid": _dotted(trap_oid)},
            fingerprint_fields=fields,
        )

    if trap_oid in (mibs.TRAP_LINK_DOWN, mibs.TRAP_LINK_UP):
        if_index, if_name = _interface(varbinds)
        down = trap_oid == mibs.TRAP_LINK_DOWN
        where = if_name or (f"ifIndex {if_index}" if if_index is not None else "an interface")
        return event(
            INTERFACE_DOWN,
            "major",
            f"{where} on {address} is {'down' if down else 'up'} (trap)",
            EventStatus.FIRING if down else EventStatus.RESOLVED,
            if_index=if_index,
            if_name=if_name,
            fields=(LABEL_IP, LABEL_IF_INDEX),
        )
    if trap_oid in (mibs.TRAP_COLD_START, mibs.TRAP_WARM_START):
        how = "cold" if trap_oid == mibs.TRAP_COLD_START else "warm"
        return event(DEVICE_RESTARTED, "warning", f"{address} restarted ({how} start)")
    if trap_oid == mibs.TRAP_AUTH_FAILURE:
        return event(
            SNMP_AUTH_FAILURE, "minor", f"{address} received an SNMP request with wrong credentials"
        )
    labels = {"trap_oid": _dotted(trap_oid)}
    kept = [(o, v) for o, v in varbinds if o not in _NOT_LABELS]
    for oid, value in kept[:MAX_LABELS]:
        labels[_dotted(oid)] = _show(value)[:200]
    if trap_oid[:6] == (1, 3, 6, 1, 4, 1) and len(trap_oid) > 6:
        number = trap_oid[6]
        labels["enterprise"] = mibs.ENTERPRISES.get(number, f"enterprise {number}")
    return event(
        ENTERPRISE_TRAP,
        "warning",
        f"trap {_dotted(trap_oid)} from {address}",
        labels=labels,
        fields=(LABEL_IP, "trap_oid"),
    )


@dataclass(frozen=True)
class TrapUser:
    """An SNMPv3 user allowed to send traps, with the sending engine's id (hex)."""

    credential: Credential
    engine_id: str

    def __post_init__(self) -> None:
        if self.credential.version != "3":
            raise CredentialError(f"trap user '{self.credential.name}' must be SNMPv3")
        text = self.engine_id.lower().removeprefix("0x")
        if len(text) < 10 or len(text) % 2 or any(c not in "0123456789abcdef" for c in text):
            raise CredentialError(
                f"trap user '{self.credential.name}': engine_id must be the sender's "
                "snmpEngineID in hex, 5 to 32 octets (e.g. 0x8000000001020304)"
            )
        object.__setattr__(self, "engine_id", text)


EventHandler = Callable[[MonitoringEvent], None]


class TrapReceiverError(Exception):
    pass


class TrapReceiver:
    """Listens on UDP for notifications and hands each event to ``on_event``."""

    def __init__(
        self,
        on_event: EventHandler,
        *,
        host: str = "0.0.0.0",
        port: int = DEFAULT_PORT,
        communities: Sequence[Secret] = (),
        users: Sequence[TrapUser] = (),
        metrics: SnmpMetrics | None = None,
    ) -> None:
        if not communities and not users:
            raise TrapReceiverError("give at least one trap community or SNMPv3 trap user")
        self.on_event = on_event
        self.host = host
        self.port = port
        self.communities = tuple(communities)
        self.users = tuple(users)
        self.metrics = metrics
        self._engine: Any = None
        self._socket: socket.socket | None = None

    async def start(self) -> None:
        from pysnmp.carrier.asyncio.dgram import udp, udp6
        from pysnmp.entity import config, engine
        from pysnmp.entity.rfc3413 import ntfrcv
        from pysnmp.proto.rfc1902 import OctetString

        v6 = ipaddress.ip_address(self.host).version == 6
        sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise TrapReceiverError(
                f"cannot listen on udp {self.host}:{self.port}: {exc.strerror}"
            ) from None
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        snmp_engine = engine.SnmpEngine()
        transport = (udp6.Udp6AsyncioTransport if v6 else udp.UdpAsyncioTransport)()
        domain = udp6.DOMAIN_NAME if v6 else udp.DOMAIN_NAME
        config.add_transport(snmp_engine, domain, transport.open_server_mode(sock=sock))
        for i, community in enumerate(self.communities):
            config.add_v1_system(snmp_engine, f"trap-{i}", community.reveal())
        for user in self.users:
            c = user.credential
            config.add_v3_user(
                snmp_engine,
                c.user,
                getattr(config, _CONFIG_AUTH[c.auth_protocol]),
                c.auth_key.reveal() if c.auth_key else None,
                getattr(config, _CONFIG_PRIV[c.priv_protocol]),
                c.priv_key.reveal() if c.priv_key else None,
                securityEngineId=OctetString(hexValue=user.engine_id),
            )
        ntfrcv.NotificationReceiver(snmp_engine, self._received)
        self._engine = snmp_engine
        await asyncio.sleep(0)  # let the transport attach to the loop
        log.info("trap receiver listening on udp %s:%d", self.host, self.port)

    def _received(
        self,
        snmp_engine: Any,
        state_reference: Any,
        context_engine_id: Any,
        context_name: Any,
        varbinds: Any,
        cb_ctx: Any,
    ) -> None:
        try:
            _, address = snmp_engine.message_dispatcher.get_transport_info(state_reference)
            plain = [(tuple(oid), from_pysnmp(value)) for oid, value in varbinds]
            event = trap_event(str(address[0]), plain, utcnow())
        except Exception:
            log.exception("a notification could not be read")
            self._count("unreadable")
            return
        if event is None:
            self._count("ignored")
            return
        self._count("event")
        if self.metrics is not None:
            self.metrics.event(event.source, event.kind, event.status.value)
        try:
            self.on_event(event)
        except Exception:  # the receiver must outlive a failing consumer
            log.exception("the trap event handler failed")

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.traps.labels(result=result).inc()

    async def stop(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None


# pysnmp.entity.config names of the protocols (the session uses the hlapi names)
_CONFIG_AUTH = {
    "none": "USM_AUTH_NONE",
    "md5": "USM_AUTH_HMAC96_MD5",
    "sha": "USM_AUTH_HMAC96_SHA",
    "sha224": "USM_AUTH_HMAC128_SHA224",
    "sha256": "USM_AUTH_HMAC192_SHA256",
    "sha384": "USM_AUTH_HMAC256_SHA384",
    "sha512": "USM_AUTH_HMAC384_SHA512",
}
_CONFIG_PRIV = {
    "none": "USM_PRIV_NONE",
    "des": "USM_PRIV_CBC56_DES",
    "3des": "USM_PRIV_CBC168_3DES",
    "aes": "USM_PRIV_CFB128_AES",
    "aes128": "USM_PRIV_CFB128_AES",
    "aes192": "USM_PRIV_CFB192_AES_BLUMENTHAL",
    "aes256": "USM_PRIV_CFB256_AES_BLUMENTHAL",
    "aes192c": "USM_PRIV_CFB192_AES",
    "aes256c": "USM_PRIV_CFB256_AES",
}
