"""What the CMDB already holds that loading a discovery run must take into account.

The transform is pure and sees only this run's snapshots; three questions need the graph
(through the ``Reconciler`` and its store), asked by ``discovery.sync`` around the two
batches:

* which placeholders of the plan are real devices already, discovered before and not
  answering now (``real_devices_among_placeholders``): their neighbours' view of them
  must not overwrite what they said of themselves;
* which links those silent devices' interfaces have (``remembered_links``), so that a link
  now seen from one side only refreshes the interface-to-interface link it is;
* which coarse links a finer one of this run replaces (``retire_superseded``), removed
  with their history kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from servicegraph.cmdb.identifiers import Identifier
from servicegraph.cmdb.reconciliation import Reconciler
from servicegraph.collectors.snmp.plan import Plan
from servicegraph.collectors.snmp.transform import SOURCE


def real_devices_among_placeholders(reconciler: Reconciler, plan: Plan) -> frozenset[int]:
    """Placeholders of the plan whose strongest matching identifier belongs to a CI that is
    not a placeholder: a real device that did not answer this time."""
    wanted: dict[int, tuple[Identifier, ...]] = {}
    for i, d in enumerate(plan.devices):
        if d.snapshot is None:
            wanted[i] = reconciler.identifier_rules.normalise(
                d.observation.identifiers, item=d.observation.label
            )
    if not wanted:
        return frozenset()
    held = reconciler.store.resolve_identifiers({x for ids in wanted.values() for x in ids})
    owners = {i: next((held[x] for x in ids if x in held), None) for i, ids in wanted.items()}
    cis = reconciler.store.get_cis({o for o in owners.values() if o is not None})
    return frozenset(
        i
        for i, owner in owners.items()
        if owner in cis and cis[owner].attributes.get("placeholder") is not True
    )


def remembered_links(
    reconciler: Reconciler, devices: dict[int, str | None]
) -> dict[tuple[int, str], tuple[str, bool]]:
    """For known devices that did not answer: the graph's links between their interfaces and
    other interfaces, by (planned device, the other interface's normalised component key)."""
    store = reconciler.store
    owner = {ci_id: i for i, ci_id in devices.items() if ci_id is not None}
    if not owner:
        return {}
    parts = store.relationships(owner, direction="in", types=["PART_OF"])
    device_of = {r.from_id: owner[r.to_id] for r in parts}
    links = store.relationships(device_of, types=["CONNECTED_TO"])
    others = {r.to_id if r.from_id in device_of else r.from_id for r in links}
    cis = store.get_cis(others)
    result: dict[tuple[int, str], tuple[str, bool]] = {}
    for r in links:
        mine, other, other_is_from = (
            (r.from_id, r.to_id, False) if r.from_id in device_of else (r.to_id, r.from_id, True)
        )
        ci = cis.get(other)
        if ci is None or ci.ci_class != "interface":
            continue
        for kind, value in ci.identifiers:
            if kind == "component_key":
                result[(device_of[mine], value)] = (mine, other_is_from)
    return result


def retire_superseded(reconciler: Reconciler, pairs: Sequence[tuple[str, str]]) -> int:
    """Remove (keeping history) the coarse links a finer one replaces, if they were made
    by neighbour discovery (their ``protocol`` attribute says so)."""
    if not pairs:
        return 0
    wanted = {frozenset(pair) for pair in pairs}
    ends = {ci_id for pair in pairs for ci_id in pair}
    rels = reconciler.store.relationships(ends, types=["CONNECTED_TO"])
    keys = [
        r.key
        for r in rels
        if frozenset((r.from_id, r.to_id)) in wanted
        and r.attributes.get("protocol") in ("lldp", "cdp")
    ]
    return reconciler.remove_relationships(keys, source=SOURCE) if keys else 0
