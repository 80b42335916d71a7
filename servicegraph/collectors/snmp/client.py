"""SNMP sessions: GET and multi-column table walks against one agent, returning plain values.

Two implementations share the walking logic in ``SnmpSession``:

* ``FastSession`` (v1, v2c): requests encoded and responses decoded by the small codec in
  ``ber`` over an asyncio datagram socket. This is the hot path of every walk, and it
  cuts pysnmp's client CPU per varbind by more than an order of magnitude (see ``ber``).
* ``PysnmpSession`` (any version, always for v3): pysnmp's ``hlapi.v3arch.asyncio`` with
  MIB lookups off. pysnmp does USM (engine discovery, time windows, authentication and
  privacy), which is not worth re-implementing.

Both raise ``SnmpTimeout`` (no answer: host down, port closed, or, for v1/v2c, a wrong
community, which agents silently drop), ``SnmpAuthError`` (v3 user, keys or protocols
rejected) or ``SnmpProtocolError`` (an answer we cannot use). Messages never contain a
community or key.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from servicegraph.collectors.snmp import ber
from servicegraph.collectors.snmp.ber import Exc, Oid, Value
from servicegraph.collectors.snmp.credentials import Credential

Table = dict[Oid, dict[Oid, Value]]

# error-status values (RFC 3416)
TOO_BIG = 1
NO_SUCH_NAME = 2  # SNMPv1: the end of the MIB view, or an unknown OID in a GET
ERROR_NAMES = {
    1: "tooBig",
    2: "noSuchName",
    3: "badValue",
    4: "readOnly",
    5: "genErr",
    6: "noAccess",
    16: "authorizationError",
}


class SnmpError(Exception):
    """Base of the errors a session raises; ``outcome`` is how discovery reports it."""

    outcome = "error"


class SnmpTimeout(SnmpError):
    outcome = "timeout"


class SnmpAuthError(SnmpError):
    outcome = "auth_failure"


class SnmpProtocolError(SnmpError):
    outcome = "error"


@dataclass(frozen=True)
class SessionOptions:
    """Per-device request settings.

    ``max_repetitions`` is the number of rows a GETBULK asks for; a request walking several
    columns at once asks for fewer rows so that one response carries at most
    ``max_varbinds`` values (which keeps responses below the sizes agents refuse).
    """

    timeout: float = 2.0
    retries: int = 1
    max_repetitions: int = 25
    max_varbinds: int = 250
    max_rows: int = 200_000  # per column: a bound on agents that never end a table
    get_batch: int = 24  # OIDs per GET request

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.retries < 0:
            raise ValueError("retries must be 0 or more")
        if not 1 <= self.max_repetitions <= 1000:
            raise ValueError("max_repetitions must be between 1 and 1000")
        if self.max_varbinds < 1 or self.max_rows < 1 or self.get_batch < 1:
            raise ValueError("max_varbinds, max_rows and get_batch must be positive")


class SnmpSession:
    """Requests to one agent. Subclasses implement ``_request`` and ``close``."""

    supports_bulk: bool = True

    def __init__(self, host: str, port: int, options: SessionOptions) -> None:
        self.host = host
        self.port = port
        self.options = options
        self.requests = 0  # sent, including retries
        self.varbinds = 0  # received
        self.warnings: list[str] = []

    @property
    def label(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def _request(
        self, pdu: int, oids: Sequence[Oid], max_repetitions: int = 0
    ) -> tuple[int, int, list[tuple[Oid, Value]]]:
        """Send one request; return (error status, error index, varbinds)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> SnmpSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _error(self, status: int, index: int, what: str) -> SnmpProtocolError:
        name = ERROR_NAMES.get(status, str(status))
        return SnmpProtocolError(f"{self.label} answered {what} with error {name} (index {index})")

    async def get(self, oids: Sequence[Oid]) -> dict[Oid, Value]:
        """Values of the given instances; instances the agent does not have are left out."""
        result: dict[Oid, Value] = {}
        batch = self.options.get_batch
        for start in range(0, len(oids), batch):
            remaining = list(oids[start : start + batch])
            while remaining:
                status, index, varbinds = await self._request(ber.GET, remaining)
                if status == NO_SUCH_NAME and 0 < index <= len(remaining):
                    # SNMPv1 fails the whole GET for one unknown OID: drop it and ask again
                    del remaining[index - 1]
                    continue
                if status:
                    raise self._error(status, index, "a GET")
                for oid, value in varbinds:
                    if value is not None and not isinstance(value, Exc):
                        result[oid] = value
                break
        return result

    async def walk(self, columns: Sequence[Oid]) -> Table:
        """Walk several table columns (or any subtrees) at once.

        One GETBULK (GETNEXT for v1) asks for the next rows of every column still going;
        the response is row-major, so varbind ``i`` belongs to column ``i % n``. A column
        ends at the first OID outside it, at endOfMibView, or when an agent returns an OID
        that does not increase (a bug some agents have; walking on would loop forever).
        """
        unique = list(dict.fromkeys(columns))
        result: Table = {c: {} for c in unique}
        last: dict[Oid, Oid] = {c: c for c in unique}
        active = unique
        repetitions = self.options.max_repetitions
        while active:
            request = [last[c] for c in active]
            if self.supports_bulk:
                rows = max(1, min(repetitions, self.options.max_varbinds // len(active)))
                status, index, varbinds = await self._request(ber.GETBULK, request, rows)
            else:
                status, index, varbinds = await self._request(ber.GETNEXT, request)
            if status == TOO_BIG and self.supports_bulk and repetitions > 1:
                repetitions = max(1, repetitions // 2)
                continue
            if status == NO_SUCH_NAME and 0 < index <= len(active):
                active = active[: index - 1] + active[index:]  # v1: that column is done
                continue
            if status:
                raise self._error(status, index, "a walk")
            if not varbinds:
                break
            n = len(active)
            finished: set[Oid] = set()
            progressed = False
            for i, (oid, value) in enumerate(varbinds):
                column = active[i % n]
                if column in finished:
                    continue
                if value is Exc.END_OF_MIB_VIEW or oid[: len(column)] != column:
                    finished.add(column)
                    continue
                if oid <= last[column]:
                    self.warnings.append(
                        f"{self.label}: OID not increasing after {'.'.join(map(str, last[column]))}"
                    )
                    finished.add(column)
                    continue
                values = result[column]
                values[oid[len(column) :]] = value
                last[column] = oid
                progressed = True
                if len(values) >= self.options.max_rows:
                    self.warnings.append(
                        f"{self.label}: stopped {'.'.join(map(str, column))} "
                        f"after {self.options.max_rows} rows"
                    )
                    finished.add(column)
            if not progressed and not finished:
                raise SnmpProtocolError(f"{self.label} returned no usable varbinds in a walk")
            if finished:
                active = [c for c in active if c not in finished]
        return result


# -- v1 / v2c ---------------------------------------------------------------------------------


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
            response = _decode_with_pysnmp(data)
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


def _decode_with_pysnmp(data: bytes) -> ber.Response | None:
    """Fallback for responses outside the fast codec's shape (rare value types, odd length
    encodings): pysnmp's own decoder. ``None`` if it is not a usable response either."""
    from pyasn1.codec.ber import decoder
    from pyasn1.error import PyAsn1Error
    from pysnmp.proto import api
    from pysnmp.proto.api.verdec import decode_message_version

    try:
        version = int(decode_message_version(data))
        module = api.PROTOCOL_MODULES[version]
        message, _ = decoder.decode(data, asn1Spec=module.Message())
        pdu = module.apiMessage.get_pdu(message)
        if not pdu.isSameTypeWith(module.GetResponsePDU()):
            return None
        return ber.Response(
            version=version,
            community=bytes(module.apiMessage.get_community(message)),
            request_id=int(module.apiPDU.get_request_id(pdu)),
            error_status=int(module.apiPDU.get_error_status(pdu)),
            error_index=int(module.apiPDU.get_error_index(pdu)),
            varbinds=[
                (tuple(name), from_pysnmp(value)) for name, value in module.apiPDU.get_varbinds(pdu)
            ],
        )
    except (PyAsn1Error, KeyError, ValueError, TypeError):
        return None


# -- pysnmp ---------------------------------------------------------------------------------


def from_pysnmp(value: Any) -> Value:
    """A pysnmp/pyasn1 value as the plain value ``ber`` would have produced."""
    from pyasn1.type import univ
    from pysnmp.proto import rfc1902, rfc1905

    tag_set = getattr(value, "tagSet", None)
    for marker, cls in (
        (Exc.END_OF_MIB_VIEW, rfc1905.EndOfMibView),
        (Exc.NO_SUCH_INSTANCE, rfc1905.NoSuchInstance),
        (Exc.NO_SUCH_OBJECT, rfc1905.NoSuchObject),
    ):
        if tag_set == cls.tagSet:
            return marker
    if isinstance(value, univ.Null):  # before OctetString: pyasn1's Null is one
        return None
    if isinstance(value, rfc1902.IpAddress):
        return str(ipaddress.IPv4Address(value.asOctets()))
    if isinstance(value, univ.OctetString):
        return bytes(value.asOctets())
    if isinstance(value, univ.ObjectIdentifier):
        return tuple(value)
    if isinstance(value, univ.Integer):
        return int(value)
    return None


_AUTH_ERRORS = frozenset(
    {
        "UnknownUserName",
        "WrongDigest",
        "AuthenticationError",
        "AuthenticationFailure",
        "DecryptionError",
        "UnknownSecurityName",
        "UnsupportedSecurityLevel",
        "UnknownCommunityName",
        "UnsupportedAuthProtocol",
        "UnsupportedPrivProtocol",
    }
)


def _raise_indication(indication: Any, label: str) -> None:
    name = type(indication).__name__
    if name == "RequestTimedOut":
        raise SnmpTimeout(f"no response from {label}")
    if name in _AUTH_ERRORS:
        raise SnmpAuthError(f"{label} rejected the credentials: {indication}")
    raise SnmpProtocolError(f"{label}: {indication}")


class PysnmpSession(SnmpSession):
    """Any SNMP version through pysnmp's asyncio high-level API, MIB lookups off."""

    AUTH: ClassVar[dict[str, str]] = {
        "none": "usmNoAuthProtocol",
        "md5": "usmHMACMD5AuthProtocol",
        "sha": "usmHMACSHAAuthProtocol",
        "sha224": "usmHMAC128SHA224AuthProtocol",
        "sha256": "usmHMAC192SHA256AuthProtocol",
        "sha384": "usmHMAC256SHA384AuthProtocol",
        "sha512": "usmHMAC384SHA512AuthProtocol",
    }
    PRIV: ClassVar[dict[str, str]] = {
        "none": "usmNoPrivProtocol",
        "des": "usmDESPrivProtocol",
        "3des": "usm3DESEDEPrivProtocol",
        "aes": "usmAesCfb128Protocol",
        "aes128": "usmAesCfb128Protocol",
        "aes192": "usmAesBlumenthalCfb192Protocol",
        "aes256": "usmAesBlumenthalCfb256Protocol",
        "aes192c": "usmAesCfb192Protocol",
        "aes256c": "usmAesCfb256Protocol",
    }

    def __init__(
        self,
        engine: Any,
        host: str,
        port: int,
        credential: Credential,
        options: SessionOptions,
    ) -> None:
        from pysnmp.hlapi.v3arch import asyncio as hlapi

        super().__init__(host, port, options)
        self._hlapi = hlapi
        self._engine = engine
        self.supports_bulk = credential.version != "1"
        self._auth = self._auth_data(credential)
        self._context = hlapi.ContextData(contextName=credential.context.encode())
        self._target: Any = None

    def _auth_data(self, credential: Credential) -> Any:
        hlapi = self._hlapi
        if credential.version in ("1", "2c"):
            assert credential.community is not None
            return hlapi.CommunityData(
                credential.community.reveal(), mpModel=0 if credential.version == "1" else 1
            )
        return hlapi.UsmUserData(
            credential.user,
            authKey=credential.auth_key.reveal() if credential.auth_key else None,
            privKey=credential.priv_key.reveal() if credential.priv_key else None,
            authProtocol=getattr(hlapi, self.AUTH[credential.auth_protocol]),
            privProtocol=getattr(hlapi, self.PRIV[credential.priv_protocol]),
        )

    async def _open(self) -> Any:
        hlapi = self._hlapi
        try:
            is_v6 = ipaddress.ip_address(self.host).version == 6
        except ValueError:
            is_v6 = False
        cls = hlapi.Udp6TransportTarget if is_v6 else hlapi.UdpTransportTarget
        try:
            self._target = await cls.create(
                (self.host, self.port), timeout=self.options.timeout, retries=self.options.retries
            )
        except Exception as exc:  # pysnmp wraps resolver failures in its own error type
            raise SnmpTimeout(f"{self.label}: cannot resolve host ({exc})") from None
        return self._target

    async def _request(
        self, pdu: int, oids: Sequence[Oid], max_repetitions: int = 0
    ) -> tuple[int, int, list[tuple[Oid, Value]]]:
        hlapi = self._hlapi
        target = self._target or await self._open()
        varbinds = [hlapi.ObjectType(hlapi.ObjectIdentity(oid)) for oid in oids]
        common = (self._engine, self._auth, target, self._context)
        self.requests += 1
        if pdu == ber.GET:
            result = await hlapi.get_cmd(*common, *varbinds, lookupMib=False)
        elif pdu == ber.GETNEXT:
            result = await hlapi.next_cmd(*common, *varbinds, lookupMib=False)
        else:
            result = await hlapi.bulk_cmd(*common, 0, max_repetitions, *varbinds, lookupMib=False)
        indication, status, index, answer = result
        if indication:
            _raise_indication(indication, self.label)
        values = [(tuple(name), from_pysnmp(value)) for name, value in answer]
        self.varbinds += len(values)
        return int(status), int(index), values

    async def close(self) -> None:
        self._target = None


class SessionFactory:
    """Opens sessions; owns the pysnmp engine that v3 sessions share (created on first use,
    since building one loads MIB modules). ``engine="pysnmp"`` routes v1/v2c through
    pysnmp too, e.g. for comparison or an agent the fast path cannot read."""

    def __init__(self, options: SessionOptions, *, engine: str = "fast") -> None:
        if engine not in ("fast", "pysnmp"):
            raise ValueError("engine must be 'fast' or 'pysnmp'")
        self.options = options
        self.engine = engine
        self._snmp_engine: Any = None

    def open(
        self,
        host: str,
        port: int,
        credential: Credential,
        options: SessionOptions | None = None,
    ) -> SnmpSession:
        options = options or self.options
        if credential.version != "3" and self.engine == "fast":
            return FastSession(host, port, credential, options)
        if self._snmp_engine is None:
            from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

            self._snmp_engine = SnmpEngine()
        return PysnmpSession(self._snmp_engine, host, port, credential, options)

    def close(self) -> None:
        """Release the pysnmp engine, in the event loop its sessions ran in (pysnmp binds its
        transport to that loop). Called after that loop has closed, it only drops it."""
        engine, self._snmp_engine = self._snmp_engine, None
        if engine is None:
            return
        with contextlib.suppress(RuntimeError):  # "Event loop is closed": nothing to stop
            engine.close_dispatcher()
