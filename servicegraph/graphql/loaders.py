"""DataLoaders: the fields of a page of CIs or incidents read the store in batches.

One set per request (so nothing is cached across requests). Whatever the page size, each
loader makes one service call per level of the query that uses it: a page of 100 CIs with
their relationships, the CIs at the other ends and their open incidents costs a handful of
store calls, not hundreds.
"""

from __future__ import annotations

from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from servicegraph.bootstrap import Services
from servicegraph.cmdb.model import ConfigurationItem, Relationship
from servicegraph.events.model import Alert
from servicegraph.ticketing.model import Change, Incident, Problem, TicketLink, WorklogEntry
from servicegraph.ticketing.sla_projection import SlaRecord


class Loaders:
    def __init__(self, services: Services) -> None:
        catalog = services.catalog
        desk = services.desk

        async def cis(ids: list[str]) -> Sequence[ConfigurationItem | None]:
            found = catalog.get(ids)
            return [found.get(i) for i in ids]

        async def relationships(ids: list[str]) -> Sequence[list[Relationship]]:
            by_ci: dict[str, list[Relationship]] = {i: [] for i in ids}
            for r in catalog.relationships(ids, direction="both"):
                if r.from_id in by_ci:
                    by_ci[r.from_id].append(r)
                if r.to_id in by_ci and r.to_id != r.from_id:
                    by_ci[r.to_id].append(r)
            return [by_ci[i] for i in ids]

        async def open_incidents(ids: list[str]) -> Sequence[list[Incident]]:
            found = desk.incidents.open_incidents_of(ids)
            return [found.get(i, []) for i in ids]

        async def incidents(ids: list[str]) -> Sequence[Incident | None]:
            found = desk.incidents.get_many(ids)
            return [found.get(i) for i in ids]

        async def problems(ids: list[str]) -> Sequence[Problem | None]:
            found = desk.problems.get_many(ids)
            return [found.get(i) for i in ids]

        async def changes(ids: list[str]) -> Sequence[Change | None]:
            found = desk.changes.get_many(ids)
            return [found.get(i) for i in ids]

        async def alerts(ids: list[str]) -> Sequence[list[Alert]]:
            found = desk.incidents.alerts(ids)
            return [found.get(i, []) for i in ids]

        async def worklog(ids: list[str]) -> Sequence[list[WorklogEntry]]:
            found = desk.incidents.worklog(ids)
            return [found.get(i, []) for i in ids]

        async def links(ids: list[str]) -> Sequence[list[TicketLink]]:
            found = desk.tickets.links_of(ids)  # one read for the page's tickets
            return [found.get(i, []) for i in ids]

        async def sla(ids: list[str]) -> Sequence[SlaRecord | None]:
            found = desk.sla.clocks(ids)  # one read for the page's tickets
            return [found.get(i) for i in ids]

        self.cis = DataLoader(load_fn=cis)
        self.relationships = DataLoader(load_fn=relationships)
        self.open_incidents = DataLoader(load_fn=open_incidents)
        self.incidents = DataLoader(load_fn=incidents)
        self.problems = DataLoader(load_fn=problems)
        self.changes = DataLoader(load_fn=changes)
        self.alerts = DataLoader(load_fn=alerts)
        self.worklog = DataLoader(load_fn=worklog)
        self.links = DataLoader(load_fn=links)
        self.sla = DataLoader(load_fn=sla)
