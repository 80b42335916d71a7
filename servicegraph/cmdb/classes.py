"""CI classes: names, inheritance and typed attribute schemas.

Built-in classes cover what a service desk needs on day one; more are declared in
configuration (``classes:`` in the settings file) without code, optionally extending a
built-in class so that they inherit its attributes and relationship rules.

Every attribute is optional: sources report partial facts (SNMP knows the serial, the ERP
knows the cost centre), and reconciliation merges them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic import ValidationError as PydanticValidationError

from servicegraph.cmdb.errors import ValidationFailed

# Attribute type names usable in configuration, mapped to Python types pydantic validates.
ATTRIBUTE_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "datetime": dt.datetime,
    "date": dt.date,
    "list[str]": list[str],
    "list[int]": list[int],
    "positive_int": Annotated[int, Field(ge=1)],
}

COMMON_ATTRIBUTES: dict[str, str] = {
    "description": "str",
    "owner": "str",
    "cost_centre": "str",
    "environment": "str",
    "asset_tag": "str",
    "notes": "str",
    # the desk's group that supports the CI: tickets and monitoring incidents on it are
    # routed there unless a routing rule says otherwise (servicegraph.ticketing.routing)
    "support_group": "str",
    # what the ERP knows of every asset it owns, whatever its class (erp sync)
    "purchase_date": "date",
    "purchase_value": "float",
    "currency": "str",
    "warranty_until": "date",
    "supplier": "str",
    "location": "str",  # as the ERP writes it; the LOCATED_IN relationship is the graph's
}

BUILTIN_CLASSES: dict[str, dict[str, Any]] = {
    "location": {
        "attributes": {
            "kind": "str",  # site, building, room, rack
            "address": "str",
            "city": "str",
            "country": "str",
            "rack_units": "int",
        },
    },
    "network_device": {
        "attributes": {
            "vendor": "str",
            "model": "str",
            "role": "str",  # core, distribution, access, router, firewall ...
            "os_version": "str",
            "firmware_revision": "str",
            "hardware_revision": "str",
            "sys_object_id": "str",
            "sys_descr": "str",
            "sys_contact": "str",
            "sys_location": "str",
            "management_ip": "str",
            "ip_addresses": "list[str]",
            "placeholder": "bool",  # known only from a neighbour's LLDP/CDP table
        },
    },
    "interface": {
        "attributes": {
            "if_index": "int",
            "if_name": "str",
            "if_alias": "str",
            "if_descr": "str",
            "if_type": "str",
            "speed_bps": "int",
            "mtu": "int",
            "mac": "str",
            "admin_status": "str",
            "oper_status": "str",
            "ip_addresses": "list[str]",
        },
    },
    "server": {
        "attributes": {
            "vendor": "str",
            "model": "str",
            "role": "str",  # e.g. hypervisor, database host
            "os": "str",
            "os_version": "str",
            "cpu_count": "int",
            "memory_mb": "int",
            "management_ip": "str",
            "ip_addresses": "list[str]",
            "rack_position": "int",
        },
    },
    "virtual_machine": {
        "attributes": {
            "os": "str",
            "os_version": "str",
            "cpu_count": "int",
            "memory_mb": "int",
            "hypervisor_type": "str",
            "ip_addresses": "list[str]",
        },
    },
    "application": {
        "attributes": {
            "version": "str",
            "vendor": "str",
            "port": "int",
            "url": "str",
        },
    },
    "database": {
        "attributes": {
            "engine": "str",
            "version": "str",
            "port": "int",
            "size_gb": "float",
        },
    },
    "cluster": {
        "attributes": {
            "cluster_type": "str",
            # The cluster stays up while at least this many MEMBER_OF members are up.
            "min_healthy": "positive_int",
        },
    },
    "business_service": {
        "attributes": {
            "criticality": "int",  # 1 (highest) .. 5
            "sla_tier": "str",
            "service_hours": "str",
        },
    },
}


@dataclass(frozen=True)
class CIClass:
    """One CI class: its name, its ancestors and the pydantic model of its attributes."""

    name: str
    parent: str | None
    attribute_types: Mapping[str, str]
    model: type[BaseModel] = field(repr=False, compare=False)
    lineage: tuple[str, ...] = ()

    def is_a(self, other: str) -> bool:
        """True when this class is ``other`` or inherits from it."""
        return other in self.lineage


class ClassRegistry:
    """The set of CI classes known to this deployment."""

    def __init__(self, classes: Mapping[str, CIClass]) -> None:
        self._classes = dict(classes)

    @classmethod
    def build(cls, extra: Mapping[str, Mapping[str, Any]] | None = None) -> ClassRegistry:
        """Built-in classes plus ``extra`` declared in configuration.

        ``extra`` maps a class name to ``{"extends": parent, "attributes": {name: type}}``;
        declaring a built-in name again adds attributes to it.
        """
        specs: dict[str, dict[str, Any]] = {
            name: {"extends": None, "attributes": dict(spec["attributes"])}
            for name, spec in BUILTIN_CLASSES.items()
        }
        for name, spec in (extra or {}).items():
            _check_class_name(name)
            if not isinstance(spec, Mapping):
                raise ValidationFailed("must be a mapping", item=f"class '{name}'")
            unknown = set(spec) - {"extends", "attributes"}
            if unknown:
                raise ValidationFailed(
                    f"unknown keys {sorted(unknown)}; use 'extends' and 'attributes'",
                    item=f"class '{name}'",
                )
            attributes = dict(spec.get("attributes") or {})
            if name in specs:
                specs[name]["attributes"].update(attributes)
            else:
                specs[name] = {"extends": spec.get("extends"), "attributes": attributes}
        built: dict[str, CIClass] = {}

        def resolve(name: str, chain: tuple[str, ...]) -> CIClass:
            if name in built:
                return built[name]
            if name in chain:
                raise ValidationFailed(
                    f"inheritance cycle {' -> '.join((*chain, name))}", item=f"class '{name}'"
                )
            spec = specs[name]
            parent_name = spec["extends"]
            attribute_types: dict[str, str] = dict(COMMON_ATTRIBUTES)
            lineage: tuple[str, ...] = (name,)
            if parent_name is not None:
                if parent_name not in specs:
                    raise ValidationFailed(
                        f"extends unknown class '{parent_name}'", item=f"class '{name}'"
                    )
                parent = resolve(parent_name, (*chain, name))
                attribute_types.update(parent.attribute_types)
                lineage = (name, *parent.lineage)
            for attr, type_name in spec["attributes"].items():
                if type_name not in ATTRIBUTE_TYPES:
                    raise ValidationFailed(
                        f"unknown attribute type '{type_name}'; use one of "
                        f"{', '.join(ATTRIBUTE_TYPES)}",
                        item=f"class '{name}'",
                        field=attr,
                    )
                attribute_types[attr] = type_name
            built[name] = CIClass(
                name=name,
                parent=parent_name,
                attribute_types=attribute_types,
                model=_attribute_model(name, attribute_types),
                lineage=lineage,
            )
            return built[name]

        for name in specs:
            resolve(name, ())
        return cls(built)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str, *, item: str | None = None) -> CIClass:
        try:
            return self._classes[name]
        except KeyError:
            raise ValidationFailed(
                f"unknown CI class '{name}'; known classes: {', '.join(self.names())}",
                item=item,
                field="class",
            ) from None

    def validate_attributes(
        self, class_name: str, attributes: Mapping[str, Any], *, item: str
    ) -> dict[str, Any]:
        """Return ``attributes`` coerced to the class's types, or raise naming the field.

        Only the attributes given are returned: a partial observation stays partial. A
        ``None`` value means "the source says this attribute is empty" and is kept.
        """
        ci_class = self.get(class_name, item=item)
        try:
            validated = ci_class.model.model_validate(attributes)
        except PydanticValidationError as exc:
            first = exc.errors()[0]
            location = ".".join(str(part) for part in first["loc"]) or None
            message = first["msg"]
            if first["type"] == "extra_forbidden":
                message = (
                    f"class '{class_name}' has no attribute '{location}'; declare it under "
                    f"classes.{class_name}.attributes in the settings file"
                )
            raise ValidationFailed(message, item=item, field=location) from None
        return validated.model_dump(exclude_unset=True, mode="json")


def _check_class_name(name: str) -> None:
    if not name or not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise ValidationFailed(
            "class names are letters, digits and underscores, starting with a letter",
            item=f"class '{name}'",
        )


def _attribute_model(class_name: str, attribute_types: Mapping[str, str]) -> type[BaseModel]:
    fields: dict[str, Any] = {
        attr: (ATTRIBUTE_TYPES[type_name] | None, None)
        for attr, type_name in attribute_types.items()
    }
    model: type[BaseModel] = create_model(
        f"{class_name}_attributes",
        __config__=ConfigDict(extra="forbid", str_strip_whitespace=True),
        **fields,
    )
    return model
