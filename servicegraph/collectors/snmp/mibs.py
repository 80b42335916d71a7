"""The MIB objects discovery reads, and pure parsers from walked tables to plain records.

OIDs are numeric tuples: no MIB compiler and no lookups at run time. A table arrives as
``{column OID: {row index: value}}`` (see ``session.Table``); each parser takes what it needs
and tolerates what real agents do: missing columns, empty strings, NUL padding, binary
where text was expected, indexes that do not line up between tables.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from servicegraph.collectors.snmp.ber import Exc, Oid, Value

Table = Mapping[Oid, Mapping[Oid, Value]]

# -- SNMPv2-MIB system group (scalars) --------------------------------------------------------
SYS_DESCR: Oid = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_OBJECT_ID: Oid = (1, 3, 6, 1, 2, 1, 1, 2, 0)
SYS_UPTIME: Oid = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SYS_CONTACT: Oid = (1, 3, 6, 1, 2, 1, 1, 4, 0)
SYS_NAME: Oid = (1, 3, 6, 1, 2, 1, 1, 5, 0)
SYS_LOCATION: Oid = (1, 3, 6, 1, 2, 1, 1, 6, 0)
SYS_SERVICES: Oid = (1, 3, 6, 1, 2, 1, 1, 7, 0)
SYSTEM_SCALARS: tuple[Oid, ...] = (
    SYS_DESCR,
    SYS_OBJECT_ID,
    SYS_UPTIME,
    SYS_CONTACT,
    SYS_NAME,
    SYS_LOCATION,
    SYS_SERVICES,
)

# -- IF-MIB -----------------------------------------------------------------------------------
_IF_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IF_INDEX: Oid = (*_IF_ENTRY, 1)
IF_DESCR: Oid = (*_IF_ENTRY, 2)
IF_TYPE: Oid = (*_IF_ENTRY, 3)
IF_MTU: Oid = (*_IF_ENTRY, 4)
IF_SPEED: Oid = (*_IF_ENTRY, 5)
IF_PHYS_ADDRESS: Oid = (*_IF_ENTRY, 6)
IF_ADMIN_STATUS: Oid = (*_IF_ENTRY, 7)
IF_OPER_STATUS: Oid = (*_IF_ENTRY, 8)
_IFX_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
IF_NAME: Oid = (*_IFX_ENTRY, 1)
IF_HIGH_SPEED: Oid = (*_IFX_ENTRY, 15)
IF_ALIAS: Oid = (*_IFX_ENTRY, 18)
# ifIndex itself is not walked: every row has ifDescr, which carries the same index.
INTERFACE_COLUMNS: tuple[Oid, ...] = (
    IF_DESCR,
    IF_TYPE,
    IF_MTU,
    IF_SPEED,
    IF_PHYS_ADDRESS,
    IF_ADMIN_STATUS,
    IF_OPER_STATUS,
    IF_NAME,
    IF_HIGH_SPEED,
    IF_ALIAS,
)
POLL_COLUMNS: tuple[Oid, ...] = (IF_ADMIN_STATUS, IF_OPER_STATUS)

# -- ENTITY-MIB entPhysicalTable ----------------------------------------------------------------
_ENT_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1)
ENT_DESCR: Oid = (*_ENT_ENTRY, 2)
ENT_CONTAINED_IN: Oid = (*_ENT_ENTRY, 4)
ENT_CLASS: Oid = (*_ENT_ENTRY, 5)
ENT_NAME: Oid = (*_ENT_ENTRY, 7)
ENT_HARDWARE_REV: Oid = (*_ENT_ENTRY, 8)
ENT_FIRMWARE_REV: Oid = (*_ENT_ENTRY, 9)
ENT_SOFTWARE_REV: Oid = (*_ENT_ENTRY, 10)
ENT_SERIAL: Oid = (*_ENT_ENTRY, 11)
ENT_MFG_NAME: Oid = (*_ENT_ENTRY, 12)
ENT_MODEL: Oid = (*_ENT_ENTRY, 13)
# A chassis has thousands of entities (ports, sensors); only the chassis rows matter. So walk
# these two narrow columns, pick the chassis, then GET the detail columns for it alone.
ENTITY_SCAN_COLUMNS: tuple[Oid, ...] = (ENT_CLASS, ENT_CONTAINED_IN)
ENTITY_DETAIL_COLUMNS: tuple[Oid, ...] = (
    ENT_DESCR,
    ENT_HARDWARE_REV,
    ENT_FIRMWARE_REV,
    ENT_SOFTWARE_REV,
    ENT_SERIAL,
    ENT_MFG_NAME,
    ENT_MODEL,
)
ENT_CLASS_CHASSIS = 3
ENT_CLASS_STACK = 11

# -- IP-MIB -----------------------------------------------------------------------------------
_IP_ADDR_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 4, 20, 1)
IP_AD_ENT_IF_INDEX: Oid = (*_IP_ADDR_ENTRY, 2)
IP_AD_ENT_NETMASK: Oid = (*_IP_ADDR_ENTRY, 3)
# ipAddressTable (RFC 4293) also lists IPv6; the address is in the row index.
IP_ADDRESS_IF_INDEX: Oid = (1, 3, 6, 1, 2, 1, 4, 34, 1, 3)
IP_COLUMNS: tuple[Oid, ...] = (IP_AD_ENT_IF_INDEX, IP_AD_ENT_NETMASK, IP_ADDRESS_IF_INDEX)

# -- LLDP-MIB (IEEE 802.1AB-2005) ---------------------------------------------------------------
_LLDP_LOCAL: Oid = (1, 0, 8802, 1, 1, 2, 1, 3)
LLDP_LOC_CHASSIS_ID_SUBTYPE: Oid = (*_LLDP_LOCAL, 1, 0)
LLDP_LOC_CHASSIS_ID: Oid = (*_LLDP_LOCAL, 2, 0)
LLDP_LOC_SYS_NAME: Oid = (*_LLDP_LOCAL, 3, 0)
LLDP_LOCAL_SCALARS: tuple[Oid, ...] = (
    LLDP_LOC_CHASSIS_ID_SUBTYPE,
    LLDP_LOC_CHASSIS_ID,
    LLDP_LOC_SYS_NAME,
)
_LLDP_LOC_PORT_ENTRY: Oid = (*_LLDP_LOCAL, 7, 1)
LLDP_LOC_PORT_ID_SUBTYPE: Oid = (*_LLDP_LOC_PORT_ENTRY, 2)
LLDP_LOC_PORT_ID: Oid = (*_LLDP_LOC_PORT_ENTRY, 3)
LLDP_LOC_PORT_DESC: Oid = (*_LLDP_LOC_PORT_ENTRY, 4)
LLDP_LOCAL_PORT_COLUMNS: tuple[Oid, ...] = (
    LLDP_LOC_PORT_ID_SUBTYPE,
    LLDP_LOC_PORT_ID,
    LLDP_LOC_PORT_DESC,
)
_LLDP_REM_ENTRY: Oid = (1, 0, 8802, 1, 1, 2, 1, 4, 1, 1)
LLDP_REM_CHASSIS_ID_SUBTYPE: Oid = (*_LLDP_REM_ENTRY, 4)
LLDP_REM_CHASSIS_ID: Oid = (*_LLDP_REM_ENTRY, 5)
LLDP_REM_PORT_ID_SUBTYPE: Oid = (*_LLDP_REM_ENTRY, 6)
LLDP_REM_PORT_ID: Oid = (*_LLDP_REM_ENTRY, 7)
LLDP_REM_PORT_DESC: Oid = (*_LLDP_REM_ENTRY, 8)
LLDP_REM_SYS_NAME: Oid = (*_LLDP_REM_ENTRY, 9)
LLDP_REM_SYS_DESC: Oid = (*_LLDP_REM_ENTRY, 10)
# lldpRemManAddrTable: the address is in the index, any column gives the rows.
LLDP_REM_MAN_ADDR_IF_SUBTYPE: Oid = (1, 0, 8802, 1, 1, 2, 1, 4, 2, 1, 3)
LLDP_REMOTE_COLUMNS: tuple[Oid, ...] = (
    LLDP_REM_CHASSIS_ID_SUBTYPE,
    LLDP_REM_CHASSIS_ID,
    LLDP_REM_PORT_ID_SUBTYPE,
    LLDP_REM_PORT_ID,
    LLDP_REM_PORT_DESC,
    LLDP_REM_SYS_NAME,
    LLDP_REM_SYS_DESC,
    LLDP_REM_MAN_ADDR_IF_SUBTYPE,
)

# -- CISCO-CDP-MIB cdpCacheTable, indexed by (local ifIndex, device index) --------------------
_CDP_CACHE_ENTRY: Oid = (1, 3, 6, 1, 4, 1, 9, 9, 23, 1, 2, 1, 1)
CDP_CACHE_ADDRESS_TYPE: Oid = (*_CDP_CACHE_ENTRY, 3)
CDP_CACHE_ADDRESS: Oid = (*_CDP_CACHE_ENTRY, 4)
CDP_CACHE_DEVICE_ID: Oid = (*_CDP_CACHE_ENTRY, 6)
CDP_CACHE_DEVICE_PORT: Oid = (*_CDP_CACHE_ENTRY, 7)
CDP_CACHE_PLATFORM: Oid = (*_CDP_CACHE_ENTRY, 8)
CDP_COLUMNS: tuple[Oid, ...] = (
    CDP_CACHE_ADDRESS_TYPE,
    CDP_CACHE_ADDRESS,
    CDP_CACHE_DEVICE_ID,
    CDP_CACHE_DEVICE_PORT,
    CDP_CACHE_PLATFORM,
)

# -- HOST-RESOURCES-MIB -------------------------------------------------------------------------
HR_SYSTEM_UPTIME: Oid = (1, 3, 6, 1, 2, 1, 25, 1, 1, 0)
HR_MEMORY_SIZE: Oid = (1, 3, 6, 1, 2, 1, 25, 2, 2, 0)
HOST_SCALARS: tuple[Oid, ...] = (HR_SYSTEM_UPTIME, HR_MEMORY_SIZE)
HR_DEVICE_TYPE: Oid = (1, 3, 6, 1, 2, 1, 25, 3, 2, 1, 2)
HR_DEVICE_PROCESSOR: Oid = (1, 3, 6, 1, 2, 1, 25, 3, 1, 3)

# -- notifications (SNMPv2-MIB, IF-MIB) ---------------------------------------------------------
SNMP_TRAP_OID: Oid = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SNMP_TRAP_ADDRESS: Oid = (1, 3, 6, 1, 6, 3, 18, 1, 3, 0)  # set by proxies / relays
SNMP_TRAP_COMMUNITY: Oid = (1, 3, 6, 1, 6, 3, 18, 1, 4, 0)  # a secret: never shown
TRAP_COLD_START: Oid = (1, 3, 6, 1, 6, 3, 1, 1, 5, 1)
TRAP_WARM_START: Oid = (1, 3, 6, 1, 6, 3, 1, 1, 5, 2)
TRAP_LINK_DOWN: Oid = (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)
TRAP_LINK_UP: Oid = (1, 3, 6, 1, 6, 3, 1, 1, 5, 4)
TRAP_AUTH_FAILURE: Oid = (1, 3, 6, 1, 6, 3, 1, 1, 5, 5)

# Enterprise numbers (sysObjectID 1.3.6.1.4.1.N...) of common vendors, for the vendor
# attribute. Unknown ones are reported as "enterprise N".
ENTERPRISES: dict[int, str] = {
    9: "Cisco",
    11: "HP",
    43: "3Com",
    171: "D-Link",
    311: "Microsoft",
    674: "Dell",
    1588: "Brocade",
    1916: "Extreme Networks",
    1991: "Brocade (Foundry)",
    2011: "Huawei",
    2636: "Juniper",
    3902: "ZTE",
    4526: "Netgear",
    4881: "Ruijie",
    6027: "Dell (Force10)",
    6486: "Alcatel-Lucent",
    6527: "Nokia",
    8072: "Net-SNMP",
    11863: "TP-Link",
    12356: "Fortinet",
    14823: "Aruba",
    14988: "MikroTik",
    25461: "Palo Alto Networks",
    25506: "H3C",
    30065: "Arista",
    41112: "Ubiquiti",
}

IF_TYPES: dict[int, str] = {
    1: "other",
    6: "ethernetCsmacd",
    22: "propPointToPointSerial",
    23: "ppp",
    24: "softwareLoopback",
    32: "frameRelay",
    37: "atm",
    53: "propVirtual",
    54: "propMultiplexor",
    62: "fastEther",
    71: "ieee80211",
    117: "gigabitEthernet",
    131: "tunnel",
    135: "l2vlan",
    136: "l3ipvlan",
    142: "ipForward",
    150: "mplsTunnel",
    161: "ieee8023adLag",
    166: "mpls",
    209: "bridge",
}

IF_STATUS: dict[int, str] = {
    1: "up",
    2: "down",
    3: "testing",
    4: "unknown",
    5: "dormant",
    6: "notPresent",
    7: "lowerLayerDown",
}

# LLDP chassis id / port id subtypes (802.1AB)
CHASSIS_MAC = 4
CHASSIS_NETWORK_ADDRESS = 5
PORT_ALIAS = 1
PORT_MAC = 3
PORT_NETWORK_ADDRESS = 4
PORT_NAME = 5
PORT_LOCAL = 7


# -- value helpers ------------------------------------------------------------------------------


def text(value: Value) -> str | None:
    """A display string from an OCTET STRING: UTF-8 (Latin-1 if that fails), trimmed of
    whitespace and the NUL padding some agents add; ``None`` when empty or absent."""
    if isinstance(value, bytes):
        try:
            decoded = value.decode("utf-8")
        except UnicodeDecodeError:
            decoded = value.decode("latin-1")
        decoded = decoded.replace("\x00", "").strip()
        return decoded or None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def integer(value: Value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def mac(value: Value) -> str | None:
    """``aa:bb:cc:dd:ee:ff`` from a 6-octet physical address; other lengths as colon hex."""
    if not isinstance(value, bytes) or not value or not any(value):
        return None
    return ":".join(f"{b:02x}" for b in value)


def oid_text(value: Value) -> str | None:
    if isinstance(value, tuple):
        return ".".join(map(str, value))
    return None


def address_from_octets(raw: bytes) -> str | None:
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    if len(raw) == 16:
        return str(ipaddress.IPv6Address(raw))
    return None


def inet_address(address_type: int | None, raw: Value) -> str | None:
    """An InetAddress (RFC 4001) or IANA address family value as text."""
    if not isinstance(raw, bytes):
        return raw if isinstance(raw, str) else None
    if address_type in (1, 2, 3, 4, None):  # ipv4, ipv6, ipv4z, ipv6z
        return address_from_octets(raw[:4] if len(raw) == 8 else raw[:16])
    return None


def _lldp_id(mac_subtype: int, address_subtype: int, subtype: int | None, raw: Value) -> str | None:
    if not isinstance(raw, bytes):
        return text(raw)
    if subtype == mac_subtype:
        return mac(raw)
    if subtype == address_subtype and len(raw) in (5, 17):  # IANA family octet + address
        return address_from_octets(raw[1:])
    printable = text(raw)
    if printable is not None and printable.isprintable():
        return printable
    return mac(raw) if len(raw) == 6 else (raw.hex() if raw else None)


def lldp_chassis_id(subtype: int | None, raw: Value) -> str | None:
    """An LLDP chassis id as text: a MAC address for subtype macAddress, an IP address for
    networkAddress, else the string (hex when it is binary)."""
    return _lldp_id(CHASSIS_MAC, CHASSIS_NETWORK_ADDRESS, subtype, raw)


def lldp_port_id(subtype: int | None, raw: Value) -> str | None:
    """An LLDP port id as text, decoded like ``lldp_chassis_id`` (the subtype numbers
    differ: a port's macAddress is 3, its networkAddress 4)."""
    return _lldp_id(PORT_MAC, PORT_NETWORK_ADDRESS, subtype, raw)


def _index_text(index: Oid) -> str | None:
    """An address from a length-prefixed octet index (InetAddress in ipAddressTable)."""
    if not index:
        return None
    return address_from_octets(bytes(index[1:])) if index[0] == len(index) - 1 else None


def _column(table: Table, column: Oid) -> Mapping[Oid, Value]:
    return table.get(column, {})


# -- records ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SystemInfo:
    descr: str | None = None
    object_id: str | None = None
    uptime_ticks: int | None = None  # hundredths of a second
    contact: str | None = None
    name: str | None = None
    location: str | None = None
    services: int | None = None

    @property
    def vendor(self) -> str | None:
        prefix = (1, 3, 6, 1, 4, 1)
        if self.object_id is None:
            return None
        parts = tuple(int(p) for p in self.object_id.split(".") if p.isdigit())
        if parts[:6] != prefix or len(parts) < 7:
            return None
        return ENTERPRISES.get(parts[6], f"enterprise {parts[6]}")


@dataclass(frozen=True, slots=True)
class Interface:
    index: int
    name: str  # ifName, else ifDescr, else "ifIndex N"
    descr: str | None = None
    alias: str | None = None
    if_type: str | None = None
    mtu: int | None = None
    speed_bps: int | None = None
    mac: str | None = None
    admin_status: str | None = None
    oper_status: str | None = None
    ip_addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Chassis:
    serial: str | None = None
    model: str | None = None
    hardware_revision: str | None = None
    firmware_revision: str | None = None
    software_revision: str | None = None
    manufacturer: str | None = None
    descr: str | None = None


@dataclass(frozen=True, slots=True)
class IpAddressEntry:
    address: str
    if_index: int | None
    prefix_length: int | None = None


@dataclass(frozen=True, slots=True)
class LocalPort:
    number: int
    id_subtype: int | None
    port_id: str | None
    descr: str | None


@dataclass(frozen=True, slots=True)
class Neighbour:
    """One entry of a device's LLDP or CDP neighbour table."""

    protocol: str  # "lldp" or "cdp"
    local_if_index: int | None  # the local interface the neighbour was seen on
    local_port: str | None  # its port id / name as the table gave it
    chassis_id: str | None = None
    port_id: str | None = None
    port_id_subtype: int | None = None
    port_descr: str | None = None
    sys_name: str | None = None
    sys_descr: str | None = None
    platform: str | None = None
    serial: str | None = None  # NX-OS CDP device ids carry it: "name(SERIAL)"
    management_addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HostResources:
    uptime_ticks: int | None = None
    memory_kb: int | None = None
    cpu_count: int | None = None


@dataclass(frozen=True)
class DeviceSnapshot:
    """Everything one device said in one discovery, as plain data."""

    address: str  # the address it was polled at
    port: int
    system: SystemInfo
    interfaces: tuple[Interface, ...] = ()
    chassis: Chassis | None = None
    ip_addresses: tuple[IpAddressEntry, ...] = ()
    lldp_chassis_id: str | None = None
    lldp_sys_name: str | None = None
    local_ports: tuple[LocalPort, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()
    host: HostResources | None = None
    depth: int = 0  # crawl depth at which it was reached (0: a target or seed)
    missing: tuple[str, ...] = field(default=())  # parts that could not be read

    @property
    def is_server(self) -> bool:
        """A host, not a network device: HOST-RESOURCES answers and the device offers no
        layer 2 or 3 service (sysServices bits 2 and 3, RFC 3418)."""
        services = self.system.services or 0
        return self.host is not None and not services & 0b110


# -- parsers ------------------------------------------------------------------------------------


def parse_system(values: Mapping[Oid, Value]) -> SystemInfo:
    return SystemInfo(
        descr=text(values.get(SYS_DESCR)),
        object_id=oid_text(values.get(SYS_OBJECT_ID)),
        uptime_ticks=integer(values.get(SYS_UPTIME)),
        contact=text(values.get(SYS_CONTACT)),
        name=text(values.get(SYS_NAME)),
        location=text(values.get(SYS_LOCATION)),
        services=integer(values.get(SYS_SERVICES)),
    )


def _speed(if_speed: int | None, high_speed: int | None) -> int | None:
    # ifSpeed saturates at 2^32-1 (4.29 Gb/s); ifHighSpeed is in Mb/s and wins when present
    if high_speed:
        return high_speed * 1_000_000
    return if_speed


def parse_interfaces(table: Table) -> tuple[Interface, ...]:
    descr = _column(table, IF_DESCR)
    names = _column(table, IF_NAME)
    rows = sorted({idx for idx in (*descr, *names) if len(idx) == 1})
    result: list[Interface] = []
    for idx in rows:
        index = idx[0]
        name = text(names.get(idx)) or text(descr.get(idx)) or f"ifIndex {index}"
        if_type = integer(_column(table, IF_TYPE).get(idx))
        result.append(
            Interface(
                index=index,
                name=name,
                descr=text(descr.get(idx)),
                alias=text(_column(table, IF_ALIAS).get(idx)),
                if_type=None if if_type is None else IF_TYPES.get(if_type, f"type {if_type}"),
                mtu=integer(_column(table, IF_MTU).get(idx)),
                speed_bps=_speed(
                    integer(_column(table, IF_SPEED).get(idx)),
                    integer(_column(table, IF_HIGH_SPEED).get(idx)),
                ),
                mac=mac(_column(table, IF_PHYS_ADDRESS).get(idx)),
                admin_status=_status(_column(table, IF_ADMIN_STATUS).get(idx)),
                oper_status=_status(_column(table, IF_OPER_STATUS).get(idx)),
            )
        )
    return tuple(result)


def _status(value: Value) -> str | None:
    code = integer(value)
    return None if code is None else IF_STATUS.get(code, f"status {code}")


def chassis_indexes(table: Table) -> list[Oid]:
    """Rows of entPhysicalTable worth reading in detail: the top-level chassis (class
    chassis, contained in nothing) first, then other chassis and stacks."""
    classes = _column(table, ENT_CLASS)
    contained = _column(table, ENT_CONTAINED_IN)
    chassis = [idx for idx, cls in classes.items() if cls == ENT_CLASS_CHASSIS]
    top = sorted(idx for idx in chassis if contained.get(idx) in (0, None))
    stacks = sorted(idx for idx, cls in classes.items() if cls == ENT_CLASS_STACK)
    rest = sorted(idx for idx in chassis if idx not in top)
    ordered = [*top, *stacks, *rest]
    return ordered[:4]  # a few candidates are enough; stacks of 9 members repeat themselves


def parse_chassis(details: Mapping[Oid, Value], candidates: Iterable[Oid]) -> Chassis | None:
    """The first candidate row that names a serial number or a model; ``details`` maps full
    OIDs (column + index) to values, as a GET returns them."""
    for idx in candidates:

        def get(column: Oid, idx: Oid = idx) -> str | None:
            return text(details.get((*column, *idx)))

        serial, model = get(ENT_SERIAL), get(ENT_MODEL)
        if serial is None and model is None:
            continue
        return Chassis(
            serial=serial,
            model=model,
            hardware_revision=get(ENT_HARDWARE_REV),
            firmware_revision=get(ENT_FIRMWARE_REV),
            software_revision=get(ENT_SOFTWARE_REV),
            manufacturer=get(ENT_MFG_NAME),
            descr=get(ENT_DESCR),
        )
    return None


def _prefix_from_mask(mask: Value) -> int | None:
    if isinstance(mask, str):
        try:
            return ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
        except ValueError:
            return None
    return None


def parse_ip_addresses(table: Table) -> tuple[IpAddressEntry, ...]:
    found: dict[str, IpAddressEntry] = {}
    masks = _column(table, IP_AD_ENT_NETMASK)
    for idx, if_index in _column(table, IP_AD_ENT_IF_INDEX).items():
        if len(idx) != 4:
            continue
        address = ".".join(map(str, idx))
        found[address] = IpAddressEntry(
            address, integer(if_index), _prefix_from_mask(masks.get(idx))
        )
    for idx, if_index in _column(table, IP_ADDRESS_IF_INDEX).items():
        # index: addressType, then the InetAddress as a length-prefixed octet string
        inet = _index_text(idx[1:]) if len(idx) > 2 else None
        if inet is None or inet in found:
            continue
        found[inet] = IpAddressEntry(inet, integer(if_index))
    return tuple(
        entry
        for address, entry in sorted(found.items())
        if not ipaddress.ip_address(address).is_unspecified
    )


def attach_addresses(
    interfaces: tuple[Interface, ...], addresses: tuple[IpAddressEntry, ...]
) -> tuple[Interface, ...]:
    by_index: dict[int, list[str]] = {}
    for entry in addresses:
        if entry.if_index is not None:
            by_index.setdefault(entry.if_index, []).append(entry.address)
    return tuple(
        replace(i, ip_addresses=tuple(by_index[i.index])) if i.index in by_index else i
        for i in interfaces
    )


def parse_local_ports(table: Table) -> tuple[LocalPort, ...]:
    subtypes = _column(table, LLDP_LOC_PORT_ID_SUBTYPE)
    ids = _column(table, LLDP_LOC_PORT_ID)
    descrs = _column(table, LLDP_LOC_PORT_DESC)
    ports = []
    for idx in sorted({*subtypes, *ids, *descrs}):
        if len(idx) != 1:
            continue
        subtype = integer(subtypes.get(idx))
        ports.append(
            LocalPort(idx[0], subtype, lldp_port_id(subtype, ids.get(idx)), text(descrs.get(idx)))
        )
    return tuple(ports)


def match_port(
    interfaces: Iterable[Interface], subtype: int | None, port_id: str | None, descr: str | None
) -> Interface | None:
    """The interface an LLDP port id (and description) denotes, or None.

    By subtype: a MAC address matches ifPhysAddress when it is unique on the device; a name,
    alias or local id matches ifName, ifDescr or ifAlias; a local id may also be the
    ifIndex. The port description (usually ifDescr) settles what the id did not.
    """
    interfaces = list(interfaces)
    if port_id:
        if subtype == PORT_MAC:
            hits = [i for i in interfaces if i.mac == port_id]
            if len(hits) == 1:
                return hits[0]
        else:
            wanted = port_id.casefold()
            fields = ("alias",) if subtype == PORT_ALIAS else ("name", "descr", "alias")
            for attr in fields:
                hits = [i for i in interfaces if (getattr(i, attr) or "").casefold() == wanted]
                if len(hits) == 1:
                    return hits[0]
            if port_id.isdigit():
                hits = [i for i in interfaces if i.index == int(port_id)]
                if hits:
                    return hits[0]
    if descr:
        wanted = descr.casefold()
        for attr in ("descr", "name"):
            hits = [i for i in interfaces if (getattr(i, attr) or "").casefold() == wanted]
            if len(hits) == 1:
                return hits[0]
    return None


def local_interface(
    interfaces: tuple[Interface, ...], ports: Mapping[int, LocalPort], port_number: int
) -> Interface | None:
    """The interface behind an lldpLocPortNum: described by lldpLocPortTable, or, as many
    agents number ports by ifIndex, the interface with that index."""
    port = ports.get(port_number)
    if port is not None:
        found = match_port(interfaces, port.id_subtype, port.port_id, port.descr)
        if found is not None:
            return found
    return next((i for i in interfaces if i.index == port_number), None)


def parse_lldp_neighbours(
    table: Table, interfaces: tuple[Interface, ...], local_ports: tuple[LocalPort, ...]
) -> tuple[Neighbour, ...]:
    """lldpRemTable rows (index: timeMark, localPortNum, remIndex) with their management
    addresses (lldpRemManAddrTable, index: the same three, then family and address)."""
    ports = {p.number: p for p in local_ports}
    addresses: dict[Oid, list[str]] = {}
    for idx in _column(table, LLDP_REM_MAN_ADDR_IF_SUBTYPE):
        if len(idx) < 5:
            continue
        family, length, raw = idx[3], idx[4], idx[5:]
        if len(raw) != length:
            continue
        address = address_from_octets(bytes(raw)) if family in (1, 2) else None
        if address is not None:
            addresses.setdefault(idx[:3], []).append(address)
    chassis_subtypes = _column(table, LLDP_REM_CHASSIS_ID_SUBTYPE)
    chassis_ids = _column(table, LLDP_REM_CHASSIS_ID)
    port_subtypes = _column(table, LLDP_REM_PORT_ID_SUBTYPE)
    port_ids = _column(table, LLDP_REM_PORT_ID)
    rows = sorted({*chassis_ids, *port_ids} | set(_column(table, LLDP_REM_SYS_NAME)))
    result = []
    for idx in rows:
        if len(idx) != 3:
            continue
        local_number = idx[1]
        local = local_interface(interfaces, ports, local_number)
        port_subtype = integer(port_subtypes.get(idx))
        local_port = ports.get(local_number)
        result.append(
            Neighbour(
                protocol="lldp",
                local_if_index=None if local is None else local.index,
                local_port=(local.name if local else None)
                or (local_port.port_id if local_port else None),
                chassis_id=lldp_chassis_id(
                    integer(chassis_subtypes.get(idx)), chassis_ids.get(idx)
                ),
                port_id=lldp_port_id(port_subtype, port_ids.get(idx)),
                port_id_subtype=port_subtype,
                port_descr=text(_column(table, LLDP_REM_PORT_DESC).get(idx)),
                sys_name=text(_column(table, LLDP_REM_SYS_NAME).get(idx)),
                sys_descr=text(_column(table, LLDP_REM_SYS_DESC).get(idx)),
                management_addresses=tuple(dict.fromkeys(addresses.get(idx, []))),
            )
        )
    return tuple(result)


def split_cdp_device_id(device_id: str | None) -> tuple[str | None, str | None]:
    """(host name, serial) from a CDP device id; NX-OS sends ``name(SERIAL)``."""
    if not device_id:
        return None, None
    if device_id.endswith(")") and "(" in device_id:
        name, _, rest = device_id.partition("(")
        return name.strip() or None, rest[:-1].strip() or None
    return device_id, None


def parse_cdp_neighbours(table: Table, interfaces: tuple[Interface, ...]) -> tuple[Neighbour, ...]:
    known = {i.index: i for i in interfaces}
    device_ids = _column(table, CDP_CACHE_DEVICE_ID)
    result = []
    for idx in sorted(set(device_ids) | set(_column(table, CDP_CACHE_DEVICE_PORT))):
        if len(idx) != 2:
            continue
        local = known.get(idx[0])
        name, serial = split_cdp_device_id(text(device_ids.get(idx)))
        address_type = integer(_column(table, CDP_CACHE_ADDRESS_TYPE).get(idx))
        raw_address = _column(table, CDP_CACHE_ADDRESS).get(idx)
        # cdpCacheAddressType 1 = ip (4 octets); 20 = ipv6 in newer IOS
        address = (
            address_from_octets(raw_address)
            if isinstance(raw_address, bytes) and address_type in (1, 20)
            else None
        )
        port = text(_column(table, CDP_CACHE_DEVICE_PORT).get(idx))
        result.append(
            Neighbour(
                protocol="cdp",
                local_if_index=idx[0] if local is not None else None,
                local_port=local.name if local else None,
                port_id=port,
                port_id_subtype=PORT_NAME if port else None,
                sys_name=name,
                platform=text(_column(table, CDP_CACHE_PLATFORM).get(idx)),
                serial=serial,
                management_addresses=(address,) if address else (),
            )
        )
    return tuple(result)


def merge_neighbours(
    lldp: tuple[Neighbour, ...], cdp: tuple[Neighbour, ...]
) -> tuple[Neighbour, ...]:
    """LLDP neighbours, plus CDP neighbours on the interfaces where LLDP saw nobody: a port
    seen by both protocols is one link, and LLDP's chassis id identifies it better."""
    lldp_ports = {n.local_if_index for n in lldp}
    lldp_names = {(n.local_if_index, (n.sys_name or "").casefold()) for n in lldp}
    extra = tuple(
        n
        for n in cdp
        if n.local_if_index not in lldp_ports
        and (n.local_if_index, (n.sys_name or "").casefold()) not in lldp_names
    )
    return (*lldp, *extra)


def parse_host(
    values: Mapping[Oid, Value], device_types: Mapping[Oid, Value]
) -> HostResources | None:
    uptime = integer(values.get(HR_SYSTEM_UPTIME))
    memory = integer(values.get(HR_MEMORY_SIZE))
    if uptime is None and memory is None:
        return None
    cpus = sum(1 for v in device_types.values() if v == HR_DEVICE_PROCESSOR)
    return HostResources(uptime_ticks=uptime, memory_kb=memory, cpu_count=cpus or None)


def present(value: Value) -> bool:
    """True for a real value; False for NULL and the SNMPv2 exception markers."""
    return value is not None and not isinstance(value, Exc)
