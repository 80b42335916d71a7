"""The behaviour every backend of the ticket repository owes the services, as documented
in ``servicegraph.ticketing.ports`` (``TicketStore``, ``TicketUnit``): alerts, incidents
and problems as correlation writes them, people's work, and change and problem management
(changes with their approvals, tasks and accepted conflicts, the changes touching a
period, freeze windows, the problems a change fixes, known errors); the inbox and the
claim of a ``CorrelationUnit`` have ``inbox_contract.py``.

A backend's test module subclasses ``TicketContract``, sets ``__test__ = True`` and
provides the fixtures: ``repo``, an empty, migrated ``Repository`` (the ticket store, and
the inbox whose file it shares) that the fixture closes afterwards; ``other_repo``, a
second one over the same data, as another process opens it; and ``failing_repo``, one whose
backend fails underneath (a damaged file, a lost server), holding the ``seed`` records from
before it failed. A backend that cannot run here is skipped with the reason, never faked.

The suite runs over SQLite (``test_sqlite_tickets.py``) and Neo4j (``test_neo4j_tickets.py``).

Where a port promises no order, results are compared as sets.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from servicegraph.cmdb.errors import StoreError, StoreUnavailable
from servicegraph.correlation.ports import EventInbox
from servicegraph.events.model import Alert, AlertCycle, EventStatus, Severity
from servicegraph.ticketing.change_model import (
    ApprovalDecision,
    ChangeApproval,
    ChangeTask,
    ChangeType,
    ConflictOverride,
    FreezeWindow,
    TaskStatus,
)
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import (
    Change,
    ChangeRisk,
    ChangeStatus,
    Channel,
    Incident,
    LinkKind,
    Problem,
    ProblemStatus,
    TicketLink,
    TicketType,
    WorklogEntry,
    WorklogKind,
)
from servicegraph.ticketing.ports import (
    ChangeFilter,
    IncidentFilter,
    ProblemFilter,
    TicketOrder,
    TicketStore,
)

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
NAIVE = dt.datetime(2024, 3, 1, 12, 0)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


@dataclass
class Repository:
    """The repository over one backend, and the inbox that opened its file (correlation
    writes incidents through the same units as people do, see ``TicketUnit``)."""

    inbox: EventInbox
    tickets: TicketStore


def make_alert(
    fingerprint: str,
    ci_id: str | None,
    incident_id: str | None,
    first_seen: float,
    last_seen: float | None = None,
    **fields: Any,
) -> Alert:
    last = at(first_seen if last_seen is None else last_seen)
    return Alert(
        fingerprint=fingerprint,
        source=fields.pop("source", "test"),
        name=fields.pop("name", "NodeDown"),
        severity=fields.pop("severity", Severity.MAJOR),
        status=fields.pop("status", EventStatus.FIRING),
        labels=fields.pop("labels", {"ci_id": ci_id} if ci_id else {"host": "nowhere"}),
        summary=fields.pop("summary", ""),
        first_seen=at(first_seen),
        last_seen=last,
        last_change=fields.pop("last_change", at(first_seen)),
        ci_id=ci_id,
        incident_id=incident_id,
        **fields,
    )


def make_incident(number: int, opened: float, **fields: Any) -> Incident:
    return Incident(
        id=f"inc-{number}",
        number=number,
        title=fields.pop("title", f"incident {number}"),
        status=fields.pop("status", TicketStatus.NEW),
        opened_at=at(opened),
        updated_at=fields.pop("updated_at", at(opened)),
        last_alert_at=fields.pop("last_alert_at", at(opened)),
        **fields,
    )


def make_problem(number: int, **fields: Any) -> Problem:
    return Problem(
        id=f"prb-{number}",
        number=number,
        title=fields.pop("title", f"problem {number}"),
        status=fields.pop("status", ProblemStatus.OPEN),
        created_at=fields.pop("created_at", at(number)),
        updated_at=fields.pop("updated_at", at(number)),
        root_ci_id=fields.pop("root_ci_id", None),
        reason=fields.pop("reason", "recurrence"),
        signature=fields.pop("signature", f"signature-{number}"),
        **fields,
    )


def make_change(number: int, ci_ids: list[str], **fields: Any) -> Change:
    return Change(
        id=f"chg-{number}",
        number=number,
        title=fields.pop("title", f"change {number}"),
        status=fields.pop("status", ChangeStatus.DRAFT),
        risk=fields.pop("risk", ChangeRisk.LOW),
        created_at=fields.pop("created_at", at(number)),
        updated_at=fields.pop("updated_at", at(number)),
        created_by=fields.pop("created_by", "alice"),
        ci_ids=ci_ids,
        **fields,
    )


def make_freeze(key: str, starts: float, ends: float, **fields: Any) -> FreezeWindow:
    return FreezeWindow(
        id=f"frz-{key}",
        name=fields.pop("name", f"freeze {key}"),
        starts_at=at(starts),
        ends_at=at(ends),
        created_at=fields.pop("created_at", at(0)),
        created_by=fields.pop("created_by", "carol"),
        **fields,
    )


# A change with every field of change management away from its default.
FULL_CHANGE = make_change(
    5,
    ["ci-b", "ci-a"],
    title="Swap the PSUs «A» and “B”",
    description="both switches",
    status=ChangeStatus.REVIEW,
    risk=ChangeRisk.VERY_HIGH,
    planned_start=at(60),
    planned_end=at(120),
    change_type=ChangeType.EMERGENCY,
    template="psu-swap",
    assignee="bob",
    risk_reasons=["ci-a serves 3 business services", "no backout tested"],
    risk_assessed_at=at(10),
    approvals_required=2,
    approvals=[
        ChangeApproval("dave", ApprovalDecision.APPROVED, at(20), "go «now»"),
        ChangeApproval("erin", ApprovalDecision.REJECTED, at(21)),
    ],
    tasks=[
        ChangeTask(1, "drain traffic", "bob", TaskStatus.DONE, at(61), "bob"),
        ChangeTask(2, "swap", "frank"),
        ChangeTask(3, "test failover", status=TaskStatus.CANCELLED),
    ],
    conflict_overrides=[
        ConflictOverride("chg-9", "same engineer, one after the other", "dave", at(22)),
        ConflictOverride("frz-q4", "the vendor is on site only then", "dave", at(23)),
    ],
    implementation_plan="1. drain\n2. swap\n3. test",
    backout_plan="put the old PSUs back",
    actual_start=at(62),
    actual_end=at(110),
    close_code="successful_with_issues",
    close_notes="one fan noisy",
)
# A problem with every field of problem management away from its default.
FULL_PROBLEM = make_problem(
    6,
    status=ProblemStatus.INVESTIGATING,
    root_ci_id="ci-a",
    known_error="the PSU batch 7 fails",
    workaround="move the load",
    assignee="gina",
    description="four outages «this month»",
    root_cause="a bad capacitor batch",
    fix="replace every PSU of batch 7",
    fixing_change_id="chg-5",
    resolved_at=at(200),
    closed_at=at(300),
    resolution="replaced by chg-5",
)


# The records ``seed`` writes: three incidents on four CIs, two alerts without a CI.
#   inc-1  open      root ci-a  alerts a1 (ci-a), a2 (ci-b)   priority 2
#   inc-2  resolved  root ci-b  alert  a3 (ci-b)              priority 4, alice
#   inc-3  open      no root    alerts a4 (ci-c), a5 (ci-a)   priority 1, bob
ALERTS = {
    "a1": make_alert("a1", "ci-a", "inc-1", 0, 5),
    "a2": make_alert("a2", "ci-b", "inc-1", 1, 6, name="HighLatency"),
    "a3": make_alert("a3", "ci-b", "inc-2", 10, 12, status=EventStatus.RESOLVED),
    "a4": make_alert("a4", "ci-c", "inc-3", 20, 21, name="DiskFull"),
    "a5": make_alert("a5", "ci-a", "inc-3", 22, name="HighLatency"),
    "u1": make_alert("u1", None, None, 30, 40, name="Odd"),
    "u2": make_alert("u2", None, None, 31, 50, name="Odder"),
}
INCIDENTS = {
    "inc-1": make_incident(
        1,
        0,
        updated_at=at(6),
        last_alert_at=at(6),
        priority=2,
        root_ci_id="ci-a",
        root_fingerprint="a1",
        alert_count=2,
    ),
    "inc-2": make_incident(
        2,
        10,
        status=TicketStatus.RESOLVED,
        updated_at=at(30),
        last_alert_at=at(12),
        resolved_at=at(30),
        priority=4,
        root_ci_id="ci-b",
        root_fingerprint="a3",
        alert_count=1,
        assignee="alice",
    ),
    "inc-3": make_incident(
        3,
        20,
        updated_at=at(21),
        last_alert_at=at(22),
        priority=1,
        root_fingerprint="a4",
        alert_count=2,
        assignee="bob",
    ),
}


def seed(repo: Repository) -> None:
    """Write ``ALERTS`` and ``INCIDENTS`` in one correlation unit, alerts first (as the
    correlator does)."""
    with repo.tickets.unit() as unit:
        unit.save_alerts(list(ALERTS.values()))
        unit.save_incidents(list(INCIDENTS.values()))


def fingerprints(alerts: Iterable[Alert]) -> set[str]:
    return {a.fingerprint for a in alerts}


def incident_ids(incidents: Iterable[Incident]) -> list[str]:
    return [i.id for i in incidents]


def without_seq(entries: Iterable[WorklogEntry]) -> list[WorklogEntry]:
    return [replace(e, seq=0) for e in entries]


# -- the desk ------------------------------------------------------------------------------

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def micros(value: dt.datetime) -> int:
    """A time as the cursors of the QUEUE order hold it (microseconds since the epoch)."""
    return (value - EPOCH) // dt.timedelta(microseconds=1)


def queue_key(incident: Incident) -> tuple[int, int, int]:
    """The QUEUE order's sort key, which its cursors hold: priority, age, number."""
    return (incident.priority, micros(incident.opened_at), incident.number)


def desk_ticket(number: int, opened: float, status: TicketStatus, **fields: Any) -> Incident:
    """A ticket as people raise it: no alerts, the desk's fields set."""
    for name in ("resolved_at", "closed_at"):
        if isinstance(fields.get(name), int | float):
            fields[name] = at(fields[name])
    return make_incident(
        number, opened, status=status, channel=fields.pop("channel", Channel.PHONE), **fields
    )


# The tickets ``desk`` writes (and nothing else):
#   no type status       prio opened group    agent requester org      service    category
#   11 inc  assigned     2    100    grp-net  alice c-anna    org-acme svc-vpn    network/vpn
#   12 req  new          4    110    grp-desk -     c-ben     org-beta svc-laptop hardware/laptop
#   13 inc  pending      3    120    grp-net  bob   c-anna    org-acme svc-vpn    networking
#   14 inc  resolved@200 1    130    grp-net  alice c-cleo    org-beta svc-vpn    network
#   15 req  closed@300   5    90     grp-desk carol c-ben     -        -          network/vpn/split
#   16 inc  in_progress  3    120    grp-net  bob   -         -        -          net_ork
#   17 inc  cancelled    4    140    grp-desk -     c-anna    org-acme -          network-ops
_S = TicketStatus
# fmt: off
DESK = {
    t.id: t
    for t in [
        desk_ticket(
            11, 100, _S.ASSIGNED, priority=2, assignment_group="grp-net", assignee="alice",
            requester="c-anna", organisation="org-acme", service="svc-vpn",
            category="network/vpn", tags=["vip", "vpn"], title="VPN drops 5% of the time",
            priority_floor=2,  # routing's bounds: at least a P2
        ),
        desk_ticket(
            12, 110, _S.NEW, type=TicketType.SERVICE_REQUEST, priority=4,
            assignment_group="grp-desk", requester="c-ben", organisation="org-beta",
            service="svc-laptop", category="hardware/laptop", tags=["onboarding"],
            channel=Channel.PORTAL, title="New laptop for Ben",
        ),
        desk_ticket(
            13, 120, _S.PENDING, priority=3, assignment_group="grp-net", assignee="bob",
            requester="c-anna", organisation="org-acme", service="svc-vpn", category="networking",
            tags=["vpn"], channel=Channel.EMAIL, pending_reason="awaiting_requester",
            title="Networking share at 100_percent",
        ),
        desk_ticket(
            14, 130, _S.RESOLVED, priority=1, resolved_at=200, assignment_group="grp-net",
            assignee="alice", requester="c-cleo", organisation="org-beta", service="svc-vpn",
            category="network", channel=Channel.CHAT, title="Core network down",
        ),
        desk_ticket(
            15, 90, _S.CLOSED, type=TicketType.SERVICE_REQUEST, priority=5, resolved_at=150,
            closed_at=300, assignment_group="grp-desk", assignee="carol", requester="c-ben",
            category="network/vpn/split", tags=["vip"], channel=Channel.API,
            title="Split tunnel for the vpn",
        ),
        desk_ticket(
            16, 120, _S.IN_PROGRESS, priority=3, assignment_group="grp-net", assignee="bob",
            root_ci_id="ci-p", category="net_ork", channel=Channel.MONITORING,
            title="Printer p-7 offline", priority_floor=4, priority_ceiling=3,  # P3 or P4
        ),
        desk_ticket(
            17, 140, _S.CANCELLED, priority=4, assignment_group="grp-desk", requester="c-anna",
            organisation="org-acme", category="network-ops", title="Printer toner (again)",
        ),
    ]
}
# fmt: on
# what each filter keeps, newest first: every field of IncidentFilter, alone and together
DESK_FILTERS: list[tuple[dict[str, Any], list[int]]] = [
    ({}, [17, 16, 15, 14, 13, 12, 11]),
    ({"status": _S.PENDING}, [13]),
    ({"status": _S.CLOSED}, [15]),
    ({"open": True}, [16, 13, 12, 11]),
    ({"open": False}, [17, 15, 14]),
    ({"open": True, "status": _S.NEW}, [12]),
    ({"open": True, "status": _S.RESOLVED}, []),  # every field set must hold
    ({"open": False, "status": _S.NEW}, []),
    ({"open": False, "status": _S.CANCELLED}, [17]),
    ({"assignee": "alice"}, [14, 11]),
    ({"assignee": "nobody"}, []),
    ({"unassigned": True}, [17, 12]),
    ({"unassigned": False}, [16, 15, 14, 13, 11]),
    ({"assignment_group": "grp-desk"}, [17, 15, 12]),
    ({"type": TicketType.SERVICE_REQUEST}, [15, 12]),
    ({"type": TicketType.INCIDENT}, [17, 16, 14, 13, 11]),
    ({"channel": Channel.PHONE}, [17, 11]),
    ({"channel": Channel.MONITORING}, [16]),
    ({"requester": "c-anna"}, [17, 13, 11]),
    ({"organisation": "org-beta"}, [14, 12]),
    ({"service": "svc-vpn"}, [14, 13, 11]),
    ({"category": "network"}, [15, 14, 11]),  # not networking, not network-ops
    ({"category": "network/vpn"}, [15, 11]),
    ({"category": "network/vpn/split"}, [15]),
    ({"category": "net_ork"}, [16]),  # "_" is no wildcard
    ({"category": "net"}, []),  # a prefix of a segment is no category
    ({"category": "hardware"}, [12]),
    ({"tag": "vip"}, [15, 11]),
    ({"tag": "vp"}, []),  # a whole tag, not a part of one
    ({"text": "vpn"}, [15, 11]),  # case-insensitive
    ({"text": "PRINTER"}, [17, 16]),
    ({"text": "%"}, [11]),  # "%" is no wildcard
    ({"text": "5% of"}, [11]),
    ({"text": "_"}, [13]),  # nor is "_"
    ({"text": "0_p"}, [13]),
    ({"text": "no%such_title"}, []),
    ({"opened_since": at(120)}, [17, 16, 14, 13]),  # at the time given, or later
    ({"resolved_before": at(200)}, [15]),  # before it: 14 resolved at 200
    ({"resolved_before": at(201)}, [15, 14]),
    ({"ci_ids": ("ci-p",)}, [16]),
    ({"ci_ids": ("ci-q",)}, []),
    ({"max_priority": 2}, [14, 11]),
    ({"max_priority": 3, "open": True, "assignment_group": "grp-net"}, [16, 13, 11]),
    ({"requester": "c-anna", "category": "network", "tag": "vpn"}, [11]),
    ({"open": True, "unassigned": True, "type": TicketType.SERVICE_REQUEST}, [12]),
    ({"limit": 2}, [17, 16]),
    ({"after": (15,)}, [14, 13, 12, 11]),
    ({"after": (15,), "limit": 2, "tag": "vpn"}, [13, 11]),
]
# the same in QUEUE order: priority (1 first), then age, then number
DESK_QUEUES: list[tuple[dict[str, Any], list[int]]] = [
    ({}, [14, 11, 13, 16, 12, 17, 15]),
    ({"open": True, "assignment_group": "grp-net"}, [11, 13, 16]),  # 13 and 16: same age
    ({"open": True, "assignee": "bob"}, [13, 16]),
    ({"open": True}, [11, 13, 16, 12]),
    ({"after": (3, micros(at(120)), 13)}, [16, 12, 17, 15]),
    ({"after": (3, micros(at(120)), 16)}, [12, 17, 15]),
    ({"after": (4, micros(at(110)), 12), "limit": 1}, [17]),
    ({"after": (3, micros(at(120)), 13), "open": True, "assignment_group": "grp-net"}, [16]),
    ({"after": (5, micros(at(90)), 15)}, []),
]


def desk(repo: Repository) -> None:
    with repo.tickets.unit() as unit:
        unit.save_incidents(list(DESK.values()))


def numbers(incidents: Iterable[Incident]) -> list[int]:
    return [i.number for i in incidents]


def many_tickets(count: int) -> list[Incident]:
    """``count`` tickets whose QUEUE and NEWEST orders differ and have ties: priorities
    1..5, opening times that repeat (about forty tickets at each) and do not follow the
    numbers, two groups and some tickets no longer active."""
    statuses = [_S.NEW, _S.ASSIGNED, _S.IN_PROGRESS, _S.PENDING, _S.RESOLVED, _S.CLOSED]
    return [
        make_incident(
            n,
            (n * 37) % 250,
            status=statuses[n % 7 % len(statuses)],
            priority=(n * 7) % 5 + 1,
            assignment_group="grp-a" if n % 3 else "grp-b",
            channel=Channel.PORTAL,
        )
        for n in range(1, count + 1)
    ]


def case_id(fields: dict[str, Any]) -> str:
    return ",".join(f"{k}={getattr(v, 'value', v)}" for k, v in fields.items()) or "all"


class TicketContract:
    """Subclass per backend; override the ``repo``, ``other_repo`` and ``failing_repo``
    fixtures."""

    __test__ = False

    @pytest.fixture
    def repo(self) -> Repository:
        raise NotImplementedError("a backend's test class provides the repo fixture")

    @pytest.fixture
    def other_repo(self, repo: Repository) -> Repository:
        raise NotImplementedError("a backend's test class provides the other_repo fixture")

    @pytest.fixture
    def failing_repo(self) -> Repository:
        raise NotImplementedError("a backend's test class provides the failing_repo fixture")

    @pytest.fixture
    def seeded(self, repo: Repository) -> Repository:
        seed(repo)
        return repo

    # -- an empty repository -------------------------------------------------------------

    def test_empty_repository(self, repo: Repository) -> None:
        repo.tickets.ping()
        assert repo.tickets.get_incidents(["inc-1"]).get("inc-1") is None
        assert repo.tickets.find_incidents(IncidentFilter()) == []
        assert repo.tickets.incident_alerts(["inc-1"]).get("inc-1", []) == []
        assert repo.tickets.unmapped_alerts() == []
        assert repo.tickets.find_problems(ProblemFilter()) == []
        tickets = repo.tickets
        assert tickets.last_incident_number() == 0
        assert tickets.get_incidents(["inc-1"]) == {}
        assert tickets.find_incidents(IncidentFilter()) == []
        assert tickets.open_incidents_of(["ci-a"]) == {}
        assert tickets.incidents_of(["ci-a"]) == []
        assert tickets.incident_alerts(["inc-1"]).get("inc-1", []) == []
        assert tickets.alerts_on(["ci-a"]) == []
        assert tickets.get_problems(["prb-1"]) == {}
        assert tickets.find_problems(ProblemFilter()) == []
        assert tickets.problems_of(["ci-a"]) == []
        assert tickets.get_changes(["chg-1"]) == {}
        assert tickets.find_changes(ChangeFilter()) == []
        assert tickets.changes_touching(at(0), at(60)) == []
        assert tickets.freeze_windows() == []
        assert tickets.problems_fixed_by(["chg-1"]) == []
        assert tickets.known_errors_for(["ci-a"], ["ci:ci-a"]) == []
        assert tickets.worklog(["inc-1"]) == {}
        assert tickets.incidents_updated_since(at(0), 10) == []
        with repo.tickets.unit() as unit:
            assert unit.next_incident_number() == 1
            assert unit.next_problem_number() == 1
            assert unit.load_alerts(["a1"]) == {}
            assert unit.active_incidents(at(0)) == []
            assert unit.alerts_of(["inc-1"]).get("inc-1", []) == []
            assert unit.incidents_with_root(["ci-a"], at(0)) == []
            assert unit.incidents_named("test/NodeDown", at(0)) == []
            assert unit.count_roots_named("test/NodeDown", at(0)) == 0
            assert unit.find_problem("signature-1") is None
        with repo.tickets.unit() as ticket_unit:
            assert ticket_unit.load_incidents(["inc-1"]) == {}
            assert ticket_unit.load_problems(["prb-1"]) == {}
            assert ticket_unit.next_problem_number() == 1
            assert ticket_unit.next_change_number() == 1

    # -- what correlation writes ---------------------------------------------------------

    def test_alerts_round_trip_every_field(self, repo: Repository) -> None:
        cet = dt.timezone(dt.timedelta(hours=1))
        alert = make_alert(
            "fp-full",
            "ci-a",
            "inc-1",
            0,
            9,
            source="zabbix",
            name="Trigger 7",
            severity=Severity.CRITICAL,
            status=EventStatus.RESOLVED,
            labels={"ci_id": "ci-a", "é": "ü", "empty": ""},
            summary="disk /var is full: 99 % (über)",
            last_change=dt.datetime(2024, 3, 1, 13, 3, 0, 123_456, tzinfo=cet),
            count=7,
            cleared_at=at(9),
            flapping=True,
            transitions=[at(1), at(2), at(3)],
            reported_at=at(400),
            change_id="chg-4",
        )
        with repo.tickets.unit() as unit:
            unit.save_alerts([alert])
            unit.save_incidents([make_incident(1, 0, root_fingerprint="fp-full")])
        with repo.tickets.unit() as unit:
            assert unit.load_alerts(["fp-full", "fp-nope"]) == {"fp-full": alert}
            assert unit.alerts_of(["inc-1"]) == {"inc-1": [alert]}
        assert repo.tickets.incident_alerts(["inc-1"]).get("inc-1", []) == [alert]
        assert repo.tickets.incident_alerts(["inc-1"]) == {"inc-1": [alert]}
        assert repo.tickets.alerts_on(["ci-a"]) == [alert]

    def test_saving_an_alert_again_replaces_it(self, seeded: Repository) -> None:
        moved = replace(
            ALERTS["a2"],
            status=EventStatus.RESOLVED,
            count=3,
            last_seen=at(8),
            cleared_at=at(8),
            ci_id="ci-d",
            incident_id="inc-3",
            transitions=[at(7)],
            change_id="chg-1",  # expected: fired under a change
        )
        with seeded.tickets.unit() as unit:
            unit.save_alerts([moved])
        with seeded.tickets.unit() as unit:
            assert unit.load_alerts(["a2"]) == {"a2": moved}
        assert fingerprints(seeded.tickets.incident_alerts(["inc-1"]).get("inc-1", [])) == {"a1"}
        assert fingerprints(seeded.tickets.incident_alerts(["inc-3"]).get("inc-3", [])) == {
            "a2",
            "a4",
            "a5",
        }
        assert seeded.tickets.alerts_on(["ci-d"]) == [moved]

    def test_incidents_round_trip_every_field(self, repo: Repository) -> None:
        cet = dt.timezone(dt.timedelta(hours=1))
        incident = Incident(
            id="inc-7",
            number=7,
            title="orders down: “quoted” ü",
            status=TicketStatus.RESOLVED,
            opened_at=dt.datetime(2024, 3, 1, 13, 0, 0, 123_456, tzinfo=cet),
            updated_at=at(9),
            last_alert_at=at(8),
            priority=1,
            impact="high",
            urgency="medium",
            root_ci_id="ci-a",
            root_inferred=True,
            root_confidence=0.75,
            root_fingerprint="a1",
            business_services=["svc-orders", "svc-billing"],
            flapping=True,
            clear_since=at(7),
            resolved_at=at(9),
            reopen_count=2,
            problem_id="prb-1",
            alert_count=5,
            acknowledged_at=at(3),
            acknowledged_by="alice",
            assignee="bob",
            resolved_by="carol",
            resolution="restarted the database",
        )
        with repo.tickets.unit() as unit:
            unit.save_alerts([ALERTS["a1"]])
            unit.save_incidents([incident])
        assert repo.tickets.get_incidents(["inc-7"]).get("inc-7") == incident
        assert repo.tickets.get_incidents(["inc-8"]).get("inc-8") is None
        assert repo.tickets.get_incidents(["inc-7", "inc-8"]) == {"inc-7": incident}
        assert repo.tickets.find_incidents(IncidentFilter()) == [incident]
        with repo.tickets.unit() as unit:
            assert unit.active_incidents(at(9)) == [incident]
        with repo.tickets.unit() as ticket_unit:
            assert ticket_unit.load_incidents(["inc-7"]) == {"inc-7": incident}

    def test_saving_an_incident_again_replaces_it(self, seeded: Repository) -> None:
        changed = replace(
            INCIDENTS["inc-1"],
            title="renamed",
            priority=1,
            updated_at=at(40),
            business_services=["svc-orders"],
            root_ci_id="ci-d",
        )
        with seeded.tickets.unit() as unit:
            unit.save_incidents([changed])
        assert seeded.tickets.get_incidents(["inc-1"]).get("inc-1") == changed
        assert seeded.tickets.last_incident_number() == 3
        assert len(seeded.tickets.find_incidents(IncidentFilter())) == 3

    def test_numbers_follow_the_highest_so_far(self, seeded: Repository) -> None:
        assert seeded.tickets.last_incident_number() == 3
        with seeded.tickets.unit() as unit:
            assert unit.next_incident_number() == 4
            unit.save_incidents([make_incident(9, 40)])
            assert unit.next_incident_number() == 10, "within the unit, what it wrote"
            unit.save_problem(make_problem(4))
            assert unit.next_problem_number() == 5
        assert seeded.tickets.last_incident_number() == 9
        with seeded.tickets.unit() as ticket_unit:
            assert ticket_unit.next_problem_number() == 5
            assert ticket_unit.next_change_number() == 1
            assert ticket_unit.load_changes(["chg-1"]) == {}
            assert ticket_unit.changes_touching(at(0), at(60)) == []
            assert ticket_unit.freeze_windows(None, None) == []
            assert ticket_unit.delete_freeze_window("frz-1") is False
            ticket_unit.save_change(make_change(3, []))
            assert ticket_unit.next_change_number() == 4

    def test_state_version_advances_with_units_that_commit(self, repo: Repository) -> None:
        with repo.tickets.unit() as unit:
            start = unit.state_version()
            advanced = unit.touched()
            assert advanced != start
            assert unit.state_version() == advanced
        with repo.tickets.unit() as unit:
            assert unit.state_version() == advanced, "committed"
        with pytest.raises(RuntimeError, match="late"), repo.tickets.unit() as unit:
            unit.touched()
            raise RuntimeError("late failure")
        with repo.tickets.unit() as unit:
            assert unit.state_version() == advanced, "rolled back"
            again = unit.touched()
        assert len({start, advanced, again}) == 3

    def test_ticket_work_tells_correlation_its_cache_is_stale(
        self, repo: Repository, other_repo: Repository
    ) -> None:
        with repo.tickets.unit() as unit:
            version = unit.state_version()
        with other_repo.tickets.unit() as ticket_unit:
            ticket_unit.touched()
        with repo.tickets.unit() as unit:
            assert unit.state_version() != version

    def test_a_failed_correlation_unit_writes_nothing(self, repo: Repository) -> None:
        with pytest.raises(RuntimeError, match="late"), repo.tickets.unit() as unit:
            unit.save_alerts(list(ALERTS.values()))
            unit.save_incidents(list(INCIDENTS.values()))
            unit.save_problem(make_problem(1))
            unit.link_problem("prb-1", ["inc-1"], at(1))
            raise RuntimeError("late failure")
        assert repo.tickets.find_incidents(IncidentFilter()) == []
        assert repo.tickets.unmapped_alerts() == []
        assert repo.tickets.find_problems(ProblemFilter()) == []
        assert repo.tickets.last_incident_number() == 0

    def test_active_incidents_are_open_or_resolved_since(self, seeded: Repository) -> None:
        with seeded.tickets.unit() as unit:
            assert set(incident_ids(unit.active_incidents(at(30)))) == {
                "inc-1",
                "inc-2",
                "inc-3",
            }, "resolved at the time given: may reopen"
            active = sorted(unit.active_incidents(at(31)), key=lambda i: i.number)
        assert active == [INCIDENTS["inc-1"], INCIDENTS["inc-3"]]

    def test_active_incidents_are_monitoring_ones_only(self, seeded: Repository) -> None:
        with seeded.tickets.unit() as unit:
            (ticket,) = unit.load_incidents(["inc-1"]).values()
            unit.update_incidents([replace(ticket, channel=Channel.PHONE)])
        with seeded.tickets.unit() as unit:
            found = set(incident_ids(unit.active_incidents(at(0))))
        assert found == {"inc-2", "inc-3"}, "a ticket people raised has no alerts to clear"

    def test_alerts_of_incidents(self, seeded: Repository) -> None:
        with seeded.tickets.unit() as unit:
            found = unit.alerts_of(["inc-1", "inc-2", "inc-9"])
        assert {k: fingerprints(v) for k, v in found.items() if v} == {
            "inc-1": {"a1", "a2"},
            "inc-2": {"a3"},
        }
        assert found["inc-2"] == [ALERTS["a3"]]

    def test_incidents_with_root_opened_since(self, seeded: Repository) -> None:
        with seeded.tickets.unit() as unit:
            assert set(incident_ids(unit.incidents_with_root(["ci-a", "ci-b"], at(0)))) == {
                "inc-1",
                "inc-2",
            }
            assert incident_ids(unit.incidents_with_root(["ci-a", "ci-b"], at(10))) == ["inc-2"], (
                "opened at the time given"
            )
            assert unit.incidents_with_root(["ci-c"], at(0)) == [], "an alert is no root"
            assert unit.incidents_with_root(["ci-b"], at(11)) == []

    def test_incidents_named_by_their_root_alert(self, seeded: Repository) -> None:
        """A root alert's signature is ``source/name`` (as the correlator names it)."""
        with seeded.tickets.unit() as unit:
            assert set(unit.incidents_named("test/NodeDown", at(0))) == {"inc-1", "inc-2"}
            assert unit.incidents_named("test/NodeDown", at(5)) == ["inc-2"]
            assert unit.incidents_named("test/DiskFull", at(0)) == [], "no root CI"
            assert unit.incidents_named("test/HighLatency", at(0)) == [], "not a root alert"
            assert unit.count_roots_named("test/NodeDown", at(0)) == 2
            assert unit.count_roots_named("test/NodeDown", at(5)) == 1
            assert unit.count_roots_named("test/DiskFull", at(0)) == 0
            unit.save_incidents([make_incident(4, 25, root_ci_id="ci-a", root_fingerprint="a1")])
            assert set(unit.incidents_named("test/NodeDown", at(0))) == {
                "inc-1",
                "inc-2",
                "inc-4",
            }
            assert unit.count_roots_named("test/NodeDown", at(0)) == 2, "distinct roots"

    def test_incidents_are_named_whatever_order_a_unit_writes_them(self, repo: Repository) -> None:
        with repo.tickets.unit() as unit:
            unit.save_incidents([INCIDENTS["inc-1"]])
            unit.save_alerts([ALERTS["a1"]])
        with repo.tickets.unit() as unit:
            assert unit.incidents_named("test/NodeDown", at(0)) == ["inc-1"]
            assert unit.count_roots_named("test/NodeDown", at(0)) == 1
        # saved again, the alert changes nothing; a new root alert renames the incident
        with repo.tickets.unit() as unit:
            unit.save_alerts([ALERTS["a1"]])
            assert unit.incidents_named("test/NodeDown", at(0)) == ["inc-1"]
            unit.save_alerts([ALERTS["a2"]])
            unit.save_incidents([replace(INCIDENTS["inc-1"], root_fingerprint="a2")])
        with repo.tickets.unit() as unit:
            assert unit.incidents_named("test/HighLatency", at(0)) == ["inc-1"]
            assert unit.incidents_named("test/NodeDown", at(0)) == []

    def test_problems_as_correlation_opens_and_links_them(self, seeded: Repository) -> None:
        problem = make_problem(
            1,
            root_ci_id="ci-a",
            reason="NodeDown recurred on ci-a",
            signature="ci:ci-a:test/NodeDown",
        )
        with seeded.tickets.unit() as unit:
            unit.save_problem(problem)
            unit.link_problem("prb-1", ["inc-1"], at(40))
        with seeded.tickets.unit() as unit:
            assert unit.find_problem("ci:ci-a:test/NodeDown") == problem, "without incidents"
            assert unit.find_problem("ci:ci-b:test/NodeDown") is None
            unit.link_problem("prb-1", ["inc-1", "inc-2"], at(41))  # inc-1 again: idempotent
        (listed,) = seeded.tickets.find_problems(ProblemFilter())
        assert replace(listed, incident_ids=[]) == problem
        assert sorted(listed.incident_ids) == ["inc-1", "inc-2"]
        assert seeded.tickets.get_problems(["prb-1"])["prb-1"] == listed
        for incident_id in ("inc-1", "inc-2"):
            linked = seeded.tickets.get_incidents([incident_id]).get(incident_id)
            assert linked is not None and linked.problem_id == "prb-1"
        unlinked = seeded.tickets.get_incidents(["inc-3"]).get("inc-3")
        assert unlinked is not None and unlinked.problem_id is None

    def test_list_problems_is_bounded(self, repo: Repository) -> None:
        with repo.tickets.unit() as unit:
            for n in (1, 2, 3):
                unit.save_problem(make_problem(n))
        assert {p.id for p in repo.tickets.find_problems(ProblemFilter())} == {
            "prb-1",
            "prb-2",
            "prb-3",
        }
        assert len(repo.tickets.find_problems(ProblemFilter(limit=2))) == 2

    # -- reads of the incident store -----------------------------------------------------

    def test_list_incidents_newest_first_with_filters(self, seeded: Repository) -> None:
        assert seeded.tickets.find_incidents(IncidentFilter()) == [
            INCIDENTS["inc-3"],
            INCIDENTS["inc-2"],
            INCIDENTS["inc-1"],
        ]
        assert incident_ids(seeded.tickets.find_incidents(IncidentFilter(open=True))) == [
            "inc-3",
            "inc-1",
        ]
        assert incident_ids(
            seeded.tickets.find_incidents(IncidentFilter(status=TicketStatus.RESOLVED))
        ) == ["inc-2"]
        assert incident_ids(seeded.tickets.find_incidents(IncidentFilter(ci_ids=("ci-a",)))) == [
            "inc-3",
            "inc-1",
        ]
        assert incident_ids(seeded.tickets.find_incidents(IncidentFilter(ci_ids=("ci-b",)))) == [
            "inc-2",
            "inc-1",
        ]
        assert incident_ids(seeded.tickets.find_incidents(IncidentFilter(ci_ids=("ci-c",)))) == [
            "inc-3"
        ]
        assert seeded.tickets.find_incidents(IncidentFilter(ci_ids=("ci-z",))) == []
        assert incident_ids(seeded.tickets.find_incidents(IncidentFilter(opened_since=at(5)))) == [
            "inc-3",
            "inc-2",
        ]
        assert incident_ids(seeded.tickets.find_incidents(IncidentFilter(limit=2))) == [
            "inc-3",
            "inc-2",
        ]
        assert incident_ids(
            seeded.tickets.find_incidents(IncidentFilter(open=True, ci_ids=("ci-b",)))
        ) == ["inc-1"]

    def test_incident_alerts(self, seeded: Repository) -> None:
        assert fingerprints(seeded.tickets.incident_alerts(["inc-1"]).get("inc-1", [])) == {
            "a1",
            "a2",
        }
        assert seeded.tickets.incident_alerts(["inc-2"]).get("inc-2", []) == [ALERTS["a3"]]
        assert seeded.tickets.incident_alerts(["inc-9"]).get("inc-9", []) == []

    def test_unmapped_alerts_are_kept_newest_first(self, seeded: Repository) -> None:
        assert seeded.tickets.unmapped_alerts() == [ALERTS["u2"], ALERTS["u1"]]
        assert seeded.tickets.unmapped_alerts(limit=1) == [ALERTS["u2"]]

    # -- reads of the ticket store -------------------------------------------------------

    def test_find_incidents_newest_first_with_filters(self, seeded: Repository) -> None:
        def find(**kw: Any) -> list[str]:
            return incident_ids(seeded.tickets.find_incidents(IncidentFilter(**kw)))

        assert seeded.tickets.find_incidents(IncidentFilter()) == [
            INCIDENTS["inc-3"],
            INCIDENTS["inc-2"],
            INCIDENTS["inc-1"],
        ]
        assert find(status=TicketStatus.RESOLVED) == ["inc-2"]
        assert find(ci_ids=("ci-b",)) == ["inc-2", "inc-1"], "root or an alert's CI"
        assert find(ci_ids=("ci-c", "ci-a")) == ["inc-3", "inc-1"]
        assert find(ci_ids=("ci-z",)) == []
        assert find(max_priority=2) == ["inc-3", "inc-1"], "priority 1 is the highest"
        assert find(max_priority=1) == ["inc-3"]
        assert find(assignee="alice") == ["inc-2"]
        assert find(assignee="nobody") == []
        assert find(opened_since=at(10)) == ["inc-3", "inc-2"]
        assert find(limit=1) == ["inc-3"]
        assert find(open=True, ci_ids=("ci-b",)) == ["inc-1"]
        assert find(open=True, max_priority=2, assignee="bob") == ["inc-3"]

    def test_open_incidents_of_each_ci_newest_first(self, seeded: Repository) -> None:
        found = seeded.tickets.open_incidents_of(["ci-a", "ci-b", "ci-c", "ci-d", "ci-z"])
        assert {ci: incident_ids(v) for ci, v in found.items()} == {
            "ci-a": ["inc-3", "inc-1"],
            "ci-b": ["inc-1"],  # inc-2 is resolved
            "ci-c": ["inc-3"],
        }
        assert found["ci-b"] == [INCIDENTS["inc-1"]]

    def test_incidents_of_cis_open_or_not(self, seeded: Repository) -> None:
        assert set(incident_ids(seeded.tickets.incidents_of(["ci-b"]))) == {"inc-1", "inc-2"}
        assert incident_ids(seeded.tickets.incidents_of(["ci-c"])) == ["inc-3"]
        assert set(incident_ids(seeded.tickets.incidents_of(["ci-a", "ci-b"]))) == {
            "inc-1",
            "inc-2",
            "inc-3",
        }
        assert seeded.tickets.incidents_of(["ci-z"]) == []

    def test_cis_people_named_as_affected_find_their_tickets(self, seeded: Repository) -> None:
        with seeded.tickets.unit() as unit:
            (ticket,) = unit.load_incidents(["inc-1"]).values()
            unit.update_incidents([replace(ticket, affected_ci_ids=["ci-y", "ci-z"])])
        assert incident_ids(seeded.tickets.incidents_of(["ci-z"])) == ["inc-1"]
        assert incident_ids(seeded.tickets.open_incidents_of(["ci-y"])["ci-y"]) == ["inc-1"]
        assert incident_ids(seeded.tickets.find_incidents(IncidentFilter(ci_ids=("ci-y",)))) == [
            "inc-1"
        ]
        with seeded.tickets.unit() as unit:  # people took one back: it no longer finds it
            (ticket,) = unit.load_incidents(["inc-1"]).values()
            unit.save_incidents([replace(ticket, affected_ci_ids=["ci-y"])])
        assert seeded.tickets.incidents_of(["ci-z"]) == []
        assert incident_ids(seeded.tickets.incidents_of(["ci-y"])) == ["inc-1"]

    def test_incident_alerts_of_each_incident_oldest_first(self, seeded: Repository) -> None:
        found = seeded.tickets.incident_alerts(["inc-1", "inc-3", "inc-9"])
        assert {k: v for k, v in found.items() if v} == {
            "inc-1": [ALERTS["a1"], ALERTS["a2"]],
            "inc-3": [ALERTS["a4"], ALERTS["a5"]],
        }

    def test_alerts_on_cis(self, seeded: Repository) -> None:
        assert fingerprints(seeded.tickets.alerts_on(["ci-a"])) == {"a1", "a5"}
        assert fingerprints(seeded.tickets.alerts_on(["ci-b", "ci-c"])) == {"a2", "a3", "a4"}
        assert seeded.tickets.alerts_on(["ci-z"]) == []

    def test_incidents_updated_since_oldest_update_first(self, seeded: Repository) -> None:
        # updated: inc-1 at 6, inc-3 at 21, inc-2 at 30
        tickets = seeded.tickets
        assert incident_ids(tickets.incidents_updated_since(at(0), 10)) == [
            "inc-1",
            "inc-3",
            "inc-2",
        ]
        assert incident_ids(tickets.incidents_updated_since(at(21), 10)) == ["inc-3", "inc-2"]
        assert incident_ids(tickets.incidents_updated_since(at(0), 2)) == ["inc-1", "inc-3"]
        assert tickets.incidents_updated_since(at(31), 10) == []

    # -- what people write ---------------------------------------------------------------

    def test_update_incidents_writes_peoples_fields_only(self, seeded: Repository) -> None:
        original = INCIDENTS["inc-1"]
        with seeded.tickets.unit() as unit:
            loaded = unit.load_incidents(["inc-1", "inc-9"])
            assert loaded == {"inc-1": original}
            worked = replace(
                loaded["inc-1"],
                status=TicketStatus.RESOLVED,
                resolved_at=at(50),
                updated_at=at(50),
                problem_id="prb-1",
                acknowledged_at=at(45),
                acknowledged_by="alice",
                assignee="carol",
                resolved_by="carol",
                resolution="replaced the disk",
                priority=5,  # an agent's override, with its reason
                priority_reason="the customer's whole site is down",
                # correlation's fields: left as they are
                root_ci_id="ci-d",
                root_fingerprint="a2",
                root_confidence=0.1,
                alert_count=9,
            )
            unit.update_incidents([worked])
        expected = replace(
            original,
            status=TicketStatus.RESOLVED,
            resolved_at=at(50),
            updated_at=at(50),
            problem_id="prb-1",
            acknowledged_at=at(45),
            acknowledged_by="alice",
            assignee="carol",
            resolved_by="carol",
            resolution="replaced the disk",
            priority=5,
            priority_reason="the customer's whole site is down",
        )
        assert seeded.tickets.get_incidents(["inc-1"]).get("inc-1") == expected
        assert seeded.tickets.get_incidents(["inc-2", "inc-3"]) == {
            "inc-2": INCIDENTS["inc-2"],
            "inc-3": INCIDENTS["inc-3"],
        }

    def test_people_and_correlation_keep_each_others_changes(self, seeded: Repository) -> None:
        with seeded.tickets.unit() as unit:
            (incident,) = unit.load_incidents(["inc-1"]).values()
            unit.update_incidents([replace(incident, assignee="carol", updated_at=at(50))])
            unit.touched()
        with seeded.tickets.unit() as unit:
            (reloaded,) = [i for i in unit.active_incidents(at(0)) if i.id == "inc-1"]
            assert reloaded.assignee == "carol", "correlation reads what people changed"
            unit.save_incidents([replace(reloaded, priority=1, alert_count=3)])
        stored = seeded.tickets.get_incidents(["inc-1"]).get("inc-1")
        assert stored is not None
        assert (stored.assignee, stored.priority, stored.alert_count) == ("carol", 1, 3)

    def test_problems_as_people_record_them(self, seeded: Repository) -> None:
        problem = make_problem(1, root_ci_id="ci-b", signature="manual:1")
        with seeded.tickets.unit() as unit:
            unit.save_problem(problem)
            unit.link_problem("prb-1", ["inc-3"], at(40))
            unit.link_problem("prb-1", ["inc-3"], at(41))  # idempotent
            assert unit.load_problems(["prb-1", "prb-9"]) == {
                "prb-1": replace(problem, incident_ids=["inc-3"])
            }
        assert seeded.tickets.get_problems(["prb-1", "prb-9"]) == {
            "prb-1": replace(problem, incident_ids=["inc-3"])
        }
        linked = seeded.tickets.get_incidents(["inc-3"]).get("inc-3")
        assert linked is not None and linked.problem_id == "prb-1", "set where it had none"
        known = replace(
            problem,
            status=ProblemStatus.KNOWN_ERROR,
            known_error="the firmware leaks memory",
            workaround="reboot weekly",
            updated_at=at(45),
        )
        with seeded.tickets.unit() as unit:
            unit.save_problem(known)
        assert seeded.tickets.get_problems(["prb-1"]) == {
            "prb-1": replace(known, incident_ids=["inc-3"])
        }, "replaced, its links kept"

    def test_find_problems_newest_first_with_filters(self, seeded: Repository) -> None:
        with seeded.tickets.unit() as unit:
            unit.save_problem(make_problem(1, root_ci_id="ci-a"))
            unit.save_problem(make_problem(2, status=ProblemStatus.KNOWN_ERROR))
            unit.save_problem(make_problem(3, root_ci_id="ci-b"))

        def find(**kw: Any) -> list[str]:
            return [p.id for p in seeded.tickets.find_problems(ProblemFilter(**kw))]

        assert find() == ["prb-3", "prb-2", "prb-1"]
        assert find(status=ProblemStatus.KNOWN_ERROR) == ["prb-2"]
        assert find(status=ProblemStatus.RESOLVED) == []
        assert find(root_ci_ids=("ci-a", "ci-b")) == ["prb-3", "prb-1"]
        assert find(limit=2) == ["prb-3", "prb-2"]

    def test_problems_of_cis_by_root_or_by_an_incident(self, seeded: Repository) -> None:
        with seeded.tickets.unit() as unit:
            unit.save_problem(make_problem(1, root_ci_id="ci-a"))
            unit.save_problem(make_problem(2))
            unit.link_problem("prb-2", ["inc-2"], at(40))
            unit.save_problem(make_problem(3, root_ci_id="ci-z"))

        def of(*ci_ids: str) -> set[str]:
            return {p.id for p in seeded.tickets.problems_of(ci_ids)}

        assert of("ci-a") == {"prb-1"}
        assert of("ci-b") == {"prb-2"}, "inc-2 is on ci-b"
        assert of("ci-c") == set()
        assert of("ci-a", "ci-b", "ci-z") == {"prb-1", "prb-2", "prb-3"}
        (linked,) = [p for p in seeded.tickets.problems_of(["ci-b"])]
        assert linked.incident_ids == ["inc-2"]

    def test_changes_round_trip_and_replace_their_cis(self, repo: Repository) -> None:
        change = make_change(
            1,
            ["ci-b", "ci-a"],
            description="firmware 7.2 on both switches",
            risk=ChangeRisk.HIGH,
            status=ChangeStatus.SCHEDULED,
            planned_start=at(60),
            planned_end=at(120),
            created_by="carol",
        )
        with repo.tickets.unit() as unit:
            unit.save_change(change)
        assert repo.tickets.get_changes(["chg-1", "chg-9"]) == {"chg-1": change}
        replanned = replace(change, ci_ids=["ci-c"], planned_start=None, updated_at=at(5))
        with repo.tickets.unit() as unit:
            unit.save_change(replanned)
        assert repo.tickets.get_changes(["chg-1"]) == {"chg-1": replanned}
        assert repo.tickets.find_changes(ChangeFilter(ci_ids=("ci-a",))) == []
        assert repo.tickets.find_changes(ChangeFilter(ci_ids=("ci-c",))) == [replanned]

    def test_find_changes_newest_first_with_filters(self, repo: Repository) -> None:
        with repo.tickets.unit() as unit:
            unit.save_change(make_change(1, ["ci-a", "ci-b"], assignee="bob"))
            unit.save_change(
                make_change(2, ["ci-c"], status=ChangeStatus.CLOSED, close_code="successful")
            )
            unit.save_change(make_change(3, [], assignee="bob"))
            unit.save_change(make_change(4, ["ci-c"], assignee="carol"))

        def find(**kw: Any) -> list[str]:
            return [c.id for c in repo.tickets.find_changes(ChangeFilter(**kw))]

        assert find() == ["chg-4", "chg-3", "chg-2", "chg-1"]
        assert find(status=ChangeStatus.CLOSED) == ["chg-2"]
        assert find(status=ChangeStatus.IMPLEMENTING) == []
        assert find(ci_ids=("ci-b", "ci-c")) == ["chg-4", "chg-2", "chg-1"]
        assert find(assignee="bob") == ["chg-3", "chg-1"]
        assert find(assignee="nobody") == []
        assert find(assignee="carol", ci_ids=("ci-c",), status=ChangeStatus.DRAFT) == ["chg-4"]
        assert find(assignee="bob", limit=1) == ["chg-3"]
        assert find(limit=1) == ["chg-4"]

    # -- change and problem management ------------------------------------------------------

    def test_changes_round_trip_every_field(self, repo: Repository) -> None:
        with repo.tickets.unit() as unit:
            unit.save_change(FULL_CHANGE)
            assert unit.load_changes(["chg-5", "chg-9"]) == {"chg-5": FULL_CHANGE}, "its own"
        assert repo.tickets.get_changes(["chg-5"]) == {"chg-5": FULL_CHANGE}
        assert repo.tickets.find_changes(ChangeFilter(assignee="bob")) == [FULL_CHANGE]
        with repo.tickets.unit() as unit:
            assert unit.load_changes(["chg-5"]) == {"chg-5": FULL_CHANGE}
        # the lists are replaced whole, in their order; the other fields back to defaults
        (first, _) = FULL_CHANGE.approvals
        bare = replace(
            make_change(5, ["ci-a"], status=ChangeStatus.CLOSED),
            approvals=[ChangeApproval("frank", ApprovalDecision.APPROVED, at(30)), first],
            tasks=[ChangeTask(2, "swap", status=TaskStatus.DONE, done_at=at(90))],
        )
        with repo.tickets.unit() as unit:
            unit.save_change(bare)
        assert repo.tickets.get_changes(["chg-5"]) == {"chg-5": bare}
        assert bare.conflict_overrides == [] and bare.change_type is ChangeType.NORMAL

    def test_load_changes_reads_what_the_unit_wrote(self, repo: Repository) -> None:
        with repo.tickets.unit() as unit:
            unit.save_change(make_change(1, ["ci-a"]))
        with repo.tickets.unit() as unit:
            moved = replace(make_change(1, ["ci-b"]), status=ChangeStatus.ASSESSMENT)
            unit.save_change(moved)
            unit.save_change(make_change(2, []))
            assert unit.load_changes(["chg-1", "chg-2", "chg-3"]) == {
                "chg-1": moved,
                "chg-2": make_change(2, []),
            }
            assert unit.load_changes([]) == {}

    @pytest.mark.parametrize(
        ("start", "end", "expected"),
        [
            pytest.param(-100, -50, [3], id="before-all:implementing-always"),
            pytest.param(0, 60, [3], id="ends-where-chg-1-starts"),
            pytest.param(59, 61, [1, 3], id="into-chg-1"),
            pytest.param(120, 121, [2, 3], id="chg-1-ended-chg-2-starts"),
            pytest.param(180, 200, [3], id="between-chg-2-and-chg-4s-actual"),
            pytest.param(249, 250, [3, 4], id="end-of-chg-4s-actual-window"),
            pytest.param(250, 300, [3], id="after-its-actual-before-its-planned"),
            pytest.param(330, 331, [3, 4], id="chg-4s-planned-window"),
            pytest.param(420, 500, [3, 6], id="a-failed-changes-actual-window"),
            pytest.param(0, 1000, [1, 2, 3, 4, 6], id="everything-but-the-unplanned"),
        ],
    )
    def test_changes_touching_a_period(
        self, repo: Repository, start: float, end: float, expected: list[int]
    ) -> None:
        """Windows are half-open; an implementing change is returned whatever its
        window; a change that began counts by its actual window too (open while it
        has no end), in any status."""
        S = ChangeStatus
        with repo.tickets.unit() as unit:
            for change in [
                make_change(6, ["ci-f"], status=S.FAILED, actual_start=at(400),
                            actual_end=at(430)),
                make_change(1, ["ci-a"], planned_start=at(60), planned_end=at(120)),
                make_change(2, ["ci-b"], status=S.SCHEDULED, planned_start=at(120),
                            planned_end=at(180)),
                make_change(3, ["ci-c"], status=S.IMPLEMENTING, planned_start=at(0),
                            planned_end=at(10), actual_start=at(5)),
                make_change(4, ["ci-d"], status=S.CLOSED, planned_start=at(300),
                            planned_end=at(360), actual_start=at(200), actual_end=at(250),
                            close_code="successful"),
                make_change(5, ["ci-e"], planned_start=at(60)),  # no end: no window
            ]:  # fmt: skip
                unit.save_change(change)
        found = repo.tickets.changes_touching(at(start), at(end))
        assert [c.number for c in found] == expected
        assert all(c == repo.tickets.get_changes([c.id])[c.id] for c in found), "whole"
        with repo.tickets.unit() as unit:
            assert unit.changes_touching(at(start), at(end)) == found

    def test_changes_touching_sees_the_units_own_writes(self, repo: Repository) -> None:
        with repo.tickets.unit() as unit:
            unit.save_change(make_change(1, ["ci-a"], status=ChangeStatus.IMPLEMENTING))
            assert [c.id for c in unit.changes_touching(at(0), at(1))] == ["chg-1"]
            unit.save_change(make_change(1, ["ci-a"], status=ChangeStatus.REVIEW))
            assert unit.changes_touching(at(0), at(1)) == []

    def test_freeze_windows_by_period(self, repo: Repository) -> None:
        windows = [
            make_freeze("c", 300, 400, reason="year end"),
            make_freeze("b", 100, 200, reason="launch «X»", ci_ids=("ci-shop", "ci-a")),
            make_freeze("a", 150, 160),
        ]
        with repo.tickets.unit() as unit:
            for window in windows:
                unit.save_freeze_window(window)
            assert unit.freeze_windows(None, None) == [windows[1], windows[2], windows[0]]

        def between(start: float | None, end: float | None) -> list[str]:
            found = repo.tickets.freeze_windows(
                None if start is None else at(start), None if end is None else at(end)
            )
            with repo.tickets.unit() as unit:
                assert (
                    unit.freeze_windows(
                        None if start is None else at(start), None if end is None else at(end)
                    )
                    == found
                )
            return [w.id for w in found]

        assert repo.tickets.freeze_windows() == [windows[1], windows[2], windows[0]], "whole"
        assert between(None, None) == ["frz-b", "frz-a", "frz-c"], "by start"
        assert between(200, 300) == [], "half-open: b ends at 200, c starts at 300"
        assert between(199, 301) == ["frz-b", "frz-c"]
        assert between(155, 156) == ["frz-b", "frz-a"]
        assert between(None, 150) == ["frz-b"]
        assert between(160, None) == ["frz-b", "frz-c"]
        assert between(400, None) == []

    def test_freeze_windows_are_replaced_and_deleted(self, repo: Repository) -> None:
        with repo.tickets.unit() as unit:
            unit.save_freeze_window(make_freeze("a", 0, 10))
            unit.save_freeze_window(make_freeze("b", 5, 15))
        moved = make_freeze("a", 20, 30, name="moved", reason="r", ci_ids=("ci-z",))
        with repo.tickets.unit() as unit:
            unit.save_freeze_window(moved)
        assert repo.tickets.freeze_windows() == [make_freeze("b", 5, 15), moved]
        with pytest.raises(RuntimeError, match="late"), repo.tickets.unit() as unit:
            assert unit.delete_freeze_window("frz-b") is True
            assert unit.freeze_windows(None, None) == [moved], "within the unit: gone"
            raise RuntimeError("late failure")
        assert [w.id for w in repo.tickets.freeze_windows()] == ["frz-b", "frz-a"]
        with repo.tickets.unit() as unit:
            assert unit.delete_freeze_window("frz-b") is True
            assert unit.delete_freeze_window("frz-b") is False
            assert unit.delete_freeze_window("frz-nope") is False
        assert repo.tickets.freeze_windows() == [moved]

    def test_problems_round_trip_every_field(self, seeded: Repository) -> None:
        with seeded.tickets.unit() as unit:
            unit.save_problem(FULL_PROBLEM)
            unit.link_problem("prb-6", ["inc-1"], at(40))
        expected = replace(FULL_PROBLEM, incident_ids=["inc-1"])
        assert seeded.tickets.get_problems(["prb-6"]) == {"prb-6": expected}
        with seeded.tickets.unit() as unit:
            assert unit.load_problems(["prb-6"]) == {"prb-6": expected}
        closed = replace(FULL_PROBLEM, status=ProblemStatus.CLOSED, fixing_change_id=None)
        with seeded.tickets.unit() as unit:
            unit.save_problem(closed)
        assert seeded.tickets.get_problems(["prb-6"]) == {
            "prb-6": replace(closed, incident_ids=["inc-1"])
        }
        assert seeded.tickets.find_problems(ProblemFilter(status=ProblemStatus.CLOSED)) == [
            replace(closed, incident_ids=["inc-1"])
        ]

    def test_problems_fixed_by_changes(self, repo: Repository) -> None:
        with repo.tickets.unit() as unit:
            unit.save_problem(make_problem(3, fixing_change_id="chg-1"))
            unit.save_problem(make_problem(1, fixing_change_id="chg-2"))
            unit.save_problem(make_problem(2, fixing_change_id="chg-1"))
            unit.save_problem(make_problem(4))

        def fixed_by(*change_ids: str) -> list[str]:
            return [p.id for p in repo.tickets.problems_fixed_by(change_ids)]

        assert fixed_by("chg-1") == ["prb-2", "prb-3"], "by number"
        assert fixed_by("chg-1", "chg-2", "chg-9") == ["prb-1", "prb-2", "prb-3"]
        assert fixed_by("chg-9") == [] and fixed_by() == []
        (problem,) = repo.tickets.problems_fixed_by(["chg-2"])
        assert problem == make_problem(1, fixing_change_id="chg-2")

    def test_known_errors_by_root_ci_or_signature_whatever_the_status(
        self, seeded: Repository
    ) -> None:
        # the known-error database keeps what was learnt: a resolved or closed problem's
        # known error is still returned (the service says it was fixed); a problem with no
        # known error recorded is not, whatever its status
        P = ProblemStatus
        with seeded.tickets.unit() as unit:
            for problem in [
                make_problem(1, status=P.KNOWN_ERROR, root_ci_id="ci-a", signature="ci:ci-a",
                             known_error="leak", workaround="reboot"),
                make_problem(2, status=P.KNOWN_ERROR, signature="alert:zabbix/DiskFull",
                             known_error="disk"),
                make_problem(3, status=P.OPEN, root_ci_id="ci-a", signature="alert:x/Odd"),
                make_problem(4, status=P.INVESTIGATING, root_ci_id="ci-a"),
                make_problem(5, status=P.RESOLVED, root_ci_id="ci-b", signature="ci:ci-b",
                             known_error="old firmware"),
                make_problem(6, status=P.CLOSED, signature="alert:zabbix/NodeDown"),
                make_problem(7, status=P.KNOWN_ERROR, root_ci_id="ci-c", known_error="fan"),
            ]:  # fmt: skip
                unit.save_problem(problem)
            unit.link_problem("prb-1", ["inc-1"], at(40))

        def known(ci_ids: Iterable[str], signatures: Iterable[str]) -> list[str]:
            return [p.id for p in seeded.tickets.known_errors_for(ci_ids, signatures)]

        assert known(["ci-a"], []) == ["prb-1"]
        assert known([], ["alert:zabbix/DiskFull"]) == ["prb-2"]
        assert known(["ci-a"], ["ci:ci-a"]) == ["prb-1"], "once, matching both ways"
        assert known(["ci-c", "ci-a"], ["alert:zabbix/DiskFull"]) == ["prb-1", "prb-2", "prb-7"]
        assert known(["ci-b"], []) == ["prb-5"], "resolved, its known error kept"
        assert known([], ["alert:zabbix/NodeDown", "alert:x/Odd"]) == [], "none recorded"
        assert known([], []) == []
        (first,) = seeded.tickets.known_errors_for(["ci-a"], [])
        assert (first.known_error, first.workaround, first.incident_ids) == (
            "leak", "reboot", ["inc-1"],
        )  # fmt: skip

    def test_worklog_in_order_per_ticket(self, repo: Repository) -> None:
        entries = [
            WorklogEntry("inc-1", at(1), "correlation", WorklogKind.CREATED, "opened"),
            WorklogEntry("inc-1", at(2), "alice", WorklogKind.ACKNOWLEDGED),
            WorklogEntry("prb-1", at(2), "bob", WorklogKind.LINKED, "inc-1"),
            WorklogEntry("inc-1", at(2), "alice", WorklogKind.COMMENT, "same time, later"),
        ]
        with repo.tickets.unit() as unit:
            unit.append_worklog(entries[:2])
        with repo.tickets.unit() as unit:
            unit.append_worklog(entries[2:])
        found = repo.tickets.worklog(["inc-1", "prb-1", "chg-1"])
        assert set(found) == {"inc-1", "prb-1"}, "tickets without entries are absent"
        assert without_seq(found["inc-1"]) == [entries[0], entries[1], entries[3]]
        assert without_seq(found["prb-1"]) == [entries[2]]
        seqs = [e.seq for e in found["inc-1"]]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3, "the store orders equal times"

    def test_a_failed_ticket_unit_writes_nothing(self, seeded: Repository) -> None:
        with pytest.raises(RuntimeError, match="late"), seeded.tickets.unit() as unit:
            (incident,) = unit.load_incidents(["inc-1"]).values()
            unit.update_incidents([replace(incident, assignee="carol")])
            unit.save_problem(make_problem(1))
            unit.link_problem("prb-1", ["inc-1"], at(1))
            unit.save_change(make_change(1, ["ci-a"]))
            unit.save_freeze_window(make_freeze("a", 0, 10))
            unit.append_worklog([WorklogEntry("inc-1", at(1), "carol", WorklogKind.ASSIGNED)])
            unit.touched()
            raise RuntimeError("late failure")
        assert seeded.tickets.get_incidents(["inc-1"]).get("inc-1") == INCIDENTS["inc-1"]
        assert seeded.tickets.get_problems(["prb-1"]) == {}
        assert seeded.tickets.get_changes(["chg-1"]) == {}
        assert seeded.tickets.freeze_windows() == []
        assert seeded.tickets.worklog(["inc-1"]) == {}

    def test_ticket_units_are_serialised_with_correlation_units(
        self, seeded: Repository, other_repo: Repository
    ) -> None:
        """A unit of ticket work waits for a correlation unit to commit before it reads,
        so that neither overwrites the other's changes."""
        order: list[str] = []
        correlation_in = threading.Event()
        errors: list[BaseException] = []

        def person() -> None:
            try:
                correlation_in.wait(5)
                with other_repo.tickets.unit() as unit:
                    order.append("ticket unit in")
                    (incident,) = unit.load_incidents(["inc-1"]).values()
                    order.append(f"ticket unit sees priority {incident.priority}")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=person)
        thread.start()
        with seeded.tickets.unit() as unit:
            correlation_in.set()
            time.sleep(0.3)  # the ticket unit is waiting now
            unit.save_incidents([replace(INCIDENTS["inc-1"], priority=1)])
            order.append("correlation commits")
        thread.join(10)
        assert not errors
        assert order == ["correlation commits", "ticket unit in", "ticket unit sees priority 1"]

    def test_every_process_sees_the_same_records(
        self, seeded: Repository, other_repo: Repository
    ) -> None:
        assert other_repo.tickets.find_incidents(IncidentFilter()) == seeded.tickets.find_incidents(
            IncidentFilter()
        )
        with other_repo.tickets.unit() as unit:
            unit.append_worklog([WorklogEntry("inc-2", at(40), "bob", WorklogKind.COMMENT)])
        assert without_seq(seeded.tickets.worklog(["inc-2"])["inc-2"]) == [
            WorklogEntry("inc-2", at(40), "bob", WorklogKind.COMMENT)
        ]

    # -- the desk: listings, cursors, links, alert cycles, counts ------------------------

    @pytest.fixture
    def desk(self, repo: Repository) -> Repository:
        desk(repo)
        return repo

    @pytest.mark.parametrize(
        ("fields", "expected"),
        [pytest.param(f, e, id=case_id(f)) for f, e in DESK_FILTERS],
    )
    def test_find_incidents_by_every_desk_field(
        self, desk: Repository, fields: dict[str, Any], expected: list[int]
    ) -> None:
        found = desk.tickets.find_incidents(IncidentFilter(**fields))
        assert numbers(found) == expected
        assert found == [DESK[f"inc-{n}"] for n in expected], "whole tickets, as saved"

    @pytest.mark.parametrize(
        ("fields", "expected"),
        [pytest.param(f, e, id=case_id(f)) for f, e in DESK_QUEUES],
    )
    def test_find_incidents_in_queue_order(
        self, desk: Repository, fields: dict[str, Any], expected: list[int]
    ) -> None:
        query = IncidentFilter(order=TicketOrder.QUEUE, **fields)
        assert numbers(desk.tickets.find_incidents(query)) == expected

    @pytest.mark.parametrize(
        ("order", "after"),
        [
            (TicketOrder.NEWEST, (15, 1)),
            (TicketOrder.NEWEST, ()),
            (TicketOrder.QUEUE, (3,)),
            (TicketOrder.QUEUE, (3, micros(at(120)))),
            (TicketOrder.QUEUE, (3, micros(at(120)), 13, 0)),
        ],
    )
    def test_a_cursor_of_another_size_is_refused(
        self, desk: Repository, order: TicketOrder, after: tuple[int, ...]
    ) -> None:
        """A cursor of the other order (or a damaged one) would page from a wrong place:
        refused, naming how many parts the order's cursor has."""
        with pytest.raises(ValueError, match="cursor"):
            desk.tickets.find_incidents(IncidentFilter(order=order, after=after))

    def test_paging_by_cursor_returns_each_ticket_once_in_order(self, repo: Repository) -> None:
        """10,000 tickets with ties in priority and age, paged by the key of each page's
        last ticket, in each order, of a group's queue and of every ticket: every ticket
        of the listing once, in the listing's order. (One test for the four listings: the
        tickets are saved once, which on Neo4j is most of the time.)"""
        tickets = many_tickets(10_000)
        with repo.tickets.unit() as unit:
            unit.save_incidents(tickets)
        for order, group in [
            (TicketOrder.QUEUE, "grp-a"),
            (TicketOrder.QUEUE, None),
            (TicketOrder.NEWEST, "grp-a"),
            (TicketOrder.NEWEST, None),
        ]:
            case = f"{order.name} of {group or 'every group'}"
            wanted = [
                t
                for t in tickets
                if group is None or (t.assignment_group, t.status.active) == (group, True)
            ]
            if order is TicketOrder.QUEUE:
                wanted.sort(key=queue_key)
            else:
                wanted.sort(key=lambda t: -t.number)
            query = IncidentFilter(
                assignment_group=group, open=True if group else None, order=order, limit=101
            )
            seen: list[str] = []
            pages = 0
            while True:
                page = repo.tickets.find_incidents(query)
                if not page:
                    break
                pages += 1
                assert len(page) <= 101, case
                seen.extend(incident_ids(page))
                last = page[-1]
                after = queue_key(last) if order is TicketOrder.QUEUE else (last.number,)
                query = replace(query, after=after)
            assert len(seen) == len(set(seen)), f"{case}: no ticket twice"
            assert seen == incident_ids(wanted), f"{case}: every ticket, in order"
            assert pages == -(-len(wanted) // 101), case
            assert len(wanted) > 2_000, case

    def test_links_are_saved_once_and_found_from_both_ends(self, desk: Repository) -> None:
        parent = TicketLink("inc-11", "inc-13", LinkKind.PARENT_OF, at(1), "alice")
        duplicate = TicketLink("inc-16", "inc-13", LinkKind.DUPLICATE_OF, at(2), "bob")
        change = TicketLink("inc-13", "chg-4", LinkKind.CAUSED_BY_CHANGE, at(3), "bob")
        related = TicketLink("inc-11", "inc-13", LinkKind.RELATED, at(4), "carol")
        with desk.tickets.unit() as unit:
            unit.save_links([parent, duplicate])
            unit.save_links([change, related, replace(parent, created_at=at(9), created_by="x")])
        with desk.tickets.unit() as unit:
            unit.save_links([parent])  # idempotent, in another unit too

        def links(*ids: str) -> dict[str, set[TicketLink]]:
            return {k: set(v) for k, v in desk.tickets.links_of(ids).items()}

        found = desk.tickets.links_of(["inc-13"])
        assert len(found["inc-13"]) == 4, "each link once"
        assert set(found["inc-13"]) == {parent, duplicate, change, related}, "the first save kept"
        assert links("inc-11") == {"inc-11": {parent, related}}, "from the source"
        assert links("chg-4") == {"chg-4": {change}}, "from the target"
        assert links("inc-11", "inc-16", "inc-12") == {
            "inc-11": {parent, related},
            "inc-16": {duplicate},
        }, "tickets without links are absent"
        assert links("inc-11", "inc-13")["inc-13"] == {parent, duplicate, change, related}
        with desk.tickets.unit() as unit:
            unit.delete_links(
                [parent, TicketLink("inc-11", "inc-12", LinkKind.RELATED, at(5), "a")]
            )
        assert links("inc-11", "inc-13") == {
            "inc-11": {related},
            "inc-13": {duplicate, change, related},
        }, "only that link, only that kind; an absent link is no error"
        with desk.tickets.unit() as unit:
            unit.delete_links([duplicate, change, related])
        assert desk.tickets.links_of(["inc-11", "inc-13", "inc-16", "chg-4"]) == {}

    def test_alert_cycles_are_recorded_and_cleared_in_place(self, seeded: Repository) -> None:
        first = AlertCycle("a1", at(0), None, "inc-1")
        second = AlertCycle("a1", at(10), None, "inc-1")
        other = AlertCycle("a2", at(1), at(2), "inc-1")
        with seeded.tickets.unit() as unit:
            unit.record_cycles([second, other])
            unit.record_cycles([first])  # an older cycle recorded later
        assert seeded.tickets.alert_cycles(["a1", "a2", "a9"]) == {
            "a1": [first, second],
            "a2": [other],
        }, "oldest first; alerts without cycles absent"
        cleared = replace(first, cleared_at=at(5))
        with seeded.tickets.unit() as unit:
            unit.record_cycles([cleared])
            unit.record_cycles([replace(second, cleared_at=at(12), incident_id="inc-3")])
        assert seeded.tickets.alert_cycles(["a1"]) == {
            "a1": [cleared, AlertCycle("a1", at(10), at(12), "inc-3")]
        }, "a clear updates the cycle it ends: still two"
        with seeded.tickets.unit() as unit:
            unit.record_cycles([AlertCycle("a1", at(20)), AlertCycle("a1", at(30))])
        cycles = seeded.tickets.alert_cycles(["a1"])["a1"]
        assert [c.fired_at for c in cycles] == [at(0), at(10), at(20), at(30)]
        assert cycles[2:] == [AlertCycle("a1", at(20)), AlertCycle("a1", at(30))]

    def test_open_counts_count_active_tickets_per_agent(self, desk: Repository) -> None:
        assert desk.tickets.open_counts(["alice", "bob", "carol", "nobody"]) == {
            "alice": 1,  # 14 is resolved
            "bob": 2,  # pending and in progress
        }, "agents holding no active ticket are absent"
        assert desk.tickets.open_counts([]) == {}
        with desk.tickets.unit() as unit:
            unit.update_incidents([replace(DESK["inc-12"], assignee="carol", status=_S.ASSIGNED)])
            unit.update_incidents([replace(DESK["inc-11"], status=_S.RESOLVED)])
        assert desk.tickets.open_counts(["alice", "carol"]) == {"carol": 1}

    def test_update_incidents_writes_every_desk_field(self, desk: Repository) -> None:
        original = DESK["inc-11"]
        people = {
            "title": "VPN drops — every hour",
            "status": _S.CLOSED,
            "updated_at": at(400),
            "priority": 1,
            "impact": "high",
            "urgency": "high",
            "resolved_at": at(350),
            "reopen_count": 2,
            "problem_id": "prb-4",
            "acknowledged_at": at(101),
            "acknowledged_by": "alice",
            "assignee": "bob",
            "resolved_by": "bob",
            "resolution": "replaced the concentrator",
            "type": TicketType.SERVICE_REQUEST,
            "channel": Channel.EMAIL,
            "description": "since Monday, „every“ hour\nsee the log",
            "requester": "c-ben",
            "organisation": "org-beta",
            "service": "svc-laptop",
            "category": "hardware/laptop",
            "affected_ci_ids": ["ci-v1", "ci-v2"],
            "priority_reason": "the whole site",
            "priority_set_by": "bob",
            "priority_floor": 3,  # from 2
            "priority_ceiling": 1,  # from none
            "assignment_group": "grp-desk",
            "pending_reason": "awaiting_vendor",
            "resolution_code": "fixed",
            "close_code": "solved",
            "closed_at": at(400),
            "tags": ["vip", "vpn", "ü"],
            "custom_fields": {"model": "X1 “Carbon”", "ram_gb": 32, "dock": True, "w": 1.5},
            "routed_by": "rule:vpn",
            "first_response_at": at(102),
            "reassignment_count": 2,
        }
        correlations = {
            "number": 99,
            "opened_at": at(1),
            "last_alert_at": at(399),
            "root_ci_id": "ci-z",
            "root_inferred": True,
            "root_confidence": 0.5,
            "root_fingerprint": "a1",
            "business_services": ["svc-x"],
            "flapping": True,
            "clear_since": at(398),
            "alert_count": 7,
            "created_by": "mallory",
            "external_ref": "INC0000045",
            "sla_tier": "gold",
            "service_hours": "business",
        }
        derived = {"sla_due_at"}  # the SLA clocks' due time: the store's, never written
        assert set(people) | set(correlations) | derived | {"id"} == {
            f.name for f in dataclasses.fields(Incident)
        }, "every field is either written or kept"
        with desk.tickets.unit() as unit:
            unit.update_incidents([replace(original, **people, **correlations)])
            unit.update_incidents([replace(original, id="inc-99", number=99)])  # absent: nothing
        assert desk.tickets.get_incidents(["inc-11", "inc-99"]) == {
            "inc-11": replace(original, **people)
        }
        assert desk.tickets.find_incidents(IncidentFilter()) == [
            *[DESK[f"inc-{n}"] for n in (17, 16, 15, 14, 13, 12)],
            replace(original, **people),
        ], "the others as they were"

    def test_worklog_field_changes_round_trip(self, desk: Repository) -> None:
        log = WorklogKind
        entries = [
            WorklogEntry(
                "inc-12",
                at(1),
                "alice",
                log.TRANSITION,
                "assign",
                field="status",
                old="new",
                new="assigned",
            ),
            WorklogEntry("inc-12", at(1), "alice", log.CHANGED, field="assignee", new="alice"),
            WorklogEntry(
                "inc-12", at(2), "bob", log.CHANGED, field="tags", old='["vip"]', new='["vip","ü"]'
            ),
            WorklogEntry(
                "inc-12",
                at(3),
                "rule:laptops",
                log.ROUTED,
                "category hardware/laptop",
                field="assignment_group",
                new="grp-desk",
            ),
            WorklogEntry(
                "inc-12",
                at(4),
                "c-ben",
                log.REOPENED,
                "still broken",
                field="status",
                old="resolved",
                new="in_progress",
            ),
            WorklogEntry("inc-12", at(5), "bob", log.CHANGED, field="resolution", old="x"),
            WorklogEntry("inc-12", at(5), "bob", log.COMMENT, "a comment changes no field"),
        ]
        with desk.tickets.unit() as unit:
            unit.append_worklog(entries[:3])
        with desk.tickets.unit() as unit:
            unit.append_worklog(entries[3:])
        found = desk.tickets.worklog(["inc-12"])["inc-12"]
        assert without_seq(found) == entries, "field, old and new as written, None kept"

    # -- times ---------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "write",
        [
            pytest.param(
                lambda u: u.save_alerts([make_alert("a9", "ci-a", None, 0, last_change=NAIVE)]),
                id="save_alerts",
            ),
            pytest.param(
                lambda u: u.save_incidents([make_incident(9, 0, updated_at=NAIVE)]),
                id="save_incidents",
            ),
            pytest.param(
                lambda u: u.save_problem(make_problem(9, created_at=NAIVE)), id="save_problem"
            ),
            pytest.param(lambda u: u.link_problem("prb-9", ["inc-1"], NAIVE), id="link_problem"),
            pytest.param(
                lambda u: u.save_incidents(
                    [make_incident(9, 0), make_incident(10, 0, closed_at=NAIVE)]
                ),
                id="save_incidents-closed_at",
            ),
            pytest.param(
                lambda u: u.record_cycles([AlertCycle("a1", at(0)), AlertCycle("a2", NAIVE)]),
                id="record_cycles-fired_at",
            ),
            pytest.param(
                lambda u: u.record_cycles(
                    [AlertCycle("a1", at(0)), AlertCycle("a2", at(1), NAIVE)]
                ),
                id="record_cycles-cleared_at",
            ),
        ],
    )
    def test_naive_times_are_refused_by_correlation_writes(
        self, seeded: Repository, write: Callable[[Any], object]
    ) -> None:
        """A naive time would be read back in another zone than it was meant in: refused
        with ``ValueError`` (the rule of every adapter's time encoding), and the unit
        writes nothing."""
        with seeded.tickets.unit() as unit:
            unit.save_problem(make_problem(9))
        before = snapshot(seeded)
        with pytest.raises(ValueError, match="naive"), seeded.tickets.unit() as unit:
            unit.save_alerts([replace(ALERTS["u1"], count=99)])
            write(unit)
        assert snapshot(seeded) == before

    @pytest.mark.parametrize(
        "write",
        [
            pytest.param(
                lambda u: u.update_incidents([replace(INCIDENTS["inc-1"], updated_at=NAIVE)]),
                id="update_incidents",
            ),
            pytest.param(
                lambda u: u.save_problem(make_problem(9, updated_at=NAIVE)), id="save_problem"
            ),
            pytest.param(lambda u: u.link_problem("prb-9", ["inc-1"], NAIVE), id="link_problem"),
            pytest.param(
                lambda u: u.save_change(make_change(9, ["ci-a"], planned_end=NAIVE)),
                id="save_change",
            ),
            pytest.param(
                lambda u: u.save_change(replace(FULL_CHANGE, id="chg-9", actual_end=NAIVE)),
                id="save_change-actual_end",
            ),
            pytest.param(
                lambda u: u.save_change(
                    replace(
                        FULL_CHANGE,
                        id="chg-9",
                        approvals=[ChangeApproval("dave", ApprovalDecision.APPROVED, NAIVE)],
                    )
                ),
                id="save_change-approval",
            ),
            pytest.param(
                lambda u: u.save_change(
                    replace(FULL_CHANGE, id="chg-9", tasks=[ChangeTask(1, "t", done_at=NAIVE)])
                ),
                id="save_change-task",
            ),
            pytest.param(
                lambda u: u.save_change(
                    replace(
                        FULL_CHANGE,
                        id="chg-9",
                        conflict_overrides=[ConflictOverride("chg-1", "r", "dave", NAIVE)],
                    )
                ),
                id="save_change-override",
            ),
            pytest.param(
                lambda u: u.save_freeze_window(replace(make_freeze("9", 0, 10), ends_at=NAIVE)),
                id="save_freeze_window",
            ),
            pytest.param(
                lambda u: u.save_problem(make_problem(9, resolved_at=NAIVE)),
                id="save_problem-resolved_at",
            ),
            pytest.param(
                lambda u: u.append_worklog(
                    [WorklogEntry("inc-1", NAIVE, "x", WorklogKind.COMMENT)]
                ),
                id="append_worklog",
            ),
            pytest.param(
                lambda u: u.append_worklog(
                    [
                        WorklogEntry("inc-1", at(1), "x", WorklogKind.CHANGED, field="title"),
                        WorklogEntry("inc-1", NAIVE, "x", WorklogKind.CHANGED, field="title"),
                    ]
                ),
                id="append_worklog-field",
            ),
            pytest.param(
                lambda u: u.update_incidents(
                    [replace(INCIDENTS["inc-1"], closed_at=NAIVE, close_code="solved")]
                ),
                id="update_incidents-closed_at",
            ),
            pytest.param(
                lambda u: u.update_incidents([replace(INCIDENTS["inc-3"], resolved_at=NAIVE)]),
                id="update_incidents-resolved_at",
            ),
            pytest.param(
                lambda u: u.update_incidents([replace(INCIDENTS["inc-3"], acknowledged_at=NAIVE)]),
                id="update_incidents-acknowledged_at",
            ),
            pytest.param(
                lambda u: u.save_links(
                    [
                        TicketLink("inc-1", "inc-2", LinkKind.RELATED, at(1), "x"),
                        TicketLink("inc-1", "inc-3", LinkKind.RELATED, NAIVE, "x"),
                    ]
                ),
                id="save_links",
            ),
            pytest.param(
                lambda u: u.record_cycles([AlertCycle("a1", at(0), NAIVE, "inc-1")]),
                id="record_cycles",
            ),
        ],
    )
    def test_naive_times_are_refused_by_ticket_writes(
        self, seeded: Repository, write: Callable[[Any], object]
    ) -> None:
        with seeded.tickets.unit() as unit:
            unit.save_problem(make_problem(9))
        before = snapshot(seeded)
        with pytest.raises(ValueError, match="naive"), seeded.tickets.unit() as unit:
            unit.update_incidents([replace(INCIDENTS["inc-2"], assignee="carol")])
            write(unit)
        assert snapshot(seeded) == before

    @pytest.mark.parametrize(
        "read",
        [
            pytest.param(
                lambda r: r.tickets.find_incidents(IncidentFilter(opened_since=NAIVE)),
                id="list_incidents",
            ),
            pytest.param(
                lambda r: r.tickets.find_incidents(IncidentFilter(opened_since=NAIVE)),
                id="find_incidents",
            ),
            pytest.param(
                lambda r: r.tickets.find_incidents(IncidentFilter(resolved_before=NAIVE)),
                id="find_incidents-resolved_before",
            ),
            pytest.param(
                lambda r: r.tickets.incidents_updated_since(NAIVE, 10),
                id="incidents_updated_since",
            ),
            pytest.param(lambda r: in_unit(r, lambda u: u.active_incidents(NAIVE)), id="active"),
            pytest.param(
                lambda r: in_unit(r, lambda u: u.incidents_with_root(["ci-a"], NAIVE)),
                id="incidents_with_root",
            ),
            pytest.param(
                lambda r: in_unit(r, lambda u: u.incidents_named("test/NodeDown", NAIVE)),
                id="incidents_named",
            ),
            pytest.param(
                lambda r: in_unit(r, lambda u: u.count_roots_named("test/NodeDown", NAIVE)),
                id="count_roots_named",
            ),
            pytest.param(lambda r: r.tickets.changes_touching(NAIVE, at(1)), id="touching"),
            pytest.param(
                lambda r: in_unit(r, lambda u: u.changes_touching(at(0), NAIVE)),
                id="unit-touching",
            ),
            pytest.param(lambda r: r.tickets.freeze_windows(NAIVE, None), id="freeze_windows"),
            pytest.param(
                lambda r: in_unit(r, lambda u: u.freeze_windows(None, NAIVE)),
                id="unit-freeze_windows",
            ),
        ],
    )
    def test_naive_times_are_refused_by_reads(
        self, seeded: Repository, read: Callable[[Repository], object]
    ) -> None:
        with pytest.raises(ValueError, match="naive"):
            read(seeded)

    # -- failures ------------------------------------------------------------------------

    def test_ping_passes_while_incidents_can_be_read(
        self, seeded: Repository, other_repo: Repository
    ) -> None:
        seeded.tickets.ping()
        other_repo.tickets.ping()

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda r: r.tickets.ping(), id="ping"),
            pytest.param(
                lambda r: r.tickets.get_incidents(["inc-1"]).get("inc-1"), id="get_incident"
            ),
            pytest.param(lambda r: r.tickets.find_incidents(IncidentFilter()), id="list_incidents"),
            pytest.param(
                lambda r: r.tickets.incident_alerts(["inc-1"]).get("inc-1", []),
                id="incident_alerts",
            ),
            pytest.param(lambda r: r.tickets.unmapped_alerts(), id="unmapped_alerts"),
            pytest.param(lambda r: r.tickets.find_problems(ProblemFilter()), id="list_problems"),
            pytest.param(lambda r: r.tickets.counts(), id="counts"),
            pytest.param(lambda r: in_unit(r, lambda u: u.active_incidents(at(0))), id="unit"),
            pytest.param(lambda r: r.tickets.get_incidents(["inc-1"]), id="get_incidents"),
            pytest.param(lambda r: r.tickets.find_incidents(IncidentFilter()), id="find"),
            pytest.param(lambda r: r.tickets.open_incidents_of(["ci-a"]), id="open_of"),
            pytest.param(lambda r: r.tickets.incidents_of(["ci-a"]), id="incidents_of"),
            pytest.param(lambda r: r.tickets.incident_alerts(["inc-1"]), id="alerts_of"),
            pytest.param(lambda r: r.tickets.alerts_on(["ci-a"]), id="alerts_on"),
            pytest.param(lambda r: r.tickets.get_problems(["prb-1"]), id="get_problems"),
            pytest.param(lambda r: r.tickets.find_problems(ProblemFilter()), id="find_problems"),
            pytest.param(lambda r: r.tickets.problems_of(["ci-a"]), id="problems_of"),
            pytest.param(lambda r: r.tickets.get_changes(["chg-1"]), id="get_changes"),
            pytest.param(lambda r: r.tickets.find_changes(ChangeFilter()), id="find_changes"),
            pytest.param(lambda r: r.tickets.changes_touching(at(0), at(1)), id="touching"),
            pytest.param(lambda r: r.tickets.freeze_windows(), id="freeze_windows"),
            pytest.param(lambda r: r.tickets.problems_fixed_by(["chg-1"]), id="fixed_by"),
            pytest.param(lambda r: r.tickets.known_errors_for(["ci-a"], []), id="known_errors"),
            pytest.param(lambda r: r.tickets.worklog(["inc-1"]), id="worklog"),
            pytest.param(lambda r: r.tickets.incidents_updated_since(at(0), 9), id="updated"),
            pytest.param(lambda r: r.tickets.last_incident_number(), id="last_number"),
            pytest.param(
                lambda r: in_ticket_unit(r, lambda u: u.load_incidents(["inc-1"])),
                id="ticket_unit",
            ),
        ],
    )
    def test_backend_failures_raise_store_errors_chained(
        self, failing_repo: Repository, call: Callable[[Repository], object]
    ) -> None:
        with pytest.raises((StoreUnavailable, StoreError)) as info:
            call(failing_repo)
        assert info.value.__cause__ is not None  # chained to the driver's or OS's error


def in_unit(repo: Repository, work: Callable[[Any], object]) -> object:
    with repo.tickets.unit() as unit:
        return work(unit)


def in_ticket_unit(repo: Repository, work: Callable[[Any], object]) -> object:
    with repo.tickets.unit() as unit:
        return work(unit)


def snapshot(repo: Repository) -> tuple[object, ...]:
    """Everything ``seed`` and the tests write, read through the ports (links and alert
    cycles included)."""
    everything = ["inc-1", "inc-2", "inc-3", "inc-9", "prb-9", "chg-9"]
    with repo.tickets.unit() as unit:
        alerts = unit.load_alerts([*ALERTS, "a9"])
        problem = unit.find_problem("signature-9")
        version = unit.state_version()
    return (
        repo.tickets.find_incidents(IncidentFilter()),
        alerts,
        problem,
        version,
        repo.tickets.get_problems(["prb-9"]),
        repo.tickets.get_changes(["chg-9"]),
        repo.tickets.freeze_windows(),
        repo.tickets.worklog(everything),
        repo.tickets.links_of(everything),
        repo.tickets.alert_cycles([*ALERTS, "a9"]),
    )
