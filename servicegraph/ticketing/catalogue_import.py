"""Reading a service catalogue file for the desk directory (``desk_directory``): YAML or
JSON, each service's ``ci_id`` resolved to a ``business_service`` CI of the graph, and the
file laid over the stored catalogue so that it is checked whole.

Errors name the file for what cannot be read, and ``catalogue.services[i]`` with the field
for what the graph refuses, as ``Catalogue.from_mapping`` names the records it refuses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from servicegraph.cmdb.errors import UnknownCI, ValidationErrors, ValidationFailed
from servicegraph.cmdb.ports import GraphStore
from servicegraph.ticketing.catalogue import Catalogue, Defaults

BUSINESS_SERVICE = "business_service"
CatalogueFormat = Literal["yaml", "json"]


def read_catalogue(
    source: Path | str, *, format: CatalogueFormat | None = None, name: str | None = None
) -> dict[str, Any]:
    """The mapping of a catalogue file (YAML or JSON by its suffix) or text (JSON when it
    starts with ``{``, else YAML); unreadable or malformed input names the file."""
    if isinstance(source, Path):
        label = name or str(source)
        try:
            text = source.read_bytes().decode("utf-8-sig")
        except OSError as exc:
            raise ValidationFailed(f"cannot read: {exc.strerror}", item=label) from None
        except UnicodeDecodeError as exc:
            raise ValidationFailed(f"not UTF-8 text: {exc}", item=label) from None
        suffix = source.suffix.lower().lstrip(".")
        fmt = format or ("json" if suffix == "json" else "yaml")
    else:
        label, text = name or "<text>", source.removeprefix("\ufeff")
        fmt = format or ("json" if text.lstrip().startswith("{") else "yaml")
    try:
        data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        msg = f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise ValidationFailed(msg, item=label) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or exc
        raise ValidationFailed(f"not valid YAML: {problem}{where}", item=label) from None
    except RecursionError:
        raise ValidationFailed("nested too deeply", item=label) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationFailed("the top level is a mapping of services and categories", item=label)
    return data


def _defaults_mapping(d: Defaults) -> dict[str, Any]:
    return {
        "group": d.group,
        "priority": d.priority,
        "impact": d.impact,
        "urgency": d.urgency,
        "custom_fields": dict(d.custom_fields),
    }


def with_stored(data: Mapping[str, Any], current: Catalogue) -> dict[str, Any]:
    """The file's services and categories first, then the stored ones it does not name,
    as one declaration: checked whole (a new category's parent may be stored already)."""
    combined = dict(data)
    services = data.get("services") or []
    categories = data.get("categories") or []
    if isinstance(services, list):
        named = {_text(s.get("id")) for s in services if isinstance(s, Mapping)}
        combined["services"] = services + [
            {
                "id": s.id,
                "name": s.name,
                "ci_id": s.ci_id,
                "owner_group": s.owner_group,
                "request_types": [t.value for t in s.request_types],
                "defaults": _defaults_mapping(s.defaults),
                "description": s.description,
                "active": s.active,
            }
            for s in current.services.values()
            if s.id not in named
        ]
    if isinstance(categories, list):
        named = {_text(c.get("path")) for c in categories if isinstance(c, Mapping)}
        combined["categories"] = categories + [
            {
                "path": c.path,
                "name": c.name,
                "owner_group": c.owner_group,
                "defaults": _defaults_mapping(c.defaults),
                "types": [t.value for t in c.types],
            }
            for c in current.categories.values()
            if c.path not in named
        ]
    return combined


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) else None


def resolve_service_cis(
    data: Mapping[str, Any], graph: GraphStore, resolve_ci: Callable[[str], str] | None
) -> dict[str, Any]:
    """``data`` with each service's ``ci_id`` the id of its business_service CI."""
    services = data.get("services")
    if not isinstance(services, list):
        return dict(data)  # from_mapping says what is wrong with it
    refs = {
        i: s["ci_id"].strip()
        for i, s in enumerate(services)
        if isinstance(s, Mapping) and isinstance(s.get("ci_id"), str) and s["ci_id"].strip()
    }
    found = graph.get_cis(set(refs.values()))
    errors: list[ValidationFailed] = []
    resolved = list(services)
    for i, ref in refs.items():
        item = f"catalogue.services[{i}]"
        try:
            ci_id = _business_service(ref, found, graph, resolve_ci)
        except ValidationFailed as exc:
            errors.append(ValidationFailed(exc.reason, item=item, field="ci_id"))
            continue
        resolved[i] = {**services[i], "ci_id": ci_id}
    if errors:
        raise ValidationErrors(errors)
    return {**data, "services": resolved}


def _business_service(
    ref: str,
    found: Mapping[str, Any],
    graph: GraphStore,
    resolve_ci: Callable[[str], str] | None,
) -> str:
    ci = found.get(ref)
    if ci is None and resolve_ci is not None:
        try:
            ci_id = resolve_ci(ref)
        except UnknownCI:
            ci_id = None
        ci = graph.get_cis([ci_id]).get(ci_id) if ci_id else None
    if ci is None:
        raise ValidationFailed(f"no configuration item '{ref}'")
    if ci.merged_into is not None:
        raise ValidationFailed(f"CI '{ref}' was merged into '{ci.merged_into}'; name that one")
    if ci.ci_class != BUSINESS_SERVICE:
        raise ValidationFailed(
            f"CI '{ci.name}' ({ci.id}) is a {ci.ci_class}, not a {BUSINESS_SERVICE}"
        )
    return str(ci.id)
