"""Stale and fresh flags, table-driven: which items flip, with which entries. Pure."""

from __future__ import annotations

import datetime as dt

import pytest

from servicegraph.cmdb.model import ConfigurationItem, Relationship
from servicegraph.cmdb.provenance import Provenance
from servicegraph.cmdb.staleness import flip_cis, flip_relationships, stale_flags

T0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(hours=1)
PROVENANCE = Provenance(T1, "snmp", "bot", "run-2")


def ci(ci_id: str, *, stale: bool) -> ConfigurationItem:
    return ConfigurationItem(ci_id, "server", ci_id, {}, stale=stale, updated_at=T0)


STORE = {"fresh": ci("fresh", stale=False), "stale": ci("stale", stale=True)}


@pytest.mark.parametrize(
    ("seen", "missing", "flipped", "history", "marked_stale"),
    [
        pytest.param(["fresh"], [], [], [], 0, id="seen and fresh: nothing"),
        pytest.param([], ["fresh"], ["fresh"], [("fresh", "stale")], 1, id="missing: stale"),
        pytest.param(["stale"], [], ["stale"], [("stale", "fresh")], 0, id="seen again: fresh"),
        pytest.param([], ["stale"], [], [], 0, id="missing and already stale: nothing"),
        pytest.param(
            ["fresh"], ["fresh"], ["fresh"], [("fresh", "stale")], 1, id="in both lists: stale"
        ),
        pytest.param(["gone"], ["gone"], [], [], 0, id="not loaded: left alone"),
    ],
)
def test_cis(
    seen: list[str],
    missing: list[str],
    flipped: list[str],
    history: list[tuple[str, str]],
    marked_stale: int,
) -> None:
    flips = flip_cis(stale_flags(seen, missing), STORE, PROVENANCE)
    assert [c.id for c in flips.updates] == flipped
    assert [(e.ci_id, e.kind.value) for e in flips.history] == history
    assert flips.marked_stale == marked_stale
    for c in flips.updates:
        assert (c.stale, c.version, c.updated_at) == (not STORE[c.id].stale, 2, T1)
    assert all((e.source, e.run_id, e.old) == ("snmp", "run-2", not e.new) for e in flips.history)


KEY = ("a", "RUNS_ON", "b")


@pytest.mark.parametrize(
    ("stored_stale", "wanted", "history"),
    [
        pytest.param(False, False, [], id="fresh stays fresh"),
        pytest.param(False, True, ["relationship_stale"], id="stale"),
        pytest.param(True, False, ["relationship_fresh"], id="fresh again"),
    ],
)
def test_relationships(stored_stale: bool, wanted: bool, history: list[str]) -> None:
    rel = Relationship(*KEY, stale=stored_stale, updated_at=T0)
    flips = flip_relationships({KEY: wanted}, {KEY: rel}, PROVENANCE)
    assert [e.kind.value for e in flips.history] == history
    assert [(r.stale, r.updated_at) for r in flips.updates] == ([(wanted, T1)] if history else [])
    assert all((e.ci_id, e.field, e.other_ci_id) == KEY for e in flips.history)
    assert flips.marked_stale == int(history == ["relationship_stale"])
