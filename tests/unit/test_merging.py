"""Merging, table-driven: what an observation changes on the CI it was identified as
(per-attribute source precedence), the CI a record creates, and observed relationships
against the stored ones. Pure functions: no store.

Attributes read ``{name: (value, source that set it)}``; history rows
``(kind, field, old, new)``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from servicegraph.cmdb.identifiers import Identifier
from servicegraph.cmdb.merging import merge_observation, merge_relationships, new_ci
from servicegraph.cmdb.model import (
    ConfigurationItem,
    HistoryEntry,
    Lifecycle,
    OperationalState,
    Relationship,
)
from servicegraph.cmdb.observation import CIObservation
from servicegraph.cmdb.precedence import SourcePrecedence
from servicegraph.cmdb.provenance import Provenance
from servicegraph.cmdb.validation import PreparedCI

T0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(hours=1)
DEFAULT = SourcePrecedence()  # model: snmp > erp > manual; notes: manual only; os: unranked

Attributes = dict[str, tuple[Any, str]]


def stored(
    attributes: Attributes | None = None, *, name_source: str = "snmp", **fields: Any
) -> ConfigurationItem:
    attributes = attributes or {}
    return ConfigurationItem(
        "ci-1",
        "server",
        fields.pop("name", "srv1"),
        {k: v for k, (v, _) in attributes.items()},
        attribute_sources={"name": name_source, **{k: s for k, (_, s) in attributes.items()}},
        created_at=T0,
        updated_at=T0,
        **fields,
    )


def observed(attributes: dict[str, Any] | None = None, **fields: Any) -> PreparedCI:
    identifiers = fields.pop("identifiers", ())
    obs = CIObservation("server", attributes=attributes or {}, key="k1", **fields)
    return PreparedCI(obs, identifiers, attributes or {}, "k1")


def rows(history: list[HistoryEntry]) -> list[tuple[str, str | None, Any, Any]]:
    return [(e.kind.value, e.field, e.old, e.new) for e in history]


def attributes_of(ci: ConfigurationItem) -> Attributes:
    return {k: (v, ci.attribute_sources[k]) for k, v in ci.attributes.items()}


@pytest.mark.parametrize(
    ("before", "source", "observation", "after", "history"),
    [
        pytest.param(
            {"model": ("R740", "snmp")},
            "erp",
            {"model": "X"},
            {"model": ("R740", "snmp")},
            [],
            id="a weaker source does not override",
        ),
        pytest.param(
            {"model": ("X", "erp")},
            "snmp",
            {"model": "R740"},
            {"model": ("R740", "snmp")},
            [("attribute", "model", "X", "R740")],
            id="a stronger source overrides",
        ),
        pytest.param(
            {"os": ("linux", "snmp")},
            "erp",
            {"os": "rhel"},
            {"os": ("rhel", "erp")},
            [("attribute", "os", "linux", "rhel")],
            id="unranked: the latest report wins",
        ),
        pytest.param(
            {"notes": ("keep me", "manual")},
            "snmp",
            {"notes": "overwritten"},
            {"notes": ("keep me", "manual")},
            [],
            id="what people wrote stays theirs",
        ),
        pytest.param(
            {"os": ("linux", "snmp")},
            "snmp",
            {"os": None},
            {},
            [("attribute", "os", "linux", None)],
            id="None clears",
        ),
        pytest.param(
            {},
            "erp",
            {"owner": "net", "os": None},
            {"owner": ("net", "erp")},
            [("attribute", "owner", None, "net")],
            id="a new attribute; clearing one never set is nothing",
        ),
        pytest.param(
            {"model": ("R740", "erp")},
            "snmp",
            {"model": "R740"},
            {"model": ("R740", "snmp")},
            [],
            id="a stronger source confirming takes it over, without history",
        ),
        pytest.param(
            {"model": ("R740", "snmp")},
            "erp",
            {"model": "R740"},
            {"model": ("R740", "snmp")},
            [],
            id="a weaker source confirming changes nothing",
        ),
        pytest.param(
            {"os": ("linux", "snmp")},
            "erp",
            {"os": "linux"},
            {"os": ("linux", "snmp")},
            [],
            id="an equal source confirming changes nothing",
        ),
    ],
)
def test_attributes_by_source_precedence(
    before: Attributes,
    source: str,
    observation: dict[str, Any],
    after: Attributes,
    history: list[tuple[str, str | None, Any, Any]],
) -> None:
    ci = stored(before)
    merged, entries = merge_observation(
        ci, observed(observation), (), DEFAULT, Provenance(T1, source)
    )
    assert attributes_of(merged) == after
    assert rows(entries) == history
    if after == before:
        assert merged is ci  # nothing to write
    # a new version only when content changed (ownership alone is not content)
    assert (merged.version, merged.updated_at) == ((2, T1) if history else (1, T0))


LOCAL_NAMES = SourcePrecedence({"name": ["manual", "snmp"]})


@pytest.mark.parametrize(
    ("ci", "source", "observation", "own", "precedence", "history"),
    [
        pytest.param(
            stored(name="srv1"),
            "erp",
            observed(name="SRV-1"),
            [],
            DEFAULT,
            [("name", None, "srv1", "SRV-1")],
            id="a new name: the latest report wins",
        ),
        pytest.param(
            stored(name="srv1"),
            "snmp",
            observed(name=None),
            [],
            DEFAULT,
            [],
            id="no name reported: kept",
        ),
        pytest.param(
            stored(name="srv1", name_source="manual"),
            "snmp",
            observed(name="other"),
            [],
            LOCAL_NAMES,
            [],
            id="a name under precedence",
        ),
        pytest.param(
            stored(),
            "snmp",
            observed(lifecycle=Lifecycle.RETIRED, operational_state=OperationalState.UP),
            [],
            DEFAULT,
            [
                ("lifecycle", None, "active", "retired"),
                ("operational_state", None, "unknown", "up"),
            ],
            id="lifecycle and state follow any report",
        ),
        pytest.param(
            stored(identifiers=(("serial_number", "S1"),)),
            "snmp",
            observed(),
            [("serial_number", "S1"), ("mac", "00:11:22:33:44:55")],
            DEFAULT,
            [("identifier_added", "mac", None, "00:11:22:33:44:55")],
            id="identifiers taken are added, one entry each",
        ),
    ],
)
def test_other_fields(
    ci: ConfigurationItem,
    source: str,
    observation: PreparedCI,
    own: list[Identifier],
    precedence: SourcePrecedence,
    history: list[tuple[str, str | None, Any, Any]],
) -> None:
    merged, entries = merge_observation(ci, observation, own, precedence, Provenance(T1, source))
    assert rows(entries) == history
    assert (merged is ci) == (not history)
    assert set(merged.identifiers) == {*ci.identifiers, *own}
    assert all(e.at == T1 and e.source == source and e.ci_id == "ci-1" for e in entries)


@pytest.mark.parametrize(
    ("observation", "identifiers", "name"),
    [
        pytest.param(observed(name="web01"), [("serial_number", "S1")], "web01", id="its name"),
        pytest.param(observed(), [("serial_number", "S1")], "k1", id="else its key"),
        pytest.param(
            PreparedCI(CIObservation("server"), (), {}, "ci[0]"),
            [("serial_number", "S1"), ("hostname", "web01")],
            "S1",
            id="else its strongest identifier",
        ),
        pytest.param(
            PreparedCI(CIObservation("server"), (), {}, "ci[0]"), [], "ci-new", id="else its id"
        ),
    ],
)
def test_a_new_ci_is_called(
    observation: PreparedCI, identifiers: list[Identifier], name: str
) -> None:
    ci, created = new_ci(observation, "ci-new", identifiers, Provenance(T1, "snmp", "bot", "r1"))
    assert ci.name == name
    assert ci.identifiers == tuple(sorted(identifiers))
    assert (created.kind.value, created.ci_id, created.new["name"]) == ("created", "ci-new", name)
    assert (created.at, created.source, created.actor, created.run_id) == (T1, "snmp", "bot", "r1")


def test_a_new_ci_keeps_no_cleared_attribute_and_owns_what_it_set() -> None:
    observation = observed({"os": "linux", "owner": None})
    ci, created = new_ci(observation, "ci-new", [], Provenance(T1, "erp"))
    assert ci.attributes == {"os": "linux"}
    assert ci.attribute_sources == {"name": "erp", "os": "erp"}
    assert (ci.lifecycle, ci.operational_state) == (Lifecycle.ACTIVE, OperationalState.UNKNOWN)
    assert created.new["attributes"] == {"os": "linux"}


KEY = ("ci-app", "RUNS_ON", "ci-srv")


def rel(attributes: dict[str, Any], *, removed: bool = False) -> Relationship:
    return Relationship(*KEY, attributes, created_at=T0, updated_at=T0, removed=removed)


@pytest.mark.parametrize(
    ("current", "observation", "outcome", "attributes", "history"),
    [
        pytest.param(
            None,
            {"port": 443, "note": None},
            "created",
            {"port": 443},
            [("relationship_added", "RUNS_ON", None, {"port": 443})],
            id="new",
        ),
        pytest.param(
            rel({"port": 443}), {"port": 443}, "unchanged", {"port": 443}, [], id="replayed"
        ),
        pytest.param(
            rel({"port": 443}),
            {},
            "unchanged",
            {"port": 443},
            [],
            id="an attribute not reported is kept",
        ),
        pytest.param(
            rel({"port": 443}),
            {"port": 8443},
            "updated",
            {"port": 8443},
            [("relationship_attribute", "RUNS_ON", {"port": 443}, {"port": 8443})],
            id="an attribute changed",
        ),
        pytest.param(
            rel({"port": 443, "note": "x"}),
            {"note": None},
            "updated",
            {"port": 443},
            [("relationship_attribute", "RUNS_ON", {"port": 443, "note": "x"}, {"port": 443})],
            id="None clears",
        ),
        pytest.param(
            rel({"port": 443}, removed=True),
            {"port": 443},
            "created",
            {"port": 443},
            [("relationship_added", "RUNS_ON", None, {"port": 443})],
            id="a removed one is revived",
        ),
    ],
)
def test_relationships(
    current: Relationship | None,
    observation: dict[str, Any],
    outcome: str,
    attributes: dict[str, Any],
    history: list[tuple[str, str | None, Any, Any]],
) -> None:
    merge = merge_relationships(
        {KEY: observation}, {KEY: current} if current else {}, Provenance(T1, "snmp")
    )
    counts = {"created": merge.created, "updated": merge.updated, "unchanged": merge.unchanged}
    assert counts == {k: int(k == outcome) for k in counts}
    (written,) = merge.new or merge.changed or [current or rel({})]
    assert not written.removed
    assert dict(written.attributes) == attributes
    assert rows(merge.history) == history
    assert all((e.ci_id, e.other_ci_id) == (KEY[0], KEY[2]) for e in merge.history)
    if outcome != "unchanged":
        assert written.updated_at == T1
