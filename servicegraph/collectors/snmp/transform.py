"""Device snapshots -> observations. Pure: no network, no store; tested on recorded input.

Loading happens in two batches of one run (see ``discovery.sync``):

1. ``device_batch``: the devices that answered, and a *placeholder* for every neighbour
   seen in an LLDP/CDP table that was not discovered in the run, identified by what the
   neighbour table tells about it (chassis id, system name, CDP serial, management
   address). When that device is discovered later, its chassis id or name matches the
   placeholder, and reconciliation turns the placeholder into the real device: same CI,
   same links, ``placeholder`` attribute removed.
2. ``component_batch``: interfaces ``PART_OF`` their device and ``CONNECTED_TO`` links.
   An interface is identified by ``<device CI id>/<interface name>``. Anchoring it on the
   device's CMDB identity, known only after step 1, keeps interfaces stable whichever
   identifier (serial, chassis id, address) recognised the device this time.

Links: a link is usually seen from both ends (A's table names B and B's names A); it is
one relationship. Its direction follows the crawl: the end reached in more crawl steps
from the targets is ``from`` (the side further from the core, whose uplink this is);
between ends at the same depth the order is arbitrary but stable.

This module builds the plan (``plan``) and the two batches from it; what identifies a
device and its observation are in ``devices``, how neighbour entries are resolved to
devices and links in ``neighbours``, the plan's data types in ``plan``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from servicegraph.cmdb.model import OperationalState
from servicegraph.cmdb.observation import (
    CIObservation,
    CIRef,
    ObservationBatch,
    RelationshipObservation,
)
from servicegraph.collectors.snmp.devices import (
    device_anchor,
    device_identifiers,
    device_observation,
    drop_ambiguous,
    normalised,
)
from servicegraph.collectors.snmp.mibs import DeviceSnapshot, Interface
from servicegraph.collectors.snmp.neighbours import (
    Placeholders,
    add_link,
    index_devices,
    remote_interface,
)
from servicegraph.collectors.snmp.plan import End, Link, Plan, PlannedDevice

SOURCE = "snmp"


# -- the plan -----------------------------------------------------------------------------------


def _plan_devices(snapshots: Sequence[DeviceSnapshot], result: Plan) -> None:
    """One planned device per device, however many addresses it was reached at."""
    by_anchor: dict[str, DeviceSnapshot] = {}
    for s in sorted(snapshots, key=lambda s: s.depth):
        identifiers = device_identifiers(s)
        anchor = device_anchor(identifiers, s.address)
        first = by_anchor.get(anchor)
        if first is not None:
            result.warnings.append(
                f"{s.address} is the same device as {first.address} ({anchor}); kept once"
            )
            continue
        by_anchor[anchor] = s
        result.devices.append(
            PlannedDevice(device_observation(s, f"device:{anchor}", identifiers), s, s.depth)
        )


def plan(snapshots: Sequence[DeviceSnapshot]) -> Plan:
    """Devices, placeholders and links of one run."""
    result = Plan()
    _plan_devices(snapshots, result)
    index = index_devices(result)
    placeholders = Placeholders(result)
    links: list[tuple[End, End, str]] = []
    for i, device in enumerate(list(result.devices)):
        s = device.snapshot
        assert s is not None
        known = {x.index for x in s.interfaces}
        for n in s.neighbours:
            local = End(i, n.local_if_index if n.local_if_index in known else None, n.local_port)
            port = n.port_id or n.port_descr
            target = index.resolve(n)
            if target == i:
                continue  # a device seeing itself: a loop cable, or a shared chassis id
            if target is not None:
                remote_snapshot = result.devices[target].snapshot
                assert remote_snapshot is not None
                remote_if = remote_interface(remote_snapshot, n)
                remote = End(target, remote_if.index if remote_if else None, port)
            else:
                placeholder = placeholders.get(n, device.depth + 1)
                if placeholder is None:
                    result.warnings.append(
                        f"{s.address}: a {n.protocol} neighbour on {n.local_port or '?'} "
                        "gives nothing to identify it by; ignored"
                    )
                    continue
                remote = End(placeholder, None, port)
            add_link(links, local, remote, n.protocol)

    drop_ambiguous(result.devices, result.warnings)

    def order(end: End) -> tuple[int, str, int]:
        d = result.devices[end.device]
        return (d.depth, d.observation.key or "", end.if_index or 0)

    for a, b, protocol in links:
        # the end further from the targets is ``from``: the link is its uplink
        from_end, to_end = (a, b) if order(a) > order(b) else (b, a)
        result.links.append(Link(from_end, to_end, protocol))
    return result


# -- batches ------------------------------------------------------------------------------------


def sighting_only(observation: CIObservation) -> CIObservation:
    """A placeholder observation reduced to "seen": for a neighbour that is already known
    as a real device (discovered before, not answering now). Its neighbours still see it,
    so it is still there; but what they say about it must not overwrite what it said about
    itself, nor make it a placeholder again."""
    return CIObservation(
        ci_class=observation.ci_class,
        identifiers=observation.identifiers,
        key=observation.key,
        origin=observation.origin,
    )


def device_batch(
    p: Plan,
    *,
    run_id: str,
    observed_at: dt.datetime,
    known_devices: frozenset[int] = frozenset(),
) -> ObservationBatch:
    """Step 1: devices and placeholders. ``known_devices`` are placeholders of the plan
    that name devices the graph already holds as real ones: only their sighting counts.
    Never ``complete``: step 2 closes the run."""
    return ObservationBatch(
        source=SOURCE,
        cis=[
            sighting_only(d.observation) if i in known_devices else d.observation
            for i, d in enumerate(p.devices)
        ],
        run_id=run_id,
        observed_at=observed_at,
        complete=False,
    )


def _interface_names(interfaces: Sequence[Interface]) -> dict[int, str]:
    """Names unique on the device: a name used twice gets its ifIndex appended."""
    counts: dict[str, int] = {}
    for i in interfaces:
        counts[i.name.casefold()] = counts.get(i.name.casefold(), 0) + 1
    return {
        i.index: i.name if counts[i.name.casefold()] == 1 else f"{i.name} #{i.index}"
        for i in interfaces
    }


_OPER_STATE = {
    "up": OperationalState.UP,
    "down": OperationalState.DOWN,
    "lowerLayerDown": OperationalState.DOWN,
    "notPresent": OperationalState.DOWN,
}


def interface_key(device_id: str, name: str) -> str:
    return f"{device_id}/{name}"


@dataclass
class Components:
    batch: ObservationBatch
    warnings: list[str]
    interface_keys: dict[tuple[int, int], str]  # (planned device, ifIndex) -> source key


def component_batch(
    p: Plan,
    device_ids: Sequence[str | None],
    *,
    run_id: str,
    observed_at: dt.datetime,
    complete: bool,
    remembered: Mapping[tuple[int, str], tuple[str, bool]] | None = None,
) -> Components:
    """Step 2: interfaces, PART_OF and CONNECTED_TO, given the CI id each device of step 1
    resolved to (``None``: not applied, e.g. a conflict).

    ``remembered`` holds the links the graph already has from an interface (by its
    normalised key) to an interface of a known device that did not answer this run, by
    (planned device, key): (that remote interface's CI id, True if the key's interface is
    the ``from`` end). A link seen only from this side then refreshes that link, rather
    than adding a coarser one to the device."""
    if len(device_ids) != len(p.devices):
        raise ValueError("device_ids must have one entry per planned device")
    cis, parts, keys = _interfaces(p, device_ids)
    links, warnings = _links(p, device_ids, keys, remembered or {})
    batch = ObservationBatch(
        source=SOURCE,
        cis=cis,
        relationships=parts + links,
        run_id=run_id,
        observed_at=observed_at,
        complete=complete,
    )
    return Components(batch, warnings, keys)


InterfaceKeys = dict[tuple[int, int], str]  # (planned device, ifIndex) -> interface key


def _interfaces(
    p: Plan, device_ids: Sequence[str | None]
) -> tuple[list[CIObservation], list[RelationshipObservation], InterfaceKeys]:
    """The interface CIs of every applied device, each PART_OF its device."""
    cis: list[CIObservation] = []
    parts: list[RelationshipObservation] = []
    keys: InterfaceKeys = {}
    for d_index, (d, device_id) in enumerate(zip(p.devices, device_ids, strict=True)):
        s = d.snapshot
        if s is None or device_id is None:
            continue
        device_name = s.system.name or s.address
        names = _interface_names(s.interfaces)
        for i in s.interfaces:
            key = interface_key(device_id, names[i.index])
            keys[(d_index, i.index)] = key
            cis.append(
                CIObservation(
                    ci_class="interface",
                    name=f"{device_name} {names[i.index]}",
                    identifiers={"component_key": key},
                    attributes={
                        "if_index": i.index,
                        "if_name": i.name,
                        "if_descr": i.descr,
                        "if_alias": i.alias,
                        "if_type": i.if_type,
                        "speed_bps": i.speed_bps,
                        "mtu": i.mtu,
                        "mac": i.mac,
                        "admin_status": i.admin_status,
                        "oper_status": i.oper_status,
                        "ip_addresses": list(i.ip_addresses),
                    },
                    key=key,
                    operational_state=_OPER_STATE.get(
                        i.oper_status or "", OperationalState.UNKNOWN
                    ),
                    origin=f"snmp {s.address} ifIndex {i.index}",
                )
            )
            parts.append(RelationshipObservation("PART_OF", CIRef(key=key), CIRef(ci_id=device_id)))
    return cis, parts, keys


def _links(
    p: Plan,
    device_ids: Sequence[str | None],
    keys: InterfaceKeys,
    remembered: Mapping[tuple[int, str], tuple[str, bool]],
) -> tuple[list[RelationshipObservation], list[str]]:
    """CONNECTED_TO for every planned link whose ends were applied: between interfaces
    where both ends are known, else to the device (with the port's name), or the link the
    graph remembers (``_remembered_link``); and a warning per link skipped."""
    relationships: list[RelationshipObservation] = []
    warnings: list[str] = []
    for link in p.links:
        known = _remembered_link(link, keys, remembered)
        if known is not None:
            relationships.append(known)
            continue
        from_ref, from_port = _end_ref(link.from_end, device_ids, keys)
        to_ref, to_port = _end_ref(link.to_end, device_ids, keys)
        if from_ref is None or to_ref is None:
            a, b = (p.devices[e.device].observation.label for e in (link.from_end, link.to_end))
            warnings.append(f"link {a} - {b} skipped: an end was not applied")
            continue
        attributes: dict[str, Any] = {"protocol": link.protocol}
        if from_port:
            attributes["from_port"] = from_port
        if to_port:
            attributes["to_port"] = to_port
        relationships.append(RelationshipObservation("CONNECTED_TO", from_ref, to_ref, attributes))
    return relationships, warnings


def _end_ref(
    end: End, device_ids: Sequence[str | None], keys: InterfaceKeys
) -> tuple[CIRef | None, str | None]:
    """The CI a link's end names (its interface, or its device and the port's name);
    None when its device was not applied."""
    device_id = device_ids[end.device]
    if device_id is None:
        return None, None
    if end.if_index is not None and (end.device, end.if_index) in keys:
        return CIRef(key=keys[(end.device, end.if_index)]), None
    return CIRef(ci_id=device_id), end.port


def _remembered_link(
    link: Link,
    keys: InterfaceKeys,
    remembered: Mapping[tuple[int, str], tuple[str, bool]],
) -> RelationshipObservation | None:
    """The link the graph already has from this side's interface, when the far device
    did not answer (see ``component_batch``)."""
    for device_end, local_end in ((link.from_end, link.to_end), (link.to_end, link.from_end)):
        if device_end.if_index is not None or local_end.if_index is None:
            continue
        local_key = keys.get((local_end.device, local_end.if_index))
        if local_key is None:
            continue
        found = remembered.get((device_end.device, normalised("component_key", local_key) or ""))
        if found is not None:
            remote_id, local_is_from = found
            local, remote = CIRef(key=local_key), CIRef(ci_id=remote_id)
            return RelationshipObservation(
                "CONNECTED_TO",
                local if local_is_from else remote,
                remote if local_is_from else local,
                {"protocol": link.protocol},
            )
    return None


def superseded_links(
    p: Plan, device_ids: Sequence[str | None], interface_ids: Mapping[tuple[int, int], str]
) -> list[tuple[str, str]]:
    """Pairs of CI ids whose direct link an interface-to-interface link of this run
    replaces: a link from an interface to the device at the other end (recorded while that
    device was a placeholder, or while its port could not be told), or between the two
    devices."""
    pairs = []
    for link in p.links:
        a, b = link.from_end, link.to_end
        dev_a, dev_b = device_ids[a.device], device_ids[b.device]
        if dev_a is None or dev_b is None or a.if_index is None or b.if_index is None:
            continue
        if_a = interface_ids.get((a.device, a.if_index))
        if_b = interface_ids.get((b.device, b.if_index))
        if if_a is None or if_b is None:
            continue
        pairs += [(if_a, dev_b), (if_b, dev_a), (dev_a, dev_b)]
    return pairs
