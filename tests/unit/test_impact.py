"""Impact analysis over a real store: redundancy, dependencies, single points of failure,
depth bounds, cycles, and a projection that follows committed changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from servicegraph.bootstrap import Services
from servicegraph.cmdb.errors import UnknownCI, ValidationFailed
from servicegraph.cmdb.impact import DegradedGroup, ImpactService, PathStep
from servicegraph.cmdb.observation import (
    CIObservation,
    CIRef,
    ObservationBatch,
    RelationshipObservation,
)

Edge = tuple[str, str, str] | tuple[str, str, str, dict[str, Any]]
_clock = [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)]


def build(
    services: Services,
    cis: dict[str, str],
    edges: list[Edge],
    *,
    attributes: dict[str, dict[str, Any]] | None = None,
) -> dict[str, str]:
    """Apply CIs (key -> class) and edges (from key, type, to key[, attributes]); return
    key -> CI id for every key the batch mentions."""
    attributes = attributes or {}
    _clock[0] += dt.timedelta(minutes=1)
    report = services.reconciler.apply(
        ObservationBatch(
            "test",
            [
                CIObservation(ci_class, key, attributes=attributes.get(key, {}), key=key)
                for key, ci_class in cis.items()
            ],
            [
                RelationshipObservation(
                    e[1], CIRef(key=e[0]), CIRef(key=e[2]), e[3] if len(e) == 4 else {}
                )
                for e in edges
            ],
            observed_at=_clock[0],
        )
    )
    assert not report.conflicts
    keys = {k for e in edges for k in (e[0], e[2])} | set(cis)
    found = services.store.resolve_keys(keys, source="test")
    return {k: next(iter(v)) for k, v in found.items()}


def names(ids: dict[str, str], ci_ids: Any) -> set[str]:
    by_id = {v: k for k, v in ids.items()}
    return {by_id[i] for i in ci_ids}


def affected(services: Services, ids: dict[str, str], *failed: str, **kw: Any) -> set[str]:
    result = services.impact.impact([ids[f] for f in failed], **kw)
    return names(ids, (a.ci_id for a in result.affected))


# -- redundancy ---------------------------------------------------------------------------

CLUSTER = {
    "m1": "server",
    "m2": "server",
    "m3": "server",
    "cl": "cluster",
    "app": "application",
    "svc": "business_service",
}
CLUSTER_EDGES: list[Edge] = [
    ("m1", "MEMBER_OF", "cl"),
    ("m2", "MEMBER_OF", "cl"),
    ("m3", "MEMBER_OF", "cl"),
    ("app", "RUNS_ON", "cl"),
    ("svc", "DEPENDS_ON", "app"),
]


def test_cluster_with_min_healthy_2_of_3(services: Services) -> None:
    ids = build(services, CLUSTER, CLUSTER_EDGES, attributes={"cl": {"min_healthy": 2}})
    one = services.impact.impact([ids["m1"]])
    assert one.affected == ()
    assert one.business_services == ()
    assert one.degraded == (DegradedGroup(ids["cl"], "members", 1, 3, 2),)

    two = services.impact.impact([ids["m1"], ids["m3"]])
    assert names(ids, (a.ci_id for a in two.affected)) == {"cl", "app", "svc"}
    assert two.degraded == ()
    assert two.business_services == (ids["svc"],)
    assert two.failed == (ids["m1"], ids["m3"])
    by_key = {a.ci_id: a for a in two.affected}
    svc = by_key[ids["svc"]]
    assert (svc.ci_class, svc.depth) == ("business_service", 3)
    assert svc.path[0].ci_id in (ids["m1"], ids["m3"]) and svc.path[0].relationship is None
    assert svc.path[1:] == (
        PathStep(ids["cl"], "MEMBER_OF"),
        PathStep(ids["app"], "RUNS_ON"),
        PathStep(ids["svc"], "DEPENDS_ON"),
    )
    assert [a.depth for a in two.affected] == [1, 2, 3]  # nearest first


def test_cluster_without_min_healthy_needs_one_member(services: Services) -> None:
    ids = build(services, CLUSTER, CLUSTER_EDGES)
    assert affected(services, ids, "m1", "m2") == set()
    assert affected(services, ids, "m1", "m2", "m3") == {"cl", "app", "svc"}


NETWORK = {
    "core": "network_device",
    "d1": "network_device",
    "d2": "network_device",
    "acc": "network_device",
    "single": "network_device",
    "srv": "server",
    "srv2": "server",
    "dc": "location",
}
NETWORK_EDGES: list[Edge] = [
    ("d1", "CONNECTED_TO", "core"),
    ("d2", "CONNECTED_TO", "core"),
    ("acc", "CONNECTED_TO", "d1", {"redundancy_group": "uplink"}),
    ("acc", "CONNECTED_TO", "d2", {"redundancy_group": "uplink"}),
    ("single", "CONNECTED_TO", "d1"),
    ("srv", "CONNECTED_TO", "acc"),
    ("srv2", "CONNECTED_TO", "single"),
    ("srv", "LOCATED_IN", "dc"),
    ("acc", "LOCATED_IN", "dc"),
]


def test_switch_with_two_uplinks_survives_losing_one(services: Services) -> None:
    ids = build(services, NETWORK, NETWORK_EDGES)
    lose_d1 = services.impact.impact([ids["d1"]])
    # the single-homed switch goes down with its only uplink; the dual-homed one does not
    assert names(ids, (a.ci_id for a in lose_d1.affected)) == {"single", "srv2"}
    assert lose_d1.degraded == (DegradedGroup(ids["acc"], "uplink", 1, 2, 1),)
    assert affected(services, ids, "d2") == set()
    assert affected(services, ids, "d1", "d2") == {"acc", "srv", "single", "srv2"}
    assert affected(services, ids, "core") == {"d1", "d2", "acc", "srv", "single", "srv2"}
    # a location carries no impact
    assert affected(services, ids, "dc") == set()


def test_redundancy_group_with_min_healthy_on_the_relationship(services: Services) -> None:
    ids = build(
        services,
        {"a": "application", "db1": "database", "db2": "database", "db3": "database"},
        [
            ("a", "DEPENDS_ON", f"db{i}", {"redundancy_group": "quorum", "min_healthy": 2})
            for i in (1, 2, 3)
        ],
    )
    assert affected(services, ids, "db1") == set()
    assert affected(services, ids, "db1", "db2") == {"a"}


def test_impact_of_a_set_excludes_the_failed_cis(services: Services) -> None:
    ids = build(services, NETWORK, NETWORK_EDGES)
    assert affected(services, ids, "d1", "single") == {"srv2"}
    assert affected(services, ids, "srv", "srv2") == set()


def test_impact_input_errors(services: Services) -> None:
    ids = build(services, NETWORK, NETWORK_EDGES)
    with pytest.raises(UnknownCI):
        services.impact.impact(["ci-nope"])
    with pytest.raises(ValidationFailed):
        services.impact.impact([])
    with pytest.raises(ValidationFailed) as info:
        services.impact.impact([ids["core"]], depth=0)
    assert info.value.field == "depth"


# -- dependencies and single points of failure -------------------------------------------

SERVICE = {
    "svc": "business_service",
    "app": "application",
    "db": "database",
    "dbhost": "server",
    "m1": "server",
    "m2": "server",
    "m3": "server",
    "cl": "cluster",
    "sw": "network_device",
    "rack": "location",
}
SERVICE_EDGES: list[Edge] = [
    ("svc", "DEPENDS_ON", "app"),
    ("app", "RUNS_ON", "cl"),
    ("app", "DEPENDS_ON", "db"),
    ("db", "RUNS_ON", "dbhost"),
    ("m1", "MEMBER_OF", "cl"),
    ("m2", "MEMBER_OF", "cl"),
    ("m3", "MEMBER_OF", "cl"),
    # the members are redundant, but all hang off one switch
    ("m1", "CONNECTED_TO", "sw"),
    ("m2", "CONNECTED_TO", "sw"),
    ("m3", "CONNECTED_TO", "sw"),
    ("dbhost", "LOCATED_IN", "rack"),
]


def test_dependencies_of_a_service_with_paths(services: Services) -> None:
    ids = build(services, SERVICE, SERVICE_EDGES, attributes={"cl": {"min_healthy": 2}})
    result = services.impact.dependencies(ids["svc"])
    assert result.service_id == ids["svc"]
    deps = {a.ci_id: a for a in result.dependencies}
    assert names(ids, deps) == {"app", "db", "dbhost", "cl", "m1", "m2", "m3", "sw"}
    assert {k: deps[ids[k]].depth for k in ("app", "db", "cl", "dbhost", "m1", "sw")} == {
        "app": 1,
        "db": 2,
        "cl": 2,
        "dbhost": 3,
        "m1": 3,
        "sw": 4,
    }
    assert deps[ids["dbhost"]].path == (
        PathStep(ids["svc"], None),
        PathStep(ids["app"], "DEPENDS_ON"),
        PathStep(ids["db"], "DEPENDS_ON"),
        PathStep(ids["dbhost"], "RUNS_ON"),
    )
    assert deps[ids["m2"]].path == (
        PathStep(ids["svc"], None),
        PathStep(ids["app"], "DEPENDS_ON"),
        PathStep(ids["cl"], "RUNS_ON"),
        PathStep(ids["m2"], "MEMBER_OF"),
    )
    sw_path = deps[ids["sw"]].path
    assert sw_path[-1] == PathStep(ids["sw"], "CONNECTED_TO")
    assert len(sw_path) == 5
    depths = [a.depth for a in result.dependencies]
    assert depths == sorted(depths)
    # depth bound
    near = services.impact.dependencies(ids["svc"], depth=2)
    assert names(ids, (a.ci_id for a in near.dependencies)) == {"app", "db", "cl"}


def test_single_points_of_failure(services: Services) -> None:
    ids = build(services, SERVICE, SERVICE_EDGES, attributes={"cl": {"min_healthy": 2}})
    spofs = services.impact.single_points_of_failure(ids["svc"])
    # redundant members are not, the switch they all need is; locations never are
    assert names(ids, (a.ci_id for a in spofs)) == {"app", "db", "cl", "dbhost", "sw"}
    assert [a.depth for a in spofs] == sorted(a.depth for a in spofs)
    assert next(a for a in spofs if a.ci_id == ids["sw"]).path[-1].ci_id == ids["sw"]
    # every reported SPOF really takes the service down on its own
    for spof in spofs:
        assert ids["svc"] in {a.ci_id for a in services.impact.impact([spof.ci_id]).affected}
    for member in ("m1", "m2", "m3"):
        assert "svc" not in affected(services, ids, member)


def test_single_points_of_failure_with_a_weak_cluster(services: Services) -> None:
    # min_healthy 3 of 3: every member is a single point of failure
    ids = build(services, SERVICE, SERVICE_EDGES, attributes={"cl": {"min_healthy": 3}})
    spofs = services.impact.single_points_of_failure(ids["svc"])
    assert names(ids, (a.ci_id for a in spofs)) == {
        "app",
        "db",
        "cl",
        "dbhost",
        "sw",
        "m1",
        "m2",
        "m3",
    }


# -- depth and cycles ---------------------------------------------------------------------


def test_depth_bound(services: Services) -> None:
    chain = {f"a{i}": "application" for i in range(6)}
    ids = build(services, chain, [(f"a{i}", "DEPENDS_ON", f"a{i + 1}") for i in range(5)])
    full = services.impact.impact([ids["a5"]])
    assert names(ids, (a.ci_id for a in full.affected)) == {"a0", "a1", "a2", "a3", "a4"}
    assert not full.truncated
    near = services.impact.impact([ids["a5"]], depth=2)
    assert names(ids, (a.ci_id for a in near.affected)) == {"a4", "a3"}
    assert near.truncated and near.max_depth == 2
    exact = services.impact.impact([ids["a5"]], depth=5)
    assert not exact.truncated and len(exact.affected) == 5
    assert services.impact.affected_ids([ids["a5"]], depth=1) == [ids["a4"]]


def test_configured_max_depth_caps_queries(make_services: Callable[..., Services]) -> None:
    services = make_services(impact_max_depth=3)
    chain = {f"a{i}": "application" for i in range(6)}
    ids = build(services, chain, [(f"a{i}", "DEPENDS_ON", f"a{i + 1}") for i in range(5)])
    result = services.impact.impact([ids["a5"]], depth=100)
    assert result.max_depth == 3 and result.truncated
    assert names(ids, (a.ci_id for a in result.affected)) == {"a4", "a3", "a2"}


def test_cycles_terminate(services: Services) -> None:
    ids = build(
        services,
        {"a": "application", "b": "application", "c": "application", "svc": "business_service"},
        [
            ("a", "DEPENDS_ON", "b"),
            ("b", "DEPENDS_ON", "a"),
            ("b", "DEPENDS_ON", "c"),
            ("c", "DEPENDS_ON", "a"),
            ("svc", "DEPENDS_ON", "a"),
        ],
    )
    assert affected(services, ids, "a") == {"b", "c", "svc"}
    assert affected(services, ids, "b") == {"a", "c", "svc"}
    assert names(ids, (d.ci_id for d in services.impact.dependencies(ids["a"]).dependencies)) == {
        "b",
        "c",
    }
    assert names(ids, (d.ci_id for d in services.impact.dependencies(ids["svc"]).dependencies)) == {
        "a",
        "b",
        "c",
    }
    spofs = services.impact.single_points_of_failure(ids["svc"])
    assert names(ids, (a.ci_id for a in spofs)) == {"a", "b", "c"}


# -- the projection follows the store ----------------------------------------------------


def test_projection_picks_up_committed_changes(services: Services) -> None:
    ids = build(
        services,
        {**CLUSTER, "db": "database", "dbhost": "server"},
        [*CLUSTER_EDGES, ("app", "DEPENDS_ON", "db"), ("db", "RUNS_ON", "dbhost")],
        attributes={"cl": {"min_healthy": 2}},
    )
    assert affected(services, ids, "m1", "m2") == {"cl", "app", "svc"}
    assert affected(services, ids, "dbhost") == {"db", "app", "svc"}
    graph = services.impact.graph
    seq_before = graph.seq

    # a new CI and relationship, a removed relationship, a changed cluster size
    ids |= build(
        services,
        {"report": "application", "cl": "cluster"},
        [("report", "RUNS_ON", "cl")],
        attributes={"cl": {"min_healthy": 1}},
    )
    removed = services.reconciler.remove_relationships([(ids["app"], "DEPENDS_ON", ids["db"])])
    assert removed == 1

    assert affected(services, ids, "m1", "m2") == set()  # one member of three is enough now
    assert affected(services, ids, "m1", "m2", "m3") == {"cl", "app", "svc", "report"}
    assert affected(services, ids, "dbhost") == {"db"}  # the app no longer needs the db
    assert services.impact.graph is graph  # refreshed in place, not rebuilt
    assert graph.seq == services.store.change_seq() > seq_before

    # unsetting the cluster size falls back to one member, and a removed relationship
    # can come back
    services.reconciler.apply(
        ObservationBatch(
            "test",
            [CIObservation("cluster", key="cl", attributes={"min_healthy": None})],
            [RelationshipObservation("DEPENDS_ON", CIRef(key="app"), CIRef(key="db"))],
            observed_at=_clock[0] + dt.timedelta(minutes=1),
        )
    )
    assert affected(services, ids, "m1", "m2") == set()
    assert affected(services, ids, "dbhost") == {"db", "app", "svc"}
    services.reconciler.apply(
        ObservationBatch(
            "test",
            [CIObservation("cluster", key="cl", attributes={"min_healthy": 3})],
            observed_at=_clock[0] + dt.timedelta(minutes=2),
        )
    )
    assert affected(services, ids, "m1") == {"cl", "app", "svc", "report"}

    # a member leaves a 2-of-3 cluster: the remaining two are both needed now
    services.reconciler.apply(
        ObservationBatch(
            "test",
            [CIObservation("cluster", key="cl", attributes={"min_healthy": 2})],
            observed_at=_clock[0] + dt.timedelta(minutes=3),
        )
    )
    assert affected(services, ids, "m1") == set()
    services.reconciler.remove_relationships([(ids["m3"], "MEMBER_OF", ids["cl"])])
    assert affected(services, ids, "m1") == {"cl", "app", "svc", "report"}
    assert affected(services, ids, "m3") == set()

    # the incrementally refreshed projection answers like one built from scratch
    fresh = ImpactService(services.store, services.classes, services.relationship_rules)
    for failed in (["m1"], ["dbhost"], ["m2", "m3"], ["cl"]):
        got = services.impact.impact([ids[f] for f in failed])
        want = fresh.impact([ids[f] for f in failed])
        assert (got.affected, got.degraded) == (want.affected, want.degraded)


def test_projection_follows_merges(services: Services) -> None:
    ids = build(
        services,
        {"app": "application", "old": "server", "new": "server"},
        [("app", "RUNS_ON", "old")],
    )
    assert affected(services, ids, "old") == {"app"}
    assert affected(services, ids, "new") == set()
    services.reconciler.merge(ids["new"], ids["old"])
    assert affected(services, ids, "new") == {"app"}
    with pytest.raises(UnknownCI):
        services.impact.impact([ids["old"]])
