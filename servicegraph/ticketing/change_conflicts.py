"""Change conflicts: changes planned at the same time on things that hang together, and
changes planned in a freeze window.

Windows are half-open, ``[start, end)``: a change ending at 10:00 and one starting at
10:00 do not overlap. Two changes whose windows overlap conflict

- ``SAME_CI`` when they change a CI in common;
- ``IN_IMPACT`` when a CI one of them changes goes down with the other's CIs (is in the
  other's ``affected``), either way round;
- ``SAME_SERVICE`` when they put a business service in common at stake (failing or
  degraded: two changes on two members of a cluster that survives either alone).

Every kind that holds is one conflict of its own (one per other change and kind): two
changes on core-1 are ``SAME_CI`` and ``SAME_SERVICE`` (both take Web shop down), and an
override or a CAB sees each reason. The conflicts with other changes come first, grouped
by other change, the groups ordered by their strongest kind (``SAME_CI``, then
``IN_IMPACT``, then ``SAME_SERVICE``), then by the other's start and number, each group
strongest kind first; the freeze windows follow, by start.

A freeze window overlapping the change's window conflicts (``FREEZE``, once per window)
when it freezes every CI (no ``ci_ids``), one of the change's CIs, or a CI the change
takes down or puts at stake: a freeze on a business service covers the CIs it needs.

An override (``ConflictOverride``) whose ``other`` is the other change's or the freeze
window's id marks every conflict with it overridden; they are still listed, so that the
calendar shows what was accepted, and by whom.

Pure: ``change_analysis`` computes the footprints from the graph.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from servicegraph.ticketing.change_model import ConflictOverride, FreezeWindow
from servicegraph.ticketing.change_risk import name_list


class ConflictKind(enum.StrEnum):
    SAME_CI = "same_ci"
    IN_IMPACT = "in_impact"
    SAME_SERVICE = "same_service"
    FREEZE = "freeze"


# the strength of the kinds between changes, strongest first
_STRENGTH = {ConflictKind.SAME_CI: 0, ConflictKind.IN_IMPACT: 1, ConflictKind.SAME_SERVICE: 2}


@dataclass(frozen=True)
class Footprint:
    """What a change touches, and when: its CIs, what fails with them, the business
    services at stake, its planned window."""

    change_id: str
    number: int
    title: str
    ci_ids: frozenset[str]
    affected: frozenset[str]  # what fails when its CIs fail (its CIs excluded)
    services: frozenset[str]  # business services failing or degraded
    start: dt.datetime
    end: dt.datetime

    @property
    def label(self) -> str:
        return f"change {self.number} '{self.title}'"

    def overlaps(self, start: dt.datetime, end: dt.datetime) -> bool:
        return self.start < end and start < self.end


@dataclass(frozen=True)
class Conflict:
    kind: ConflictKind
    other_id: str  # the other change's id, or the freeze window's
    other: str  # "change 12 'Upgrade core-1'", "freeze 'Year-end freeze'"
    detail: str  # what they share, in names
    overridden: ConflictOverride | None = None


def find_conflicts(
    change: Footprint,
    others: Sequence[Footprint],
    freezes: Sequence[FreezeWindow],
    *,
    names: Mapping[str, str],
    overrides: Sequence[ConflictOverride] = (),
) -> list[Conflict]:
    """The conflicts of ``change`` with ``others`` (itself skipped) and ``freezes``, in the
    order of the module docstring; ``names`` gives CI names (an id stands for a missing
    one)."""
    accepted = _latest_overrides(overrides)
    groups: list[tuple[tuple[int, dt.datetime, int], list[Conflict]]] = []
    for other in others:
        if other.change_id == change.change_id or not change.overlaps(other.start, other.end):
            continue
        found = [
            Conflict(kind, other.change_id, other.label, detail, accepted.get(other.change_id))
            for kind, detail in _between(change, other, names)
        ]
        if found:
            groups.append(((_STRENGTH[found[0].kind], other.start, other.number), found))
    groups.sort(key=lambda group: group[0])
    result = [conflict for _, found in groups for conflict in found]
    for freeze in sorted(freezes, key=lambda f: (f.starts_at, f.name, f.id)):
        if not change.overlaps(freeze.starts_at, freeze.ends_at):
            continue
        detail = _frozen(change, freeze, names)
        if detail is not None:
            result.append(
                Conflict(
                    ConflictKind.FREEZE,
                    freeze.id,
                    f"freeze '{freeze.name}'",
                    detail,
                    accepted.get(freeze.id),
                )
            )
    return result


def _latest_overrides(overrides: Sequence[ConflictOverride]) -> dict[str, ConflictOverride]:
    """The override of each other, the latest when it was overridden twice."""
    latest: dict[str, ConflictOverride] = {}
    for override in overrides:
        kept = latest.get(override.other)
        if kept is None or override.at >= kept.at:
            latest[override.other] = override
    return latest


def _between(
    change: Footprint, other: Footprint, names: Mapping[str, str]
) -> list[tuple[ConflictKind, str]]:
    """The kinds of conflict between two overlapping changes, strongest first, each with
    its detail as seen from ``change``."""
    found = []
    shared = sorted(change.ci_ids & other.ci_ids)
    if shared:
        found.append((ConflictKind.SAME_CI, f"both change {name_list(shared, names)}"))
    ours = sorted(change.ci_ids & other.affected)  # ours, taken down by the other
    theirs = sorted(other.ci_ids & change.affected)  # the other's, taken down by ours
    parts = []
    if ours:
        parts.append(
            f"{name_list(ours, names)}, changed here, {_goes(ours)} down with the CIs of "
            f"change {other.number}"
        )
    if theirs:
        parts.append(
            f"change {other.number} changes {name_list(theirs, names)}, which {_goes(theirs)} "
            "down with this change's CIs"
        )
    if parts:
        found.append((ConflictKind.IN_IMPACT, "; ".join(parts)))
    services = sorted(change.services & other.services)
    if services:
        found.append((ConflictKind.SAME_SERVICE, f"both affect {name_list(services, names)}"))
    return found


def _frozen(change: Footprint, freeze: FreezeWindow, names: Mapping[str, str]) -> str | None:
    """Why the change falls under an overlapping freeze, or None when it does not."""
    why = f" ({freeze.reason})" if freeze.reason else ""
    if not freeze.ci_ids:
        return f"every CI is frozen{why}"
    frozen = list(dict.fromkeys(freeze.ci_ids))
    changed = [c for c in frozen if c in change.ci_ids]
    down = [c for c in frozen if c not in change.ci_ids and c in change.affected]
    weakened = [
        c for c in frozen if c in change.services and c not in change.affected | change.ci_ids
    ]
    parts = []
    if changed:
        parts.append(f"{name_list(changed, names)} {_is(changed)} frozen")
    if down:
        parts.append(
            f"{name_list(down, names)} {_is(down)} frozen and {_goes(down)} down with this "
            "change's CIs"
        )
    if weakened:
        parts.append(
            f"{name_list(weakened, names)} {_is(weakened)} frozen and {_loses(weakened)} "
            "redundancy with this change's CIs"
        )
    if not parts:
        return None
    return "; ".join(parts) + why


def _is(ids: Sequence[str]) -> str:
    return "is" if len(ids) == 1 else "are"


def _goes(ids: Sequence[str]) -> str:
    return "goes" if len(ids) == 1 else "go"


def _loses(ids: Sequence[str]) -> str:
    return "loses" if len(ids) == 1 else "lose"
