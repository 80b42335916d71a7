"""Change analysis: the risk and the conflicts of changes, fed from the configuration
graph and the ticket store.

The pure parts decide (``change_risk.assess_risk``, ``change_conflicts.find_conflicts``);
this adapter gathers what they need:

- what the change puts at stake, from the impact projection, read once per call (one
  consistent graph for the whole answer): what fails when the change's CIs all fail at
  once, which business services fail, which redundancy groups absorb the loss and which
  services they keep running (those degrade); a change CI is a single point of failure
  of a failing service when failing that CI alone fails the service;
- CI names and criticality from the graph store's summaries (``GraphStore.summaries``);
- the history of the CIs from the ticket store: open incidents, open problems, earlier
  changes on them that failed.

Nothing is cached across calls: the graph and the tickets move under it, and an answer
costs a few propagations and a few queries.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from servicegraph.cmdb.impact import ImpactService
from servicegraph.cmdb.ports import GraphStore
from servicegraph.cmdb.topology import ImpactGraph
from servicegraph.ticketing.change_conflicts import Conflict, Footprint, find_conflicts
from servicegraph.ticketing.change_model import Change, ChangeStatus, FreezeWindow
from servicegraph.ticketing.change_risk import (
    FailedChange,
    RedundantGroup,
    RiskAssessment,
    RiskInputs,
    RiskPolicy,
    ServiceImpact,
    assess_risk,
)
from servicegraph.ticketing.ports import ChangeFilter, TicketStore

FAILED_CHANGES_READ = 100  # the latest failed changes on the CIs that the risk reads


@dataclass
class _Stake:
    """What a set of CIs puts at stake in one graph (node indices of ``graph``)."""

    known: list[str]  # the CIs the graph holds, in the change's order
    unknown: list[str]
    failed: dict[int, int] = field(default_factory=dict)  # node -> parent (-1: a change CI)
    failing_services: list[int] = field(default_factory=list)
    groups: list[RedundantGroup] = field(default_factory=list)  # losses absorbed
    degraded_services: set[int] = field(default_factory=set)

    def affected(self, graph: ImpactGraph) -> frozenset[str]:
        return frozenset(graph.ids[n] for n, parent in self.failed.items() if parent != -1)

    def services(self, graph: ImpactGraph) -> frozenset[str]:
        return frozenset(graph.ids[n] for n in (*self.failing_services, *self.degraded_services))


class ChangeAnalysis:
    def __init__(
        self,
        impact: ImpactService,
        graph: GraphStore,
        tickets: TicketStore,
        *,
        risk_policy: RiskPolicy | None = None,
    ) -> None:
        self.impact = impact
        self.graph = graph
        self.tickets = tickets
        self.risk_policy = risk_policy or RiskPolicy()

    # -- risk --------------------------------------------------------------------------------

    def risk(self, change: Change) -> RiskAssessment:
        """The change's risk from the graph and its CIs' history (``change_risk``)."""
        return assess_risk(self.risk_inputs(change), self.risk_policy)

    def risk_inputs(self, change: Change) -> RiskInputs:
        """What ``risk`` scores: the change's stake in the graph and its CIs' history."""
        ci_ids = list(dict.fromkeys(change.ci_ids))
        with self.impact.reading() as graph:
            stake = self._stake(graph, ci_ids)
            spofs = self._spofs(graph, stake)
            failing = [graph.ids[n] for n in stake.failing_services]
            degraded = [graph.ids[n] for n in sorted(stake.degraded_services)]
            failed_count = len(stake.failed) - len(stake.known)
        wanted = {*ci_ids, *failing, *degraded}
        for group in stake.groups:
            wanted.update((group.ci_id, *group.lost))
        summaries = self.graph.summaries(wanted)
        names = {ci_id: s.name for ci_id, s in summaries.items()}

        def service(ci_id: str, fails: bool) -> ServiceImpact:
            summary = summaries.get(ci_id)
            return ServiceImpact(
                ci_id=ci_id,
                name=summary.name if summary else ci_id,
                criticality=_criticality(summary.criticality if summary else None),
                fails=fails,
                spof_ci_ids=tuple(spofs.get(ci_id, ())),
            )

        return RiskInputs(
            ci_ids=tuple(ci_ids),
            names=names,
            services=(
                *(service(s, True) for s in failing),
                *(service(s, False) for s in degraded),
            ),
            failed_count=failed_count,
            redundancy=tuple(stake.groups),
            open_incidents=self._open_incidents(ci_ids),
            open_problems=self._open_problems(ci_ids),
            failed_changes=self._failed_changes(change, ci_ids),
            unknown_ci_ids=tuple(stake.unknown),
        )

    def _spofs(self, graph: ImpactGraph, stake: _Stake) -> dict[str, list[str]]:
        """For each failing service, the change CIs that fail it alone: one propagation per
        change CI (with a single CI, that is the one that fails them all)."""
        services = set(stake.failing_services)
        result: dict[str, list[str]] = {}
        for ci_id in stake.known:
            if len(stake.known) == 1:
                alone: Iterable[int] = services
            else:
                parent, _, _ = graph.propagate(
                    [graph.index[ci_id]], max_depth=self.impact.max_depth
                )
                alone = services & parent.keys()
            for node in alone:
                result.setdefault(graph.ids[node], []).append(ci_id)
        return result

    def _open_incidents(self, ci_ids: list[str]) -> dict[str, tuple[int, ...]]:
        if not ci_ids:
            return {}
        found = self.tickets.open_incidents_of(ci_ids)
        return {ci: tuple(i.number for i in incidents) for ci, incidents in found.items()}

    def _open_problems(self, ci_ids: list[str]) -> dict[str, tuple[int, ...]]:
        # one query per CI: ``problems_of`` does not say which CI each problem is on
        result = {}
        for ci_id in ci_ids:
            numbers = tuple(p.number for p in self.tickets.problems_of([ci_id]) if p.status.active)
            if numbers:
                result[ci_id] = numbers
        return result

    def _failed_changes(self, change: Change, ci_ids: list[str]) -> tuple[FailedChange, ...]:
        if not ci_ids:
            return ()
        mine = set(ci_ids)
        failed = self.tickets.find_changes(
            ChangeFilter(
                ci_ids=tuple(ci_ids), status=ChangeStatus.FAILED, limit=FAILED_CHANGES_READ
            )
        )
        return tuple(
            FailedChange(
                number=other.number,
                ci_ids=tuple(c for c in dict.fromkeys(other.ci_ids) if c in mine),
                failed_at=other.actual_end or other.updated_at,
            )
            for other in failed
            if other.id != change.id
        )

    # -- conflicts ---------------------------------------------------------------------------

    def footprint(self, change: Change) -> Footprint | None:
        """What the change touches and when; None without a full planned window."""
        return self._footprints([change]).get(change.id)

    def conflicts(self, change: Change) -> list[Conflict]:
        """The change's conflicts with the other active changes (drafts too) planned in
        its window, and with the freeze windows overlapping it (``change_conflicts``)."""
        window = change.window
        if window is None:
            return []
        others = [
            c for c in self.tickets.changes_touching(*window) if c.id != change.id and _counts(c)
        ]
        freezes = self.tickets.freeze_windows(*window)
        footprints = self._footprints([change, *others])
        own = footprints[change.id]
        return find_conflicts(
            own,
            [footprints[c.id] for c in others if c.id in footprints],
            freezes,
            names=self._names(footprints.values(), freezes),
            overrides=change.conflict_overrides,
        )

    def conflicts_among(
        self, changes: Sequence[Change], freezes: Sequence[FreezeWindow]
    ) -> dict[str, list[Conflict]]:
        """Each change's conflicts with the others of ``changes`` and with ``freezes``, for
        a change calendar: every footprint computed once, in one graph. Every change is a
        key (one without a planned window has no conflicts); the others counted are the
        active ones, as ``conflicts`` counts them."""
        footprints = self._footprints(changes)
        counted = sorted(
            (footprints[c.id] for c in changes if c.id in footprints and _counts(c)),
            key=lambda f: f.start,
        )
        starts = [f.start for f in counted]
        names = self._names(footprints.values(), freezes)
        result: dict[str, list[Conflict]] = {}
        for change in changes:
            own = footprints.get(change.id)
            if own is None:
                result[change.id] = []
                continue
            # only those starting before it ends can overlap it
            candidates = counted[: bisect.bisect_left(starts, own.end)]
            result[change.id] = find_conflicts(
                own,
                [f for f in candidates if f.end > own.start],
                freezes,
                names=names,
                overrides=change.conflict_overrides,
            )
        return result

    def _footprints(self, changes: Iterable[Change]) -> dict[str, Footprint]:
        """The footprints of the changes with a planned window, by change id, all read
        from one graph."""
        result = {}
        with self.impact.reading() as graph:
            for change in changes:
                window = change.window
                if window is None or change.id in result:
                    continue
                ci_ids = list(dict.fromkeys(change.ci_ids))
                stake = self._stake(graph, ci_ids)
                result[change.id] = Footprint(
                    change_id=change.id,
                    number=change.number,
                    title=change.title,
                    ci_ids=frozenset(ci_ids),
                    affected=stake.affected(graph),
                    services=stake.services(graph),
                    start=window[0],
                    end=window[1],
                )
        return result

    def _names(
        self, footprints: Iterable[Footprint], freezes: Iterable[FreezeWindow]
    ) -> dict[str, str]:
        """Names of every CI a conflict's detail may name: the changes' CIs and services,
        and the frozen CIs (a CI in an impact is named only as one of those)."""
        wanted: set[str] = set()
        for footprint in footprints:
            wanted |= footprint.ci_ids | footprint.services
        for freeze in freezes:
            wanted.update(freeze.ci_ids)
        return {ci_id: s.name for ci_id, s in self.graph.summaries(wanted).items()}

    # -- the graph ---------------------------------------------------------------------------

    def _stake(self, graph: ImpactGraph, ci_ids: list[str]) -> _Stake:
        """What fails when ``ci_ids`` all fail at once (as ``ImpactService.impact``), the
        business services failing, the redundancy groups that absorb a loss (as its
        ``degraded``) with the members lost, and the services those groups keep up."""
        known: list[str] = []
        unknown: list[str] = []
        for ci_id in ci_ids:
            index = graph.index.get(ci_id)
            (unknown if index is None or index in graph.merged else known).append(ci_id)
        stake = _Stake(known, unknown)
        if not known:
            return stake
        max_depth = self.impact.max_depth
        business = self.impact.business_classes
        failed, _, losses = graph.propagate([graph.index[c] for c in known], max_depth=max_depth)
        stake.failed = failed
        stake.failing_services = sorted(n for n in failed if graph.classes[n] in business)
        downstream: dict[int, set[int]] = {}  # a group's CI -> the services that need it
        for gid, lost in sorted(losses.items()):
            info = graph.groups[gid]
            dependent = info.dependent
            if dependent in failed or lost > info.tolerance:
                continue
            members = [
                graph.ids[provider]
                for provider, code in graph.providers[dependent].items()
                if provider in failed and gid in graph.groups_of(code)
            ]
            if dependent not in downstream:
                needing, _, _ = graph.propagate([dependent], max_depth=max_depth)
                downstream[dependent] = {
                    n for n in needing if graph.classes[n] in business and n not in failed
                }
            kept = downstream[dependent]
            stake.degraded_services |= kept
            stake.groups.append(
                RedundantGroup(
                    ci_id=graph.ids[dependent],
                    group=info.name,
                    failed=lost,
                    size=info.size,
                    min_healthy=info.min_healthy,
                    lost=tuple(sorted(members)),
                    services=tuple(graph.ids[n] for n in sorted(kept)),
                )
            )
        stake.groups.sort(key=lambda g: (g.ci_id, g.group))
        return stake


def _counts(change: Change) -> bool:
    """Whether a change counts as the other side of a conflict: active, drafts included, so
    that both sides always list a conflict (a draft that collides is seen by whoever plans
    in its window, before it reaches the CAB; cancelling it clears the conflict)."""
    return change.status.active


def _criticality(value: object) -> int | None:
    """The ``criticality`` attribute as a number (1 .. 5), None when unset or not one."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value
