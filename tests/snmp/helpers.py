"""Shared helpers of the SNMP tests: run a discovery into a store, read the graph back, and
read what a recording holds (the expected values come from the .snmprec file itself)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servicegraph.bootstrap import Services
from servicegraph.cmdb.model import ConfigurationItem
from servicegraph.cmdb.ports import CIQuery
from servicegraph.collectors.snmp.credentials import Credential, CredentialSet, Secret
from servicegraph.collectors.snmp.discovery import DiscoveryOptions, RunReport, run_discovery
from servicegraph.collectors.snmp.session import SessionOptions
from servicegraph.collectors.snmp.targets import Target
from tests.snmp.simulator import read_snmprec, snmprec_text

FAST = SessionOptions(timeout=2.0, retries=1)


def community(name: str, version: str = "2c") -> Credential:
    return Credential(name, version, community=Secret(name))  # type: ignore[arg-type]


def discover(
    services: Services,
    targets: list[Target],
    *,
    credentials: CredentialSet | None = None,
    complete: bool = True,
    options: DiscoveryOptions | None = None,
    session: SessionOptions = FAST,
    **kw: Any,
) -> RunReport:
    return asyncio.run(
        run_discovery(
            services.reconciler,
            targets,
            credentials=credentials or CredentialSet(),
            session_options=session,
            options=options or DiscoveryOptions(concurrency=8, device_timeout=60),
            complete=complete,
            **kw,
        )
    )


def find(services: Services, kind: str, value: str) -> ConfigurationItem:
    (identifier,) = services.reconciler.identifier_rules.normalise({kind: value}, item="test")
    ci_id = services.store.resolve_identifiers([identifier])[identifier]
    return services.store.get_cis([ci_id])[ci_id]


def interfaces_of(services: Services, device_id: str) -> list[ConfigurationItem]:
    parts = services.store.relationships([device_id], direction="in", types=["PART_OF"])
    found = services.store.get_cis([r.from_id for r in parts])
    return sorted(found.values(), key=lambda ci: ci.attributes["if_index"])


def links(services: Services) -> set[frozenset[tuple[str, str | None]]]:
    """CONNECTED_TO links as {(device name, interface name or None), ...} pairs."""
    store = services.store
    all_cis = {ci.id: ci for ci in store.find_cis(CIQuery(limit=100_000)) if ci.merged_into is None}
    result = set()
    for rel in store.relationships(list(all_cis), types=["CONNECTED_TO"]):
        ends = []
        for ci_id in (rel.from_id, rel.to_id):
            ci = all_cis[ci_id]
            if ci.ci_class == "interface":
                (part,) = store.relationships([ci_id], direction="out", types=["PART_OF"])
                ends.append((all_cis[part.to_id].name.split(".")[0], ci.attributes["if_name"]))
            else:
                ends.append((ci.name.split(".")[0], None))
        result.add(frozenset(ends))
    return result


@dataclass
class Expected:
    sys_name: str
    serial: str | None
    model: str | None
    interface_names: list[str]  # by ifIndex


def expected(path: Path) -> Expected:
    """What the recording holds: sysName; serial and model of the top chassis
    (entPhysicalClass 3, contained in 0); one interface per ifIndex row, named by ifName,
    else ifDescr."""
    rec = read_snmprec(path)
    sys_name = snmprec_text(rec[(1, 3, 6, 1, 2, 1, 1, 5, 0)])
    ent = (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1)
    chassis = sorted(
        oid[len(ent) + 1 :]
        for oid, (_, value) in rec.items()
        if oid[: len(ent) + 1] == (*ent, 5)
        and value == "3"
        and rec.get((*ent, 4, *oid[len(ent) + 1 :]), ("", "0"))[1] == "0"
    )
    serial = model = None
    if chassis:
        idx = chassis[0]
        serial = snmprec_text(rec[(*ent, 11, *idx)]) or None
        model = snmprec_text(rec[(*ent, 13, *idx)]) or None
    if_index = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)
    names = []
    for oid in sorted(o for o in rec if o[: len(if_index)] == if_index):
        idx = oid[len(if_index) :]
        name = rec.get((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1, *idx))
        descr = rec.get((1, 3, 6, 1, 2, 1, 2, 2, 1, 2, *idx))
        names.append((snmprec_text(name) if name else "") or (snmprec_text(descr) if descr else ""))
    return Expected(sys_name, serial, model, names)
