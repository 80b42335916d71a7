"""A source's mapping applied to its records: each ERP record becomes one CI observation,
or a RowError naming the record and the source field.

The ERP's id of an asset (``key``) is both the observation's source key (how the feed's
next run finds the same CI) and its ``erp_id`` identifier (how other sources and the
reports find the ERP's record). Empty values are left out: an export that has no serial
for an asset says nothing about its serial, it does not clear the one SNMP found.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.model import Lifecycle, OperationalState
from servicegraph.cmdb.observation import CIObservation
from servicegraph.collectors.erp.records import RowError, SourceRecord
from servicegraph.collectors.erp.spec import ErpSource, FieldMapping
from servicegraph.collectors.erp.transforms import TransformError


def lookup(fields: Mapping[str, Any], name: str) -> Any:
    """A record's field by name; a dotted name reaches into nested objects (JSON, RPC:
    ``product.name``) when no field has the dotted name itself."""
    if name in fields:
        return fields[name]
    value: Any = fields
    parts = name.split(".")
    for index, part in enumerate(parts):
        if not isinstance(value, Mapping):
            return None
        last = index == len(parts) - 1
        if not last and f"{part}." in value:  # Tryton: "product": 7, "product.": {...}
            value = value[f"{part}."]
        elif part in value:
            value = value[part]
        else:
            return None
    return value


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _value(mapping: FieldMapping, record: SourceRecord) -> Any:
    fields = record.fields
    raw = fields.get(mapping.source, _MISSING)
    if raw is _MISSING:
        raw = lookup(fields, mapping.source) if "." in mapping.source else None
    if isinstance(raw, str):
        raw = raw.strip()
    if (raw is None or raw == "") and not mapping.transform.fills_empty:
        return None  # the ERP says nothing: no step to run (this is most cells of an export)
    try:
        return mapping.transform.apply(raw)
    except TransformError as exc:
        raise _Refused(RowError(record.origin, mapping.source, str(exc))) from None


_MISSING = object()


class _Refused(Exception):
    def __init__(self, error: RowError) -> None:
        self.error = error


@dataclass(frozen=True)
class Mapped:
    observations: list[CIObservation]
    errors: list[RowError]


def map_records(source: ErpSource, records: Iterable[SourceRecord]) -> Mapped:
    """Every record mapped; a key given twice refuses the later record (two assets of one
    ERP cannot share an inventory number)."""
    observations: list[CIObservation] = []
    errors: list[RowError] = []
    first_origin: dict[str, str] = {}
    for record in records:
        try:
            obs = map_record(source, record)
        except _Refused as refused:
            errors.append(refused.error)
            continue
        assert obs.key is not None
        earlier = first_origin.get(obs.key)
        if earlier is not None:
            errors.append(
                RowError(
                    record.origin,
                    source.key.source,
                    f"'{obs.key}' is already the {source.key.source} of {earlier}",
                )
            )
            continue
        first_origin[obs.key] = record.origin
        observations.append(obs)
    return Mapped(observations, errors)


def map_record(source: ErpSource, record: SourceRecord) -> CIObservation:
    """One record as an observation; raises _Refused (map_records turns it into a RowError)."""
    key = _value(source.key, record)
    if _empty(key):
        raise _Refused(
            RowError(record.origin, source.key.source, "is empty: every asset needs its ERP id")
        )
    key_text = str(key).strip()
    if isinstance(source.ci_class, FieldMapping):
        ci_class = _value(source.ci_class, record)
        if _empty(ci_class):
            raise _Refused(RowError(record.origin, source.ci_class.source, "is empty: no class"))
    else:
        ci_class = source.ci_class
    name: str | None = None
    lifecycle: Lifecycle | None = None
    state: OperationalState | None = None
    identifiers: dict[str, list[str]] = {"erp_id": [key_text]}
    attributes: dict[str, Any] = {}
    for mapping in source.fields:
        value = _value(mapping, record)
        if value is None or value == "" or value == []:
            continue
        prefix, rest = mapping.prefix, mapping.rest
        if prefix == "identifiers":
            values = value if isinstance(value, list) else [value]
            identifiers.setdefault(rest, []).extend(str(v) for v in values if not _empty(v))
        elif prefix == "attributes":
            attributes[rest] = value
        elif mapping.target == "name":
            name = str(value)
        elif mapping.target == "lifecycle":
            lifecycle = _enum(Lifecycle, value, record, mapping)
        else:
            state = _enum(OperationalState, value, record, mapping)
    return CIObservation(
        ci_class=str(ci_class),
        name=name,
        identifiers=identifiers,
        attributes=attributes,
        key=key_text,
        lifecycle=lifecycle,
        operational_state=state,
        origin=record.origin,
    )


def _enum(
    cls: type[Lifecycle] | type[OperationalState],
    value: Any,
    record: SourceRecord,
    mapping: FieldMapping,
) -> Any:
    try:
        return cls(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise _Refused(
            RowError(
                record.origin,
                mapping.source,
                f"'{value}' is not a {mapping.target} ({allowed}); map it with "
                "transforms: [{map: {...}}]",
            )
        ) from None


def source_field_of(source: ErpSource, failure: ValidationFailed) -> str | None:
    """The source field behind a reconciliation validation error (which names the
    observation's field: ``class``, ``purchase_date``, ``identifiers.mac``), so the ERP's
    user reads the column they know."""
    target = failure.field
    if target is None:
        return None
    if target == "class":
        return source.ci_class.source if isinstance(source.ci_class, FieldMapping) else None
    candidates = {target, f"attributes.{target}"}
    for mapping in source.fields:
        if mapping.target in candidates:
            return mapping.source
    return None
