"""Reading a ServiceNow incident event log (``ticketing.servicenow_log``) on small logs
written by hand in the real log's shape (36 columns, day-first minute times, ``?``)."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Channel, WorklogKind
from servicegraph.ticketing.servicenow_log import (
    EventLogReader,
    Rebuilt,
    Refused,
    read_event_log,
    slug,
    zone_of,
)
from servicegraph.ticketing.sla import ClockKind, clock_events, running_spans

HEADER = [
    *("number", "incident_state", "active", "reassignment_count", "reopen_count"),
    *("sys_mod_count", "made_sla", "caller_id", "opened_by", "opened_at", "sys_created_by"),
    *("sys_created_at", "sys_updated_by", "sys_updated_at", "contact_type", "location"),
    *("category", "subcategory", "u_symptom", "cmdb_ci", "impact", "urgency", "priority"),
    *("assignment_group", "assigned_to", "knowledge", "u_priority_confirmation", "notify"),
    *("problem_id", "rfc", "vendor", "caused_by", "closed_code", "resolved_by"),
    *("resolved_at", "closed_at"),
]

BASE = {
    "number": "INC0000001",
    "active": "TRUE",
    "reassignment_count": "0",
    "reopen_count": "0",
    "made_sla": "TRUE",
    "caller_id": "Caller 2403",
    "opened_by": "Opened by  8",
    "opened_at": "29-02-2016 01:16",
    "sys_created_by": "Created by 6",
    "sys_created_at": "29-02-2016 01:23",
    "contact_type": "Phone",
    "location": "Location 143",
    "category": "Category 55",
    "subcategory": "Subcategory 170",
    "u_symptom": "Symptom 72",
    "cmdb_ci": "?",
    "impact": "2 - Medium",
    "urgency": "2 - Medium",
    "priority": "3 - Moderate",
    "assignment_group": "Group 56",
    "assigned_to": "?",
    "knowledge": "TRUE",
    "u_priority_confirmation": "FALSE",
    "notify": "Do Not Notify",
    "problem_id": "?",
    "rfc": "?",
    "vendor": "?",
    "caused_by": "?",
    "closed_code": "code 5",
    "resolved_by": "Resolved by 149",
    "resolved_at": "29-02-2016 11:29",
    "closed_at": "05-03-2016 12:00",
}


def row(state: str, mod: int, at: str, by: str = "Updated by 21", **cells: str) -> dict[str, str]:
    return {
        **BASE,
        "incident_state": state,
        "sys_mod_count": str(mod),
        "sys_updated_at": at,
        "sys_updated_by": by,
        **cells,
    }


def log(*rows: dict[str, str]) -> str:
    lines = [",".join(HEADER)]
    lines += [",".join(r[c] for c in HEADER) for r in rows]
    return "\n".join(lines) + "\n"


def counter() -> itertools.count[int]:
    return itertools.count(1)


def read(text: str, timezone: str | None = None) -> list[Rebuilt | Refused]:
    ids = counter()
    items = read_event_log(
        text, name="log.csv", timezone=timezone, new_id=lambda: f"inc-{next(ids)}"
    )
    return list(items)


def one(text: str, timezone: str | None = None) -> Rebuilt:
    items = read(text, timezone)
    assert len(items) == 1
    item = items[0]
    assert isinstance(item, Rebuilt), item
    return item


def at(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%d-%m-%Y %H:%M").replace(tzinfo=dt.UTC)


def shapes(item: Rebuilt) -> list[tuple[str, str | None, str | None, str | None]]:
    return [(e.kind.value, e.field, e.old, e.new) for e in item.worklog]


def test_a_plain_life_new_active_resolved_closed() -> None:
    item = one(
        log(
            row("New", 0, "29-02-2016 01:23"),
            row("Active", 1, "29-02-2016 02:00", "Updated by 642", assigned_to="Resolver 17"),
            row("Resolved", 2, "29-02-2016 08:53", "Updated by 642", assigned_to="Resolver 17"),
            row("Closed", 3, "05-03-2016 12:00", "Updated by 908", assigned_to="Resolver 17"),
        )
    )
    t = item.incident
    assert t.external_ref == "INC0000001" and t.number == 0 and t.id == "inc-1"
    assert t.status is TicketStatus.CLOSED
    assert t.title == "Category 55 / Subcategory 170: Symptom 72"
    assert t.category == "category-55/subcategory-170"
    assert t.channel is Channel.PHONE
    assert (t.priority, t.impact, t.urgency) == (3, "medium", "medium")
    assert t.requester == "caller-2403" and t.created_by == "opened-by-8"
    assert t.assignment_group == "group-56" and t.assignee == "resolver-17"
    assert t.opened_at == at("29-02-2016 01:16")
    assert t.first_response_at == at("29-02-2016 02:00")  # out of New: work started
    assert t.acknowledged_at == at("29-02-2016 02:00") and t.acknowledged_by == "updated-by-642"
    assert t.resolved_at == at("29-02-2016 08:53") and t.resolved_by == "resolved-by-149"
    assert t.closed_at == at("05-03-2016 12:00") and t.updated_at == t.closed_at
    assert (t.resolution_code, t.close_code) == ("code-5", "code-5")
    assert (t.reopen_count, t.reassignment_count) == (0, 0)
    assert t.custom_fields == {
        "made_sla": True,
        "knowledge": True,
        "u_priority_confirmation": False,
        "closed_code": "code 5",
        "location": "Location 143",
        "symptom": "Symptom 72",
    }
    assert shapes(item) == [
        ("created", None, None, None),
        ("assigned", "assignment_group", None, "group-56"),
        ("assigned", "assignee", None, "resolver-17"),
        ("transition", "status", "new", "in_progress"),
        ("transition", "status", "in_progress", "resolved"),
        ("changed", "resolution_code", None, "code-5"),
        ("transition", "status", "resolved", "closed"),
        ("changed", "close_code", None, "code-5"),
    ]
    created, group, agent, start, resolve, _, close, _ = item.worklog
    assert created.at == t.opened_at and created.actor == "opened-by-8"
    assert "imported from ServiceNow INC0000001" in created.text
    assert group.at == at("29-02-2016 01:23") and group.actor == "updated-by-21"
    assert agent.at == start.at == at("29-02-2016 02:00") and start.actor == "updated-by-642"
    assert start.text == "start: ServiceNow 'Active'"
    assert resolve.text == "resolve (code-5): ServiceNow 'Resolved'"
    assert close.actor == "updated-by-908"
    assert item.groups == {"group-56": "Group 56"}
    assert item.agents == {
        "resolver-17": ("Resolver 17", {"group-56"}),
        "resolved-by-149": ("Resolved by 149", set()),
    }
    assert item.contacts == {"caller-2403": "Caller 2403"}
    assert item.rows == 4 and item.first_line == 2


def test_a_reopen_is_the_transition_out_of_resolved_and_the_last_resolution_counts() -> None:
    item = one(
        log(
            row("New", 0, "01-03-2016 09:00"),
            row("Resolved", 1, "01-03-2016 10:00"),
            row("Resolved", 2, "01-03-2016 10:30"),  # an update while resolved: no entry
            row("Active", 3, "02-03-2016 08:00", reopen_count="1"),
            row("Resolved", 4, "02-03-2016 09:00", reopen_count="1"),
            row("Closed", 5, "07-03-2016 09:00", reopen_count="1"),
        )
    )
    t = item.incident
    assert t.reopen_count == 1
    assert t.resolved_at == at("02-03-2016 09:00")  # the last time it entered Resolved
    assert t.first_response_at == at("01-03-2016 10:00")  # the first resolution answered
    statuses = [(e.old, e.new) for e in item.worklog if e.kind is WorklogKind.TRANSITION]
    assert statuses == [
        ("new", "resolved"),
        ("resolved", "in_progress"),
        ("in_progress", "resolved"),
        ("resolved", "closed"),
    ]
    reopen = next(e for e in item.worklog if e.old == "resolved" and e.new == "in_progress")
    assert reopen.text == "reopen: ServiceNow 'Active'"
    cleared = [e for e in item.worklog if e.field == "resolution_code" and e.new is None]
    assert len(cleared) == 1 and cleared[0].old == "code-5" and cleared[0].at == reopen.at
    assert not any(e.kind is WorklogKind.REOPENED for e in item.worklog)  # as the live desk


def test_a_reopen_from_closed_clears_the_closure() -> None:
    t = one(
        log(
            row("Resolved", 0, "01-03-2016 10:00"),
            row("Closed", 1, "02-03-2016 10:00"),
            row("New", 2, "03-03-2016 10:00"),
        )
    ).incident
    assert t.status is TicketStatus.NEW and t.reopen_count == 1
    assert t.closed_at is None and t.resolved_at is None and t.close_code is None


def test_reassignments_count_group_changes_after_the_first_row() -> None:
    item = one(
        log(
            row("New", 0, "01-03-2016 09:00", assignment_group="?"),
            row("New", 1, "01-03-2016 09:10", assignment_group="Group 1"),  # 1
            row("Active", 2, "01-03-2016 09:20", assignment_group="Group 2"),  # 2
            row("Active", 3, "01-03-2016 09:30", assignment_group="?"),  # 3
            row("Active", 4, "01-03-2016 09:40", assignment_group="Group 1"),  # 4
            row("Active", 5, "01-03-2016 09:50", assignment_group="Group 1"),
        )
    )
    assert item.incident.reassignment_count == 4  # ServiceNow's own count on these rows
    groups = [(e.old, e.new) for e in item.worklog if e.field == "assignment_group"]
    assert groups == [
        (None, "group-1"),
        ("group-1", "group-2"),
        ("group-2", None),
        (None, "group-1"),
    ]
    assert item.incident.assignment_group == "group-1"
    assert set(item.groups) == {"group-1", "group-2"}
    first = one(
        log(
            row("New", 0, "01-03-2016 09:00", assignment_group="Group 1"),
            row("Active", 1, "01-03-2016 09:10", assignment_group="Group 1"),
        )
    )
    assert first.incident.reassignment_count == 0  # the group it was created with


def test_agents_are_listed_with_the_groups_they_held_tickets_in() -> None:
    item = one(
        log(
            row("Active", 0, "01-03-2016 09:00", assigned_to="Resolver 1"),
            row("Active", 1, "01-03-2016 09:10", assignment_group="Group 2", assigned_to="?"),
            row(
                "Active",
                2,
                "01-03-2016 09:20",
                assignment_group="Group 2",
                assigned_to="Resolver 1",
            ),
        )
    )
    assert item.agents["resolver-1"] == ("Resolver 1", {"group-56", "group-2"})
    agents = [(e.old, e.new, e.text) for e in item.worklog if e.field == "assignee"]
    assert agents == [
        (None, "resolver-1", "assigned to resolver-1"),
        ("resolver-1", None, "unassigned (was resolver-1)"),
        (None, "resolver-1", "assigned to resolver-1"),
    ]


def test_pending_pauses_the_clocks_as_a_live_ticket_does() -> None:
    item = one(
        log(
            row("Active", 0, "01-03-2016 09:00"),
            row("Awaiting User Info", 1, "01-03-2016 10:00"),
            row("Awaiting Vendor", 2, "01-03-2016 11:00"),
            row("Active", 3, "01-03-2016 12:00"),
            row("Awaiting Problem", 4, "01-03-2016 13:00"),
            row("Resolved", 5, "01-03-2016 14:00"),
        )
    )
    assert shapes(item)[1:] == [
        ("assigned", "assignment_group", None, "group-56"),
        ("transition", "status", "new", "in_progress"),
        ("transition", "status", "in_progress", "pending"),
        ("changed", "pending_reason", None, "awaiting_requester"),
        ("changed", "pending_reason", "awaiting_requester", "awaiting_vendor"),
        ("transition", "status", "pending", "in_progress"),
        ("changed", "pending_reason", "awaiting_vendor", None),
        ("transition", "status", "in_progress", "pending"),
        ("changed", "pending_reason", None, "awaiting_change"),
        ("transition", "status", "pending", "resolved"),
        ("changed", "pending_reason", "awaiting_change", None),
        ("changed", "resolution_code", None, "code-5"),
    ]
    pend = next(e for e in item.worklog if e.new == "pending")
    assert pend.text == "pend (awaiting_requester): ServiceNow 'Awaiting User Info'"
    # the clock events the SLA projection reads from the worklog, as from a live ticket's
    events = clock_events(item.worklog)
    assert [(e.status, e.pending_reason) for e in events] == [
        ("in_progress", None),
        ("pending", "awaiting_requester"),
        ("pending", "awaiting_vendor"),
        ("in_progress", None),
        ("pending", "awaiting_change"),
        ("resolved", None),
    ]
    t = item.incident
    spans, stop, paused = running_spans(
        t.opened_at,
        events,
        at("02-03-2016 00:00"),
        kind=ClockKind.RESOLUTION,
        pausing_reasons=frozenset({"awaiting_requester", "awaiting_vendor"}),
    )
    assert stop == at("01-03-2016 14:00") and not paused
    # opened 01:16 .. 10:00 running, 10:00 .. 12:00 paused (user, vendor), 12:00 .. 14:00
    # running (awaiting a change does not pause)
    assert spans == [
        (at("29-02-2016 01:16"), at("01-03-2016 10:00")),
        (at("01-03-2016 12:00"), at("01-03-2016 14:00")),
    ]


def test_empty_cells_and_a_log_without_the_optional_columns() -> None:
    item = one(
        log(
            row(
                "New",
                0,
                "01-03-2016 09:00",
                category="?",
                subcategory="?",
                u_symptom="?",
                assignment_group="?",
                made_sla="?",
                knowledge="?",
                location="?",
                closed_code="?",
                opened_by="?",
                caller_id="?",
                contact_type="Self service",
            )
        )
    )
    t = item.incident
    assert t.title == "ServiceNow incident INC0000001"
    assert t.category is None and t.assignment_group is None and t.requester is None
    assert t.created_by == "created-by-6"  # opened_by empty: who created the record
    assert t.channel is Channel.PORTAL
    assert t.custom_fields == {"u_priority_confirmation": False}
    assert item.groups == {} and item.contacts == {}
    minimal = "number,incident_state,sys_mod_count,opened_at,sys_updated_at\n"
    minimal += "INC9,Active,0,01-03-2016 09:00,01-03-2016 09:05\n"
    t = one(minimal).incident
    assert t.status is TicketStatus.IN_PROGRESS and t.created_by == "servicenow-import"
    assert t.channel is Channel.IMPORT and (t.priority, t.impact) == (3, "medium")


def test_channels_priorities_and_a_priority_change() -> None:
    for contact, channel in [
        ("Phone", Channel.PHONE),
        ("IVR", Channel.PHONE),
        ("Email", Channel.EMAIL),
        ("Self service", Channel.PORTAL),
        ("Direct opening", Channel.API),
    ]:
        t = one(log(row("New", 0, "01-03-2016 09:00", contact_type=contact))).incident
        assert t.channel is channel, contact
    item = one(
        log(
            row("New", 0, "01-03-2016 09:00", priority="4 - Low", impact="3 - Low"),
            row("Active", 1, "01-03-2016 09:10", priority="1 - Critical", impact="1 - High"),
        )
    )
    t = item.incident
    assert (t.priority, t.impact) == (1, "high")
    assert "P4 (low impact x medium urgency)" in item.worklog[0].text
    change = next(e for e in item.worklog if e.field == "priority")
    assert (change.kind, change.old, change.new) == (WorklogKind.CHANGED, "4", "1")
    assert change.text == "priority: P4 -> P1"
    assert any(e.field == "impact" and e.new == "high" for e in item.worklog)


def test_rows_are_ordered_by_mod_count_and_an_early_row_goes_first() -> None:
    item = one(
        log(
            row("Resolved", 3, "01-03-2016 12:00", assignment_group="Group 73"),
            row("Active", 1, "01-03-2016 10:00", assignment_group="Group 73"),
            # dated before opened_at, its count repeated: the earliest state (real log)
            row("New", 1, "29-02-2016 00:30", assignment_group="Group 72"),
            row("Active", 2, "01-03-2016 09:00", assignment_group="Group 73"),  # goes back
        )
    )
    t = item.incident
    assert [(e.old, e.new) for e in item.worklog if e.field == "assignment_group"] == [
        (None, "group-72"),
        ("group-72", "group-73"),
    ]
    assert t.reassignment_count == 1
    times = [e.at for e in item.worklog]
    assert times == sorted(times) and times[0] == t.opened_at  # never before its opening
    assert times[1] == t.opened_at  # the early row, dated at the opening
    # mod 2 (09:00) after mod 1 (10:00): dated 10:00, so the history reads in order
    assert t.resolved_at == at("01-03-2016 12:00")
    assert item.first_line == 2


def test_a_no_state_row_keeps_the_status() -> None:
    item = one(
        log(
            row("Active", 0, "01-03-2016 09:00"),
            row("-100", 1, "01-03-2016 09:10", priority="2 - High"),
        )
    )
    assert item.incident.status is TicketStatus.IN_PROGRESS and item.incident.priority == 2


def test_times_are_read_in_the_zone_given() -> None:
    text = log(row("New", 0, "01-07-2016 10:05", opened_at="01-07-2016 10:00"))
    t = one(text, timezone="Europe/Lisbon").incident
    assert t.opened_at == dt.datetime(2016, 7, 1, 9, 0, tzinfo=dt.UTC)  # WEST, UTC+1
    assert t.opened_at.tzinfo is dt.UTC
    assert one(text).incident.opened_at == dt.datetime(2016, 7, 1, 10, 0, tzinfo=dt.UTC)
    with pytest.raises(ValidationFailed) as caught:
        zone_of("Europe/Atlantis")
    assert caught.value.field == "timezone"


def test_bad_rows_are_each_named_and_refuse_only_their_incident() -> None:
    text = log(
        row("New", 0, "01-03-2016 09:00", number="INC1"),
        row("Resolved", 1, "31-02-2016 10:00", number="INC1"),  # line 3: no such day
        row("New", 0, "01-03-2016 09:00", number="INC2"),
        row("Paused", 1, "01-03-2016 09:30", number="INC2"),  # line 5
        row("Active", 2, "01-03-2016 09:40", number="INC2", priority="urgent"),  # line 6
        row("New", 0, "01-03-2016 09:00", number="INC3"),
        row("New", 1, "01-03-2016 09:05", number="INC3", opened_at="01-03-2016 08:00"),  # 8
        row("New", 0, "01-03-2016 09:00", number="INC4", sys_mod_count="x"),  # line 9
        row("Closed", 0, "01-03-2016 09:00", number="INC5"),
        row("Closed", 3, "01-03-2016 09:00", number="INC1"),  # line 11: INC1 again
    )
    text += "INC6,New,only,three\n"  # line 12
    text += (
        log(
            row("New", 0, "01-03-2016 09:00", number="INC7"),  # line 13
            row("Active", 2, "01-03-2016 09:10", number="INC7"),  # line 15
        )
        .split("\n", 1)[1]
        .replace("\n", "\nINC7,Active,1,short\n", 1)
    )  # line 14
    items = read(text)
    refused = {i.number: i for i in items if isinstance(i, Refused) and i.rows > 1}
    rebuilt = [i for i in items if isinstance(i, Rebuilt)]
    assert [i.incident.external_ref for i in rebuilt] == ["INC5"]
    problems = [(p.item, p.field) for i in items if isinstance(i, Refused) for p in i.problems]
    assert problems == [
        ("log.csv:3", "sys_updated_at"),
        ("log.csv:5", "incident_state"),
        ("log.csv:6", "priority"),
        ("log.csv:8", "opened_at"),
        ("log.csv:9", "sys_mod_count"),
        ("log.csv:11", "number"),
        ("log.csv:12", None),
        ("log.csv:14", None),  # a short row: its incident refused whole, not split
    ]
    assert refused["INC1"].rows == 2 and refused["INC2"].rows == 3
    messages = {p.item: p.reason for i in items if isinstance(i, Refused) for p in i.problems}
    assert "is not a time such as 29-02-2016 01:16" in messages["log.csv:3"]
    assert "unknown state 'Paused'" in messages["log.csv:5"]
    assert "'urgent' is not a priority" in messages["log.csv:6"]
    assert "differs from the incident's first row" in messages["log.csv:8"]
    assert "must be together" in messages["log.csv:11"]
    assert str(refused["INC1"].problems[0]).startswith("log.csv:3: field 'sys_updated_at': ")
    reader = EventLogReader(name="log.csv")
    list(reader.read(text))
    assert reader.rows_read == 14


def test_a_file_that_is_no_event_log() -> None:
    (item,) = read("number,state\nINC1,New\n")
    assert isinstance(item, Refused) and item.number is None
    (problem,) = item.problems
    assert problem.item == "log.csv:1" and problem.field == "incident_state"
    assert "missing column(s) incident_state, sys_mod_count" in problem.reason
    (empty,) = read("")
    assert isinstance(empty, Refused) and "empty" in empty.problems[0].reason


def test_a_path_is_read_with_its_name_and_a_missing_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("\ufeff" + log(row("New", 0, "01-03-2016 09:00")), encoding="utf-8")
    (item,) = read_event_log(path)
    assert isinstance(item, Rebuilt) and item.incident.external_ref == "INC0000001"
    (missing,) = read_event_log(tmp_path / "nope.csv")
    assert isinstance(missing, Refused)
    assert missing.problems[0].item == str(tmp_path / "nope.csv")
    assert "cannot read" in missing.problems[0].reason


def test_slugs() -> None:
    assert slug("Group 56") == "group-56"
    assert slug("Opened by  8") == "opened-by-8"
    assert slug("  Résolu / N°7 ") == "r-solu-n-7"
    assert slug("??") == ""
