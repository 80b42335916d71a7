"""Change risk: the pure scoring (each factor's points and reason, the levels, the cap of a
change that touches no service), then through ChangeAnalysis on the example site and on a
generated data-centre estate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.topology import build
from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.config import Settings
from servicegraph.ticketing.change_analysis import ChangeAnalysis
from servicegraph.ticketing.change_model import ChangeRisk, ChangeStatus
from servicegraph.ticketing.change_risk import (
    FailedChange,
    RedundantGroup,
    RiskInputs,
    RiskPolicy,
    ServiceImpact,
    assess_risk,
    name_list,
)
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Channel, Incident, Problem, ProblemStatus
from tests.ticketing.change_world import T0, Site, change, site_world

R = ChangeRisk
NAMES = {"core-1": "core-1", "dist-1": "dist-1", "dist-2": "dist-2", "acc-1": "acc-1",
         "db-1": "db-1", "web": "Web shop", "crm": "CRM", "wiki": "Wiki"}  # fmt: skip


def shop(*spofs: str, fails: bool = True, criticality: int | None = 1) -> ServiceImpact:
    return ServiceImpact("web", "Web shop", criticality, fails, spofs)


# -- the pure scoring --------------------------------------------------------------------------


def test_a_single_point_of_failure_of_a_criticality_1_service_is_high() -> None:
    risk = assess_risk(
        RiskInputs(ci_ids=("core-1",), names=NAMES, services=(shop("core-1"),), failed_count=9)
    )
    assert (risk.level, risk.score) == (R.HIGH, 50)
    assert risk.reasons == (
        "core-1 is a single point of failure of Web shop (criticality 1)",
        "9 other CIs fail with core-1",
    )
    assert risk.services == (shop("core-1"),)


def test_several_critical_services_failing_are_very_high() -> None:
    crm = ServiceImpact("crm", "CRM", 2, True, ("core-1",))
    risk = assess_risk(RiskInputs(("core-1",), NAMES, services=(crm, shop("core-1"))))
    assert (risk.level, risk.score) == (R.VERY_HIGH, 85)
    assert risk.services == (shop("core-1"), crm), "most critical first"
    assert risk.reasons[:2] == (
        "core-1 is a single point of failure of Web shop (criticality 1)",
        "core-1 is a single point of failure of CRM (criticality 2)",
    )


def test_history_on_top_of_a_spof_adds_up_to_very_high() -> None:
    risk = assess_risk(
        RiskInputs(
            ("core-1", "db-1"),
            NAMES,
            services=(shop("core-1"),),
            open_incidents={"db-1": (12, 15)},
            failed_changes=(
                FailedChange(7, ("core-1",), dt.datetime(2026, 11, 3, 22, tzinfo=dt.UTC)),
            ),
        )
    )
    assert (risk.level, risk.score) == (R.VERY_HIGH, 50 + 10 + 10)
    assert risk.reasons == (
        "core-1 is a single point of failure of Web shop (criticality 1)",
        "2 open incidents on db-1",
        "change 7 on core-1 failed on 2026-11-03",
    )


def test_a_redundant_switch_is_low_and_says_which_redundancy_absorbs_it() -> None:
    uplink = RedundantGroup("acc-1", "uplink", 1, 2, 1, lost=("dist-1",), services=("web",))
    inputs = RiskInputs(("dist-1",), NAMES, services=(shop(fails=False),), redundancy=(uplink,))
    risk = assess_risk(inputs)
    assert (risk.level, risk.score) == (R.LOW, 10)
    assert risk.reasons == (
        "dist-1 is redundant: acc-1 keeps running on 1 of its 2 uplink providers; "
        "Web shop is not affected",
    )
    # an open incident on the switch on top makes it medium
    busy = assess_risk(RiskInputs(**{**inputs.__dict__, "open_incidents": {"dist-1": (3,)}}))
    assert (busy.level, busy.score) == (R.MEDIUM, 15)
    assert busy.reasons[-1] == "1 open incident on dist-1"


def test_several_groups_absorbing_the_same_loss_are_told_once() -> None:
    groups = tuple(
        RedundantGroup(f"acc-{i}", "uplink", 1, 2, 1, lost=("dist-1",), services=(s,))
        for i, s in ((1, "web"), (2, "crm"), (3, "crm"))
    )
    cluster = RedundantGroup("pg", "members", 1, 3, 2, lost=("dist-1",), services=())
    crm = ServiceImpact("crm", "CRM", 3, False)
    risk = assess_risk(
        RiskInputs(("dist-1",), {**NAMES, "pg": "pg-cluster"},
                   services=(crm, shop(fails=False)), redundancy=(*groups, cluster))
    )  # fmt: skip
    assert risk.score == 10, "the most critical degrading service's points, once"
    assert risk.reasons == (
        "dist-1 is redundant: acc-1, acc-2 and acc-3 keep running on 1 of their 2 uplink "
        "providers; Web shop and CRM are not affected",
        "dist-1 is redundant: pg-cluster keeps running on 2 of its 3 members (it needs 2)",
    )


def test_a_degrading_service_no_group_names_is_still_told() -> None:
    risk = assess_risk(RiskInputs(("db-1",), {}, services=(shop(fails=False, criticality=None),)))
    assert (risk.level, risk.score) == (R.LOW, 4)
    assert risk.reasons == ("Web shop runs on reduced redundancy",)


def test_no_service_touched_is_low_whatever_the_history() -> None:
    risk = assess_risk(
        RiskInputs(
            ("db-1", "acc-1"),
            NAMES,
            failed_count=3,
            open_incidents={"db-1": (1, 2, 3, 4)},
            open_problems={"acc-1": (9,)},
            failed_changes=(FailedChange(4, ("db-1",)), FailedChange(5, ("db-1",))),
        )
    )
    assert risk.level is R.LOW and risk.score == 15 + 5 + 20
    assert risk.reasons[0] == "no business service depends on db-1 or acc-1"
    assert risk.reasons[1:] == (
        "3 other CIs fail with db-1 and acc-1",
        "4 open incidents on db-1",
        "1 open problem on acc-1",
        "change 5 on db-1 failed",
        "change 4 on db-1 failed",
    )
    uncapped = assess_risk(
        RiskInputs(("db-1",), NAMES, open_incidents={"db-1": (1, 2, 3)}),
        RiskPolicy(no_service_cap=None),
    )
    assert uncapped.level is R.MEDIUM
    nothing = assess_risk(RiskInputs(("db-1",), NAMES))
    assert (nothing.level, nothing.score) == (R.LOW, 0)
    assert nothing.reasons == ("no business service depends on db-1",)


def test_services_failed_only_by_the_cis_together_and_the_change_on_a_service_itself() -> None:
    risk = assess_risk(
        RiskInputs(
            ("dist-1", "dist-2", "web"),
            NAMES,
            services=(ServiceImpact("crm", "CRM", None, True), shop("web")),
        )
    )
    assert risk.reasons == (
        "the change is on Web shop (criticality 1) itself",
        "CRM (no criticality set) fails with dist-1, dist-2 and Web shop down together",
    )
    assert risk.score == 50 + 20


def test_unknown_cis_and_no_ci_make_the_impact_unknown() -> None:
    risk = assess_risk(RiskInputs(("core-1", "ci-x"), NAMES, unknown_ci_ids=("ci-x",)))
    assert (risk.level, risk.score) == (R.MEDIUM, 15)
    assert risk.reasons == (
        "no business service depends on core-1",
        "ci-x is not in the configuration graph: what it affects is unknown",
    )
    empty = assess_risk(RiskInputs(()))
    assert empty.level is R.MEDIUM
    assert empty.reasons == ("the change names no configuration item: what it affects is unknown",)


def test_history_points_are_capped_and_long_lists_counted() -> None:
    failed = tuple(
        FailedChange(n, ("core-1",), dt.datetime(2026, 1, n, tzinfo=dt.UTC)) for n in range(1, 9)
    )
    services = tuple(ServiceImpact(f"s{i}", f"Service {i}", 5, True, ("core-1",)) for i in range(7))
    risk = assess_risk(
        RiskInputs(
            ("core-1", "db-1"),
            NAMES,
            services=services,
            failed_count=1234,
            open_incidents={"core-1": (1, 2), "db-1": (2, 3, 4, 5)},
            failed_changes=failed,
        )
    )
    assert risk.score == 7 * 15 + 20 + 15 + 20
    assert "2 more business services fail (criticality 5)" in risk.reasons
    assert "1,234 other CIs fail with core-1 and db-1" in risk.reasons
    assert (
        "2 open incidents on core-1" in risk.reasons and "4 open incidents on db-1" in risk.reasons
    )
    assert next(r for r in risk.reasons if r.startswith("change ")) == (
        "change 8 on core-1 failed on 2026-01-08"
    ), "the latest failure first"
    assert risk.reasons[-1] == "3 earlier failed changes on these CIs"


def test_an_incident_on_two_of_the_cis_counts_once() -> None:
    risk = assess_risk(
        RiskInputs(("db-1", "acc-1"), NAMES, services=(shop("db-1"),),
                   open_incidents={"db-1": (7,), "acc-1": (7,)})
    )  # fmt: skip
    assert risk.score == 50 + 5


def test_the_policy_thresholds_must_rise() -> None:
    with pytest.raises(ValidationFailed) as error:
        RiskPolicy(medium_from=40, high_from=30)
    assert error.value.field == "medium_from"
    assert RiskPolicy().level_of(14) is R.LOW and RiskPolicy().level_of(15) is R.MEDIUM
    assert RiskPolicy().level_of(35) is R.HIGH and RiskPolicy().level_of(70) is R.VERY_HIGH


def test_name_lists() -> None:
    names = {"a": "A"}
    assert name_list([], names) == ""
    assert name_list(["a", "a"], names) == "A"
    assert name_list(["a", "b"], names, "or") == "A or b"
    assert name_list(["a", "b", "c", "d"], names) == "A, b, c and d"
    assert name_list(["a", "b", "c", "d", "e"], names) == "A, b, c and 2 more"


# -- through ChangeAnalysis, on the example site -------------------------------------------------


@pytest.fixture()
def site(services: Services) -> Site:
    return site_world(services)


def test_site_change_on_core_1_is_high_it_is_a_spof_of_the_web_shop(site: Site) -> None:
    risk = site.analysis.risk(site.change(1, "core-1"))
    assert risk.level is R.HIGH
    assert risk.reasons[0] == "core-1 is a single point of failure of Web shop (criticality 1)"
    assert "10 other CIs fail with core-1" in risk.reasons
    (web,) = risk.services
    assert (web.ci_id, web.name, web.criticality, web.fails, web.spof_ci_ids) == (
        site.ids["web-shop"], "Web shop", 1, True, (site.ids["core-1"],),
    )  # fmt: skip


def test_site_change_on_a_distribution_switch_is_low_and_says_why(site: Site) -> None:
    risk = site.analysis.risk(site.change(1, "dist-1"))
    assert risk.level is R.LOW
    assert risk.reasons == (
        "dist-1 is redundant: acc-1 keeps running on 1 of its 2 uplink providers; "
        "Web shop is not affected",
    )
    assert [(s.name, s.fails) for s in risk.services] == [("Web shop", False)]


def test_site_both_distribution_switches_together_fail_the_web_shop(site: Site) -> None:
    risk = site.analysis.risk(site.change(1, "dist-1", "dist-2"))
    assert risk.level is R.HIGH
    assert risk.reasons[0] == "Web shop (criticality 1) fails with dist-1 and dist-2 down together"
    assert risk.services[0].spof_ci_ids == ()


def test_site_a_cluster_member_degrades_and_a_location_touches_nothing(site: Site) -> None:
    member = site.analysis.risk(site.change(1, "db-1"))
    assert member.level is R.LOW
    assert member.reasons == (
        "db-1 is redundant: pg-cluster keeps running on 2 of its 3 members (it needs 2); "
        "Web shop is not affected",
    )
    location = site.analysis.risk(site.change(2, "hq"))
    assert (location.level, location.reasons) == (
        R.LOW,
        ("no business service depends on Headquarters",),
    )


def test_site_history_of_the_cis_from_the_ticket_store(site: Site) -> None:
    db1, acc1 = site.ids["db-1"], site.ids["acc-1"]
    incidents = [
        Incident(f"inc-{n}", n, title, status, T0, T0, T0, channel=Channel.PHONE,
                 affected_ci_ids=[db1])
        for n, title, status in ((1, "db-1 slow", TicketStatus.NEW),
                                 (2, "db-1 disk", TicketStatus.IN_PROGRESS),
                                 (3, "db-1 down", TicketStatus.RESOLVED))
    ]  # fmt: skip
    earlier = site.change(7, "db-1", "core-1", status=ChangeStatus.FAILED)
    earlier.actual_end = dt.datetime(2026, 10, 20, 23, tzinfo=dt.UTC)
    this = site.change(9, "db-1", "acc-1", status=ChangeStatus.FAILED)  # itself: not counted
    with site.services.tickets.unit() as u:
        u.save_incidents(incidents)
        u.save_change(earlier)
        u.save_change(this)
        u.save_change(site.change(8, "dist-1", status=ChangeStatus.FAILED))  # other CIs
        for number, status in ((3, ProblemStatus.KNOWN_ERROR), (4, ProblemStatus.CLOSED)):
            u.save_problem(
                Problem(f"prb-{number}", number, "Disk errors", status, T0, T0, acc1,
                        "recurrence", f"ci:{acc1}:{number}")
            )  # fmt: skip
    risk = site.analysis.risk(this)
    # acc-1 takes the web shop down (a SPOF) whatever db-1 does
    assert risk.reasons == (
        "acc-1 is a single point of failure of Web shop (criticality 1)",
        "6 other CIs fail with db-1 and acc-1",
        "2 open incidents on db-1",
        "1 open problem on acc-1",
        "change 7 on db-1 failed on 2026-10-20",
    )
    assert (risk.score, risk.level) == (50 + 10 + 5 + 10, R.VERY_HIGH)


def test_site_a_ci_the_graph_does_not_hold(site: Site) -> None:
    risk = site.analysis.risk(change(1, ["ci-gone"]))
    assert risk.level is R.MEDIUM
    assert risk.reasons == (
        "ci-gone is not in the configuration graph: what it affects is unknown",
    )


# -- on a generated data-centre estate -----------------------------------------------------------


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, dict[str, str]]]:
    services = bootstrap(Settings(data_dir=Path(tmp_path_factory.mktemp("estate"))))
    topology = build(3000, seed=7)
    report = services.reconciler.apply(topology.batch)
    ids = {
        str(obs.key): str(ci_id)
        for obs, ci_id in zip(topology.batch.cis, report.ci_ids, strict=True)
    }
    ids.update({f"dist:{i}": ids[k] for i, k in enumerate(topology.distribution_keys)})
    yield services, ids
    services.close()


def test_estate_a_spof_of_a_criticality_1_service_is_high(
    estate: tuple[Services, dict[str, str]],
) -> None:
    services, _ = estate
    analysis = ChangeAnalysis(services.impact, services.store, services.tickets)
    with services.impact.reading() as graph:
        business = [graph.ids[n] for n, c in enumerate(graph.classes) if c == "business_service"]
    critical = [s for s, c in services.store.summaries(business).items() if c.criticality == 1]
    assert critical
    checked = 0
    for service_id in critical:
        for spof in services.impact.single_points_of_failure(service_id):
            impact = services.impact.impact([spof.ci_id])
            if impact.business_services != (service_id,) or len(impact.affected) > 50:
                continue  # a SPOF of this service alone, taking little else down
            risk = analysis.risk(change(1, [spof.ci_id]))
            name = services.store.summaries([spof.ci_id])[spof.ci_id].name
            service_name = services.store.summaries([service_id])[service_id].name
            assert risk.level is R.HIGH, risk
            assert risk.reasons[0] == (
                f"{name} is a single point of failure of {service_name} (criticality 1)"
            )
            checked += 1
            break
        if checked >= 3:
            break
    assert checked >= 3


def test_estate_a_redundant_distribution_switch_is_lower_and_says_why(
    estate: tuple[Services, dict[str, str]],
) -> None:
    services, ids = estate
    analysis = ChangeAnalysis(services.impact, services.store, services.tickets)
    checked = 0
    for key in (k for k in ids if k.startswith("dist:")):
        switch = ids[key]
        if services.impact.impact([switch]).business_services:
            continue  # a single-homed access switch below: something really goes down
        risk = analysis.risk(change(1, [switch]))
        name = services.store.summaries([switch])[switch].name
        assert risk.level.rank <= R.MEDIUM.rank, risk
        assert risk.reasons[0].startswith(f"{name} is redundant: "), risk.reasons
        assert "uplink providers" in risk.reasons[0] and " not affected" in risk.reasons[0]
        assert all(not s.fails for s in risk.services) and risk.services
        checked += 1
    assert checked >= 2
