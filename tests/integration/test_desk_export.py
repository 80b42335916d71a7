"""The desk in `servicegraph export` / `import --from-export` (format version 5): a seeded
desk (tests/integration/desk_seed.py) moves from one SQLite data directory to an empty one
and reads back identical, table by table, through every port listing and through the CLI;
new tickets continue the numbering; routing's priority bounds move with the tickets and
keep bounding them; a version-4 file (before change and problem management: its changes'
statuses mapped as migration 13 maps them), a version-2 file (before the bounds) and a
version-1 file (the graph alone) still restore; a cut-off or damaged file is refused
naming the line and field, and a target that already holds any of the desk is refused,
with nothing written."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cli import app
from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.errors import StoreError, ValidationFailed
from servicegraph.cmdb.export import GRAPH, export_graph
from servicegraph.config import Settings
from servicegraph.runtime.export import Stores, export_all, import_all, read_all
from servicegraph.ticketing import export_format as desk_format
from servicegraph.ticketing.change_model import ChangeStatus
from servicegraph.ticketing.intake import NewTicket
from servicegraph.ticketing.model import ProblemStatus, TicketType, WorklogKind
from servicegraph.ticketing.people import Organisation
from servicegraph.ticketing.ports import (
    ChangeFilter,
    IncidentFilter,
    PeopleBatch,
    ProblemFilter,
    TicketOrder,
)
from servicegraph.ticketing.tickets import TicketChanges
from tests.contract.neo4j_stores import fresh_graph
from tests.integration import test_export
from tests.integration.desk_seed import seed
from tests.neo4j_server import Neo4jAddress
from tests.ticketing.desk_world import Desk, make_desk


def tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows (``test_export.tables``) but the event inbox's bookkeeping: the
    keys of the events correlated and the cursor into the source's inbox file, which is not
    exported (a new data directory starts an empty inbox)."""
    content = test_export.tables(path)
    content.pop("inbox_seen", None)
    content["meta"] = [r for r in content["meta"] if r[0] != "inbox_cursor"]
    return content


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[Desk, dict[str, str]]]:
    for desk in make_desk(tmp_path / "source"):
        yield desk, seed(desk)


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Services]:
    services = bootstrap(Settings(data_dir=tmp_path / "target"))
    yield services
    services.close()


def export_file(services: Services, path: Path) -> Path:
    with path.open("w", encoding="utf-8") as out:
        export_all(Stores.of(services), out)
    return path


def desk_view(services: Services, ci_ids: list[str]) -> dict[str, Any]:
    """Everything the desk answers, through the ports and services: every listing."""
    store = services.tickets
    newest, after = [], None
    while page := store.find_incidents(IncidentFilter(limit=2, after=after)):
        newest += page
        after = (page[-1].number,)
    queue = store.find_incidents(IncidentFilter(order=TicketOrder.QUEUE, open=True, limit=100))
    problems = store.find_problems(ProblemFilter(limit=100))
    changes = store.find_changes(ChangeFilter(limit=100))
    ids = [i.id for i in newest] + [p.id for p in problems] + [c.id for c in changes]
    periods = [c.window for c in changes if c.window is not None]
    alerts = store.alerts_on(ci_ids) + store.unmapped_alerts(100)
    directory = services.directory
    return {
        "newest": newest,
        "queue": queue,
        "problems": problems,
        "changes": changes,
        "touching": [store.changes_touching(*period) for period in periods],
        "freeze_windows": store.freeze_windows(),
        "fixed_by": store.problems_fixed_by(c.id for c in changes),
        "known_errors": store.known_errors_for(ci_ids, [p.signature for p in problems]),
        "worklog": store.worklog(ids),
        "links": store.links_of(ids),
        "alerts": alerts,
        "incident_alerts": store.incident_alerts(ids),
        "cycles": store.alert_cycles(a.fingerprint for a in alerts),
        "open_counts": store.open_counts(directory.directory().agents),
        "counts": store.counts(),
        "directory": directory.directory(),
        "catalogue": directory.catalogue(),
        "records": dataclasses.replace(directory.store.export_records(), version=0),
        "timelines": [services.desk.timeline.page(ci, limit=500).entries for ci in ci_ids],
        "graph": services.catalog.counts(),
    }


def test_a_seeded_desk_reads_back_identical_and_numbering_continues(
    source: tuple[Desk, dict[str, str]], target: Services, tmp_path: Path
) -> None:
    desk, ids = source
    path = export_file(desk.services, tmp_path / "desk.jsonl")
    checked = read_all(path)
    assert checked.version == 5
    counts = checked.counts
    assert counts["incident"] == 6 and counts["problem"] == 1 and counts["change"] == 1
    assert counts["freeze_window"] == 1
    assert counts["alert"] == 2 and counts["alert_cycle"] == 5 and counts["problem_incident"] == 2
    assert counts["ticket_link"] == 3 and counts["worklog"] > 20
    assert counts["agent"] == 7 and counts["contact"] == 4 and counts["category"] == 4

    restored = import_all(Stores.of(target), checked)
    assert restored == counts

    before = tables(desk.services.settings.sqlite_file)
    after = tables(target.settings.sqlite_file)
    assert set(after) == set(before)
    for name in before:
        assert after[name] == before[name], f"table {name} differs"

    ci_ids = [desk.ids[k] for k in ("core-1", "db-1", "acc-1")]
    assert desk_view(target, ci_ids) == desk_view(desk.services, ci_ids)

    # a second export of the copy is the same file, but for the time it was written
    again = export_file(target, tmp_path / "again.jsonl").read_text().splitlines()
    first = path.read_text().splitlines()
    assert len(again) == len(first)
    assert again[1:] == first[1:]
    header, header_again = json.loads(first[0]), json.loads(again[0])
    assert {k: v for k, v in header.items() if k != "exported_at"} == {
        k: v for k, v in header_again.items() if k != "exported_at"
    }

    # new work continues after the restored numbers and worklog
    last_seq = max(e.seq for log in target.tickets.worklog(ids.values()).values() for e in log)
    with target.tickets.unit() as unit:
        assert unit.next_incident_number() == desk.services.tickets.last_incident_number() + 1
        assert unit.next_problem_number() == 2 and unit.next_change_number() == 2
    target.desk.tickets.clock = desk.clock
    with change_context("alice"):
        ticket = target.desk.tickets.create(
            NewTicket(type=TicketType.INCIDENT, title="After the move", requester="c-jane")
        )
    assert ticket.number == checked.counts["incident"] + 1
    created = target.tickets.worklog([ticket.id])[ticket.id]
    assert created[0].kind is WorklogKind.CREATED and created[0].seq > last_seq


def neo4j_services(address: Neo4jAddress, data_dir: Path) -> Services:
    """Services over the session's Neo4j, emptied first (the desk there too)."""
    fresh_graph(address).close()
    return bootstrap(Settings(data_dir=data_dir, **address.settings()))


def test_a_desk_moves_sqlite_to_neo4j_to_sqlite_identical(
    source: tuple[Desk, dict[str, str]], neo4j: Neo4jAddress, tmp_path: Path
) -> None:
    """Every record of the desk and the graph survives Neo4j: the export of the Neo4j copy
    is the SQLite export line for line, the Neo4j copy answers every listing as the source
    does, and a SQLite data directory restored from it holds the source's very rows."""
    desk, _ = source
    first = export_file(desk.services, tmp_path / "from-sqlite.jsonl")
    in_neo4j = neo4j_services(neo4j, tmp_path / "neo4j-data")
    try:
        checked = read_all(first)
        assert import_all(Stores.of(in_neo4j), checked) == checked.counts
        ci_ids = [desk.ids[k] for k in ("core-1", "db-1", "acc-1")]
        assert desk_view(in_neo4j, ci_ids) == desk_view(desk.services, ci_ids)
        second = export_file(in_neo4j, tmp_path / "from-neo4j.jsonl")
    finally:
        in_neo4j.close()
    lines, again = first.read_text().splitlines(), second.read_text().splitlines()
    assert again[1:] == lines[1:]
    back = bootstrap(Settings(data_dir=tmp_path / "back"))
    try:
        assert import_all(Stores.of(back), read_all(second)) == checked.counts
        before = tables(desk.services.settings.sqlite_file)
        after = tables(back.settings.sqlite_file)
        assert set(after) == set(before)
        for name in before:
            assert after[name] == before[name], f"table {name} differs"
    finally:
        back.close()


def test_the_restore_keeps_what_matters_to_people(
    source: tuple[Desk, dict[str, str]], target: Services, tmp_path: Path
) -> None:
    """Restored three records per unit (so every section spans units and units hold the
    end of one section and the start of the next): every listing as in the source, and
    spot checks of the fields a desk user reads."""
    desk, ids = source
    checked = read_all(export_file(desk.services, tmp_path / "d.jsonl"))
    import_all(Stores.of(target), checked, commit_every=3)
    ci_ids = [desk.ids[k] for k in ("core-1", "db-1", "acc-1")]
    assert desk_view(target, ci_ids) == desk_view(desk.services, ci_ids)
    t = target.tickets.get_incidents(ids.values())
    vpn = t[ids["vpn"]]
    assert vpn.custom_fields == {"vpn_profile": "contractor"}
    assert vpn.tags == ["remote", "urgent"] and vpn.reopen_count == 1
    assert vpn.requester == "c-jane" and vpn.organisation == "acme"
    assert vpn.routed_by and vpn.affected_ci_ids == [desk.ids["core-1"]]
    assert (vpn.priority_floor, vpn.priority_ceiling) == (2, None), "rule 'vpn': at least P2"
    assert (t[ids["again"]].priority, t[ids["again"]].priority_floor) == (2, 2)
    assert t[ids["payslip"]].priority_reason == "the CEO's payslip"
    assert t[ids["laptop"]].pending_reason == "awaiting_vendor"
    log = target.tickets.worklog([ids["vpn"]])[ids["vpn"]]
    assert log == desk.services.tickets.worklog([ids["vpn"]])[ids["vpn"]]
    assert any(e.field == "tags" and e.old and e.new for e in log)
    (problem,) = target.tickets.get_problems([ids["problem"]]).values()
    assert sorted(problem.incident_ids) == sorted([ids["vpn"], ids["payslip"]])
    assert desk.services.tickets.get_problems([problem.id])[problem.id] == problem
    (change,) = target.tickets.get_changes([ids["change"]]).values()
    assert change.ci_ids == [desk.ids["core-1"], desk.ids["db-1"]]
    assert desk.services.tickets.get_changes([change.id])[change.id] == change
    assert [a.approver for a in change.approvals] == ["alice", "gina"]
    assert [t.title for t in change.tasks] == ["MTU 9000 on core-1", "check db-1 replication"]
    assert [o.other for o in change.conflict_overrides] == ["frz-month-end"]
    (window,) = target.tickets.freeze_windows()
    assert window.id == "frz-month-end" and window.ci_ids == (desk.ids["db-1"],)
    assert [p.id for p in target.tickets.problems_fixed_by([change.id])] == [problem.id]
    records = target.directory.store.export_records()
    stamps = {s.record.login: s.updated_at for s in records.agents}
    assert stamps["gina"] > stamps["alice"]  # each record's own time
    assert records.version >= desk.services.directory.store.version()


def test_a_version_1_file_still_restores(
    source: tuple[Desk, dict[str, str]], target: Services, tmp_path: Path
) -> None:
    desk, _ = source
    path = tmp_path / "graph-v1.jsonl"
    with path.open("w", encoding="utf-8") as out:
        export_graph(desk.services.store, out)
    checked = read_all(path)
    assert checked.version == 1 and "incident" not in checked.counts
    # the graph alone: a target whose desk holds people takes it
    target.directory.store.save_people(
        PeopleBatch(organisations=(Organisation("o", "Org"),)), desk.clock.now
    )
    counts = import_all(Stores.of(target), checked)
    assert counts == checked.counts
    before, after = tables(desk.services.settings.sqlite_file), tables(target.settings.sqlite_file)
    for name in ("ci", "relationship", "history", "conflict", "source_key", "ci_sighting"):
        assert after[name] == before[name], name
    assert after["incident"] == [] and after["worklog"] == []


# what the release before wrote when a routing rule's bound moved a priority
LEGACY_ROUTING = "routing rule 'vpn': at least as urgent as P2 (P5 -> P2)"


# a change's status as a version-4 file held it, from the one it has now
V4_STATUS = {
    "draft": "planned",
    "scheduled": "approved",
    "implementing": "in_progress",
    "review": "in_progress",  # still being done, in the words of then
    "closed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
}


def as_version_4(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A version-5 export as the release before change and problem management wrote it:
    version 4, no freeze windows (nor their count), changes in the statuses of then
    without the new fields, problems without their analysis, alerts without a change."""
    fields = {
        t: {key for _, key, _, _ in desk_format.CODECS[t].fields}
        - {key for _, key, _, _ in old.fields}
        for t, old in (
            ("change", desk_format.CHANGE_V4),
            ("problem", desk_format.PROBLEM_V4),
            ("alert", desk_format.ALERT_V4),
        )
    }
    old = []
    for obj in objs:
        kind = obj.get("type")
        if kind == "freeze_window":
            continue
        if kind in fields:
            obj = {k: v for k, v in obj.items() if k not in fields[kind]}
        if kind == "change":
            obj["status"] = V4_STATUS[obj["status"]]
        if kind == "end":
            obj = obj | {"counts": {k: n for k, n in obj["counts"].items() if k != "freeze_window"}}
        old.append(obj)
    old[0] = old[0] | {"version": 4}
    return old


def as_version_2(objs: list[dict[str, Any]], routed_overrides: set[str]) -> list[dict[str, Any]]:
    """A version-5 export as the release before the bounds wrote it: version 2, incidents
    without the bounds and the SLA fields, and those of ``routed_overrides`` with their
    floor as a routing override (and what version 4 lacked, ``as_version_4``)."""
    old = []
    dropped = ("priority_floor", "priority_ceiling", *desk_format._SLA)
    for obj in as_version_4(objs):
        if obj.get("type") == "incident":
            obj = {k: v for k, v in obj.items() if k not in dropped}
            if obj["id"] in routed_overrides:
                obj |= {"priority_reason": LEGACY_ROUTING, "priority_set_by": "routing"}
        old.append(obj)
    old[0] = old[0] | {"version": 2}
    return old


def test_a_version_2_file_restores_its_routing_overrides_as_bounds(
    source: tuple[Desk, dict[str, str]], target: Services, tmp_path: Path
) -> None:
    desk, ids = source
    objs = lines_of(export_file(desk.services, tmp_path / "v3.jsonl"))
    path = write(tmp_path / "v2.jsonl", as_version_2(objs, {ids["vpn"]}))
    checked = read_all(path)
    assert checked.version == 2
    import_all(Stores.of(target), checked)
    restored = target.tickets.get_incidents(ids.values())
    vpn = restored[ids["vpn"]]
    assert (vpn.priority_floor, vpn.priority_ceiling) == (2, None), "its reason's floor"
    assert (vpn.priority_reason, vpn.priority_set_by) == (None, None), "no override any more"
    assert restored[ids["again"]].priority_floor is None, "a bound version 2 did not keep"
    payslip = restored[ids["payslip"]]
    assert (payslip.priority, payslip.priority_reason, payslip.priority_set_by) == (
        1, "the CEO's payslip", "alice",
    ), "an agent's override is one"  # fmt: skip
    source_tickets = desk.services.tickets.get_incidents(ids.values())
    assert {k: v.priority for k, v in restored.items()} == {
        k: v.priority for k, v in source_tickets.items()
    }, "every priority as it was"

    # the floor keeps bounding the restored ticket: the matrix's P4 stays a P2
    target.desk.tickets.clock = desk.clock
    with change_context("alice"):
        vpn = target.desk.tickets.update(vpn.id, TicketChanges(impact="low", urgency="medium"))
    assert vpn.priority == 2
    with change_context("alice"):
        vpn = target.desk.tickets.update(vpn.id, TicketChanges(impact="high", urgency="high"))
    assert vpn.priority == 1, "and does not hold it there"

    # a version-2 file that carries the bounds is from no release: refused, naming them
    bounded = as_version_2(objs, set())
    n = first_of(bounded, "incident")
    bounded[n] |= {"priority_floor": 2}
    bad = write(tmp_path / "bad.jsonl", bounded)
    with pytest.raises(ValidationFailed, match="newer servicegraph") as info:
        read_all(bad)
    assert (info.value.item, info.value.field) == (f"{bad}:{n + 1}", "incident.priority_floor")


@pytest.mark.parametrize(
    ("status", "expected", "close_code"),
    [
        (ChangeStatus.CLOSED, ChangeStatus.CLOSED, "successful"),
        (ChangeStatus.IMPLEMENTING, ChangeStatus.IMPLEMENTING, None),
        (ChangeStatus.DRAFT, ChangeStatus.DRAFT, None),
        (ChangeStatus.SCHEDULED, ChangeStatus.SCHEDULED, None),
    ],
)
def test_a_version_4_file_restores_its_changes_as_migration_13_maps_them(
    source: tuple[Desk, dict[str, str]],
    target: Services,
    tmp_path: Path,
    status: ChangeStatus,
    expected: ChangeStatus,
    close_code: str | None,
) -> None:
    desk, ids = source
    with desk.services.tickets.unit() as unit:
        (change,) = unit.load_changes([ids["change"]]).values()
        unit.save_change(dataclasses.replace(change, status=status, close_code=None))
    objs = lines_of(export_file(desk.services, tmp_path / "v5.jsonl"))
    checked = read_all(write(tmp_path / "v4.jsonl", as_version_4(objs)))
    assert checked.version == 4 and "freeze_window" not in checked.counts
    import_all(Stores.of(target), checked)
    (restored,) = target.tickets.get_changes([ids["change"]]).values()
    assert (restored.status, restored.close_code) == (expected, close_code)
    assert (restored.approvals, restored.tasks, restored.conflict_overrides) == ([], [], [])
    assert (restored.assignee, restored.actual_start, restored.backout_plan) == (None, None, "")
    assert restored.ci_ids == change.ci_ids and restored.planned_start == change.planned_start
    (problem,) = target.tickets.get_problems([ids["problem"]]).values()
    assert problem.status is ProblemStatus.KNOWN_ERROR and problem.fixing_change_id is None
    assert target.tickets.freeze_windows() == []
    # a version-4 file with a freeze window is from no release
    bad = as_version_4(objs)
    window = objs[first_of(objs, "freeze_window")]
    n = first_of(bad, "change")
    bad.insert(n, window)
    bad[-1]["counts"]["freeze_window"] = 1
    path = write(tmp_path / "bad.jsonl", bad)
    with pytest.raises(ValidationFailed, match="unknown record type 'freeze_window'") as info:
        read_all(path)
    assert info.value.item == f"{path}:{n + 1}"


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write(path: Path, objs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs))
    return path


def first_of(objs: list[dict[str, Any]], kind: str, **having: Any) -> int:
    return next(
        n
        for n, o in enumerate(objs)
        if o.get("type") == kind and all(o.get(k) == v for k, v in having.items())
    )


@pytest.fixture
def exported(source: tuple[Desk, dict[str, str]], tmp_path: Path) -> Path:
    return export_file(source[0].services, tmp_path / "good.jsonl")


def _set(key: str, value: Any) -> Any:
    return lambda o: o | {key: value}


def _drop(key: str) -> Any:
    return lambda o: {k: v for k, v in o.items() if k != key}


def _bounds(floor: int, ceiling: int) -> Any:
    return lambda o: o | {"priority_floor": floor, "priority_ceiling": ceiling}


# (record type, change, the field named)
BAD_RECORDS = [
    ("incident", _set("priority", "high"), "incident.priority"),
    ("incident", _set("status", "zombie"), "incident.status"),
    ("incident", _set("opened_at", "2026-11-02T09:00:00"), "incident.opened_at"),
    ("incident", _set("opened_at", "yesterday"), "incident.opened_at"),
    ("incident", _drop("channel"), "incident.channel"),
    ("incident", _set("colour", "red"), "incident.colour"),
    ("incident", _set("tags", "remote"), "incident.tags"),
    ("incident", _set("custom_fields", []), "incident.custom_fields"),
    ("incident", _set("number", 0), "incident.number"),
    ("incident", _drop("priority_floor"), "incident.priority_floor"),
    ("incident", _set("priority_ceiling", 0), "incident.priority_ceiling"),
    ("incident", _bounds(1, 3), "incident.priority_ceiling"),  # no priority between them
    ("worklog", _set("seq", 0), "worklog.seq"),
    ("worklog", _set("kind", "poke"), "worklog.kind"),
    ("worklog", _set("old", 5), "worklog.old"),
    ("agent", _set("email", "not an address"), "agent.email"),
    ("agent", _set("roles", ["boss"]), "agent.roles"),
    ("group", _set("members", "alice"), "group.members"),
    ("contact", _set("vip", "yes"), "contact.vip"),
    ("organisation", _set("domains", ["not a domain"]), "organisation.domains"),
    ("service", _set("defaults", {"priority": 9}), "service.defaults.priority"),
    ("service", _set("defaults", {"colour": 1}), "service.defaults"),
    ("category", _set("path", "Bad Path"), "category.path"),
    ("alert", _set("severity", "loud"), "alert.severity"),
    ("alert", _set("labels", {"a": 1}), "alert.labels"),
    ("alert_cycle", _drop("fired_at"), "alert_cycle.fired_at"),
    ("problem_incident", _set("linked_at", "soon"), "problem_incident.linked_at"),
    ("change", _set("risk", "extreme"), "change.risk"),
    ("change", _set("status", "completed"), "change.status"),  # a status of version 4
    ("change", _set("approvals", [{"approver": "alice"}]), "change.approvals[0].decision"),
    ("change", _set("tasks", [{"number": "one"}]), "change.tasks[0].number"),
    ("change", _drop("conflict_overrides"), "change.conflict_overrides"),
    ("freeze_window", _set("ends_at", "2000-01-01T00:00:00+00:00"), "freeze_window.ends_at"),
    ("freeze_window", _set("ci_ids", "db-1"), "freeze_window.ci_ids"),
    ("alert", _set("change_id", 7), "alert.change_id"),
    ("problem", _drop("root_cause"), "problem.root_cause"),
    ("ticket_link", _set("kind", "cousin_of"), "ticket_link.kind"),
    ("problem", _set("status", None), "problem.status"),
]


@pytest.mark.parametrize(("kind", "change", "field"), BAD_RECORDS, ids=[c[2] for c in BAD_RECORDS])
def test_a_bad_record_is_refused_naming_its_line_and_field(
    exported: Path, tmp_path: Path, kind: str, change: Any, field: str
) -> None:
    objs = lines_of(exported)
    n = first_of(objs, kind)
    objs[n] = change(objs[n])
    path = write(tmp_path / "bad.jsonl", objs)
    with pytest.raises(ValidationFailed) as info:
        read_all(path)
    assert (info.value.item, info.value.field) == (f"{path}:{n + 1}", field)


def test_records_out_of_order_or_twice_are_refused(exported: Path, tmp_path: Path) -> None:
    objs = lines_of(exported)
    cases: list[tuple[list[dict[str, Any]], str, str]] = []
    # an incident twice (the trailer's counts made to agree)
    twice = list(objs)
    n = first_of(twice, "incident")
    twice.insert(n + 1, twice[n])
    twice[-1] = {"type": "end", "counts": twice[-1]["counts"] | {"incident": 7}}
    cases.append((twice, "increasing order of number", "incident"))
    # two worklog entries swapped
    swapped = list(objs)
    n = first_of(swapped, "worklog")
    swapped[n], swapped[n + 1] = swapped[n + 1], swapped[n]
    cases.append((swapped, "increasing order of seq", "worklog"))
    # a desk record among the graph's
    early = list(objs)
    early.insert(1, early.pop(first_of(early, "agent")))
    cases.append((early, "sections must come in the order", "ci"))
    for bad, message, _field in cases:
        path = write(tmp_path / "bad.jsonl", bad)
        with pytest.raises(ValidationFailed, match=message):
            read_all(path)


@pytest.mark.parametrize(
    ("header", "message", "field"),
    [
        ({"directory_version": None}, "directory_version", "directory_version"),
        ({"directory_version": -1}, "directory_version", "directory_version"),
        ({"version": 6}, "upgrade servicegraph", None),
        ({"version": True}, "reads version 1, 2, 3, 4, 5", None),
    ],
)
def test_a_bad_header_is_refused(
    exported: Path, tmp_path: Path, header: dict[str, Any], message: str, field: str | None
) -> None:
    objs = lines_of(exported)
    objs[0] |= header
    path = write(tmp_path / "bad.jsonl", objs)
    with pytest.raises(ValidationFailed, match=message) as info:
        read_all(path)
    assert info.value.field == field and info.value.item == f"{path}:1"


@pytest.mark.parametrize("cut", ["trailer", "mid-line", "a worklog entry"])
def test_a_truncated_file_is_refused_with_nothing_written(
    exported: Path, target: Services, tmp_path: Path, cut: str
) -> None:
    text = exported.read_text()
    lines = text.splitlines(keepends=True)
    if cut == "trailer":
        damaged = "".join(lines[:-1])
        message = "incomplete"
    elif cut == "mid-line":
        damaged = text[: len(text) * 2 // 3]
        message = "not JSON|incomplete"
    else:
        objs = lines_of(exported)
        objs.pop(first_of(objs, "worklog"))
        damaged = "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs)
        message = "promises"
    path = tmp_path / "damaged.jsonl"
    path.write_text(damaged)
    empty = tables(target.settings.sqlite_file)
    with pytest.raises(ValidationFailed, match=message):
        import_all(Stores.of(target), read_all(path))
    assert tables(target.settings.sqlite_file) == empty


def test_a_target_holding_any_of_the_desk_is_refused_with_nothing_written(
    exported: Path, target: Services, source: tuple[Desk, dict[str, str]]
) -> None:
    checked = read_all(exported)
    target.directory.store.save_people(
        PeopleBatch(organisations=(Organisation("o", "Org"),)), source[0].clock.now
    )
    held = tables(target.settings.sqlite_file)
    with pytest.raises(StoreError, match=r"not empty \(it holds organisations: 1\)"):
        import_all(Stores.of(target), checked)
    assert tables(target.settings.sqlite_file) == held


class FailingTickets:
    """The target's ticket store, whose ``fail_at``-th unit fails (a lost disk)."""

    def __init__(self, inner: Any, fail_at: int) -> None:
        self.inner, self.fail_at, self.units = inner, fail_at, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def unit(self) -> Any:
        self.units += 1
        if self.units == self.fail_at:
            raise StoreError("disk I/O error")
        return self.inner.unit()


def test_a_failure_part_way_says_what_stays(exported: Path, target: Services) -> None:
    checked = read_all(exported)
    stores = Stores.of(target)
    graph = sum(checked.counts[k] for k in GRAPH.sections)
    people = sum(checked.counts[k] for k in desk_format.DIRECTORY_SECTIONS)
    failing = Stores(stores.graph, FailingTickets(stores.tickets, 3), stores.directory)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="disk I/O error; the import stopped after") as info:
        import_all(failing, checked, commit_every=5)
    # the graph, the directory and two units of five tickets' records stay, and are said to
    assert f"stopped after {graph + people + 10:,} records" in str(info.value)
    with target.tickets.snapshot() as view:  # alerts and cycles: the first two units
        assert view.counts()["alerts"] == checked.counts["alert"]
        assert view.counts()["incidents"] < checked.counts["incident"]
    with pytest.raises(StoreError, match="not empty"):
        import_all(stores, checked)


# -- the CLI: export, then import into a new DATA_DIR -------------------------------------------


def run(cli: CliRunner, data: Path, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, list(args), env={"SERVICEGRAPH_DATA_DIR": str(data)})
    assert result.exit_code == code, result.output + result.stderr
    return result.stdout


def listings(cli: CliRunner, data: Path, ids: dict[str, str]) -> list[str]:
    """Every listing the CLI has of the desk and the graph (JSON)."""
    commands: list[list[str]] = [
        ["incidents", "--json", "--limit", "1000"],
        *(
            ["incidents", "--status", s, "--json"]
            for s in ("open", "new", "assigned", "pending", "resolved", "cancelled")
        ),
        ["problems", "--json"],
        ["unmapped", "--json"],
        ["stats", "--json"],
        ["conflicts", "--json"],
        *(["history", ci, "--json", "--limit", "500"] for ci in ("core-1", "db-1", "acc-1")),
        ["show", "core-1", "--json"],
    ]
    groups = {g.name for g in app.registered_groups}
    if "ticket" in groups:  # the desk's own commands
        commands += [["ticket", "list", "--json", "--first", "500"]]
        commands += [
            ["ticket", "show", ticket_id, "--json"]
            for ticket_id in ids.values()
            if ticket_id.startswith(("inc-", "req-"))
        ]
    if "people" in groups:
        commands += [["people", "list", kind, "--json"] for kind in ("agents", "groups")]
        commands += [["people", "list", k, "--json"] for k in ("organisations", "contacts")]
    if "catalogue" in groups:
        commands += [["catalogue", "show", "--json"]]
    return [run(cli, data, *command) for command in commands]


def test_cli_export_then_import_into_a_new_data_dir_reads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SERVICEGRAPH_CONFIG", raising=False)
    source_dir, target_dir = tmp_path / "source", tmp_path / "target"
    desk = next(make_desk(source_dir))
    ids = seed(desk)
    desk.services.close()
    cli = CliRunner()
    path = tmp_path / "desk.jsonl"
    result = cli.invoke(app, ["export", str(path)], env={"SERVICEGRAPH_DATA_DIR": str(source_dir)})
    assert result.exit_code == 0, result.stderr
    assert "6 tickets" in result.stderr and "7 agents" in result.stderr
    report = json.loads(run(cli, target_dir, "import", "--from-export", str(path), "--json"))
    assert report["version"] == 5 and report["counts"] == read_all(path).counts
    assert listings(cli, target_dir, ids) == listings(cli, source_dir, ids)
    before, after = (
        tables(source_dir / "servicegraph.sqlite3"),
        tables(target_dir / "servicegraph.sqlite3"),
    )
    assert after == before
    again = cli.invoke(
        app, ["import", "--from-export", str(path)], env={"SERVICEGRAPH_DATA_DIR": str(target_dir)}
    )
    assert again.exit_code == 1 and "not empty" in again.stderr


def test_cli_refuses_a_damaged_file_naming_line_and_field(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SERVICEGRAPH_CONFIG", raising=False)
    objs = lines_of(exported)
    n = first_of(objs, "incident")
    objs[n]["priority"] = "high"
    path = write(tmp_path / "bad.jsonl", objs)
    result = CliRunner().invoke(
        app, ["import", "--from-export", str(path)], env={"SERVICEGRAPH_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code == 1
    assert f"bad.jsonl:{n + 1}" in result.stderr and "incident.priority" in result.stderr
    assert (
        json.loads(
            CliRunner()
            .invoke(app, ["stats", "--json"], env={"SERVICEGRAPH_DATA_DIR": str(tmp_path)})
            .stdout
        )["cis"]
        == 0
    )
