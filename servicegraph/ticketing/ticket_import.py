"""Importing tickets from CSV and JSON: each row one ``NewTicket`` raised by the import channel.

CSV: a header row naming the columns (``COLUMNS``, and ``custom.<name>`` for a custom
field); UTF-8 with or without a byte-order mark (as Excel writes it); ``affected_ci_ids``
and ``tags`` separate their values with ``;``; a custom field's cell is text, which the
field's type reads (``30`` for an int, ``true``, ``2026-11-02``), or a JSON list
(``["a","b"]``) for a list field. JSON: a list of objects with the same names, lists as
lists (or ``;``-separated text) and custom fields as a ``custom_fields`` object. Empty
cells and nulls are not given (the catalogue's defaults and routing apply).

This module only reads: a row's text becomes a ``NewTicket`` with its affected CIs
resolved to ids by the caller's ``resolve_ci`` (an id, key or identifier, as the CLI's
other commands take them). Every problem is collected, named by ``file:line`` (a JSON
object's line is where it starts) and field, so that one run lists them all; the ticket
service then checks the tickets as ``create`` does (``TicketService.create_many``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from servicegraph.cmdb.errors import CmdbError, ValidationFailed
from servicegraph.ticketing.intake import MAX_CIS, MAX_TAGS, NewTicket, choice
from servicegraph.ticketing.model import Channel, TicketType

Format = Literal["csv", "json"]
ResolveCI = Callable[[str], str]  # a CI reference to its id; raises CmdbError if none

COLUMNS = (
    "type",
    "title",
    "description",
    "requester",
    "service",
    "category",
    "impact",
    "urgency",
    "priority",
    "priority_reason",
    "assignment_group",
    "assignee",
    "affected_ci_ids",
    "tags",
)
LIST_COLUMNS = frozenset({"affected_ci_ids", "tags"})
CUSTOM_PREFIX = "custom."
MAX_ROWS = 10_000  # one unit holds the write lock while it saves them all
LIMITS = {"affected_ci_ids": MAX_CIS, "tags": MAX_TAGS}


@dataclass(frozen=True)
class TicketRows:
    """What a file holds: the tickets of the rows that read, each with its ``file:line``
    (``items``), and every problem found (empty when the whole file read)."""

    tickets: tuple[NewTicket, ...]
    items: tuple[str, ...]
    errors: tuple[ValidationFailed, ...]


def parse_tickets(
    source: Path | str,
    *,
    resolve_ci: ResolveCI,
    format: Format | None = None,
    name: str | None = None,
) -> TicketRows:
    """A file (a ``Path``) or text (a ``str``, named ``name`` in errors); ``format``
    defaults to the file's suffix, or for text to JSON when it starts with ``[``."""
    tickets: list[NewTicket] = []
    items: list[str] = []
    errors: list[ValidationFailed] = []
    label = name or (str(source) if isinstance(source, Path) else "<text>")
    try:
        text, suffix = _text(source, label)
        fmt = format or suffix or ("json" if text.lstrip()[:1] == "[" else "csv")
        if fmt == "csv":
            rows = _csv_rows(text, label, errors)
        elif fmt == "json":
            rows = _json_rows(text, label, errors)
        else:
            raise ValidationFailed(f"unknown format '{fmt}'; use csv or json", item=label)
        if len(rows) > MAX_ROWS:
            raise ValidationFailed(f"at most {MAX_ROWS:,} tickets per file", item=label)
    except ValidationFailed as exc:
        return TicketRows((), (), (*errors, exc))
    for item, values in rows:
        try:
            tickets.append(_ticket(values, resolve_ci))
            items.append(item)
        except _RowErrors as exc:
            errors += [ValidationFailed(e.reason, item=item, field=e.field) for e in exc.errors]
    if not rows and not errors:
        errors.append(ValidationFailed("holds no tickets", item=label))
    return TicketRows(tuple(tickets), tuple(items), tuple(errors))


def _text(source: Path | str, label: str) -> tuple[str, str]:
    if not isinstance(source, Path):
        return source.removeprefix("\ufeff"), ""
    try:
        text = source.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ValidationFailed(f"cannot read: {exc.strerror}", item=label) from None
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"not UTF-8 text: {exc}", item=label) from None
    return text, source.suffix.lower().lstrip(".")


Row = tuple[str, dict[str, Any]]  # (file:line, the row's given values)


def _csv_rows(text: str, label: str, errors: list[ValidationFailed]) -> list[Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
    except csv.Error as exc:
        raise ValidationFailed(f"not valid CSV: {exc}", item=f"{label}:1") from None
    if not header:
        raise ValidationFailed("empty file: the first line must name the columns", item=label)
    for column in header:
        if column not in COLUMNS and not _custom_name(column):
            msg = f"unknown column; use {', '.join(COLUMNS)} or custom.<name>"
            raise ValidationFailed(msg, item=f"{label}:1", field=column or "(empty)")
        if header.count(column) > 1:
            raise ValidationFailed("column appears twice", item=f"{label}:1", field=column)
    rows: list[Row] = []
    try:
        for cells in reader:
            item = f"{label}:{reader.line_num}"
            if not any(c.strip() for c in cells):
                continue  # a blank line
            if len(cells) > len(header):
                msg = f"has {len(cells)} cells but the header names {len(header)} columns"
                errors.append(ValidationFailed(msg, item=item))
                continue
            values: dict[str, Any] = {}
            custom: dict[str, Any] = {}
            for column, cell in zip(header, cells, strict=False):
                if not cell.strip():
                    continue
                if _custom_name(column):
                    custom[column[len(CUSTOM_PREFIX) :]] = _custom_cell(cell)
                else:
                    values[column] = cell.strip()
            if custom:
                values["custom_fields"] = custom
            rows.append((item, values))
    except csv.Error as exc:
        errors.append(ValidationFailed(f"not valid CSV: {exc}", item=f"{label}:{reader.line_num}"))
    return rows


def _custom_name(column: str) -> bool:
    return column.startswith(CUSTOM_PREFIX) and len(column) > len(CUSTOM_PREFIX)


def _custom_cell(cell: str) -> Any:
    """Text, or the list a cell that reads as a JSON list holds (a list field's value)."""
    stripped = cell.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            return stripped
        return value if isinstance(value, list) else stripped
    return stripped


def _json_rows(text: str, label: str, errors: list[ValidationFailed]) -> list[Row]:
    """The list's objects, each with the line it starts on (read one by one so that an
    error can name it)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise ValidationFailed(msg, item=label) from None
    except RecursionError:
        raise ValidationFailed("the JSON is nested too deeply", item=label) from None
    if not isinstance(document, list):
        raise ValidationFailed("the top level must be a list of ticket objects", item=label)
    decoder, position, rows = json.JSONDecoder(), text.index("[") + 1, []
    for raw in document:
        while text[position] in " \t\r\n,":
            position += 1
        item = f"{label}:{text.count(chr(10), 0, position) + 1}"
        position = decoder.raw_decode(text, position)[1]
        if not isinstance(raw, Mapping):
            errors.append(ValidationFailed("each ticket is an object", item=item))
            continue
        unknown = [k for k in raw if k not in COLUMNS and k != "custom_fields"]
        for key in unknown:
            msg = f"unknown field; use {', '.join(COLUMNS)} or custom_fields"
            errors.append(ValidationFailed(msg, item=item, field=str(key)))
        if not unknown:
            rows.append((item, {k: v for k, v in raw.items() if v is not None and v != ""}))
    return rows


class _RowErrors(Exception):
    def __init__(self, errors: list[ValidationFailed]) -> None:
        self.errors = errors


def _ticket(values: Mapping[str, Any], resolve_ci: ResolveCI) -> NewTicket:
    """A row's ``NewTicket``; raises _RowErrors with every field that does not read (the
    service checks the rest: the title, the people, the catalogue, the custom fields)."""
    errors: list[ValidationFailed] = []
    fields: dict[str, Any] = {"channel": Channel.IMPORT}

    def read(name: str, convert: Callable[[Any], Any]) -> None:
        if name in values:
            try:
                fields[name] = convert(values[name])
            except ValidationFailed as exc:
                errors.append(ValidationFailed(exc.reason, field=exc.field or name))

    if "type" not in values:
        errors.append(ValidationFailed("is required: incident or service_request", field="type"))
    read("type", lambda v: choice(TicketType, v, "type"))
    fields.setdefault("title", "")  # required: intake says so, naming the field
    for name in ("title", "description", "requester", "service", "category", "impact",
                 "urgency", "priority_reason", "assignment_group", "assignee"):  # fmt: skip
        read(name, _text_of(name))
    read("priority", _priority)
    read("tags", lambda v: tuple(_list(v, "tags")))
    read("affected_ci_ids", lambda v: _cis(_list(v, "affected_ci_ids"), resolve_ci))
    read("custom_fields", _custom_fields)
    if errors:
        raise _RowErrors(errors)
    return NewTicket(**fields)


def _text_of(name: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise ValidationFailed("must be text", field=name)
        return value

    return convert


def _priority(value: Any) -> int:
    if isinstance(value, str) and value.strip().upper().removeprefix("P").isdigit():
        value = int(value.strip().upper().removeprefix("P"))
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise ValidationFailed(f"must be a priority from 1 to 5, not {value!r}", field="priority")
    return value


def _list(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(";") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationFailed("must be a list of texts (or ;-separated text)", field=name)
    if len(value) > LIMITS[name]:
        raise ValidationFailed(f"at most {LIMITS[name]}", field=name)
    return value


def _cis(refs: list[str], resolve_ci: ResolveCI) -> tuple[str, ...]:
    ids = []
    for index, ref in enumerate(refs):
        try:
            ids.append(resolve_ci(ref.strip()))
        except CmdbError as exc:
            reason = exc.reason if isinstance(exc, ValidationFailed) else str(exc)
            raise ValidationFailed(f"{ref}: {reason}", field=f"affected_ci_ids.{index}") from None
    return tuple(ids)


def _custom_fields(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValidationFailed("must map field names to values", field="custom_fields")
    return dict(value)
