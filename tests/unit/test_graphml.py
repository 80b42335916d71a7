"""GraphML of a CI's neighbourhood and of an impact, read back with networkx (and as XML,
for what yEd and Gephi look at)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from servicegraph.bootstrap import Services
from servicegraph.cmdb.errors import UnknownCI, ValidationFailed
from servicegraph.cmdb.graphml import (
    GRAPHML_NS,
    YED_NS,
    impact_graph,
    impact_graphml,
    neighbourhood_graph,
    neighbourhood_graphml,
    to_graphml,
)
from servicegraph.cmdb.observation import (
    CIObservation,
    CIRef,
    ObservationBatch,
    RelationshipObservation,
)

G = f"{{{GRAPHML_NS}}}"
Y = f"{{{YED_NS}}}"

CIS = {
    "core": "network_device",
    "d1": "network_device",
    "d2": "network_device",
    "acc": "network_device",
    "srv": "server",
    "m2": "server",
    "m3": "server",
    "cl": "cluster",
    "app": "application",
    "shop": "business_service",
    "dc": "location",
}
EDGES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("d1", "CONNECTED_TO", "core", {}),
    ("d2", "CONNECTED_TO", "core", {}),
    ("acc", "CONNECTED_TO", "d1", {"redundancy_group": "uplink"}),
    ("acc", "CONNECTED_TO", "d2", {"redundancy_group": "uplink"}),
    ("srv", "CONNECTED_TO", "acc", {}),
    ("srv", "MEMBER_OF", "cl", {}),
    ("m2", "MEMBER_OF", "cl", {}),
    ("m3", "MEMBER_OF", "cl", {}),
    ("app", "RUNS_ON", "cl", {}),
    ("shop", "DEPENDS_ON", "app", {}),
    ("srv", "LOCATED_IN", "dc", {}),
    ("acc", "LOCATED_IN", "dc", {}),
]


@pytest.fixture
def ids(services: Services) -> dict[str, str]:
    attributes: dict[str, dict[str, Any]] = {
        "cl": {"min_healthy": 2},
        "shop": {"criticality": 1},
    }
    services.reconciler.apply(
        ObservationBatch(
            "test",
            [
                CIObservation(cls, f"{key}-name", key=key, attributes=attributes.get(key, {}))
                for key, cls in CIS.items()
            ],
            [
                RelationshipObservation(t, CIRef(key=f), CIRef(key=to), attrs)
                for f, t, to, attrs in EDGES
            ],
            observed_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        )
    )
    found = services.store.resolve_keys(CIS, source="test")
    return {k: next(iter(v)) for k, v in found.items()}


def read_back(text: str, tmp_path: Path) -> nx.MultiDiGraph:
    path = tmp_path / "out.graphml"
    path.write_text(text, encoding="utf-8")
    return nx.read_graphml(path, force_multigraph=True)


def named(ids: dict[str, str], graph: nx.MultiDiGraph) -> set[str]:
    by_id = {v: k for k, v in ids.items()}
    return {by_id[n] for n in graph.nodes}


def edges(ids: dict[str, str], graph: nx.MultiDiGraph) -> set[tuple[str, str, str]]:
    by_id = {v: k for k, v in ids.items()}
    return {(by_id[a], data["type"], by_id[b]) for a, b, data in graph.edges(data=True)}


def test_neighbourhood_to_depth_one(
    services: Services, ids: dict[str, str], tmp_path: Path
) -> None:
    text = neighbourhood_graphml(services.catalog, ids["acc"], depth=1, yed=False)
    graph = read_back(text, tmp_path)
    with_yed = read_back(neighbourhood_graphml(services.catalog, ids["acc"]), tmp_path)
    assert set(with_yed.edges(keys=True)) == set(graph.edges(keys=True))
    for node, data in graph.nodes(data=True):  # networkx adds yEd's shape and position
        assert with_yed.nodes[node].items() >= data.items()
    assert named(ids, graph) == {"acc", "d1", "d2", "srv", "dc"}
    # both directions, every type, and the links among the CIs found (srv -> dc) too; not
    # those leading out (d1 -> core, srv -> cl)
    assert edges(ids, graph) == {
        ("acc", "CONNECTED_TO", "d1"),
        ("acc", "CONNECTED_TO", "d2"),
        ("srv", "CONNECTED_TO", "acc"),
        ("acc", "LOCATED_IN", "dc"),
        ("srv", "LOCATED_IN", "dc"),
    }
    acc = graph.nodes[ids["acc"]]
    assert acc == {
        "label": "acc-name",
        "class": "network_device",
        "name": "acc-name",
        "lifecycle": "active",
        "operational_state": "unknown",
        "stale": False,
        "distance": 0,
        "role": "centre",
    }
    assert graph.nodes[ids["dc"]]["distance"] == 1
    uplink = graph.get_edge_data(ids["acc"], ids["d1"])
    (data,) = uplink.values()
    assert data["type"] == data["label"] == "CONNECTED_TO"
    assert data["redundancy_group"] == "uplink"
    assert data["stale"] is False
    (plain,) = graph.get_edge_data(ids["srv"], ids["acc"]).values()
    assert "redundancy_group" not in plain and "min_healthy" not in plain


def test_neighbourhood_deeper_and_bounded(services: Services, ids: dict[str, str]) -> None:
    graph = neighbourhood_graph(services.catalog, ids["acc"], depth=3)
    assert named(ids, graph) == {*("acc", "d1", "d2", "core", "srv", "dc", "cl", "m2", "m3", "app")}
    assert graph.nodes[ids["app"]]["distance"] == 3
    assert ("srv", "MEMBER_OF", "cl") in edges(ids, graph)
    assert not graph.graph["truncated"]

    small = neighbourhood_graph(services.catalog, ids["acc"], depth=3, max_nodes=3)
    assert small.number_of_nodes() == 3 and small.graph["truncated"]
    assert "incomplete" in neighbourhood_graphml(services.catalog, ids["acc"], max_nodes=2)

    with pytest.raises(ValidationFailed) as info:
        neighbourhood_graph(services.catalog, ids["acc"], depth=0)
    assert info.value.field == "depth"
    with pytest.raises(UnknownCI):
        neighbourhood_graph(services.catalog, "ci-nope")


def test_impact_with_paths_and_degraded_groups(
    services: Services, ids: dict[str, str], tmp_path: Path
) -> None:
    # losing both distribution switches takes the access switch and the server on it
    # down; the cluster keeps 2 of its 3 members
    result = services.impact.impact([ids["d1"], ids["d2"]])
    text = impact_graphml(services.catalog, result, services.relationship_rules)
    graph = read_back(text, tmp_path)
    assert {k: graph.nodes[ids[k]]["role"] for k in named(ids, graph)} == {
        "d1": "failed",
        "d2": "failed",
        "acc": "affected",
        "srv": "affected",
        "cl": "degraded",
    }
    assert [graph.nodes[ids[k]]["depth"] for k in ("d1", "acc", "srv")] == [0, 1, 2]
    assert graph.nodes[ids["cl"]]["degraded"] == "members: 1 of 3 lost, needs 2"
    assert "depth" not in graph.nodes[ids["cl"]]
    uplinks = {("acc", "CONNECTED_TO", "d1"), ("acc", "CONNECTED_TO", "d2")}
    member = ("srv", "MEMBER_OF", "cl")
    assert edges(ids, graph) == {*uplinks, ("srv", "CONNECTED_TO", "acc"), member}
    hot = {e for e in edges(ids, graph) if _propagation(ids, graph, e)}
    # acc failed with the second uplink lost: that one is on its path, the other is not
    assert len(hot & uplinks) == 1
    assert hot - uplinks == {("srv", "CONNECTED_TO", "acc")}


def test_impact_through_a_cluster_to_a_business_service(
    services: Services, ids: dict[str, str]
) -> None:
    result = services.impact.impact([ids["m2"], ids["m3"]])
    graph = impact_graph(services.catalog, result, services.relationship_rules)
    assert named(ids, graph) == {"m2", "m3", "cl", "app", "shop"}
    shop = graph.nodes[ids["shop"]]
    assert (shop["role"], shop["depth"], shop["business_service"]) == ("affected", 3, True)
    assert shop["criticality"] == 1
    assert graph.nodes[ids["app"]]["business_service"] is False
    members = {("m2", "MEMBER_OF", "cl"), ("m3", "MEMBER_OF", "cl")}
    hot = {e for e in edges(ids, graph) if _propagation(ids, graph, e)}
    # MEMBER_OF is stored member -> cluster, the way the failure runs
    assert len(hot & members) == 1
    assert hot - members == {("app", "RUNS_ON", "cl"), ("shop", "DEPENDS_ON", "app")}
    assert edges(ids, graph) == hot | members


def _propagation(ids: dict[str, str], graph: nx.MultiDiGraph, edge: tuple[str, str, str]) -> bool:
    a, rel_type, b = edge
    for data in graph.get_edge_data(ids[a], ids[b]).values():
        if data["type"] == rel_type:
            return bool(data["propagation"])
    raise AssertionError(edge)


def test_what_yed_and_gephi_read(services: Services, ids: dict[str, str]) -> None:
    text = neighbourhood_graphml(services.catalog, ids["acc"], depth=2)
    root = ET.fromstring(text)
    keys = root.findall(f"{G}key")
    key_ids = [k.get("id") for k in keys]
    assert len(key_ids) == len(set(key_ids))
    # Gephi takes the key ids d3 / d7 as labels whatever they hold: none of those here
    assert all(k.startswith(("n_", "e_")) for k in key_ids if k)
    assert not [k for k in keys if k.get("for") == "graph"]  # Gephi rejects graph data
    by_name = {(k.get("for"), k.get("attr.name")): k for k in keys if k.get("attr.name")}
    assert by_name[("node", "label")].get("attr.type") == "string"
    assert by_name[("node", "distance")].get("attr.type") == "int"
    assert by_name[("edge", "stale")].get("attr.type") == "boolean"
    assert {k.get("yfiles.type") for k in keys} >= {"nodegraphics", "edgegraphics"}
    body = root.find(f"{G}graph")
    assert body is not None and body.get("edgedefault") == "directed"
    desc = body.find(f"{G}desc")
    assert desc is not None and desc.text and ids["acc"] in desc.text
    labels = {n.get("id"): n.findtext(f".//{Y}NodeLabel") for n in body.findall(f"{G}node")}
    assert labels[ids["acc"]] == "acc-name"
    edge_ids = [e.get("id") for e in body.findall(f"{G}edge")]
    assert len(edge_ids) == len(set(edge_ids))  # Gephi keeps one edge per id
    assert {e.findtext(f".//{Y}EdgeLabel") for e in body.findall(f"{G}edge")} >= {
        "CONNECTED_TO",
        "LOCATED_IN",
    }

    plain = ET.fromstring(neighbourhood_graphml(services.catalog, ids["acc"], yed=False))
    assert plain.find(f".//{Y}ShapeNode") is None
    assert not [k for k in plain.findall(f"{G}key") if k.get("yfiles.type")]


def test_text_xml_cannot_carry_is_replaced(tmp_path: Path) -> None:
    graph = nx.MultiDiGraph()
    graph.add_node("a", label="bad\x01name & <more>", name="bad\x01name & <more>", stale=True)
    graph.add_node("b", label="b", criticality=2)
    graph.add_edge("a", "b", key="DEPENDS_ON", type="DEPENDS_ON", label="DEPENDS_ON")
    back = read_back(to_graphml(graph), tmp_path)
    assert back.nodes["a"]["name"] == "bad\ufffdname & <more>"
    assert back.nodes["a"]["stale"] is True
    assert back.nodes["b"]["criticality"] == 2
    assert list(back.edges(keys=True)) == [("a", "b", "a-DEPENDS_ON-b")]
