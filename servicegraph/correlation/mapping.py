"""Mapping an event to the CI it is about, from the labels monitoring sources attach.

Tried in order: an explicit ``ci_id`` label; an interface (a device plus ``ifName`` or
``ifIndex``); the host (``fqdn``, ``hostname``, ``host``, ``nodename``); an IP label; the
Prometheus ``instance`` label (host or IP, port stripped); the Prometheus ``job`` label as a
``service_id`` identifier. Lookups are batched per event batch and cached until the graph
changes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.identifiers import Identifier, IdentifierRules
from servicegraph.cmdb.impact import ImpactService
from servicegraph.cmdb.store.port import GraphStore
from servicegraph.correlation.model import (
    CI_ID_LABEL,
    HOST_LABELS,
    INTERFACE_INDEX_LABELS,
    INTERFACE_NAME_LABELS,
    IP_LABELS,
)

Hint = tuple[str, ...]


def _host_identifiers(value: str) -> list[tuple[str, str]]:
    """Identifier kinds a host-ish label value may be, strongest first."""
    text = value.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # host:port
        text = text.split(":", 1)[0]
    if text[:1].isdigit() or ":" in text:  # (a name cannot be an address: skip the parse)
        try:
            ipaddress.ip_address(text)
            return [("management_ip", text)]
        except ValueError:
            pass
    if "." in text:
        return [("fqdn", text), ("hostname", text)]
    return [("hostname", text)]


def event_hints(labels: Mapping[str, str]) -> list[Hint]:
    """Candidate references in the order they are tried. A hint is ``("ci", id)``,
    ``("ident", kind, value)`` or ``("iface", kind, value, name|index, x)``."""
    hints: list[Hint] = []
    ci_id = labels.get(CI_ID_LABEL)
    if ci_id:
        hints.append(("ci", ci_id))
    device: list[tuple[str, str]] = []
    for label in (*HOST_LABELS, *IP_LABELS, "instance"):
        value = labels.get(label)
        if value:
            device.extend(_host_identifiers(value))
    if_name = next((labels[k] for k in INTERFACE_NAME_LABELS if labels.get(k)), None)
    if_index = next((labels[k] for k in INTERFACE_INDEX_LABELS if labels.get(k)), None)
    for kind, value in device:
        if if_name:
            hints.append(("iface", kind, value, "if_name", if_name))
        if if_index:
            hints.append(("iface", kind, value, "if_index", if_index))
    for kind, value in device:
        hints.append(("ident", kind, value))
    job = labels.get("job")
    if job:
        hints.append(("ident", "service_id", job))
    return hints


class CIMapper:
    def __init__(
        self,
        store: GraphStore,
        identifier_rules: IdentifierRules,
        impact: ImpactService | None = None,
    ) -> None:
        self.store = store
        self.rules = identifier_rules
        # The impact projection knows every CI id: checking an explicit ci_id label there
        # spares a store round trip per batch.
        self.impact = impact
        self._cache: dict[Hint, str | None] = {}
        self._seq = -1

    def _normal(self, kind: str, value: str) -> Identifier | None:
        try:
            found = self.rules.normalise({kind: value}, item="event")
        except ValidationFailed:
            return None
        return found[0] if found else None

    def map_many(self, label_sets: Sequence[Mapping[str, str]]) -> list[str | None]:
        """The CI id for each label set, or None when nothing matches."""
        seq = self.store.change_seq()
        if seq != self._seq:
            self._cache.clear()
            self._seq = seq
        hint_lists = [event_hints(labels) for labels in label_sets]
        unknown = {h for hints in hint_lists for h in hints if h not in self._cache}
        if unknown:
            self._resolve(unknown)
        result: list[str | None] = []
        for hints in hint_lists:
            result.append(next((self._cache[h] for h in hints if self._cache[h]), None))
        return result

    def _resolve(self, hints: set[Hint]) -> None:
        cache = self._cache
        ci_ids = [h[1] for h in hints if h[0] == "ci"]
        if self.impact is not None:
            graph = self.impact.graph
            live = {
                i for i in ci_ids if (n := graph.index.get(i)) is not None and n not in graph.merged
            }
            for ci_id in live:
                cache[("ci", ci_id)] = ci_id
            ci_ids = [i for i in ci_ids if i not in live]
        existing = self.store.get_cis(ci_ids) if ci_ids else {}
        identifiers: dict[Hint, Identifier | None] = {}
        for h in hints:
            if h[0] == "ci":
                if h in cache:
                    continue
                ci = existing.get(h[1])
                cache[h] = None if ci is None else (ci.merged_into or ci.id)
            else:
                identifiers[h] = self._normal(h[1], h[2])
        wanted = {i for i in identifiers.values() if i is not None}
        held = self.store.resolve_identifiers(wanted) if wanted else {}
        devices: dict[str, list[Hint]] = {}
        for h, ident in identifiers.items():
            owner = held.get(ident) if ident is not None else None
            if h[0] == "ident":
                cache[h] = owner
            elif owner is None:
                cache[h] = None
            else:
                devices.setdefault(owner, []).append(h)
        if devices:
            self._resolve_interfaces(devices)

    def _resolve_interfaces(self, devices: dict[str, list[Hint]]) -> None:
        parts = self.store.relationships(devices, direction="in", types=["PART_OF"])
        by_device: dict[str, list[str]] = {}
        for rel in parts:
            by_device.setdefault(rel.to_id, []).append(rel.from_id)
        interfaces = self.store.get_cis({i for ids in by_device.values() for i in ids})
        for device, hints in devices.items():
            for h in hints:
                attribute, wanted = h[3], h[4]
                match = None
                for interface_id in by_device.get(device, ()):
                    value = interfaces[interface_id].attributes.get(attribute)
                    if value is not None and str(value) == str(wanted):
                        match = interface_id
                        break
                self._cache[h] = match
