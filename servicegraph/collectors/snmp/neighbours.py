"""LLDP/CDP neighbour entries resolved against the devices of a discovery run.

An entry names the device at the far end of a cable by what that device advertises
(chassis id, serial, management addresses, system name). ``DeviceIndex`` finds the
discovered device those facts name, if exactly one; an entry that names none gets a
placeholder (``Placeholders``), one per undiscovered device however many tables report
it. A link is usually reported from both of its ends, and sometimes with more detail
from one (a known interface rather than only a port name): ``add_link`` keeps each
link once, with the most specific ends.

Pure: no network, no store.
"""

from __future__ import annotations

from servicegraph.collectors.snmp.devices import (
    normalised,
    placeholder_identity,
    placeholder_observation,
    usable_name,
    usable_serial,
)
from servicegraph.collectors.snmp.mibs import (
    DeviceSnapshot,
    Interface,
    Neighbour,
    local_interface,
    match_port,
)
from servicegraph.collectors.snmp.plan import End, Plan, PlannedDevice

# -- which discovered device an entry names -----------------------------------------------------


class DeviceIndex:
    """Discovered devices by the facts neighbour tables give: chassis id, serial, address,
    name. A fact shared by several devices identifies none of them."""

    def __init__(self) -> None:
        self._maps: dict[str, dict[str, set[int]]] = {
            "chassis_id": {},
            "serial_number": {},
            "management_ip": {},
            "hostname": {},
        }

    def add(self, kind: str, value: str | None, device: int) -> None:
        normal = normalised(kind, value)
        if normal:
            self._maps[kind].setdefault(normal, set()).add(device)

    def find(self, kind: str, value: str | None) -> int | None:
        normal = normalised(kind, value)
        hits = self._maps[kind].get(normal or "", set())
        return next(iter(hits)) if len(hits) == 1 else None

    def resolve(self, n: Neighbour) -> int | None:
        for kind, value in (("chassis_id", n.chassis_id), ("serial_number", n.serial)):
            found = self.find(kind, value)
            if found is not None:
                return found
        for address in n.management_addresses:
            found = self.find("management_ip", address)
            if found is not None:
                return found
        return self.find("hostname", usable_name(n.sys_name))


def index_devices(result: Plan) -> DeviceIndex:
    """The index of the plan's devices, all discovered ones (before any placeholder)."""
    index = DeviceIndex()
    for i, d in enumerate(result.devices):
        s = d.snapshot
        assert s is not None
        index.add("chassis_id", s.lldp_chassis_id, i)
        index.add("serial_number", usable_serial(s.chassis.serial) if s.chassis else None, i)
        for address in (s.address, *(a.address for a in s.ip_addresses)):
            index.add("management_ip", address, i)
        for name in {usable_name(s.system.name), usable_name(s.lldp_sys_name)}:
            index.add("hostname", name, i)
    return index


def remote_interface(s: DeviceSnapshot, n: Neighbour) -> Interface | None:
    """The interface of discovered device ``s`` that neighbour entry ``n`` names."""
    found = match_port(s.interfaces, n.port_id_subtype, n.port_id, n.port_descr)
    if found is not None:
        return found
    ports = {p.number: p for p in s.local_ports}
    for port in s.local_ports:
        if n.port_id and port.port_id == n.port_id:
            return local_interface(s.interfaces, ports, port.number)
    return None


# -- undiscovered neighbours --------------------------------------------------------------------


class Placeholders:
    """Undiscovered neighbours, one planned device each however many tables name them."""

    def __init__(self, result: Plan) -> None:
        self.result = result
        self.by_identity: dict[str, int] = {}

    def get(self, n: Neighbour, depth: int) -> int | None:
        identity = placeholder_identity(n)
        if not identity:
            return None
        found = next((self.by_identity[k] for k in identity if k in self.by_identity), None)
        devices = self.result.devices
        if found is None:
            found = len(devices)
            devices.append(
                PlannedDevice(placeholder_observation(n, f"neighbour:{identity[0]}"), None, depth)
            )
        else:
            devices[found].depth = min(devices[found].depth, depth)
        for k in identity:
            self.by_identity.setdefault(k, found)
        return found


# -- links, each once ---------------------------------------------------------------------------


def _compatible(a: End, b: End) -> bool:
    return a.device == b.device and (
        a.if_index is None or b.if_index is None or a.if_index == b.if_index
    )


def _finer(a: End, b: End) -> End:
    return a if a.if_index is not None else b


def add_link(links: list[tuple[End, End, str]], a: End, b: End, protocol: str) -> None:
    """Add the link a-b unless it is one already known (seen from the other side, or with
    fewer details): then keep the most specific ends."""
    if a.device > b.device:
        a, b = b, a
    for i, (x, y, proto) in enumerate(links):
        if _compatible(a, x) and _compatible(b, y):
            links[i] = (_finer(x, a), _finer(y, b), proto)
            return
    links.append((a, b, protocol))
