"""Relationship types: which classes they may join, their impact direction, attributes."""

from __future__ import annotations

import pytest

from servicegraph.cmdb.classes import ClassRegistry
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.relationships import ImpactDirection, RelationshipRules


@pytest.fixture(scope="module")
def classes() -> ClassRegistry:
    return ClassRegistry.build(
        {"load_balancer": {"extends": "network_device"}, "toaster": {"attributes": {}}}
    )


@pytest.fixture(scope="module")
def rules(classes: ClassRegistry) -> RelationshipRules:
    return RelationshipRules.build(classes)


@pytest.mark.parametrize(
    ("rel_type", "from_class", "to_class"),
    [
        ("DEPENDS_ON", "business_service", "application"),
        ("DEPENDS_ON", "application", "database"),
        ("RUNS_ON", "application", "server"),
        ("RUNS_ON", "database", "cluster"),
        ("HOSTED_ON", "virtual_machine", "server"),
        ("CONNECTED_TO", "network_device", "network_device"),
        ("CONNECTED_TO", "server", "interface"),
        ("PART_OF", "interface", "network_device"),
        ("MEMBER_OF", "server", "cluster"),
        ("LOCATED_IN", "server", "location"),
        # a declared subclass inherits its parent's pairs
        ("CONNECTED_TO", "load_balancer", "network_device"),
        ("PART_OF", "interface", "load_balancer"),
    ],
)
def test_allowed_pairs(
    rules: RelationshipRules, rel_type: str, from_class: str, to_class: str
) -> None:
    rules.check(rel_type, from_class, to_class, item="r")


@pytest.mark.parametrize(
    ("rel_type", "from_class", "to_class"),
    [
        ("RUNS_ON", "server", "application"),  # wrong way round
        ("HOSTED_ON", "server", "virtual_machine"),
        ("MEMBER_OF", "cluster", "server"),
        ("LOCATED_IN", "location", "server"),
        ("DEPENDS_ON", "location", "server"),
        ("CONNECTED_TO", "application", "server"),
        ("PART_OF", "toaster", "network_device"),
    ],
)
def test_disallowed_pairs_name_item_and_field(
    rules: RelationshipRules, rel_type: str, from_class: str, to_class: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        rules.check(rel_type, from_class, to_class, item="links.csv:12")
    err = info.value
    assert (err.item, err.field) == ("links.csv:12", "type")
    assert from_class in str(err) and to_class in str(err) and rel_type in str(err)
    assert f"relationship_rules.{rel_type}" in str(err)  # says how to allow it
    # asking again gives the same answer (the decision is cached)
    with pytest.raises(ValidationFailed):
        rules.check(rel_type, from_class, to_class, item="again")


def test_unknown_relationship_type(rules: RelationshipRules) -> None:
    with pytest.raises(ValidationFailed) as info:
        rules.check("LIKES", "server", "server", item="rel[0]")
    assert (info.value.item, info.value.field) == ("rel[0]", "type")
    assert "DEPENDS_ON" in str(info.value)


def test_impact_directions(rules: RelationshipRules) -> None:
    assert rules.get("RUNS_ON").impact is ImpactDirection.TO_FROM
    assert rules.get("DEPENDS_ON").impact is ImpactDirection.TO_FROM
    assert rules.get("MEMBER_OF").impact is ImpactDirection.FROM_TO
    assert rules.get("LOCATED_IN").impact is ImpactDirection.NONE


def test_extra_pairs_from_settings(classes: ClassRegistry) -> None:
    rules = RelationshipRules.build(
        classes, {"DEPENDS_ON": [["toaster", "server"]], "LOCATED_IN": [["*", "location"]]}
    )
    rules.check("DEPENDS_ON", "toaster", "server", item="r")
    rules.check("LOCATED_IN", "toaster", "location", item="r")
    rules.check("LOCATED_IN", "application", "location", item="r")
    with pytest.raises(ValidationFailed):
        rules.check("DEPENDS_ON", "server", "toaster", item="r")
    # built-in pairs are kept
    rules.check("DEPENDS_ON", "application", "database", item="r")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"LIKES": [["server", "server"]]}, "unknown relationship type 'LIKES'"),
        ({"DEPENDS_ON": [["server"]]}, r"\[from_class, to_class\]"),
        ({"DEPENDS_ON": [["server", "toastr"]]}, "unknown CI class 'toastr'"),
    ],
)
def test_bad_extra_pairs(classes: ClassRegistry, extra, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        RelationshipRules.build(classes, extra)


def test_relationship_attributes(rules: RelationshipRules) -> None:
    assert RelationshipRules.validate_attributes(
        {"redundancy_group": "uplink", "min_healthy": "2", "speed": 10}, item="r"
    ) == {"redundancy_group": "uplink", "min_healthy": 2, "speed": 10}


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        ({"redundancy_group": ""}, "redundancy_group"),
        ({"redundancy_group": 3}, "redundancy_group"),
        ({"redundancy_group": "g", "min_healthy": 0}, "min_healthy"),
        ({"redundancy_group": "g", "min_healthy": True}, "min_healthy"),
        ({"redundancy_group": "g", "min_healthy": "two"}, "min_healthy"),
        ({"min_healthy": 1}, "min_healthy"),  # meaningless without a group
        ({"nested": {"a": 1}}, "nested"),
    ],
)
def test_bad_relationship_attributes_name_item_and_field(attributes, field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        RelationshipRules.validate_attributes(attributes, item="rel[4] a -DEPENDS_ON-> b")
    assert (info.value.item, info.value.field) == ("rel[4] a -DEPENDS_ON-> b", field)
