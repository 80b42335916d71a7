"""Relationship types, the classes they may join, and the way failure travels along them.

A relationship is directed, ``from -TYPE-> to``, read as a sentence: an application
``RUNS_ON`` a server, an interface is ``PART_OF`` a switch, an access switch is
``CONNECTED_TO`` its distribution switch (the ``from`` end is the side further from the
core, so the link is its uplink).

Impact flows from the needed side to the needing side. For most types the ``to`` end is
needed (``TO_FROM``: when the server fails, the application on it fails). ``MEMBER_OF`` is
the other way round: members are needed by their cluster (``FROM_TO``). ``LOCATED_IN``
carries no impact.

Redundancy: the providers a CI needs are all required, unless they share a redundancy
group. The relationships of one CI whose ``redundancy_group`` attribute has the same value
form a group that survives while at least ``min_healthy`` (default 1) of its providers are
up: two uplinks in group ``uplink`` survive the loss of one. A cluster's ``MEMBER_OF``
relationships form one implicit group whose ``min_healthy`` is the cluster's attribute.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servicegraph.cmdb.classes import ClassRegistry
from servicegraph.cmdb.errors import ValidationFailed


class ImpactDirection(enum.Enum):
    TO_FROM = "to_from"  # the `to` end is needed by the `from` end
    FROM_TO = "from_to"  # the `from` end is needed by the `to` end
    NONE = "none"


REDUNDANCY_GROUP = "redundancy_group"
MIN_HEALTHY = "min_healthy"
MEMBERS_GROUP = "members"

ANY = "*"


@dataclass(frozen=True)
class RelationshipType:
    name: str
    impact: ImpactDirection
    # (from class, to class) pairs; a class matches its subclasses; "*" matches any class.
    allowed: tuple[tuple[str, str], ...]
    description: str = ""


_DEVICES = ("network_device", "server")
_COMPUTE = ("server", "virtual_machine", "cluster")
_SOFTWARE = ("application", "database")
_DEPENDABLE = (
    "business_service",
    "application",
    "database",
    "server",
    "virtual_machine",
    "cluster",
    "network_device",
    "interface",
)


def _pairs(froms: tuple[str, ...], tos: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((a, b) for a in froms for b in tos)


BUILTIN_TYPES: tuple[RelationshipType, ...] = (
    RelationshipType(
        "DEPENDS_ON",
        ImpactDirection.TO_FROM,
        _pairs(_DEPENDABLE, _DEPENDABLE),
        "the from end needs the to end (service on application, application on database)",
    ),
    RelationshipType(
        "RUNS_ON",
        ImpactDirection.TO_FROM,
        _pairs(_SOFTWARE, _COMPUTE),
        "software runs on a server, virtual machine or cluster",
    ),
    RelationshipType(
        "HOSTED_ON",
        ImpactDirection.TO_FROM,
        _pairs(("virtual_machine",), ("server", "cluster")),
        "a virtual machine is hosted on a hypervisor or a hypervisor cluster",
    ),
    RelationshipType(
        "CONNECTED_TO",
        ImpactDirection.TO_FROM,
        _pairs(("interface", *_DEVICES), ("interface", *_DEVICES)),
        "physical link; the from end is the one further from the core (its uplink)",
    ),
    RelationshipType(
        "PART_OF",
        ImpactDirection.TO_FROM,
        (
            *_pairs(("interface",), (*_DEVICES, "virtual_machine")),
            ("network_device", "network_device"),
        ),
        "a component of a larger item: an interface of a switch, a module of a chassis",
    ),
    RelationshipType(
        "MEMBER_OF",
        ImpactDirection.FROM_TO,
        _pairs((*_DEVICES, "virtual_machine", *_SOFTWARE), ("cluster",)),
        "member of a cluster; the cluster survives while min_healthy members are up",
    ),
    RelationshipType(
        "LOCATED_IN",
        ImpactDirection.NONE,
        _pairs((*_DEVICES, "location", "cluster"), ("location",)),
        "physical location; carries no impact",
    ),
)


class RelationshipRules:
    """Relationship types known to this deployment and the class pairs each allows."""

    def __init__(self, classes: ClassRegistry, types: Mapping[str, RelationshipType]) -> None:
        self._classes = classes
        self._types = dict(types)
        self._allowed_cache: dict[tuple[str, str, str], bool] = {}

    @classmethod
    def build(
        cls,
        classes: ClassRegistry,
        extra_pairs: Mapping[str, list[list[str]]] | None = None,
    ) -> RelationshipRules:
        """Built-in types plus extra allowed ``[from_class, to_class]`` pairs from settings."""
        types = {t.name: t for t in BUILTIN_TYPES}
        for type_name, pairs in (extra_pairs or {}).items():
            if type_name not in types:
                raise ValidationFailed(
                    f"unknown relationship type '{type_name}'; known: {', '.join(types)}",
                    item="relationship_rules",
                )
            added: list[tuple[str, str]] = []
            for pair in pairs:
                if len(pair) != 2:
                    raise ValidationFailed(
                        "each allowed pair is [from_class, to_class]",
                        item=f"relationship_rules.{type_name}",
                    )
                for class_name in pair:
                    if class_name != ANY:
                        classes.get(class_name, item=f"relationship_rules.{type_name}")
                added.append((pair[0], pair[1]))
            base = types[type_name]
            types[type_name] = RelationshipType(
                base.name, base.impact, (*base.allowed, *added), base.description
            )
        return cls(classes, types)

    def names(self) -> list[str]:
        return sorted(self._types)

    def get(self, name: str, *, item: str | None = None) -> RelationshipType:
        try:
            return self._types[name]
        except KeyError:
            raise ValidationFailed(
                f"unknown relationship type '{name}'; known types: {', '.join(self.names())}",
                item=item,
                field="type",
            ) from None

    def check(self, type_name: str, from_class: str, to_class: str, *, item: str) -> None:
        """Raise unless ``from_class -type_name-> to_class`` is allowed."""
        rel_type = self.get(type_name, item=item)
        key = (type_name, from_class, to_class)
        allowed = self._allowed_cache.get(key)
        if allowed is None:
            from_lineage = self._classes.get(from_class).lineage
            to_lineage = self._classes.get(to_class).lineage
            allowed = any(
                (a == ANY or a in from_lineage) and (b == ANY or b in to_lineage)
                for a, b in rel_type.allowed
            )
            self._allowed_cache[key] = allowed
        if not allowed:
            raise ValidationFailed(
                f"a {from_class} cannot be {type_name} a {to_class} "
                f"(declare the pair under relationship_rules.{type_name} to allow it)",
                item=item,
                field="type",
            )

    @staticmethod
    def validate_attributes(attributes: Mapping[str, Any], *, item: str) -> dict[str, Any]:
        """Check the attributes with a meaning for impact; others pass through as given."""
        result = dict(attributes)
        group = result.get(REDUNDANCY_GROUP)
        if group is not None and (not isinstance(group, str) or not group.strip()):
            raise ValidationFailed("must be a non-empty string", item=item, field=REDUNDANCY_GROUP)
        if MIN_HEALTHY in result and result[MIN_HEALTHY] is not None:
            value = result[MIN_HEALTHY]
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationFailed(
                    "must be an integer of at least 1", item=item, field=MIN_HEALTHY
                )
            if group is None:
                raise ValidationFailed(
                    f"only meaningful with '{REDUNDANCY_GROUP}'", item=item, field=MIN_HEALTHY
                )
            result[MIN_HEALTHY] = value
        for key, value in result.items():
            if isinstance(value, dict):
                raise ValidationFailed(
                    "relationship attributes are scalars or lists", item=item, field=key
                )
        return result
