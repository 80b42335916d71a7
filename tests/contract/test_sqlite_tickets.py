"""The incident and ticket repository contract over the SQLite adapters: alerts, incidents,
problems, changes and worklog in the graph's file (or the embedded file beside a Neo4j
graph), sharing its write lock; and what only SQLite has, the queues' partial indexes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.storage.sqlite import SqliteGraphStore
from servicegraph.storage.sqlite.event_inbox import SqliteEventInbox
from servicegraph.storage.sqlite.migrations import MIGRATIONS
from servicegraph.storage.sqlite.ticket_unit import ACTIVE
from servicegraph.storage.sqlite.tickets import SqliteTicketStore
from servicegraph.ticketing.lifecycle import ACTIVE_STATUSES
from servicegraph.ticketing.model import TicketType
from servicegraph.ticketing.ports import IncidentFilter, TicketOrder
from tests.contract.sqlite_files import damage
from tests.contract.ticket_contract import Repository, TicketContract, seed


def open_repository(path: Path, *, migrate: bool = True) -> Repository:
    file = SqliteGraphStore(path, lock_timeout=10)
    if migrate:
        file.migrate()
    return Repository(SqliteEventInbox(file), SqliteTicketStore(file))


def close(repo: Repository) -> None:
    assert isinstance(repo.inbox, SqliteEventInbox)
    repo.inbox.close()
    repo.inbox.file.close()


class TestSqliteTickets(TicketContract):
    __test__ = True

    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        return tmp_path / "servicegraph.sqlite3"

    @pytest.fixture
    def repo(self, path: Path) -> Iterator[Repository]:
        repo = open_repository(path)
        yield repo
        close(repo)

    @pytest.fixture
    def other_repo(self, repo: Repository, path: Path) -> Iterator[Repository]:
        other = open_repository(path)
        yield other
        close(other)

    @pytest.fixture
    def failing_repo(self, tmp_path: Path) -> Iterator[Repository]:
        path = tmp_path / "damaged.sqlite3"
        repo = open_repository(path)
        seed(repo)
        close(repo)
        damage(path)
        damaged = open_repository(path, migrate=False)
        yield damaged
        close(damaged)


# -- what only SQLite has: the queues' partial indexes -------------------------------------

QUEUE = TicketOrder.QUEUE


@pytest.mark.parametrize(
    ("query", "index"),
    [
        pytest.param(
            IncidentFilter(assignment_group="grp-a", open=True, order=QUEUE, limit=50),
            "incident_group_queue",
            id="group-queue",
        ),
        pytest.param(
            IncidentFilter(
                assignment_group="grp-a", open=True, order=QUEUE, after=(3, 1_700_000, 42)
            ),
            "incident_group_queue",
            id="group-queue-after",
        ),
        pytest.param(
            IncidentFilter(
                assignment_group="grp-a", open=True, order=QUEUE, type=TicketType.INCIDENT
            ),
            "incident_group_queue",
            id="group-queue-incidents",
        ),
        pytest.param(
            IncidentFilter(assignee="alice", open=True, order=QUEUE, limit=50),
            "incident_agent_queue",
            id="agent-queue",
        ),
        pytest.param(
            IncidentFilter(assignee="alice", open=True, order=QUEUE, after=(1, 0, 7)),
            "incident_agent_queue",
            id="agent-queue-after",
        ),
    ],
)
def test_queue_pages_are_read_in_order_through_the_queue_indexes(
    tmp_path: Path, query: IncidentFilter, index: str
) -> None:
    """A group's or an agent's queue page reads its 50 rows off the partial index in
    order, whatever the number of tickets; sorting instead (a temporary B-tree) is what
    happens when the query's status list is not word for word the index's."""
    repo = open_repository(tmp_path / "servicegraph.sqlite3")
    try:
        assert isinstance(repo.tickets, SqliteTicketStore)
        plan = repo.tickets.query_plan(query)
    finally:
        close(repo)
    assert any(f"INDEX {index} " in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


def test_the_active_statuses_are_said_as_the_queue_indexes_say_them() -> None:
    assert sorted(ACTIVE.strip("()").replace("'", "").split(", ")) == sorted(ACTIVE_STATUSES)
    for index in ("incident_group_queue", "incident_agent_queue"):
        (declaration,) = [s for s in MIGRATIONS[8].split(";") if f"INDEX {index} " in s]
        assert declaration.rstrip().endswith(f"WHERE status IN {ACTIVE}"), declaration
