"""Root cause through the topology.

Only *hard* dependencies count here: a provider whose loss alone fails the dependent (a
required relationship, or a redundancy group that tolerates no loss). One of two redundant
uplinks cannot explain a server's outage, so it is neither grouped with it nor blamed.

The root cause of a set of alerting CIs is the most upstream alerting CI whose failure
explains the others. When no alerting CI explains them all, a non-alerting CI upstream of
them is *inferred* when most of what depends on it is alerting at once; the confidence is
the share of its direct dependents that are down times the share of the alerts it
explains.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from servicegraph.cmdb.topology import REQUIRED, ImpactGraph


@dataclass(frozen=True, slots=True)
class RootCause:
    node: int
    inferred: bool
    confidence: float
    explained: int  # how many of the alerting CIs it explains
    share: float = 1.0  # of an inferred root: the share of its direct dependents down


class HardTopology:
    """Hard-dependency views of an ImpactGraph, cached until the graph changes."""

    def __init__(self, graph: ImpactGraph, depth: int) -> None:
        self.graph = graph
        self.depth = depth
        self._seq = graph.seq
        self._upstream: dict[int, frozenset[int]] = {}
        self._failures: dict[int, tuple[dict[int, int], dict[int, int]]] = {}
        self._direct: dict[int, list[int]] = {}

    def _check(self) -> None:
        if self.graph.seq != self._seq:
            self._upstream.clear()
            self._failures.clear()
            self._direct.clear()
            self._seq = self.graph.seq

    def failure_of(self, node: int) -> tuple[dict[int, int], dict[int, int]]:
        """``(parent, depth)`` of what fails with ``node`` alone (cached: a switch's failure
        set is asked for by every incident below it)."""
        self._check()
        cached = self._failures.get(node)
        if cached is None:
            if len(self._failures) > 50_000:
                self._failures.clear()
                self._direct.clear()
            parent, depth, _ = self.graph.propagate([node], max_depth=self.depth * 2)
            cached = (parent, depth)
            self._failures[node] = cached
        return cached

    def direct_dependents(self, node: int) -> list[int]:
        """What fails at once, one hop away, when ``node`` fails alone."""
        found = self._direct.get(node)
        if found is None:
            depth = self.failure_of(node)[1]
            found = [d for d in self.graph.dependents[node] if depth.get(d) == 1]
            self._direct[node] = found
        return found

    def inferred_confidence(self, node: int, nodes: set[int]) -> RootCause | None:
        """``node`` as an inferred root of the alerting ``nodes``, or None if too few of
        what depends on it is alerting (see the module docstring)."""
        parent, depth = self.failure_of(node)
        explained_nodes = nodes & parent.keys()
        direct = self.direct_dependents(node)
        if len(explained_nodes) < 2 or not direct:
            return None
        share = len(_direct_ancestors(explained_nodes, parent, depth)) / len(direct)
        confidence = share * len(explained_nodes) / len(nodes)
        return RootCause(node, True, round(confidence, 3), len(explained_nodes), share)

    def hard_providers(self, node: int) -> list[int]:
        tolerance = self.graph.tolerance
        return [
            p
            for p, gid in self.graph.providers[node].items()
            if gid == REQUIRED or tolerance[gid] <= 0
        ]

    def upstream(self, node: int) -> frozenset[int]:
        """``node`` and everything whose loss alone fails it, within ``depth`` hops."""
        self._check()
        cached = self._upstream.get(node)
        if cached is not None:
            return cached
        seen = {node}
        frontier = [node]
        for _ in range(self.depth):
            next_frontier = []
            for current in frontier:
                for provider in self.hard_providers(current):
                    if provider not in seen:
                        seen.add(provider)
                        next_frontier.append(provider)
            if not next_frontier:
                break
            frontier = next_frontier
        result = frozenset(seen)
        self._upstream[node] = result
        return result

    def choose_root(self, alerting: Iterable[int], *, min_share: float) -> RootCause | None:
        nodes = set(alerting)
        if not nodes:
            return None
        # Alerting CIs with no alerting CI above them: the only possible alerting roots.
        tops = sorted(n for n in nodes if not (self.upstream(n) - {n}) & nodes)
        best: RootCause | None = None
        for top in tops:
            parent, _ = self.failure_of(top)
            explained = len(nodes & parent.keys())
            if best is None or explained > best.explained:
                best = RootCause(top, False, explained / len(nodes), explained)
        assert best is not None
        if best.explained == len(nodes) or len(nodes) < 2:
            return RootCause(best.node, False, 1.0, best.explained)
        inferred = self._infer(nodes, tops, min_share=min_share)
        if inferred is not None and inferred.explained > best.explained:
            return inferred
        return best

    def _infer(self, nodes: set[int], tops: list[int], *, min_share: float) -> RootCause | None:
        # Only a CI above two or more of the top alerting CIs can explain more than the best
        # of them does on its own.
        above: dict[int, int] = {}
        for top in tops:
            for node in self.upstream(top):
                above[node] = above.get(node, 0) + 1
        candidates = {node for node, count in above.items() if count >= 2} - nodes
        # Cheap first: how many alerting CIs each candidate explains; the costlier share
        # of its dependents that are down only for those that can still win.
        scored = []
        for candidate in candidates:
            parent = self.failure_of(candidate)[0]
            explained_nodes = nodes & parent.keys()
            if len(explained_nodes) >= 2:
                scored.append((len(explained_nodes), candidate, explained_nodes))
        scored.sort(key=lambda item: (-item[0], item[1]))
        best: RootCause | None = None
        for explained, candidate, _ in scored:
            if best is not None and explained < best.explained:
                break
            result = self.inferred_confidence(candidate, nodes)
            if result is None or result.share < min_share:
                continue
            if best is None or (result.explained, result.confidence) > (
                best.explained,
                best.confidence,
            ):
                best = result
        return best


def _direct_ancestors(nodes: set[int], parent: dict[int, int], depth: dict[int, int]) -> set[int]:
    """The depth-1 node above each of ``nodes`` in a propagation tree; each tree node is
    walked once (the paths are remembered)."""
    top_of: dict[int, int] = {}
    result: set[int] = set()
    for node in nodes:
        path = []
        current = node
        while depth[current] > 1 and current not in top_of:
            path.append(current)
            current = parent[current]
        top = top_of.get(current, current)
        for visited in path:
            top_of[visited] = top
        if depth.get(top) == 1:
            result.add(top)
    return result
