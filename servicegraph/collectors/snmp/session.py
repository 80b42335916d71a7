"""What an SNMP session is, whatever carries its requests: GET and multi-column table
walks against one agent, returning plain values (``ber.Value``), with the options that
bound them and the errors they raise.

``SnmpSession`` holds the request logic both transports share (the SNMPv1 quirks, GETBULK
sizing, walking several columns at once and stopping on agent bugs); a transport only
sends one request and returns its answer (``_request``): ``fast_session.FastSession`` or
``pysnmp_session.PysnmpSession``, chosen by ``client.SessionFactory``.

Every session raises ``SnmpTimeout`` (no answer: host down, port closed, or, for v1/v2c,
a wrong community, which agents silently drop), ``SnmpAuthError`` (v3 user, keys or
protocols rejected) or ``SnmpProtocolError`` (an answer we cannot use). Messages never
contain a community or key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from servicegraph.collectors.snmp import ber
from servicegraph.collectors.snmp.ber import Exc, Oid, Value

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
