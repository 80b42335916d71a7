"""How the records about a CI become timeline entries (``EntryBuilder``), without a store:
every kind of worklog step, a resolve logged as several entries of one moment, records
older than their worklog, alerts older than their cycles, names for CI ids, and cursors."""

from __future__ import annotations

import datetime as dt

import pytest

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.events.model import Alert, AlertCycle, EventStatus, Severity
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import (
    Incident,
    Problem,
    ProblemStatus,
    TicketType,
    WorklogEntry,
    WorklogKind,
)
from servicegraph.ticketing.timeline import EntryBuilder, EntryKey, RelatedRole, TimelineKind

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
SWITCH, SERVER = "ci-00000000000000aa", "ci-00000000000000bb"
NAMES = {SWITCH: "acc-1", SERVER: "db-1"}


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def incident(**fields: object) -> Incident:
    values: dict[str, object] = {
        "id": "inc-7",
        "number": 7,
        "title": "acc-1: SwitchDown",
        "status": TicketStatus.ASSIGNED,
        "opened_at": T0,
        "updated_at": T0,
        "last_alert_at": T0,
        "priority": 2,
        "root_ci_id": SWITCH,
    }
    values.update(fields)
    return Incident(**values)  # type: ignore[arg-type]


def log(
    *entries: tuple[float, str, WorklogKind, str, str | None, str | None, str | None],
) -> list[WorklogEntry]:
    return [
        WorklogEntry("inc-7", at(t), actor, kind, text, seq + 1, field, old, new)
        for seq, (t, actor, kind, text, field, old, new) in enumerate(entries)
    ]


def build() -> EntryBuilder:
    return EntryBuilder(SERVER, {SERVER}, dict(NAMES))


CREATED = (0, "correlation", WorklogKind.CREATED, "opened by monitoring", None, None, None)


@pytest.mark.parametrize(
    ("step", "kind", "summary"),
    [
        (
            (5, "alice", WorklogKind.TRANSITION, "", "status", "new", "assigned"),
            TimelineKind.INCIDENT_TRANSITION,
            "incident INC7 new -> assigned by alice",
        ),
        (
            (5, "alice", WorklogKind.TRANSITION, "waiting", "status", "in_progress", "pending"),
            TimelineKind.INCIDENT_TRANSITION,
            "incident INC7 in_progress -> pending by alice: waiting",
        ),
        (
            (5, "dan", WorklogKind.REOPENED, "still broken", "status", "resolved", "assigned"),
            TimelineKind.INCIDENT_REOPENED,
            "incident INC7 reopened by dan (resolved -> assigned): still broken",
        ),
        (
            (
                5,
                "dan",
                WorklogKind.TRANSITION,
                "reopened: again",
                "status",
                "closed",
                "in_progress",
            ),
            TimelineKind.INCIDENT_REOPENED,
            "incident INC7 reopened by dan (closed -> in_progress): again",
        ),
        (
            (5, "alice", WorklogKind.TRANSITION, "closing", "status", "resolved", "closed"),
            TimelineKind.INCIDENT_TRANSITION,
            "incident INC7 resolved -> closed by alice: closing",
        ),
        (
            (5, "alice", WorklogKind.CHANGED, "VIP customer", "priority", "3", "2"),
            TimelineKind.INCIDENT_WORK,
            "incident INC7 changed priority: 3 -> 2 (VIP customer)",
        ),
        (
            (5, "alice", WorklogKind.CHANGED, "", "tags", None, '["vpn"]'),
            TimelineKind.INCIDENT_WORK,
            'incident INC7 changed tags: (none) -> ["vpn"]',
        ),
        (
            (5, "alice", WorklogKind.ASSIGNED, "", "assignee", "alice", "bob"),
            TimelineKind.INCIDENT_WORK,
            "incident INC7 assigned to bob (was alice)",
        ),
        (
            (5, "alice", WorklogKind.CHANGED, "priority: 3 -> 2", "priority", "3", "2"),
            TimelineKind.INCIDENT_WORK,
            "incident INC7 changed priority: 3 -> 2",
        ),
        (
            (5, "alice", WorklogKind.ASSIGNED, "", "assignment_group", None, "network"),
            TimelineKind.INCIDENT_WORK,
            "incident INC7 assigned to group network",
        ),
        (
            (
                5,
                "alice",
                WorklogKind.ASSIGNED,
                "group network (was triage): urgent",
                "assignment_group",
                "triage",
                "network",
            ),
            TimelineKind.INCIDENT_WORK,
            "incident INC7 assigned: group network (was triage): urgent",
        ),
        (
            (
                5,
                "alice",
                WorklogKind.ASSIGNED,
                "unassigned: bob is not in group network",
                "assignee",
                "bob",
                None,
            ),
            TimelineKind.INCIDENT_WORK,
            "incident INC7 unassigned: bob is not in group network",
        ),
        (
            (5, "alice", WorklogKind.ASSIGNED, "assigned to bob", None, None, None),
            TimelineKind.INCIDENT_WORK,
            "incident INC7 assigned to bob",
        ),
        (
            (5, "alice", WorklogKind.COMMENT, f"uplink of {SWITCH} flaps", None, None, None),
            TimelineKind.INCIDENT_WORK,
            "incident INC7 comment: uplink of acc-1 flaps",
        ),
        (
            (5, "router", WorklogKind.ROUTED, "rule vpn: service vpn", None, None, None),
            TimelineKind.INCIDENT_WORK,
            "incident INC7 routed: rule vpn: service vpn",
        ),
        (
            (5, "carol", WorklogKind.RESOLVED, "replaced the PSU", None, None, None),
            TimelineKind.INCIDENT_RESOLVED,
            "incident INC7 resolved by carol: replaced the PSU",
        ),
    ],
)
def test_each_worklog_step_is_an_entry(
    step: tuple[float, str, WorklogKind, str, str | None, str | None, str | None],
    kind: TimelineKind,
    summary: str,
) -> None:
    entries = build().incident(incident(), log(CREATED, step))
    assert [e.kind for e in entries] == [TimelineKind.INCIDENT_OPENED, kind]
    entry = entries[1]
    assert entry.summary == summary
    assert entry.actor == step[1] and entry.at == at(step[0])
    assert entry.work is not None and entry.work.seq == 2
    assert entry.ci_id == SWITCH, "about the incident's root"
    assert [(r.id, r.name, r.role) for r in entry.related] == [(SWITCH, "acc-1", RelatedRole.ROOT)]
    if step[4] == "status":
        assert (entry.status_from, entry.status_to) == (step[5], step[6])
    if kind is TimelineKind.INCIDENT_REOPENED:
        assert entry.reason == summary.rsplit(": ", 1)[1]


def test_a_resolve_logged_in_several_entries_is_one_resolution() -> None:
    entries = build().incident(
        incident(status=TicketStatus.RESOLVED, resolved_at=at(9), resolved_by="carol"),
        log(
            CREATED,
            (9, "carol", WorklogKind.TRANSITION, "resolve", "status", "in_progress", "resolved"),
            (9, "carol", WorklogKind.CHANGED, "", "resolution", None, "new PSU"),
            (9, "carol", WorklogKind.CHANGED, "", "resolution_code", None, "hardware"),
            (9, "carol", WorklogKind.CHANGED, "", "tags", "[]", '["psu"]'),
        ),
    )
    assert [e.kind for e in entries] == [
        TimelineKind.INCIDENT_OPENED,
        TimelineKind.INCIDENT_RESOLVED,
        TimelineKind.INCIDENT_WORK,
    ]
    resolved = entries[1]
    assert resolved.summary == "incident INC7 resolved by carol [hardware]: new PSU"
    assert resolved.resolution is not None
    assert (resolved.resolution.by, resolved.resolution.text, resolved.resolution.code) == (
        "carol",
        "new PSU",
        "hardware",
    )
    assert (resolved.status_from, resolved.status_to) == ("in_progress", "resolved")
    assert entries[2].summary == 'incident INC7 changed tags: [] -> ["psu"]', "not folded"


def test_the_desk_s_resolve_and_reopen_read_as_one_entry_each() -> None:
    """The ticket service logs a resolve as its step and the fields it sets, a reopen as
    its step and the resolution fields it clears, each in one moment."""
    entries = build().incident(
        incident(),
        log(
            CREATED,
            (
                9,
                "carol",
                WorklogKind.TRANSITION,
                "resolve (hardware): new PSU",
                "status",
                "in_progress",
                "resolved",
            ),
            (9, "carol", WorklogKind.CHANGED, "", "resolution_code", None, "hardware"),
            (9, "carol", WorklogKind.CHANGED, "", "resolution", None, "new PSU"),
            (
                30,
                "dan",
                WorklogKind.TRANSITION,
                "reopen: the PSU fan is loud",
                "status",
                "resolved",
                "assigned",
            ),
            (30, "dan", WorklogKind.CHANGED, "", "resolution_code", "hardware", None),
            (30, "dan", WorklogKind.CHANGED, "", "resolution", "new PSU", None),
        ),
    )
    assert [e.summary for e in entries] == [
        "incident INC7 opened (priority 2): acc-1: SwitchDown",
        "incident INC7 resolved by carol [hardware]: new PSU",
        "incident INC7 reopened by dan (resolved -> assigned): the PSU fan is loud",
    ]
    assert entries[2].reason == "the PSU fan is loud"


def test_a_resolution_and_its_status_step_of_one_moment_show_once() -> None:
    entries = build().incident(
        incident(),
        log(
            CREATED,
            (9, "carol", WorklogKind.RESOLVED, "new PSU", None, None, None),
            (9, "carol", WorklogKind.TRANSITION, "resolve", "status", "assigned", "resolved"),
            (
                20,
                "correlation",
                WorklogKind.TRANSITION,
                "reopened by monitoring: X fired again",
                "status",
                "resolved",
                "assigned",
            ),
        ),
    )
    kinds = [e.kind for e in entries]
    assert kinds == [
        TimelineKind.INCIDENT_OPENED,
        TimelineKind.INCIDENT_RESOLVED,
        TimelineKind.INCIDENT_REOPENED,
    ]
    assert entries[1].resolution is not None and entries[1].resolution.text == "new PSU"
    assert entries[1].status_from == "assigned"
    assert entries[2].reason == "X fired again"


@pytest.mark.parametrize(
    ("fields", "summary", "source"),
    [
        ({}, "incident INC7 resolved (all its alerts cleared)", "correlation"),
        (
            {"resolved_by": "carol", "resolution": "new PSU"},
            "incident INC7 resolved by carol: new PSU",
            None,
        ),
    ],
)
def test_a_record_older_than_its_worklog_still_tells_its_story(
    fields: dict[str, object], summary: str, source: str | None
) -> None:
    record = incident(status=TicketStatus.RESOLVED, resolved_at=at(30), **fields)
    entries = build().incident(record, [])
    assert [(e.kind, e.at) for e in entries] == [
        (TimelineKind.INCIDENT_OPENED, T0),
        (TimelineKind.INCIDENT_RESOLVED, at(30)),
    ]
    assert entries[0].summary == "incident INC7 opened (priority 2): acc-1: SwitchDown"
    assert entries[0].source == "correlation"
    assert entries[1].summary == summary and entries[1].source == source


def test_a_service_request_opened_by_an_agent_says_so() -> None:
    record = incident(type=TicketType.SERVICE_REQUEST, title="New laptop", created_by="alice")
    entries = build().incident(
        record, log((0, "alice", WorklogKind.CREATED, "raised by phone", None, None, None))
    )
    assert [e.summary for e in entries] == [
        "service request INC7 opened by alice (priority 2): New laptop"
    ]
    assert entries[0].source is None and entries[0].actor == "alice"


def alert(**fields: object) -> Alert:
    values: dict[str, object] = {
        "fingerprint": "fp-1",
        "source": "test",
        "name": "NodeDown",
        "severity": Severity.MAJOR,
        "status": EventStatus.RESOLVED,
        "labels": {},
        "summary": "node down",
        "first_seen": at(0),
        "last_seen": at(10),
        "last_change": at(10),
        "ci_id": SERVER,
        "cleared_at": at(70),
        "incident_id": "inc-7",
    }
    values.update(fields)
    return Alert(**values)  # type: ignore[arg-type]


def test_an_alert_older_than_its_cycles_is_one_cycle() -> None:
    entries = build().alerts([alert()], {}, {"inc-7": 7})
    assert [(e.kind, e.at, e.summary) for e in entries] == [
        (
            TimelineKind.ALERT_FIRED,
            at(0),
            "alert NodeDown fired (major, test) [cycle 1 of 1, INC7]: node down",
        ),
        (
            TimelineKind.ALERT_CLEARED,
            at(70),
            "alert NodeDown cleared after 1m10s (test) [cycle 1 of 1, INC7]",
        ),
    ]
    firing = build().alerts([alert(status=EventStatus.FIRING)], {}, {})
    assert [e.kind for e in firing] == [TimelineKind.ALERT_FIRED]


def test_cycles_sharing_a_moment_keep_their_order() -> None:
    """Cycle 1 clears at the instant cycle 2 fires: clear first, then fire."""
    cycles = [
        AlertCycle("fp-1", at(0), at(30), "inc-7"),
        AlertCycle("fp-1", at(30), None, "inc-8"),
    ]
    entries = build().alerts([alert(ci_id=SWITCH)], {"fp-1": cycles}, {"inc-7": 7})
    entries.sort(key=lambda e: e.key)
    assert [e.kind for e in entries] == [
        TimelineKind.ALERT_FIRED,
        TimelineKind.ALERT_CLEARED,
        TimelineKind.ALERT_FIRED,
    ]
    assert entries[2].summary.startswith("alert NodeDown fired on acc-1 (major, test) [cycle 2")
    assert "INC" not in entries[2].summary, "an incident the timeline does not know"
    assert entries[0].related[0].name == "acc-1"


def test_a_link_logged_on_both_tickets_shows_once() -> None:
    builder = build()
    text = "incident inc-7 is an instance of problem prb-1"
    linked = (50, "alice", WorklogKind.LINKED, text, None, None, None)
    on_incident = builder.incident(incident(), log(CREATED, linked))
    problem = Problem(
        "prb-1", 1, "PSU failures", ProblemStatus.OPEN, T0, T0, SWITCH, "recurrence", "sig"
    )
    on_problem = builder.problem(
        problem, [WorklogEntry("prb-1", at(50), "alice", WorklogKind.LINKED, text, seq=9)]
    )
    assert [e.kind for e in on_incident] == [
        TimelineKind.INCIDENT_OPENED,
        TimelineKind.INCIDENT_WORK,
    ]
    assert [e.kind for e in on_problem] == [TimelineKind.PROBLEM_OPENED]


@pytest.mark.parametrize(
    "key",
    [
        EntryKey(0, 0, "", 0),
        EntryKey(1_793_534_400_000_000, 3, "inc-0011223344556677", 91),
        EntryKey(-5, 1, "fp.with.dots:and/slashes", 4),
        EntryKey(7, 2, "é", 2**40),
    ],
)
def test_a_cursor_holds_its_key(key: EntryKey) -> None:
    assert EntryKey.parse(key.cursor()) == key


def test_a_cursor_that_is_not_one_names_the_field() -> None:
    with pytest.raises(ValidationFailed) as caught:
        EntryKey.parse("tl1.AAAA", field="after")
    assert caught.value.field == "after"
