"""Importing tickets from CSV and JSON on a real desk: each row a ticket of the import
channel, routed, numbered and logged as ``create`` does; any bad row refuses the whole
file, every problem named by file:line and field, and nothing is written; a dry run
checks only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.ticketing.model import Channel, Incident, TicketType, WorklogKind
from servicegraph.ticketing.ticket_import import parse_tickets
from tests.ticketing.desk_world import Desk, make_desk


@pytest.fixture()
def desk(tmp_path: Path) -> Iterator[Desk]:
    yield from make_desk(tmp_path)


@pytest.fixture()
def auto_desk(tmp_path: Path) -> Iterator[Desk]:
    yield from make_desk(tmp_path, auto_assign=True)


def load(
    desk: Desk, path: Path, *, dry_run: bool = False
) -> tuple[list[Incident], list[ValidationFailed]]:
    """What ``servicegraph ticket import`` does: read, then check (and create) as one."""
    rows = parse_tickets(path, resolve_ci=desk.services.catalog.resolve)
    errors = list(rows.errors)
    with change_context("alice"):
        try:
            made = desk.tickets.create_many(
                rows.tickets, dry_run=dry_run or bool(errors), items=rows.items
            )
        except ValidationErrors as exc:
            return [], errors + exc.errors
    return ([] if errors else made), errors


HEADER = (
    "type,title,requester,category,service,impact,urgency,priority,priority_reason,"
    "assignment_group,assignee,affected_ci_ids,tags,custom.outage_minutes,custom.laptop_model"
)
GOOD_CSV = "\n".join(
    [
        HEADER,
        "incident,Uplink flapping,jane@acme.com,,,high,high,,,,,acc-1;core-1,wan;uplink,30,",
        'incident,"VPN drops, again",c-joe,network/vpn,,,,,,,,,,,',
        "service_request,New laptop,c-joe,hardware/laptop,,,,,,service-desk,frank,,,,t14",
        "incident,Payroll slow,,,payroll,,,3,agreed with finance,,,,,,",
    ]
)


def write(tmp_path: Path, name: str, text: str, *, bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((("\ufeff" if bom else "") + text + "\n").encode("utf-8"))
    return path


def test_a_csv_file_with_a_bom_and_lists_raises_a_routed_ticket_per_row(
    desk: Desk, tmp_path: Path
) -> None:
    made, errors = load(desk, write(tmp_path, "tickets.csv", GOOD_CSV, bom=True))
    assert errors == []
    uplink, vpn, laptop, payroll = made
    assert [t.number for t in made] == [1, 2, 3, 4]
    assert {t.channel for t in made} == {Channel.IMPORT}
    assert uplink.affected_ci_ids == [desk.ids["acc-1"], desk.ids["core-1"]]
    assert uplink.assignment_group == "network"  # acc-1's support group comes first
    assert uplink.tags[:2] == ["wan", "uplink"] and "vip" in uplink.tags
    assert (uplink.priority, uplink.custom_fields) == (1, {"outage_minutes": 30})
    assert uplink.organisation == "acme"
    assert (vpn.title, vpn.assignment_group, vpn.routed_by) == (
        "VPN drops, again",
        "network",
        "vpn",
    )
    assert vpn.custom_fields == {"vpn_profile": "staff"}  # the field's default
    assert laptop.type is TicketType.SERVICE_REQUEST
    assert (laptop.assignee, laptop.custom_fields) == ("frank", {"laptop_model": "t14"})
    assert (payroll.priority, payroll.priority_reason) == (3, "agreed with finance")
    assert payroll.assignment_group == "dbas"  # the service's default group
    stored = desk.tickets.get_many(t.id for t in made)
    assert [stored[t.id].number for t in made] == [1, 2, 3, 4]
    created = desk.history(uplink.id)[0]
    assert created.kind is WorklogKind.CREATED and "via import" in created.text
    assert created.actor == "alice"


def test_a_json_list_raises_the_same_tickets(desk: Desk, tmp_path: Path) -> None:
    rows = [
        {"type": "incident", "title": "Uplink flapping", "requester": "jane@acme.com",
         "affected_ci_ids": ["acc-1"], "tags": ["wan"], "custom_fields": {"outage_minutes": 5}},
        {"type": "service_request", "title": "New laptop", "category": "hardware/laptop",
         "assignment_group": "service-desk", "custom_fields": {"laptop_model": "x1"},
         "description": None, "tags": "a; b"},
    ]  # fmt: skip
    path = write(tmp_path, "tickets.json", json.dumps(rows, indent=2))
    made, errors = load(desk, path)
    assert errors == []
    assert [(t.title, t.channel, t.assignment_group) for t in made] == [
        ("Uplink flapping", Channel.IMPORT, "network"),
        ("New laptop", Channel.IMPORT, "service-desk"),
    ]
    assert made[0].custom_fields == {"outage_minutes": 5}
    assert made[1].tags == ["a", "b"]


# (case, the row's cells after "type,title,", the field named)
HEADER_BAD = "type,title,requester,service,category,impact,priority,priority_reason,assignee," \
    "assignment_group,affected_ci_ids,tags,custom.outage_minutes"  # fmt: skip
BAD_ROWS: list[tuple[str, str, str]] = [
    ("no type", ",Broken,,,,,,,,,,,", "type"),
    ("unknown type", "problem,Broken,,,,,,,,,,,", "type"),
    ("no title", "incident,,,,,,,,,,,,", "title"),
    ("unknown contact", "incident,Broken,nobody@acme.com,,,,,,,,,,", "requester"),
    ("unknown service", "incident,Broken,,fax,,,,,,,,,", "service"),
    ("unknown category", "incident,Broken,,,network/wifi,,,,,,,,", "category"),
    ("unknown impact", "incident,Broken,,,,huge,,,,,,,", "impact"),
    ("priority not a number", "incident,Broken,,,,,urgent,why,,,,,", "priority"),
    ("override without reason", "incident,Broken,,,,,1,,,,,,", "priority_reason"),
    ("unknown agent", "incident,Broken,,,,,,,nobody-such-user-xyz,,,,", "assignee"),
    ("agent outside the group", "incident,Broken,,,,,,,bob,dbas,,,", "assignee"),
    ("unknown group", "incident,Broken,,,,,,,,helpdesk,,,", "assignment_group"),
    ("unknown CI", "incident,Broken,,,,,,,,,core-1;no-such-ci,,", "affected_ci_ids.1"),
    ("custom field of the wrong type", "incident,Broken,,,,,,,,,,,lots",
     "custom_fields.outage_minutes"),
    ("too many cells", "incident,Broken,,,,,,,,,,,,extra", ""),
]  # fmt: skip


@pytest.mark.parametrize(("row", "field"), [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS])
def test_a_bad_row_refuses_the_file_naming_its_line_and_field(
    desk: Desk, tmp_path: Path, row: str, field: str
) -> None:
    good = "incident,Fine,,,,,,,,,,,"
    path = write(tmp_path, "t.csv", "\n".join([HEADER_BAD, good, row, good]))
    before = desk.snapshot()
    made, errors = load(desk, path)
    assert made == []
    assert [(e.item, e.field or "") for e in errors] == [(f"{path}:3", field)], errors
    assert desk.snapshot() == before


def test_every_bad_row_is_listed(desk: Desk, tmp_path: Path) -> None:
    rows = [HEADER_BAD, "problem,A,,,,,,,,,,,", "incident,B,,,,,,,,,,,", "incident,,,fax,,,,,,,,,",
            "incident,D,,,,,,,,,,,lots"]  # fmt: skip
    path = write(tmp_path, "t.csv", "\n".join(rows))
    before = desk.snapshot()
    made, errors = load(desk, path)
    assert made == []
    assert sorted((e.item, e.field) for e in errors) == [
        (f"{path}:2", "type"),
        (f"{path}:4", "title"),
        (f"{path}:5", "custom_fields.outage_minutes"),
    ]
    assert str(errors[0]).startswith(f"{path}:2: field 'type': ")
    assert desk.snapshot() == before


@pytest.mark.parametrize(
    ("name", "text", "item", "field"),
    [
        ("t.csv", "type,title,colour\nincident,A,red", "t.csv:1", "colour"),
        ("t.csv", "type,title,title\nincident,A,B", "t.csv:1", "title"),
        ("t.csv", "type,title", "t.csv", None),
        ("t.json", '{"type": "incident"}', "t.json", None),
        ("t.json", "[{", "t.json", None),
        (
            "t.json",
            '[\n  {"type": "incident", "title": "A"},\n  {"type": "incident",\n'
            '   "title": "B", "channel": "phone"}\n]',
            "t.json:3",
            "channel",
        ),
        ("t.json", '[\n  {"type": "incident", "title": "A"},\n  "B"\n]', "t.json:3", None),
        ("t.json", '[{"type": "incident", "title": "A", "tags": [1]}]', "t.json:1", "tags"),
        ("t.json", '[{"type": "incident", "title": 7}]', "t.json:1", "title"),
        (
            "t.json",
            '[{"type": "incident", "title": "A", "custom_fields": [1]}]',
            "t.json:1",
            "custom_fields",
        ),
        ("t.txt", "type,title\nincident,A", "t.txt", None),
    ],
)
def test_a_file_that_does_not_read_is_refused_naming_where(
    desk: Desk, tmp_path: Path, name: str, text: str, item: str, field: str | None
) -> None:
    before = desk.snapshot()
    made, errors = load(desk, write(tmp_path, name, text))
    assert made == []
    assert [(e.item, e.field) for e in errors] == [(str(tmp_path / item), field)], errors
    assert desk.snapshot() == before


def test_a_dry_run_checks_every_row_and_writes_nothing(desk: Desk, tmp_path: Path) -> None:
    path = write(tmp_path, "tickets.csv", GOOD_CSV)
    before = desk.snapshot()
    checked, errors = load(desk, path, dry_run=True)
    assert errors == [] and len(checked) == 4
    assert {t.number for t in checked} == {0}
    assert checked[1].assignment_group == "network"
    assert desk.snapshot() == before
    made, _ = load(desk, path)
    assert [t.number for t in made] == [1, 2, 3, 4]


def test_automatic_assignment_spreads_an_import_over_the_group(
    auto_desk: Desk, tmp_path: Path
) -> None:
    rows = ["type,title,assignment_group"] + [f"incident,Link {i},noc" for i in range(4)]
    made, errors = load(auto_desk, write(tmp_path, "t.csv", "\n".join(rows)))
    assert errors == []
    assert sorted(t.assignee or "" for t in made) == ["alice", "alice", "bob", "bob"]
