"""Reconciliation reports between the ERP's asset register and what discovery sees.

- *ghost assets*: the ERP lists them, discovery never saw them (or not for
  ``ghost_after_days``): lost, stolen, disposed without the paperwork, or never installed
  (retired and stale CIs are not: the ERP or discovery already says they are gone);
- *unregistered devices*: discovery sees them, no ERP feed lists them: bought on a credit
  card, a loan unit, a rogue switch;
- *mismatches*: one asset, two stories: the CI holds two serial numbers (the ERP's and the
  one the device reports), or, from a dry run of a source, a model or firmware the ERP
  states that a stronger source contradicts, and serials the ERP gives that belong to
  another CI.

Only classes discovery can see (``discoverable_classes``, with their subclasses) count
for ghosts and unregistered devices: a desk or a licence is never "seen".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from servicegraph.cmdb.classes import ClassRegistry
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.model import ConflictKind, Lifecycle, utcnow
from servicegraph.cmdb.ports import GraphStore
from servicegraph.collectors.erp.estate import EstateCI, read_estate
from servicegraph.collectors.erp.sync import ErpSync, SyncResult

# identifiers one physical asset has exactly one of
SINGLE_VALUED = ("serial_number", "asset_tag")


@dataclass(frozen=True, slots=True)
class GhostAsset:
    ci_id: str
    name: str
    ci_class: str
    source: str  # the ERP feed listing it
    key: str  # its ERP id
    last_discovered: dt.datetime | None  # None: never


@dataclass(frozen=True, slots=True)
class UnregisteredDevice:
    ci_id: str
    name: str
    ci_class: str
    seen_by: list[str]
    last_seen: dt.datetime | None
    serial_number: str | None


@dataclass(frozen=True, slots=True)
class Mismatch:
    ci_id: str | None
    name: str
    key: str | None
    field: str  # identifiers.serial_number, model, firmware_revision ...
    erp_value: Any
    cmdb_value: Any
    detail: str


@dataclass(frozen=True)
class AssetReport:
    ghosts: list[GhostAsset] = field(default_factory=list)
    unregistered: list[UnregisteredDevice] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    # what the lists were drawn from, for a reader to trust them
    erp_assets: int = 0
    discovered: int = 0
    source: str | None = None


def asset_report(
    estate: Iterable[EstateCI],
    classes: ClassRegistry,
    *,
    discoverable: Sequence[str],
    now: dt.datetime,
    ghost_after: dt.timedelta,
    source: str | None = None,
    plan: SyncResult | None = None,
) -> AssetReport:
    """The three lists over the estate (``source``: only that ERP feed's assets); with
    ``plan`` (a dry run of the source) also the mismatches only the ERP's values show."""
    ghosts: list[GhostAsset] = []
    unregistered: list[UnregisteredDevice] = []
    mismatches: list[Mismatch] = []
    erp_assets = discovered = 0
    for item in estate:
        ci = item.ci
        keys = {s: k for s, k in item.erp_keys.items() if source is None or s == source}
        if keys:
            erp_assets += 1
            mismatches.extend(_identifier_mismatches(item, keys))
        if not _discoverable(classes, ci.ci_class, discoverable):
            continue
        last = item.last_seen_by()
        if last is not None:
            discovered += 1
        if keys and ci.lifecycle is not Lifecycle.RETIRED and not ci.stale:
            if last is None or now - last > ghost_after:
                s, k = sorted(keys.items())[0]
                ghosts.append(GhostAsset(ci.id, ci.name, ci.ci_class, s, k, last))
        elif not item.erp_keys and last is not None and not ci.stale:
            if ci.attributes.get("placeholder"):
                continue  # known only from a neighbour's LLDP table, not a device seen
            unregistered.append(
                UnregisteredDevice(
                    ci.id,
                    ci.name,
                    ci.ci_class,
                    item.discovered_by(),
                    last,
                    ci.identifier("serial_number"),
                )
            )
    if plan is not None:
        mismatches.extend(plan_mismatches(plan))
    ghosts.sort(key=lambda g: (g.last_discovered is not None, g.name))
    unregistered.sort(key=lambda u: u.name)
    return AssetReport(ghosts, unregistered, mismatches, erp_assets, discovered, source)


def _discoverable(classes: ClassRegistry, name: str, discoverable: Sequence[str]) -> bool:
    if name not in classes:
        return False
    ci_class = classes.get(name)
    return any(ci_class.is_a(d) for d in discoverable)


def _identifier_mismatches(item: EstateCI, keys: dict[str, str]) -> list[Mismatch]:
    found: list[Mismatch] = []
    key = sorted(keys.values())[0]
    for kind in SINGLE_VALUED:
        values = sorted(v for k, v in item.ci.identifiers if k == kind)
        if len(values) > 1:
            found.append(
                Mismatch(
                    item.ci.id,
                    item.ci.name,
                    key,
                    f"identifiers.{kind}",
                    None,
                    values,
                    f"one asset with {len(values)} values of {kind}: {', '.join(values)}; "
                    "the ERP's and the device's differ",
                )
            )
    return found


def plan_mismatches(plan: SyncResult) -> list[Mismatch]:
    """From a dry run: values the ERP states that a stronger source contradicts, and
    identifiers of ERP assets that discovery found on another CI."""
    found: list[Mismatch] = []
    for item in plan.items:
        for kept in item.kept:
            found.append(
                Mismatch(
                    item.ci_id,
                    item.name,
                    item.key,
                    kept.field,
                    kept.erp_value,
                    kept.kept_value,
                    f"the ERP says {kept.erp_value}, {kept.kept_by} says {kept.kept_value}",
                )
            )
    by_origin = {item.origin: item for item in plan.items if item.origin}
    for conflict in plan.conflicts:
        if conflict.kind is not ConflictKind.IDENTIFIER_CLAIMED or conflict.identifier is None:
            continue
        kind, value = conflict.identifier
        planned = by_origin.get(conflict.item)
        found.append(
            Mismatch(
                conflict.ci_id,
                planned.name if planned else conflict.item,
                planned.key if planned else None,
                f"identifiers.{kind}",
                value,
                conflict.other_ci_id,
                conflict.detail,
            )
        )
    return found


class AssetReports:
    """The reports over the store; ``live`` also dry-runs the source's feed (it reads the
    ERP) for the mismatches only the ERP's own values show."""

    def __init__(
        self,
        store: GraphStore,
        classes: ClassRegistry,
        sync: ErpSync,
        *,
        discoverable: Sequence[str],
        ghost_after: dt.timedelta,
    ) -> None:
        self.store = store
        self.classes = classes
        self.sync = sync
        self.discoverable = tuple(discoverable)
        self.ghost_after = ghost_after

    def report(
        self, source: str | None = None, *, live: bool = False, now: dt.datetime | None = None
    ) -> AssetReport:
        source_name = None if source is None else self.sync.source(source).source_name
        if live and source is None:
            raise ValidationFailed(
                "a live report dry-runs one feed: name the source", field="source"
            )
        plan = self.sync.sync(source, dry_run=True) if live and source is not None else None
        return asset_report(
            read_estate(self.store).values(),
            self.classes,
            discoverable=self.discoverable,
            now=now or utcnow(),
            ghost_after=self.ghost_after,
            source=source_name,
            plan=plan,
        )
