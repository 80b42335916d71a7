"""A small BER codec for the SNMP v1/v2c messages a manager sends and reads in bulk:
GET, GETNEXT and GETBULK requests, and the Response-PDU that answers them.

Why not pysnmp's codec for these: profiling a pysnmp walk of 54,000 varbinds showed about
80% of the client's CPU in pyasn1's generic, schema-driven BER decoder (``decoder.__call__``,
``valueDecoder``, ``clone``) and most of the rest in MIB lookups, some 110 us per varbind,
40x net-snmp. A Response-PDU has one fixed shape, so a straight-line decoder for that shape
does the same work for a few microseconds per varbind. Anything outside that shape raises
``BerError`` and the caller falls back to pysnmp (see ``client``); SNMPv3, whose messages
are authenticated and encrypted, always goes through pysnmp.

Values come out as plain Python: ``int`` for INTEGER, Counter32/64, Gauge32 and TimeTicks,
``bytes`` for OCTET STRING and Opaque, ``str`` (dotted quad) for IpAddress, a tuple of ints
for OBJECT IDENTIFIER, ``None`` for NULL, and ``EndOfMib``/``NoSuch`` markers for the
SNMPv2 exception values.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

Oid = tuple[int, ...]


class Exc(enum.Enum):
    """SNMPv2 exception values (RFC 3416): a varbind without a value."""

    NO_SUCH_OBJECT = 0x80
    NO_SUCH_INSTANCE = 0x81
    END_OF_MIB_VIEW = 0x82


Value = int | bytes | str | Oid | None | Exc

# universal and application tags
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
SEQUENCE = 0x30
IP_ADDRESS = 0x40
COUNTER32 = 0x41
GAUGE32 = 0x42
TIMETICKS = 0x43
OPAQUE = 0x44
COUNTER64 = 0x46

# PDU tags (context-specific, constructed)
GET = 0xA0
GETNEXT = 0xA1
RESPONSE = 0xA2
GETBULK = 0xA5

V1 = 0
V2C = 1

_UNSIGNED = frozenset((COUNTER32, GAUGE32, TIMETICKS, COUNTER64))
_EXCEPTIONS = {e.value: e for e in Exc}


class BerError(ValueError):
    """The bytes are not a message this codec understands."""


@dataclass(frozen=True, slots=True)
class Response:
    version: int
    community: bytes
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[tuple[Oid, Value]]


# -- encoding --------------------------------------------------------------------------------


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + _length(len(payload)) + payload


def _integer(value: int) -> bytes:
    return _tlv(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def encode_oid(oid: Sequence[int]) -> bytes:
    """The contents octets of an OBJECT IDENTIFIER (without tag and length)."""
    if len(oid) < 2 or oid[0] > 2 or (oid[0] < 2 and oid[1] >= 40):
        raise BerError(f"not a valid OID: {'.'.join(map(str, oid))}")
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        if arc < 0:
            raise BerError(f"negative arc in OID {'.'.join(map(str, oid))}")
        if arc < 0x80:
            out.append(arc)
            continue
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


_NULL_VALUE = b"\x05\x00"


def encode_request(
    version: int,
    community: bytes,
    pdu_tag: int,
    request_id: int,
    oids: Sequence[Oid],
    *,
    non_repeaters: int = 0,
    max_repetitions: int = 0,
) -> bytes:
    """A GET, GETNEXT or GETBULK request message with NULL values."""
    if pdu_tag not in (GET, GETNEXT, GETBULK):
        raise BerError(f"cannot encode PDU type 0x{pdu_tag:02x}")
    if pdu_tag == GETBULK and version == V1:
        raise BerError("SNMPv1 has no GETBULK")
    varbinds = b"".join(
        _tlv(SEQUENCE, _tlv(OBJECT_IDENTIFIER, encode_oid(oid)) + _NULL_VALUE) for oid in oids
    )
    # GETBULK puts non-repeaters / max-repetitions where other PDUs carry error status/index
    second, third = (non_repeaters, max_repetitions) if pdu_tag == GETBULK else (0, 0)
    pdu = _tlv(
        pdu_tag,
        _integer(request_id) + _integer(second) + _integer(third) + _tlv(SEQUENCE, varbinds),
    )
    return _tlv(SEQUENCE, _integer(version) + _tlv(OCTET_STRING, community) + pdu)


# -- decoding --------------------------------------------------------------------------------


def _header(data: bytes, pos: int, expected: int) -> tuple[int, int]:
    """Check the tag at ``pos``; return (start of contents, end of contents)."""
    try:
        tag = data[pos]
        length = data[pos + 1]
    except IndexError:
        raise BerError("message truncated") from None
    if tag != expected:
        raise BerError(f"expected tag 0x{expected:02x} at offset {pos}, found 0x{tag:02x}")
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise BerError("indefinite or oversized length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise BerError("message truncated")
    return pos, end


def _int_at(data: bytes, pos: int) -> tuple[int, int]:
    start, end = _header(data, pos, INTEGER)
    return int.from_bytes(data[start:end], "big", signed=True), end


def decode_oid(contents: bytes) -> Oid:
    """An OBJECT IDENTIFIER from its contents octets."""
    arcs: list[int] = []
    value = 0
    for byte in contents:
        if byte & 0x80:
            value = (value << 7) | (byte & 0x7F)
        else:
            arcs.append((value << 7) | byte)
            value = 0
    if value or not arcs or contents[-1] & 0x80:
        raise BerError("malformed OBJECT IDENTIFIER")
    first = arcs[0]
    if first < 40:
        return (0, first, *arcs[1:])
    if first < 80:
        return (1, first - 40, *arcs[1:])
    return (2, first - 80, *arcs[1:])


def decode_response(data: bytes) -> Response:
    """Decode a v1/v2c Response-PDU message; raise BerError for anything else."""
    pos, end = _header(data, 0, SEQUENCE)
    if end != len(data):
        raise BerError("trailing bytes after the message")
    version, pos = _int_at(data, pos)
    if version not in (V1, V2C):
        raise BerError(f"not an SNMPv1/v2c message (version field {version})")
    start, pos = _header(data, pos, OCTET_STRING)
    community = data[start:pos]
    pos, pdu_end = _header(data, pos, RESPONSE)
    request_id, pos = _int_at(data, pos)
    error_status, pos = _int_at(data, pos)
    error_index, pos = _int_at(data, pos)
    pos, list_end = _header(data, pos, SEQUENCE)
    if list_end != pdu_end:
        raise BerError("bytes after the varbind list")
    varbinds: list[tuple[Oid, Value]] = []
    append = varbinds.append
    from_bytes = int.from_bytes
    # The loop below is _header() inlined three times per varbind: it runs for every value of
    # every walk, and function calls are most of its cost.
    try:
        while pos < list_end:
            if data[pos] != SEQUENCE:
                raise BerError(f"expected a varbind at offset {pos}")
            length = data[pos + 1]
            pos += 2
            if length & 0x80:
                count = length & 0x7F
                length = from_bytes(data[pos : pos + count], "big")
                pos += count
            vb_end = pos + length
            if data[pos] != OBJECT_IDENTIFIER:
                raise BerError(f"expected an OID at offset {pos}")
            length = data[pos + 1]
            pos += 2
            if length & 0x80:
                count = length & 0x7F
                length = from_bytes(data[pos : pos + count], "big")
                pos += count
            oid = decode_oid(data[pos : pos + length])
            pos += length
            tag = data[pos]
            length = data[pos + 1]
            pos += 2
            if length & 0x80:
                count = length & 0x7F
                length = from_bytes(data[pos : pos + count], "big")
                pos += count
            value_end = pos + length
            if value_end != vb_end:
                raise BerError(f"varbind at offset {pos} has extra or missing bytes")
            value: Value
            if tag in (OCTET_STRING, OPAQUE):
                value = data[pos:value_end]
            elif tag == INTEGER:
                value = from_bytes(data[pos:value_end], "big", signed=True)
            elif tag in _UNSIGNED:
                value = from_bytes(data[pos:value_end], "big")
            elif tag == OBJECT_IDENTIFIER:
                value = decode_oid(data[pos:value_end])
            elif tag == IP_ADDRESS:
                if length != 4:
                    raise BerError("IpAddress is not 4 octets")
                value = ".".join(map(str, data[pos:value_end]))
            elif tag == NULL:
                value = None
            elif tag in _EXCEPTIONS:
                value = _EXCEPTIONS[tag]
            else:
                raise BerError(f"unsupported value tag 0x{tag:02x}")
            append((oid, value))
            pos = value_end
    except IndexError:
        raise BerError("message truncated") from None
    if pos != list_end:
        raise BerError("varbind list length mismatch")
    return Response(version, community, request_id, error_status, error_index, varbinds)
