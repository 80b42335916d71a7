"""Write-back: what the CMDB knows better goes back to the ERP.

Discovery sees the serial numbers, models and firmware actually installed, where a device
is, whether it is up and when it was last seen; the ERP's asset register rarely does. For
every asset the source lists (it holds the source's key), each field of
``write_back.fields`` gets its CMDB fact, rendered, and only fields whose value differs
from what the ERP holds are written: a second run writes nothing.

A value the ERP itself gives is not sent back: an attribute whose source is this feed, an
identifier the feed lists for the asset (the feed is read first, so its serial is not
returned in the CMDB's normalised spelling). A fact the CMDB does not know leaves the
ERP's field alone (a template of facts it knows none of is not sent).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.identifiers import IDENTIFIER_KINDS, Identifier
from servicegraph.cmdb.ports import GraphStore
from servicegraph.collectors.erp.estate import EstateCI, read_estate
from servicegraph.collectors.erp.feeds import (
    Feed,
    WriteBackRow,
    WriteBackTarget,
    open_feed,
    open_target,
)
from servicegraph.collectors.erp.mapping import map_records
from servicegraph.collectors.erp.records import SourceRecord
from servicegraph.collectors.erp.spec import ErpSource
from servicegraph.collectors.erp.sync import UnknownSource


@dataclass(frozen=True, slots=True)
class WriteBackChange:
    key: str  # the ERP id
    ci_id: str
    name: str
    field: str  # the ERP's field
    old: Any
    new: Any


@dataclass(frozen=True)
class WriteBackResult:
    source: str
    dry_run: bool
    assets: int  # assets of the source considered
    changes: list[WriteBackChange] = field(default_factory=list)
    written: int = 0  # ERP records written


TargetOpener = Callable[[ErpSource], WriteBackTarget]
FeedOpener = Callable[[ErpSource], Feed]


class ErpWriteBack:
    def __init__(
        self,
        store: GraphStore,
        sources: Mapping[str, ErpSource],
        *,
        open_target: TargetOpener = open_target,
        open_feed: FeedOpener = open_feed,
    ) -> None:
        self.store = store
        self.sources = dict(sources)
        self._open_target = open_target
        self._open_feed = open_feed

    def run(self, name: str, *, dry_run: bool = False) -> WriteBackResult:
        source = self.sources.get(name.removeprefix("erp:"))
        if source is None:
            raise UnknownSource(name, sorted(self.sources))
        if source.write_back is None:
            raise ValidationFailed(
                "declares no write_back; add write_back.fields to send facts to the ERP",
                field=f"erp.sources.{source.name}.write_back",
            )
        known = erp_identifiers(source, self._open_feed(source).read().records)
        wanted = desired_rows(source, read_estate(self.store).values(), known)
        target = self._open_target(source)
        current = target.current([key for key, _ in wanted])
        changes: list[WriteBackChange] = []
        rows: list[WriteBackRow] = []
        for key, (item, values) in wanted:
            held = current.get(key, {})
            differ = {
                f: v
                for f, v in values.items()
                if not _same(held.get(f), v)
                and not _held_identifier(source.write_back.fields[f], held.get(f), item)
            }
            if not differ:
                continue
            if source.kind == "tryton" and key not in current:
                continue  # the asset is gone from the ERP: nothing to write to
            rows.append(WriteBackRow(key, differ))
            changes.extend(
                WriteBackChange(key, item.ci.id, item.ci.name, f, held.get(f), v)
                for f, v in differ.items()
            )
        written = 0 if dry_run or not rows else target.write(rows)
        return WriteBackResult(source.source_name, dry_run, len(wanted), changes, written)


def erp_identifiers(
    source: ErpSource, records: Iterable[SourceRecord]
) -> dict[str, frozenset[Identifier]]:
    """ERP id -> the identifiers the feed gives that asset, normalised as the CMDB holds
    them (a value that is no valid identifier is left out: validation refuses it)."""
    known: dict[str, frozenset[Identifier]] = {}
    for obs in map_records(source, records).observations:
        found: set[Identifier] = set()
        for kind, raw in obs.identifiers.items():
            spec = IDENTIFIER_KINDS.get(kind)
            for value in [raw] if isinstance(raw, str) else raw:
                try:
                    if spec is not None:
                        found.add((kind, spec.normalise(str(value))))
                except ValueError:
                    continue
        assert obs.key is not None
        known[obs.key] = frozenset(found)
    return known


def desired_rows(
    source: ErpSource,
    estate: Iterable[EstateCI],
    erp_known: Mapping[str, frozenset[Identifier]] | None = None,
) -> list[tuple[str, tuple[EstateCI, dict[str, Any]]]]:
    """(ERP id, (CI, ERP field -> value)) for every asset of the source, sorted by key;
    fields without a CMDB value are left out, and identifiers in ``erp_known`` (what the
    feed itself gives the asset)."""
    assert source.write_back is not None
    name = source.source_name
    rows: list[tuple[str, tuple[EstateCI, dict[str, Any]]]] = []
    for item in estate:
        key = item.erp_keys.get(name)
        if key is None:
            continue
        values: dict[str, Any] = {}
        given = (erp_known or {}).get(key, frozenset())
        for erp_field, expression in source.write_back.fields.items():
            value = render(expression, item, name, given)
            if value is not None and value != "":
                values[erp_field] = value
        rows.append((key, (item, values)))
    rows.sort(key=lambda row: row[0])
    return rows


def render(
    expression: str, item: EstateCI, own_source: str, given: frozenset[Identifier] = frozenset()
) -> Any:
    """A fact's value, or a template with each ``{fact}`` filled in (unknown ones empty);
    None when the CMDB knows none of the template's facts."""
    if "{" not in expression:
        return fact(expression, item, own_source, given)
    parts: list[str] = []
    known = False
    for literal, name, _, _ in string.Formatter().parse(expression):
        parts.append(literal)
        if name:
            value = fact(name, item, own_source, given)
            known = known or value is not None
            parts.append("" if value is None else str(value))
    return "".join(parts).strip() if known else None


def fact(
    name: str, item: EstateCI, own_source: str, given: frozenset[Identifier] = frozenset()
) -> Any:
    ci = item.ci
    prefix, _, rest = name.partition(".")
    if prefix == "attributes":
        if ci.attribute_sources.get(rest) == own_source:
            return None  # the ERP's own value
        return ci.attributes.get(rest)
    if prefix == "identifiers":
        values = sorted(v for k, v in ci.identifiers if k == rest and (k, v) not in given)
        return ", ".join(values) or None
    if name == "name":
        return None if ci.attribute_sources.get("name") == own_source else ci.name
    if name == "class":
        return ci.ci_class
    if name == "lifecycle":
        return ci.lifecycle.value
    if name == "operational_state":
        return ci.operational_state.value
    if name == "ci_id":
        return ci.id
    if name == "last_seen":
        seen = item.last_seen_by()
        return seen.isoformat(timespec="seconds") if seen else None
    raise ValueError(f"unknown CMDB fact '{name}'")  # spec.check_fact refused it at load


def _held_identifier(expression: str, held: Any, item: EstateCI) -> bool:
    """True when the ERP's field holds, in its own spelling, one of the CI's values of the
    identifier the field is mapped to: ``SN-1234 x`` is the serial ``SN1234X``. Nothing is
    written then: the ERP gave it; a second serial the device reports is a mismatch the
    reports show, not something to overwrite the ERP's with."""
    prefix, _, kind = expression.partition(".")
    if prefix != "identifiers" or held is None or str(held).strip() == "":
        return False
    try:
        normal = IDENTIFIER_KINDS[kind].normalise(str(held))
    except ValueError:
        return False  # not even a valid value: discovery's is better
    return (kind, normal) in item.ci.identifiers


def _same(held: Any, new: Any) -> bool:
    if held is None or held == "":
        return new is None or new == ""
    if isinstance(held, int | float) and isinstance(new, int | float):
        return float(held) == float(new)
    return str(held).strip() == str(new).strip()
