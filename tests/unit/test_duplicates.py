"""Merging a duplicate into its survivor, table-driven: what the plan moves, keeps and
records. Pure: the store's relationships are given."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from servicegraph.cmdb.duplicates import check_mergeable, moved_keys, plan_merge
from servicegraph.cmdb.errors import CmdbError, UnknownCI, ValidationFailed
from servicegraph.cmdb.model import ConfigurationItem, Lifecycle, Relationship, RelationshipKey
from servicegraph.cmdb.provenance import Provenance

T0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(hours=1)
PROVENANCE = Provenance(T1, "manual", "alice")


def ci(ci_id: str, ci_class: str = "server", **fields: Any) -> ConfigurationItem:
    return ConfigurationItem(
        ci_id, ci_class, ci_id, fields.pop("attributes", {}), updated_at=T0, **fields
    )


def rel(a: str, rel_type: str, b: str, *, removed: bool = False) -> Relationship:
    return Relationship(a, rel_type, b, {"w": 1}, created_at=T0, updated_at=T0, removed=removed)


KEEP, DUP = ci("keep"), ci("dup", identifiers=(("serial_number", "S1"),))


@pytest.mark.parametrize(
    ("duplicates", "at_survivor", "created", "revived"),
    [
        pytest.param(
            [rel("app", "RUNS_ON", "dup")], [], [("app", "RUNS_ON", "keep")], [], id="moved"
        ),
        pytest.param(
            [rel("dup", "MEMBER_OF", "cl")],
            [rel("keep", "MEMBER_OF", "cl")],
            [],
            [],
            id="the survivor has it already",
        ),
        pytest.param(
            [rel("dup", "MEMBER_OF", "cl")],
            [rel("keep", "MEMBER_OF", "cl", removed=True)],
            [],
            [("keep", "MEMBER_OF", "cl")],
            id="the survivor had it once: revived",
        ),
        pytest.param([rel("dup", "DEPENDS_ON", "keep")], [], [], [], id="between the two: dropped"),
    ],
)
def test_relationships_move_to_the_survivor(
    duplicates: list[Relationship],
    at_survivor: list[Relationship],
    created: list[RelationshipKey],
    revived: list[RelationshipKey],
) -> None:
    existing = {r.key: r for r in at_survivor}
    assert set(moved_keys(duplicates, "dup", "keep")) >= set(existing)
    plan = plan_merge(KEEP, DUP, duplicates, existing, PROVENANCE)
    assert [r.key for r in plan.to_create] == created
    retired = [r for r in plan.to_save if r.removed]
    assert [r.key for r in retired] == [r.key for r in duplicates]  # all of the duplicate's
    assert [r.key for r in plan.to_save if not r.removed] == revived
    added = [e for e in plan.history if e.kind.value == "relationship_added"]
    assert [(e.ci_id, e.field, e.other_ci_id) for e in added] == [*created, *revived]


def test_the_plan_retires_the_duplicate_and_gives_the_survivor_what_it_lacks() -> None:
    survivor = ci("keep", attributes={"os": "linux"}, attribute_sources={"os": "erp"})
    duplicate = ci(
        "dup",
        attributes={"os": "rhel", "model": "R740"},
        attribute_sources={"os": "snmp", "model": "snmp"},
        identifiers=(("serial_number", "S1"),),
    )
    plan = plan_merge(survivor, duplicate, [], {}, PROVENANCE)
    assert dict(plan.survivor.attributes) == {"os": "linux", "model": "R740"}
    assert dict(plan.survivor.attribute_sources) == {"os": "erp", "model": "snmp"}
    assert plan.survivor.identifiers == (("serial_number", "S1"),)
    assert (plan.duplicate.merged_into, plan.duplicate.lifecycle) == ("keep", Lifecycle.RETIRED)
    assert plan.duplicate.identifiers == ()
    assert [(e.ci_id, e.kind.value, e.field) for e in plan.history] == [
        ("dup", "identifier_removed", "serial_number"),
        ("keep", "identifier_added", "serial_number"),
        ("keep", "attribute", "model"),
        ("dup", "merged_into", None),
        ("keep", "merged_from", None),
        ("dup", "lifecycle", None),
    ]
    assert all((e.at, e.actor, e.run_id) == (T1, "alice", None) for e in plan.history)


@pytest.mark.parametrize(
    ("found", "error", "message"),
    [
        pytest.param([ci("a")], UnknownCI, "no configuration item with id 'b'", id="unknown"),
        pytest.param(
            [ci("a"), ci("b", merged_into="c")],
            ValidationFailed,
            "b: already merged into c",
            id="already merged",
        ),
        pytest.param(
            [ci("a"), ci("b", "application")],
            ValidationFailed,
            "b: field 'class': cannot merge a application into a server",
            id="another class",
        ),
    ],
)
def test_what_cannot_be_merged(
    found: list[ConfigurationItem], error: type[CmdbError], message: str
) -> None:
    with pytest.raises(error) as info:
        check_mergeable({c.id: c for c in found}, "a", "b")
    assert str(info.value) == message
