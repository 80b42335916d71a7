"""The desk's records in an export file (``ticketing.export_format``): every field of every
record type is written and read back equal, including values away from the defaults; a
field added to a model without the codec knowing fails here; bad values name
``<type>.<field>`` (an item of a change's lists ``<type>.<field>[<n>].<key>``); a
version-2 incident (before routing's priority bounds) reads without them, a routing
override of that version as the bounds its reason names; a version-4 change in the
statuses of then reads as migration 13 maps them, without the fields of change management."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.events.model import Alert, AlertCycle, EventStatus, Severity
from servicegraph.ticketing import export_format as fmt
from servicegraph.ticketing.catalogue import Category, Defaults, Service
from servicegraph.ticketing.change_model import (
    ApprovalDecision,
    ChangeApproval,
    ChangeTask,
    ChangeType,
    ConflictOverride,
    FreezeWindow,
    TaskStatus,
)
from servicegraph.ticketing.export_values import Items
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
from servicegraph.ticketing.people import Agent, Contact, DeskRole, Group, Organisation
from servicegraph.ticketing.ports import ProblemLink, Stamped

CET = dt.timezone(dt.timedelta(hours=1))
T = dt.datetime(2026, 11, 2, 9, 30, 15, 123456, tzinfo=dt.UTC)


def t(minutes: int) -> dt.datetime:
    return T + dt.timedelta(minutes=minutes)


INCIDENT = Incident(
    id="req-1",
    number=42,
    title="Laptop «X1» for Zoë",
    status=TicketStatus.PENDING,
    opened_at=t(0),
    updated_at=t(5),
    last_alert_at=t(1),
    priority=2,
    impact="high",
    urgency="medium",
    root_ci_id="ci-a",
    root_inferred=True,
    root_confidence=0.75,
    root_fingerprint="fp-1",
    business_services=["ci-shop"],
    flapping=True,
    clear_since=t(2),
    resolved_at=t(3),
    reopen_count=2,
    problem_id="prb-1",
    alert_count=3,
    acknowledged_at=t(1),
    acknowledged_by="alice",
    assignee="bob",
    resolved_by="bob",
    resolution="swapped",
    type=TicketType.SERVICE_REQUEST,
    channel=Channel.CHAT,
    description="line one\nline two",
    requester="c-1",
    organisation="acme",
    service="laptops",
    category="hardware/laptop",
    affected_ci_ids=["ci-b", "ci-c"],
    priority_reason="VIP",
    priority_set_by="alice",
    priority_floor=3,
    priority_ceiling=2,
    assignment_group="desk",
    pending_reason="awaiting_vendor",
    resolution_code="replaced",
    close_code="solved",
    closed_at=t(9),
    tags=["vip", "hardware"],
    custom_fields={"laptop_model": "x1", "count": 2, "nested": {"a": [1, 2.5, None]}},
    routed_by="rule:laptops",
    created_by="alice",
    first_response_at=t(2),
    reassignment_count=3,
    external_ref="INC0000045",
    sla_tier="gold",
    service_hours="business",
)
ALERT = Alert(
    fingerprint="fp-1",
    source="alertmanager",
    name="NodeDown",
    severity=Severity.MAJOR,
    status=EventStatus.RESOLVED,
    labels={"ci_id": "ci-a", "job": "node"},
    summary="down",
    first_seen=t(0),
    last_seen=t(4),
    last_change=t(3),
    count=7,
    ci_id="ci-a",
    incident_id="inc-1",
    cleared_at=t(4),
    flapping=True,
    transitions=[t(1), t(2), t(3)],
    reported_at=t(10),
    change_id="chg-1",
)
PROBLEM = Problem(
    "prb-1", 1, "p", ProblemStatus.KNOWN_ERROR, t(0), t(1), "ci-a", "r", "sig",
    known_error="ke", workaround="wa", assignee="bob", description="PSUs fail «weekly»",
    root_cause="a bad batch", fix="replace the batch", fixing_change_id="chg-1",
    resolved_at=t(7), closed_at=t(8), resolution="replaced",
)  # fmt: skip
CHANGE = Change(
    "chg-1", 3, "c", ChangeStatus.REVIEW, ChangeRisk.VERY_HIGH, t(0), t(1), "alice",
    description="d", ci_ids=["ci-b", "ci-a"], planned_start=t(5), planned_end=t(6),
    change_type=ChangeType.EMERGENCY, template="psu-swap", assignee="bob",
    risk_reasons=["touches ci-shop", "no backout tested"], risk_assessed_at=t(2),
    approvals_required=2,
    approvals=[
        ChangeApproval("carol", ApprovalDecision.APPROVED, t(3), "ok «go»"),
        ChangeApproval("dave", ApprovalDecision.REJECTED, t(4)),
    ],
    tasks=[
        ChangeTask(1, "drain", "bob", TaskStatus.DONE, t(5), "bob"),
        ChangeTask(2, "swap"),
        ChangeTask(3, "test", status=TaskStatus.CANCELLED),
    ],
    conflict_overrides=[ConflictOverride("frz-1", "vendor on site only then", "carol", t(3))],
    implementation_plan="1. drain\n2. swap", backout_plan="put the old PSU back",
    actual_start=t(5), actual_end=t(7), close_code="successful_with_issues",
    close_notes="one fan noisy",
)  # fmt: skip
FREEZE = FreezeWindow("frz-1", "Year end", t(60), t(120), t(0), "carol", "books close",
                      ("ci-shop", "ci-a"))  # fmt: skip
RECORDS: list[Any] = [
    Stamped(Organisation("acme", "ACME", domains=("acme.com",), notes="key account"), t(1)),
    Stamped(
        Agent(
            "alice",
            "Alice Ü",
            "alice@desk.example",
            roles=(DeskRole.AGENT, DeskRole.ADMIN),
            active=False,
            phone="+41",
        ),
        t(2),
    ),
    Stamped(Group("noc", "NOC", email="noc@x.example", manager="alice", members=("alice",)), T),
    Stamped(Contact("c-1", "Carol", email="c@acme.com", organisation="acme", vip=True), T),
    Stamped(
        Service(
            "laptops",
            "Laptops",
            ci_id="ci-shop",
            owner_group="noc",
            request_types=(TicketType.SERVICE_REQUEST,),
            defaults=Defaults(group="noc", priority=3, impact="low", custom_fields={"a": 1}),
            description="d",
            active=False,
        ),
        T,
    ),
    Stamped(Category("hw/laptop", "Laptop", owner_group="noc", types=(TicketType.INCIDENT,)), T),
    ALERT,
    AlertCycle("fp-1", t(0), t(1), "inc-1"),
    AlertCycle("fp-1", t(2)),
    INCIDENT,
    PROBLEM,
    ProblemLink("prb-1", "req-1", t(3)),
    FREEZE,
    CHANGE,
    TicketLink("req-1", "chg-1", LinkKind.CAUSED_BY_CHANGE, t(2), "bob"),
    WorklogEntry("req-1", t(4), "bob", WorklogKind.CHANGED, "tags", 17, "tags", '["a"]', None),
]  # fmt: skip


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: fmt.codec_of(r).section)
def test_every_record_survives_the_file_equal(record: Any) -> None:
    obj = fmt.encode(record)
    line = json.dumps(obj, ensure_ascii=False)
    assert fmt.decode(json.loads(line)) == record
    assert obj["type"] == fmt.codec_of(record).section


def test_every_section_is_tested() -> None:
    assert {fmt.codec_of(r).section for r in RECORDS} == set(fmt.SECTIONS)


# fields the file does not carry, and why
NOT_IN_THE_FILE = {
    Agent: {"groups"},  # membership is written once, on the group's side
    Problem: {"incident_ids"},  # the problem_incident records, with the time of each link
    Incident: {"sla_due_at"},  # derived from the SLA clocks, which are evaluated again
}


@pytest.mark.parametrize("codec", list(fmt.CODECS.values()), ids=lambda c: c.section)
def test_the_codec_knows_every_field_of_its_record(codec: fmt.Codec) -> None:
    """A field added to a model must be added to the export too, or this fails."""
    model = {f.name for f in dataclasses.fields(codec.kind)}
    written = {name for name, *_ in codec.fields}
    assert written == model - NOT_IN_THE_FILE.get(codec.kind, set())


def test_the_items_of_a_change_are_written_with_every_field() -> None:
    """The same for the objects a change holds lists of (approvals, tasks, overrides)."""
    nested: dict[type, set[str]] = {}
    for _, _, _, decode in fmt.CHANGE.fields:
        codec = getattr(decode, "__self__", None)  # the bound Items.decode of a list
        if isinstance(codec, Items):
            nested[codec.kind] = {name for name, *_ in codec.fields}
    assert set(nested) == {ChangeApproval, ChangeTask, ConflictOverride}
    for kind, written in nested.items():
        assert written == {f.name for f in dataclasses.fields(kind)}, kind.__name__


def test_times_are_utc_with_microseconds_and_the_ticket_type_has_its_own_key() -> None:
    obj = fmt.encode(dataclasses.replace(INCIDENT, opened_at=t(0).astimezone(CET)))
    assert obj["opened_at"] == "2026-11-02T09:30:15.123456+00:00"
    assert obj["type"] == "incident" and obj["ticket_type"] == "service_request"
    assert fmt.encode(ALERT)["severity"] == "major"


def _incident(**changes: Any) -> dict[str, Any]:
    obj = fmt.encode(INCIDENT)
    for key, value in changes.items():
        if value is KeyError:
            del obj[key]
        else:
            obj[key] = value
    return obj


def _item(value: Any, **changes: Any) -> dict[str, Any]:
    """One of a change's list items as the file holds it, with ``changes`` (KeyError: the
    key left out)."""
    name = _LIST_OF[type(value)]
    alone: dict[str, Any] = {name: [value]}
    (obj,) = fmt.encode(dataclasses.replace(CHANGE, **alone))[name]
    for key, new in changes.items():
        if new is KeyError:
            del obj[key]
        else:
            obj[key] = new
    return dict(obj)


_LIST_OF = {
    ChangeApproval: "approvals",
    ChangeTask: "tasks",
    ConflictOverride: "conflict_overrides",
}


def _change(**changes: Any) -> dict[str, Any]:
    return fmt.encode(CHANGE) | changes


@pytest.mark.parametrize(
    ("obj", "field", "message"),
    [
        ({"type": "memo"}, "type", "unknown record type 'memo'"),
        ({"type": None}, "type", "unknown record type"),
        (_incident(ticket_type="memo"), "incident.ticket_type", "'memo' is not one of"),
        (_incident(priority=True), "incident.priority", "must be an integer"),
        (_incident(root_confidence="high"), "incident.root_confidence", "must be a number"),
        (_incident(flapping=1), "incident.flapping", "true or false"),
        (_incident(closed_at="2026-11-02"), "incident.closed_at", "no time zone"),
        (_incident(opened_at=None), "incident.opened_at", "ISO 8601"),
        (_incident(affected_ci_ids=["a", 1]), "incident.affected_ci_ids", "list of texts"),
        (_incident(custom_fields="x"), "incident.custom_fields", "must be an object"),
        (_incident(title=KeyError), "incident.title", "is required"),
        (_incident(number=-1), "incident.number", "positive"),
        (_incident(sla="gold"), "incident.sla", "newer servicegraph"),
        (_incident(priority_floor=KeyError), "incident.priority_floor", "is required"),
        (_incident(priority_ceiling=KeyError), "incident.priority_ceiling", "is required"),
        (_incident(priority_floor=0), "incident.priority_floor", "from 1 .most urgent. to 5"),
        (_incident(priority_floor="2"), "incident.priority_floor", "must be a priority"),
        (_incident(priority_ceiling=6), "incident.priority_ceiling", "must be a priority"),
        (_incident(priority_ceiling=True), "incident.priority_ceiling", "must be a priority"),
        (
            _incident(priority_floor=2, priority_ceiling=4),
            "incident.priority_ceiling",
            "P4 is less urgent than the floor P2",
        ),
        (
            {**fmt.encode(ALERT), "transitions": ["2026-11-02T09:30:15+00:00", "soon"]},
            "alert.transitions",
            "'soon' is not an ISO 8601 time",
        ),
        ({**fmt.encode(RECORDS[1]), "updated_at": "noon"}, "agent.updated_at", "ISO 8601"),
        ({**fmt.encode(RECORDS[1]), "login": "has space"}, "agent.login", "not a valid key"),
        ({**fmt.encode(RECORDS[4]), "request_types": []}, "service.request_types", "at least"),
        (
            {**fmt.encode(RECORDS[4]), "defaults": {"impact": "huge"}},
            "service.defaults.impact",
            "not one of",
        ),
        ({**fmt.encode(RECORDS[5]), "types": ["memo"]}, "category.types", "not one of"),
        ({**fmt.encode(RECORDS[-1]), "seq": -2}, "worklog.seq", "positive"),
        (_change(approvals={}), "change.approvals", "must be a list of objects"),
        (_change(approvals=["carol"]), "change.approvals[0]", "must be an object"),
        (
            _change(approvals=[_item(CHANGE.approvals[0], decision="maybe")]),
            "change.approvals[0].decision",
            "'maybe' is not one of approved, rejected",
        ),
        (
            _change(tasks=[_item(CHANGE.tasks[0]), _item(CHANGE.tasks[1], done_at="soon")]),
            "change.tasks[1].done_at",
            "ISO 8601",
        ),
        (
            _change(tasks=[_item(CHANGE.tasks[0], number=KeyError)]),
            "change.tasks[0].number",
            "is required",
        ),
        (
            _change(conflict_overrides=[_item(CHANGE.conflict_overrides[0], expires="never")]),
            "change.conflict_overrides[0].expires",
            "newer servicegraph",
        ),
        (_change(status="planned"), "change.status", "'planned' is not one of draft"),
        (_change(change_type="minor"), "change.change_type", "not one of standard"),
        (_change(close_notes=None), "change.close_notes", "must be text"),
        (_change(number=0), "change.number", "positive"),
        (
            {**fmt.encode(FREEZE), "ends_at": fmt.encode(FREEZE)["starts_at"]},
            "freeze_window.ends_at",
            "must be after starts_at",
        ),
        ({**fmt.encode(FREEZE), "ci_ids": "ci-a"}, "freeze_window.ci_ids", "list of texts"),
        ({**fmt.encode(PROBLEM), "status": "done"}, "problem.status", "not one of open"),
    ],
)
def test_a_bad_record_names_its_field(obj: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message) as info:
        fmt.decode(obj)
    assert info.value.field == field


def test_each_section_has_an_increasing_key() -> None:
    for record in RECORDS:
        section = fmt.codec_of(record).section
        key = fmt.order_key(section, record)
        assert isinstance(key, tuple) and key
        assert fmt.key_name(section)
    first, second = RECORDS[7], RECORDS[8]
    assert fmt.order_key("alert_cycle", first) < fmt.order_key("alert_cycle", second)


def test_open_bounds_are_written_as_null_and_read_back() -> None:
    open_ = dataclasses.replace(INCIDENT, priority_floor=None, priority_ceiling=None)
    obj = fmt.encode(open_)
    assert (obj["priority_floor"], obj["priority_ceiling"]) == (None, None)
    assert fmt.decode(obj) == open_
    pinned = dataclasses.replace(INCIDENT, priority_floor=2, priority_ceiling=2)
    assert fmt.decode(fmt.encode(pinned)) == pinned


def _version_3(**changes: Any) -> dict[str, Any]:
    """An incident as a version-3 file holds it: no SLA fields."""
    return {k: v for k, v in _incident(**changes).items() if k not in fmt._SLA}


# what a version-3 incident reads as: answered when acknowledged, nothing else known
AS_VERSION_3 = dataclasses.replace(
    INCIDENT,
    first_response_at=INCIDENT.acknowledged_at,
    reassignment_count=0,
    external_ref=None,
    sla_tier=None,
    service_hours=None,
)


def _version_2(**changes: Any) -> dict[str, Any]:
    """An incident as a version-2 file holds it: no bounds."""
    return {k: v for k, v in _version_3(**changes).items() if not k.startswith("priority_")} | {
        "priority_reason": changes.get("priority_reason", INCIDENT.priority_reason),
        "priority_set_by": changes.get("priority_set_by", INCIDENT.priority_set_by),
    }


# what an older release's routing wrote as an override, and the bounds it stands for
LEGACY_REASONS = [
    ("routing rule 'vpn': at least as urgent as P2 (P5 -> P2)", (2, None)),
    ("routing rule 'lab': at most as urgent as P3 (P1 -> P3)", (None, 3)),
    (
        "routing rule 'lab', 'vpn': at least as urgent as P2 and at most as urgent as P4 "
        "(P5 -> P2)",
        (2, 2),  # the floor won: kept as the ceiling too
    ),
    ("routing rule 'a', 'b': at least as urgent as P1 and at most as urgent as P1 (P3 -> P1)",
     (1, 1)),
    ("routing: something else", (None, None)),
]  # fmt: skip


@pytest.mark.parametrize(("reason", "bounds"), LEGACY_REASONS)
def test_a_version_2_routing_override_becomes_the_bounds_it_names(
    reason: str, bounds: tuple[int | None, int | None]
) -> None:
    record = fmt.DECODERS[2](_version_2(priority_reason=reason, priority_set_by="routing"))
    assert isinstance(record, Incident)
    assert (record.priority_floor, record.priority_ceiling) == bounds
    assert (record.priority_reason, record.priority_set_by) == (None, None), "no override left"
    assert record.priority == INCIDENT.priority, "the priority it had"


def test_a_version_3_incident_was_answered_when_acknowledged() -> None:
    assert fmt.DECODERS[3](_version_3()) == AS_VERSION_3
    with pytest.raises(ValidationFailed, match="newer servicegraph") as info:
        fmt.DECODERS[3](fmt.encode(INCIDENT))
    assert info.value.field == "incident.external_ref", "version 3 knew no SLA fields"
    with pytest.raises(ValidationFailed, match="is required") as missing:
        fmt.DECODERS[4](_version_3())
    assert missing.value.field == "incident.first_response_at", "version 4 requires them"


def test_a_version_2_incident_has_no_bounds_and_keeps_an_agents_override() -> None:
    record = fmt.DECODERS[2](_version_2())
    assert record == dataclasses.replace(AS_VERSION_3, priority_floor=None, priority_ceiling=None)
    with pytest.raises(ValidationFailed, match="newer servicegraph") as info:
        fmt.DECODERS[2](_version_3())
    assert info.value.field == "incident.priority_ceiling", "version 2 knew no bounds"
    with pytest.raises(ValidationFailed, match="is required") as missing:
        fmt.DECODERS[3](_version_2())
    assert missing.value.field == "incident.priority_floor", "version 3 requires them"
    other = fmt.encode(RECORDS[0])
    assert fmt.DECODERS[2](other) == fmt.DECODERS[3](other), "the other records are the same"


# -- version 4: before change and problem management -------------------------------------

_CHANGE_5 = {
    "change_type", "template", "assignee", "risk_reasons", "risk_assessed_at",
    "approvals_required", "approvals", "tasks", "conflict_overrides", "implementation_plan",
    "backout_plan", "actual_start", "actual_end", "close_code", "close_notes",
}  # fmt: skip
_PROBLEM_5 = {
    "assignee", "description", "root_cause", "fix", "fixing_change_id", "resolved_at",
    "closed_at", "resolution",
}  # fmt: skip


def _version_4(record: Any, **changes: Any) -> dict[str, Any]:
    """A change, problem or alert as a version-4 file holds it."""
    added = {Change: _CHANGE_5, Problem: _PROBLEM_5, Alert: {"change_id"}}[type(record)]
    return {k: v for k, v in fmt.encode(record).items() if k not in added} | changes


# what a version-4 change reads as: the fields it had, the new ones at their defaults
AS_VERSION_4 = Change(
    CHANGE.id, CHANGE.number, CHANGE.title, ChangeStatus.DRAFT, ChangeRisk.HIGH,
    CHANGE.created_at, CHANGE.updated_at, CHANGE.created_by, description=CHANGE.description,
    ci_ids=CHANGE.ci_ids, planned_start=CHANGE.planned_start, planned_end=CHANGE.planned_end,
)  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "close_code"),
    [
        ("planned", ChangeStatus.DRAFT, None),
        ("approved", ChangeStatus.SCHEDULED, None),
        ("in_progress", ChangeStatus.IMPLEMENTING, None),
        ("completed", ChangeStatus.CLOSED, "successful"),
        ("failed", ChangeStatus.FAILED, None),
        ("cancelled", ChangeStatus.CANCELLED, None),
    ],
)
def test_a_version_4_change_reads_as_migration_13_maps_it(
    old: str, new: ChangeStatus, close_code: str | None
) -> None:
    obj = _version_4(CHANGE, status=old, risk="high")
    for version in (2, 3, 4):
        record = fmt.DECODERS[version](obj)
        assert record == dataclasses.replace(AS_VERSION_4, status=new, close_code=close_code)


def test_version_4_knew_neither_the_new_statuses_nor_the_new_fields() -> None:
    with pytest.raises(ValidationFailed, match="'draft' is not one of planned") as status:
        fmt.DECODERS[4](_version_4(CHANGE, status="draft"))
    assert status.value.field == "change.status"
    newer: list[tuple[fmt.Record, str]] = [  # the first unknown key, by name
        (CHANGE, "change.actual_end"),
        (PROBLEM, "problem.assignee"),
        (ALERT, "alert.change_id"),
    ]
    for record, field in newer:
        with pytest.raises(ValidationFailed, match="newer servicegraph") as info:
            fmt.DECODERS[4](fmt.encode(record))
        assert info.value.field == field
    with pytest.raises(ValidationFailed, match="unknown record type 'freeze_window'"):
        fmt.DECODERS[4](fmt.encode(FREEZE))
    with pytest.raises(ValidationFailed, match="is required") as missing:
        fmt.decode(_version_4(PROBLEM))
    assert missing.value.field == "problem.assignee", "version 5 requires them"


def test_a_version_4_problem_and_alert_take_the_defaults_of_the_new_fields() -> None:
    assert fmt.DECODERS[4](_version_4(PROBLEM)) == Problem(
        PROBLEM.id, PROBLEM.number, PROBLEM.title, PROBLEM.status, PROBLEM.created_at,
        PROBLEM.updated_at, PROBLEM.root_ci_id, PROBLEM.reason, PROBLEM.signature,
        known_error=PROBLEM.known_error, workaround=PROBLEM.workaround,
    )  # fmt: skip
    assert fmt.DECODERS[3](_version_4(ALERT)) == dataclasses.replace(ALERT, change_id=None)


def test_each_version_has_its_sections() -> None:
    assert fmt.VERSION_SECTIONS[5] == fmt.SECTIONS
    for version in (2, 3, 4):
        assert fmt.VERSION_SECTIONS[version] == tuple(
            s for s in fmt.SECTIONS if s != "freeze_window"
        )
    assert set(fmt.VERSION_SECTIONS) == set(fmt.DECODERS)
