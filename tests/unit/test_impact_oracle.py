"""Impact, dependencies and single points of failure against an independent reference.

Hypothesis draws small graphs (CIs of every class, relationships of every type the
relationship rules allow, cycles included, redundancy groups with and without
``min_healthy``, clusters with and without their ``min_healthy`` attribute) and loads
them through the real reconciler into a real SQLite store. The same graph goes into a
networkx ``MultiDiGraph`` of "X needs Y" edges, and the reference answers from the
README's rules alone, written out here without the product's code:

* DEPENDS_ON, RUNS_ON, HOSTED_ON, CONNECTED_TO, PART_OF: the ``from`` end needs the ``to``
  end; MEMBER_OF: the cluster (``to``) needs the member (``from``); LOCATED_IN: nothing.
* A CI needs every provider unless several of its relationships share a
  ``redundancy_group``: that group keeps it up while at least ``min_healthy`` (default 1)
  of its providers are up. A cluster's MEMBER_OF relationships without a group form one
  implicit group whose ``min_healthy`` is the cluster's attribute.
* Failure is a fixpoint computed level by level: level ``k`` holds what is down given
  what was down at level ``k - 1``; a CI's depth is the first level it is down at; a depth
  bound ``D`` stops after level ``D``. A group is *degraded* when it lost providers (among
  what had failed before the last level) and its CI is still up.
* The dependencies of a CI are everything it needs transitively, at the shortest
  distance; its single points of failure are the CIs whose failure alone takes it down.

Each example is a new piece of one shared store (fresh keys, no relationship to earlier
pieces), so one store serves a whole test and the examples cannot see each other; the
store's projection is refreshed incrementally between examples, as in production.
``SG_ORACLE_EXAMPLES=N`` runs N examples per property instead of 100.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from servicegraph.bootstrap import Services
from servicegraph.cmdb.classes import ClassRegistry
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.impact import AffectedCI, DegradedGroup, ImpactResult
from servicegraph.cmdb.observation import (
    CIObservation,
    CIRef,
    ObservationBatch,
    RelationshipObservation,
)
from servicegraph.cmdb.relationships import RelationshipRules
from servicegraph.cmdb.topology import FailureCone

# -- the rules, as the README states them ----------------------------------------------

TO_NEEDED = frozenset({"DEPENDS_ON", "RUNS_ON", "HOSTED_ON", "CONNECTED_TO", "PART_OF"})
FROM_NEEDED = frozenset({"MEMBER_OF"})
NO_IMPACT = frozenset({"LOCATED_IN"})
IMPLICIT = "members"  # the name impact results give a cluster's implicit member group

CLASSES = (
    "location",
    "network_device",
    "interface",
    "server",
    "virtual_machine",
    "application",
    "database",
    "cluster",
    "business_service",
)
GROUPS = ("g1", "g2")
# the classes that take part in most relationship types come up more often
WEIGHTED = (*CLASSES, "server", "server", "application", "cluster", "cluster", "network_device")
_REGISTRY = ClassRegistry.build()
_RULES = RelationshipRules.build(_REGISTRY)


def test_the_reference_knows_every_relationship_type() -> None:
    assert set(_RULES.names()) == TO_NEEDED | FROM_NEEDED | NO_IMPACT


def _allowed(type_name: str, from_class: str, to_class: str) -> bool:
    try:
        _RULES.check(type_name, from_class, to_class, item="oracle")
    except ValidationFailed:
        return False
    return True


ALLOWED: dict[tuple[str, str], tuple[str, ...]] = {
    (a, b): tuple(t for t in _RULES.names() if _allowed(t, a, b)) for a in CLASSES for b in CLASSES
}


# -- generated graphs ------------------------------------------------------------------


@dataclass(frozen=True)
class EdgeSpec:
    from_node: int
    type: str
    to_node: int
    group: str | None
    min_healthy: int | None

    @property
    def dependent(self) -> int:
        """The end whose group the relationship belongs to (MEMBER_OF: the cluster)."""
        return self.to_node if self.type in FROM_NEEDED else self.from_node


@dataclass(frozen=True)
class GraphSpec:
    classes: tuple[str, ...]
    cluster_min: dict[int, int]
    edges: tuple[EdgeSpec, ...]


@st.composite
def graphs(draw: st.DrawFn, max_nodes: int = 8, max_edges: int = 16) -> GraphSpec:
    classes = tuple(draw(st.lists(st.sampled_from(WEIGHTED), min_size=2, max_size=max_nodes)))
    candidates = [
        (i, t, j)
        for i, j in itertools.permutations(range(len(classes)), 2)
        for t in ALLOWED[(classes[i], classes[j])]
    ]
    cluster_min = {
        i: m
        for i, c in enumerate(classes)
        if c == "cluster" and (m := draw(st.none() | st.integers(1, 3))) is not None
    }
    if not candidates:
        return GraphSpec(classes, cluster_min, ())
    triples = draw(
        st.lists(
            st.sampled_from(candidates),
            unique=True,
            min_size=min(len(candidates), len(classes)),
            max_size=max_edges,
        )
    )
    # min_healthy is a property of a group (one CI's relationships sharing a name): draw it
    # once per group, so that no two relationships of one group disagree
    group_min: dict[tuple[int, str], int | None] = {}
    edges = []
    for i, t, j in triples:
        group = draw(st.sampled_from((None, *GROUPS, GROUPS[0])))
        spec = EdgeSpec(i, t, j, group, None)
        if group is not None:
            key = (spec.dependent, group)
            if key not in group_min:
                group_min[key] = draw(st.none() | st.integers(1, 3))
            spec = EdgeSpec(i, t, j, group, group_min[key])
        edges.append(spec)
    return GraphSpec(classes, cluster_min, tuple(edges))


# -- the reference -----------------------------------------------------------------------


@dataclass
class Needs:
    """What one CI needs: providers it cannot lose, and groups of which it keeps enough."""

    required: set[int] = field(default_factory=set)
    # group name -> (providers, min_healthy)
    groups: dict[str, tuple[set[int], int]] = field(default_factory=dict)


class Oracle:
    def __init__(self, spec: GraphSpec) -> None:
        self.spec = spec
        self.nodes = range(len(spec.classes))
        # dependent -> provider, one edge per relationship, keyed by its type
        self.graph = nx.MultiDiGraph()
        self.graph.add_nodes_from(self.nodes)
        members: dict[int, dict[str, set[int]]] = {}
        mins: dict[tuple[int, str], int] = {}
        self.needs = {n: Needs() for n in self.nodes}
        for e in spec.edges:
            if e.type in NO_IMPACT:
                continue
            dependent = e.dependent
            provider = e.from_node if e.type in FROM_NEEDED else e.to_node
            self.graph.add_edge(dependent, provider, key=e.type)
            if e.group is None and e.type in FROM_NEEDED:
                members.setdefault(dependent, {}).setdefault(IMPLICIT, set()).add(provider)
                mins[(dependent, IMPLICIT)] = spec.cluster_min.get(dependent, 1)
            elif e.group is None:
                self.needs[dependent].required.add(provider)
            else:
                members.setdefault(dependent, {}).setdefault(e.group, set()).add(provider)
                mins[(dependent, e.group)] = e.min_healthy or 1
        for dependent, groups in members.items():
            for name, providers in groups.items():
                self.needs[dependent].groups[name] = (providers, mins[(dependent, name)])
        self.simple = nx.DiGraph(self.graph)

    def down(self, node: int, failed: set[int]) -> bool:
        needs = self.needs[node]
        if needs.required & failed:
            return True
        return any(
            providers & failed and len(providers - failed) < min_healthy
            for providers, min_healthy in needs.groups.values()
        )

    def levels(self, roots: Sequence[int], max_depth: int) -> list[set[int]]:
        """``levels[k]``: everything down after ``k`` rounds (``levels[0]`` the roots)."""
        result = [set(roots)]
        while len(result) <= max_depth:
            before = result[-1]
            after = before | {n for n in self.nodes if n not in before and self.down(n, before)}
            if after == before:
                break
            result.append(after)
        return result

    def depths(self, roots: Sequence[int], max_depth: int) -> dict[int, int]:
        found: dict[int, int] = {}
        for level, failed in enumerate(self.levels(roots, max_depth)):
            for node in failed:
                found.setdefault(node, level)
        return found

    def degraded(self, roots: Sequence[int], max_depth: int) -> set[tuple[int, str, int, int, int]]:
        levels = self.levels(roots, max_depth)
        down = levels[-1]
        # what the last allowed round failed has not been looked beyond
        counted = levels[max_depth - 1] if len(levels) > max_depth else down
        result = set()
        for node in self.nodes:
            if node in down:
                continue
            for name, (providers, min_healthy) in self.needs[node].groups.items():
                lost = len(providers & counted)
                if lost:
                    result.add((node, name, lost, len(providers), min_healthy))
        return result

    def dependencies(self, node: int, max_depth: int) -> dict[int, int]:
        found = nx.single_source_shortest_path_length(self.simple, node, cutoff=max_depth)
        return {n: d for n, d in found.items() if n != node}

    def single_points_of_failure(self, node: int, max_depth: int) -> set[int]:
        return {v for v in self.nodes if v != node and node in self.levels([v], max_depth)[-1]}


# -- loading a spec through the product ----------------------------------------------------


class Loader:
    """One store for a whole test; every example is a new disjoint piece of it."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.count = 0
        self.clock = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

    def load(self, spec: GraphSpec) -> list[str]:
        self.count += 1
        self.clock += dt.timedelta(minutes=1)
        keys = [f"x{self.count}-{i}" for i in range(len(spec.classes))]
        cis = [
            CIObservation(
                ci_class,
                keys[i],
                key=keys[i],
                attributes={"min_healthy": spec.cluster_min[i]} if i in spec.cluster_min else {},
            )
            for i, ci_class in enumerate(spec.classes)
        ]
        relationships = []
        for e in spec.edges:
            attributes: dict[str, object] = {}
            if e.group is not None:
                attributes["redundancy_group"] = e.group
            if e.min_healthy is not None:
                attributes["min_healthy"] = e.min_healthy
            relationships.append(
                RelationshipObservation(
                    e.type, CIRef(key=keys[e.from_node]), CIRef(key=keys[e.to_node]), attributes
                )
            )
        report = self.services.reconciler.apply(
            ObservationBatch("oracle", cis, relationships, observed_at=self.clock)
        )
        assert not report.conflicts
        found = self.services.store.resolve_keys(keys, source="oracle")
        return [next(iter(found[k])) for k in keys]


@pytest.fixture
def loader(services: Services) -> Loader:
    """One store per test, shared by its examples (hypothesis runs them all inside one
    call of the test function, hence the suppressed health check below)."""
    return Loader(services)


PROPERTY = settings(
    max_examples=int(os.environ.get("SG_ORACLE_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
UNBOUNDED = 32  # the default max_depth: more than any generated graph is deep
depths = st.none() | st.integers(1, 4)


def _bound(depth: int | None) -> int:
    return UNBOUNDED if depth is None else depth


# -- checks -------------------------------------------------------------------------------


def check_impact(
    oracle: Oracle, ids: list[str], roots: list[int], depth: int | None, result: ImpactResult
) -> None:
    index = {ci_id: n for n, ci_id in enumerate(ids)}
    bound = _bound(depth)
    want = oracle.depths(roots, bound)
    got = {index[a.ci_id]: a.depth for a in result.affected}
    assert got == {n: d for n, d in want.items() if n not in roots}
    assert result.failed == tuple(ids[r] for r in roots)
    assert result.max_depth == bound
    for a in result.affected:
        assert a.ci_class == oracle.spec.classes[index[a.ci_id]]
        _check_failure_path(oracle, index, roots, want, a)
    services = {n for n in got if oracle.spec.classes[n] == "business_service"}
    assert {index[s] for s in result.business_services} == services
    assert [a.depth for a in result.affected] == sorted(a.depth for a in result.affected)
    degraded = {(index[d.ci_id], d.group, d.failed, d.size, d.min_healthy) for d in result.degraded}
    assert degraded == oracle.degraded(roots, bound)
    assert all(isinstance(d, DegradedGroup) for d in result.degraded)
    # the flag says whether the bound stopped something: one more level fails a CI
    stopped = len(oracle.levels(roots, bound + 1)) > bound + 1
    assert result.truncated == stopped


def _check_failure_path(
    oracle: Oracle, index: dict[str, int], roots: list[int], want: dict[int, int], a: AffectedCI
) -> None:
    path = [index[step.ci_id] for step in a.path]
    assert path[0] in roots and a.path[0].relationship is None
    assert path[-1] == index[a.ci_id] and len(path) == a.depth + 1
    for level, (provider, dependent, step) in enumerate(
        zip(path, path[1:], a.path[1:], strict=False), start=1
    ):
        assert oracle.graph.has_edge(dependent, provider, key=step.relationship)
        assert want[dependent] == level  # each hop is the round that failed it


def _check_dependency_path(
    oracle: Oracle, index: dict[str, int], start: int, a: AffectedCI
) -> None:
    path = [index[step.ci_id] for step in a.path]
    assert path[0] == start and a.path[0].relationship is None
    assert path[-1] == index[a.ci_id] and len(path) == a.depth + 1
    for dependent, provider, step in zip(path, path[1:], a.path[1:], strict=False):
        assert oracle.graph.has_edge(dependent, provider, key=step.relationship)


# -- properties -------------------------------------------------------------------------


@PROPERTY
@given(spec=graphs(), data=st.data())
def test_impact_matches_the_reference(loader: Loader, spec: GraphSpec, data: st.DataObject) -> None:
    note(repr(spec))
    ids = loader.load(spec)
    oracle = Oracle(spec)
    impact = loader.services.impact
    for node in oracle.nodes:  # every CI on its own, unbounded
        check_impact(oracle, ids, [node], None, impact.impact([ids[node]]))
    roots = data.draw(
        st.lists(st.sampled_from(list(oracle.nodes)), min_size=1, max_size=3, unique=True)
    )
    depth = data.draw(depths)
    check_impact(oracle, ids, roots, depth, impact.impact([ids[r] for r in roots], depth=depth))
    fast = impact.affected_ids([ids[r] for r in roots], depth=depth)
    assert set(fast) == {ids[n] for n in oracle.depths(roots, _bound(depth))} - {
        ids[r] for r in roots
    }


@PROPERTY
@given(spec=graphs(), depth=depths)
def test_dependencies_match_the_reference(
    loader: Loader, spec: GraphSpec, depth: int | None
) -> None:
    note(repr(spec))
    ids = loader.load(spec)
    index = {ci_id: n for n, ci_id in enumerate(ids)}
    oracle = Oracle(spec)
    for node in oracle.nodes:
        result = loader.services.impact.dependencies(ids[node], depth=depth)
        assert result.service_id == ids[node]
        got = {index[a.ci_id]: a.depth for a in result.dependencies}
        assert got == oracle.dependencies(node, _bound(depth))
        for a in result.dependencies:
            _check_dependency_path(oracle, index, node, a)


@PROPERTY
@given(spec=graphs(), depth=depths)
def test_single_points_of_failure_match_the_reference(
    loader: Loader, spec: GraphSpec, depth: int | None
) -> None:
    note(repr(spec))
    ids = loader.load(spec)
    index = {ci_id: n for n, ci_id in enumerate(ids)}
    oracle = Oracle(spec)
    impact = loader.services.impact
    for node in oracle.nodes:
        spofs = impact.single_points_of_failure(ids[node], depth=depth)
        assert {index[a.ci_id] for a in spofs} == oracle.single_points_of_failure(
            node, _bound(depth)
        )
        # each one is reported as the dependency it is, nearest first
        dependencies = {
            a.ci_id: a for a in impact.dependencies(ids[node], depth=depth).dependencies
        }
        assert all(dependencies[a.ci_id] == a for a in spofs)
        assert [a.depth for a in spofs] == sorted(a.depth for a in spofs)


@PROPERTY
@given(spec=graphs(), data=st.data())
def test_failure_cone_matches_one_propagation(
    loader: Loader, spec: GraphSpec, data: st.DataObject
) -> None:
    """Correlation grows a failure cone one alerting CI at a time; in whatever order, it
    ends where one propagation from all of them (and the reference) ends."""
    note(repr(spec))
    ids = loader.load(spec)
    oracle = Oracle(spec)
    sources = data.draw(st.permutations(list(oracle.nodes)).map(lambda p: p[: len(p) // 2 + 1]))
    with loader.services.impact.reading() as graph:
        cone = FailureCone(graph, UNBOUNDED)
        for source in sources:
            would = cone.with_source(graph.index[ids[source]])
            assert cone.add(graph.index[ids[source]]) == would
        got = {graph.ids[n] for n in cone.failed}
    assert got == {ids[n] for n in oracle.levels(sources, UNBOUNDED)[-1]}


@PROPERTY
@given(spec=graphs(), data=st.data())
def test_the_projection_follows_removals(
    loader: Loader, spec: GraphSpec, data: st.DataObject
) -> None:
    """Relationships removed after the projection has seen them: it is refreshed
    incrementally and answers as the reference does for what is left."""
    ids = loader.load(spec)
    impact = loader.services.impact
    impact.refresh()
    removed = data.draw(st.sets(st.sampled_from(spec.edges)) if spec.edges else st.just(set()))
    count = loader.services.reconciler.remove_relationships(
        [(ids[e.from_node], e.type, ids[e.to_node]) for e in removed]
    )
    assert count == len(removed)
    left = GraphSpec(
        spec.classes, spec.cluster_min, tuple(e for e in spec.edges if e not in removed)
    )
    oracle = Oracle(left)
    for node in oracle.nodes:
        check_impact(oracle, ids, [node], None, impact.impact([ids[node]]))


# -- a known disagreement -----------------------------------------------------------------

TWO_GROUPS = ("application", "server", "server")  # app, s1, s2


def test_a_provider_in_two_groups_of_one_ci(loader: Loader) -> None:
    """``app`` runs on ``s1`` or ``s2`` (group ``hosts``) and also needs ``s1`` alone
    (group ``licence``, one provider, min_healthy 1): losing ``s1`` leaves ``licence``
    with none up, so ``app`` fails and ``s1`` is a single point of failure of it. The two
    graphs swap which relationship type carries which group; both must say so."""
    for licence, hosts in (("DEPENDS_ON", "RUNS_ON"), ("RUNS_ON", "DEPENDS_ON")):
        spec = GraphSpec(
            TWO_GROUPS,
            {},
            (
                EdgeSpec(0, licence, 1, "g1", None),
                EdgeSpec(0, hosts, 1, "g2", None),
                EdgeSpec(0, hosts, 2, "g2", None),
            ),
        )
        oracle = Oracle(spec)
        ids = loader.load(spec)
        assert oracle.depths([1], UNBOUNDED) == {1: 0, 0: 1}
        assert oracle.single_points_of_failure(0, UNBOUNDED) == {1}
        check_impact(oracle, ids, [1], None, loader.services.impact.impact([ids[1]]))
        spofs = loader.services.impact.single_points_of_failure(ids[0])
        assert [a.ci_id for a in spofs] == [ids[1]]


def test_truncated_only_when_the_bound_stopped_something(loader: Loader) -> None:
    spec = GraphSpec(
        ("application", "application"),
        {},
        (EdgeSpec(0, "DEPENDS_ON", 1, None, None), EdgeSpec(1, "DEPENDS_ON", 0, None, None)),
    )
    ids = loader.load(spec)
    result = loader.services.impact.impact([ids[1]], depth=1)
    assert [a.ci_id for a in result.affected] == [ids[0]]
    assert len(Oracle(spec).levels([1], 2)) == 2  # a second round fails nothing more
    assert not result.truncated
