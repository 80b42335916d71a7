"""A part of the graph as GraphML, for drawing in yEd or Gephi: a CI's neighbourhood, or
what an impact analysis found failing.

Two steps, each usable alone: ``neighbourhood_graph`` / ``impact_graph`` read the CIs
and relationships through the catalogue and build a ``networkx.MultiDiGraph`` (node per
CI keyed by its id, edge per relationship as stored, ``from -> to``, keyed by its type);
``to_graphml`` writes such a graph. ``neighbourhood_graphml`` and ``impact_graphml`` do
both. The networkx graph is also what ``networkx.write_gexf`` and the rest of networkx
take, should another format or an analysis be wanted.

The GraphML is written here rather than by ``networkx.write_graphml`` because the tools
read more than the standard: Gephi takes a key named ``label`` (or with the id ``d3`` for
nodes, ``d7`` for edges, which networkx's numbered ids would hit by chance) as the label,
and yEd draws labels and colours only from its own ``y:`` elements. So every key has an
id of its own (``n_class``, ``e_type``...), ``label`` is set for Gephi, and, unless
``yed=False``, each node and edge carries yEd graphics (label, fill colour, arrow). Other
readers (networkx included) ignore those. Attributes without a value are left out rather
than written empty. Graph-level data is not written (Gephi reports such keys as errors):
what the file shows is said in the graph's ``desc``.

Node data: ``label`` (the name), ``class``, ``name``, ``lifecycle``, ``operational_state``,
``criticality`` (int, when set), ``stale`` (bool); for a neighbourhood ``distance`` (hops
from the centre) and ``role`` ``centre`` on the CI asked about; for an impact ``role``
(``failed``, ``affected`` or ``degraded``), ``depth`` (int), ``business_service`` (bool)
and, for degraded CIs, ``degraded`` (which groups lost what). Edge data: ``label`` and
``type`` (the relationship type), ``redundancy_group`` and ``min_healthy`` when set,
``stale`` (bool); for an impact ``propagation`` (bool: the failure travelled along it).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import networkx as nx

from servicegraph.cmdb.errors import UnknownCI, ValidationFailed
from servicegraph.cmdb.impact import ImpactResult
from servicegraph.cmdb.model import ConfigurationItem, Relationship
from servicegraph.cmdb.ports import Direction
from servicegraph.cmdb.relationships import (
    MIN_HEALTHY,
    REDUNDANCY_GROUP,
    ImpactDirection,
    RelationshipRules,
)

GRAPHML_NS = "http://graphml.graphdrawing.org/xmlns"
YED_NS = "http://www.yworks.com/xml/graphml"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA = f"{GRAPHML_NS} http://www.yworks.com/xml/schema/graphml/1.1/ygraphml.xsd"

MAX_DEPTH = 32
DEFAULT_MAX_NODES = 10_000

# (scope, name) -> GraphML type, in the order the keys are declared
NODE_KEYS: dict[str, str] = {
    "label": "string",
    "class": "string",
    "name": "string",
    "lifecycle": "string",
    "operational_state": "string",
    "criticality": "int",
    "stale": "boolean",
    "distance": "int",
    "role": "string",
    "depth": "int",
    "business_service": "boolean",
    "degraded": "string",
}
EDGE_KEYS: dict[str, str] = {
    "label": "string",
    "type": "string",
    "redundancy_group": "string",
    "min_healthy": "int",
    "stale": "boolean",
    "propagation": "boolean",
}

# yEd fill colours
_FILL = {
    "centre": "#90CAF9",
    "failed": "#E53935",
    "affected": "#FB8C00",
    "degraded": "#FDD835",
}
_FILL_DEFAULT = "#E0E0E0"
_LINE_DEFAULT = "#616161"
_LINE_PROPAGATION = "#E53935"

# characters XML 1.0 cannot carry, lone surrogates included
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class GraphReader(Protocol):
    """The reads this module needs; ``CatalogService`` provides them."""

    def get(self, ids: Iterable[str]) -> dict[str, ConfigurationItem]: ...

    def relationships(
        self,
        ci_ids: Iterable[str],
        *,
        direction: Direction = "both",
        types: Iterable[str] | None = None,
    ) -> list[Relationship]: ...


# -- building ------------------------------------------------------------------------------


def _ci_data(ci: ConfigurationItem) -> dict[str, Any]:
    data: dict[str, Any] = {
        "label": ci.name,
        "class": ci.ci_class,
        "name": ci.name,
        "lifecycle": str(ci.lifecycle),
        "operational_state": str(ci.operational_state),
        "stale": ci.stale,
    }
    criticality = ci.attributes.get("criticality")
    if isinstance(criticality, int) and not isinstance(criticality, bool):
        data["criticality"] = criticality
    return data


def _add_relationship(graph: nx.MultiDiGraph, rel: Relationship) -> None:
    data: dict[str, Any] = {"label": rel.type, "type": rel.type, "stale": rel.stale}
    group = rel.attributes.get(REDUNDANCY_GROUP)
    if isinstance(group, str):
        data["redundancy_group"] = group
    min_healthy = rel.attributes.get(MIN_HEALTHY)
    if isinstance(min_healthy, int) and not isinstance(min_healthy, bool):
        data["min_healthy"] = min_healthy
    graph.add_edge(rel.from_id, rel.to_id, key=rel.type, **data)


def _live(cis: Mapping[str, ConfigurationItem]) -> dict[str, ConfigurationItem]:
    return {ci_id: ci for ci_id, ci in cis.items() if ci.merged_into is None}


def neighbourhood_graph(
    reader: GraphReader,
    ci_id: str,
    *,
    depth: int = 1,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> nx.MultiDiGraph:
    """The CI ``ci_id`` and every CI within ``depth`` relationships of it, following
    relationships of every type in both directions, with all the relationships among
    them (removed ones excepted).

    Stops adding CIs once ``max_nodes`` are in (``graph.graph["truncated"]`` says so).
    Raises ``UnknownCI`` for an unknown or merged CI, ``ValidationFailed`` for a depth
    outside 1..32 (field ``depth``) or ``max_nodes`` below 1.
    """
    if not 1 <= depth <= MAX_DEPTH:
        raise ValidationFailed(f"must be between 1 and {MAX_DEPTH}", field="depth")
    if max_nodes < 1:
        raise ValidationFailed("must be at least 1", field="max_nodes")
    centre = _live(reader.get([ci_id])).get(ci_id)
    if centre is None:
        raise UnknownCI(ci_id)
    graph = nx.MultiDiGraph(kind="neighbourhood", centre=ci_id, depth=depth, truncated=False)
    graph.add_node(ci_id, **_ci_data(centre), distance=0, role="centre")
    frontier = [ci_id]
    relationships: dict[tuple[str, str, str], Relationship] = {}
    for distance in range(1, depth + 2):
        if not frontier:
            break
        found = reader.relationships(frontier)
        for rel in found:
            relationships[(rel.from_id, rel.type, rel.to_id)] = rel
        if distance > depth:  # the last round only looks for links among what is in
            break
        new = [other for rel in found for other in (rel.from_id, rel.to_id) if other not in graph]
        new = list(dict.fromkeys(new))
        room = max_nodes - graph.number_of_nodes()
        if len(new) > room:
            graph.graph["truncated"] = True
            new = new[:room]
        cis = _live(reader.get(new)) if new else {}
        frontier = [other for other in new if other in cis]
        for other in frontier:
            graph.add_node(other, **_ci_data(cis[other]), distance=distance)
    for rel in relationships.values():
        if rel.from_id in graph and rel.to_id in graph:
            _add_relationship(graph, rel)
    return graph


def _describe(groups: Sequence[tuple[str, int, int, int]]) -> str:
    return "; ".join(
        f"{name}: {failed} of {size} lost, needs {min_healthy}"
        for name, failed, size, min_healthy in groups
    )


def impact_graph(
    reader: GraphReader, result: ImpactResult, rules: RelationshipRules
) -> nx.MultiDiGraph:
    """What ``result`` found: the failed CIs, those that fail with them, and those left
    degraded, with every relationship among them; those the failure travelled along (the
    last hop of each affected CI's path) have ``propagation`` set.

    ``rules`` tells which end of a relationship type needs the other, to find the stored
    relationship behind each hop.
    """
    degraded: dict[str, list[tuple[str, int, int, int]]] = {}
    for group in result.degraded:
        degraded.setdefault(group.ci_id, []).append(
            (group.group, group.failed, group.size, group.min_healthy)
        )
    ids = list(dict.fromkeys([*result.failed, *(a.ci_id for a in result.affected), *degraded]))
    cis = reader.get(ids)
    graph = nx.MultiDiGraph(
        kind="impact",
        failed=tuple(result.failed),
        max_depth=result.max_depth,
        truncated=result.truncated,
    )
    business = set(result.business_services)
    for ci_id in result.failed:
        if ci_id in cis:
            graph.add_node(ci_id, **_ci_data(cis[ci_id]), role="failed", depth=0)
    for affected in result.affected:
        if affected.ci_id in cis:
            graph.add_node(
                affected.ci_id,
                **_ci_data(cis[affected.ci_id]),
                role="affected",
                depth=affected.depth,
                business_service=affected.ci_id in business,
            )
    for ci_id, groups in degraded.items():
        if ci_id in cis and ci_id not in graph:
            graph.add_node(
                ci_id, **_ci_data(cis[ci_id]), role="degraded", degraded=_describe(groups)
            )
    for rel in reader.relationships(list(graph.nodes)):
        if rel.from_id in graph and rel.to_id in graph:
            _add_relationship(graph, rel)
    for affected in result.affected:
        if len(affected.path) < 2:
            continue
        provider, last = affected.path[-2].ci_id, affected.path[-1]
        if last.relationship is None:
            continue
        if rules.get(last.relationship).impact is ImpactDirection.FROM_TO:
            edge = (provider, last.ci_id, last.relationship)
        else:
            edge = (last.ci_id, provider, last.relationship)
        if graph.has_edge(*edge):
            graph.edges[edge]["propagation"] = True
    for *_, data in graph.edges(keys=True, data=True):
        data.setdefault("propagation", False)
    return graph


# -- writing -------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("\ufffd", str(value))


def _description(graph: nx.MultiDiGraph) -> str:
    meta = graph.graph
    if meta.get("kind") == "neighbourhood":
        text = f"servicegraph: the neighbourhood of {meta['centre']} to depth {meta['depth']}"
    elif meta.get("kind") == "impact":
        text = f"servicegraph: the impact of {', '.join(meta['failed'])}"
        text += f" (depth at most {meta['max_depth']})"
    else:
        return "servicegraph"
    if meta.get("truncated"):
        text += "; incomplete: the bound stopped it"
    return text


def _yed_node(parent: ET.Element, data: Mapping[str, Any]) -> None:
    # the name alone, as in ``label``: networkx reads yEd's label into ``label`` too
    label = str(data.get("label", ""))
    width = max(60, 8 * len(label) + 16)
    holder = ET.SubElement(parent, "data", key="n_yed")
    shape = ET.SubElement(holder, "y:ShapeNode")
    ET.SubElement(shape, "y:Geometry", height="40.0", width=f"{width}.0")
    fill = _FILL.get(str(data.get("role")), _FILL_DEFAULT)
    ET.SubElement(shape, "y:Fill", color=fill, transparent="false")
    ET.SubElement(shape, "y:BorderStyle", color="#000000", type="line", width="1.0")
    ET.SubElement(shape, "y:NodeLabel").text = _text(label)
    ET.SubElement(shape, "y:Shape", type="roundrectangle")


def _yed_edge(parent: ET.Element, data: Mapping[str, Any]) -> None:
    holder = ET.SubElement(parent, "data", key="e_yed")
    line = ET.SubElement(holder, "y:PolyLineEdge")
    hot = bool(data.get("propagation"))
    ET.SubElement(
        line,
        "y:LineStyle",
        color=_LINE_PROPAGATION if hot else _LINE_DEFAULT,
        type="line",
        width="2.0" if hot else "1.0",
    )
    ET.SubElement(line, "y:Arrows", source="none", target="standard")
    ET.SubElement(line, "y:EdgeLabel").text = _text(data.get("label", ""))


def to_graphml(graph: nx.MultiDiGraph, *, yed: bool = True) -> str:
    """``graph`` (as the builders above make it) as a GraphML document; write it to a file
    as UTF-8. ``yed`` adds yEd's drawing elements (label, colour, arrows)."""
    root = ET.Element("graphml", xmlns=GRAPHML_NS)
    root.set("xmlns:xsi", XSI_NS)
    if yed:
        root.set("xmlns:y", YED_NS)
    root.set("xsi:schemaLocation", SCHEMA)
    used_node = {k for _, data in graph.nodes(data=True) for k in data}
    used_edge = {k for *_, data in graph.edges(keys=True, data=True) for k in data}
    for scope, keys, used in (("node", NODE_KEYS, used_node), ("edge", EDGE_KEYS, used_edge)):
        for name, kind in keys.items():
            if name in used:
                attributes = {"id": f"{scope[0]}_{name}", "for": scope, "attr.name": name}
                ET.SubElement(root, "key", {**attributes, "attr.type": kind})
    if yed:
        ET.SubElement(root, "key", {"id": "n_yed", "for": "node", "yfiles.type": "nodegraphics"})
        ET.SubElement(root, "key", {"id": "e_yed", "for": "edge", "yfiles.type": "edgegraphics"})
    body = ET.SubElement(root, "graph", id="G", edgedefault="directed")
    ET.SubElement(body, "desc").text = _text(_description(graph))
    for node, data in graph.nodes(data=True):
        element = ET.SubElement(body, "node", id=_text(node))
        for name in NODE_KEYS:
            if data.get(name) is not None:
                ET.SubElement(element, "data", key=f"n_{name}").text = _text(data[name])
        if yed:
            _yed_node(element, data)
    for source, target, key, data in graph.edges(keys=True, data=True):
        element = ET.SubElement(
            body,
            "edge",
            id=_text(f"{source}-{key}-{target}"),
            source=_text(source),
            target=_text(target),
        )
        for name in EDGE_KEYS:
            if data.get(name) is not None:
                ET.SubElement(element, "data", key=f"e_{name}").text = _text(data[name])
        if yed:
            _yed_edge(element, data)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def neighbourhood_graphml(
    reader: GraphReader,
    ci_id: str,
    *,
    depth: int = 1,
    max_nodes: int = DEFAULT_MAX_NODES,
    yed: bool = True,
) -> str:
    """``to_graphml(neighbourhood_graph(...))``."""
    return to_graphml(neighbourhood_graph(reader, ci_id, depth=depth, max_nodes=max_nodes), yed=yed)


def impact_graphml(
    reader: GraphReader, result: ImpactResult, rules: RelationshipRules, *, yed: bool = True
) -> str:
    """``to_graphml(impact_graph(...))``."""
    return to_graphml(impact_graph(reader, result, rules), yed=yed)
