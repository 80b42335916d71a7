"""Reading import files (JSON and CSV) into one observation batch.

Parsing checks the file's shape; the reconciler then checks classes, attribute types and
relationship rules. Every error names the file, the line (CSV) or record (JSON) and the
field. Files are read completely before anything is written, and the whole set of files
is applied as one unit of work: all of it or nothing.

JSON::

    {"cis": [{"key": "core-1", "class": "network_device", "name": "core-1",
              "identifiers": {"serial_number": "FOC1234X"}, "attributes": {"role": "core"}}],
     "relationships": [{"from": "dist-1", "type": "CONNECTED_TO", "to": "core-1",
                        "attributes": {"redundancy_group": "uplink"}}]}

CSV: a file of CIs has a ``class`` column; a file of relationships has ``from``, ``type``
and ``to`` columns. See the README for the columns.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from servicegraph.cmdb.classes import ClassRegistry
from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.cmdb.identifiers import IDENTIFIER_KINDS
from servicegraph.cmdb.model import Lifecycle, OperationalState
from servicegraph.cmdb.observation import (
    CIObservation,
    CIRef,
    ObservationBatch,
    RelationshipObservation,
)

CI_FIELDS = {"key", "id", "class", "name", "identifiers", "attributes", "lifecycle", "state"}
RELATIONSHIP_FIELDS = {"from", "type", "to", "attributes"}
CSV_CI_COLUMNS = {"key", "id", "class", "name", "lifecycle", "state"}
CSV_LIST_SEPARATOR = ";"


def parse_ref(value: Any, *, item: str, field: str) -> CIRef:
    """A relationship end: ``"key"``, ``"id:ci-..."``, ``"serial_number:FOC1"`` or an object
    with one of ``id``, ``key`` or an identifier kind."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValidationFailed("must not be empty", item=item, field=field)
        prefix, sep, rest = text.partition(":")
        if sep and rest:
            if prefix == "id":
                return CIRef(ci_id=rest)
            if prefix == "key":
                return CIRef(key=rest)
            if prefix in IDENTIFIER_KINDS:
                return CIRef(identifier=(prefix, rest))
        return CIRef(key=text)
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, raw),) = value.items()
        if isinstance(raw, str) and raw.strip():
            if kind == "id":
                return CIRef(ci_id=raw)
            if kind == "key":
                return CIRef(key=raw)
            if kind in IDENTIFIER_KINDS:
                return CIRef(identifier=(kind, raw))
    raise ValidationFailed(
        'use a key, "id:<ci id>", "<identifier kind>:<value>" or an object with one of them',
        item=item,
        field=field,
    )


def _enum(cls: type[Lifecycle] | type[OperationalState], value: Any, item: str, field: str) -> Any:
    if value is None or value == "":
        return None
    try:
        return cls(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise ValidationFailed(
            f"'{value}' is not one of {allowed}", item=item, field=field
        ) from None


def _ci_from_record(record: Any, item: str) -> CIObservation:
    if not isinstance(record, Mapping):
        raise ValidationFailed("each CI is a JSON object", item=item)
    unknown = set(record) - CI_FIELDS
    if unknown:
        raise ValidationFailed(
            f"unknown field(s); a CI has {', '.join(sorted(CI_FIELDS))}",
            item=item,
            field=sorted(unknown)[0],
        )
    if "class" not in record:
        raise ValidationFailed("is required", item=item, field="class")
    for name in ("key", "id", "class", "name"):
        if name in record and not isinstance(record[name], str):
            raise ValidationFailed("must be a string", item=item, field=name)
    for name in ("identifiers", "attributes"):
        if name in record and not isinstance(record[name], Mapping):
            raise ValidationFailed("must be an object", item=item, field=name)
    return CIObservation(
        ci_class=record["class"],
        name=record.get("name"),
        identifiers=dict(record.get("identifiers") or {}),
        attributes=dict(record.get("attributes") or {}),
        key=record.get("key"),
        ci_id=record.get("id"),
        lifecycle=_enum(Lifecycle, record.get("lifecycle"), item, "lifecycle"),
        operational_state=_enum(OperationalState, record.get("state"), item, "state"),
        origin=item,
    )


def _relationship_from_record(record: Any, item: str) -> RelationshipObservation:
    if not isinstance(record, Mapping):
        raise ValidationFailed("each relationship is a JSON object", item=item)
    unknown = set(record) - RELATIONSHIP_FIELDS
    if unknown:
        raise ValidationFailed(
            f"unknown field(s); a relationship has {', '.join(sorted(RELATIONSHIP_FIELDS))}",
            item=item,
            field=sorted(unknown)[0],
        )
    for name in ("from", "type", "to"):
        if name not in record:
            raise ValidationFailed("is required", item=item, field=name)
    if not isinstance(record["type"], str):
        raise ValidationFailed("must be a string", item=item, field="type")
    attributes = record.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise ValidationFailed("must be an object", item=item, field="attributes")
    return RelationshipObservation(
        type=record["type"].strip().upper(),
        from_ref=parse_ref(record["from"], item=item, field="from"),
        to_ref=parse_ref(record["to"], item=item, field="to"),
        attributes=dict(attributes),
        origin=item,
    )


def read_json(path: Path) -> tuple[list[CIObservation], list[RelationshipObservation]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValidationFailed(
            f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", item=str(path)
        ) from None
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"not UTF-8 text: {exc}", item=str(path)) from None
    except RecursionError:  # the decoder recurses per level, past Python's limit
        raise ValidationFailed(
            "the JSON is nested too deeply; an import file nests four levels", item=str(path)
        ) from None
    if not isinstance(document, Mapping):
        raise ValidationFailed('the top level is an object: {"cis": [...]}', item=str(path))
    unknown = set(document) - {"cis", "relationships"}
    if unknown:
        raise ValidationFailed(
            "the top-level keys are cis and relationships", item=str(path), field=min(unknown)
        )
    errors: list[ValidationFailed] = []
    cis: list[CIObservation] = []
    rels: list[RelationshipObservation] = []
    for section in ("cis", "relationships"):
        if not isinstance(document.get(section, []), list):
            raise ValidationFailed("must be a list", item=str(path), field=section)
    for index, record in enumerate(document.get("cis", [])):
        try:
            cis.append(_ci_from_record(record, f"{path}: cis[{index}]"))
        except ValidationFailed as exc:
            errors.append(exc)
    for index, record in enumerate(document.get("relationships", [])):
        try:
            rels.append(_relationship_from_record(record, f"{path}: relationships[{index}]"))
        except ValidationFailed as exc:
            errors.append(exc)
    if errors:
        raise ValidationErrors(errors)
    return cis, rels


def read_csv(
    path: Path, classes: ClassRegistry
) -> tuple[list[CIObservation], list[RelationshipObservation]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in reader.fieldnames or []]
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"not UTF-8 text: {exc}", item=str(path)) from None
    except csv.Error as exc:
        raise ValidationFailed(f"not valid CSV: {exc}", item=str(path)) from None
    if not header:
        raise ValidationFailed("empty file: the first line must name the columns", item=str(path))
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise ValidationFailed("column appears twice", item=f"{path}:1", field=duplicates[0])
    errors: list[ValidationFailed] = []
    cis: list[CIObservation] = []
    rels: list[RelationshipObservation] = []
    is_relationships = {"from", "type", "to"} <= set(header)
    if not is_relationships and "class" not in header:
        raise ValidationFailed(
            "a CI file needs a 'class' column; a relationship file 'from', 'type' and 'to'",
            item=f"{path}:1",
        )
    for number, raw in enumerate(rows, start=2):
        item = f"{path}:{number}"
        extra_cells = raw.get(None)
        if extra_cells:
            errors.append(
                ValidationFailed(
                    f"has {len(header) + len(extra_cells)} cells but the header names "
                    f"{len(header)} columns",
                    item=item,
                )
            )
            continue
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        if not any(row.values()):
            continue  # blank line
        try:
            if is_relationships:
                rels.append(_relationship_row(row, item))
            else:
                cis.append(_ci_row(row, item, classes))
        except ValidationFailed as exc:
            errors.append(exc)
    if errors:
        raise ValidationErrors(errors)
    return cis, rels


def _ci_row(row: Mapping[str, str], item: str, classes: ClassRegistry) -> CIObservation:
    class_name = row.get("class", "")
    if not class_name:
        raise ValidationFailed("is required", item=item, field="class")
    # An unknown class is reported by validation, with every other invalid record.
    list_attributes = (
        {a for a, t in classes.get(class_name).attribute_types.items() if t.startswith("list[")}
        if class_name in classes
        else set()
    )
    identifiers: dict[str, list[str]] = {}
    attributes: dict[str, Any] = {}
    for column, value in row.items():
        if column in CSV_CI_COLUMNS or value == "":
            continue
        if column in IDENTIFIER_KINDS:
            identifiers[column] = [v.strip() for v in value.split(CSV_LIST_SEPARATOR) if v.strip()]
        elif column in list_attributes:
            attributes[column] = [v.strip() for v in value.split(CSV_LIST_SEPARATOR) if v.strip()]
        else:
            attributes[column] = value
    return CIObservation(
        ci_class=class_name,
        name=row.get("name") or None,
        identifiers=identifiers,
        attributes=attributes,
        key=row.get("key") or None,
        ci_id=row.get("id") or None,
        lifecycle=_enum(Lifecycle, row.get("lifecycle"), item, "lifecycle"),
        operational_state=_enum(OperationalState, row.get("state"), item, "state"),
        origin=item,
    )


def _relationship_row(row: Mapping[str, str], item: str) -> RelationshipObservation:
    for name in ("from", "type", "to"):
        if not row.get(name):
            raise ValidationFailed("is required", item=item, field=name)
    attributes: dict[str, Any] = {
        k: v for k, v in row.items() if k not in RELATIONSHIP_FIELDS and v != ""
    }
    return RelationshipObservation(
        type=row["type"].upper(),
        from_ref=parse_ref(row["from"], item=item, field="from"),
        to_ref=parse_ref(row["to"], item=item, field="to"),
        attributes=attributes,
        origin=item,
    )


def read_files(
    paths: Sequence[Path], classes: ClassRegistry, *, source: str, complete: bool = False
) -> ObservationBatch:
    """All files as one batch; raises ValidationErrors listing every problem found."""
    errors: list[ValidationFailed] = []
    cis: list[CIObservation] = []
    rels: list[RelationshipObservation] = []
    for path in paths:
        try:
            if not path.is_file():
                raise ValidationFailed("no such file", item=str(path))
            suffix = path.suffix.lower()
            if suffix == ".json":
                file_cis, file_rels = read_json(path)
            elif suffix == ".csv":
                file_cis, file_rels = read_csv(path, classes)
            else:
                raise ValidationFailed(
                    f"unknown format '{suffix}'; use .json or .csv", item=str(path)
                )
        except ValidationErrors as exc:
            errors.extend(exc.errors)
            continue
        except ValidationFailed as exc:
            errors.append(exc)
            continue
        cis.extend(file_cis)
        rels.extend(file_rels)
    if errors:
        raise ValidationErrors(errors)
    return ObservationBatch(source=source, cis=cis, relationships=rels, complete=complete)
