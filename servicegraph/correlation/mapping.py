"""Mapping an event to the CI it is about, from the labels monitoring sources attach.

Tried in order: an explicit ``ci_id`` label; an interface (a device plus ``ifName`` or
``ifIndex``); the host (``fqdn``, ``hostname``, ``host``, ``nodename``); an IP label; the
Prometheus ``instance`` label (host or IP, port stripped); the Prometheus ``job`` label as a
``service_id`` identifier. Lookups are batched per event batch and cached until the graph
changes.

The ``ci_id`` label is read as every entry point reads a CI reference
(``servicegraph.cmdb.lookup``): a CI id, a source key (``acc-1``, ``key:acc-1``) or a
``kind:value`` identifier (``hostname:db-1``); a merged CI maps to its survivor. A real id
is answered by the impact projection without a store call; the other forms of a whole batch
cost one ``get_cis``, one ``resolve_keys`` and one ``resolve_identifiers`` (shared with the
host labels), never a lookup per event. A key that names CIs of several sources maps to no
CI rather than to a guess: the next label decides, or the alert stays unmapped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.identifiers import Identifier, IdentifierRules
from servicegraph.cmdb.impact import ImpactService
from servicegraph.cmdb.lookup import CIReference, parse_reference, survivors
from servicegraph.cmdb.model import ConfigurationItem
from servicegraph.cmdb.ports import GraphStore
from servicegraph.events.model import (
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
        refs = self._parse_refs({h[1] for h in hints if h[0] == "ci"})
        wanted_ids = {r.ci_id for r in refs.values() if r.ci_id is not None}
        existing = self.store.get_cis(wanted_ids) if wanted_ids else {}
        keys = {r.key for r in refs.values() if r.key is not None and r.ci_id not in existing}
        key_hits = self.store.resolve_keys(keys) if keys else {}
        identifiers = {h: self._normal(h[1], h[2]) for h in hints if h[0] != "ci"}
        wanted = {i for i in identifiers.values() if i is not None}
        wanted |= {r.identifier for r in refs.values() if r.identifier is not None}
        held = self.store.resolve_identifiers(wanted) if wanted else {}

        owners: dict[str, set[str]] = {}
        for text, ref in refs.items():
            if ref.identifier is not None:
                owner = held.get(ref.identifier)
                owners[text] = {owner} if owner is not None else set()
            elif ref.ci_id in existing:
                owners[text] = {ref.ci_id}
            else:
                owners[text] = key_hits.get(ref.key, set()) if ref.key is not None else set()
        live = self._survivors({o for found in owners.values() for o in found}, existing)
        for text, found in owners.items():
            distinct = {live[o] for o in found}
            # a key of CIs from several sources: no CI rather than the wrong one
            cache[("ci", text)] = distinct.pop() if len(distinct) == 1 else None

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

    def _parse_refs(self, texts: set[str]) -> dict[str, CIReference]:
        """The ``ci_id`` label values still to look up in the store, read as references.
        Live ids the impact projection knows are cached at once (the common case: sources
        that know our ids); values that cannot name a CI are cached as unmapped."""
        if self.impact is not None:
            graph = self.impact.graph
            for text in list(texts):
                node = graph.index.get(text)
                if node is not None and node not in graph.merged:
                    self._cache[("ci", text)] = text
                    texts.discard(text)
        refs: dict[str, CIReference] = {}
        for text in texts:
            try:
                refs[text] = parse_reference(text, self.rules)
            except ValidationFailed:
                self._cache[("ci", text)] = None
        return refs

    def _survivors(
        self, ci_ids: set[str], loaded: Mapping[str, ConfigurationItem]
    ) -> dict[str, str]:
        """Each CI with the CI it was merged into (itself when not merged), asking the
        store only about those neither ``loaded`` nor the projection shows as live."""
        graph = self.impact.graph if self.impact is not None else None
        live: dict[str, str] = {}
        for ci_id in ci_ids:
            ci = loaded.get(ci_id)
            if ci is not None and ci.merged_into is None:
                live[ci_id] = ci_id
            elif ci is None and graph is not None:
                node = graph.index.get(ci_id)
                if node is not None and node not in graph.merged:
                    live[ci_id] = ci_id
        rest = ci_ids - live.keys()
        if rest:
            live.update(survivors(self.store, rest))
        return live

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
