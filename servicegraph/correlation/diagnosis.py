"""Why did an incident happen? Its root cause with the other candidates, and how sure we are.

Correlation records one root cause per incident (``servicegraph.correlation.rootcause``).
Whoever works the incident also wants the runners-up: this module scores every CI that
could explain the incident's alerts through hard dependencies, the same way:

- an alerting CI with no alerting CI above it: the share of the incident's alerting CIs
  its failure explains;
- a silent CI above them (within ``topology_depth`` hops): the share it explains times the
  share of its direct dependents that are failing, as inferred roots are scored.

The recorded root cause comes first, with the confidence correlation gave it.
"""

from __future__ import annotations

from dataclasses import dataclass

from servicegraph.correlation.correlator import Correlator
from servicegraph.correlation.rootcause import HardTopology, RootCauseTracker
from servicegraph.events.model import Alert
from servicegraph.ticketing.errors import TicketNotFound
from servicegraph.ticketing.model import Incident
from servicegraph.ticketing.ports import TicketStore


@dataclass(frozen=True, slots=True)
class RootCauseCandidate:
    ci_id: str
    ci_class: str
    confidence: float  # 0..1
    alerting: bool  # the CI itself has an alert in the incident
    explains: int  # how many of the incident's alerting CIs its failure explains
    chosen: bool  # the root cause correlation recorded


@dataclass(frozen=True)
class RootCauseAnalysis:
    incident: Incident
    candidates: tuple[RootCauseCandidate, ...]
    alerting_ci_ids: tuple[str, ...]
    alerts: tuple[Alert, ...]
    unmapped_alerts: int  # alerts that name no CI of the graph

    @property
    def root(self) -> RootCauseCandidate | None:
        return next((c for c in self.candidates if c.chosen), None)


class DiagnosisService:
    def __init__(
        self, tickets: TicketStore, correlator: Correlator, *, max_candidates: int = 10
    ) -> None:
        self.tickets = tickets
        self.correlator = correlator
        self.max_candidates = max_candidates

    def root_cause(self, incident_id: str) -> RootCauseAnalysis:
        incident = self.tickets.get_incidents([incident_id]).get(incident_id)
        if incident is None:
            raise TicketNotFound("incident", incident_id, field="incident_id")
        alerts = tuple(self.tickets.incident_alerts([incident_id]).get(incident_id, []))
        with self.correlator.impact.reading() as graph:
            # A topology of its own: HardTopology's caches are not meant to be shared with
            # the correlation worker's thread.
            hard = HardTopology(graph, self.correlator.policy.topology_depth)
            return self._analyse(hard, incident, alerts)

    def _analyse(
        self, hard: HardTopology, incident: Incident, alerts: tuple[Alert, ...]
    ) -> RootCauseAnalysis:
        graph = hard.graph
        nodes: set[int] = set()
        unmapped = 0
        for alert in alerts:
            node = graph.index.get(alert.ci_id or "")
            if node is None or node in graph.merged:
                unmapped += 1
            else:
                nodes.add(node)
        scored = self._score(hard, nodes) if nodes else {}
        chosen_node = graph.index.get(incident.root_ci_id or "")
        candidates = []
        if incident.root_ci_id is not None:
            explains = scored.pop(chosen_node, (0.0, 0))[1] if chosen_node is not None else 0
            candidates.append(
                RootCauseCandidate(
                    ci_id=incident.root_ci_id,
                    ci_class=graph.classes[chosen_node] if chosen_node is not None else "",
                    confidence=incident.root_confidence,
                    alerting=chosen_node in nodes,
                    explains=explains,
                    chosen=True,
                )
            )
        ranked = sorted(
            scored.items(),
            key=lambda item: (-item[1][0], -item[1][1], item[0] not in nodes, graph.ids[item[0]]),
        )
        for node, (confidence, explains) in ranked[: self.max_candidates - len(candidates)]:
            candidates.append(
                RootCauseCandidate(
                    ci_id=graph.ids[node],
                    ci_class=graph.classes[node],
                    confidence=round(confidence, 3),
                    alerting=node in nodes,
                    explains=explains,
                    chosen=False,
                )
            )
        return RootCauseAnalysis(
            incident=incident,
            candidates=tuple(candidates),
            alerting_ci_ids=tuple(sorted(graph.ids[n] for n in nodes)),
            alerts=alerts,
            unmapped_alerts=unmapped,
        )

    @staticmethod
    def _score(hard: HardTopology, nodes: set[int]) -> dict[int, tuple[float, int]]:
        """node -> (confidence, alerting CIs explained) for every plausible root."""
        tracker = RootCauseTracker(hard)
        for node in nodes:
            tracker.add(node)
        return tracker.candidates()
