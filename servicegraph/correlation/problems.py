"""Problem candidates: which item is behind most of the incidents of a period?

An incident is *explained* by its root CI and by every CI whose loss alone would have
failed that root (its hard upstream, see ``rootcause``). Ranking CIs by how many incidents
they explain answers the problem manager's question; a switch that explains forty
incidents of its servers ranks above each server's own three.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from servicegraph.cmdb.topology import ImpactGraph
from servicegraph.correlation.correlator import Correlator
from servicegraph.correlation.rootcause import HardTopology
from servicegraph.ticketing.model import Incident
from servicegraph.ticketing.ports import IncidentFilter


@dataclass(frozen=True)
class ProblemCandidate:
    ci_id: str
    ci_class: str
    name: str
    incidents_explained: int
    as_root: int  # incidents whose recorded root cause is this CI
    incident_ids: tuple[str, ...]


def problem_candidates(
    correlator: Correlator,
    *,
    since: dt.datetime,
    until: dt.datetime | None = None,
    limit: int = 20,
    max_incidents: int = 100_000,
) -> list[ProblemCandidate]:
    incidents = correlator.tickets.find_incidents(
        IncidentFilter(opened_since=since, limit=max_incidents)
    )
    with correlator.impact.reading() as graph:
        return _rank(correlator, graph, incidents, until=until, limit=limit)


def _rank(
    correlator: Correlator,
    graph: ImpactGraph,
    incidents: list[Incident],
    *,
    until: dt.datetime | None,
    limit: int,
) -> list[ProblemCandidate]:
    # a topology of its own: its caches are not shared with the correlation worker's thread
    hard = HardTopology(graph, correlator.policy.topology_depth)
    explained: dict[int, list[str]] = {}
    as_root: dict[int, int] = {}
    for incident in incidents:
        if until is not None and incident.opened_at > until:
            continue
        root = graph.index.get(incident.root_ci_id or "")
        if root is None:
            continue
        as_root[root] = as_root.get(root, 0) + 1
        for node in hard.upstream(root):
            explained.setdefault(node, []).append(incident.id)
    ranked = sorted(explained.items(), key=lambda item: (-len(item[1]), graph.ids[item[0]]))
    top = ranked[:limit]
    cis = correlator.graph_store.get_cis(graph.ids[node] for node, _ in top)
    result = []
    for node, incident_ids in top:
        ci_id = graph.ids[node]
        ci = cis.get(ci_id)
        result.append(
            ProblemCandidate(
                ci_id=ci_id,
                ci_class=graph.classes[node],
                name=ci.name if ci else ci_id,
                incidents_explained=len(incident_ids),
                as_root=as_root.get(node, 0),
                incident_ids=tuple(sorted(incident_ids)),
            )
        )
    return result
