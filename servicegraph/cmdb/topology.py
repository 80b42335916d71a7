"""An in-memory projection of the relationships that carry impact, built for fast failure
propagation and kept current from the store's change sequence.

Nodes are CIs numbered densely; for every CI the projection keeps who needs it
(``dependents``) and whom it needs (``providers``), each edge tagged with the redundancy
group it belongs to on the needing side. Group ``-1`` means "required": losing that one
provider fails the dependent. A named group tolerates ``size - min_healthy`` failures.
A provider in several groups of one dependent (``app`` runs on ``s1`` or ``s2``, and needs
``s1`` alone for its licence) has a code below ``-1`` naming all of them (``multi``): its
loss counts in each, and the dependent fails when any of them has lost too many. See
``servicegraph.cmdb.relationships`` for the semantics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from servicegraph.cmdb.ports import EdgeChange, GraphDelta
from servicegraph.cmdb.relationships import (
    MEMBERS_GROUP,
    ImpactDirection,
    RelationshipRules,
)

REQUIRED = -1


def lost(
    gid: int, counts: dict[int, int], tolerance: list[int], multi: dict[int, tuple[int, ...]]
) -> bool:
    """Count the loss of one provider in its group(s) ``gid`` of a dependent; whether the
    dependent fails of it (``gid`` a group, or a code of ``multi``; not REQUIRED)."""
    if gid >= 0:
        count = counts.get(gid, 0) + 1
        counts[gid] = count
        return count > tolerance[gid]
    fails = False
    for group in multi[gid]:
        count = counts.get(group, 0) + 1
        counts[group] = count
        fails = fails or count > tolerance[group]
    return fails


@dataclass(frozen=True, slots=True)
class GroupInfo:
    dependent: int
    name: str
    size: int
    min_healthy: int

    @property
    def tolerance(self) -> int:
        return self.size - self.min_healthy


class ImpactGraph:
    """The projection. Not thread-safe for writers: ``apply`` under the owner's lock."""

    def __init__(self, rules: RelationshipRules) -> None:
        self._rules = rules
        self._direction: dict[str, ImpactDirection] = {
            name: rules.get(name).impact for name in rules.names()
        }
        self.seq = 0
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.classes: list[str] = []
        self.merged: set[int] = set()
        # provider -> {dependent: group id}
        self.dependents: list[dict[int, int]] = []
        # dependent -> {provider: group id}
        self.providers: list[dict[int, int]] = []
        # dependent -> {(provider, relationship type): (group name or None, min_healthy)}
        self._in_edges: list[dict[tuple[int, str], tuple[str | None, int | None]]] = []
        self.tolerance: list[int] = []  # per group id
        self.groups: list[GroupInfo] = []
        # code (below REQUIRED) -> the groups of one dependent a provider is in
        self.multi: dict[int, tuple[int, ...]] = {}
        self._multi_of: dict[int, list[int]] = {}  # dependent -> its codes
        self._next_multi = REQUIRED - 1
        self._group_ids: dict[tuple[int, str], int] = {}
        self._cluster_min: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    # -- building ------------------------------------------------------------------------

    def _node(self, ci_id: str, ci_class: str = "") -> int:
        index = self.index.get(ci_id)
        if index is None:
            index = len(self.ids)
            self.index[ci_id] = index
            self.ids.append(ci_id)
            self.classes.append(ci_class)
            self.dependents.append({})
            self.providers.append({})
            self._in_edges.append({})
        elif ci_class:
            self.classes[index] = ci_class
        return index

    def apply(self, delta: GraphDelta) -> None:
        """Bring the projection up to ``delta.seq``."""
        for ci_id, (ci_class, merged_into) in delta.cis.items():
            index = self._node(ci_id, ci_class)
            if merged_into is None:
                self.merged.discard(index)
            else:
                self.merged.add(index)
        dirty: set[int] = set()
        for ci_id, min_healthy in delta.cluster_min_healthy.items():
            index = self._node(ci_id)
            old = self._cluster_min.get(index)
            if min_healthy is None:
                self._cluster_min.pop(index, None)
            else:
                self._cluster_min[index] = int(min_healthy)
            if old != self._cluster_min.get(index):
                dirty.add(index)
        for edge in delta.edges:
            self._apply_edge(edge, dirty)
        for dependent in dirty:
            self._rebuild(dependent)
        self.seq = delta.seq

    def _apply_edge(self, edge: EdgeChange, dirty: set[int]) -> None:
        direction = self._direction.get(edge.type, ImpactDirection.NONE)
        if direction is ImpactDirection.NONE:
            return
        if direction is ImpactDirection.TO_FROM:
            provider, dependent = self._node(edge.to_id), self._node(edge.from_id)
            group = edge.redundancy_group
            min_healthy = edge.min_healthy
        else:
            provider, dependent = self._node(edge.from_id), self._node(edge.to_id)
            group = edge.redundancy_group or MEMBERS_GROUP
            min_healthy = edge.min_healthy
        key = (provider, edge.type)
        in_edges = self._in_edges[dependent]
        if edge.removed:
            if in_edges.pop(key, None) is None:
                return
        else:
            in_edges[key] = (group, None if min_healthy is None else int(min_healthy))
        dirty.add(dependent)

    def _group_id(self, dependent: int, name: str) -> int:
        gid = self._group_ids.get((dependent, name))
        if gid is None:
            gid = len(self.tolerance)
            self._group_ids[(dependent, name)] = gid
            self.tolerance.append(0)
            self.groups.append(GroupInfo(dependent, name, 0, 1))
        return gid

    def _rebuild(self, dependent: int) -> None:
        """Recompute the redundancy groups of one dependent from its incoming edges."""
        for provider in self.providers[dependent]:
            self.dependents[provider].pop(dependent, None)
        required: set[int] = set()
        members: dict[str, set[int]] = {}
        needed: dict[str, int] = {}
        for (provider, _type), (group, min_healthy) in self._in_edges[dependent].items():
            if group is None:
                required.add(provider)
                continue
            members.setdefault(group, set()).add(provider)
            if min_healthy is not None:
                needed[group] = max(needed.get(group, 1), min_healthy)
        of_provider: dict[int, list[int]] = {}
        for name, group_members in members.items():
            if name == MEMBERS_GROUP and name not in needed:
                min_healthy = self._cluster_min.get(dependent, 1)
            else:
                min_healthy = needed.get(name, 1)
            gid = self._group_id(dependent, name)
            info = GroupInfo(dependent, name, len(group_members), min_healthy)
            self.groups[gid] = info
            self.tolerance[gid] = info.tolerance
            for provider in group_members:
                of_provider.setdefault(provider, []).append(gid)
        for code in self._multi_of.pop(dependent, ()):
            del self.multi[code]
        providers: dict[int, int] = {}
        for provider, gids in of_provider.items():
            providers[provider] = gids[0] if len(gids) == 1 else self._multi_code(dependent, gids)
        for provider in required:  # a required provider stays required in any group
            providers[provider] = REQUIRED
        self.providers[dependent] = providers
        for provider, gid in providers.items():
            self.dependents[provider][dependent] = gid

    def _multi_code(self, dependent: int, gids: list[int]) -> int:
        code = self._next_multi
        self._next_multi -= 1
        self.multi[code] = tuple(sorted(gids))
        self._multi_of.setdefault(dependent, []).append(code)
        return code

    def groups_of(self, gid: int) -> tuple[int, ...]:
        """The groups an edge's ``gid`` stands for (none for REQUIRED)."""
        if gid >= 0:
            return (gid,)
        return self.multi.get(gid, ())

    # -- queries -------------------------------------------------------------------------

    def edge_type(self, provider: int, dependent: int) -> str:
        """The relationship type that makes ``dependent`` need ``provider``."""
        for p, rel_type in self._in_edges[dependent]:
            if p == provider:
                return rel_type
        return "?"

    def propagate(
        self,
        failed: Iterable[int],
        *,
        max_depth: int,
        within: set[int] | None = None,
        stop_at: int | None = None,
    ) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
        """Failure propagation from ``failed``.

        Returns ``(parent, depth, group_failures)``: for each failed node the provider whose
        loss failed it (-1 for the initial ones) and its distance; and for every redundancy
        group that lost members, how many. ``within`` restricts propagation to a node set;
        ``stop_at`` ends the search as soon as that node fails.
        """
        parent: dict[int, int] = {}
        depth: dict[int, int] = {}
        frontier: list[int] = []
        for node in failed:
            if node not in parent:
                parent[node] = -1
                depth[node] = 0
                frontier.append(node)
        counts: dict[int, int] = {}
        dependents = self.dependents
        tolerance = self.tolerance
        multi = self.multi
        level = 0
        while frontier and level < max_depth:
            level += 1
            next_frontier: list[int] = []
            append = next_frontier.append
            for node in frontier:
                for dependent, gid in dependents[node].items():
                    if dependent in parent:
                        continue
                    if within is not None and dependent not in within:
                        continue
                    if gid >= 0:  # the usual case, inline: one group
                        count = counts.get(gid, 0) + 1
                        counts[gid] = count
                        if count <= tolerance[gid]:
                            continue
                    elif gid != REQUIRED and not lost(gid, counts, tolerance, multi):
                        continue
                    parent[dependent] = node
                    depth[dependent] = level
                    append(dependent)
                    if dependent == stop_at:
                        return parent, depth, counts
            frontier = next_frontier
        return parent, depth, counts

    def spreads_further(
        self, frontier: Iterable[int], failed: Mapping[int, int], counts: dict[int, int]
    ) -> bool:
        """Whether one more level of ``propagate`` from ``frontier`` (the nodes it reached
        at its depth bound) would fail anything: a dependent not ``failed`` yet, required,
        or whose group would lose one provider too many (``counts``: the losses so far)."""
        counts = dict(counts)
        for node in frontier:
            for dependent, gid in self.dependents[node].items():
                if dependent in failed:
                    continue
                if gid == REQUIRED or lost(gid, counts, self.tolerance, self.multi):
                    return True
        return False

    def upstream(self, start: int, *, max_depth: int) -> dict[int, int]:
        """Everything ``start`` needs, transitively: node -> the dependent it was reached
        from (-1 for ``start``)."""
        parent = {start: -1}
        frontier = [start]
        level = 0
        providers = self.providers
        while frontier and level < max_depth:
            level += 1
            next_frontier = []
            for node in frontier:
                for provider in providers[node]:
                    if provider not in parent:
                        parent[provider] = node
                        next_frontier.append(provider)
            frontier = next_frontier
        return parent


class FailureCone:
    """What fails jointly when a growing set of CIs has failed, kept current one source at
    a time: the set ``ImpactGraph.propagate`` gives for all the sources so far.

    Failure only spreads (each failed provider adds one loss to each of its dependents'
    groups, in whatever order), so the failed set does not depend on the order of the
    sources, and a new source only needs its own spread over what has already failed.
    ``max_depth`` bounds each source's spread, counted from that source: a chain so deep
    that it binds is where the batch propagation and the cone may differ.
    """

    def __init__(self, graph: ImpactGraph, max_depth: int) -> None:
        self.graph = graph
        self.max_depth = max_depth
        self.failed: set[int] = set()
        self._counts: dict[int, int] = {}  # group id -> providers lost

    def add(self, source: int) -> set[int]:
        """Fail ``source`` too; returns what newly fails."""
        spread = self._spread(source, self._counts)
        self.failed |= spread
        return spread

    def with_source(self, source: int) -> set[int]:
        """What would newly fail if ``source`` failed too; the cone stays as it is."""
        return self._spread(source, dict(self._counts))

    def _spread(self, source: int, counts: dict[int, int]) -> set[int]:
        failed = self.failed
        if source in failed:
            return set()
        dependents = self.graph.dependents
        tolerance = self.graph.tolerance
        multi = self.graph.multi
        spread = {source}
        frontier = [source]
        level = 0
        while frontier and level < self.max_depth:
            level += 1
            next_frontier = []
            for node in frontier:
                for dependent, gid in dependents[node].items():
                    if dependent in failed or dependent in spread:
                        continue
                    if gid >= 0:
                        count = counts.get(gid, 0) + 1
                        counts[gid] = count
                        if count <= tolerance[gid]:
                            continue
                    elif gid != REQUIRED and not lost(gid, counts, tolerance, multi):
                        continue
                    spread.add(dependent)
                    next_frontier.append(dependent)
            frontier = next_frontier
        return spread
