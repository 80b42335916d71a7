"""Identification, table-driven: which CI each observation is, and which CIs a relationship
joins. Pure functions: no store, what it knows is given as plain data.

Targets read: ``"ci-1"`` updates that CI, ``"+new-1"`` creates one under the id given
(``new-N``: a fresh id; anything else: the record's explicit id), ``None`` is not applied.
"""

from __future__ import annotations

import datetime as dt

import pytest

from servicegraph.cmdb.classes import ClassRegistry
from servicegraph.cmdb.identification import (
    Identification,
    Known,
    check_ends,
    identify,
    match,
    resolve_ends,
)
from servicegraph.cmdb.identifiers import Identifier, IdentifierRules
from servicegraph.cmdb.model import ConfigurationItem
from servicegraph.cmdb.observation import CIObservation, CIRef, RelationshipObservation
from servicegraph.cmdb.provenance import Provenance
from servicegraph.cmdb.relationships import RelationshipRules
from servicegraph.cmdb.validation import PreparedCI, PreparedRelationship

T0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
PROVENANCE = Provenance(T0, "snmp", "tester", "run-1")
RULES = IdentifierRules()


def rec(
    ci_class: str = "server", *, key: str | None = None, ci_id: str | None = None, **idents: str
) -> PreparedCI:
    """A validated record, labelled by its key, else its id, else its strongest identifier."""
    identifiers = RULES.normalise(idents, item="t")
    label = key or ci_id or "=".join(identifiers[0])
    return PreparedCI(CIObservation(ci_class, key=key, ci_id=ci_id), identifiers, {}, label)


def ci(ci_id: str, ci_class: str = "server", merged_into: str | None = None) -> ConfigurationItem:
    return ConfigurationItem(ci_id, ci_class, ci_id, {}, merged_into=merged_into)


def known(
    keys: dict[str, str] | None = None,
    held: dict[str, str] | None = None,
    cis: list[ConfigurationItem] | None = None,
) -> Known:
    """``held``: ``"kind=value"`` -> the CI holding that (already normal) identifier."""
    identifiers: dict[Identifier, str] = {}
    for text, holder in (held or {}).items():
        kind, value = text.split("=", 1)
        identifiers[(kind, value)] = holder
    return Known(keys or {}, identifiers, {c.id: c for c in cis or []})


def run(records: list[PreparedCI], store: Known) -> Identification:
    counter = iter(range(1, 100))
    return identify(
        records, match(records, store), store, PROVENANCE, lambda: f"new-{next(counter)}"
    )


def targets(result: Identification) -> list[str | None]:
    return [
        None if t is None else f"+{t}" if i in result.created else t
        for i, t in enumerate(result.targets)
    ]


def conflicts(result: Identification) -> list[tuple[str, str]]:
    return [(c.kind.value, c.item) for c in result.conflicts]


@pytest.mark.parametrize(
    ("records", "store", "expected_targets", "expected_conflicts"),
    [
        pytest.param(
            [rec(serial_number="S1")], known(), ["+new-1"], [], id="nothing known: new CI"
        ),
        pytest.param(
            [rec(serial_number="s 1")],
            known(held={"serial_number=S1": "ci-1"}, cis=[ci("ci-1")]),
            ["ci-1"],
            [],
            id="by normalised identifier",
        ),
        pytest.param(
            [rec(serial_number="S1", hostname="web01")],
            known(
                held={"serial_number=S1": "ci-1", "hostname=web01": "ci-2"},
                cis=[ci("ci-1"), ci("ci-2")],
            ),
            ["ci-1"],
            [("identifier_claimed", "serial_number=S1")],
            id="the strongest identifier decides, the weaker stays where it is",
        ),
        pytest.param(
            [rec(key="k1", serial_number="S2")],
            known(
                keys={"k1": "ci-1"}, held={"serial_number=S2": "ci-2"}, cis=[ci("ci-1"), ci("ci-2")]
            ),
            ["ci-1"],
            [("identifier_claimed", "k1")],
            id="the source's key before identifiers",
        ),
        pytest.param(
            [rec(ci_id="ci-2", key="k1")],
            known(keys={"k1": "ci-1"}, cis=[ci("ci-1"), ci("ci-2")]),
            ["ci-2"],
            [],
            id="an explicit id before the key",
        ),
        pytest.param(
            [rec(ci_id="ci-9")], known(), ["+ci-9"], [], id="an unknown explicit id is created"
        ),
        pytest.param(
            [rec(serial_number="S1")],
            known(
                held={"serial_number=S1": "ci-a"},
                cis=[ci("ci-a", merged_into="ci-b"), ci("ci-b", merged_into="ci-c"), ci("ci-c")],
            ),
            ["ci-c"],
            [],
            id="a merged CI is found through its last survivor",
        ),
        pytest.param(
            [rec("application", key="k1")],
            known(keys={"k1": "ci-1"}, cis=[ci("ci-1", "server")]),
            [None],
            [("class_mismatch", "k1")],
            id="another class: not applied",
        ),
        pytest.param(
            [rec(key="a", serial_number="S1"), rec(key="b", serial_number="S1")],
            known(),
            ["+new-1", None],
            [("duplicate_in_batch", "b")],
            id="two new records claiming one serial: the second is not applied",
        ),
        pytest.param(
            [rec(key="a", serial_number="S1"), rec(key="b", serial_number="S1")],
            known(held={"serial_number=S1": "ci-1"}, cis=[ci("ci-1")]),
            ["ci-1", None],
            [("duplicate_in_batch", "b")],
            id="two keyed records of one existing CI: the second is not applied",
        ),
        pytest.param(
            [rec(key="a", serial_number="S1"), rec(serial_number="S1", hostname="h1")],
            known(held={"serial_number=S1": "ci-1"}, cis=[ci("ci-1")]),
            ["ci-1", "ci-1"],
            [],
            id="a keyed and an unkeyed record of one CI: both apply",
        ),
        pytest.param(
            [rec("application", key="a", serial_number="S1"), rec(key="b", serial_number="S1")],
            known(keys={"a": "ci-1"}, cis=[ci("ci-1", "server")]),
            [None, "+new-1"],
            [("class_mismatch", "a")],
            id="a record not applied claims nothing in the batch",
        ),
    ],
)
def test_identify(
    records: list[PreparedCI],
    store: Known,
    expected_targets: list[str | None],
    expected_conflicts: list[tuple[str, str]],
) -> None:
    result = run(records, store)
    assert targets(result) == expected_targets
    assert conflicts(result) == expected_conflicts


@pytest.mark.parametrize(
    ("records", "store", "takes", "keys_to_set"),
    [
        pytest.param(
            [rec(key="k1", serial_number="S1", mac="00:11:22:33:44:55")],
            known(held={"serial_number=S1": "ci-1"}, cis=[ci("ci-1")]),
            [["mac"]],
            [("k1", "ci-1")],
            id="identifiers nobody holds are taken; a new key is recorded",
        ),
        pytest.param(
            [rec(key="k1", serial_number="S1")],
            known(keys={"k1": "ci-1"}, held={"serial_number=S1": "ci-1"}, cis=[ci("ci-1")]),
            [[]],
            [],
            id="a replay takes nothing and records no key",
        ),
        pytest.param(
            [rec(key="k1", serial_number="S1")],
            known(
                keys={"k1": "ci-old"},
                held={"serial_number=S1": "ci-old"},
                cis=[ci("ci-old", merged_into="ci-new"), ci("ci-new")],
            ),
            [[]],
            [("k1", "ci-new")],
            id="the key of a merged CI is pointed at its survivor",
        ),
        pytest.param(
            [rec("application", key="k1", serial_number="S9")],
            known(keys={"k1": "ci-1"}, cis=[ci("ci-1")]),
            [[]],
            [],
            id="a record not applied takes nothing",
        ),
    ],
)
def test_identifiers_and_keys_taken(
    records: list[PreparedCI],
    store: Known,
    takes: list[list[str]],
    keys_to_set: list[tuple[str, str]],
) -> None:
    result = run(records, store)
    assert [[kind for kind, _ in own] for own in result.own_identifiers] == takes
    assert result.keys_to_set == keys_to_set


# -- relationship ends --------------------------------------------------------------------

REL_RULES = RelationshipRules.build(ClassRegistry.build())


def ref(text: str) -> CIRef:
    """``id:ci-1``, ``serial_number:S1`` or a key."""
    kind, _, value = text.partition(":")
    if not value:
        return CIRef(key=text)
    if kind == "id":
        return CIRef(ci_id=value)
    return CIRef(identifier=(kind, value))


def relationship(rel_type: str, a: str, b: str) -> PreparedRelationship:
    label = f"{a} -{rel_type}-> {b}"
    obs = RelationshipObservation(rel_type, ref(a), ref(b))
    return PreparedRelationship(obs, {}, ref(a), ref(b), label)


BATCH_KEYS = {"app": "ci-app", "srv": "ci-srv"}
HELD: dict[Identifier, str] = {("serial_number", "S1"): "ci-srv"}
CLASSES = {"ci-app": "application", "ci-srv": "server", "ci-old": "server", "ci-new": "server"}


@pytest.mark.parametrize(
    ("rel", "skipped", "resolved", "problems"),
    [
        pytest.param(
            relationship("RUNS_ON", "app", "srv"),
            {},
            [("ci-app", "RUNS_ON", "ci-srv")],
            [],
            id="by keys",
        ),
        pytest.param(
            relationship("RUNS_ON", "id:ci-app", "serial_number:S1"),
            {},
            [("ci-app", "RUNS_ON", "ci-srv")],
            [],
            id="by id and by identifier",
        ),
        pytest.param(
            relationship("RUNS_ON", "app", "nowhere"),
            {},
            [],
            ["to: no CI with key 'nowhere'"],
            id="an unknown key",
        ),
        pytest.param(
            relationship("RUNS_ON", "app", "id:ci-gone"),
            {},
            [],
            ["to: no CI with id 'ci-gone'"],
            id="an unknown id",
        ),
        pytest.param(
            relationship("RUNS_ON", "srv", "app"),
            {},
            [],
            [
                "type: a server cannot be RUNS_ON a application "
                "(declare the pair under relationship_rules.RUNS_ON to allow it)"
            ],
            id="a pair the type does not allow",
        ),
        pytest.param(
            relationship("DEPENDS_ON", "srv", "serial_number:S1"),
            {},
            [],
            ["to: both ends resolve to the same CI ci-srv"],
            id="both ends one CI",
        ),
        pytest.param(
            relationship("RUNS_ON", "app", "bad"),
            {"bad": "ci[3] bad"},
            [],
            [
                "endpoint_skipped: not applied: its 'to' end ci[3] bad "
                "was not applied because of a conflict"
            ],
            id="an end that was not applied: skipped with a conflict",
        ),
        pytest.param(
            relationship("RUNS_ON", "app", "id:ci-old"),
            {},
            [("ci-app", "RUNS_ON", "ci-old")],
            ["None: CI ci-old was merged into ci-new; use that id"],
            id="an end merged into another CI",
        ),
    ],
)
def test_relationship_ends(
    rel: PreparedRelationship,
    skipped: dict[str, str],
    resolved: list[tuple[str, str, str]],
    problems: list[str],
) -> None:
    ends = resolve_ends([rel], BATCH_KEYS, HELD, skipped, PROVENANCE)
    merged = {"ci-old": "ci-new"} if "ci-old" in rel.label else {}
    checked, errors = check_ends(ends.pending, CLASSES, merged, REL_RULES)
    assert list(checked) == resolved
    found = [f"{e.field}: {e.reason}" for e in [*ends.errors, *errors]]
    found += [f"{c.kind.value}: {c.detail}" for c in ends.conflicts]
    assert found == problems
