"""A desk worth exporting: the example site (tests/ticketing/desk_world.py) with people
and a catalogue saved at two different times, tickets raised and worked by agents through
the ticket service (routing, an override, custom fields, pending, resolve, cancel,
reopen, comments, links, field changes), a monitoring incident through the real
correlator with four fire/clear cycles of its alert, an unmapped alert, a problem with
two incidents, a change, and what change and problem management add to them (the CAB's
approvals, tasks, an accepted conflict, actual times, the problem's analysis and fixing
change, a freeze window)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from servicegraph.cmdb.context import change_context
from servicegraph.events.model import Event, EventStatus, Severity, digest
from servicegraph.ticketing.change_model import (
    ApprovalDecision,
    ChangeApproval,
    ChangeStatus,
    ChangeTask,
    ConflictOverride,
    FreezeWindow,
    TaskStatus,
)
from servicegraph.ticketing.changes import NewChange
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Channel, LinkKind, ProblemStatus, TicketType
from servicegraph.ticketing.people import Agent, Contact
from servicegraph.ticketing.ports import IncidentFilter, PeopleBatch
from servicegraph.ticketing.problems import NewProblem
from servicegraph.ticketing.tickets_changes import TicketChanges
from tests.ticketing.desk_world import Desk

_sent = 0


def event(desk: Desk, name: str, key: str | None, status: str = "firing") -> Event:
    global _sent
    _sent += 1
    labels = {"ci_id": desk.ids[key]} if key else {"host": "nowhere.example"}
    return Event(
        source="test",
        name=name,
        status=EventStatus(status),
        severity=Severity.CRITICAL,
        occurred_at=desk.clock.now,
        fingerprint=digest("test", name, key),
        event_id=digest("test", _sent, name, key, status, desk.clock.now),
        labels=labels,
        summary=f"{name} on {key}",
    )


def send(desk: Desk, *events: Event) -> None:
    desk.services.correlator.ingest(list(events))
    desk.services.correlator.drain()


def seed(desk: Desk) -> dict[str, str]:
    """Write the desk; returns the ids of its tickets by role."""
    clock, t, s = desk.clock, desk.tickets, desk.services
    s.desk.problems.clock = s.desk.changes.clock = clock
    # people saved again later: the records' times differ (a restore keeps each one's)
    clock.advance(hours=1)
    s.directory.store.save_people(
        PeopleBatch(
            agents=(Agent("gina", "Gina Müller", "gina@desk.example", groups=("dbas",)),),
            contacts=(Contact("c-vip", "Very Important", email="boss@acme.com", vip=True),),
        ),
        clock.now,
    )
    ids: dict[str, str] = {}
    # monitoring: four fire/clear cycles on db-1, the last left firing; an unmapped alert
    for n in range(4):
        clock.advance(minutes=1)
        send(desk, event(desk, "NodeDown", "db-1"))
        if n < 3:
            clock.advance(seconds=20)
            send(desk, event(desk, "NodeDown", "db-1", "resolved"))
    send(desk, event(desk, "Odd", None))
    (monitoring,) = s.tickets.find_incidents(IncidentFilter(ci_ids=(desk.ids["db-1"],)))
    ids["monitoring"] = monitoring.id

    with change_context("alice"):
        clock.advance(minutes=3)
        vpn = desk.create(
            requester="c-jane",
            category="network/vpn",
            title="VPN drops every hour",
            description="since Monday, «staff» profile",
            channel=Channel.PHONE,
            tags=("remote",),
            affected_ci_ids=(desk.ids["core-1"],),
            custom_fields={"vpn_profile": "contractor"},
        )
        clock.advance(minutes=2)
        laptop = desk.create(
            type=TicketType.SERVICE_REQUEST,
            title="New laptop",
            category="hardware/laptop",
            requester="c-joe",
            channel=Channel.PORTAL,
            assignment_group="service-desk",
            custom_fields={"laptop_model": "x1"},
        )
        clock.advance(minutes=2)
        payslip = desk.create(
            service="payroll",
            title="Payslip missing",
            impact="low",
            urgency="low",
            priority=1,
            priority_reason="the CEO's payslip",
            channel=Channel.EMAIL,
        )
        clock.advance(minutes=2)
        again = desk.create(title="VPN down again", category="network/vpn", requester="c-jane")
        ids |= {"vpn": vpn.id, "laptop": laptop.id, "payslip": payslip.id, "again": again.id}

        clock.advance(minutes=10)
        t.assign(laptop.id, group="service-desk", agent="frank")
        t.transition(laptop.id, "start")
        t.transition(laptop.id, "pend", pending_reason="awaiting_vendor")
        t.comment(laptop.id, "ordered; the vendor says Friday")
        t.update(vpn.id, TicketChanges(tags=("remote", "urgent"), urgency="high"))
        t.transition(vpn.id, "resolve", resolution_code="fixed", resolution="tunnel MTU set")
        clock.advance(minutes=5)
        t.transition(vpn.id, "reopen", reason="dropped again at 14:00")
        t.link(again.id, LinkKind.DUPLICATE_OF, vpn.id)
        t.transition(again.id, "cancel", reason="duplicate of the VPN ticket")
        t.link(vpn.id, LinkKind.RELATED, monitoring.id)

        clock.advance(minutes=5)
        problem = s.desk.problems.create(
            NewProblem(
                title="Tunnels flap",
                description="two tickets, one cause",
                root_ci_id=desk.ids["core-1"],
                incident_ids=(vpn.id, payslip.id),
                known_error="MTU mismatch",
                workaround="lower the MTU",
            )
        )
        change = s.desk.changes.create(
            NewChange(
                title="Raise core MTU",
                ci_ids=(desk.ids["core-1"], desk.ids["db-1"]),
                planned_start=clock.now + dt.timedelta(days=1),
                planned_end=clock.now + dt.timedelta(days=1, hours=2),
            )
        )
        t.link(vpn.id, LinkKind.CAUSED_BY_CHANGE, change.id)
        ids |= {"problem": problem.id, "change": change.id}
    _manage(desk, problem.id, change.id)
    statuses = {i.id: i.status for i in s.tickets.find_incidents(IncidentFilter(limit=100))}
    assert statuses[laptop.id] is TicketStatus.PENDING
    assert statuses[again.id] is TicketStatus.CANCELLED
    return ids


def _manage(desk: Desk, problem_id: str, change_id: str) -> None:
    """The change as the CAB and its implementer leave it, the problem as its analysis
    does, and a freeze window: written through the store, every field set (the change
    service's steps have their own tests; the export must carry what they record)."""
    now, ids = desk.clock.now, desk.ids
    start = now + dt.timedelta(days=1)
    with desk.services.tickets.unit() as unit:
        (change,) = unit.load_changes([change_id]).values()
        unit.save_change(
            replace(
                change,
                status=ChangeStatus.REVIEW,
                assignee="frank",
                risk_reasons=[*change.risk_reasons, "db-1 has no standby"],
                risk_assessed_at=now,
                approvals_required=2,
                approvals=[
                    ChangeApproval("alice", ApprovalDecision.APPROVED, now, "after «hours»"),
                    ChangeApproval("gina", ApprovalDecision.APPROVED, now),
                ],
                tasks=[
                    ChangeTask(1, "MTU 9000 on core-1", "frank", TaskStatus.DONE, start, "frank"),
                    ChangeTask(2, "check db-1 replication", status=TaskStatus.CANCELLED),
                ],
                conflict_overrides=[
                    ConflictOverride("frz-month-end", "the tunnels cannot wait", "alice", now)
                ],
                implementation_plan="1. core-1\n2. db-1",
                backout_plan="MTU 1500 again",
                actual_start=start,
                actual_end=start + dt.timedelta(hours=1),
            )
        )
        (problem,) = unit.load_problems([problem_id]).values()
        unit.save_problem(
            replace(
                problem,
                status=ProblemStatus.KNOWN_ERROR,
                assignee="gina",
                root_cause="core-1 and the tunnels disagree on the MTU",
                fix="one MTU end to end",
                fixing_change_id=change_id,
            )
        )
        unit.save_freeze_window(
            FreezeWindow(
                "frz-month-end",
                "Month end",
                start - dt.timedelta(hours=1),
                start + dt.timedelta(days=2),
                now,
                "alice",
                reason="payroll runs",
                ci_ids=(ids["db-1"],),
            )
        )
