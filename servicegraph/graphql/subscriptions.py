"""Subscriptions (graphql-transport-ws): incidents opened and updated.

Correlation may run in this process (the embedded worker) or in Celery workers elsewhere,
so a subscription does not wait for in-process callbacks: it polls the store for incidents
whose ``updated_at`` advanced, every ``graphql.subscription_poll_s`` seconds. Each poll
reads a window reaching ``_LOOKBACK`` behind the newest update seen, so that a change
committed late with a slightly older time (another worker's clock, a long batch) is not
missed, and remembers what it sent so that nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
from collections.abc import AsyncGenerator

import strawberry

from servicegraph.cmdb.model import utcnow
from servicegraph.graphql.base import subscription_field
from servicegraph.graphql.context import Info
from servicegraph.graphql.monitoring import IncidentType

_LOOKBACK = dt.timedelta(seconds=10)
_BATCH = 500


@strawberry.enum
class IncidentEventKind(enum.Enum):
    OPENED = "opened"
    UPDATED = "updated"


@strawberry.type
class IncidentEvent:
    kind: IncidentEventKind
    incident: IncidentType


@strawberry.type
class Subscription:
    @subscription_field(
        description="Incidents as they open and change (alerts join, priority, "
        "acknowledged, assigned, resolved, reopened ...)."
    )
    async def incident_events(
        self, info: Info, kinds: list[IncidentEventKind] | None = None
    ) -> AsyncGenerator[IncidentEvent, None]:
        incidents = info.context.services.desk.incidents
        interval = info.context.services.settings.graphql.subscription_poll_s
        wanted = set(kinds or IncidentEventKind)
        newest_before = incidents.last_number()  # higher numbers open after we started
        high_water = utcnow()
        sent: dict[str, dt.datetime] = {}
        for existing in incidents.updated_since(high_water - _LOOKBACK, _BATCH):
            sent[existing.id] = existing.updated_at  # already so before we started
        announced: set[str] = set()
        while True:
            await asyncio.sleep(interval)
            changed = incidents.updated_since(high_water - _LOOKBACK, _BATCH)
            info.context.fresh_loaders()
            for incident in changed:
                if sent.get(incident.id, dt.datetime.min.replace(tzinfo=dt.UTC)) >= (
                    incident.updated_at
                ):
                    continue
                sent[incident.id] = incident.updated_at
                high_water = max(high_water, incident.updated_at)
                opened = incident.number > newest_before and incident.id not in announced
                announced.add(incident.id)
                kind = IncidentEventKind.OPENED if opened else IncidentEventKind.UPDATED
                if kind in wanted:
                    yield IncidentEvent(kind=kind, incident=IncidentType.of(incident))
            horizon = high_water - _LOOKBACK
            for incident_id in [i for i, at in sent.items() if at < horizon]:
                del sent[incident_id]
