"""Everything that goes through pysnmp: ``PysnmpSession``, and pysnmp's values and messages
as the plain values of ``ber``.

``PysnmpSession`` speaks any SNMP version through pysnmp's ``hlapi.v3arch.asyncio`` with
MIB lookups off; it is always the one for SNMPv3, since pysnmp does USM (engine discovery,
time windows, authentication and privacy), which is not worth re-implementing.
``from_pysnmp`` is also what the trap receiver reads values with, and
``decode_with_pysnmp`` is the fast path's fallback decoder. They import pysnmp when they
run, not when this module is imported.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any, ClassVar

from servicegraph.collectors.snmp import ber
from servicegraph.collectors.snmp.ber import Exc, Oid, Value
from servicegraph.collectors.snmp.credentials import Credential
from servicegraph.collectors.snmp.session import (
    SessionOptions,
    SnmpAuthError,
    SnmpProtocolError,
    SnmpSession,
    SnmpTimeout,
)

# -- values ---------------------------------------------------------------------------------


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


def decode_with_pysnmp(data: bytes) -> ber.Response | None:
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


# -- the session ----------------------------------------------------------------------------


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
