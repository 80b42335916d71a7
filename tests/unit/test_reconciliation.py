"""Identification and reconciliation over a real SQLite store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from servicegraph.bootstrap import Services
from servicegraph.cmdb.errors import (
    ReconciliationConflicts,
    UnknownCI,
    ValidationErrors,
    ValidationFailed,
)
from servicegraph.cmdb.identifiers import IdentifierRules
from servicegraph.cmdb.model import (
    ConfigurationItem,
    ConflictKind,
    HistoryKind,
    Lifecycle,
)
from servicegraph.cmdb.observation import (
    CIObservation,
    CIRef,
    ObservationBatch,
    RelationshipObservation,
)
from servicegraph.cmdb.ports import CIQuery
from servicegraph.cmdb.reconciliation import Reconciler, ReconcileReport

T0 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def obs(ci_class: str = "server", name: str | None = None, **kw: Any) -> CIObservation:
    return CIObservation(
        ci_class,
        name,
        kw.pop("identifiers", {}),
        kw.pop("attributes", {}),
        **kw,
    )


def rel(rel_type: str, a: str, b: str, **attributes: Any) -> RelationshipObservation:
    return RelationshipObservation(rel_type, CIRef(key=a), CIRef(key=b), attributes)


def apply(
    services: Services,
    source: str,
    cis: list[CIObservation],
    rels: list[RelationshipObservation] | None = None,
    *,
    when: float = 0,
    complete: bool = False,
    **kw: Any,
) -> ReconcileReport:
    batch = ObservationBatch(
        source, list(cis), list(rels or []), observed_at=at(when), complete=complete
    )
    return services.reconciler.apply(batch, **kw)


def get(services: Services, ci_id: str | None) -> ConfigurationItem:
    assert ci_id is not None
    return services.store.get_cis([ci_id])[ci_id]


def snapshot(services: Services) -> tuple[Any, ...]:
    """Everything a batch could write, to prove that one wrote nothing."""
    store = services.store
    cis = store.find_cis(CIQuery(include_merged=True, limit=10_000))
    ids = [c.id for c in cis]
    return (
        store.change_seq(),
        store.counts(),
        cis,
        store.relationships(ids, include_removed=True),
        store.history(ids),
        store.conflicts(),
        [store.sightings(i) for i in ids],
    )


# -- identification -----------------------------------------------------------------------


def test_create_then_match_by_normalised_identifier(services: Services) -> None:
    first = apply(
        services, "snmp", [obs("network_device", "sw1", identifiers={"serial_number": "FOC 123"})]
    )
    assert first.cis_created == 1
    second = apply(
        services,
        "erp",
        [
            obs(
                "network_device",
                identifiers={"serial_number": "foc-123"},
                attributes={"owner": "net"},
            )
        ],
    )
    assert second.cis_created == 0 and second.cis_updated == 1
    assert second.ci_ids == first.ci_ids
    ci = get(services, first.ci_ids[0])
    assert ci.name == "sw1"  # a record without a name does not erase it
    assert ci.attributes == {"owner": "net"}
    assert ci.identifiers == (("serial_number", "FOC123"),)


def test_serial_beats_hostname(services: Services) -> None:
    by_serial = apply(services, "snmp", [obs(name="a", identifiers={"serial_number": "S1"})])
    by_host = apply(services, "dns", [obs(name="b", identifiers={"hostname": "web01"})])
    report = apply(
        services,
        "erp",
        [obs(identifiers={"hostname": "WEB01.example.com", "serial_number": "s1"})],
    )
    assert report.ci_ids == by_serial.ci_ids  # the stronger rule decides
    # the weaker identifier belongs to another CI: reported, not moved
    (conflict,) = report.conflicts
    assert conflict.kind is ConflictKind.IDENTIFIER_CLAIMED
    assert conflict.identifier == ("hostname", "web01")
    assert (conflict.ci_id, conflict.other_ci_id) == (by_serial.ci_ids[0], by_host.ci_ids[0])
    assert services.store.resolve_identifiers([("hostname", "web01")]) == {
        ("hostname", "web01"): by_host.ci_ids[0]
    }
    assert get(services, by_serial.ci_ids[0]).identifiers == (("serial_number", "S1"),)


def test_match_order_is_configurable(make_services: Callable[..., Services]) -> None:
    services = make_services(identifier_match_order=["hostname", "serial_number"])
    by_serial = apply(services, "snmp", [obs(name="a", identifiers={"serial_number": "S1"})])
    by_host = apply(services, "dns", [obs(name="b", identifiers={"hostname": "web01"})])
    report = apply(services, "erp", [obs(identifiers={"hostname": "web01", "serial_number": "S1"})])
    assert report.ci_ids == by_host.ci_ids
    assert report.ci_ids != by_serial.ci_ids


def test_weaker_identifiers_are_added_to_the_matched_ci(services: Services) -> None:
    first = apply(services, "snmp", [obs(name="a", identifiers={"serial_number": "S1"})])
    apply(
        services,
        "snmp",
        [obs(identifiers={"serial_number": "S1", "mac": "00-11-22-33-44-55", "hostname": "a"})],
        when=1,
    )
    ci = get(services, first.ci_ids[0])
    assert ci.identifiers == (
        ("hostname", "a"),
        ("mac", "00:11:22:33:44:55"),
        ("serial_number", "S1"),
    )
    added = [
        (e.field, e.new)
        for e in services.history.timeline(ci.id)
        if e.kind is HistoryKind.IDENTIFIER_ADDED
    ]
    assert sorted(added) == [("hostname", "a"), ("mac", "00:11:22:33:44:55")]


def test_match_by_source_key_before_identifiers(services: Services) -> None:
    first = apply(
        services, "snmp", [obs(name="d", key="dev-1", identifiers={"serial_number": "S1"})]
    )
    other = apply(services, "erp", [obs(name="x", identifiers={"serial_number": "S2"})])
    # the same key from the same source is the same CI, whatever else it now says
    again = apply(services, "snmp", [obs(key="dev-1", attributes={"os": "ios"})], when=1)
    assert again.ci_ids == first.ci_ids
    assert get(services, first.ci_ids[0]).attributes == {"os": "ios"}
    # keys belong to their source: another source's "dev-1" is another item
    elsewhere = apply(services, "zabbix", [obs(name="z", key="dev-1")])
    assert elsewhere.cis_created == 1
    assert elsewhere.ci_ids[0] not in (first.ci_ids[0], other.ci_ids[0])
    assert services.store.resolve_keys(["dev-1"]) == {
        "dev-1": {first.ci_ids[0], elsewhere.ci_ids[0]}
    }


def test_match_by_explicit_id(services: Services) -> None:
    first = apply(services, "snmp", [obs(name="d", identifiers={"serial_number": "S1"})])
    ci_id = first.ci_ids[0]
    assert ci_id is not None
    again = apply(services, "manual", [obs(ci_id=ci_id, attributes={"notes": "spare psu"})])
    assert again.ci_ids == [ci_id]
    assert again.cis_updated == 1
    assert get(services, ci_id).attributes == {"notes": "spare psu"}
    # an explicit id not known yet creates the CI under that id
    created = apply(services, "manual", [obs(name="new", ci_id="ci-chosen-by-user")])
    assert created.ci_ids == ["ci-chosen-by-user"]
    assert get(services, "ci-chosen-by-user").name == "new"


def test_observation_of_another_class_is_a_conflict(services: Services) -> None:
    first = apply(services, "snmp", [obs("server", "a", identifiers={"serial_number": "S1"})])
    before = get(services, first.ci_ids[0])
    report = apply(
        services,
        "erp",
        [obs("network_device", "a", identifiers={"serial_number": "S1"}, attributes={"role": "x"})],
    )
    (conflict,) = report.conflicts
    assert conflict.kind is ConflictKind.CLASS_MISMATCH
    assert report.ci_ids == [None]
    assert get(services, first.ci_ids[0]) == before


# -- source precedence --------------------------------------------------------------------


def test_per_attribute_source_precedence(services: Services) -> None:
    ident = {"serial_number": "S1"}
    cid = apply(
        services,
        "snmp",
        [obs("network_device", "sw", identifiers=ident, attributes={"model": "C9300-48P"})],
    ).ci_ids[0]
    # the ERP cannot overwrite a hardware fact SNMP reported, but owns the business facts
    apply(
        services,
        "erp",
        [
            obs(
                "network_device",
                identifiers=ident,
                attributes={"model": "Catalyst 9300", "cost_centre": "CC-1", "owner": "netops"},
            )
        ],
        when=1,
    )
    # SNMP cannot overwrite the ERP's business facts
    apply(
        services,
        "snmp",
        [obs("network_device", identifiers=ident, attributes={"cost_centre": "?", "owner": "x"})],
        when=2,
    )
    # a collector cannot overwrite a person's notes; a person cannot overwrite SNMP's model
    apply(
        services,
        "manual",
        [obs("network_device", identifiers=ident, attributes={"notes": "lab"})],
        when=3,
    )
    apply(
        services,
        "snmp",
        [
            obs(
                "network_device",
                identifiers=ident,
                attributes={"notes": "auto", "model": "C9300-24"},
            )
        ],
        when=4,
    )
    apply(
        services,
        "manual",
        [obs("network_device", identifiers=ident, attributes={"model": "typo"})],
        when=5,
    )
    ci = get(services, cid)
    assert ci.attributes == {
        "model": "C9300-24",  # snmp replaced its own value
        "cost_centre": "CC-1",
        "owner": "netops",
        "notes": "lab",
    }
    assert {k: ci.attribute_sources[k] for k in ci.attributes} == {
        "model": "snmp",
        "cost_centre": "erp",
        "owner": "erp",
        "notes": "manual",
    }
    # each refused report left no history; each accepted one left one entry
    changes = sorted(
        (e.at, e.field or "", e.source, e.old, e.new)
        for e in services.history.timeline(cid)
        if e.kind is HistoryKind.ATTRIBUTE
    )
    assert changes == [
        (at(1), "cost_centre", "erp", None, "CC-1"),
        (at(1), "owner", "erp", None, "netops"),
        (at(3), "notes", "manual", None, "lab"),
        (at(4), "model", "snmp", "C9300-48P", "C9300-24"),
    ]


def test_stronger_source_overrides_weaker(services: Services) -> None:
    ident = {"serial_number": "S1"}
    cid = apply(
        services,
        "erp",
        [obs("network_device", "sw", identifiers=ident, attributes={"vendor": "cisco"})],
    ).ci_ids[0]
    apply(
        services,
        "snmp",
        [obs("network_device", identifiers=ident, attributes={"vendor": "Cisco"})],
        when=1,
    )
    ci = get(services, cid)
    assert (ci.attributes["vendor"], ci.attribute_sources["vendor"]) == ("Cisco", "snmp")
    # now the ERP cannot take it back
    apply(
        services,
        "erp",
        [obs("network_device", identifiers=ident, attributes={"vendor": "cisco"})],
        when=2,
    )
    assert get(services, cid).attributes["vendor"] == "Cisco"


def test_unranked_attribute_latest_report_wins(services: Services) -> None:
    ident = {"serial_number": "S1"}
    cid = apply(
        services, "erp", [obs(name="a", identifiers=ident, attributes={"role": "db"})]
    ).ci_ids[0]
    apply(services, "snmp", [obs(identifiers=ident, attributes={"role": "web"})], when=1)
    assert get(services, cid).attributes["role"] == "web"
    apply(services, "erp", [obs(identifiers=ident, attributes={"role": "db"})], when=2)
    assert get(services, cid).attributes["role"] == "db"


def test_precedence_from_settings(make_services: Callable[..., Services]) -> None:
    services = make_services(precedence={"role": ["cmdb_team", "snmp"]})
    ident = {"serial_number": "S1"}
    cid = apply(
        services, "cmdb_team", [obs(name="a", identifiers=ident, attributes={"role": "db"})]
    ).ci_ids[0]
    apply(services, "snmp", [obs(identifiers=ident, attributes={"role": "web"})], when=1)
    assert get(services, cid).attributes["role"] == "db"


def test_none_clears_an_attribute(services: Services) -> None:
    ident = {"serial_number": "S1"}
    cid = apply(
        services, "snmp", [obs(name="a", identifiers=ident, attributes={"os": "linux"})]
    ).ci_ids[0]
    apply(services, "snmp", [obs(identifiers=ident, attributes={"os": None})], when=1)
    ci = get(services, cid)
    assert "os" not in ci.attributes
    last = services.history.timeline(cid)[-1]
    assert (last.kind, last.field, last.old, last.new) == (
        HistoryKind.ATTRIBUTE,
        "os",
        "linux",
        None,
    )


# -- conflicts ----------------------------------------------------------------------------


def test_two_records_claiming_one_serial_in_a_batch(services: Services) -> None:
    report = apply(
        services,
        "import",
        [
            obs(
                name="first",
                key="row-1",
                identifiers={"serial_number": "S1"},
                attributes={"os": "a"},
            ),
            obs(
                name="second",
                key="row-2",
                identifiers={"serial_number": "s-1"},
                attributes={"os": "b"},
            ),
        ],
    )
    assert report.cis_created == 1
    assert report.ci_ids[1] is None
    (conflict,) = report.conflicts
    assert conflict.kind is ConflictKind.DUPLICATE_IN_BATCH
    assert "row-2" in conflict.item
    assert "row-1" in conflict.detail
    stored = services.store.conflicts()
    assert [(c.kind, c.item) for c in stored] == [(conflict.kind, conflict.item)]
    # the second record is not applied and did not overwrite the first
    ci = get(services, report.ci_ids[0])
    assert (ci.name, ci.attributes) == ("first", {"os": "a"})
    assert services.store.counts()["cis"] == 1
    assert services.store.resolve_keys(["row-2"]) == {}


def test_relationships_to_a_conflicting_record_are_skipped_and_reported(
    services: Services,
) -> None:
    report = apply(
        services,
        "import",
        [
            obs(name="first", key="row-1", identifiers={"serial_number": "S1"}),
            obs(name="second", key="row-2", identifiers={"serial_number": "S1"}),
            obs("network_device", "sw", key="sw", identifiers={"serial_number": "SW"}),
        ],
        [rel("CONNECTED_TO", "row-1", "sw"), rel("CONNECTED_TO", "row-2", "sw")],
    )
    assert report.relationships_created == 1
    kinds = sorted(c.kind for c in report.conflicts)
    assert kinds == [ConflictKind.DUPLICATE_IN_BATCH, ConflictKind.ENDPOINT_SKIPPED]
    skipped = next(c for c in report.conflicts if c.kind is ConflictKind.ENDPOINT_SKIPPED)
    assert "row-2" in skipped.detail


def test_two_records_matching_one_existing_ci_in_a_batch(services: Services) -> None:
    existing = apply(services, "snmp", [obs(name="a", identifiers={"serial_number": "S1"})])
    report = apply(
        services,
        "import",
        [
            obs(key="row-1", identifiers={"serial_number": "S1"}, attributes={"os": "a"}),
            obs(key="row-2", identifiers={"serial_number": "S1"}, attributes={"os": "b"}),
        ],
        when=1,
    )
    assert report.ci_ids == [existing.ci_ids[0], None]
    assert [c.kind for c in report.conflicts] == [ConflictKind.DUPLICATE_IN_BATCH]
    assert get(services, existing.ci_ids[0]).attributes == {"os": "a"}


def test_identifier_owned_by_another_ci_is_not_moved(services: Services) -> None:
    a = apply(
        services,
        "snmp",
        [obs(name="a", key="a", identifiers={"serial_number": "S1", "mac": "00:00:00:00:00:0a"})],
    )
    b = apply(services, "snmp", [obs(name="b", key="b", identifiers={"serial_number": "S2"})])
    # b's source now says b has a's MAC
    report = apply(
        services,
        "snmp",
        [obs(key="b", identifiers={"mac": "00:00:00:00:00:0A"}, attributes={"os": "linux"})],
        when=1,
    )
    (conflict,) = report.conflicts
    assert conflict.kind is ConflictKind.IDENTIFIER_CLAIMED
    assert conflict.identifier == ("mac", "00:00:00:00:00:0a")
    assert (conflict.ci_id, conflict.other_ci_id) == (b.ci_ids[0], a.ci_ids[0])
    assert services.store.conflicts()[0].identifier == ("mac", "00:00:00:00:00:0a")
    assert services.store.resolve_identifiers([("mac", "00:00:00:00:00:0a")]) == {
        ("mac", "00:00:00:00:00:0a"): a.ci_ids[0]
    }
    assert get(services, a.ci_ids[0]).identifiers == (
        ("mac", "00:00:00:00:00:0a"),
        ("serial_number", "S1"),
    )
    assert get(services, b.ci_ids[0]).identifiers == (("serial_number", "S2"),)


def test_on_conflict_fail_writes_nothing(services: Services) -> None:
    apply(services, "snmp", [obs(name="a", identifiers={"serial_number": "S1"})])
    apply(services, "dns", [obs(name="b", identifiers={"hostname": "web01"})])
    before = snapshot(services)
    with pytest.raises(ReconciliationConflicts) as info:
        apply(
            services,
            "erp",
            [
                obs(name="fresh", identifiers={"serial_number": "S9"}),  # fine on its own
                obs(
                    identifiers={"serial_number": "S1", "hostname": "web01"}, attributes={"os": "x"}
                ),
            ],
            [
                RelationshipObservation(
                    "DEPENDS_ON",
                    CIRef(identifier=("serial_number", "S9")),
                    CIRef(identifier=("serial_number", "S1")),
                )
            ],
            when=1,
            on_conflict="fail",
        )
    assert [c.kind for c in info.value.conflicts] == [ConflictKind.IDENTIFIER_CLAIMED]  # type: ignore[attr-defined]
    assert snapshot(services) == before


# -- validation ---------------------------------------------------------------------------


def test_invalid_batch_writes_nothing_and_names_record_and_field(services: Services) -> None:
    apply(services, "snmp", [obs(name="a", key="a", identifiers={"serial_number": "S1"})])
    before = snapshot(services)
    with pytest.raises(ValidationErrors) as info:
        apply(
            services,
            "snmp",
            [
                obs(name="ok", key="ok", identifiers={"serial_number": "S2"}),
                obs(name="bad", key="bad-cpu", attributes={"cpu_count": "many"}),
                obs("toaster", key="bad-class"),
                obs(key="bad-attr", attributes={"colour": "red"}),
                obs(key="bad-mac", identifiers={"mac": "zz"}),
                obs(name="nothing-to-match-on"),
                obs(key="ok", name="twice"),
                CIObservation(
                    "server",
                    "from file",
                    {"serial_number": "S3"},
                    {"cpu_count": "x"},
                    origin="hosts.csv:7",
                ),
            ],
            [
                rel("DEPENDS_ON", "ok", "ok"),
                rel("LIKES", "ok", "a"),
                rel("DEPENDS_ON", "ok", "a", redundancy_group=""),
            ],
            when=1,
        )
    errors = {(e.item, e.field) for e in info.value.errors}
    assert errors == {
        ("ci[1] bad-cpu", "cpu_count"),
        ("ci[2] bad-class", "class"),
        ("ci[3] bad-attr", "colour"),
        ("ci[4] bad-mac", "identifiers.mac"),
        ("ci[5] nothing-to-match-on", "identifiers"),
        ("ci[6] ok", "key"),
        ("hosts.csv:7", "cpu_count"),
        ("relationship[0] ok -DEPENDS_ON-> ok", "to"),
        ("relationship[1] ok -LIKES-> a", "type"),
        ("relationship[2] ok -DEPENDS_ON-> a", "redundancy_group"),
    }
    assert "ci[1] bad-cpu" in str(info.value) and "cpu_count" in str(info.value)
    assert snapshot(services) == before


def test_unresolvable_relationship_rolls_back_the_whole_batch(services: Services) -> None:
    apply(services, "snmp", [obs("application", "app", key="app")])
    before = snapshot(services)
    with pytest.raises(ValidationErrors) as info:
        apply(
            services,
            "snmp",
            [obs("server", "srv", key="srv"), obs("location", "dc", key="dc")],
            [
                rel("RUNS_ON", "app", "srv"),  # fine
                rel("RUNS_ON", "app", "nowhere"),
                rel("RUNS_ON", "srv", "app"),  # a server does not run on an application
                RelationshipObservation(
                    "LOCATED_IN", CIRef(key="srv"), CIRef(identifier=("serial_number", "NOPE"))
                ),
            ],
            when=1,
        )
    errors = {(e.item, e.field) for e in info.value.errors}
    assert errors == {
        ("relationship[1] app -RUNS_ON-> nowhere", "to"),
        ("relationship[2] srv -RUNS_ON-> app", "type"),
        ("relationship[3] srv -LOCATED_IN-> serial_number:NOPE", "to"),
    }
    assert snapshot(services) == before


# -- merges -------------------------------------------------------------------------------


def test_merging_duplicates_keeps_both_histories(services: Services) -> None:
    erp = apply(
        services,
        "erp",
        [
            obs(
                "server",
                "asset-77",
                key="E77",
                identifiers={"erp_id": "77", "asset_tag": "AT77"},
                attributes={"cost_centre": "CC-9", "os": "linux"},
            ),
            obs("application", "billing", key="billing"),
        ],
        [rel("RUNS_ON", "billing", "E77")],
    )
    snmp = apply(
        services,
        "snmp",
        [
            obs(
                "server",
                "srv77",
                key="dev-77",
                identifiers={"serial_number": "SN77"},
                attributes={"os": "rhel", "model": "R740"},
            )
        ],
        when=1,
    )
    survivor, duplicate = erp.ci_ids[0], snmp.ci_ids[0]
    assert survivor and duplicate and survivor != duplicate
    duplicate_history = services.history.timeline(duplicate)
    survivor_history = services.history.timeline(survivor)

    from servicegraph.cmdb.context import change_context

    with change_context("alice"):
        services.reconciler.merge(survivor, duplicate)

    merged = get(services, survivor)
    gone = get(services, duplicate)
    assert gone.merged_into == survivor and gone.lifecycle is Lifecycle.RETIRED
    assert gone.identifiers == ()
    assert set(merged.identifiers) == {
        ("erp_id", "77"),
        ("asset_tag", "AT77"),
        ("serial_number", "SN77"),
    }
    # attributes the survivor lacked come over; its own stay
    assert merged.attributes == {"cost_centre": "CC-9", "os": "linux", "model": "R740"}
    assert services.store.merged_into(survivor) == [duplicate]
    assert [c.id for c in services.store.find_cis(CIQuery(ci_class="server"))] == [survivor]

    timeline = services.history.timeline(survivor)
    seqs = [e.seq for e in timeline]
    assert seqs == sorted(seqs)
    ids = {e.seq for e in timeline}
    assert {e.seq for e in duplicate_history} <= ids  # the duplicate's past is included
    assert {e.seq for e in survivor_history} <= ids
    assert [e.ci_id for e in timeline if e.kind is HistoryKind.CREATED] == [survivor, duplicate]
    merge_entries = [
        e for e in timeline if e.kind in (HistoryKind.MERGED_FROM, HistoryKind.MERGED_INTO)
    ]
    assert {(e.ci_id, e.kind, e.new, e.actor) for e in merge_entries} == {
        (survivor, HistoryKind.MERGED_FROM, duplicate, "alice"),
        (duplicate, HistoryKind.MERGED_INTO, survivor, "alice"),
    }

    # the duplicate's source key and identifiers now lead to the survivor
    later = apply(
        services, "snmp", [obs("server", key="dev-77", attributes={"cpu_count": 8})], when=2
    )
    assert later.ci_ids == [survivor]
    by_serial = apply(
        services, "erp", [obs("server", identifiers={"serial_number": "sn77"})], when=3
    )
    assert by_serial.ci_ids == [survivor] and by_serial.cis_created == 0
    assert get(services, survivor).attributes["cpu_count"] == 8
    # and addressing the old id explicitly reaches the survivor too
    explicit = apply(
        services, "manual", [obs("server", ci_id=duplicate, attributes={"notes": "n"})], when=4
    )
    assert explicit.ci_ids == [survivor]


def test_a_ci_merged_twice_is_found_through_its_last_survivor(services: Services) -> None:
    a, b, c = apply(
        services,
        "import",
        [obs("server", n, key=n, identifiers={"serial_number": f"S-{n}"}) for n in "abc"],
    ).ci_ids
    assert a and b and c
    services.reconciler.merge(b, a)
    services.reconciler.merge(c, b)
    assert sorted(services.store.merged_into(c)) == sorted([a, b])
    by_id = apply(services, "manual", [obs("server", ci_id=a, attributes={"os": "x"})], when=1)
    assert by_id.ci_ids == [c] and by_id.cis_created == 0
    by_key = apply(services, "import", [obs("server", key="a", attributes={"os": "y"})], when=2)
    assert by_key.ci_ids == [c]
    by_serial = apply(services, "erp", [obs("server", identifiers={"serial_number": "s-a"})])
    assert by_serial.ci_ids == [c]
    assert get(services, c).attributes == {"os": "y"}
    created = [e.ci_id for e in services.history.timeline(c) if e.kind is HistoryKind.CREATED]
    assert sorted(created) == sorted([a, b, c])


def test_merge_moves_relationships(services: Services) -> None:
    report = apply(
        services,
        "import",
        [
            obs("server", "keep", key="keep"),
            obs("server", "dup", key="dup"),
            obs("application", "app", key="app"),
            obs("cluster", "cl", key="cl"),
        ],
        [
            rel("RUNS_ON", "app", "dup"),
            rel("MEMBER_OF", "dup", "cl"),
            rel("MEMBER_OF", "keep", "cl"),
        ],
    )
    keep, dup, app, cl = report.ci_ids
    assert keep and dup and app and cl
    services.reconciler.merge(keep, dup)
    live = {r.key for r in services.store.relationships([keep, dup, app, cl])}
    assert live == {(app, "RUNS_ON", keep), (keep, "MEMBER_OF", cl)}
    assert services.store.relationships([dup]) == []


def test_merge_refuses_nonsense(services: Services) -> None:
    report = apply(
        services,
        "import",
        [
            obs("server", "a", key="a"),
            obs("server", "b", key="b"),
            obs("application", "c", key="c"),
        ],
    )
    a, b, c = report.ci_ids
    assert a and b and c
    with pytest.raises(ValidationFailed):
        services.reconciler.merge(a, a)
    with pytest.raises(UnknownCI):
        services.reconciler.merge(a, "ci-nope")
    with pytest.raises(ValidationFailed) as info:
        services.reconciler.merge(a, c)
    assert info.value.field == "class"
    services.reconciler.merge(a, b)
    with pytest.raises(ValidationFailed, match="already merged"):
        services.reconciler.merge(a, b)


# -- staleness ----------------------------------------------------------------------------


def test_stale_after_n_complete_runs_fresh_when_seen_again(
    make_services: Callable[..., Services],
) -> None:
    services = make_services(stale_after_runs=3)
    full = [
        obs("server", "keep", key="keep"),
        obs("server", "gone", key="gone"),
        obs("application", "app", key="app"),
    ]
    links = [rel("RUNS_ON", "app", "keep"), rel("RUNS_ON", "app", "gone", redundancy_group="g")]
    first = apply(services, "snmp", full, links, complete=True)
    keep, gone, _app = first.ci_ids
    assert keep and gone
    rest = [full[0], full[2]]
    reports = []
    for run in range(1, 5):
        # partial batches never count as a missed run
        apply(services, "snmp", [full[0]], when=run - 0.5)
        reports.append(apply(services, "snmp", rest, links[:1], when=run, complete=True))
        assert get(services, gone).stale is (run >= 3), run
    assert [r.cis_marked_stale for r in reports] == [0, 0, 1, 0]
    assert [r.relationships_marked_stale for r in reports] == [0, 0, 1, 0]
    gone_ci = get(services, gone)
    assert gone_ci.stale and services.store.counts()["cis"] == 3  # never deleted
    assert [c.id for c in services.store.find_cis(CIQuery(stale=True))] == [gone]
    (stale_rel,) = [r for r in services.store.relationships([gone])]
    assert stale_rel.stale and not stale_rel.removed
    assert not get(services, keep).stale

    back = apply(services, "snmp", full, links, when=10, complete=True)
    assert back.cis_marked_stale == 0
    assert not get(services, gone).stale
    assert not services.store.relationships([gone])[0].stale
    kinds = [
        e.kind
        for e in services.history.timeline(gone)
        if e.kind in (HistoryKind.STALE, HistoryKind.FRESH)
    ]
    assert kinds == [HistoryKind.STALE, HistoryKind.FRESH]
    (sighting,) = services.store.sightings(gone)
    assert (sighting.missed_runs, sighting.stale, sighting.last_seen) == (0, False, at(10))


def test_a_ci_another_source_still_reports_is_not_stale(
    make_services: Callable[..., Services],
) -> None:
    services = make_services(stale_after_runs=1)
    both = apply(
        services, "snmp", [obs("server", "x", identifiers={"serial_number": "S1"})], complete=True
    )
    apply(services, "erp", [obs("server", identifiers={"serial_number": "S1"})], complete=True)
    apply(services, "snmp", [], when=1, complete=True)
    assert not get(services, both.ci_ids[0]).stale
    apply(services, "erp", [], when=2, complete=True)
    assert get(services, both.ci_ids[0]).stale


def test_a_relationship_another_source_still_reports_is_not_stale(
    make_services: Callable[..., Services],
) -> None:
    services = make_services(stale_after_runs=1)
    cis = [
        obs("application", "app", identifiers={"service_id": "app"}),
        obs("server", "srv", identifiers={"serial_number": "S1"}),
    ]
    link = RelationshipObservation(
        "RUNS_ON",
        CIRef(identifier=("service_id", "app")),
        CIRef(identifier=("serial_number", "S1")),
    )
    apply(services, "snmp", cis, [link], complete=True)
    apply(services, "import", cis, [link], complete=True)
    # the import stops reporting the link; SNMP still sees it on every run
    apply(services, "import", cis, [], when=1, complete=True)
    apply(services, "snmp", cis, [link], when=2, complete=True)
    srv = services.store.find_cis(CIQuery(ci_class="server"))[0].id
    (live,) = services.store.relationships([srv])
    assert not live.stale
    # once no source reports it any more, it is stale
    apply(services, "snmp", cis, [], when=3, complete=True)
    (gone,) = services.store.relationships([srv])
    assert gone.stale and not gone.removed


# -- replay and history -------------------------------------------------------------------


def test_replaying_a_batch_changes_nothing(services: Services) -> None:
    batch = ObservationBatch(
        "snmp",
        [
            obs(
                "network_device",
                "core",
                key="core",
                identifiers={"serial_number": "C1"},
                attributes={"model": "N9K", "ip_addresses": ["10.0.0.1"]},
            ),
            obs("network_device", "acc", key="acc", identifiers={"serial_number": "A1"}),
            obs("cluster", "cl", key="cl", attributes={"min_healthy": 1}),
            obs("server", "s", key="s", identifiers={"mac": "00:00:00:00:00:01"}),
        ],
        [rel("CONNECTED_TO", "acc", "core", redundancy_group="up"), rel("MEMBER_OF", "s", "cl")],
        observed_at=at(0),
        complete=True,
    )
    first = services.reconciler.apply(batch)
    assert first.cis_created == 4 and first.relationships_created == 2
    before = snapshot(services)
    for again in (
        batch,
        ObservationBatch(
            batch.source, batch.cis, batch.relationships, observed_at=at(1), complete=True
        ),
    ):
        report = services.reconciler.apply(again)
        assert report.summary() == {
            "cis_created": 0,
            "cis_updated": 0,
            "cis_unchanged": 4,
            "relationships_created": 0,
            "relationships_updated": 0,
            "relationships_unchanged": 2,
            "history_entries": 0,
            "cis_marked_stale": 0,
            "relationships_marked_stale": 0,
            "conflicts": 0,
        }
        assert report.ci_ids == first.ci_ids
    after = snapshot(services)
    # only the sightings moved on (last seen at the second run's time)
    assert after[:-1] == before[:-1]


def test_replaying_a_complete_batch_does_not_count_a_missed_run_twice(
    make_services: Callable[..., Services],
) -> None:
    services = make_services(stale_after_runs=2)
    first = apply(
        services, "snmp", [obs("server", "a", key="a"), obs("server", "b", key="b")], complete=True
    )
    batch = ObservationBatch(
        "snmp", [obs("server", "a", key="a")], observed_at=at(1), complete=True
    )
    services.reconciler.apply(batch)
    services.reconciler.apply(batch)  # the same run delivered twice (a retry)
    b = first.ci_ids[1]
    assert services.store.sightings(b or "")[0].missed_runs == 1
    assert not get(services, b).stale


def test_timeline_records_time_source_actor_old_and_new(services: Services) -> None:
    from servicegraph.cmdb.context import change_context

    with change_context("importer-bot", request_id="req-1"):
        cid = apply(
            services, "erp", [obs("server", "db1", key="db1", attributes={"os": "rhel8"})]
        ).ci_ids[0]
    assert cid
    with change_context("alice"):
        apply(
            services,
            "manual",
            [obs("server", "db-1", ci_id=cid, attributes={"os": "rhel9", "notes": "upgraded"})],
            when=2,
        )
    apply(
        services,
        "snmp",
        [obs("application", "app", key="app")],
        [RelationshipObservation("RUNS_ON", CIRef(key="app"), CIRef(ci_id=cid))],
        when=3,
    )
    timeline = services.history.timeline(cid)
    rows = [(e.at, e.kind, e.field, e.old, e.new, e.source, e.actor) for e in timeline]
    created, *changes, added = rows
    assert created[:2] == (at(0), HistoryKind.CREATED)
    assert created[4]["attributes"] == {"os": "rhel8"}
    assert created[5:] == ("erp", "importer-bot")
    assert sorted(changes, key=str) == sorted(
        [
            (at(2), HistoryKind.ATTRIBUTE, "os", "rhel8", "rhel9", "manual", "alice"),
            (at(2), HistoryKind.ATTRIBUTE, "notes", None, "upgraded", "manual", "alice"),
            (at(2), HistoryKind.NAME, None, "db1", "db-1", "manual", "alice"),
        ],
        key=str,
    )
    assert added[:3] == (at(3), HistoryKind.RELATIONSHIP_ADDED, "RUNS_ON")
    assert added[5:] == ("snmp", "system")
    assert timeline[-1].other_ci_id == cid
    # windows
    assert [e.kind for e in services.history.timeline(cid, since=at(3))] == [
        HistoryKind.RELATIONSHIP_ADDED
    ]
    assert [e.kind for e in services.history.timeline(cid, until=at(1))] == [HistoryKind.CREATED]
    with pytest.raises(UnknownCI):
        services.history.timeline("ci-missing")


def test_stale_after_runs_must_be_positive(services: Services) -> None:
    with pytest.raises(ValueError):
        Reconciler(
            services.store,
            services.classes,
            services.relationship_rules,
            IdentifierRules(),
            services.reconciler.precedence,
            stale_after_runs=0,
        )
