"""Why did an incident happen? Its root cause with the other candidates, and how sure we are.

Correlation records one root cause per incident (``servicegraph.correlation.rootcause``).
Whoever works the incident also wants the runners-up: this module scores every CI that
could explain the incident's alerts through hard dependencies, the same way:

- an alerting CI with no alerting CI above it: the share of the incident's alerting CIs
  its failure explains;
- a silent CI above them (within ``topology_depth`` hops): the share it explains times the
  share of its direct dependents that are failing, as inferred roots are scored.

The recorded root cause comes first, with the confidence correlation gave it.

The changes that may be behind it come with it (``changes``): those linked to the incident
as its cause (by correlation when it opened, or by people), and any change the
``after_change_window`` rule names now for its root cause as analysed since.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from servicegraph.correlation.changes import LOAD_MARGIN, ChangeMatch, ChangeWindow
from servicegraph.correlation.correlator import Correlator
from servicegraph.correlation.rootcause import HardTopology, RootCauseTracker
from servicegraph.events.model import Alert
from servicegraph.ticketing.change_model import Change, ChangeStatus
from servicegraph.ticketing.errors import TicketNotFound
from servicegraph.ticketing.model import Incident, LinkKind, TicketLink, WorklogKind
from servicegraph.ticketing.ports import TicketStore


@dataclass(frozen=True, slots=True)
class RootCauseCandidate:
    ci_id: str
    ci_class: str
    confidence: float  # 0..1
    alerting: bool  # the CI itself has an alert in the incident
    explains: int  # how many of the incident's alerting CIs its failure explains
    chosen: bool  # the root cause correlation recorded


@dataclass(frozen=True, slots=True)
class ChangeSuspect:
    """A change that may have caused the incident (or under which its alerts were expected)."""

    change_id: str
    number: int
    title: str
    status: ChangeStatus
    reason: str  # with CI names: "possibly caused by change 12 'Upgrade core-1' (...): ..."
    ci_ids: tuple[str, ...]
    linked: bool  # a caused_by_change link from the incident to it exists


@dataclass(frozen=True)
class RootCauseAnalysis:
    incident: Incident
    candidates: tuple[RootCauseCandidate, ...]
    alerting_ci_ids: tuple[str, ...]
    alerts: tuple[Alert, ...]
    unmapped_alerts: int  # alerts that name no CI of the graph
    changes: tuple[ChangeSuspect, ...] = ()  # linked ones first, then by number

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
            analysis = self._analyse(hard, incident, alerts)
            return replace(analysis, changes=self._changes(hard, incident))

    def _changes(self, hard: HardTopology, incident: Incident) -> tuple[ChangeSuspect, ...]:
        """The changes linked to the incident as its cause, with the reason their link was
        logged with, then those the after-change rule names now (``changes``)."""
        linked, logged = self._linked(incident)
        matches = self._by_rule(hard, incident)
        changes: dict[str, Change] = {m.change.id: m.change for m in matches.values()}
        missing = [i for i in linked if i not in changes]
        if missing:
            changes.update(self.tickets.get_changes(missing))
        names = self._names({i for m in matches.values() for i in (m.ci_id, m.change_ci_id)})
        suspects = []
        for change_id, change in changes.items():
            match = matches.get(change_id)
            if change_id in logged:
                reason = logged[change_id]
            elif match is not None:
                reason = match.reason(lambda i: names.get(i, i))
            else:  # linked by someone, not by correlation's rule
                reason = f"linked as its cause by {linked[change_id].created_by}"
            suspects.append(
                ChangeSuspect(
                    change_id=change.id,
                    number=change.number,
                    title=change.title,
                    status=change.status,
                    reason=reason,
                    ci_ids=tuple(change.ci_ids),
                    linked=change_id in linked,
                )
            )
        return tuple(sorted(suspects, key=lambda s: (not s.linked, s.number)))

    def _linked(self, incident: Incident) -> tuple[dict[str, TicketLink], dict[str, str]]:
        """The incident's caused_by_change links by change id, and the reason each was
        logged with (the text of its LINKED entry) where the history has it."""
        links = self.tickets.links_of([incident.id]).get(incident.id, [])
        linked = {
            k.target_id: k
            for k in links
            if k.kind is LinkKind.CAUSED_BY_CHANGE and k.source_id == incident.id
        }
        logged: dict[str, str] = {}
        if linked:
            # the LINKED entry's ``new`` names the link as ``linked_entries`` writes it
            named = {f"{incident.id} caused by change {i}": i for i in linked}
            for e in self.tickets.worklog([incident.id]).get(incident.id, []):
                target = named.get(e.new or "") if e.kind is WorklogKind.LINKED else None
                if target is not None:
                    logged.setdefault(target, e.text)
        return linked, logged

    def _by_rule(self, hard: HardTopology, incident: Incident) -> dict[str, ChangeMatch]:
        """The changes the after-change rule names for the incident's root cause now."""
        if incident.root_ci_id is None:
            return {}
        after = self.correlator.policy.after_change_window
        t = incident.opened_at
        around = self.tickets.changes_touching(t - after - LOAD_MARGIN, t + LOAD_MARGIN)
        window = ChangeWindow(around, hard, after)
        return {m.change.id: m for m in window.possible_causes(incident.root_ci_id, t)}

    def _names(self, ci_ids: set[str]) -> dict[str, str]:
        """CI id -> name, from the graph store (not the correlator's cache: it belongs to
        the worker's thread)."""
        if not ci_ids:
            return {}
        found = self.correlator.graph_store.summaries(ci_ids)
        return {ci_id: ci.name for ci_id, ci in found.items()}

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
