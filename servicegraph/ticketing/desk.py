"""The service desk: the ticketing services wired together (``bootstrap`` builds it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from servicegraph.cmdb.history import HistoryService
from servicegraph.cmdb.model import utcnow
from servicegraph.cmdb.ports import GraphStore
from servicegraph.ticketing.ports import TicketStore
from servicegraph.ticketing.service import ChangeService, IncidentService, ProblemService
from servicegraph.ticketing.timeline import TimelineService


@dataclass
class ServiceDesk:
    incidents: IncidentService
    problems: ProblemService
    changes: ChangeService
    timeline: TimelineService

    @classmethod
    def build(
        cls,
        store: TicketStore,
        graph: GraphStore,
        history: HistoryService,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> ServiceDesk:
        return cls(
            incidents=IncidentService(store, clock=clock),
            problems=ProblemService(store, graph, clock=clock),
            changes=ChangeService(store, graph, clock=clock),
            timeline=TimelineService(graph, history, store),
        )
