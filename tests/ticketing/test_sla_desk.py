"""SLA clocks on a real desk: every saved ticket's clocks kept by the store, paused while
pending, stopped by the first reply; queues in due order; the escalation job firing each
level once, also when run concurrently by several processes and after a restart."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from servicegraph.bootstrap import bootstrap
from servicegraph.cmdb.context import change_context
from servicegraph.config import CorrelationSettings, DeskSettings, Settings
from servicegraph.runtime.export import Stores, export_all, import_all, read_all
from servicegraph.ticketing.lifecycle import ActorKind
from servicegraph.ticketing.model import WorklogKind
from servicegraph.ticketing.ports import IncidentFilter, TicketOrder
from servicegraph.ticketing.sla import ClockState
from tests.ticketing.desk_world import Desk, make_desk

H = dt.timedelta(hours=1)
OFFICE = {"timezone": "UTC", "hours": {d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}}  # fmt: skip  # noqa: E501
TARGETS = {
    p: {"response": f"{r}m", "resolution": f"{h}h"}
    for p, (r, h) in {1: (15, 1), 2: (30, 2), 3: (60, 4), 4: (120, 8), 5: (240, 24)}.items()
}
SLA: dict[str, Any] = {
    "policies": [
        {
            "name": "vpn-office",
            "service": "vpn",
            "calendar": "office",
            "targets": TARGETS,
        },
        {
            "name": "standard",
            "targets": TARGETS,
            "escalation": [
                {
                    "clock": "resolution",
                    "at": 0.5,
                    "notify": ["group_manager", "oncall@desk.example"],
                },
                {"clock": "resolution", "at": "breach", "raise_priority": True, "reassign": "noc"},
            ],
        },
    ]
}


def desk_settings(**extra: Any) -> dict[str, Any]:
    return {"calendars": {"office": OFFICE}, "sla": SLA, **extra}


@pytest.fixture()
def desk(tmp_path: Path) -> Iterator[Desk]:
    for d in make_desk(tmp_path, **desk_settings()):
        d.services.desk.sla.clock = d.clock
        d.services.desk.escalation.clock = d.clock
        yield d


def test_a_new_ticket_has_both_clocks_from_its_policy(desk: Desk) -> None:
    t = desk.create(title="Printer on fire", requester="c-joe")
    record = desk.services.desk.sla.clock_of(t.id)
    assert record is not None and record.policy == "standard" and record.calendar == "24x7"
    target = TARGETS[t.priority]
    assert record.response.target == dt.timedelta(minutes=int(target["response"][:-1]))
    assert record.resolution.due == t.opened_at + record.resolution.target
    assert (record.response.state, record.resolution.state) == (ClockState.OK, ClockState.OK)
    desk.clock.advance(minutes=10)
    live = desk.services.desk.sla.clock_of(t.id)
    assert live is not None and live.resolution.elapsed == dt.timedelta(minutes=10)
    assert live.resolution.remaining == record.resolution.target - dt.timedelta(minutes=10)


def test_pending_for_the_requester_pauses_and_a_reply_stops_the_response_clock(desk: Desk) -> None:
    t = desk.create(title="VPN drops", category="network/vpn", requester="c-joe")
    with change_context("dave"):
        desk.tickets.assign(t.id, agent="dave")
    desk.clock.advance(minutes=20)
    with change_context("dave"):
        desk.tickets.comment(t.id, "Which client version?", to_requester=True)
        desk.clock.advance(minutes=10)
        desk.tickets.transition(t.id, "start")
        desk.tickets.transition(t.id, "pend", pending_reason="awaiting_requester")
    desk.clock.advance(hours=5)
    record = desk.services.desk.sla.clock_of(t.id)
    assert record is not None
    assert record.response.state is ClockState.MET
    assert record.response.elapsed == dt.timedelta(minutes=20), "stopped by the reply"
    assert record.resolution.paused and record.resolution.elapsed == dt.timedelta(minutes=30)
    with change_context("c-joe"):
        desk.tickets.transition(t.id, "resume", actor_kind=ActorKind.REQUESTER)
    desk.clock.advance(minutes=15)
    record = desk.services.desk.sla.clock_of(t.id)
    assert record is not None and not record.resolution.paused
    assert record.resolution.elapsed == dt.timedelta(minutes=45), "the pending hours not counted"


def test_a_service_policy_counts_office_hours_only(desk: Desk) -> None:
    desk.clock.now = dt.datetime(2026, 11, 6, 17, 0, tzinfo=dt.UTC)  # a Friday, 17:00
    t = desk.create(title="VPN for the new hire", service="vpn", requester="c-joe")
    record = desk.services.desk.sla.clock_of(t.id)
    assert record is not None and (record.policy, record.calendar) == ("vpn-office", "office")
    desk.clock.advance(days=3)  # Monday 17:00: one hour on Friday, nine on Monday
    record = desk.services.desk.sla.clock_of(t.id)
    assert record is not None and record.resolution.elapsed == 10 * H


def test_queues_order_by_due_time(desk: Desk) -> None:
    slow = desk.create(title="slow", impact="low", urgency="low")
    desk.clock.advance(minutes=1)
    urgent = desk.create(title="urgent", impact="high", urgency="high")
    found = desk.services.tickets.find_incidents(IncidentFilter(open=True, order=TicketOrder.DUE))
    ids = [t.id for t in found]
    assert ids.index(urgent.id) < ids.index(slow.id)
    page = desk.tickets.find(IncidentFilter(open=True, order=TicketOrder.DUE, limit=1))
    assert page.items[0].id == urgent.id and page.next_cursor is not None
    rest = desk.tickets.find(
        IncidentFilter(open=True, order=TicketOrder.DUE, limit=50), after=page.next_cursor
    )
    assert [t.id for t in rest.items] == ids[1:]


def _escalations(desk: Desk, ticket_id: str) -> list[tuple[str | None, str | None]]:
    return [(e.field, e.new) for e in desk.history(ticket_id) if e.kind is WorklogKind.ESCALATED]


def test_each_level_fires_once_with_what_it_does_in_the_history(desk: Desk) -> None:
    t = desk.create(title="Core switch flaps", requester="c-joe")
    with change_context("alice"):
        desk.tickets.assign(t.id, group="noc")
    target = dt.timedelta(hours=int(TARGETS[t.priority]["resolution"][:-1]))
    job = desk.services.desk.escalation
    assert job.run().fired == 0
    desk.clock.now = t.opened_at + target * 0.5
    report = job.run()
    assert ("resolution", "2") in _escalations(desk, t.id)
    assert report.fired >= 1
    assert job.run().fired == 0, "fired once"
    entry = next(e for e in desk.history(t.id) if e.kind is WorklogKind.ESCALATED and e.new == "2")
    assert "alice@desk.example" in entry.text and "oncall@desk.example" in entry.text
    desk.clock.now = t.opened_at + target + dt.timedelta(seconds=1)
    job.run()
    after = desk.tickets.get(t.id)
    assert after.priority == t.priority - 1 and after.priority_set_by == "sla"
    assert after.assignment_group == "noc"
    fired = _escalations(desk, t.id)
    assert len(fired) == len(set(fired)), "no level twice"
    assert ("resolution", "3") in fired and ("resolution", "1") in fired
    for _ in range(3):
        job.run()
    assert _escalations(desk, t.id) == fired


def test_a_resolved_ticket_is_not_escalated_after_the_fact(desk: Desk) -> None:
    t = desk.create(title="fixed fast")
    with change_context("alice"):
        desk.tickets.assign(t.id, agent="alice")
        desk.tickets.transition(t.id, "resolve", resolution_code="solved", resolution="ok")
    desk.clock.advance(days=10)
    assert desk.services.desk.escalation.run().fired == 0
    assert _escalations(desk, t.id) == []


def _run_job(data_dir: str, at: str, rounds: int) -> int:
    settings = Settings(
        data_dir=Path(data_dir),
        desk=DeskSettings(**desk_settings()),
        correlation=CorrelationSettings(hold_time_s=60),
    )
    services = bootstrap(settings)
    try:
        fired = 0
        for _ in range(rounds):
            fired += services.desk.escalation.run(dt.datetime.fromisoformat(at)).fired
        return fired
    finally:
        services.close()


def test_jobs_run_concurrently_and_restarted_fire_each_level_once(
    desk: Desk, tmp_path: Path
) -> None:
    tickets = [desk.create(title=f"t{i}", requester="c-joe") for i in range(30)]
    with change_context("alice"):
        for t in tickets:
            desk.tickets.assign(t.id, group="noc")
    late = max(t.opened_at for t in tickets) + dt.timedelta(days=3)  # every level is due
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        fired = pool.starmap(_run_job, [(str(tmp_path), late.isoformat(), 3)] * 4)
    per_ticket = [_escalations(desk, t.id) for t in tickets]
    assert all(len(f) == len(set(f)) for f in per_ticket), "no level fired twice"
    assert sum(fired) == sum(len(f) for f in per_ticket), "each firing is in a history"
    assert all(("resolution", "1") in f and ("resolution", "3") in f for f in per_ticket)
    # a restarted job (a new process over the same store) finds nothing left to fire
    assert _run_job(str(tmp_path), late.isoformat(), 2) == 0


@pytest.mark.parametrize(
    ("sla", "field"),
    [
        (
            {"policies": [{"name": "x", "targets": TARGETS, "calendar": "nope"}]},
            "desk.sla.policies[0].calendar",
        ),
        ({"policies": [{"name": "x"}]}, "desk.sla.policies[0].targets"),
        (
            {
                "policies": [
                    {
                        "name": "x",
                        "targets": TARGETS,
                        "escalation": [{"at": 2, "notify": ["group"]}],
                    }
                ]
            },
            "desk.sla.policies[0].escalation[0].at",
        ),
        (
            {
                "policies": [
                    {
                        "name": "x",
                        "targets": TARGETS,
                        "escalation": [{"at": 0.5, "notify": ["boss"]}],
                    }
                ]
            },
            "desk.sla.policies[0].escalation[0].notify[0]",
        ),
        (
            {"policies": [{"name": "x", "targets": TARGETS, "escalation": [{"at": 0.5}]}]},
            "desk.sla.policies[0].escalation[0]",
        ),
        (
            {"policies": [{"name": "x", "targets": TARGETS}], "tiers": {"gold": "y"}},
            "desk.sla.tiers.gold",
        ),
        ({"policy": []}, "desk.sla.policy"),
    ],
)
def test_a_bad_sla_declaration_is_refused_naming_its_path(sla: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field.replace("[", r"\[").replace("]", r"\]")):
        DeskSettings(calendars={"office": OFFICE}, sla=sla)


@pytest.mark.parametrize(
    ("calendar", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "desk.calendars.office.timezone"),
        ({"hours": {"mon": [["18:00", "08:00"]]}}, "desk.calendars.office.hours.mon.0"),
        (
            {"hours": {"mon": [["08:00", "12:00"], ["11:00", "13:00"]]}},
            "desk.calendars.office.hours.mon",
        ),
    ],
)
def test_a_bad_calendar_is_refused_naming_its_path(calendar: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field.replace(".", r"\.")):
        DeskSettings(calendars={"office": calendar})


def test_an_exported_desk_restores_with_the_same_clocks(desk: Desk, tmp_path: Path) -> None:
    paused = desk.create(title="waits for the requester", requester="c-joe")
    with change_context("alice"):
        desk.tickets.assign(paused.id, agent="alice")
        desk.clock.advance(minutes=20)
        desk.tickets.transition(paused.id, "start")
        desk.tickets.transition(paused.id, "pend", pending_reason="awaiting_requester")
        desk.clock.advance(hours=1)
        desk.tickets.comment(paused.id, "asked again")  # changed since, while paused
    desk.clock.advance(hours=6)
    done = desk.create(title="fixed", requester="c-joe")
    with change_context("alice"):
        desk.tickets.assign(done.id, agent="alice")
        desk.clock.advance(hours=2)
        desk.tickets.transition(done.id, "resolve", resolution_code="solved", resolution="ok")
        desk.clock.advance(days=3)
        desk.tickets.transition(done.id, "close", close_code="solved")
    path = tmp_path / "desk.jsonl"
    with path.open("w", encoding="utf-8") as out:
        export_all(Stores.of(desk.services), out)
    target = bootstrap(Settings(data_dir=tmp_path / "target", desk=DeskSettings(**desk_settings())))
    try:
        import_all(Stores.of(target), read_all(path), commit_every=3)
        ids = [paused.id, done.id]
        assert target.tickets.sla_of(ids) == desk.services.tickets.sla_of(ids)
        restored = target.tickets.sla_of([paused.id])[paused.id]
        assert restored.resolution.paused, "its history reached the clocks"
    finally:
        target.close()


def test_a_ticket_no_policy_covers_is_evaluated_once_per_configuration(tmp_path: Path) -> None:
    only_vpn = {"policies": [{"name": "vpn", "service": "vpn", "targets": TARGETS}]}
    for d in make_desk(tmp_path, calendars={"office": OFFICE}, sla=only_vpn):
        t = d.create(title="Printer on fire")  # no service: no policy covers it
        job = d.services.desk.escalation
        assert d.services.desk.sla.clock_of(t.id) is None
        assert job.run().reevaluated == 0, "known as uncovered under this configuration"
        assert d.services.tickets.sla_stale(job.projector.config.version, 100) == []
        assert d.services.tickets.sla_stale("another configuration", 100) == [t.id]
