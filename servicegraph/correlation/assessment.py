"""Incident assessment: what an incident's root cause and impacted business services mean
for the desk.

- *impact* from the business services' criticality: high when one of them has a
  criticality of at most ``high_impact_criticality`` (1 = most critical), medium when
  some service is hit, low when none is;
- *urgency* from the worst severity of the incident's alerts (``Members.worst``: of the
  firing ones, or of all when none fires);
- *priority* from the policy's impact x urgency matrix, kept within the bounds routing
  set on the incident (``priority_floor``/``priority_ceiling``) with every batch, so a
  floor never stops it rising as impact grows and a ceiling applies as the matrix moves;
  an agent's override wins over both and is kept as it is;
- the *title*, naming the root CI and its alert.

Pure functions over values the batch already holds (no store access): the correlator
computes the root cause and the services, looks up the CI facts once for all the batch's
incidents, and applies the assessment to each incident.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from servicegraph.correlation.policy import CorrelationPolicy, urgency_of
from servicegraph.correlation.state import Members
from servicegraph.events.model import Alert
from servicegraph.ticketing.model import Incident

# CI id -> (name, criticality, sla_tier, service_hours), as ``Correlator._ci_facts`` gives them
CIFacts = Mapping[str, tuple[str, Any, Any, Any]]
_UNRANKED = 3  # where a service without a numeric criticality ranks (1 most critical .. 5)


@dataclass(frozen=True, slots=True)
class Assessment:
    business_services: tuple[str, ...]
    impact: str
    urgency: str
    priority: int
    title: str
    sla_tier: str | None = None
    service_hours: str | None = None

    def apply_to(self, incident: Incident) -> None:
        incident.business_services = list(self.business_services)
        incident.sla_tier, incident.service_hours = self.sla_tier, self.service_hours
        incident.impact = self.impact
        incident.urgency = self.urgency
        incident.priority = self.priority
        incident.title = self.title


def assess(
    incident: Incident,
    alerts: Mapping[str, Alert],
    members: Members,
    services: Sequence[str],
    facts: CIFacts,
    policy: CorrelationPolicy,
) -> Assessment:
    """The assessment of ``incident`` whose root cause is current: ``alerts`` are its
    alerts by fingerprint, ``members`` their summary, ``services`` the impacted business
    services' CI ids, ``facts`` holds at least those and the root CI that exist."""
    impact = impact_of(services, facts, policy.high_impact_criticality)
    urgency = urgency_of(members.worst)
    root_alert = alerts.get(incident.root_fingerprint or "")
    if incident.agent_override:
        priority = incident.priority
    else:
        priority = incident.bounded(policy.priority_matrix[impact][urgency])
    tier, hours = sla_of(services, facts)
    return Assessment(
        business_services=tuple(services),
        impact=impact,
        urgency=urgency,
        priority=priority,
        title=title_of(incident, members.count, root_alert or members.first, facts),
        sla_tier=tier,
        service_hours=hours,
    )


def sla_of(services: Sequence[str], facts: CIFacts) -> tuple[str | None, str | None]:
    """The ``sla_tier`` and ``service_hours`` of the most critical impacted business
    service that declares a tier (the first of equally critical ones): the SLA the
    incident is held to is that of the most important thing it breaks."""
    best: tuple[int, int] | None = None
    found: tuple[str | None, str | None] = (None, None)
    for i, s in enumerate(services):
        fact = facts.get(s)
        if fact is None or not isinstance(fact[2], str) or not fact[2]:
            continue
        c = fact[1]
        rank = c if isinstance(c, int) and not isinstance(c, bool) else _UNRANKED
        if best is None or (rank, i) < best:
            best = (rank, i)
            hours = fact[3] if isinstance(fact[3], str) and fact[3] else None
            found = (fact[2], hours)
    return found


def impact_of(services: Sequence[str], facts: CIFacts, high_criticality: int) -> str:
    """high, medium or low; a service without a known criticality counts as medium."""
    if any(
        (c := facts[s][1] if s in facts else None) is not None and c <= high_criticality
        for s in services
    ):
        return "high"
    if services:
        return "medium"
    return "low"


def title_of(incident: Incident, count: int, root_alert: Alert | None, facts: CIFacts) -> str:
    """``<root CI>: <root alert> (+n related)``, or, for an inferred root (a CI that sent
    no alert itself), ``<root CI> suspected down: n dependent alerts``."""
    what = root_alert.name if root_alert is not None else "alert"
    fact = facts.get(incident.root_ci_id or "")
    where = fact[0] if fact is not None else ""
    if incident.root_inferred:
        title = f"{where} suspected down: {count} dependent alerts"
    else:
        title = f"{where}: {what}" if where else what
        if count > 1:
            title += f" (+{count - 1} related)"
    return title
