"""Routing's priority bounds as a ticket keeps them (``tickets_routing``, ``Incident``):
the pair ``priority.clamp`` takes, giving what the routing decision gives for every
priority; kept on the ticket and applied to its priority unless an agent overrode it;
the ROUTED entry's words for a move; and those words read back (an older release's
routing override, which migration 11 and a version-2 export turn into bounds)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Incident
from servicegraph.ticketing.routing import RoutingDecision, RoutingRules
from servicegraph.ticketing.tickets_routing import (
    apply_bounds,
    bounds_note,
    legacy_bounds,
    priority_bounds,
)

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
BOUNDS = [None, 1, 2, 3, 4, 5]


def ticket(priority: int = 3, **fields: object) -> Incident:
    return Incident(
        "inc-1",
        1,
        "t",
        TicketStatus.NEW,
        T0,
        T0,
        T0,
        priority=priority,
        **fields,  # type: ignore[arg-type]
    )


def decision(floor: int | None, ceiling: int | None) -> RoutingDecision:
    return RoutingDecision(
        "noc", "rule", priority_floor=floor, priority_ceiling=ceiling, matched=("rule",)
    )


# ``bounds_note`` names the matched rules that set a bound (the bounds are the ticket's)
RULES = RoutingRules.build([{"name": "rule", "then": {"priority_floor": 2}}])


@pytest.mark.parametrize(("floor", "ceiling"), list(itertools.product(BOUNDS, BOUNDS)))
def test_the_kept_bounds_clamp_as_the_decision_does(floor: int | None, ceiling: int | None) -> None:
    kept = priority_bounds(decision(floor, ceiling))
    held = ticket(priority_floor=kept[0], priority_ceiling=kept[1])
    for priority in range(1, 6):
        assert held.bounded(priority) == decision(floor, ceiling).clamp(priority), priority
    assert kept[0] == floor, "the floor is never moved"


@pytest.mark.parametrize(
    ("floor", "ceiling", "priority", "bounded"),
    [
        (2, None, 5, 2),  # at least as urgent as P2
        (2, None, 1, 1),  # a floor never lowers
        (None, 3, 1, 3),  # at most as urgent as P3
        (None, 3, 5, 5),  # a ceiling never raises
        (3, 2, 1, 2),
        (3, 2, 4, 3),
        (None, None, 4, 4),
    ],
)
def test_a_ticket_bounds_a_priority(
    floor: int | None, ceiling: int | None, priority: int, bounded: int
) -> None:
    assert ticket(priority_floor=floor, priority_ceiling=ceiling).bounded(priority) == bounded


def test_bounds_with_no_priority_between_them_are_refused_by_clamp() -> None:
    with pytest.raises(ValidationFailed) as info:
        ticket(priority_floor=2, priority_ceiling=4).bounded(3)
    assert info.value.field == "ceiling", "routing never keeps such a pair"


@pytest.mark.parametrize(
    ("reason", "set_by", "agent"),
    [
        (None, None, False),
        ("the CEO's laptop", "frank", True),
        ("the catalogue's default priority for service 'payroll'", "catalogue", False),
        ("routing rule 'vpn': at least as urgent as P2 (P5 -> P2)", "routing", False),
    ],
)
def test_only_an_agents_override_is_one(
    reason: str | None, set_by: str | None, agent: bool
) -> None:
    assert ticket(priority_reason=reason, priority_set_by=set_by).agent_override is agent


def test_apply_bounds_keeps_them_and_moves_the_priority_but_not_an_agents() -> None:
    plain = ticket(5)
    assert apply_bounds(plain, decision(2, None), RULES) == (
        "routing rule 'rule': at least as urgent as P2 (P5 -> P2)"
    )
    assert (plain.priority, plain.priority_floor, plain.priority_ceiling) == (2, 2, None)
    assert (plain.priority_reason, plain.priority_set_by) == (None, None)

    within = ticket(3)
    assert apply_bounds(within, decision(4, 2), RULES) is None, "P2..P4: nothing moved"
    assert (within.priority, within.priority_floor, within.priority_ceiling) == (3, 4, 2)
    pinned = ticket(3)  # a floor more urgent than the ceiling: the floor wins
    assert apply_bounds(pinned, decision(2, 4), RULES) is not None
    assert (pinned.priority, pinned.priority_floor, pinned.priority_ceiling) == (2, 2, 2)

    agents = ticket(5, priority_reason="test lab", priority_set_by="frank")
    assert apply_bounds(agents, decision(2, None), RULES) is None
    assert (agents.priority, agents.priority_floor) == (5, 2), "kept for when it ends"

    default = ticket(1, priority_reason="the catalogue's default", priority_set_by="catalogue")
    assert apply_bounds(default, decision(None, 3), RULES) == (
        "routing rule 'rule': at most as urgent as P3 (P1 -> P3)"
    )
    assert (default.priority, default.priority_set_by) == (3, "catalogue")


def test_the_note_names_routing_when_no_rule_set_a_bound() -> None:
    moved = ticket(2, priority_floor=2)
    bare = RoutingDecision("noc", "default:triage", priority_floor=2)
    assert bounds_note(moved, bare, 5, RoutingRules()) == (
        "routing: at least as urgent as P2 (P5 -> P2)"
    )


@pytest.mark.parametrize(("floor", "ceiling"), list(itertools.product(BOUNDS, BOUNDS)))
def test_the_words_of_a_move_read_back_as_the_bounds(
    floor: int | None, ceiling: int | None
) -> None:
    """What ``bounds_note`` writes (and an older release wrote as the override's reason)
    names the bounds ``legacy_bounds`` reads, for every pair a decision can carry."""
    kept = priority_bounds(decision(floor, ceiling))
    for before in range(1, 6):
        moved = ticket(before)
        note = apply_bounds(moved, decision(floor, ceiling), RULES)
        if note is not None:
            assert legacy_bounds(note) == kept, note


@pytest.mark.parametrize(
    ("reason", "bounds"),
    [
        (None, (None, None)),
        ("", (None, None)),
        ("the CEO's laptop", (None, None)),
        ("routing rule 'x': at least as urgent as P9 (P5 -> P9)", (None, None)),
        ("routing rule 'x': at least as urgent as P22", (None, None)),
        ("routing rule 'a', 'b': at least as urgent as P2 and at most as urgent as P4 (P5 -> P2)",
         (2, 2)),  # an older decision whose floor won
    ],
)  # fmt: skip
def test_legacy_bounds_read_only_what_routing_wrote(
    reason: str | None, bounds: tuple[int | None, int | None]
) -> None:
    assert legacy_bounds(reason) == bounds
