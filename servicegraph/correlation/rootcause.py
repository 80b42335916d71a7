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
from itertools import chain, compress, repeat
from operator import contains

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

    def hard_providers(self, node: int) -> list[int]:
        """The providers ``node`` fails without: required, or in a group that tolerates
        no loss (for a provider in several groups, any of them)."""
        graph = self.graph
        tolerance = graph.tolerance
        return [
            p
            for p, gid in graph.providers[node].items()
            if gid == REQUIRED or any(tolerance[g] <= 0 for g in graph.groups_of(gid))
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
        """The root cause of ``alerting`` computed from scratch (see ``RootCauseTracker``
        for the incremental form the correlator keeps per incident)."""
        tracker = RootCauseTracker(self)
        for node in alerting:
            tracker.add(node)
        return tracker.root(min_share=min_share)


_SMALL_FAILURE = 64  # failure sets up to this size are indexed by their members

# A set of CIs as a dict of int keys: unlike a set, the cyclic garbage collector leaves
# such a dict alone, and a storm makes hundreds of thousands of them (every full collection
# would walk them all, a pause that shows in the event-to-incident latency).
_Nodes = dict[int, None]


class RootCauseTracker:
    """The root cause of a growing set of alerting CIs, kept current as CIs join.

    In a storm a large incident gains a few alerting CIs per batch. Choosing its root from
    scratch compares every top alerting CI's failure set with every alerting CI; keeping,
    for every candidate, how many alerting CIs its failure explains (and through which of
    its direct dependents) costs a lookup per candidate when a CI joins. Candidates are
    the alerting CIs and everything hard-upstream of them (``HardTopology.upstream``): the
    roots ``choose_root`` may pick.

    Valid for the graph version it was built on (``current``); CIs never leave it: when an
    incident loses an alert, build a new one.
    """

    def __init__(self, hard: HardTopology) -> None:
        self.hard = hard
        self.seq = hard.graph.seq
        self.nodes: set[int] = set()
        # alerting CIs with no alerting CI hard-upstream of them: the possible alerting roots
        self._tops: set[int] = set()
        # Which candidates a joining CI's failure is explained by: a candidate whose failure
        # set is small is indexed by its members; the few large ones (a site, a core
        # switch, a cluster) are looked up side by side, by one C-level map.
        self._failures: dict[int, tuple[dict[int, int], dict[int, int]]] = {}
        self._covering: dict[int, _Nodes] = {}  # CI -> small candidates failing it
        self._large: list[int] = []
        self._large_failed: list[dict[int, int]] = []
        self._explains: dict[int, int] = {}  # candidate -> alerting CIs its failure explains
        # The same counts the other way round, for candidates and for tops: ``root`` reads
        # only the candidates explaining more than the best top, not all of them (hundreds
        # per alert in a large incident, whose root is asked for after every batch). Filed
        # when ``root`` asks: a batch counts thousands of times between two questions.
        self._with_count: dict[int, _Nodes] = {}
        self._tops_with_count: dict[int, _Nodes] = {}
        self._filed: dict[int, int] = {}  # candidate -> the count it is filed under
        self._top_filed: dict[int, int] = {}  # top -> the count it is filed under
        self._moved: set[int] = set()  # candidates counted since they were filed
        self._most = 0  # the highest count filed
        # candidate -> its direct dependents on the way to the alerting CIs it explains
        self._down: dict[int, _Nodes] = {}
        self._above: dict[int, _Nodes] = {}  # candidate -> tops it is hard-upstream of

    @property
    def current(self) -> bool:
        return self.hard.graph.seq == self.seq

    def add(self, node: int) -> bool:
        """Count ``node`` as alerting; False if it already was."""
        nodes = self.nodes
        if node in nodes:
            return False
        hard = self.hard
        explains = self._explains
        down = self._down
        large = self._large_failed
        covering = self._covering.get(node, {})
        failures = self._failures
        moved = self._moved
        for candidate in chain(covering, compress(self._large, map(contains, large, repeat(node)))):
            explains[candidate] += 1
            moved.add(candidate)
            # the direct dependent of the candidate above ``node`` (none: it is the node)
            parent, depth = failures[candidate]
            direct, level = node, depth[node]
            while level > 1:
                direct = parent[direct]
                level = depth[direct]
            if level == 1:
                down[candidate][direct] = None
        nodes.add(node)
        upstream = hard.upstream(node)
        for candidate in upstream:
            if candidate not in explains:
                parent, depth = self._failures[candidate] = hard.failure_of(candidate)
                if len(parent) <= _SMALL_FAILURE:
                    for failing in parent:
                        self._covering.setdefault(failing, {})[candidate] = None
                else:
                    self._large.append(candidate)
                    large.append(parent)
                if len(nodes) < len(parent):
                    explained = {n for n in nodes if n in parent}
                else:
                    explained = {n for n in parent if n in nodes}
                explains[candidate] = len(explained)
                moved.add(candidate)
                down[candidate] = dict.fromkeys(_direct_ancestors(explained, parent, depth))
        # Once an alerting CI is upstream of a top it stays so: tops only ever leave.
        above = self._above
        for top in [t for t in above.get(node, ()) if t != node]:
            self._tops.discard(top)
            del self._tops_with_count[self._top_filed.pop(top)][top]
            for candidate in hard.upstream(top):
                del above[candidate][top]
        if not any(n in nodes for n in upstream if n != node):
            self._tops.add(node)
            self._tops_with_count.setdefault(explains[node], {})[node] = None
            self._top_filed[node] = explains[node]
            for candidate in upstream:
                above.setdefault(candidate, {})[node] = None
        return True

    def _file(self) -> None:
        """File the candidates counted since the last time under their current counts."""
        explains = self._explains
        filed = self._filed
        top_filed = self._top_filed
        for candidate in self._moved:
            count = explains[candidate]
            old = filed.get(candidate, 0)
            if count != old:  # count 0 is in no bucket: no root explains nothing
                if old:
                    del self._with_count[old][candidate]
                if count:
                    self._with_count.setdefault(count, {})[candidate] = None
                filed[candidate] = count
                if count > self._most:
                    self._most = count
            old = top_filed.get(candidate, count)
            if count != old:
                del self._tops_with_count[old][candidate]
                self._tops_with_count.setdefault(count, {})[candidate] = None
                top_filed[candidate] = count
        self._moved.clear()

    def root(self, *, min_share: float) -> RootCause | None:
        """The most upstream alerting CI explaining the most alerting CIs; or, when it does
        not explain them all, a silent CI above two or more tops that explains more and
        has at least ``min_share`` of its direct dependents down (see the module)."""
        nodes = self.nodes
        if not nodes:
            return None
        explains = self._explains
        self._file()
        if not self._tops:  # all the alerting CIs on one hard-dependency cycle
            top = min(nodes, key=lambda t: (-explains[t], t))
            explained = explains[top]
            better = [c for c, n in explains.items() if n > explained]
        else:
            # the best top, and the candidates that explain more (only those can beat it)
            better = []
            top = explained = 0
            for count in range(self._most, 0, -1):
                tops = self._tops_with_count.get(count)
                if tops:
                    top, explained = min(tops), count
                    break
                better.extend(self._with_count.get(count, ()))
            else:  # not reached: a top explains at least itself
                raise AssertionError(f"no top filed among {len(self._tops)} tops")
        if explained == len(nodes) or len(nodes) < 2:
            return RootCause(top, False, 1.0, explained)
        # Only a silent CI above two or more tops can explain more than the best top does.
        above = self._above
        best: RootCause | None = None
        for candidate in better:
            if candidate in nodes or len(above.get(candidate, ())) < 2:
                continue
            share = self._share_down(candidate)
            if share is None or share < min_share:
                continue
            count = explains[candidate]
            result = RootCause(candidate, True, round(share * count / len(nodes), 3), count, share)
            if best is None or (result.explained, result.confidence, -candidate) > (
                best.explained,
                best.confidence,
                -best.node,
            ):
                best = result
        if best is not None:
            return best
        return RootCause(top, False, explained / len(nodes), explained)

    def candidates(self) -> dict[int, tuple[float, int]]:
        """Every plausible root with its (confidence, alerting CIs explained): the tops, and
        the silent CIs above them whose failure explains some alerting CI; what an engineer
        weighs against the chosen root."""
        total = len(self.nodes)
        explains = self._explains
        result = {top: (explains[top] / total, explains[top]) for top in self._tops}
        for candidate, tops in self._above.items():
            count = explains[candidate]
            if not tops or not count or candidate in self.nodes:
                continue
            share = self._share_down(candidate)
            if share is not None:
                result[candidate] = (share * count / total, count)
        return result

    def _share_down(self, candidate: int) -> float | None:
        """The share of ``candidate``'s direct dependents that lead to alerting CIs."""
        direct = self.hard.direct_dependents(candidate)
        return len(self._down[candidate]) / len(direct) if direct else None


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
