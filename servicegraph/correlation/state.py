"""What the correlation worker keeps in memory between batches: the open incidents and
their alerts (``WorkerState``, valid at a state version of the store), each incident's
growing root-cause analysis (``Analysis``), and what an incident's fields need of its
alerts (``Members``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from servicegraph.cmdb.topology import FailureCone
from servicegraph.correlation.rootcause import HardTopology, RootCause, RootCauseTracker
from servicegraph.events.model import (
    Alert,
    EventStatus,
    Severity,
)
from servicegraph.ticketing.model import Incident


class Analysis:
    """An incident's root cause and impacted business services, kept current as alerting
    CIs join it (a storm adds a few CIs per batch to incidents of hundreds)."""

    def __init__(self, hard: HardTopology, max_depth: int, business: set[int]) -> None:
        self.hard = hard
        self.tracker = RootCauseTracker(hard)
        self.cone = FailureCone(hard.graph, max_depth)  # what the alerting CIs take down
        self.business = business
        self._hit: set[int] = set()  # business services in the cone
        self._result: tuple[RootCause | None, tuple[str, ...]] | None = None

    def current(self, hard: HardTopology) -> bool:
        return hard is self.hard and self.tracker.current

    def add(self, node: int) -> None:
        if self.tracker.add(node):
            self._hit |= self.cone.add(node) & self.business
            self._result = None

    def result(self, min_share: float) -> tuple[RootCause | None, tuple[str, ...]]:
        """The root cause, and the impacted business services' CI ids in order."""
        if self._result is None:
            root = self.tracker.root(min_share=min_share)
            services = set(self._hit)
            if root is not None and root.inferred:  # what its failure adds to the alerts'
                services |= self.cone.with_source(root.node) & self.business
            ids = self.hard.graph.ids
            self._result = (root, tuple(sorted(ids[n] for n in services)))
        return self._result


@dataclass(slots=True)
class Members:
    """What an incident's fields need of its alerts, in one pass over them (an incident
    of hundreds of alerts is updated after every batch of a storm)."""

    count: int
    first: Alert | None  # the first alert seen
    first_on_root: Alert | None  # the root CI's first alert
    flapping: bool
    worst: Severity  # of the firing alerts, or of all of them when none fires

    @classmethod
    def of(cls, alerts: Mapping[str, Alert], root_ci_id: str | None) -> Members:
        first = first_on_root = None
        flapping = False
        worst_firing: Severity | None = None
        worst: Severity | None = None
        for alert in alerts.values():
            seen = alert.first_seen
            if first is None or seen < first.first_seen:
                first = alert
            if (
                root_ci_id is not None
                and alert.ci_id == root_ci_id
                and (first_on_root is None or seen < first_on_root.first_seen)
            ):
                first_on_root = alert
            flapping = flapping or alert.flapping
            severity = alert.severity
            if worst is None or severity > worst:
                worst = severity
            if alert.status is EventStatus.FIRING and (
                worst_firing is None or severity > worst_firing
            ):
                worst_firing = severity
        return cls(
            len(alerts), first, first_on_root, flapping, worst_firing or worst or Severity.WARNING
        )


FORGET_EVERY = dt.timedelta(seconds=1)


@dataclass
class WorkerState:
    """The worker's view of active incidents, valid at ``version``."""

    version: int = -1
    incidents: dict[str, Incident] = field(default_factory=dict)
    members: dict[str, dict[str, Alert]] = field(default_factory=dict)  # incident -> fp -> alert
    alerts: dict[str, Alert] = field(default_factory=dict)  # fp -> alert, of all members
    # graph node -> ids of open incidents whose footprint contains it
    index: dict[int, set[str]] = field(default_factory=dict)
    footprints: dict[str, set[int]] = field(default_factory=dict)
    # open incidents whose alerts are all clear (waiting out the hold time)
    clearing: set[str] = field(default_factory=set)
    # those of them known to be all clear since ``clear_since``, none flapping: until one
    # of their alerts changes (which makes them dirty), only the hold time is left to check
    holding: set[str] = field(default_factory=set)
    # incidents with a flapping alert
    flapping: set[str] = field(default_factory=set)
    # incident -> its analysis, built when first needed and grown as alerts join
    analysis: dict[str, Analysis] = field(default_factory=dict)
    # when resolved incidents past the reopen window were last dropped
    forgotten_at: dt.datetime | None = None
