"""Change conflicts: the pure rules (overlap of half-open windows, the kinds and their
order, freezes global and on a service, overrides), then through ChangeAnalysis on the
example site with changes and freeze windows stored through the ticket store's unit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pytest

from servicegraph.bootstrap import Services
from servicegraph.ticketing.change_conflicts import (
    Conflict,
    ConflictKind,
    Footprint,
    find_conflicts,
)
from servicegraph.ticketing.change_model import ChangeStatus, ConflictOverride
from tests.ticketing.change_world import HOUR, T0, Site, freeze, site_world

K = ConflictKind
NAMES = {"core": "core-1", "dist": "dist-1", "acc": "acc-1", "db": "db-1", "app": "orders-app",
         "web": "Web shop", "crm": "CRM"}  # fmt: skip


def footprint(
    number: int,
    cis: Iterable[str],
    affected: Iterable[str] = (),
    services: Iterable[str] = (),
    *,
    start: dt.datetime = T0,
    hours: float = 2,
) -> Footprint:
    return Footprint(
        f"chg-{number}",
        number,
        f"Change {number}",
        frozenset(cis),
        frozenset(affected),
        frozenset(services),
        start,
        start + hours * HOUR,
    )


def kinds(conflicts: list[Conflict]) -> list[tuple[str, ConflictKind]]:
    return [(c.other_id, c.kind) for c in conflicts]


# -- the pure rules ----------------------------------------------------------------------------


def test_same_ci_in_overlapping_windows() -> None:
    mine = footprint(1, {"core"})
    other = footprint(2, {"core", "dist"}, start=T0 + HOUR)
    (conflict,) = find_conflicts(mine, [other], [], names=NAMES)
    assert conflict == Conflict(K.SAME_CI, "chg-2", "change 2 'Change 2'", "both change core-1")


def test_half_open_windows_that_only_touch_do_not_overlap() -> None:
    mine = footprint(1, {"core"}, {"app"}, {"web"})
    after = footprint(2, {"core"}, {"app"}, {"web"}, start=T0 + 2 * HOUR)
    before = footprint(3, {"core"}, {"app"}, {"web"}, start=T0 - 2 * HOUR)
    assert find_conflicts(mine, [after, before], [], names=NAMES) == []
    just_in = footprint(4, {"core"}, start=T0 + 2 * HOUR - dt.timedelta(minutes=1))
    assert kinds(find_conflicts(mine, [just_in], [], names=NAMES)) == [("chg-4", K.SAME_CI)]
    # a freeze ending when the change starts does not hold it either
    ended = freeze("Launch", start=T0 - 24 * HOUR, hours=24)
    assert find_conflicts(mine, [], [ended], names=NAMES) == []


def test_a_ci_in_the_other_s_impact_either_way_round() -> None:
    mine = footprint(1, {"db"}, services={"web"})
    core = footprint(2, {"core"}, affected={"dist", "acc", "db", "app", "web"}, services={"web"})
    found = find_conflicts(mine, [core], [], names=NAMES)
    assert kinds(found) == [("chg-2", K.IN_IMPACT), ("chg-2", K.SAME_SERVICE)]
    assert found[0].detail == "db-1, changed here, goes down with the CIs of change 2"
    assert found[1].detail == "both affect Web shop"
    seen_from_core = find_conflicts(core, [mine], [], names=NAMES)
    assert kinds(seen_from_core) == [("chg-1", K.IN_IMPACT), ("chg-1", K.SAME_SERVICE)]
    assert seen_from_core[0].detail == (
        "change 1 changes db-1, which goes down with this change's CIs"
    )


def test_same_service_alone() -> None:
    mine = footprint(1, {"db"}, services={"web", "crm"})
    other = footprint(2, {"app-2"}, services={"crm"})
    (conflict,) = find_conflicts(mine, [other], [], names=NAMES)
    assert (conflict.kind, conflict.detail) == (K.SAME_SERVICE, "both affect CRM")
    unrelated = footprint(3, {"x"}, {"y"}, {"z"})
    assert find_conflicts(mine, [unrelated], [], names=NAMES) == []


def test_every_kind_is_listed_strongest_first_and_others_by_strongest_kind() -> None:
    mine = footprint(1, {"core", "db"}, affected={"app"}, services={"web"})
    service_only = footprint(2, {"crm-app"}, services={"web"}, start=T0 - HOUR)
    impact = footprint(3, {"app"}, services={"web"}, start=T0 + HOUR)
    same = footprint(4, {"core"}, services={"web"}, start=T0 + HOUR)
    also_same = footprint(5, {"db"}, start=T0)
    found = find_conflicts(mine, [service_only, impact, same, also_same, mine], [], names=NAMES)
    assert kinds(found) == [
        ("chg-5", K.SAME_CI),  # strongest kind first, then the earlier start
        ("chg-4", K.SAME_CI),
        ("chg-4", K.SAME_SERVICE),
        ("chg-3", K.IN_IMPACT),
        ("chg-3", K.SAME_SERVICE),
        ("chg-2", K.SAME_SERVICE),
    ], "itself is skipped"


def test_freeze_windows_global_on_a_ci_and_on_a_service() -> None:
    mine = footprint(1, {"core"}, affected={"acc", "app", "web"}, services={"web"})
    everything = freeze("Year-end freeze", start=T0 - HOUR, reason="closing the books")
    on_ci = freeze("Core freeze", ["core"], start=T0 + HOUR)
    on_service = freeze("Shop launch", ["web", "app"], start=T0 - 2 * HOUR)
    elsewhere = freeze("CRM freeze", ["crm"])
    later = freeze("Later", start=T0 + 2 * HOUR)
    found = find_conflicts(mine, [], [on_ci, everything, on_service, elsewhere, later], names=NAMES)
    assert [(c.kind, c.other_id, c.other, c.detail) for c in found] == [
        (K.FREEZE, "frz-shop-launch", "freeze 'Shop launch'",
         "Web shop and orders-app are frozen and go down with this change's CIs"),
        (K.FREEZE, "frz-year-end-freeze", "freeze 'Year-end freeze'",
         "every CI is frozen (closing the books)"),
        (K.FREEZE, "frz-core-freeze", "freeze 'Core freeze'", "core-1 is frozen"),
    ]  # fmt: skip
    # a service that only degrades is covered too
    member = footprint(2, {"db"}, services={"web"})
    (degraded,) = find_conflicts(member, [], [on_service], names=NAMES)
    assert degraded.detail == "Web shop is frozen and loses redundancy with this change's CIs"


def test_changes_come_before_freezes() -> None:
    mine = footprint(1, {"core"})
    found = find_conflicts(mine, [footprint(2, {"core"})], [freeze("All")], names=NAMES)
    assert kinds(found) == [("chg-2", K.SAME_CI), ("frz-all", K.FREEZE)]


def test_an_override_marks_every_conflict_with_that_other_still_listed() -> None:
    mine = footprint(1, {"core"}, services={"web"})
    other = footprint(2, {"core"}, services={"web"})
    third = footprint(3, {"core"})
    old = ConflictOverride("chg-2", "agreed with the network team", "bob", T0 - 2 * HOUR)
    new = ConflictOverride("chg-2", "same maintenance window, one team", "carol", T0 - HOUR)
    on_freeze = ConflictOverride("frz-all", "emergency fix", "carol", T0)
    found = find_conflicts(
        mine, [other, third], [freeze("All")], names=NAMES, overrides=[new, old, on_freeze]
    )
    assert [(c.other_id, c.kind, c.overridden) for c in found] == [
        ("chg-2", K.SAME_CI, new),
        ("chg-2", K.SAME_SERVICE, new),
        ("chg-3", K.SAME_CI, None),
        ("frz-all", K.FREEZE, on_freeze),
    ]


def test_ids_stand_for_cis_without_a_name() -> None:
    (conflict,) = find_conflicts(footprint(1, {"ci-9"}), [footprint(2, {"ci-9"})], [], names={})
    assert conflict.detail == "both change ci-9"


# -- through ChangeAnalysis, on the example site -------------------------------------------------


@pytest.fixture()
def site(services: Services) -> Site:
    return site_world(services)


def test_site_footprint(site: Site) -> None:
    ids = site.ids
    core = site.analysis.footprint(site.change(1, "core-1"))
    assert core is not None
    assert core.ci_ids == {ids["core-1"]}
    assert core.affected == {
        ids[k] for k in ("dist-1", "dist-2", "acc-1", "db-1", "db-2", "db-3", "pg-cluster",
                         "orders-db", "orders-app", "web-shop")
    }  # fmt: skip
    assert core.services == {ids["web-shop"]}
    assert (core.start, core.end) == (T0, T0 + 2 * HOUR)
    member = site.analysis.footprint(site.change(2, "db-1"))
    assert member is not None and member.affected == frozenset()
    assert member.services == {ids["web-shop"]}, "degraded counts"
    assert site.analysis.footprint(site.change(3, "core-1", start=None)) is None


def test_site_same_ci_and_same_service(site: Site) -> None:
    mine = site.change(1, "core-1", title="Upgrade core-1 IOS")
    other = site.change(2, "core-1", start=T0 + HOUR, title="Replace core-1 PSU")
    site.save(mine, other)
    found = site.analysis.conflicts(mine)
    assert [(c.kind, c.other_id, c.other, c.detail) for c in found] == [
        (K.SAME_CI, "chg-2", "change 2 'Replace core-1 PSU'", "both change core-1"),
        (K.SAME_SERVICE, "chg-2", "change 2 'Replace core-1 PSU'", "both affect Web shop"),
    ]
    # both sides list it
    assert [c.other_id for c in site.analysis.conflicts(other)] == ["chg-1", "chg-1"]


def test_site_a_ci_in_the_other_s_impact(site: Site) -> None:
    mine = site.change(1, "orders-app")
    core = site.change(2, "core-1", start=T0 - HOUR)
    site.save(mine, core)
    found = site.analysis.conflicts(mine)
    assert [(c.kind, c.detail) for c in found] == [
        (K.IN_IMPACT, "orders-app, changed here, goes down with the CIs of change 2"),
        (K.SAME_SERVICE, "both affect Web shop"),
    ]


def test_site_two_cluster_members_at_once_hit_the_same_service(site: Site) -> None:
    one, two = site.change(1, "db-1"), site.change(2, "db-2")
    site.save(one, two)
    (conflict,) = site.analysis.conflicts(one)
    assert (conflict.kind, conflict.detail) == (K.SAME_SERVICE, "both affect Web shop")


def test_site_windows_that_do_not_overlap_and_changes_that_do_not_count(site: Site) -> None:
    mine = site.change(1, "core-1")
    site.save(
        mine,
        site.change(2, "core-1", start=T0 + 2 * HOUR),  # starts when mine ends
        site.change(3, "core-1", start=T0 - 3 * HOUR, hours=3),  # ends when mine starts
        site.change(5, "core-1", status=ChangeStatus.CANCELLED),
        site.change(6, "core-1", status=ChangeStatus.CLOSED),
        site.change(7, "core-1", start=None),
        site.change(8, "dist-2", status=ChangeStatus.APPROVAL),  # counts: in core-1's impact
    )
    assert [(c.other_id, c.kind) for c in site.analysis.conflicts(mine)] == [
        ("chg-8", K.IN_IMPACT),
        ("chg-8", K.SAME_SERVICE),
    ]
    assert site.analysis.conflicts(site.change(9, "core-1", start=None)) == []


def test_site_freeze_windows_global_and_on_the_service(site: Site) -> None:
    mine = site.change(1, "db-1")
    everything = freeze("Year-end freeze", start=T0 - 24 * HOUR, hours=48)
    on_shop = freeze("Shop launch", [site.ids["web-shop"]], start=T0 + HOUR)
    core_freeze = freeze("Core freeze", [site.ids["core-1"]], start=T0)
    elsewhere = freeze("Old freeze", start=T0 - 48 * HOUR, hours=24)
    site.save(mine, everything, on_shop, core_freeze, elsewhere)
    found = site.analysis.conflicts(mine)
    assert [(c.kind, c.other, c.detail) for c in found] == [
        (K.FREEZE, "freeze 'Year-end freeze'", "every CI is frozen"),
        (K.FREEZE, "freeze 'Shop launch'",
         "Web shop is frozen and loses redundancy with this change's CIs"),
    ]  # fmt: skip
    # a change on core-1 takes the web shop down, and core-1 is frozen itself
    core = site.change(2, "core-1", start=T0 + 5 * HOUR)
    assert [c.detail for c in site.analysis.conflicts(core)] == [
        "every CI is frozen",
        "core-1 is frozen",
        "Web shop is frozen and goes down with this change's CIs",
    ]


def test_site_an_overridden_conflict_is_still_listed(site: Site) -> None:
    mine = site.change(1, "core-1")
    other = site.change(2, "core-1")
    year_end = freeze("Year-end freeze")
    accepted = ConflictOverride("chg-2", "one team, one window", "carol", T0 - HOUR)
    mine.conflict_overrides.append(accepted)
    site.save(mine, other, year_end)
    found = site.analysis.conflicts(mine)
    assert [(c.other_id, c.kind, c.overridden) for c in found] == [
        ("chg-2", K.SAME_CI, accepted),
        ("chg-2", K.SAME_SERVICE, accepted),
        ("frz-year-end-freeze", K.FREEZE, None),
    ]
    # the override is the change's own: the other side still sees it open
    assert all(c.overridden is None for c in site.analysis.conflicts(other))


def test_site_conflicts_among_a_calendar(site: Site) -> None:
    one = site.change(1, "core-1")
    two = site.change(2, "orders-app", start=T0 + HOUR)
    three = site.change(3, "hq", start=T0 + 10 * HOUR)
    draft = site.change(4, "core-1", status=ChangeStatus.DRAFT)
    no_window = site.change(5, "core-1", start=None)
    year_end = freeze("Year-end freeze", start=T0 + 9 * HOUR, hours=2)
    calendar = site.analysis.conflicts_among([one, two, three, draft, no_window], [year_end])
    assert set(calendar) == {"chg-1", "chg-2", "chg-3", "chg-4", "chg-5"}
    assert kinds(calendar["chg-1"]) == [
        ("chg-4", K.SAME_CI),
        ("chg-4", K.SAME_SERVICE),
        ("chg-2", K.IN_IMPACT),
        ("chg-2", K.SAME_SERVICE),
    ]
    assert kinds(calendar["chg-2"]) == [
        ("chg-1", K.IN_IMPACT),
        ("chg-1", K.SAME_SERVICE),
        ("chg-4", K.IN_IMPACT),
        ("chg-4", K.SAME_SERVICE),
    ]
    assert kinds(calendar["chg-3"]) == [("frz-year-end-freeze", K.FREEZE)]
    # a draft is a change like the others: both sides list the conflict
    assert ("chg-4", K.SAME_CI) in kinds(calendar["chg-1"])
    assert kinds(calendar["chg-4"]) == [
        ("chg-1", K.SAME_CI),
        ("chg-1", K.SAME_SERVICE),
        ("chg-2", K.IN_IMPACT),
        ("chg-2", K.SAME_SERVICE),
    ]
    assert calendar["chg-5"] == []
    # the same answers as one change at a time (those stored)
    site.save(one, two, three, draft, year_end)
    for change in (one, two, three):
        assert site.analysis.conflicts(change) == calendar[change.id]
