"""A seeded, size-parameterised service desk for benchmarks: people, a catalogue and
tickets, shaped like the desk this project is measured against (an OTRS desk of 147
agents, 15,000 end users and 190,000 tickets), scaled in tickets.

- ``groups`` queues (assignment groups) whose sizes follow a Zipf-like curve: the first-line
  desk and a few platform teams take most tickets, a long tail of specialist groups few;
- ``agents`` agents, each in one to four groups, every group with at least one member;
- ``contacts`` end users in ``organisations`` customers; a few power users raise many
  tickets; ``services`` catalogue services and a category tree two or three levels deep;
- tickets numbered in the order they were opened, evenly over three years up to ``END``:
  about 10% still active (the newest ones mostly, and a thin tail of old pending
  tickets), priorities skewed to 3 and 4, six channels, incidents and service requests,
  tags, custom fields on requests, affected CIs, a few priority overrides with a reason.
  A ticket held by an agent is held by a member of its group.

``tickets(desk, batch)`` yields the tickets in batches, so that a million are never in
memory at once, and ``Expected`` counts what it yielded (the benchmark checks the store
against it). Everything is a pure function of ``(shape, seed)``.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Channel, Incident, TicketType

GENERATOR_VERSION = 1  # bump when the tickets generated for a shape change
END = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
SPAN = dt.timedelta(days=3 * 365)
RECENT = 0.12  # the newest share of tickets, most of them still active
ACTIVE_RECENT, ACTIVE_OLD = 0.8, 0.005  # chance that a recent / an older ticket is active

PRIORITIES = ([1, 2, 3, 4, 5], [2, 10, 38, 40, 10])
ACTIVE_STATUSES = (
    [TicketStatus.NEW, TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS, TicketStatus.PENDING],
    [20, 30, 30, 20],
)
CHANNELS = (
    [Channel.PHONE, Channel.EMAIL, Channel.PORTAL, Channel.MONITORING, Channel.API, Channel.CHAT],
    [25, 35, 25, 10, 3, 2],
)
PENDING_REASONS = ["awaiting_requester", "awaiting_vendor", "awaiting_change"]
CATEGORY_TREE: dict[str, list[str]] = {
    "network": ["vpn", "wifi", "lan", "dns", "firewall", "vpn/split-tunnel", "wifi/guest"],
    "hardware": ["laptop", "desktop", "printer", "monitor", "phone", "printer/toner"],
    "software": ["office", "erp", "crm", "browser", "licence", "erp/reports", "crm/sync"],
    "access": ["password", "account", "permissions", "mfa", "account/leaver"],
    "email": ["mailbox", "distribution-list", "spam", "calendar"],
    "database": ["performance", "backup", "replication"],
    "security": ["phishing", "malware", "incident", "vulnerability"],
    "facilities": ["badge", "desk", "meeting-room"],
    "telephony": ["voicemail", "softphone", "mobile"],
    "hr": ["onboarding", "offboarding", "payroll"],
}
TAGS = [
    "vip", "outage", "major", "onboarding", "vendor", "recurring", "security", "finance",
    "warehouse", "remote", "sla-risk", "escalated", "customer", "audit", "migration",
    "windows", "linux", "mac", "mobile", "printer", "vpn", "sap", "crm", "o365", "wifi",
    "branch", "hq", "night-shift", "after-hours", "known-error", "change-related", "monitoring",
    "backup", "licence", "hardware-swap", "training", "documentation", "access", "holiday",
    "duplicate",
]  # fmt: skip
PROBLEMS = [
    "cannot connect to", "is very slow on", "keeps crashing in", "error 500 from",
    "no access to", "request for", "cannot print from", "password reset for",
    "sync fails for", "update needed for", "timeout when opening", "licence expired for",
]  # fmt: skip
THINGS = [
    "the VPN", "Outlook", "the ERP", "SAP reports", "the CRM", "the shared drive", "Teams",
    "the wifi in building B", "printer P-204", "the warehouse scanner", "the payroll app",
    "my laptop", "the intranet", "the finance share", "the badge reader", "Salesforce",
]  # fmt: skip
CI_COUNT = 20_000
_SOLVED = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED})


@dataclass(frozen=True)
class DeskShape:
    tickets: int = 1_000_000
    seed: int = 1
    groups: int = 200
    agents: int = 150
    contacts: int = 15_000
    organisations: int = 500
    services: int = 300

    def key(self) -> dict[str, int]:
        return {**self.__dict__, "generator": GENERATOR_VERSION}


@dataclass(frozen=True)
class Desk:
    """The people and the catalogue tickets refer to (only their keys: the benchmark
    measures tickets)."""

    shape: DeskShape
    groups: list[str]
    group_weights: list[float]
    agents: list[str]
    members: dict[str, list[str]]  # group -> agent logins
    contacts: list[str]
    contact_weights: list[float]
    organisation_of: dict[str, str | None]  # contact -> organisation
    services: list[str]
    categories: list[str]  # every path, roots included


@dataclass
class Expected:
    """What ``tickets`` yielded: the benchmark checks the store against it."""

    tickets: int = 0
    active: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    active_by_group: Counter[str] = field(default_factory=Counter)
    active_by_agent: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "tickets": self.tickets,
            "active": self.active,
            "by_status": dict(self.by_status),
            "active_by_group": dict(self.active_by_group),
            "active_by_agent": dict(self.active_by_agent),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Expected:
        return cls(
            tickets=int(data["tickets"]),
            active=int(data["active"]),
            by_status=Counter(data["by_status"]),
            active_by_group=Counter(data["active_by_group"]),
            active_by_agent=Counter(data["active_by_agent"]),
        )


def zipf(count: int, offset: float) -> list[float]:
    """Weights 1/(rank + offset): a larger offset flattens the head."""
    return [1 / (rank + offset) for rank in range(1, count + 1)]


def build_desk(shape: DeskShape) -> Desk:
    rng = random.Random(f"desk-people-{shape.seed}")
    groups = [f"grp-{n:03d}" for n in range(1, shape.groups + 1)]
    agents = [f"agent{n:03d}" for n in range(1, shape.agents + 1)]
    members: dict[str, set[str]] = {g: {agents[i % len(agents)]} for i, g in enumerate(groups)}
    for agent in agents:
        for group in rng.sample(groups, rng.choice([1, 1, 2, 2, 3, 4])):
            members[group].add(agent)
    organisations = [f"org-{n:04d}" for n in range(1, shape.organisations + 1)]
    org_weights = zipf(len(organisations), 3)
    contacts = [f"c-{n:05d}" for n in range(1, shape.contacts + 1)]
    picked = rng.choices(organisations, org_weights, k=len(contacts))
    organisation_of = {
        c: (org if rng.random() < 0.9 else None) for c, org in zip(contacts, picked, strict=True)
    }
    categories = [
        path
        for root, children in CATEGORY_TREE.items()
        for path in [root, *(f"{root}/{child}" for child in children)]
    ]
    return Desk(
        shape=shape,
        groups=groups,
        group_weights=zipf(len(groups), 5),
        agents=agents,
        members={g: sorted(m) for g, m in members.items()},
        contacts=contacts,
        contact_weights=zipf(len(contacts), 200),
        organisation_of=organisation_of,
        services=[f"svc-{n:03d}" for n in range(1, shape.services + 1)],
        categories=categories,
    )


class _Tickets:
    """Draws one ticket at a time; the random choices that need weights are drawn in
    blocks (``random.choices`` with k is much faster than one call per ticket)."""

    def __init__(self, desk: Desk, expected: Expected) -> None:
        self.desk = desk
        self.expected = expected
        self.rng = random.Random(f"desk-tickets-{desk.shape.seed}")
        self.block: dict[str, list[Any]] = {}
        self.left = 0
        self.service_weights = zipf(len(desk.services), 10)
        self.category_weights = zipf(len(desk.categories), 8)
        self.step = SPAN / max(desk.shape.tickets, 1)
        self.start = END - SPAN

    def refill(self, size: int = 4096) -> None:
        rng, desk = self.rng, self.desk
        self.block = {
            "group": rng.choices(desk.groups, desk.group_weights, k=size),
            "priority": rng.choices(*PRIORITIES, k=size),
            "channel": rng.choices(*CHANNELS, k=size),
            "active": rng.choices(*ACTIVE_STATUSES, k=size),
            "requester": rng.choices(desk.contacts, desk.contact_weights, k=size),
            "service": rng.choices(desk.services, self.service_weights, k=size),
            "category": rng.choices(desk.categories, self.category_weights, k=size),
        }
        self.left = size

    def draw(self, name: str) -> Any:
        return self.block[name][self.left - 1]

    def ticket(self, number: int) -> Incident:
        if not self.left:
            self.refill()
        rng, desk = self.rng, self.desk
        opened = self.start + self.step * (number - 1)
        recent = number > desk.shape.tickets * (1 - RECENT)
        if rng.random() < (ACTIVE_RECENT if recent else ACTIVE_OLD):
            status: TicketStatus = self.draw("active")
        else:
            status = self._finished(rng.random(), recent)
        group = self.draw("group")
        channel: Channel = self.draw("channel")
        monitoring = channel is Channel.MONITORING
        is_request = not monitoring and rng.random() < 0.35
        requester = None if monitoring else self.draw("requester")
        assignee = None
        if status is not TicketStatus.NEW and (status.active or rng.random() < 0.97):
            assignee = rng.choice(desk.members[group])
        category = self.draw("category")
        fields = _lifecycle(rng, status, opened)
        if rng.random() < 0.03:
            fields |= {"priority_reason": "business impact wider than reported"}
            fields |= {"priority_set_by": assignee or desk.members[group][0]}
        self.left -= 1
        self._count(status, group, assignee)
        return Incident(
            id=f"inc-{number}",
            number=number,
            title=f"{rng.choice(PROBLEMS).capitalize()} {rng.choice(THINGS)}",
            status=status,
            opened_at=opened,
            last_alert_at=opened,
            priority=self.draw("priority"),
            impact=rng.choice(["low", "medium", "medium", "high"]),
            urgency=rng.choice(["low", "medium", "medium", "high"]),
            root_ci_id=f"ci-{rng.randrange(CI_COUNT):05d}" if monitoring else None,
            alert_count=rng.randint(1, 6) if monitoring else 0,
            assignee=assignee,
            resolved_by=assignee if status in _SOLVED else None,
            type=TicketType.SERVICE_REQUEST if is_request else TicketType.INCIDENT,
            channel=channel,
            description=_description(rng, requester),
            requester=requester,
            organisation=desk.organisation_of[requester] if requester else None,
            service=self.draw("service") if rng.random() < 0.8 else None,
            category=category,
            affected_ci_ids=_affected(rng),
            assignment_group=group,
            tags=rng.sample(TAGS, rng.choice([0, 0, 0, 1, 1, 2, 3])),
            custom_fields=_custom(rng) if is_request else {},
            routed_by=rng.choice(["rule:by-category", "rule:vip", "default:service", None]),
            created_by=None if monitoring else (requester or "token:crm"),
            **fields,
        )

    @staticmethod
    def _finished(draw: float, recent: bool) -> TicketStatus:
        if draw < 0.03:
            return TicketStatus.CANCELLED
        if draw < (0.5 if recent else 0.06):
            return TicketStatus.RESOLVED
        return TicketStatus.CLOSED

    def _count(self, status: TicketStatus, group: str, assignee: str | None) -> None:
        e = self.expected
        e.tickets += 1
        e.by_status[status.value] += 1
        if status.active:
            e.active += 1
            e.active_by_group[group] += 1
            if assignee is not None:
                e.active_by_agent[assignee] += 1


def _lifecycle(rng: random.Random, status: TicketStatus, opened: dt.datetime) -> dict[str, Any]:
    """The times and codes a ticket's status implies."""
    worked = opened + dt.timedelta(minutes=rng.lognormvariate(4, 1.5))
    if status.active:
        pending = rng.choice(PENDING_REASONS) if status is TicketStatus.PENDING else None
        return {"updated_at": min(worked, END), "pending_reason": pending}
    resolved = min(worked, END)
    fields: dict[str, Any] = {"updated_at": resolved, "resolved_at": resolved}
    if status is TicketStatus.CANCELLED:
        return fields | {"close_code": "cancelled", "closed_at": resolved}
    fields |= {
        "resolution_code": rng.choice(["solved", "solved", "workaround", "not_reproducible"]),
        "resolution": rng.choice(["restarted the service", "reset the password", "replaced it"]),
    }
    if status is TicketStatus.CLOSED:
        closed = resolved + dt.timedelta(days=7)
        fields |= {"close_code": "closed", "closed_at": closed, "updated_at": closed}
    return fields


def _description(rng: random.Random, requester: str | None) -> str:
    who = f"Reported by {requester}." if requester else "Raised by monitoring."
    return (
        f"{who} Started about {rng.randint(1, 48)} hours ago, affects "
        f"{rng.choice(['me', 'my team', 'the whole floor', 'one customer'])}; "
        f"{rng.choice(['tried a restart', 'no workaround', 'happens daily', 'urgent'])}."
    )


def _affected(rng: random.Random) -> list[str]:
    if rng.random() >= 0.2:
        return []
    return [f"ci-{rng.randrange(CI_COUNT):05d}" for _ in range(rng.choice([1, 1, 2]))]


def _custom(rng: random.Random) -> dict[str, Any]:
    return {"cost_centre": f"CC-{rng.randrange(100, 999)}", "quantity": rng.choice([1, 1, 2, 5])}


def tickets(desk: Desk, batch: int, expected: Expected) -> Iterator[list[Incident]]:
    """The desk's tickets, numbered 1.. in opening order, ``batch`` at a time; counted
    into ``expected`` as they are drawn."""
    draw = _Tickets(desk, expected)
    total = desk.shape.tickets
    for first in range(1, total + 1, batch):
        yield [draw.ticket(n) for n in range(first, min(first + batch, total + 1))]
