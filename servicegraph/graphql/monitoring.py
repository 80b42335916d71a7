"""Monitoring in GraphQL: alerts, incidents, problems, root cause and problem candidates."""

from __future__ import annotations

import datetime as dt

import strawberry
from strawberry.scalars import JSON

from servicegraph.cmdb.model import utcnow
from servicegraph.correlation.diagnosis import RootCauseAnalysis
from servicegraph.correlation.problems import ProblemCandidate as DomainCandidate
from servicegraph.correlation.problems import problem_candidates
from servicegraph.events.model import Alert
from servicegraph.graphql.base import (
    AlertStatusEnum,
    ChangeStatusEnum,
    ProblemStatusEnum,
    SeverityEnum,
    Ticket,
    TicketStatusEnum,
    aware,
    query_field,
)
from servicegraph.graphql.change_types import ChangeType
from servicegraph.graphql.cmdb import CIType, load_ci, resolve_ref
from servicegraph.graphql.context import Info
from servicegraph.graphql.desk_types import DeskTicketFields, HistoryEntry, desk_values
from servicegraph.ticketing.model import Incident, Problem
from servicegraph.ticketing.ports import IncidentFilter, ProblemFilter
from servicegraph.ticketing.problems import KnownErrorMatch, resolution_proposal


@strawberry.type(
    name="Alert",
    description="The current state of one monitored condition (events with one fingerprint).",
)
class AlertType:
    fingerprint: str
    source: str
    name: str
    severity: SeverityEnum  # type: ignore[valid-type]
    status: AlertStatusEnum  # type: ignore[valid-type]
    labels: JSON
    summary: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    last_change: dt.datetime
    count: int = strawberry.field(description="Events received for it.")
    ci_id: strawberry.ID | None
    incident_id: strawberry.ID | None
    cleared_at: dt.datetime | None
    flapping: bool
    reported_at: dt.datetime | None = strawberry.field(
        description="The time its source gave for its latest event dated more than "
        "max_clock_skew_s after it arrived (that event was dated at its arrival instead)."
    )
    change_id: strawberry.ID | None = strawberry.field(
        description="The change under which it fired, expected: it opened no incident of "
        "its own (correlation.expected_alerts)."
    )

    @classmethod
    def of(cls, a: Alert) -> AlertType:
        return cls(
            fingerprint=a.fingerprint,
            source=a.source,
            name=a.name,
            severity=a.severity,
            status=a.status,
            labels=JSON(dict(a.labels)),
            summary=a.summary,
            first_seen=a.first_seen,
            last_seen=a.last_seen,
            last_change=a.last_change,
            count=a.count,
            ci_id=strawberry.ID(a.ci_id) if a.ci_id else None,
            incident_id=strawberry.ID(a.incident_id) if a.incident_id else None,
            cleared_at=a.cleared_at,
            flapping=a.flapping,
            reported_at=a.reported_at,
            change_id=strawberry.ID(a.change_id) if a.change_id else None,
        )

    @strawberry.field
    async def ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.ci_id) if self.ci_id else None)


@strawberry.type(
    name="Incident",
    description="A ticket of the desk (see type): an incident, raised by correlation from "
    "alerts or by people, or a service request.",
)
class IncidentType(Ticket, DeskTicketFields):
    title: str
    status: TicketStatusEnum  # type: ignore[valid-type]
    priority: int = strawberry.field(description="1 (highest) to 5, from impact x urgency.")
    impact: str
    urgency: str
    opened_at: dt.datetime
    updated_at: dt.datetime
    last_alert_at: dt.datetime
    resolved_at: dt.datetime | None
    root_ci_id: strawberry.ID | None
    root_inferred: bool = strawberry.field(
        description="The root cause is a silent CI above the alerting ones."
    )
    root_confidence: float
    business_service_ids: list[strawberry.ID]
    flapping: bool
    reopen_count: int
    problem_id: strawberry.ID | None
    alert_count: int
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    assignee: str | None
    resolved_by: str | None = strawberry.field(
        description="Who resolved it by hand; null when correlation resolved it."
    )
    resolution: str | None

    @classmethod
    def of(cls, i: Incident) -> IncidentType:
        return cls(
            id=strawberry.ID(i.id),
            number=i.number,
            title=i.title,
            status=i.status,
            priority=i.priority,
            impact=i.impact,
            urgency=i.urgency,
            opened_at=i.opened_at,
            updated_at=i.updated_at,
            last_alert_at=i.last_alert_at,
            resolved_at=i.resolved_at,
            root_ci_id=strawberry.ID(i.root_ci_id) if i.root_ci_id else None,
            root_inferred=i.root_inferred,
            root_confidence=i.root_confidence,
            business_service_ids=[strawberry.ID(s) for s in i.business_services],
            flapping=i.flapping,
            reopen_count=i.reopen_count,
            problem_id=strawberry.ID(i.problem_id) if i.problem_id else None,
            alert_count=i.alert_count,
            acknowledged_at=i.acknowledged_at,
            acknowledged_by=i.acknowledged_by,
            assignee=i.assignee,
            resolved_by=i.resolved_by,
            resolution=i.resolution,
            **desk_values(i),
        )

    @strawberry.field
    async def root_ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.root_ci_id) if self.root_ci_id else None)

    @strawberry.field(description="Business services down or at risk because of it.")
    async def business_services(self, info: Info) -> list[CIType]:
        found = await info.context.loaders.cis.load_many(
            [str(s) for s in self.business_service_ids]
        )
        return [CIType.of(ci) for ci in found if ci is not None]

    @strawberry.field
    async def alerts(self, info: Info) -> list[AlertType]:
        return [AlertType.of(a) for a in await info.context.loaders.alerts.load(str(self.id))]

    @strawberry.field(description="The problem this incident is an instance of.")
    async def problem(self, info: Info) -> ProblemType | None:
        if self.problem_id is None:
            return None
        problem = await info.context.loaders.problems.load(str(self.problem_id))
        return ProblemType.of(problem) if problem is not None else None

    @strawberry.field(
        description="Known errors whose root CI is one of its CIs, or whose signature is its "
        "root alert's or one of its CIs': their workarounds may restore service at once."
    )
    async def known_errors(self, info: Info) -> list[KnownErrorMatchType]:
        incident = await info.context.loaders.incidents.load(str(self.id))
        if incident is None:
            return []
        alerts = await info.context.loaders.alerts.load(incident.id)
        matches = info.context.services.desk.problems.known_errors_for(incident, alerts=alerts)
        return [KnownErrorMatchType.of(m) for m in matches]


@strawberry.type(
    name="Problem",
    description="The cause of incidents (ITIL problem): investigated, recorded as a known "
    "error with its workaround, fixed by a change, resolved and closed.",
)
class ProblemType(Ticket):
    title: str
    status: ProblemStatusEnum  # type: ignore[valid-type]
    created_at: dt.datetime
    updated_at: dt.datetime
    root_ci_id: strawberry.ID | None
    reason: str = strawberry.field(description="Why it was opened.")
    signature: str = strawberry.field(
        description="What makes incidents its instances: ci:<CI id>, alert:<source>/<name> "
        "(both found by recurrence) or manual:<problem id>."
    )
    known_error: str | None
    workaround: str | None
    incident_ids: list[strawberry.ID]
    assignee: str | None = strawberry.field(description="The agent analysing it (a login).")
    description: str
    root_cause: str = strawberry.field(description="What causes it (root-cause analysis).")
    fix: str = strawberry.field(description="The permanent fix.")
    fixing_change_id: strawberry.ID | None = strawberry.field(
        description="The change that removes its cause."
    )
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    resolution: str = strawberry.field(
        description="How it was resolved, or why it was closed without a fix."
    )
    domain: strawberry.Private[Problem]

    @classmethod
    def of(cls, p: Problem) -> ProblemType:
        return cls(
            id=strawberry.ID(p.id),
            number=p.number,
            title=p.title,
            status=p.status,
            created_at=p.created_at,
            updated_at=p.updated_at,
            root_ci_id=strawberry.ID(p.root_ci_id) if p.root_ci_id else None,
            reason=p.reason,
            signature=p.signature,
            known_error=p.known_error,
            workaround=p.workaround,
            incident_ids=[strawberry.ID(i) for i in p.incident_ids],
            assignee=p.assignee,
            description=p.description,
            root_cause=p.root_cause,
            fix=p.fix,
            fixing_change_id=strawberry.ID(p.fixing_change_id) if p.fixing_change_id else None,
            resolved_at=p.resolved_at,
            closed_at=p.closed_at,
            resolution=p.resolution,
            domain=p,
        )

    @strawberry.field
    async def root_ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.root_ci_id) if self.root_ci_id else None)

    @strawberry.field(description="Its incidents (instances).")
    async def incidents(self, info: Info) -> list[IncidentType]:
        found = await info.context.loaders.incidents.load_many([str(i) for i in self.incident_ids])
        return [IncidentType.of(i) for i in found if i is not None]

    @strawberry.field(
        description="The lifecycle steps you may take now (for transitionProblem's step)."
    )
    def allowed_steps(self, info: Info) -> list[str]:
        return info.context.services.desk.problems.allowed_steps(self.domain.status)

    @strawberry.field(description="The change that removes its cause.")
    async def fixing_change(self, info: Info) -> ChangeType | None:
        if self.fixing_change_id is None:
            return None
        change = await info.context.loaders.changes.load(str(self.fixing_change_id))
        return ChangeType.of(change) if change is not None else None

    @strawberry.field(
        description="Set when its fixing change closed successfully while it is still "
        "active: resolving it is proposed (people decide)."
    )
    async def resolution_proposal(self, info: Info) -> str | None:
        if self.fixing_change_id is None:
            return None
        change = await info.context.loaders.changes.load(str(self.fixing_change_id))
        return resolution_proposal(self.domain, change)

    @strawberry.field(
        description="Every step and field change, oldest first: status, assignee, analysis, "
        "known error, fixing change ..."
    )
    async def history(self, info: Info) -> list[HistoryEntry]:
        entries = await info.context.loaders.worklog.load(str(self.id))
        return [HistoryEntry.of(e) for e in entries]


@strawberry.type(
    name="KnownErrorMatch",
    description="A known error offered on an incident: its workaround, and why it matches.",
)
class KnownErrorMatchType:
    problem: ProblemType
    known_error: str | None
    workaround: str | None
    why: str = strawberry.field(
        description="Why it is offered: 'same root CI db-1', 'same alert signature "
        "prometheus/HostDown' ..."
    )

    @classmethod
    def of(cls, match: KnownErrorMatch) -> KnownErrorMatchType:
        return cls(
            problem=ProblemType.of(match.problem),
            known_error=match.problem.known_error,
            workaround=match.workaround,
            why=match.why,
        )


@strawberry.type
class RootCauseCandidate:
    ci_id: strawberry.ID
    ci_class: str = strawberry.field(name="class")
    confidence: float = strawberry.field(description="0 to 1.")
    alerting: bool = strawberry.field(description="The CI has an alert in the incident.")
    explains: int = strawberry.field(description="Alerting CIs its failure explains.")
    chosen: bool = strawberry.field(description="The root cause correlation recorded.")

    @strawberry.field
    async def ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.ci_id))


@strawberry.type(description="A change that may be behind an incident.")
class ChangeSuspect:
    change_id: strawberry.ID
    number: int
    title: str
    status: ChangeStatusEnum  # type: ignore[valid-type]
    reason: str = strawberry.field(
        description="Why, with CI names: \"possibly caused by change 12 'Upgrade core-1' "
        '(closed 25 minutes before): core-1 is upstream of db-1".'
    )
    ci_ids: list[strawberry.ID]
    linked: bool = strawberry.field(
        description="The incident is linked to it (caused_by_change), by correlation or people."
    )


@strawberry.type
class RootCause:
    incident: IncidentType
    root_ci_id: strawberry.ID | None
    inferred: bool
    confidence: float
    candidates: list[RootCauseCandidate] = strawberry.field(
        description="The recorded root cause first, then the others by confidence."
    )
    alerting_ci_ids: list[strawberry.ID]
    unmapped_alerts: int = strawberry.field(description="Alerts that name no CI of the graph.")
    alerts: list[AlertType]
    changes: list[ChangeSuspect] = strawberry.field(
        description="Changes that may have caused it: those it is linked to, then those "
        "ended within correlation.after_change_window_s before it opened on its root CI "
        "or what that hard-depends on."
    )

    @classmethod
    def of(cls, analysis: RootCauseAnalysis) -> RootCause:
        incident = analysis.incident
        return cls(
            incident=IncidentType.of(incident),
            root_ci_id=strawberry.ID(incident.root_ci_id) if incident.root_ci_id else None,
            inferred=incident.root_inferred,
            confidence=incident.root_confidence,
            candidates=[
                RootCauseCandidate(
                    ci_id=strawberry.ID(c.ci_id),
                    ci_class=c.ci_class,
                    confidence=c.confidence,
                    alerting=c.alerting,
                    explains=c.explains,
                    chosen=c.chosen,
                )
                for c in analysis.candidates
            ],
            alerting_ci_ids=[strawberry.ID(i) for i in analysis.alerting_ci_ids],
            unmapped_alerts=analysis.unmapped_alerts,
            alerts=[AlertType.of(a) for a in analysis.alerts],
            changes=[
                ChangeSuspect(
                    change_id=strawberry.ID(c.change_id),
                    number=c.number,
                    title=c.title,
                    status=c.status,
                    reason=c.reason,
                    ci_ids=[strawberry.ID(i) for i in c.ci_ids],
                    linked=c.linked,
                )
                for c in analysis.changes
            ],
        )

    @strawberry.field
    async def root_ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.root_ci_id) if self.root_ci_id else None)


@strawberry.type
class ProblemCandidate:
    ci_id: strawberry.ID
    ci_class: str = strawberry.field(name="class")
    name: str
    incidents_explained: int = strawberry.field(
        description="Incidents whose root CI fails when this CI is lost alone (as `impact` "
        "reports), or is this CI."
    )
    as_root: int = strawberry.field(description="Incidents whose recorded root cause is it.")
    alerts: int = strawberry.field(description="Alerts on it within the incidents it explains.")
    incident_ids: list[strawberry.ID]
    reason: str = strawberry.field(
        description="Why it explains them, with CI names: 'its loss fails dist-1 (root of 4 "
        "incidents)'."
    )

    @classmethod
    def of(cls, c: DomainCandidate) -> ProblemCandidate:
        return cls(
            ci_id=strawberry.ID(c.ci_id),
            ci_class=c.ci_class,
            name=c.name,
            incidents_explained=c.incidents_explained,
            as_root=c.as_root,
            alerts=c.alerts,
            incident_ids=[strawberry.ID(i) for i in c.incident_ids],
            reason=c.reason,
        )

    @strawberry.field
    async def ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.ci_id))


@strawberry.input
class IncidentFilterInput:
    status: TicketStatusEnum | None = None  # type: ignore[valid-type]
    open: bool | None = strawberry.field(
        default=None,
        description="True: only tickets still worked (NEW to PENDING); false: only the others.",
    )
    ci_id: strawberry.ID | None = strawberry.field(
        default=None, description="Root cause or an alert on this CI (id, key or identifier)."
    )
    max_priority: int | None = strawberry.field(
        default=None, description="Only priorities 1..maxPriority."
    )
    assignee: str | None = None
    opened_since: dt.datetime | None = None


@strawberry.input
class ProblemFilterInput:
    status: ProblemStatusEnum | None = None  # type: ignore[valid-type]
    root_ci_id: strawberry.ID | None = None
    assignee: str | None = None


@strawberry.type
class MonitoringQuery:
    @query_field(
        description="Incidents, newest first: the first 1..1000 only. `tickets` pages the "
        "same records by cursor, with every desk filter.",
        deprecation_reason="Use tickets(filter, first, after): it pages by cursor.",
    )
    def incidents(
        self, info: Info, filter: IncidentFilterInput | None = None, first: int = 50
    ) -> list[IncidentType]:
        f = filter or IncidentFilterInput()
        ci_ids = None
        if f.ci_id is not None:
            ci_ids = (resolve_ref(info, str(f.ci_id), "filter.ciId"),)
        query = IncidentFilter(
            status=f.status,
            open=f.open,
            ci_ids=ci_ids,
            max_priority=f.max_priority,
            assignee=f.assignee,
            opened_since=aware(f.opened_since),
            limit=first,
        )
        return [IncidentType.of(i) for i in info.context.services.desk.incidents.find(query)]

    @query_field()
    def incident(self, info: Info, id: strawberry.ID) -> IncidentType | None:
        found = info.context.services.desk.incidents.get_many([str(id)])
        incident = found.get(str(id))
        return IncidentType.of(incident) if incident is not None else None

    @query_field(description="Problems, newest first.")
    def problems(
        self, info: Info, filter: ProblemFilterInput | None = None, first: int = 50
    ) -> list[ProblemType]:
        f = filter or ProblemFilterInput()
        roots = None
        if f.root_ci_id is not None:
            roots = (resolve_ref(info, str(f.root_ci_id), "filter.rootCiId"),)
        query = ProblemFilter(status=f.status, root_ci_ids=roots, assignee=f.assignee, limit=first)
        return [ProblemType.of(p) for p in info.context.services.desk.problems.find(query)]

    @query_field()
    def problem(self, info: Info, id: strawberry.ID) -> ProblemType | None:
        problem = info.context.services.desk.problems.get_many([str(id)]).get(str(id))
        return ProblemType.of(problem) if problem is not None else None

    @query_field(description="The incident's root cause, the other candidates and confidence.")
    def root_cause(self, info: Info, incident_id: strawberry.ID) -> RootCause:
        return RootCause.of(info.context.services.diagnosis.root_cause(str(incident_id)))

    @query_field(description="Which CIs are behind most incidents of the last windowDays days?")
    def problem_candidates(
        self, info: Info, window_days: float = 30.0, limit: int = 20
    ) -> list[ProblemCandidate]:
        from servicegraph.cmdb.errors import ValidationFailed

        if not 0 < window_days <= 3660:
            raise ValidationFailed("must be between 0 and 3660 days", field="window_days")
        if not 1 <= limit <= 500:
            raise ValidationFailed("must be between 1 and 500", field="limit")
        since = utcnow() - dt.timedelta(days=window_days)
        found = problem_candidates(info.context.services.correlator, since=since, limit=limit)
        return [ProblemCandidate.of(c) for c in found]
