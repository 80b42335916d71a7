"""The service catalogue: what the desk supports, and the categories tickets are filed under.

A *service* is what a customer asks about ("E-mail", "VPN access"), optionally backed by a
``business_service`` CI of the graph so impact analysis and the desk speak of the same
thing; it says which ticket types it takes, who owns it and the defaults a ticket gets.
*Categories* form a tree named by paths (``network``, ``network/vpn``): the path is the
identity, so a cycle cannot be written, and a child inherits from its parent whatever it
does not set itself (GLPI's ITIL categories, ServiceNow's category/subcategory).

Defaults merge from the service, then down the category chain: the nearest value wins.
Checking that a service's ``ci_id`` is a ``business_service`` CI needs the graph and is
left to the service that holds both.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.ticketing.model import TicketType
from servicegraph.ticketing.people import check_key

LEVELS = ("high", "medium", "low")  # impact and urgency, as the priority matrix names them
PATH_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)*$")
ALL_TYPES = tuple(TicketType)


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # normalising a frozen dataclass in __post_init__


def check_priority(value: Any, field: str) -> int:
    """Priority 1 (most urgent) to 5, as on incidents."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise ValidationFailed(f"'{value}' is not a priority from 1 (highest) to 5", field=field)
    return value


def ticket_types(value: Any, field: str) -> tuple[TicketType, ...]:
    """One ticket type or a list of them, by their values (``incident``, ...)."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list | tuple):
        raise ValidationFailed("must be a ticket type or a list of them", field=field)
    found: list[TicketType] = []
    for raw in values:
        try:
            found.append(TicketType(str(raw).strip().lower()))
        except ValueError:
            allowed = ", ".join(t.value for t in TicketType)
            raise ValidationFailed(f"'{raw}' is not one of {allowed}", field=field) from None
    return tuple(dict.fromkeys(found))


def check_path(value: Any, field: str = "path") -> str:
    if not isinstance(value, str) or not PATH_PATTERN.match(value.strip()):
        raise ValidationFailed(
            f"'{value}' is not a category path (lower-case segments joined by '/')", field=field
        )
    return value.strip()


@dataclass(frozen=True, slots=True)
class Defaults:
    """What a new ticket gets unless the requester or a routing rule says otherwise."""

    group: str | None = None
    priority: int | None = None
    impact: str | None = None
    urgency: str | None = None
    custom_fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.group is not None:
            _set(self, "group", check_key(self.group, "defaults.group"))
        if self.priority is not None:
            check_priority(self.priority, "defaults.priority")
        for name in ("impact", "urgency"):
            value = getattr(self, name)
            if value is not None and value not in LEVELS:
                raise ValidationFailed(
                    f"'{value}' is not one of {', '.join(LEVELS)}", field=f"defaults.{name}"
                )
        if not isinstance(self.custom_fields, Mapping) or not all(
            isinstance(k, str) and k for k in self.custom_fields
        ):
            raise ValidationFailed("must map field names to values", field="defaults.custom_fields")
        _set(self, "custom_fields", MappingProxyType(dict(self.custom_fields)))

    def over(self, base: Defaults) -> Defaults:
        """These defaults laid over ``base``: each value set here wins, custom fields by key."""
        return Defaults(
            group=self.group if self.group is not None else base.group,
            priority=self.priority if self.priority is not None else base.priority,
            impact=self.impact if self.impact is not None else base.impact,
            urgency=self.urgency if self.urgency is not None else base.urgency,
            custom_fields={**base.custom_fields, **self.custom_fields},
        )


@dataclass(frozen=True, slots=True)
class Service:
    """An entry of the catalogue; inactive services stay for old tickets but take no new."""

    id: str
    name: str
    ci_id: str | None = None  # the business_service CI it stands for
    owner_group: str | None = None
    request_types: tuple[TicketType, ...] = ALL_TYPES
    defaults: Defaults = field(default_factory=Defaults)
    description: str = ""
    active: bool = True

    def __post_init__(self) -> None:
        _set(self, "id", check_key(self.id, "id"))
        _name(self)
        if self.ci_id is not None:
            _set(self, "ci_id", check_key(self.ci_id, "ci_id"))
        if self.owner_group is not None:
            _set(self, "owner_group", check_key(self.owner_group, "owner_group"))
        types = ticket_types(self.request_types, "request_types")
        if not types:
            raise ValidationFailed("must name at least one ticket type", field="request_types")
        _set(self, "request_types", types)
        if not isinstance(self.description, str):
            raise ValidationFailed("must be text", field="description")
        if not isinstance(self.active, bool):
            raise ValidationFailed("must be true or false", field="active")


@dataclass(frozen=True, slots=True)
class Category:
    """A node of the category tree; ``types`` empty means "as the parent" (root: all)."""

    path: str
    name: str
    owner_group: str | None = None
    defaults: Defaults = field(default_factory=Defaults)
    types: tuple[TicketType, ...] = ()

    def __post_init__(self) -> None:
        _set(self, "path", check_path(self.path))
        _name(self)
        if self.owner_group is not None:
            _set(self, "owner_group", check_key(self.owner_group, "owner_group"))
        _set(self, "types", ticket_types(self.types, "types"))

    @property
    def parent(self) -> str | None:
        return self.path.rpartition("/")[0] or None


def _name(record: Service | Category) -> None:
    name = record.name.strip() if isinstance(record.name, str) else ""
    if not name:
        raise ValidationFailed("is required", field="name")
    _set(record, "name", name)


@dataclass(frozen=True)
class Catalogue:
    """Services by id and categories by path. Build it with ``build`` or ``from_mapping``."""

    services: Mapping[str, Service] = field(default_factory=dict)
    categories: Mapping[str, Category] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        services: Iterable[Service],
        categories: Iterable[Category] = (),
        *,
        groups: Collection[str] | None = None,
    ) -> Catalogue:
        """Check ids, parents, type subsets and (given ``groups``) group names; raises
        ValidationErrors listing every problem."""
        errors: list[ValidationFailed] = []
        by_id: dict[str, Service] = {}
        by_ci: dict[str, str] = {}
        for s in services:
            item = f"service '{s.id}'"
            if s.id in by_id:
                errors.append(ValidationFailed("appears twice", item=item, field="id"))
            if s.ci_id is not None and by_ci.setdefault(s.ci_id, s.id) != s.id:
                msg = f"service '{by_ci[s.ci_id]}' stands for this CI already"
                errors.append(ValidationFailed(msg, item=item, field="ci_id"))
            by_id[s.id] = s
            _check_groups(s.owner_group, s.defaults, groups, item, errors)
        by_path: dict[str, Category] = {}
        for c in categories:
            if c.path in by_path:
                errors.append(
                    ValidationFailed("appears twice", item=f"category '{c.path}'", field="path")
                )
            by_path[c.path] = c
        for c in sorted(by_path.values(), key=lambda c: c.path):
            item = f"category '{c.path}'"
            if c.parent is not None and c.parent not in by_path:
                msg = f"its parent category '{c.parent}' is not declared"
                errors.append(ValidationFailed(msg, item=item, field="path"))
            _check_groups(c.owner_group, c.defaults, groups, item, errors)
        if errors:
            raise ValidationErrors(errors)
        catalogue = cls(services=MappingProxyType(by_id), categories=MappingProxyType(by_path))
        catalogue._check_type_subsets()
        return catalogue

    def _check_type_subsets(self) -> None:
        errors = []
        for c in self.categories.values():
            parent_types = self.types_for(c.parent) if c.parent else ALL_TYPES
            extra = [t.value for t in c.types if t not in parent_types]
            if extra:
                errors.append(
                    ValidationFailed(
                        f"{', '.join(extra)} not allowed by its parent '{c.parent}'",
                        item=f"category '{c.path}'",
                        field="types",
                    )
                )
        if errors:
            raise ValidationErrors(errors)

    @classmethod
    def from_mapping(cls, data: Any, *, groups: Collection[str] | None = None) -> Catalogue:
        """From configuration: ``{"services": [...], "categories": [...]}`` with the records'
        field names; ``defaults`` is a mapping of group, priority, impact, urgency and
        custom_fields."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ValidationFailed("must be a mapping of services and categories", item="catalogue")
        unknown = set(data) - {"services", "categories"}
        if unknown:
            raise ValidationFailed(
                "the keys are services and categories", item="catalogue", field=min(unknown)
            )
        errors: list[ValidationFailed] = []
        services = _records(data.get("services"), "services", _service, errors)
        categories = _records(data.get("categories"), "categories", _category, errors)
        if errors:
            raise ValidationErrors(errors)
        return cls.build(services, categories, groups=groups)

    def service(
        self,
        service_id: str,
        *,
        field: str = "service",
        ticket_type: TicketType | None = None,
        active_only: bool = True,
    ) -> Service:
        """The service a ticket names; with ``ticket_type``, one that takes that type."""
        found = self.services.get(service_id)
        if found is None:
            raise ValidationFailed(f"no service '{service_id}' in the catalogue", field=field)
        if active_only and not found.active:
            raise ValidationFailed(f"service '{service_id}' is retired", field=field)
        if ticket_type is not None and ticket_type not in found.request_types:
            takes = ", ".join(t.value for t in found.request_types)
            raise ValidationFailed(
                f"service '{service_id}' takes no {ticket_type.value} tickets (it takes {takes})",
                field=field,
            )
        return found

    def category(
        self, path: str, *, field: str = "category", ticket_type: TicketType | None = None
    ) -> Category:
        """The category a ticket is filed under; with ``ticket_type``, one that applies."""
        found = self.categories.get(path)
        if found is None:
            raise ValidationFailed(f"no category '{path}'", field=field)
        if ticket_type is not None and ticket_type not in self.types_for(path):
            raise ValidationFailed(
                f"category '{path}' does not apply to {ticket_type.value} tickets", field=field
            )
        return found

    def chain(self, path: str) -> tuple[Category, ...]:
        """The category and its ancestors, root first."""
        parts = path.split("/")
        return tuple(self.category("/".join(parts[: i + 1])) for i in range(len(parts)))

    def children(self, path: str | None) -> tuple[Category, ...]:
        """The direct subcategories of ``path`` (None: the roots), by path."""
        return tuple(c for _, c in sorted(self.categories.items()) if c.parent == path)

    def types_for(self, path: str) -> tuple[TicketType, ...]:
        """The ticket types a category applies to: its own, else its nearest ancestor's."""
        for c in reversed(self.chain(path)):
            if c.types:
                return c.types
        return ALL_TYPES

    def defaults_for(self, service_id: str | None, category_path: str | None) -> Defaults:
        """The service's defaults with the category chain laid over them, nearest last."""
        merged = self.service(service_id, active_only=False).defaults if service_id else Defaults()
        for c in self.chain(category_path) if category_path else ():
            merged = c.defaults.over(merged)
        return merged

    def owner_group(self, service_id: str | None, category_path: str | None) -> str | None:
        """Who owns the ticket's subject: the nearest category's owner, else the service's."""
        for c in reversed(self.chain(category_path)) if category_path else ():
            if c.owner_group is not None:
                return c.owner_group
        return self.service(service_id, active_only=False).owner_group if service_id else None

    def service_for_ci(self, ci_id: str) -> Service | None:
        """The service a business_service CI stands for (to file monitoring tickets)."""
        return next((s for s in self.services.values() if s.ci_id == ci_id), None)


def _check_groups(
    owner: str | None,
    defaults: Defaults,
    groups: Collection[str] | None,
    item: str,
    errors: list[ValidationFailed],
) -> None:
    if groups is None:
        return
    for name, value in (("owner_group", owner), ("defaults.group", defaults.group)):
        if value is not None and value not in groups:
            errors.append(ValidationFailed(f"no group '{value}'", item=item, field=name))


SERVICE_KEYS = {"id", "name", "ci_id", "owner_group", "request_types", "defaults"}
SERVICE_KEYS |= {"description", "active"}
CATEGORY_KEYS = {"path", "name", "owner_group", "defaults", "types"}
DEFAULTS_KEYS = {"group", "priority", "impact", "urgency", "custom_fields"}


def _records(value: Any, section: str, parse: Any, errors: list[ValidationFailed]) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append(ValidationFailed("must be a list", item="catalogue", field=section))
        return []
    parsed = []
    for index, record in enumerate(value):
        item = f"catalogue.{section}[{index}]"
        try:
            if not isinstance(record, Mapping):
                raise ValidationFailed("must be a mapping")
            parsed.append(parse(record))
        except ValidationFailed as exc:
            errors.append(ValidationFailed(exc.reason, item=item, field=exc.field))
    return parsed


def _known(record: Mapping[str, Any], keys: set[str], prefix: str = "") -> None:
    unknown = set(record) - keys
    if unknown:
        raise ValidationFailed(
            f"unknown key; use {', '.join(sorted(keys))}", field=prefix + str(min(unknown))
        )


def _defaults(value: Any) -> Defaults:
    if value is None:
        return Defaults()
    if not isinstance(value, Mapping):
        raise ValidationFailed("must be a mapping", field="defaults")
    _known(value, DEFAULTS_KEYS, "defaults.")
    return Defaults(**value)


def _service(record: Mapping[str, Any]) -> Service:
    _known(record, SERVICE_KEYS)
    fields = dict(record)
    fields["defaults"] = _defaults(record.get("defaults"))
    if "request_types" in fields:
        fields["request_types"] = ticket_types(fields["request_types"], "request_types")
    fields.setdefault("id", "")
    fields.setdefault("name", "")
    return Service(**fields)


def _category(record: Mapping[str, Any]) -> Category:
    _known(record, CATEGORY_KEYS)
    fields = dict(record)
    fields["defaults"] = _defaults(record.get("defaults"))
    fields.setdefault("path", "")
    fields.setdefault("name", "")
    return Category(**fields)
