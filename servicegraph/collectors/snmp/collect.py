"""The get step for one device: what discovery reads from one agent, as a ``DeviceSnapshot``.

The system scalars come first; an agent that does not answer them is not there, and the
device fails (``SnmpError``). The later parts (interfaces, ENTITY-MIB chassis, addresses,
LLDP, CDP, HOST-RESOURCES) are each optional, since agents lack MIBs, restrict views or
time out on large tables, and a device without one of them is still worth loading: a part
that fails is named in the snapshot's ``missing`` and reported as a problem, unless two
parts in a row got no answer: the agent is taken as gone, and the tables left are marked
missing without being walked.
Protocol work on one session only: no store, no other device.
"""

from __future__ import annotations

from collections.abc import Sequence

from servicegraph.collectors.snmp import mibs
from servicegraph.collectors.snmp.ber import Oid, Value
from servicegraph.collectors.snmp.session import SnmpError, SnmpSession, SnmpTimeout


class _Parts:
    """Runs the optional parts of a device discovery; a failing part is noted, not fatal,
    unless the agent stops answering altogether."""

    def __init__(self, session: SnmpSession) -> None:
        self.session = session
        self.missing: list[str] = []
        self.problems: list[str] = []
        self._timeouts = 0

    async def walk(self, part: str, columns: Sequence[Oid]) -> mibs.Table | None:
        if self._timeouts >= 2:  # two parts in a row got no answer: the agent is gone
            self.missing.append(part)
            return None
        try:
            table = await self.session.walk(columns)
        except SnmpTimeout as exc:
            self._timeouts += 1
            self.missing.append(part)
            self.problems.append(f"{part}: {exc}")
            return None
        except SnmpError as exc:
            self.missing.append(part)
            self.problems.append(f"{part}: {exc}")
            return None
        self._timeouts = 0
        return table

    async def get(self, part: str, oids: Sequence[Oid]) -> dict[Oid, Value] | None:
        try:
            return await self.session.get(oids)
        except SnmpError as exc:
            self.missing.append(part)
            self.problems.append(f"{part}: {exc}")
            return None


async def collect_device(
    session: SnmpSession, address: str, port: int, *, depth: int = 0
) -> tuple[mibs.DeviceSnapshot, list[str]]:
    """Read what discovery needs from one agent. Raises ``SnmpError`` when the agent does
    not answer the first request; later failures make the snapshot partial (its
    ``missing`` names the parts) and are returned as problems."""
    scalars = await session.get(
        (*mibs.SYSTEM_SCALARS, *mibs.LLDP_LOCAL_SCALARS, *mibs.HOST_SCALARS)
    )
    system = mibs.parse_system(scalars)
    parts = _Parts(session)

    table = await parts.walk("interfaces", mibs.INTERFACE_COLUMNS)
    interfaces = mibs.parse_interfaces(table) if table is not None else ()

    chassis = None
    table = await parts.walk("entity", mibs.ENTITY_SCAN_COLUMNS)
    if table is not None:
        candidates = mibs.chassis_indexes(table)
        if candidates:
            details = await parts.get(
                "entity",
                [(*column, *idx) for idx in candidates for column in mibs.ENTITY_DETAIL_COLUMNS],
            )
            if details is not None:
                chassis = mibs.parse_chassis(details, candidates)

    addresses: tuple[mibs.IpAddressEntry, ...] = ()
    table = await parts.walk("ip", mibs.IP_COLUMNS)
    if table is not None:
        addresses = mibs.parse_ip_addresses(table)
        interfaces = mibs.attach_addresses(interfaces, addresses)

    local_ports: tuple[mibs.LocalPort, ...] = ()
    lldp: tuple[mibs.Neighbour, ...] = ()
    table = await parts.walk("lldp", mibs.LLDP_REMOTE_COLUMNS)
    if table is not None and any(table.values()):
        ports = await parts.walk("lldp", mibs.LLDP_LOCAL_PORT_COLUMNS)
        local_ports = mibs.parse_local_ports(ports) if ports is not None else ()
        lldp = mibs.parse_lldp_neighbours(table, interfaces, local_ports)

    cdp: tuple[mibs.Neighbour, ...] = ()
    table = await parts.walk("cdp", mibs.CDP_COLUMNS)
    if table is not None:
        cdp = mibs.parse_cdp_neighbours(table, interfaces)

    host = None
    if any(oid in scalars for oid in mibs.HOST_SCALARS):
        table = await parts.walk("host", (mibs.HR_DEVICE_TYPE,))
        host = mibs.parse_host(scalars, table.get(mibs.HR_DEVICE_TYPE, {}) if table else {})

    snapshot = mibs.DeviceSnapshot(
        address=address,
        port=port,
        system=system,
        interfaces=interfaces,
        chassis=chassis,
        ip_addresses=addresses,
        lldp_chassis_id=mibs.lldp_chassis_id(
            mibs.integer(scalars.get(mibs.LLDP_LOC_CHASSIS_ID_SUBTYPE)),
            scalars.get(mibs.LLDP_LOC_CHASSIS_ID),
        ),
        lldp_sys_name=mibs.text(scalars.get(mibs.LLDP_LOC_SYS_NAME)),
        local_ports=local_ports,
        neighbours=mibs.merge_neighbours(lldp, cdp),
        host=host,
        depth=depth,
        missing=tuple(dict.fromkeys(parts.missing)),
    )
    return snapshot, parts.problems + session.warnings
