"""Importing the desk's people from CSV and JSON: agents, groups, organisations, contacts.

CSV: a header row naming the columns (a file holds one kind, named by the caller); the
multi-valued columns ``groups``, ``roles``, ``members`` and ``domains`` separate their
values with ``;`` or ``|``; booleans are true/false, yes/no or 1/0; UTF-8 with or without
a byte-order mark (as Excel writes it). JSON: a list of objects of one kind, or an object
keyed by kind: ``{"agents": [...], "groups": [...], "organisations": [...],
"contacts": [...]}``.

Nothing is partial: every file of an import is read and every reference checked (a group
member must be an agent of this import or of the existing directory, a contact's
organisation likewise) before anything is returned; otherwise ``ValidationErrors`` lists
every bad row as ``ValidationFailed(item="agents.csv:7", field="email")``. References are
checked once every row parses, so that a row refused for its email is not reported again
as "no agent" by each group that lists it. The records' own checks live in ``people``;
this module maps rows to them and adds the file and line.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.ticketing.people import Agent, Contact, Directory, Group, Organisation

Kind = Literal["agents", "groups", "organisations", "contacts"]
Format = Literal["csv", "json"]
Record = Agent | Group | Organisation | Contact
KINDS: tuple[Kind, ...] = ("organisations", "agents", "groups", "contacts")
RECORD_TYPES: dict[str, type[Record]] = {
    "agents": Agent,
    "groups": Group,
    "organisations": Organisation,
    "contacts": Contact,
}
FIELDS: dict[str, tuple[str, ...]] = {
    "agents": ("login", "name", "email", "groups", "roles", "active", "phone"),
    "groups": ("id", "name", "email", "manager", "members", "description"),
    "organisations": ("id", "name", "domains", "notes"),
    "contacts": ("id", "name", "email", "organisation", "phone", "vip", "active"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "agents": ("login", "name", "email"),
    "groups": ("id", "name"),
    "organisations": ("id", "name"),
    "contacts": ("id", "name"),
}
LIST_FIELDS = frozenset({"groups", "roles", "members", "domains"})
BOOL_FIELDS = frozenset({"active", "vip"})
LIST_SEPARATOR = re.compile(r"[;|]")
TRUE = frozenset({"true", "yes", "y", "1"})
FALSE = frozenset({"false", "no", "n", "0"})


def _key(record: Record) -> str:
    return record.login if isinstance(record, Agent) else record.id


@dataclass(frozen=True)
class PeopleImport:
    """The records of one import, each with where it came from (``file:line``)."""

    agents: tuple[Agent, ...] = ()
    groups: tuple[Group, ...] = ()
    organisations: tuple[Organisation, ...] = ()
    contacts: tuple[Contact, ...] = ()
    origins: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (kind, key)

    def records(self) -> list[tuple[str, Record]]:
        """Every record with its kind, in dependency order (organisations, agents, ...)."""
        return [(kind, r) for kind in KINDS for r in getattr(self, kind)]

    def origin(self, kind: str, record: Record) -> str:
        return self.origins.get((kind, _key(record)), f"{kind[:-1]} '{_key(record)}'")

    def apply_to(self, existing: Directory | None = None) -> Directory:
        """The directory with this import's records added or replaced (``Directory.merged``)."""
        return (existing or Directory()).merged(
            agents=self.agents,
            groups=self.groups,
            organisations=self.organisations,
            contacts=self.contacts,
        )


def parse_people(
    kind: Kind | None,
    source: Path | str,
    *,
    format: Format | None = None,
    name: str | None = None,
    existing: Directory | None = None,
) -> PeopleImport:
    """One file (a ``Path``) or text (a ``str``, named ``name`` in errors). ``kind`` is
    required for CSV and for a JSON list; ``format`` defaults to the file's suffix, or for
    text to JSON when it starts with ``[`` or ``{``. Raises ValidationErrors."""
    return parse_people_files([(kind, source)], format=format, name=name, existing=existing)


def parse_people_files(
    sources: Sequence[tuple[Kind | None, Path | str]],
    *,
    format: Format | None = None,
    name: str | None = None,
    existing: Directory | None = None,
) -> PeopleImport:
    """Several files as one import: references may cross files (agents.csv and
    groups.csv). Raises ValidationErrors listing every problem of every file."""
    errors: list[ValidationFailed] = []
    rows: list[tuple[str, str, Record]] = []  # (kind, item, record)
    for kind, source in sources:
        try:
            rows.extend(_read(kind, source, format, name, errors))
        except ValidationFailed as exc:
            errors.append(exc)
    if errors:
        raise ValidationErrors(errors)
    batch = _collect(rows, errors)
    _check_references(batch, existing or Directory(), errors)
    if errors:
        raise ValidationErrors(errors)
    return batch


def _read(
    kind: Kind | None,
    source: Path | str,
    format: Format | None,
    name: str | None,
    errors: list[ValidationFailed],
) -> list[tuple[str, str, Record]]:
    if kind is not None and kind not in KINDS:
        raise ValidationFailed(f"'{kind}' is not one of {', '.join(KINDS)}", field="kind")
    if isinstance(source, Path):
        label = name or str(source)
        try:
            text = source.read_bytes().decode("utf-8-sig")
        except OSError as exc:
            raise ValidationFailed(f"cannot read: {exc.strerror}", item=label) from None
        except UnicodeDecodeError as exc:
            raise ValidationFailed(f"not UTF-8 text: {exc}", item=label) from None
        suffix = source.suffix.lower().lstrip(".")
    else:
        label, text, suffix = name or "<text>", source.removeprefix("\ufeff"), ""
    fmt = format or suffix or ("json" if text.lstrip()[:1] in ("[", "{") else "csv")
    if fmt == "csv":
        if kind is None:
            raise ValidationFailed("say which kind of record a CSV file holds", item=label)
        return _read_csv(kind, text, label, errors)
    if fmt == "json":
        return _read_json(kind, text, label, errors)
    raise ValidationFailed(f"unknown format '{fmt}'; use csv or json", item=label)


def _read_csv(
    kind: Kind, text: str, label: str, errors: list[ValidationFailed]
) -> list[tuple[str, str, Record]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as exc:
        raise ValidationFailed(f"not valid CSV: {exc}", item=f"{label}:1") from None
    if not header:
        raise ValidationFailed("empty file: the first line must name the columns", item=label)
    for column in header:
        if column not in FIELDS[kind]:
            allowed = ", ".join(FIELDS[kind])
            msg = f"unknown column; {kind} have {allowed}"
            raise ValidationFailed(msg, item=f"{label}:1", field=column or "(empty)")
        if header.count(column) > 1:
            raise ValidationFailed("column appears twice", item=f"{label}:1", field=column)
    rows: list[tuple[str, str, Record]] = []
    try:
        for cells in reader:
            item = f"{label}:{reader.line_num}"
            if not any(c.strip() for c in cells):
                continue  # a blank line
            if len(cells) > len(header):
                msg = f"has {len(cells)} cells but the header names {len(header)} columns"
                errors.append(ValidationFailed(msg, item=item))
                continue
            values = {c: v.strip() for c, v in zip(header, cells, strict=False) if v.strip()}
            try:
                rows.append((kind, item, _record(kind, values)))
            except ValidationFailed as exc:
                errors.append(ValidationFailed(exc.reason, item=item, field=exc.field))
    except csv.Error as exc:
        errors.append(ValidationFailed(f"not valid CSV: {exc}", item=f"{label}:{reader.line_num}"))
    return rows


def _read_json(
    kind: Kind | None, text: str, label: str, errors: list[ValidationFailed]
) -> list[tuple[str, str, Record]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise ValidationFailed(msg, item=label) from None
    except RecursionError:
        raise ValidationFailed("the JSON is nested too deeply", item=label) from None
    if isinstance(document, list):
        if kind is None:
            raise ValidationFailed("say which kind of record a JSON list holds", item=label)
        sections: Mapping[str, Any] = {kind: document}
    elif isinstance(document, Mapping):
        sections = document
        allowed = KINDS if kind is None else (kind,)
        for key in sections:
            if key not in allowed:
                msg = f"the top-level keys are {', '.join(allowed)}"
                raise ValidationFailed(msg, item=label, field=str(key))
    else:
        raise ValidationFailed("the top level is a list or an object of lists", item=label)
    rows: list[tuple[str, str, Record]] = []
    for section, records in sections.items():
        if not isinstance(records, list):
            raise ValidationFailed("must be a list", item=label, field=section)
        for index, raw in enumerate(records):
            item = f"{label}: {section}[{index}]"
            try:
                rows.append((section, item, _record(section, _json_values(section, raw))))
            except ValidationFailed as exc:
                errors.append(ValidationFailed(exc.reason, item=item, field=exc.field))
    return rows


def _json_values(kind: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValidationFailed("each record is an object")
    for key in raw:
        if key not in FIELDS[kind]:
            raise ValidationFailed(
                f"unknown field; {kind} have {', '.join(FIELDS[kind])}", field=key
            )
    return {k: v for k, v in raw.items() if v is not None and v != ""}


def _record(kind: str, values: Mapping[str, Any]) -> Record:
    """A record from one row's values (CSV text, or JSON values); missing = default."""
    for name in REQUIRED[kind]:
        if name not in values:
            raise ValidationFailed("is required", field=name)
    fields: dict[str, Any] = {}
    for name, value in values.items():
        if name in LIST_FIELDS and not isinstance(value, str | list):
            raise ValidationFailed("must be a list", field=name)
        if name in LIST_FIELDS and isinstance(value, str):
            value = tuple(v.strip() for v in LIST_SEPARATOR.split(value) if v.strip())
        elif name in LIST_FIELDS and isinstance(value, list):
            value = tuple(value)
        elif name in BOOL_FIELDS and isinstance(value, str):
            word = value.strip().lower()
            if word not in TRUE | FALSE:
                raise ValidationFailed(f"'{value}' is not true or false", field=name)
            value = word in TRUE
        if name == "roles" and not value:
            continue  # the default: agent
        fields[name] = value
    return RECORD_TYPES[kind](**fields)


def _collect(rows: list[tuple[str, str, Record]], errors: list[ValidationFailed]) -> PeopleImport:
    by_kind: dict[str, list[Record]] = {kind: [] for kind in KINDS}
    origins: dict[tuple[str, str], str] = {}
    for kind, item, record in rows:
        key = (kind, _key(record))
        if key in origins:
            field = "login" if kind == "agents" else "id"
            errors.append(
                ValidationFailed(f"appears twice (first at {origins[key]})", item=item, field=field)
            )
            continue
        origins[key] = item
        by_kind[kind].append(record)
    return PeopleImport(
        agents=tuple(r for r in by_kind["agents"] if isinstance(r, Agent)),
        groups=tuple(r for r in by_kind["groups"] if isinstance(r, Group)),
        organisations=tuple(r for r in by_kind["organisations"] if isinstance(r, Organisation)),
        contacts=tuple(r for r in by_kind["contacts"] if isinstance(r, Contact)),
        origins=origins,
    )


def _check_references(
    batch: PeopleImport, existing: Directory, errors: list[ValidationFailed]
) -> None:
    agents = set(existing.agents) | {a.login for a in batch.agents}
    groups = set(existing.groups) | {g.id for g in batch.groups}
    orgs = set(existing.organisations) | {o.id for o in batch.organisations}

    def refs(kind: str, record: Record, name: str, values: Sequence[str], known: set[str]) -> None:
        what = {"groups": "group", "organisation": "organisation"}.get(name, "agent")
        for value in values:
            if value not in known:
                item = batch.origin(kind, record)
                msg = f"no {what} '{value}' in this import or the directory"
                errors.append(ValidationFailed(msg, item=item, field=name))

    for agent in batch.agents:
        refs("agents", agent, "groups", agent.groups, groups)
    for group in batch.groups:
        refs("groups", group, "members", group.members, agents)
        refs("groups", group, "manager", [group.manager] if group.manager else [], agents)
    for contact in batch.contacts:
        org = [contact.organisation] if contact.organisation else []
        refs("contacts", contact, "organisation", org, orgs)
    _check_unique(batch, existing, errors)


def _check_unique(batch: PeopleImport, existing: Directory, errors: list[ValidationFailed]) -> None:
    """Contact emails and organisation domains are lookup keys: one owner each."""
    replaced = {c.id for c in batch.contacts}
    emails = {
        c.email.casefold(): c.id
        for c in existing.contacts.values()
        if c.email and c.id not in replaced
    }
    for contact in batch.contacts:
        if contact.email:
            owner = emails.get(contact.email.casefold())
            if owner is not None and owner != contact.id:
                msg = f"contact '{owner}' has this email"
                errors.append(
                    ValidationFailed(msg, item=batch.origin("contacts", contact), field="email")
                )
            emails[contact.email.casefold()] = contact.id
    replaced = {o.id for o in batch.organisations}
    domains = {
        d: o.id for o in existing.organisations.values() if o.id not in replaced for d in o.domains
    }
    for org in batch.organisations:
        for domain in org.domains:
            owner = domains.get(domain)
            if owner is not None and owner != org.id:
                msg = f"domain '{domain}' belongs to organisation '{owner}'"
                item = batch.origin("organisations", org)
                errors.append(ValidationFailed(msg, item=item, field="domains"))
            domains[domain] = org.id
