"""A real desk for the ticket service's tests: a bootstrapped SQLite file under tmp_path,
the example site's CIs (some naming their support group), people and a catalogue saved
through the directory's store, and a controllable clock."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.importer import read_files
from servicegraph.config import CorrelationSettings, DeskSettings, Settings
from servicegraph.ticketing.catalogue import Category, Defaults, Service
from servicegraph.ticketing.model import Incident, TicketType, WorklogEntry
from servicegraph.ticketing.people import Agent, Contact, Directory, Group, Organisation
from servicegraph.ticketing.ports import IncidentFilter, PeopleBatch
from servicegraph.ticketing.tickets import NewTicket, TicketService

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)

# the example site, with support groups on some CIs and an interface of acc-1
SUPPORT_GROUPS = {"core-1": "noc", "acc-1": "network", "db-2": "no-such-team"}
EXTRA_CIS = [
    {"key": "acc-1-gi1", "class": "interface", "name": "acc-1 Gi1/0/1"},
    {"key": "laptop-7", "class": "server", "name": "laptop-7"},
]
EXTRA_RELATIONSHIPS = [{"from": "acc-1-gi1", "type": "PART_OF", "to": "acc-1"}]

CUSTOM_FIELDS: dict[str, Any] = {
    "incident": {"outage_minutes": {"type": "int", "min": 0}},
    "service_request": {"laptop_model": {"type": "choice", "choices": ["x1", "t14"]}},
    "category:hardware/laptop": {"laptop_model": {"type": "choice", "choices": ["x1", "t14"],
                                                  "required": True}},
    "category:network/vpn": {
        "vpn_profile": {"type": "choice", "choices": ["staff", "contractor"], "default": "staff"}
    },
}  # fmt: skip
ROUTING: list[dict[str, Any]] = [
    {"name": "vip", "when": {"organisation": "acme"}, "then": {"tags": ["vip"], "stop": False}},
    {
        "name": "vpn",
        "when": {"category": "network/vpn"},
        "then": {"group": "network", "tags": ["vpn"], "priority_floor": 2},
    },
    {"name": "databases", "when": {"ci_class": "database"}, "then": {"group": "dbas"}},
]


@dataclass
class Clock:
    now: dt.datetime = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw: float) -> dt.datetime:
        self.now += dt.timedelta(**kw)
        return self.now


def people() -> Directory:
    return Directory.build(
        agents=[
            Agent("alice", "Alice", "alice@desk.example", groups=("service-desk", "noc")),
            Agent("bob", "Bob", "bob@desk.example", groups=("noc",)),
            Agent("carol", "Carol", "carol@desk.example", groups=("dbas",)),
            Agent("dave", "Dave", "dave@desk.example", groups=("network",)),
            Agent("erin", "Erin", "erin@desk.example", groups=("noc",), active=False),
            Agent("frank", "Frank", "frank@desk.example", groups=("service-desk",)),
        ],
        groups=[
            Group("service-desk", "Service desk"),
            Group("noc", "Network operations", manager="alice"),
            Group("dbas", "Database administrators"),
            Group("network", "Network team"),
            Group("apps", "Applications"),
        ],
        organisations=[
            Organisation("acme", "ACME", domains=("acme.com",)),
            Organisation("globex", "Globex", domains=("globex.com",)),
        ],
        contacts=[
            Contact("c-jane", "Jane", email="jane@acme.com", organisation="acme"),
            Contact("c-joe", "Joe", email="joe@globex.com"),  # organisation from the domain
            Contact("c-gone", "Gone", email="gone@acme.com", active=False),
        ],
    )


def catalogue(web_shop_ci: str) -> tuple[list[Service], list[Category]]:
    services = [
        Service("email", "E-mail", owner_group="apps", request_types=(TicketType.INCIDENT,)),
        Service("vpn", "VPN access", owner_group="network"),
        Service("shop", "Web shop", ci_id=web_shop_ci, owner_group="apps"),
        Service(
            "payroll",
            "Payroll",
            owner_group="apps",
            defaults=Defaults(group="dbas", priority=1, impact="high"),
        ),
    ]
    categories = [
        Category("network", "Network"),
        Category("network/vpn", "VPN", owner_group="network"),
        Category("hardware", "Hardware"),
        Category("hardware/laptop", "Laptop", types=(TicketType.SERVICE_REQUEST,)),
    ]
    return services, categories


@dataclass
class Desk:
    services: Services
    clock: Clock
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def tickets(self) -> TicketService:
        return self.services.desk.tickets

    def create(self, actor: str = "alice", **fields: Any) -> Incident:
        fields.setdefault("type", TicketType.INCIDENT)
        fields.setdefault("title", "Printer on fire")
        with change_context(actor):
            return self.tickets.create(NewTicket(**fields))

    def history(self, ticket_id: str) -> list[WorklogEntry]:
        return self.tickets.history(ticket_id)

    def snapshot(self) -> tuple[Any, ...]:
        """Everything the desk stores about tickets, to show that a refusal wrote nothing."""
        store = self.services.tickets
        tickets = store.find_incidents(IncidentFilter(limit=1000))
        ids = [t.id for t in tickets]
        return (
            [(t.id, t.status, t.assignee, t.assignment_group, t.priority) for t in tickets],
            store.worklog(ids),
            store.links_of(ids),
            store.last_incident_number(),
        )


def write_site(path: Path) -> Path:
    site = json.loads((EXAMPLES / "small-site.json").read_text())
    for ci in site["cis"]:
        if ci["key"] in SUPPORT_GROUPS:
            ci.setdefault("attributes", {})["support_group"] = SUPPORT_GROUPS[ci["key"]]
    site["cis"] += EXTRA_CIS
    site["relationships"] += EXTRA_RELATIONSHIPS
    target = path / "site.json"
    target.write_text(json.dumps(site))
    return target


def save_directory(services: Services, directory: Directory, web_shop_ci: str) -> None:
    store = services.directory.store
    batch = PeopleBatch(
        agents=tuple(directory.agents.values()),
        groups=tuple(directory.groups.values()),
        organisations=tuple(directory.organisations.values()),
        contacts=tuple(directory.contacts.values()),
    )
    store.save_people(batch, T0)
    store.save_catalogue(*catalogue(web_shop_ci), T0)


def make_desk(tmp_path: Path, **desk: Any) -> Iterator[Desk]:
    clock = Clock()
    desk.setdefault("routing", ROUTING)
    desk.setdefault("custom_fields", CUSTOM_FIELDS)
    settings = Settings(
        data_dir=tmp_path,
        desk=DeskSettings(**desk),
        correlation=CorrelationSettings(hold_time_s=60),
    )
    services = bootstrap(settings)
    for service in (services.desk.tickets, services.desk.incidents, services.correlator):
        service.clock = clock
    batch = read_files([write_site(tmp_path)], services.classes, source="import")
    report = services.reconciler.apply(batch)
    ids = {obs.key: ci_id for obs, ci_id in zip(batch.cis, report.ci_ids, strict=True) if ci_id}
    save_directory(services, people(), ids["web-shop"])
    yield Desk(services, clock, ids)
    services.close()
