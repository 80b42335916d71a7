"""``FastSession``: SNMPv1 and v2c over the small ``ber`` codec on an asyncio datagram socket.

This is the hot path of every walk: it cuts pysnmp's client CPU per varbind by more than
an order of magnitude (see ``ber``). A response outside the codec's shape is decoded by
pysnmp instead (``pysnmp_session.decode_with_pysnmp``), so that a rare value type costs
speed, not the device.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
from collections.abc import Sequence
from typing import Any

from servicegraph.collectors.snmp import ber
from servicegraph.collectors.snmp.ber import Oid, Value
from servicegraph.collectors.snmp.credentials import Credential
from servicegraph.collectors.snmp.pysnmp_session import decode_with_pysnmp
from servicegraph.collectors.snmp.session import SessionOptions, SnmpSession, SnmpTimeout


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, session: FastSession) -> None:
        self.session = session

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.session._received(data)

    def error_received(self, exc: Exception) -> None:
        # On a connected UDP socket the kernel reports ICMP port unreachable here: no agent.
        self.session._failed(exc)


_request_ids = itertools.count(random.randrange(1, 1 << 30))


class FastSession(SnmpSession):
    """SNMPv1/v2c over the ``ber`` codec."""

    def __init__(
        self, host: str, port: int, credential: Credential, options: SessionOptions
    ) -> None:
        super().__init__(host, port, options)
        if credential.version not in ("1", "2c") or credential.community is None:
            raise ValueError("FastSession speaks SNMPv1 and v2c only")
        self._version = ber.V1 if credential.version == "1" else ber.V2C
        self.supports_bulk = self._version == ber.V2C
        self._community = credential.community.reveal().encode()
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: dict[int, asyncio.Future[ber.Response]] = {}
        self.malformed = 0

    async def _open(self) -> asyncio.DatagramTransport:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise SnmpTimeout(f"{self.label}: cannot resolve host ({exc.strerror})") from None
        family, _, _, _, sockaddr = infos[0]
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(self),
            family=family,
            remote_addr=(str(sockaddr[0]), int(sockaddr[1])),
        )
        self._transport = transport
        return transport

    async def _request(
        self, pdu: int, oids: Sequence[Oid], max_repetitions: int = 0
    ) -> tuple[int, int, list[tuple[Oid, Value]]]:
        transport = self._transport or await self._open()
        request_id = next(_request_ids) & 0x7FFFFFFF
        message = ber.encode_request(
            self._version, self._community, pdu, request_id, oids, max_repetitions=max_repetitions
        )
        future: asyncio.Future[ber.Response] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            for _ in range(self.options.retries + 1):
                transport.sendto(message)
                self.requests += 1
                # a late answer to an earlier attempt is as good: same request id
                done, _ = await asyncio.wait((future,), timeout=self.options.timeout)
                if done:
                    response = future.result()
                    break
            else:
                raise SnmpTimeout(
                    f"no response from {self.label} after {self.options.retries + 1} "
                    f"attempt(s) of {self.options.timeout:g}s"
                )
        finally:
            del self._pending[request_id]
        self.varbinds += len(response.varbinds)
        return response.error_status, response.error_index, response.varbinds

    def _received(self, data: bytes) -> None:
        response: ber.Response | None
        try:
            response = ber.decode_response(data)
        except ber.BerError:
            response = decode_with_pysnmp(data)
        if response is None or response.community != self._community:
            self.malformed += 1
            return
        future = self._pending.get(response.request_id)
        if future is not None and not future.done():
            future.set_result(response)

    def _failed(self, exc: Exception) -> None:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        for future in self._pending.values():
            if not future.done():
                future.set_exception(SnmpTimeout(f"{self.label} unreachable: {reason}"))

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
