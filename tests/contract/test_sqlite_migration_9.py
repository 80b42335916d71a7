"""Migration 9 (the service desk) on a store written by the release before it: a file at
schema version 8, built here by that release's migrations and rows in its column set,
opened and migrated by today's ``SqliteGraphStore``. An open incident becomes ``new``, or
``assigned`` when someone held it; the desk's columns get their defaults; the records
read through today's ticket store and its queues."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from servicegraph.events.model import EventStatus
from servicegraph.storage.sqlite import SqliteGraphStore
from servicegraph.storage.sqlite.migrations import MIGRATIONS
from servicegraph.storage.sqlite.tickets import SqliteTicketStore
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Channel, Incident, TicketType, WorklogEntry, WorklogKind
from servicegraph.ticketing.ports import IncidentFilter, TicketOrder

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
US = 1_000_000


def us(minutes: int) -> int:
    return int(T0.timestamp()) * US + minutes * 60 * US


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


# the incident table of schema 8: migrations 2, 4 and 5
V8_INCIDENT = (
    "id, number, title, status, opened_at, updated_at, last_alert_at, priority, impact, "
    "urgency, root_ci_id, root_inferred, root_confidence, root_fingerprint, business_services, "
    "flapping, clear_since, resolved_at, reopen_count, problem_id, alert_count, "
    "acknowledged_at, acknowledged_by, assignee, resolved_by, resolution, root_signature"
)
V8_ALERT = (
    "fingerprint, source, name, severity, status, labels, summary, first_seen, last_seen, "
    "last_change, count, ci_id, incident_id, cleared_at, flapping, transitions, reported_at"
)
#   inc-1  open, nobody held it (acknowledged only)  -> new
#   inc-2  open, alice held it                        -> assigned
#   inc-3  resolved by bob                            -> resolved
V8_INCIDENTS = [
    ("inc-1", 1, "db-1 down", "open", us(0), us(5), us(5), 2, "high", "medium", "ci-db1", 0,
     0.9, "a1", '["svc-orders"]', 0, None, None, 0, None, 1, us(2), "carol", None, None, None,
     "prom/NodeDown"),
    ("inc-2", 2, "web-1 slow", "open", us(10), us(12), us(11), 3, "medium", "medium", "ci-web1",
     1, 0.5, "a2", "[]", 1, us(11), None, 1, "prb-1", 1, None, None, "alice", None, None,
     "prom/HighLatency"),
    ("inc-3", 3, "disk full on fs-1", "resolved", us(20), us(40), us(30), 4, "low", "low",
     "ci-fs1", 0, 1.0, "a3", "[]", 0, us(30), us(40), 0, None, 1, us(21), "bob", "bob", "bob",
     "cleaned /var", "prom/DiskFull"),
]  # fmt: skip
V8_ALERTS = [
    ("a1", "prom", "NodeDown", 4, "firing", '{"ci_id":"ci-db1"}', "", us(0), us(5), us(0), 3,
     "ci-db1", "inc-1", None, 0, f"[{us(0)}]", None),
    ("a2", "prom", "HighLatency", 3, "firing", '{"ci_id":"ci-web1"}', "", us(10), us(11),
     us(11), 2, "ci-web1", "inc-2", None, 1, f"[{us(10)},{us(11)}]", None),
    ("a3", "prom", "DiskFull", 3, "resolved", '{"ci_id":"ci-fs1"}', "", us(20), us(30), us(30),
     1, "ci-fs1", "inc-3", us(30), 0, f"[{us(20)},{us(30)}]", None),
]  # fmt: skip
V8_WORKLOG = [
    (1, "inc-3", us(21), "bob", "acknowledged", ""),
    (2, "inc-3", us(40), "bob", "resolved", "cleaned /var"),
]


def build_version_8(path: Path) -> None:
    """A store file as the release with schema 8 left it (its migrations, its columns)."""
    conn = sqlite3.connect(path)
    try:
        for script in MIGRATIONS[:8]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 8")
        marks = ", ".join("?" for _ in V8_ALERT.split(","))
        conn.executemany(f"INSERT INTO alert ({V8_ALERT}) VALUES ({marks})", V8_ALERTS)
        marks = ", ".join("?" for _ in V8_INCIDENT.split(","))
        conn.executemany(f"INSERT INTO incident ({V8_INCIDENT}) VALUES ({marks})", V8_INCIDENTS)
        conn.executemany(
            "INSERT INTO worklog (seq, ticket_id, at, actor, kind, text) VALUES (?, ?, ?, ?, ?, ?)",
            V8_WORKLOG,
        )
        conn.commit()
    finally:
        conn.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "servicegraph.sqlite3"
    build_version_8(path)
    return path


@pytest.fixture
def tickets(path: Path) -> Iterator[SqliteTicketStore]:
    file = SqliteGraphStore(path, lock_timeout=10)
    file.migrate()
    yield SqliteTicketStore(file)
    file.close()


def when(value: object) -> dt.datetime | None:
    """A v8 time column (microseconds since the epoch) as the store reads it."""
    return None if value is None else at(0) + dt.timedelta(microseconds=int(str(value)) - us(0))


def incident(number: int, status: TicketStatus, **fields: Any) -> Incident:
    """What today's store reads for the v8 row of ``number``: its times and text as they
    were, the desk's fields at their defaults, ``fields`` the rest."""
    names = [c.strip() for c in V8_INCIDENT.split(",")]
    row = dict(zip(names, V8_INCIDENTS[number - 1], strict=True))
    opened, updated, last = (when(row[k]) for k in ("opened_at", "updated_at", "last_alert_at"))
    assert opened is not None and updated is not None and last is not None
    return Incident(
        id=f"inc-{number}",
        number=number,
        title=str(row["title"]),
        status=status,
        opened_at=opened,
        updated_at=updated,
        last_alert_at=last,
        clear_since=when(row["clear_since"]),
        resolved_at=when(row["resolved_at"]),
        acknowledged_at=when(row["acknowledged_at"]),
        first_response_at=when(row["acknowledged_at"]),  # migration 12: answered when acked
        **fields,
    )


EXPECTED = {
    "inc-1": incident(
        1, TicketStatus.NEW, priority=2, impact="high", urgency="medium", root_ci_id="ci-db1",
        root_confidence=0.9, root_fingerprint="a1", business_services=["svc-orders"],
        alert_count=1, acknowledged_by="carol",
    ),
    "inc-2": incident(
        2, TicketStatus.ASSIGNED, priority=3, impact="medium", urgency="medium",
        root_ci_id="ci-web1", root_inferred=True, root_confidence=0.5, root_fingerprint="a2",
        flapping=True, reopen_count=1, problem_id="prb-1", alert_count=1, assignee="alice",
    ),
    "inc-3": incident(
        3, TicketStatus.RESOLVED, priority=4, root_ci_id="ci-fs1", root_confidence=1.0,
        root_fingerprint="a3", alert_count=1, acknowledged_by="bob", assignee="bob",
        resolved_by="bob", resolution="cleaned /var",
    ),
}  # fmt: skip


def test_statuses_become_the_lifecycles_and_the_desk_fields_get_defaults(
    tickets: SqliteTicketStore,
) -> None:
    found = tickets.get_incidents(["inc-1", "inc-2", "inc-3"])
    assert {k: v.status for k, v in found.items()} == {
        "inc-1": TicketStatus.NEW,  # acknowledged, but nobody held it
        "inc-2": TicketStatus.ASSIGNED,
        "inc-3": TicketStatus.RESOLVED,
    }
    for ticket in found.values():
        assert (ticket.type, ticket.channel, ticket.description) == (
            TicketType.INCIDENT,
            Channel.MONITORING,
            "",
        )
        assert (ticket.affected_ci_ids, ticket.tags, ticket.custom_fields) == ([], [], {})
        assert (ticket.requester, ticket.assignment_group, ticket.closed_at) == (None, None, None)
    assert found == EXPECTED, "every v8 field kept, the desk's at their defaults"


def test_the_migrated_store_is_at_the_current_version_and_migrates_once(path: Path) -> None:
    for _ in range(2):
        file = SqliteGraphStore(path, lock_timeout=10)
        file.migrate()
        file.ping()
        file.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        statuses = conn.execute("SELECT id, status FROM incident ORDER BY id").fetchall()
    finally:
        conn.close()
    assert statuses == [("inc-1", "new"), ("inc-2", "assigned"), ("inc-3", "resolved")]


def test_the_migrated_tickets_are_in_the_queues_and_listings(tickets: SqliteTicketStore) -> None:
    def find(**fields: Any) -> list[str]:
        return [i.id for i in tickets.find_incidents(IncidentFilter(**fields))]

    assert find(open=True) == ["inc-2", "inc-1"]
    assert find(open=False) == ["inc-3"]
    assert find(open=True, order=TicketOrder.QUEUE) == ["inc-1", "inc-2"], "priority 2 first"
    assert find(assignee="alice", open=True, order=TicketOrder.QUEUE) == ["inc-2"]
    assert find(unassigned=True) == ["inc-1"]
    assert find(type=TicketType.INCIDENT, channel=Channel.MONITORING) == ["inc-3", "inc-2", "inc-1"]
    assert find(ci_ids=("ci-web1",)) == ["inc-2"]
    assert tickets.open_counts(["alice", "bob"]) == {"alice": 1}
    assert tickets.counts()["incidents_open"] == 2
    assert tickets.open_incidents_of(["ci-db1"]) == {"ci-db1": [EXPECTED["inc-1"]]}
    assert [a.status for a in tickets.incident_alerts(["inc-3"])["inc-3"]] == [EventStatus.RESOLVED]
    with tickets.unit() as unit:
        assert unit.incidents_named("prom/NodeDown", at(0)) == ["inc-1"], "its root signature"


def test_the_old_worklog_reads_without_field_changes(tickets: SqliteTicketStore) -> None:
    assert tickets.worklog(["inc-3"]) == {
        "inc-3": [
            WorklogEntry("inc-3", at(21), "bob", WorklogKind.ACKNOWLEDGED, "", seq=1),
            WorklogEntry("inc-3", at(40), "bob", WorklogKind.RESOLVED, "cleaned /var", seq=2),
        ]
    }


def test_a_migrated_ticket_takes_the_desks_fields(tickets: SqliteTicketStore) -> None:
    worked = replace(
        EXPECTED["inc-1"],
        status=TicketStatus.ASSIGNED,
        assignee="dave",
        assignment_group="grp-dba",
        category="database",
        tags=["migrated"],
        updated_at=at(60),
    )
    with tickets.unit() as unit:
        unit.update_incidents([worked])
    assert tickets.get_incidents(["inc-1"]) == {"inc-1": worked}
    queue = IncidentFilter(assignment_group="grp-dba", open=True, order=TicketOrder.QUEUE)
    assert tickets.find_incidents(queue) == [worked]
    assert any("INDEX incident_group_queue " in step for step in tickets.query_plan(queue))
