"""The estate as ERP sync sees it: every CI with the ERP keys it carries and when each
source last saw it, read in one consistent snapshot (write-back and the reconciliation
reports both start here).

An ERP source is one named ``erp:<name>``; every other source that reports CIs on its
own (SNMP discovery, a monitoring import) counts as discovery.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from servicegraph.cmdb.model import ConfigurationItem
from servicegraph.cmdb.ports import GraphStore
from servicegraph.collectors.erp.spec import SOURCE_PREFIX


def is_erp(source: str) -> bool:
    return source.startswith(SOURCE_PREFIX)


@dataclass
class EstateCI:
    ci: ConfigurationItem
    erp_keys: dict[str, str] = field(default_factory=dict)  # erp:<name> -> the ERP id
    seen: dict[str, dt.datetime] = field(default_factory=dict)  # source -> last seen

    def last_seen_by(self, sources: Iterable[str] | None = None) -> dt.datetime | None:
        """The latest sighting by ``sources`` (default: every source but the ERP's)."""
        wanted = set(sources) if sources is not None else None
        times = [
            t
            for s, t in self.seen.items()
            if (s in wanted if wanted is not None else not is_erp(s))
        ]
        return max(times) if times else None

    def discovered_by(self, discovery: Iterable[str] | None = None) -> list[str]:
        wanted = set(discovery) if discovery is not None else None
        return sorted(
            s for s in self.seen if (s in wanted if wanted is not None else not is_erp(s))
        )


def read_estate(store: GraphStore) -> dict[str, EstateCI]:
    """Every live CI (merged ones left out: their keys and sightings moved to the
    survivor) with its ERP keys and sightings."""
    estate: dict[str, EstateCI] = {}
    with store.snapshot() as snap:
        for ci in snap.cis():
            if ci.merged_into is None:
                estate[ci.id] = EstateCI(ci)
        for key in snap.source_keys():
            if is_erp(key.source) and key.ci_id in estate:
                estate[key.ci_id].erp_keys[key.source] = key.key
        for sighting in snap.ci_sightings():
            item = estate.get(sighting.ci_id)
            if item is not None:
                item.seen[sighting.sighting.source] = sighting.sighting.last_seen
    return estate
