"""The correlator: inbox events -> deduplicated alerts -> few, correct incidents.

One call of ``process_pending`` is one unit of work (a ``Batch``, ``batch.py``): it claims
a batch of inbox events, applies them, and commits their effects together with the
"processed" marks, so an event's effect happens exactly once however often it is delivered
or retried. Incidents open, resolve and reopen through the desk's lifecycle, with the
same history entries as people's work (``steps``).

Per event:
- *deduplicate* by fingerprint: a repeat updates the alert's count and last-seen time;
- a firing alert joins its open incident; an incident resolved within the reopen window
  *reopens* when its root alert fires again; otherwise the alert joins an open incident
  whose recent alerts are *related in the topology* (one is a hard dependency of the
  other, or they share one within ``topology_depth`` hops) within ``group_window``, or it
  opens a new incident;
- a resolved event clears the alert; an incident resolves when all its alerts have been
  clear for ``hold_time``; *flapping* alerts (``flap_threshold`` transitions within
  ``flap_window``) keep their incident open and flagged instead of churning incidents.

Per changed incident: root cause (see ``rootcause``) and impacted business services
(``state.Analysis``), then impact, urgency, the priority from the impact x urgency matrix
and the title (pure functions in ``assessment``); an agent's priority override is kept.
New incidents are routed (``router``: group, tags, priority bounds, by the root CI and
the services hit) and feed problem detection from recurrence (``recurrence``), once the
batch's alerts and incidents are saved.

The worker keeps the open incidents and their alerts in memory between batches; a state
version in the store tells it when another worker has written, and it reloads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from servicegraph.cmdb.impact import ImpactService
from servicegraph.cmdb.model import utcnow
from servicegraph.cmdb.ports import GraphStore
from servicegraph.cmdb.topology import ImpactGraph
from servicegraph.correlation.assessment import CIFacts
from servicegraph.correlation.batch import Batch
from servicegraph.correlation.mapping import CIMapper
from servicegraph.correlation.policy import BatchResult, CorrelationPolicy
from servicegraph.correlation.ports import EventInbox
from servicegraph.correlation.rootcause import HardTopology
from servicegraph.correlation.state import WorkerState
from servicegraph.correlation.steps import MonitoringRouter, MonitoringSteps
from servicegraph.events.model import Alert, Event, clamp_clock_skew
from servicegraph.ticketing.lifecycle import StateMachine
from servicegraph.ticketing.lifecycle import load as load_lifecycle
from servicegraph.ticketing.notifications import Notifier
from servicegraph.ticketing.ports import TicketStore


class Correlator:
    def __init__(
        self,
        inbox: EventInbox,
        tickets: TicketStore,
        graph_store: GraphStore,
        impact: ImpactService,
        mapper: CIMapper,
        policy: CorrelationPolicy | None = None,
        *,
        lifecycle: StateMachine | None = None,
        router: MonitoringRouter | None = None,
        notifier: Notifier | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.inbox = inbox
        self.tickets = tickets  # reads only: the batch writes through its unit
        self.graph_store = graph_store
        self.impact = impact
        self.mapper = mapper
        self.policy = policy or CorrelationPolicy()
        self.steps = MonitoringSteps(lifecycle or load_lifecycle(), self.policy.reopen_window)
        self.router = router  # routes the incidents a batch opens (None: left unrouted)
        # tells of the incidents a batch opens, routes, resolves (None: nobody is told;
        # ``notifications.monitoring``)
        self.notifier = notifier
        self.clock = clock
        self._state = WorkerState()
        self._hard: HardTopology | None = None
        self._facts: dict[str, tuple[str, Any, Any, Any]] = {}
        self._cache_seq = -1
        self._business: set[int] | None = None  # graph nodes of business-service classes

    # -- entry points --------------------------------------------------------------------

    def ingest(self, events: Sequence[Event]) -> int:
        """Persist events in the inbox; returns how many were stored (redeliveries
        recognised at once are not). Events dated more than ``max_clock_skew`` ahead of
        now are dated now (``clamp_clock_skew``)."""
        now = self.clock()
        kept = clamp_clock_skew(events, now, self.policy.max_clock_skew)
        return self.inbox.append(kept, now)

    def process_pending(self, limit: int | None = None) -> BatchResult:
        """Correlate one batch from the inbox (and resolve incidents whose hold expired)."""
        # The projection is refreshed before, and stays unchanged during, the batch.
        with self.impact.reading() as graph:
            hard = self.topology(graph)
            self._check_caches(graph.seq)
            try:
                with self.inbox.unit() as unit:
                    return Batch(self, unit, hard).run(limit or self.policy.batch_size)
            except BaseException:
                self._state = WorkerState()  # in-memory state may hold uncommitted changes
                raise

    def drain(self, *, max_batches: int = 1_000_000) -> BatchResult:
        """Process until the inbox is empty."""
        total = BatchResult()
        for _ in range(max_batches):
            result = self.process_pending()
            total.merge(result)
            if result.events == 0:
                break
        return total

    # -- reads: what came in, and what could not be mapped -------------------------------

    def pending_count(self) -> int:
        """Events in the inbox not correlated yet."""
        return self.inbox.pending_count()

    def latest_events(self, limit: int) -> list[tuple[int, Event, bool]]:
        """The last ``limit`` events received, newest first, each with its inbox sequence
        number and whether it has been correlated."""
        return self.inbox.latest_events(limit)

    def unmapped_alerts(self, limit: int = 100) -> list[Alert]:
        """Alerts whose events named no known CI (kept, never dropped), latest first."""
        return self.tickets.unmapped_alerts(limit)

    def _check_caches(self, graph_seq: int) -> None:
        if graph_seq != self._cache_seq or len(self._facts) > 100_000:
            self._facts.clear()
            self._business = None
            self._cache_seq = graph_seq

    def _business_nodes(self, graph: ImpactGraph) -> set[int]:
        """Cached per graph version (``_check_caches``)."""
        if self._business is None:
            business = self.impact.business_classes
            self._business = {i for i, c in enumerate(graph.classes) if c in business}
        return self._business

    def _ci_facts(self, ci_ids: set[str]) -> CIFacts:
        """Name, criticality, SLA tier and service hours of CIs, cached per graph version
        (``_check_caches``): the cache itself, holding at least those of ``ci_ids`` that
        exist (not a copy: a storm's incidents name thousands of business services, and
        each batch asks again)."""
        # not ``ci_ids - self._facts.keys()``: that walks every key of the cache
        missing = {i for i in ci_ids if i not in self._facts}
        if missing:
            for ci_id, ci in self.graph_store.summaries(missing).items():
                self._facts[ci_id] = (ci.name, ci.criticality, ci.sla_tier, ci.service_hours)
        return self._facts

    def topology(self, graph: ImpactGraph) -> HardTopology:
        """Hard-dependency views of ``graph``; call inside ``impact.reading()``."""
        if self._hard is None or self._hard.graph is not graph:
            self._hard = HardTopology(graph, self.policy.topology_depth)
        return self._hard
