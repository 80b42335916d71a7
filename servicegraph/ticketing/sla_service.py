"""Reading tickets' SLA clocks as they are now (``SlaService.clocks``).

A stored record is the clocks at the ticket's last change; reading advances it to the
service's clock (``SlaProjector.at``), so a ticket view, a GraphQL page and the CLI show
elapsed and remaining time to the second without reading any history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from servicegraph.cmdb.model import utcnow
from servicegraph.ticketing.ports import TicketStore
from servicegraph.ticketing.sla_projection import SlaProjector, SlaRecord


class SlaService:
    def __init__(
        self,
        store: TicketStore,
        projector: SlaProjector,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.store = store
        self.projector = projector
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return self.projector.enabled

    def clocks(self, ticket_ids: Iterable[str]) -> dict[str, SlaRecord]:
        """The clocks of those tickets a policy covers, at now."""
        if not self.projector.enabled:
            return {}
        now = self.clock()
        return {k: self.projector.at(r, now) for k, r in self.store.sla_of(ticket_ids).items()}

    def clock_of(self, ticket_id: str) -> SlaRecord | None:
        return self.clocks([ticket_id]).get(ticket_id)
