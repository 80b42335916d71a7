"""Per-attribute source precedence: which source's word counts for which fact.

SNMP knows a switch's serial and firmware better than a spreadsheet; the ERP knows the cost
centre and the owner; a human's note should not be overwritten by a collector. The policy
maps an attribute to the sources allowed to set it, strongest first; ``"*"`` gives the
order for attributes not listed. A source absent from a list ranks below every listed
source; between sources of equal rank the latest report wins.

Sources of one family share a rank: ``erp:fixed-assets`` and ``erp:tryton`` rank as ``erp``
unless a rule names them, so a new ERP feed inherits what the ERP owns (and a feed that
owns more, ``owns:`` in its declaration, is put first for those attributes by name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_PRECEDENCE: dict[str, list[str]] = {
    # hardware facts: what the device says about itself beats what people typed
    "model": ["snmp", "erp", "manual"],
    "vendor": ["snmp", "erp", "manual"],
    "os_version": ["snmp", "manual"],
    "firmware_revision": ["snmp", "manual"],
    "hardware_revision": ["snmp", "manual"],
    # business facts: the ERP is the system of record
    "cost_centre": ["erp", "manual"],
    "owner": ["erp", "manual"],
    "asset_tag": ["erp", "manual"],
    # free text written by people stays theirs
    "description": ["manual"],
    "notes": ["manual"],
}


@dataclass(frozen=True)
class SourcePrecedence:
    rules: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(DEFAULT_PRECEDENCE))

    def rank(self, attribute: str, source: str) -> int:
        order = self.rules.get(attribute)
        if order is None:
            order = self.rules.get("*", ())
        names = list(order)
        if source in names:
            return names.index(source)
        family, sep, _ = source.partition(":")
        if sep and family in names:
            return names.index(family)
        return len(names)

    def with_owner(self, source: str, attributes: Sequence[str]) -> SourcePrecedence:
        """This policy with ``source`` first for each of ``attributes``."""
        rules = {k: list(v) for k, v in self.rules.items()}
        for attribute in attributes:
            order = rules.get(attribute, list(self.rules.get("*", ())))
            rules[attribute] = [source, *(s for s in order if s != source)]
        return SourcePrecedence(rules)

    def may_override(self, attribute: str, new_source: str, current_source: str | None) -> bool:
        """True when ``new_source`` may replace a value that ``current_source`` set."""
        if current_source is None or current_source == new_source:
            return True
        return self.rank(attribute, new_source) <= self.rank(attribute, current_source)
