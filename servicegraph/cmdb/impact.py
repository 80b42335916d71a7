"""Impact analysis: what fails with a CI, what a service depends on, and its single points
of failure, honouring redundancy (see ``servicegraph.cmdb.relationships``).

The service keeps an ``ImpactGraph`` projection and refreshes it from the store's change
sequence before each query, so an analysis sees every committed change without reloading
the graph (on Neo4j, another host's change within ``SERVICEGRAPH_NEO4J_CHANGE_POLL_S``);
the cost of a query depends on the part of the graph it touches.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from servicegraph.cmdb.classes import ClassRegistry
from servicegraph.cmdb.errors import UnknownCI, ValidationFailed
from servicegraph.cmdb.ports import GraphStore
from servicegraph.cmdb.relationships import RelationshipRules
from servicegraph.cmdb.topology import ImpactGraph

DEFAULT_MAX_DEPTH = 32
BUSINESS_SERVICE = "business_service"


@dataclass(frozen=True, slots=True)
class PathStep:
    """One hop of a dependency path: ``ci_id`` needs the previous step via ``relationship``."""

    ci_id: str
    relationship: str | None  # None for the first step


@dataclass(frozen=True, slots=True)
class AffectedCI:
    ci_id: str
    ci_class: str
    depth: int
    path: tuple[PathStep, ...]  # from a failed CI to this one


@dataclass(frozen=True, slots=True)
class DegradedGroup:
    """A redundancy group that lost members but still has enough to keep its CI up."""

    ci_id: str
    group: str
    failed: int
    size: int
    min_healthy: int


@dataclass(frozen=True)
class ImpactResult:
    failed: tuple[str, ...]
    affected: tuple[AffectedCI, ...]  # excludes the failed CIs themselves
    degraded: tuple[DegradedGroup, ...]
    business_services: tuple[str, ...] = field(default=())
    max_depth: int = DEFAULT_MAX_DEPTH
    truncated: bool = False  # the depth bound stopped the propagation


@dataclass(frozen=True)
class DependencyResult:
    service_id: str
    dependencies: tuple[AffectedCI, ...]  # path runs from the service down to the CI


class ImpactService:
    def __init__(
        self,
        store: GraphStore,
        classes: ClassRegistry,
        rules: RelationshipRules,
        *,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        self.store = store
        self.classes = classes
        self.graph = ImpactGraph(rules)
        self.max_depth = max_depth
        self._lock = ReadWriteLock()
        self.business_classes = frozenset(
            name for name in classes.names() if classes.get(name).is_a(BUSINESS_SERVICE)
        )

    def refresh(self) -> ImpactGraph:
        """Apply committed changes to the projection; cheap when nothing changed. Call it
        outside ``reading``: it waits for readers to finish."""
        seq = self.store.change_seq()
        if seq != self.graph.seq:
            with self._lock.write():
                if seq != self.graph.seq:
                    self.graph.apply(self.store.graph_delta(self.graph.seq))
        return self.graph

    @contextmanager
    def reading(self) -> Iterator[ImpactGraph]:
        """The refreshed projection, kept unchanged until the block ends: queries in other
        threads may read it meanwhile, a refresh waits."""
        self.refresh()
        with self._lock.read():
            yield self.graph

    def _indices(self, graph: ImpactGraph, ci_ids: Iterable[str]) -> list[int]:
        result = []
        for ci_id in ci_ids:
            index = graph.index.get(ci_id)
            if index is None or index in graph.merged:
                raise UnknownCI(ci_id)
            result.append(index)
        return result

    def _depth(self, depth: int | None) -> int:
        if depth is None:
            return self.max_depth
        if depth < 1:
            raise ValidationFailed("must be at least 1", field="depth")
        return min(depth, self.max_depth)

    def impact(self, ci_ids: Sequence[str], *, depth: int | None = None) -> ImpactResult:
        """Everything that fails when all of ``ci_ids`` fail at once."""
        with self.reading() as graph:
            return self._impact(graph, ci_ids, depth=depth)

    def _impact(
        self, graph: ImpactGraph, ci_ids: Sequence[str], *, depth: int | None = None
    ) -> ImpactResult:
        if not ci_ids:
            raise ValidationFailed("give at least one CI", field="ci_ids")
        max_depth = self._depth(depth)
        roots = self._indices(graph, ci_ids)
        parent, depths, counts = graph.propagate(roots, max_depth=max_depth)
        ids, classes = graph.ids, graph.classes
        paths = self._paths_up(graph, parent)
        affected = []
        at_bound = []
        for node, node_depth in depths.items():
            if node_depth == 0:
                continue
            if node_depth == max_depth:
                at_bound.append(node)
            affected.append(AffectedCI(ids[node], classes[node], node_depth, paths[node]))
        # truncated only when the bound stopped something: one more level would fail a CI
        truncated = bool(at_bound) and graph.spreads_further(at_bound, parent, counts)
        affected.sort(key=lambda a: (a.depth, a.ci_id))
        degraded = []
        for gid, failed in counts.items():
            info = graph.groups[gid]
            if info.dependent in parent or failed > info.tolerance:
                continue
            degraded.append(
                DegradedGroup(ids[info.dependent], info.name, failed, info.size, info.min_healthy)
            )
        degraded.sort(key=lambda d: (d.ci_id, d.group))
        services = tuple(a.ci_id for a in affected if a.ci_class in self.business_classes)
        return ImpactResult(
            failed=tuple(ci_ids),
            affected=tuple(affected),
            degraded=tuple(degraded),
            business_services=services,
            max_depth=max_depth,
            truncated=truncated,
        )

    def affected_ids(self, ci_ids: Sequence[str], *, depth: int | None = None) -> list[str]:
        """Only the ids of what fails with ``ci_ids`` (no paths): the fast path for
        correlation and benchmarks."""
        with self.reading() as graph:
            return self._affected_ids(graph, ci_ids, depth=depth)

    def _affected_ids(
        self, graph: ImpactGraph, ci_ids: Sequence[str], *, depth: int | None = None
    ) -> list[str]:
        parent, _, _ = graph.propagate(self._indices(graph, ci_ids), max_depth=self._depth(depth))
        ids = graph.ids
        return [ids[n] for n, p in parent.items() if p != -1]

    @staticmethod
    def _paths_up(graph: ImpactGraph, parent: dict[int, int]) -> dict[int, tuple[PathStep, ...]]:
        """The path from a failed CI to every node of ``parent``.

        A node's path is its parent's plus one step, so paths share their prefixes and each
        step is built once: linear in the affected set, where walking every node's chain
        up to its root separately cost a step per hop per node.
        """
        ids = graph.ids
        paths: dict[int, tuple[PathStep, ...]] = {}
        for node in parent:
            pending = []
            current = node
            while current not in paths:
                up = parent[current]
                if up == -1:
                    paths[current] = (PathStep(ids[current], None),)
                    break
                pending.append(current)
                current = up
            for current in reversed(pending):
                up = parent[current]
                step = PathStep(ids[current], graph.edge_type(up, current))
                paths[current] = (*paths[up], step)
        return paths

    def dependencies(self, service_id: str, *, depth: int | None = None) -> DependencyResult:
        """Everything ``service_id`` needs, directly or transitively, with the path to each."""
        with self.reading() as graph:
            return self._dependencies(graph, service_id, depth=depth)

    def _dependencies(
        self, graph: ImpactGraph, service_id: str, *, depth: int | None = None
    ) -> DependencyResult:
        (start,) = self._indices(graph, [service_id])
        parent = graph.upstream(start, max_depth=self._depth(depth))
        result = []
        for node in parent:
            if node == start:
                continue
            chain = [node]
            while parent[chain[-1]] != -1:
                chain.append(parent[chain[-1]])
            # chain: dependency ... service; present it from the service downwards
            chain.reverse()
            steps = [PathStep(graph.ids[chain[0]], None)]
            for dependent, provider in itertools.pairwise(chain):
                steps.append(PathStep(graph.ids[provider], graph.edge_type(provider, dependent)))
            result.append(
                AffectedCI(graph.ids[node], graph.classes[node], len(chain) - 1, tuple(steps))
            )
        result.sort(key=lambda a: (a.depth, a.ci_id))
        return DependencyResult(service_id, tuple(result))

    def single_points_of_failure(
        self, service_id: str, *, depth: int | None = None
    ) -> list[AffectedCI]:
        """CIs whose failure alone takes ``service_id`` down, nearest first.

        Each candidate from the service's dependency set is failed on its own, with the
        propagation confined to that set, and kept when the service fails.
        """
        with self.reading() as graph:
            return self._single_points_of_failure(graph, service_id, depth=depth)

    def _single_points_of_failure(
        self, graph: ImpactGraph, service_id: str, *, depth: int | None = None
    ) -> list[AffectedCI]:
        max_depth = self._depth(depth)
        (start,) = self._indices(graph, [service_id])
        upstream = graph.upstream(start, max_depth=max_depth)
        within = set(upstream)
        dependencies = {
            a.ci_id: a for a in self._dependencies(graph, service_id, depth=depth).dependencies
        }
        spofs = []
        for node in upstream:
            if node == start:
                continue
            parent, _, _ = graph.propagate(
                [node], max_depth=max_depth, within=within, stop_at=start
            )
            if start in parent:
                spofs.append(dependencies[graph.ids[node]])
        spofs.sort(key=lambda a: (a.depth, a.ci_id))
        return spofs


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds back new readers (so a refresh
    is not starved by a stream of queries); a thread may nest reads."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._local = threading.local()

    @contextmanager
    def read(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            with self._cond:
                while self._writer or self._writers_waiting:
                    self._cond.wait()
                self._readers += 1
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                with self._cond:
                    self._readers -= 1
                    if self._readers == 0:
                        self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        if getattr(self._local, "depth", 0):
            raise RuntimeError("cannot refresh the projection while reading it")
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
