"""Change-aware correlation: which changes make an alert expected, and which may have caused
an incident.

A correlation batch looks at the changes around its time once (a ``ChangeWindow``, loaded
when the batch is first about to open an incident: a storm of repeats pays nothing). Two
questions, both through hard dependencies (``rootcause.HardTopology.upstream``: a CI and
everything whose loss alone fails it):

- *expected*: an alert on CI X at time t is expected under change C when C is implementing
  (whatever its planned window says), or scheduled with t inside its planned window
  ``[planned_start, planned_end)``, and X is one of C's CIs or hard-depends on one. It
  opens no incident of its own, or a low-priority one (``CorrelationPolicy.expected_alerts``),
  and is linked to the change;
- *possible cause*: an incident opened at t whose root CI is one of C's CIs or hard-depends
  on one, when C was carried out (review, closed, failed; or implementing, or scheduled and
  its window begun) and ended (``actual_end``, else ``planned_end``) within
  ``after_change_window`` before t, or was still under way at t. A change that began after
  t cannot have caused it.

The reasons name CIs and durations as people read them: "possibly caused by change 12
'Upgrade core-1' (closed 25 minutes before): core-1 is upstream of db-1".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from servicegraph.correlation.rootcause import HardTopology
from servicegraph.ticketing.change_model import Change, ChangeStatus
from servicegraph.ticketing.durations import human_elapsed

EXPECTED_TAG = "expected-change"  # the tag of an incident opened for an expected alert
# How far beyond the batch's time the changes it loads reach: events of a backlog are older
# than the batch, and a scheduled window may begin while the batch runs.
LOAD_MARGIN = dt.timedelta(hours=1)

# Statuses in which a change is (or was) carried out: the only ones that explain alerts.
_CARRIED_OUT = frozenset(
    {
        ChangeStatus.SCHEDULED,
        ChangeStatus.IMPLEMENTING,
        ChangeStatus.REVIEW,
        ChangeStatus.CLOSED,
        ChangeStatus.FAILED,
    }
)
_ENDED_AS = {
    ChangeStatus.CLOSED: "closed",
    ChangeStatus.FAILED: "failed",
    ChangeStatus.REVIEW: "ended",
    ChangeStatus.IMPLEMENTING: "ended",
    ChangeStatus.SCHEDULED: "its window ended",
}


@dataclass(frozen=True, slots=True)
class ChangeMatch:
    """A change that explains an alert (``expected``) or may have caused an incident."""

    change: Change
    change_ci_id: str  # the change's CI that the alert's (or the root's) CI depends on
    ci_id: str  # the alert's CI, or the incident's root CI
    state: str  # the change as the reason shows it: "implementing", "closed 25 minutes before"
    expected: bool

    def reason(self, name_of: Callable[[str], str]) -> str:
        """The sentence for people, with CI names (``name_of``: CI id -> name)."""
        c = self.change
        head = "expected during" if self.expected else "possibly caused by"
        what = name_of(self.ci_id)
        if self.change_ci_id == self.ci_id:
            why = f"{what} is one of its CIs"
        else:
            why = f"{name_of(self.change_ci_id)} is upstream of {what}"
        return f"{head} change {c.number} '{c.title}' ({self.state}): {why}"


class ChangeWindow:
    """The changes one batch (or one diagnosis) looks at, indexed by their CIs."""

    def __init__(
        self, changes: Iterable[Change], hard: HardTopology, after_change_window: dt.timedelta
    ) -> None:
        self.hard = hard
        self.after = after_change_window
        self._by_ci: dict[str, list[Change]] = {}
        for change in sorted(changes, key=lambda c: c.number):
            if change.status in _CARRIED_OUT:
                for ci_id in dict.fromkeys(change.ci_ids):
                    self._by_ci.setdefault(ci_id, []).append(change)

    @property
    def empty(self) -> bool:
        return not self._by_ci

    def expecting(self, ci_id: str, t: dt.datetime) -> ChangeMatch | None:
        """The change under which an alert on ``ci_id`` at ``t`` is expected (of several,
        one on the CI itself, else on the nearest CI above it; the lowest number among
        those); None when none is."""
        if not self._by_ci:
            return None
        for change, change_ci in self._touching(ci_id):
            if running_at(change, t):
                return ChangeMatch(change, change_ci, ci_id, _running(change), expected=True)
        return None

    def possible_causes(self, root_ci_id: str, t: dt.datetime) -> list[ChangeMatch]:
        """The changes that may have caused an incident opened at ``t`` whose root CI is
        ``root_ci_id``, by number."""
        if not self._by_ci:
            return []
        found: list[ChangeMatch] = []
        for change, change_ci in self._touching(root_ci_id):
            state = self._cause_state(change, t)
            if state is not None:
                found.append(ChangeMatch(change, change_ci, root_ci_id, state, expected=False))
        return sorted(found, key=lambda m: m.change.number)

    def _touching(self, ci_id: str) -> list[tuple[Change, str]]:
        """The changes on ``ci_id`` or on a CI it hard-depends on, each once with the CI of
        the change it depends on (itself first, then the nearest)."""
        by_ci = self._by_ci
        found: dict[str, tuple[Change, str]] = {}
        for change in by_ci.get(ci_id, ()):
            found[change.id] = (change, ci_id)
        graph = self.hard.graph
        node = graph.index.get(ci_id)
        if node is not None:
            ids = graph.ids
            providers = [ids[n] for n in self.hard.upstream(node) if n != node and ids[n] in by_ci]
            providers.sort(key=lambda i: (_hops(self.hard, graph.index[i], node), i))
            for provider in providers:
                for change in by_ci.get(provider, ()):
                    found.setdefault(change.id, (change, provider))
        return list(found.values())

    def _cause_state(self, change: Change, t: dt.datetime) -> str | None:
        """How the change stood when the incident opened at ``t``, if it may have caused it."""
        start = change.actual_start or change.planned_start
        if start is not None and start > t:
            return None  # it began after the incident opened
        if change.status is ChangeStatus.SCHEDULED:
            window = change.window
            if window is None or window[0] > t:
                return None  # not begun: nothing was done yet
        if running_at(change, t):
            return _running(change)
        end = change.actual_end or change.planned_end
        if end is None:
            return None
        ended = _ENDED_AS.get(change.status, "ended")
        if end > t:
            return f"under way when it opened, {ended} since"
        if t - end > self.after:
            return None
        return f"{ended} {human_elapsed(t - end)} before"


def running_at(change: Change, t: dt.datetime) -> bool:
    """Alerts on its CIs at ``t`` are expected: implementing, or scheduled and ``t`` in its
    planned window."""
    if change.status is ChangeStatus.IMPLEMENTING:
        return True
    window = change.window
    return (
        change.status is ChangeStatus.SCHEDULED
        and window is not None
        and (window[0] <= t < window[1])
    )


def _running(change: Change) -> str:
    if change.status is ChangeStatus.IMPLEMENTING:
        return "implementing"
    return "scheduled, in its planned window"


def _hops(hard: HardTopology, provider: int, node: int) -> int:
    """How many hard-dependency hops above ``node`` ``provider`` is (its failure's depth)."""
    return hard.failure_of(provider)[1].get(node, hard.depth + 1)
