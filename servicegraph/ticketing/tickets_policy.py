"""The desk's tunable policy, as built domain objects: what ``desk:`` settings configure.

``servicegraph.config.DeskSettings`` validates the settings file and builds this (as
``CorrelationSettings`` builds the correlator's policy), so the ticket service never reads
raw settings and a deployment's typo is refused at start-up naming its path.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from servicegraph.ticketing.change_config import ChangePolicy
from servicegraph.ticketing.fields import CustomFieldSchema
from servicegraph.ticketing.lifecycle import StateMachine
from servicegraph.ticketing.lifecycle import load as load_lifecycle
from servicegraph.ticketing.priority import PriorityMatrix
from servicegraph.ticketing.routing import RoutingRules
from servicegraph.ticketing.sla_config import SlaConfig

DEFAULT_TRIAGE_GROUP = "service-desk"
DEFAULT_AUTO_CLOSE_DAYS = 7
DEFAULT_REOPEN_WINDOW_DAYS = 7


@dataclass(frozen=True)
class DeskPolicy:
    """How tickets are numbered, routed, prioritised, moved and closed.

    ``auto_close_days`` None never closes resolved tickets by itself (0 closes them at the
    next run); ``reopen_window`` is how long after resolution a ticket may be reopened by
    hand (correlation's own, shorter window decides when a repeat alert reopens)."""

    lifecycle: StateMachine = field(default_factory=load_lifecycle)
    routing: RoutingRules = field(default_factory=RoutingRules)
    custom_fields: CustomFieldSchema = field(default_factory=lambda: CustomFieldSchema.build(None))
    priority_matrix: PriorityMatrix = field(default_factory=PriorityMatrix.default)
    triage_group: str = DEFAULT_TRIAGE_GROUP
    auto_assign: bool = False
    auto_close_days: int | None = DEFAULT_AUTO_CLOSE_DAYS
    reopen_window: dt.timedelta = dt.timedelta(days=DEFAULT_REOPEN_WINDOW_DAYS)
    sla: SlaConfig = field(default_factory=SlaConfig)  # calendars, policies, escalation
    changes: ChangePolicy = field(default_factory=ChangePolicy)  # approvals, templates
