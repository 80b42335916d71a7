"""The CI timeline end to end through the correlator on the example site
(examples/small-site.json, a real SQLite store, a controlled clock): every fire/clear
cycle of an alert, a resolution written by hand that survives correlation's reopen, the
reopen with its reason, names for the CIs, and paging by cursor."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.errors import UnknownCI, ValidationFailed
from servicegraph.correlation import steps
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.timeline import (
    MONITORING_ACTOR,
    RelatedRole,
    TimelineEntry,
    TimelineKind,
)
from tests.correlation.conftest import World, make_world

RESOLUTION = "replaced the failed PSU of db-1; monitoring the node"


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[World]:
    for w in make_world(tmp_path, hold_time_s=60):
        for service in vars(w.services.desk).values():  # people's work on the same clock
            if hasattr(service, "clock"):
                service.clock = w.clock
        yield w


def cycle(world: World, name: str, key: str, *, up_for: float = 60) -> None:
    """The alert fires now and clears ``up_for`` seconds later."""
    world.send(world.event(name, key))
    world.clock.advance(seconds=up_for)
    world.send(world.event(name, key, "resolved"))


def settle(world: World, seconds: float = 61) -> None:
    """Let the hold time pass, so that an incident whose alerts all cleared resolves."""
    world.clock.advance(seconds=seconds)
    world.services.correlator.process_pending()


def four_cycles_with_a_manual_resolution(world: World) -> str:
    """NodeDown on db-1 fires and clears four times, 12 minutes apart (never flapping).
    Correlation resolves after cycle 1; cycle 2 reopens; carol resolves it by hand while
    it fires; cycle 3 reopens it again; correlation resolves after cycles 3 and 4 (4
    reopens first). The incident's id."""
    cycle(world, "NodeDown", "db-1")
    settle(world)
    (incident,) = world.incidents()
    assert incident.status is TicketStatus.RESOLVED
    world.clock.advance(minutes=10)
    world.send(world.event("NodeDown", "db-1"))  # cycle 2: reopens
    assert world.incidents()[0].status.active
    world.clock.advance(seconds=20)
    with change_context(actor="carol"):
        world.services.desk.incidents.resolve(incident.id, RESOLUTION)
    world.clock.advance(seconds=40)
    world.send(world.event("NodeDown", "db-1", "resolved"))
    for _ in range(2):  # cycles 3 and 4: each reopens, clears and resolves
        world.clock.advance(minutes=11)
        cycle(world, "NodeDown", "db-1")
        settle(world)
    (again,) = world.incidents()
    assert again.id == incident.id and again.reopen_count == 3
    assert again.resolution is None, "the record forgets carol's resolution on reopen"
    return incident.id


def kinds(entries: list[TimelineEntry], *wanted: TimelineKind) -> list[TimelineEntry]:
    return [e for e in entries if e.kind in wanted]


def test_four_alert_cycles_show_as_four(world: World) -> None:
    four_cycles_with_a_manual_resolution(world)
    entries = world.services.desk.timeline.timeline(world.ids["db-1"])
    fired = kinds(entries, TimelineKind.ALERT_FIRED)
    cleared = kinds(entries, TimelineKind.ALERT_CLEARED)
    assert len(fired) == 4 and len(cleared) == 4
    assert [e.summary.split("[")[1].split(",")[0] for e in fired] == [
        f"cycle {n} of 4" for n in (1, 2, 3, 4)
    ]
    for f, c in zip(fired, cleared, strict=True):
        assert f.cycle is c.cycle and f.cycle is not None
        assert f.at == f.cycle.fired_at and c.at == f.cycle.cleared_at
        assert c.at - f.at == dt.timedelta(seconds=60)
        assert f.cycle.incident_id == world.incidents()[0].id
        assert "INC1" in f.summary and "after 1m00s" in c.summary
    assert [e.at for e in entries] == sorted(e.at for e in entries)


def test_a_manual_resolution_survives_the_reopen_by_correlation(world: World) -> None:
    incident_id = four_cycles_with_a_manual_resolution(world)
    entries = world.services.desk.timeline.timeline(world.ids["db-1"])
    resolved = kinds(entries, TimelineKind.INCIDENT_RESOLVED)
    reopened = kinds(entries, TimelineKind.INCIDENT_REOPENED)
    assert len(resolved) == 4 and len(reopened) == 3
    by_hand = [e for e in resolved if e.actor == "carol"]
    assert len(by_hand) == 1
    manual = by_hand[0]
    assert manual.resolution is not None
    assert (manual.resolution.by, manual.resolution.text) == ("carol", RESOLUTION)
    assert manual.summary.startswith("incident INC1 resolved by carol")  # [code] may follow
    assert manual.summary.endswith(f": {RESOLUTION}")
    assert manual.incident is not None and manual.incident.id == incident_id
    # the next entry of the incident is correlation reopening it, saying why
    after = [e for e in entries if e.incident is not None and e.key > manual.key]
    reopen = after[0]
    assert reopen.kind is TimelineKind.INCIDENT_REOPENED
    assert reopen.actor == MONITORING_ACTOR == steps.ACTOR
    assert (reopen.status_from, reopen.status_to) == ("resolved", "new")
    assert reopen.reason == "test/NodeDown fired again on db-1", "a name, not the CI's id"
    assert reopen.summary == (
        "incident INC1 reopened by correlation (resolved -> new): test/NodeDown fired again on db-1"
    )
    assert world.ids["db-1"] in (reopen.work.text if reopen.work else ""), "the log keeps ids"
    by_monitoring = [e for e in resolved if e.actor == MONITORING_ACTOR]
    assert len(by_monitoring) == 3
    for e in by_monitoring:
        assert e.summary == "incident INC1 resolved (all its alerts cleared)"
        assert e.resolution is not None and e.resolution.text == "every alert clear for 0:01:00"
        assert (e.status_from, e.status_to) in {("new", "resolved")}
    # the story in order: opened, then resolve and reopen alternate
    story = [
        e.kind
        for e in entries
        if e.kind
        in (
            TimelineKind.INCIDENT_OPENED,
            TimelineKind.INCIDENT_RESOLVED,
            TimelineKind.INCIDENT_REOPENED,
        )
    ]
    opened, res, reo = (
        TimelineKind.INCIDENT_OPENED,
        TimelineKind.INCIDENT_RESOLVED,
        TimelineKind.INCIDENT_REOPENED,
    )
    assert story == [opened, res, reo, res, reo, res, reo, res]


def test_each_alert_firing_precedes_what_it_caused(world: World) -> None:
    four_cycles_with_a_manual_resolution(world)
    entries = world.services.desk.timeline.timeline(world.ids["db-1"])
    relevant = kinds(
        entries,
        TimelineKind.ALERT_FIRED,
        TimelineKind.INCIDENT_OPENED,
        TimelineKind.INCIDENT_REOPENED,
    )
    pairs = list(zip(relevant[::2], relevant[1::2], strict=True))
    assert [(a.kind, b.kind) for a, b in pairs] == [
        (TimelineKind.ALERT_FIRED, TimelineKind.INCIDENT_OPENED),
        *[(TimelineKind.ALERT_FIRED, TimelineKind.INCIDENT_REOPENED)] * 3,
    ]
    assert all(a.at == b.at for a, b in pairs), "same moment: the alert sorts first"


def test_related_cis_are_named(world: World) -> None:
    """db-1 and db-2 behind acc-1, then the switch: one incident rooted at acc-1, which
    db-1's timeline names (and keeps the ids)."""
    world.send(world.event("NodeDown", "db-1"), world.event("NodeDown", "db-2"))
    world.clock.advance(seconds=20)
    world.send(world.event("SwitchDown", "acc-1"))
    entries = world.services.desk.timeline.timeline(world.ids["db-1"])
    (opened,) = kinds(entries, TimelineKind.INCIDENT_OPENED)
    assert opened.ci_id == world.ids["acc-1"], "the incident's root"
    roles = {r.role: (r.id, r.name) for r in opened.related}
    assert roles[RelatedRole.ROOT] == (world.ids["acc-1"], "acc-1")
    (fired,) = kinds(entries, TimelineKind.ALERT_FIRED)
    assert [(r.id, r.name, r.role) for r in fired.related] == [
        (world.ids["db-1"], "db-1", RelatedRole.ALERT)
    ]
    rel = [e for e in entries if e.history and e.history.other_ci_id]
    assert rel and all(e.related[0].name in e.summary for e in rel)
    assert {e.related[0].role for e in rel} == {RelatedRole.RELATIONSHIP}
    assert not any(world.ids[k] in e.summary for e in entries for k in world.ids)


def test_acknowledgements_and_comments_are_on_the_timeline(world: World) -> None:
    """(Assignments need the desk's directory; their entries are in the unit tests.)"""
    world.send(world.event("NodeDown", "db-1"))
    (incident,) = world.incidents()
    desk = world.services.desk.incidents
    with change_context(actor="alice"):
        world.clock.advance(seconds=5)
        desk.acknowledge(incident.id, "looking")
        world.clock.advance(seconds=5)
        desk.comment(incident.id, f"PSU fan noise on {world.ids['db-1']} reported by the DC")
    work = kinds(
        world.services.desk.timeline.timeline(world.ids["db-1"]), TimelineKind.INCIDENT_WORK
    )
    assert [(e.actor, e.at, e.summary) for e in work] == [
        ("alice", world.clock.now - dt.timedelta(seconds=5), "incident INC1 acknowledged: looking"),
        (
            "alice",
            world.clock.now,
            "incident INC1 comment: PSU fan noise on db-1 reported by the DC",
        ),
    ]


def test_pages_by_cursor_return_every_entry_once(world: World) -> None:
    four_cycles_with_a_manual_resolution(world)
    with change_context(actor="alice"):  # many entries sharing one time
        for n in range(7):
            world.services.desk.incidents.comment(world.incidents()[0].id, f"note {n}")
    timeline = world.services.desk.timeline
    everything = timeline.timeline(world.ids["db-1"])
    for size in (1, 3, 7, len(everything), len(everything) + 1):
        seen: list[TimelineEntry] = []
        after = None
        while True:
            page = timeline.page(world.ids["db-1"], limit=size, after=after)
            assert len(page.entries) <= size
            seen += page.entries
            if not page.has_more:
                assert page.next_cursor is None
                break
            assert page.next_cursor == page.entries[-1].cursor
            after = page.next_cursor
        assert [e.key for e in seen] == [e.key for e in everything], size
    assert len({e.cursor for e in everything}) == len(everything)
    notes = [e for e in everything if e.summary.startswith("incident INC1 comment: note")]
    assert [e.summary[-1] for e in notes] == [str(n) for n in range(7)], "in log order"


def test_since_and_until_bound_the_timeline(world: World) -> None:
    four_cycles_with_a_manual_resolution(world)
    timeline = world.services.desk.timeline
    everything = timeline.timeline(world.ids["db-1"])
    fired = kinds(everything, TimelineKind.ALERT_FIRED)
    window = timeline.timeline(world.ids["db-1"], since=fired[1].at, until=fired[2].at)
    assert window and all(fired[1].at <= e.at <= fired[2].at for e in window)
    assert [e.key for e in window] == [
        e.key for e in everything if fired[1].at <= e.at <= fired[2].at
    ]
    assert len(kinds(window, TimelineKind.ALERT_FIRED)) == 2


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"after": "nonsense"}, "after"),
        ({"after": "tl1.!!!"}, "after"),
        ({"after": "tl1.bm90LWEta2V5"}, "after"),  # base64 of "not-a-key"
        ({"since": dt.datetime(2026, 11, 1)}, "since"),
        ({"until": dt.datetime(2026, 11, 1)}, "until"),
        (
            {
                "since": dt.datetime(2026, 11, 2, tzinfo=dt.UTC),
                "until": dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
            },
            "until",
        ),
    ],
)
def test_bad_paging_input_names_the_field(
    world: World, arguments: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        world.services.desk.timeline.page(world.ids["db-1"], **arguments)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_an_unknown_ci_has_no_timeline(world: World) -> None:
    with pytest.raises(UnknownCI):
        world.services.desk.timeline.page("ci-nope")
