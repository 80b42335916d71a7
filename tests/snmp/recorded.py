"""An in-memory agent over a .snmprec recording, for tests of the pure parts without a
network: ``RecordingSession`` answers GET, GETNEXT and GETBULK like an agent would, so
``collect_device`` produces the same snapshot it would from snmpsim."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path

from servicegraph.collectors.snmp import ber
from servicegraph.collectors.snmp.ber import Exc, Oid, Value
from servicegraph.collectors.snmp.collect import collect_device
from servicegraph.collectors.snmp.mibs import DeviceSnapshot
from servicegraph.collectors.snmp.session import SessionOptions, SnmpSession
from tests.snmp.simulator import read_snmprec

_INTEGERS = {"2", "65", "66", "67", "70"}


def value_of(tag: str, raw: str) -> Value:
    """A .snmprec value as the plain value a session returns."""
    hexed = tag.endswith("x")
    base = tag.rstrip("x")
    data = bytes.fromhex(raw) if hexed else raw.encode("latin-1")
    if base in _INTEGERS:
        return int(data.decode() or 0) if not hexed else int.from_bytes(data, "big")
    if base == "6":
        return tuple(int(x) for x in data.decode().split(".") if x)
    if base == "64":
        return ".".join(map(str, data)) if hexed else data.decode()
    if base == "5":
        return None
    return data


def load(path: Path) -> dict[Oid, Value]:
    return {oid: value_of(tag, raw) for oid, (tag, raw) in read_snmprec(path).items()}


class RecordingSession(SnmpSession):
    def __init__(
        self,
        values: dict[Oid, Value],
        options: SessionOptions | None = None,
        *,
        max_response: int = 64,
        version: str = "2c",
    ) -> None:
        super().__init__("recording", 161, options or SessionOptions())
        self.values = values
        self.oids = sorted(values)
        self.max_response = max_response
        self.supports_bulk = version != "1"
        self.v1 = version == "1"

    def _next(self, oid: Oid) -> tuple[Oid, Value]:
        i = bisect.bisect_right(self.oids, oid)
        if i >= len(self.oids):
            return oid, Exc.END_OF_MIB_VIEW
        found = self.oids[i]
        return found, self.values[found]

    async def _request(
        self, pdu: int, oids: Sequence[Oid], max_repetitions: int = 0
    ) -> tuple[int, int, list[tuple[Oid, Value]]]:
        self.requests += 1
        result: list[tuple[Oid, Value]] = []
        if pdu == ber.GET:
            for i, oid in enumerate(oids):
                if oid not in self.values and self.v1:
                    return 2, i + 1, []
                result.append((oid, self.values.get(oid, Exc.NO_SUCH_INSTANCE)))
        elif pdu == ber.GETNEXT:
            for i, oid in enumerate(oids):
                found = self._next(oid)
                if found[1] is Exc.END_OF_MIB_VIEW and self.v1:
                    return 2, i + 1, []
                result.append(found)
        else:
            cursors = list(oids)
            for _ in range(max_repetitions):
                for i, oid in enumerate(cursors):
                    cursors[i], value = self._next(oid)
                    result.append((cursors[i], value))
                if len(result) >= self.max_response:
                    break
            result = result[: self.max_response]
        self.varbinds += len(result)
        return 0, 0, result

    async def close(self) -> None:
        return None


async def snapshot(path: Path, *, address: str = "192.0.2.1", depth: int = 0) -> DeviceSnapshot:
    session = RecordingSession(load(path))
    snap, _ = await collect_device(session, address, 161, depth=depth)
    return snap
