"""The v1/v2c codec against pysnmp's own (pyasn1) encoder and decoder, and the walk logic
against agents that misbehave."""

from __future__ import annotations

import asyncio

import pytest
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import rfc1905
from pysnmp.proto.api import v1, v2c

from servicegraph.collectors.snmp import ber
from servicegraph.collectors.snmp.ber import Exc
from servicegraph.collectors.snmp.pysnmp_session import (
    decode_with_pysnmp as _decode_with_pysnmp,
)
from servicegraph.collectors.snmp.pysnmp_session import from_pysnmp
from servicegraph.collectors.snmp.session import SessionOptions, SnmpProtocolError
from tests.snmp.recorded import RecordingSession

VALUES = [
    v2c.Integer(-6),
    v2c.Integer(2**31 - 1),
    v2c.OctetString(b"GigabitEthernet0/1"),
    v2c.OctetString(b"\x00\xff" * 100),  # binary, and long enough for a long-form length
    v2c.OctetString(b""),
    v2c.ObjectIdentifier((1, 3, 6, 1, 4, 1, 9, 1, 617)),
    v2c.ObjectIdentifier((2, 999, 4294967295)),
    v2c.IpAddress("10.1.2.3"),
    v2c.Counter32(4294967295),
    v2c.Gauge32(1_000_000_000),
    v2c.TimeTicks(492446481),
    v2c.Counter64(2**64 - 1),
    v2c.Opaque(b"\x9f\x78\x04\x3f\x80\x00\x00"),
    v2c.Null(""),
    rfc1905.noSuchObject,
    rfc1905.noSuchInstance,
    rfc1905.endOfMibView,
]


def _response(values: list[object], *, request_id: int = 4711, community: str = "public") -> bytes:
    pdu = v2c.ResponsePDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, request_id)
    v2c.apiPDU.set_varbinds(
        pdu, [((1, 3, 6, 1, 2, 1, 99, i), value) for i, value in enumerate(values)]
    )
    message = v2c.Message()
    v2c.apiMessage.set_defaults(message)
    v2c.apiMessage.set_community(message, community)
    v2c.apiMessage.set_pdu(message, pdu)
    return bytes(encoder.encode(message))


def test_responses_decode_as_pysnmp_decodes_them() -> None:
    data = _response(VALUES * 20)  # > 64 KiB of varbinds would not fit UDP; this is ~6 KiB
    fast = ber.decode_response(data)
    slow = _decode_with_pysnmp(data)
    assert slow is not None
    assert fast == slow
    assert fast.request_id == 4711 and fast.community == b"public"
    assert fast.varbinds[0][1] == -6
    assert fast.varbinds[7][1] == "10.1.2.3"
    assert fast.varbinds[11][1] == 2**64 - 1
    assert fast.varbinds[-1][1] is Exc.END_OF_MIB_VIEW


@pytest.mark.parametrize("pdu", [ber.GET, ber.GETNEXT, ber.GETBULK])
def test_requests_decode_in_pysnmp_as_sent(pdu: int) -> None:
    oids = [(1, 3, 6, 1, 2, 1, 2, 2, 1, column) for column in range(1, 9)] + [(1, 3, 200000)]
    data = ber.encode_request(ber.V2C, b"s3cret", pdu, 2**31 - 1, oids, max_repetitions=25)
    message, rest = decoder.decode(data, asn1Spec=v2c.Message())
    assert rest == b""
    decoded = v2c.apiMessage.get_pdu(message)
    assert bytes(v2c.apiMessage.get_community(message)) == b"s3cret"
    assert int(v2c.apiPDU.get_request_id(decoded)) == 2**31 - 1
    assert [tuple(o) for o, _ in v2c.apiPDU.get_varbinds(decoded)] == oids
    if pdu == ber.GETBULK:
        assert int(v2c.apiBulkPDU.get_max_repetitions(decoded)) == 25


def test_v1_requests_and_responses() -> None:
    data = ber.encode_request(ber.V1, b"public", ber.GET, 1, [(1, 3, 6, 1, 2, 1, 1, 5, 0)])
    message, _ = decoder.decode(data, asn1Spec=v1.Message())
    assert int(v1.apiMessage.get_version(message)) == 0
    with pytest.raises(ber.BerError, match="no GETBULK"):
        ber.encode_request(ber.V1, b"public", ber.GETBULK, 1, [(1, 3)])


@pytest.mark.parametrize(
    "oid", [(0, 0), (1, 3, 6, 1), (2, 999, 3), (1, 3, 6, 1, 4, 1, 2**32 - 1, 0, 127, 128, 16383)]
)
def test_oids_round_trip(oid: tuple[int, ...]) -> None:
    assert ber.decode_oid(ber.encode_oid(oid)) == oid
    assert encoder.encode(v2c.ObjectIdentifier(oid))[2:] == ber.encode_oid(oid)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x30\x03\x02\x01",  # truncated
        b"\x30\x03\x02\x01\x03",  # SNMPv3
        _response([v2c.Integer(1)])[:-2],
        _response([v2c.Integer(1)]) + b"\x00",
        _response([v2c.Integer(1)]).replace(b"\xa2", b"\xa7", 1),  # a trap, not a response
    ],
)
def test_what_is_not_a_response_is_refused(data: bytes) -> None:
    with pytest.raises(ber.BerError):
        ber.decode_response(data)


def test_unusual_value_types_fall_back_to_pysnmp() -> None:
    data = bytearray(_response([v2c.Integer(5)]))
    data[-3] = 0x47  # an application tag the fast codec does not know (UInteger32)
    with pytest.raises(ber.BerError, match="unsupported value tag"):
        ber.decode_response(bytes(data))
    assert _decode_with_pysnmp(b"garbage") is None


def test_pysnmp_values_convert_like_the_codec() -> None:
    assert [from_pysnmp(v) for v in VALUES] == [
        vb[1] for vb in ber.decode_response(_response(VALUES)).varbinds
    ]


# -- walks ------------------------------------------------------------------------------------

TABLE = {
    **{(1, 3, 6, 1, 2, 1, 2, 2, 1, 2, i): f"eth{i}".encode() for i in range(1, 101)},
    **{(1, 3, 6, 1, 2, 1, 2, 2, 1, 8, i): 1 for i in range(1, 101) if i % 3},  # sparse
    (1, 3, 6, 1, 2, 1, 2, 2, 1, 9, 1): 0,
    (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1, 1): b"after",
}
COLUMNS = [(1, 3, 6, 1, 2, 1, 2, 2, 1, 2), (1, 3, 6, 1, 2, 1, 2, 2, 1, 8)]


@pytest.mark.parametrize("version", ["1", "2c"])
def test_a_walk_of_several_columns_gets_every_row(version: str) -> None:
    session = RecordingSession(dict(TABLE), SessionOptions(max_repetitions=7), version=version)
    table = asyncio.run(session.walk(COLUMNS))
    assert len(table[COLUMNS[0]]) == 100
    assert sorted(table[COLUMNS[1]]) == [(i,) for i in range(1, 101) if i % 3]
    assert session.warnings == []


class _Stuck(RecordingSession):
    """Answers every GETBULK with the OID it was asked about: never increasing."""

    async def _request(self, pdu, oids, max_repetitions=0):  # type: ignore[no-untyped-def]
        self.requests += 1
        return 0, 0, [((*oid[:-1], oid[-1]) if len(oid) > 10 else (*oid, 1), b"x") for oid in oids]


def test_an_agent_whose_oids_do_not_increase_cannot_loop_a_walk() -> None:
    session = _Stuck({})
    table = asyncio.run(session.walk(COLUMNS))
    assert session.requests == 2
    assert all(len(rows) == 1 for rows in table.values())
    assert "not increasing" in session.warnings[0]


class _TooBig(RecordingSession):
    async def _request(self, pdu, oids, max_repetitions=0):  # type: ignore[no-untyped-def]
        if max_repetitions > 4:
            self.requests += 1
            return 1, 0, []
        return await super()._request(pdu, oids, max_repetitions)


def test_too_big_halves_the_repetitions() -> None:
    session = _TooBig(dict(TABLE), SessionOptions(max_repetitions=32))
    table = asyncio.run(session.walk(COLUMNS[:1]))
    assert len(table[COLUMNS[0]]) == 100


def test_a_walk_stops_at_max_rows() -> None:
    session = RecordingSession(dict(TABLE), SessionOptions(max_rows=10))
    table = asyncio.run(session.walk(COLUMNS[:1]))
    assert len(table[COLUMNS[0]]) == 10
    assert "after 10 rows" in session.warnings[0]


class _Broken(RecordingSession):
    async def _request(self, pdu, oids, max_repetitions=0):  # type: ignore[no-untyped-def]
        return 5, 1, []


def test_an_error_status_is_a_protocol_error() -> None:
    with pytest.raises(SnmpProtocolError, match="genErr"):
        asyncio.run(_Broken({}).walk(COLUMNS))
