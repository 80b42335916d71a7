"""The issue's acceptance test "paging through 10,000 tickets by cursor returns each exactly
once", through GraphQL over HTTP: ``tickets`` newest first and in queue order (priority,
then age, with many ties), a group's queue and an agent's own tickets, 500 a page,
while tickets keep arriving; and the page arguments a client can get wrong.

The tickets are written straight through the ticket store (one unit, as an import would):
what is tested is the paging, not 10,000 routings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Channel, Incident
from tests.graphql.conftest import Site
from tests.graphql.test_desk_fixtures import ask, desk_site, mutate

COUNT = 10_000
START = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
STATUSES = list(TicketStatus)


def generated(n: int) -> Incident:
    """Ticket ``n``: priorities 1..5 and opening times that repeat (about forty tickets
    share each second) and do not follow the numbers, two groups, every status."""
    opened = START + dt.timedelta(seconds=(n * 37) % 250)
    status = STATUSES[n % len(STATUSES)]
    group = "noc" if n % 3 else "service-desk"
    return Incident(
        id=f"inc-page{n:05d}",
        number=n,
        title=f"generated ticket {n}",
        status=status,
        opened_at=opened,
        updated_at=opened,
        last_alert_at=opened,
        priority=(n * 7) % 5 + 1,
        assignment_group=group,
        assignee="alice" if group == "noc" and status is not TicketStatus.NEW else None,
        channel=Channel.PORTAL,
        created_by="import",
    )


@pytest.fixture(scope="module")
def paged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, list[Incident]]]:
    for site in desk_site(tmp_path_factory.mktemp("paging")):
        tickets = [generated(n) for n in range(1, COUNT + 1)]
        with site.services.tickets.unit() as unit:
            unit.save_incidents(tickets)
        yield site, tickets


def queue_key(t: Incident) -> tuple[int, dt.datetime, int]:
    return (t.priority, t.opened_at, t.number)


def walk(
    site: Site, field: str, arguments: str, login: str = "bob", between: Any = None
) -> tuple[list[str], int]:
    """Every page of ``field`` (500 a page): the ids in the order given, and the pages."""
    query = f"""query($after: String) {{ {field}({arguments} first: 500, after: $after) {{
        items {{ id }} pageInfo {{ hasNextPage endCursor }} }} }}"""
    ids: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = ask(site, login, query, after=after)[field]
        pages += 1
        ids.extend(item["id"] for item in page["items"])
        info = page["pageInfo"]
        assert info["hasNextPage"] == (info["endCursor"] is not None)
        if not info["hasNextPage"]:
            return ids, pages
        assert len(page["items"]) == 500
        after = info["endCursor"]
        if between is not None:
            between(pages)


def test_every_ticket_once_newest_first_while_tickets_arrive(
    paged: tuple[Site, list[Incident]],
) -> None:
    site, tickets = paged
    arrived: list[str] = []

    def raise_one(page: int) -> None:  # a new ticket between two pages
        result = mutate(site, "carol", "createIncident", input={"title": f"new after {page}"})
        arrived.append(result["incident"]["id"])

    ids, pages = walk(site, "tickets", "", between=raise_one)
    assert pages == COUNT // 500
    assert len(arrived) == pages - 1
    assert len(ids) == len(set(ids)) == COUNT, "each ticket once"
    assert ids == [t.id for t in sorted(tickets, key=lambda t: -t.number)]
    assert not set(arrived) & set(ids), "newer tickets come before the first page's cursor"


def test_every_ticket_once_in_queue_order(paged: tuple[Site, list[Incident]]) -> None:
    site, tickets = paged
    ids, _ = walk(site, "tickets", "filter: {order: QUEUE, type: INCIDENT, channel: PORTAL},")
    assert len(ids) == len(set(ids)) == COUNT
    assert ids == [t.id for t in sorted(tickets, key=queue_key)]


def test_a_group_queue_and_an_agents_tickets(paged: tuple[Site, list[Incident]]) -> None:
    site, tickets = paged
    active = sorted((t for t in tickets if t.status.active), key=queue_key)
    noc = [t.id for t in active if t.assignment_group == "noc"]
    ids, pages = walk(site, "groupQueue", 'group: "noc",')
    assert ids == noc and len(set(ids)) == len(ids)
    assert pages == -(-len(noc) // 500) and len(noc) > 3_000
    mine, _ = walk(site, "myTickets", "", login="alice")
    assert mine == [t.id for t in active if t.assignee == "alice"]
    filtered, _ = walk(
        site, "tickets", 'filter: {assignmentGroup: "noc", open: true, order: QUEUE},'
    )
    assert filtered == noc


PAGE_ERRORS = [
    ("tickets(first: 501)", "first"),
    ("tickets(first: 0)", "first"),
    ('tickets(after: "not-a-cursor")', "after"),
    ('groupQueue(group: "ghosts")', "group"),
]


@pytest.mark.parametrize(("call", "field"), PAGE_ERRORS, ids=[f for _, f in PAGE_ERRORS])
def test_page_arguments_are_checked(
    paged: tuple[Site, list[Incident]], call: str, field: str
) -> None:
    site, _ = paged
    body = site.gql(f"{{ {call} {{ items {{ id }} }} }}", token=site.tokens["bob"])
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, error


def test_a_cursor_of_another_order_is_refused(paged: tuple[Site, list[Incident]]) -> None:
    site, _ = paged
    first = ask(site, "bob", '{ groupQueue(group: "noc", first: 1) { pageInfo { endCursor } } }')
    cursor = first["groupQueue"]["pageInfo"]["endCursor"]
    body = site.gql(
        "query($c: String) { tickets(after: $c) { items { id } } }",
        token=site.tokens["bob"],
        variables={"c": cursor},
    )
    (error,) = body["errors"]
    assert error["extensions"]["field"] == "after"
    assert "queue order" in error["message"]


def test_my_tickets_needs_a_token_of_an_agent(paged: tuple[Site, list[Incident]]) -> None:
    site, _ = paged
    body = site.gql("{ myTickets { items { id } } }", "engineer")  # a token nobody holds
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "token"}
    assert "belongs to no agent" in error["message"]
