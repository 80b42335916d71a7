"""What identifies a device found by SNMP, and the CI observation of each.

A device is known by what it says about itself (``DeviceSnapshot``: serial, LLDP chassis
id, sysName, the address it answered at) or, while undiscovered, by what a neighbour's
LLDP/CDP table says about it (chassis id, CDP serial, system name, management address):
a *placeholder*. Agents report junk in these fields (default sysNames, "N/A" serials), so
such values identify nothing; and an identifier several devices of one run claim is
dropped from all of them rather than let reconciliation merge them into one CI.

Pure: no network, no store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servicegraph.cmdb.identifiers import IDENTIFIER_KINDS
from servicegraph.cmdb.model import OperationalState
from servicegraph.cmdb.observation import CIObservation
from servicegraph.collectors.snmp.mibs import DeviceSnapshot, Neighbour
from servicegraph.collectors.snmp.plan import PlannedDevice
from servicegraph.collectors.snmp.targets import is_address

# sysName values that name nothing in particular: not used to recognise a device
_DEFAULT_NAMES = frozenset(
    {"localhost", "localhost.localdomain", "switch", "router", "default", "(none)", "none"}
)
_JUNK_SERIALS = frozenset({"na", "n/a", "none", "unknown", "default", "serial", "0", "123456789"})


def normalised(kind: str, value: str | None) -> str | None:
    """``value`` normalised as an identifier of ``kind``; None when it is empty or invalid."""
    if not value:
        return None
    try:
        return IDENTIFIER_KINDS[kind].normalise(value) or None
    except ValueError:
        return None


def usable_serial(value: str | None) -> str | None:
    """A serial number worth identifying a device by, stripped; None for a junk one."""
    if value is None or value.strip().lower() in _JUNK_SERIALS or len(value.strip()) < 3:
        return None
    return value.strip()


def usable_name(value: str | None) -> str | None:
    """A system name worth identifying a device by, stripped; None for a default one."""
    if value is None or value.strip().lower() in _DEFAULT_NAMES:
        return None
    return value.strip()


# -- discovered devices -------------------------------------------------------------------------


def device_identifiers(s: DeviceSnapshot) -> dict[str, str]:
    """The identifiers a device gives of itself."""
    ids: dict[str, str] = {}
    serial = usable_serial(s.chassis.serial) if s.chassis else None
    if serial:
        ids["serial_number"] = serial
    if s.lldp_chassis_id:
        ids["chassis_id"] = s.lldp_chassis_id
    name = usable_name(s.system.name)
    if name:
        if "." in name and not is_address(name):
            ids["fqdn"] = name
        ids["hostname"] = name
    if is_address(s.address):
        ids["management_ip"] = s.address
    return ids


def device_anchor(identifiers: Mapping[str, str], address: str) -> str:
    """What makes two snapshots the same device: serial, else chassis id, else address."""
    for kind, tag in (("serial_number", "sn"), ("chassis_id", "chassis")):
        normal = normalised(kind, identifiers.get(kind))
        if normal:
            return f"{tag}:{normal}"
    return f"ip:{address}"


def device_observation(s: DeviceSnapshot, key: str, identifiers: dict[str, str]) -> CIObservation:
    system = s.system
    attributes: dict[str, Any]
    if s.is_server:
        attributes = {"os": system.descr, "vendor": system.vendor}
        if s.host is not None:
            attributes["cpu_count"] = s.host.cpu_count
            if s.host.memory_kb:
                attributes["memory_mb"] = s.host.memory_kb // 1024
        ci_class = "server"
    else:
        attributes = {
            "vendor": system.vendor,
            "sys_object_id": system.object_id,
            "sys_descr": system.descr,
            "sys_contact": system.contact,
            "sys_location": system.location,
            "placeholder": None,  # discovered: no longer a placeholder, if it was one
        }
        ci_class = "network_device"
    # Parts that could not be read are left out, not reported empty: an empty value would
    # erase what an earlier run found.
    if "entity" not in s.missing:
        chassis = s.chassis
        attributes["model"] = chassis.model if chassis else None
        if chassis is not None and chassis.manufacturer and not system.vendor:
            attributes["vendor"] = chassis.manufacturer
        if ci_class == "network_device":
            attributes["os_version"] = chassis.software_revision if chassis else None
            attributes["firmware_revision"] = chassis.firmware_revision if chassis else None
            attributes["hardware_revision"] = chassis.hardware_revision if chassis else None
    if is_address(s.address):
        attributes["management_ip"] = s.address
    if "ip" not in s.missing:
        attributes["ip_addresses"] = [a.address for a in s.ip_addresses]
    return CIObservation(
        ci_class=ci_class,
        name=system.name or s.address,
        identifiers=identifiers,
        attributes=attributes,
        key=key,
        operational_state=OperationalState.UP,
        origin=f"snmp {s.address}",
    )


# -- placeholders: neighbours not discovered ----------------------------------------------------


def placeholder_identity(n: Neighbour) -> list[str]:
    """The facts a neighbour entry identifies its device by, strongest first, as
    ``tag:normalised value``: two entries sharing one name the same placeholder."""
    keys = []
    for kind, tag, value in (
        ("chassis_id", "chassis", n.chassis_id),
        ("serial_number", "sn", usable_serial(n.serial)),
        *(("management_ip", "ip", a) for a in n.management_addresses),
        ("hostname", "name", usable_name(n.sys_name)),
    ):
        normal = normalised(kind, value)
        if normal:
            keys.append(f"{tag}:{normal}")
    return keys


def placeholder_observation(n: Neighbour, key: str) -> CIObservation:
    """The observation of an undiscovered neighbour: what the entry tells, marked
    ``placeholder`` until the device is discovered itself."""
    identifiers: dict[str, str] = {}
    if n.chassis_id:
        identifiers["chassis_id"] = n.chassis_id
    serial = usable_serial(n.serial)
    if serial:
        identifiers["serial_number"] = serial
    name = usable_name(n.sys_name)
    if name:
        if "." in name and not is_address(name):
            identifiers["fqdn"] = name
        identifiers["hostname"] = name
    address = next((a for a in n.management_addresses if normalised("management_ip", a)), None)
    if address:
        identifiers["management_ip"] = address
    attributes: dict[str, Any] = {"placeholder": True}
    if n.sys_descr or n.platform:
        attributes["sys_descr"] = n.sys_descr or n.platform
    if address:
        attributes["management_ip"] = address
    return CIObservation(
        ci_class="network_device",
        name=n.sys_name or n.chassis_id or address or key,
        identifiers=identifiers,
        attributes=attributes,
        key=key,
        origin=f"{n.protocol} neighbour {n.sys_name or n.chassis_id or address}",
    )


# -- the run as a whole -------------------------------------------------------------------------


def drop_ambiguous(devices: list[PlannedDevice], warnings: list[str]) -> None:
    """Remove identifiers that several devices of the plan claim (two switches both named
    "core", one chassis MAC reported by two stack members): reconciliation would treat the
    claimants as one CI and reject all but the first."""
    claims: dict[tuple[str, str], list[int]] = {}
    for i, d in enumerate(devices):
        for kind, value in d.observation.identifiers.items():
            normal = normalised(kind, value if isinstance(value, str) else None)
            if normal:
                claims.setdefault((kind, normal), []).append(i)
    for (kind, normal), owners in claims.items():
        if len(owners) < 2:
            continue
        names = ", ".join(devices[i].observation.label for i in owners)
        warnings.append(f"{kind} {normal} is claimed by {names}; not used to identify them")
        for i in owners:
            obs = devices[i].observation
            kept = {
                k: v
                for k, v in obs.identifiers.items()
                if not (k == kind and normalised(k, v if isinstance(v, str) else None) == normal)
            }
            devices[i].observation = CIObservation(
                ci_class=obs.ci_class,
                name=obs.name,
                identifiers=kept,
                attributes=obs.attributes,
                key=obs.key,
                operational_state=obs.operational_state,
                origin=obs.origin,
            )
