"""Creating routed tickets through the ticket service, on the benchmark's desk file.

``bench_desk`` times ``TicketService.create`` here, on the cached million-ticket file (the
incident table, its indexes and the numbering as large as measured, not an empty
store), with the generator's people and catalogue saved through the directory's store
and read through ``DeskDirectory`` (cached per version, as the service reads them), 40
routing rules, 500 CIs naming their support group, and the default lifecycle and
priority matrix. Each ticket is what a person files: a requester (organisation from it),
a service and a category, impact and urgency, half of them an affected CI; every one is
checked routed (group in the directory, the rule or default recorded, a ROUTED entry),
and, with automatic assignment, held by an active member of its group.

The tickets created are deleted afterwards (with their history, links and CI rows), so
the cached file keeps the generator's counts; a run interrupted before that leaves a file
whose counts differ, which the next run rebuilds.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

from benchmarks.desk_generator import CATEGORY_TREE, Desk
from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.model import ConfigurationItem
from servicegraph.storage.sqlite import SqliteGraphStore
from servicegraph.storage.sqlite.directory import SqliteDirectoryStore
from servicegraph.storage.sqlite.tickets import SqliteTicketStore
from servicegraph.ticketing.catalogue import Category, Service
from servicegraph.ticketing.desk_directory import DeskDirectory
from servicegraph.ticketing.model import Channel, TicketType, WorklogKind
from servicegraph.ticketing.people import Agent, Contact, Directory, Group, Organisation
from servicegraph.ticketing.ports import PeopleBatch
from servicegraph.ticketing.routing import RoutingRules
from servicegraph.ticketing.tickets import NewTicket, TicketService
from servicegraph.ticketing.tickets_policy import DeskPolicy

CIS = 500
AT = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
CHANNELS = [Channel.PHONE, Channel.EMAIL, Channel.PORTAL, Channel.CHAT]
LEVELS = ["high", "medium", "low"]


class CreateError(Exception):
    """A created ticket that is not what routing should have made."""


def directory_of(desk: Desk) -> Directory:
    groups_of: dict[str, list[str]] = {a: [] for a in desk.agents}
    for group, members in desk.members.items():
        for login in members:
            groups_of[login].append(group)
    return Directory.build(
        agents=[Agent(a, a, f"{a}@desk.example", groups=tuple(groups_of[a])) for a in desk.agents],
        groups=[Group(g, g, members=tuple(desk.members[g])) for g in desk.groups],
        organisations=[Organisation(o, o) for o in sorted(_organisations(desk))],
        contacts=[
            Contact(c, c, email=f"{c}@customers.example", organisation=desk.organisation_of[c])
            for c in desk.contacts
        ],
    )


def _organisations(desk: Desk) -> set[str]:
    return {o for o in desk.organisation_of.values() if o is not None}


def catalogue_of(desk: Desk, rng: random.Random) -> tuple[list[Service], list[Category]]:
    services = [Service(s, s, owner_group=rng.choice(desk.groups)) for s in desk.services]
    roots = set(CATEGORY_TREE)
    categories = [
        Category(path, path, owner_group=rng.choice(desk.groups) if path in roots else None)
        for path in desk.categories
    ]
    return services, categories


def rules_of(desk: Desk, rng: random.Random) -> list[dict[str, Any]]:
    """40 rules: a VIP organisation tagging and going on, then rules on category subtrees
    and channels, on title words, and on the affected CI's class and attributes."""
    rules: list[dict[str, Any]] = [
        {"name": "vip", "when": {"organisation": desk.organisation_of[desk.contacts[0]] or "x"},
         "then": {"tags": ["vip"], "priority_floor": 2, "stop": False}},
    ]  # fmt: skip
    paths = [p for p in desk.categories if "/" in p]
    for n in range(25):
        when = {
            "category": rng.choice(paths),
            "channel": rng.sample([c.value for c in CHANNELS], 2),
        }
        rules.append(
            {"name": f"category-{n}", "when": when, "then": {"group": rng.choice(desk.groups)}}
        )
    for n, word in enumerate(["outage", "vpn", "printer", "password", "payroll", "licence", "sap"]):
        rules.append({"name": f"words-{n}", "when": {"title_keywords": [word]},
                      "then": {"group": rng.choice(desk.groups), "tags": [word]}})  # fmt: skip
    for n in range(7):
        when = {"ci_class": "server", "ci_attribute": {"environment": f"env-{n}"}}
        rules.append({"name": f"ci-{n}", "when": when, "then": {"group": rng.choice(desk.groups)}})
    return rules


def _cis(desk: Desk, rng: random.Random) -> list[ConfigurationItem]:
    return [
        ConfigurationItem(
            id=f"ci-bench-{n:04d}",
            ci_class="server",
            name=f"bench-server-{n}",
            attributes={"support_group": rng.choice(desk.groups), "environment": f"env-{n % 20}"},
            created_at=AT,
            updated_at=AT,
        )
        for n in range(CIS)
    ]


def _prepare(file: SqliteGraphStore, desk: Desk, rng: random.Random) -> list[str]:
    """The people, the catalogue and the CIs in the file (saved again each run: upserts)."""
    cis = _cis(desk, rng)
    missing = [ci for ci in cis if ci.id not in file.get_cis([c.id for c in cis])]
    if missing:
        with file.write() as writer:
            writer.insert_cis(missing)
    people = directory_of(desk)
    store = SqliteDirectoryStore(file)
    store.save_people(
        PeopleBatch(
            agents=tuple(people.agents.values()),
            groups=tuple(people.groups.values()),
            organisations=tuple(people.organisations.values()),
            contacts=tuple(people.contacts.values()),
        ),
        AT,
    )
    store.save_catalogue(*catalogue_of(desk, rng), AT)
    return [ci.id for ci in cis]


def measure_routed_create(
    path: Path, desk: Desk, rng: random.Random, count: int, *, auto_assign: bool
) -> list[float]:
    """Milliseconds per ``TicketService.create`` of ``count`` routed tickets."""
    file = SqliteGraphStore(path, lock_timeout=60)
    created: list[str] = []
    try:
        ci_ids = _prepare(file, desk, rng)
        people = DeskDirectory(SqliteDirectoryStore(file), file)
        policy = DeskPolicy(
            routing=RoutingRules.build(rules_of(desk, rng)), auto_assign=auto_assign
        )
        service = TicketService(
            SqliteTicketStore(file), file, directory=people.directory,
            catalogue=people.catalogue, policy=policy,
        )  # fmt: skip
        with change_context("bench"):  # warm the directory's cache, untimed
            created.append(service.create(_new(desk, rng, ci_ids)).id)
        samples: list[float] = []
        with change_context("bench"):
            for _ in range(count):
                new = _new(desk, rng, ci_ids)
                start = time.perf_counter()
                ticket = service.create(new)
                samples.append((time.perf_counter() - start) * 1000)
                created.append(ticket.id)
                _check(
                    ticket.assignment_group, ticket.routed_by, ticket.assignee, people, auto_assign
                )
        for ticket_id in rng.sample(created, min(20, len(created))):
            kinds = [e.kind for e in service.history(ticket_id)]
            if WorklogKind.ROUTED not in kinds:
                raise CreateError(f"{ticket_id} has no ROUTED entry: {kinds}")
        return samples
    finally:
        file.close()
        _delete(path, created)


def _new(desk: Desk, rng: random.Random, ci_ids: list[str]) -> NewTicket:
    contact = rng.choice(desk.contacts)
    word = rng.choice(["outage", "vpn", "printer", "slow", "error", "request"])
    return NewTicket(
        type=TicketType.INCIDENT,
        title=f"{word} on {rng.choice(desk.services)} for {contact}",
        channel=rng.choice(CHANNELS),
        requester=contact,
        service=rng.choice(desk.services),
        category=rng.choice(desk.categories),
        impact=rng.choice(LEVELS),
        urgency=rng.choice(LEVELS),
        affected_ci_ids=(rng.choice(ci_ids),) if rng.random() < 0.5 else (),
    )


def _check(
    group: str | None, rule: str | None, assignee: str | None, people: DeskDirectory, auto: bool
) -> None:
    directory = people.directory()
    if group is None or group not in directory.groups or rule is None:
        raise CreateError(f"not routed: group {group}, rule {rule}")
    if auto and directory.groups[group].members and assignee not in directory.groups[group].members:
        raise CreateError(f"{assignee} is no member of {group}")


def _delete(path: Path, ids: list[str]) -> None:
    """Remove the benchmark's tickets: the cached desk keeps the generator's counts."""
    if not ids:
        return
    conn = sqlite3.connect(path, timeout=60)
    try:
        with conn:
            rows = [(i,) for i in ids]
            conn.executemany("DELETE FROM worklog WHERE ticket_id = ?", rows)
            conn.executemany("DELETE FROM ticket_ci WHERE ticket_id = ?", rows)
            conn.executemany("DELETE FROM ticket_link WHERE source_id = ? OR target_id = ?",
                             [(i, i) for i in ids])  # fmt: skip
            conn.executemany("DELETE FROM incident WHERE id = ?", rows)
    finally:
        conn.close()
