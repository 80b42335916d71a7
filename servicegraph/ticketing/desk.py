"""The service desk: the ticketing services wired together (``bootstrap`` builds it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from servicegraph.cmdb.history import HistoryService
from servicegraph.cmdb.impact import ImpactService
from servicegraph.cmdb.model import utcnow
from servicegraph.cmdb.ports import GraphStore
from servicegraph.ticketing.catalogue import Catalogue
from servicegraph.ticketing.change_analysis import ChangeAnalysis
from servicegraph.ticketing.changes import ChangeService
from servicegraph.ticketing.notifications import Notifier
from servicegraph.ticketing.people import Directory
from servicegraph.ticketing.ports import TicketStore
from servicegraph.ticketing.problems import ProblemService
from servicegraph.ticketing.report_ports import ReportStore
from servicegraph.ticketing.report_service import ReportService
from servicegraph.ticketing.service import IncidentService
from servicegraph.ticketing.sla_escalation import EscalationJob
from servicegraph.ticketing.sla_projection import SlaProjector
from servicegraph.ticketing.sla_service import SlaService
from servicegraph.ticketing.tickets import TicketService
from servicegraph.ticketing.tickets_policy import DeskPolicy
from servicegraph.ticketing.timeline import TimelineService


def _no_people() -> Directory:
    return Directory()


def _no_catalogue() -> Catalogue:
    return Catalogue()


@dataclass
class ServiceDesk:
    incidents: IncidentService
    problems: ProblemService
    changes: ChangeService
    timeline: TimelineService
    tickets: TicketService  # the desk's tickets: create, route, work, link, auto-close
    sla: SlaService  # tickets' SLA clocks, as they are now
    escalation: EscalationJob  # fires escalation levels as clocks reach them
    reports: ReportService  # MTTA, MTTR, SLA compliance, backlog ... (ticketing/reports.py)

    @classmethod
    def build(
        cls,
        store: TicketStore,
        graph: GraphStore,
        history: HistoryService,
        *,
        directory: Callable[[], Directory] = _no_people,
        catalogue: Callable[[], Catalogue] = _no_catalogue,
        policy: DeskPolicy | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        sla: SlaProjector | None = None,
        notifier: Notifier | None = None,
        reports: ReportStore,
        impact: ImpactService,
    ) -> ServiceDesk:
        """``directory`` and ``catalogue`` give the current people and service catalogue
        (``DeskDirectory``'s); without them the desk knows nobody, and assigns nothing.
        ``notifier``: the messages ticket changes enqueue (``ticketing.notifications``);
        None sends nothing."""
        tickets = TicketService(
            store, graph, directory=directory, catalogue=catalogue, policy=policy, clock=clock,
            notifier=notifier,
        )  # fmt: skip
        projector = sla or SlaProjector(tickets.policy.sla)
        return cls(
            incidents=IncidentService(store, tickets, clock=clock),
            problems=ProblemService(store, graph, directory=directory, clock=clock),
            changes=ChangeService(
                store,
                graph,
                ChangeAnalysis(impact, graph, store),
                directory=directory,
                policy=tickets.policy.changes,
                clock=clock,
            ),
            timeline=TimelineService(graph, history, store),
            tickets=tickets,
            sla=SlaService(store, projector, clock=clock),
            escalation=EscalationJob(
                store,
                projector,
                directory=directory,
                lifecycle=tickets.policy.lifecycle,
                notifier=notifier,  # escalations notify through the same notifier
                clock=clock,
            ),
            reports=ReportService(reports, clock=clock),
        )
