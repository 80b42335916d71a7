"""The behaviour every store backend owes the services, as documented in
``servicegraph.cmdb.ports``.

A backend's test module subclasses ``StoreContract``, sets ``__test__ = True`` and provides
the ``store`` fixture: an empty, migrated store that the fixture closes afterwards. A
backend that cannot run here is skipped with the reason, never faked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from servicegraph.cmdb.errors import StoreError
from servicegraph.cmdb.model import (
    ConfigurationItem,
    Conflict,
    ConflictKind,
    HistoryEntry,
    HistoryKind,
    Lifecycle,
    OperationalState,
    Relationship,
    RelationshipKey,
)
from servicegraph.cmdb.ports import CIQuery, CISummary, EdgeChange, GraphStore

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def make_ci(
    ci_id: str,
    ci_class: str = "server",
    *,
    name: str | None = None,
    attributes: dict[str, Any] | None = None,
    identifiers: Iterable[tuple[str, str]] = (),
    **fields: Any,
) -> ConfigurationItem:
    attributes = attributes or {}
    return ConfigurationItem(
        id=ci_id,
        ci_class=ci_class,
        name=name or ci_id,
        attributes=attributes,
        identifiers=tuple(sorted(identifiers)),
        created_at=fields.pop("created_at", T0),
        updated_at=fields.pop("updated_at", T0),
        attribute_sources={"name": "test", **{k: "test" for k in attributes}},
        **fields,
    )


def make_rel(
    from_id: str, rel_type: str, to_id: str, attributes: dict[str, Any] | None = None, **kw: Any
) -> Relationship:
    return Relationship(
        from_id, rel_type, to_id, attributes or {}, created_at=T0, updated_at=T0, **kw
    )


def entry(ci_id: str, minutes: int, kind: HistoryKind = HistoryKind.ATTRIBUTE, **kw: Any):
    return HistoryEntry(at=at(minutes), ci_id=ci_id, kind=kind, **kw)


def by_key(rels: Iterable[Relationship]) -> list[Relationship]:
    """The port promises no order for relationship lists; compare them sorted."""
    return sorted(rels, key=lambda r: r.key)


def live_edges(edges: Sequence[EdgeChange]) -> set[tuple[str, str, str]]:
    """Fold a delta's edges: the relationships it leaves in place."""
    state: dict[tuple[str, str, str], bool] = {}
    for e in edges:
        state[(e.from_id, e.type, e.to_id)] = not e.removed
    return {key for key, alive in state.items() if alive}


class StoreContract:
    """Subclass per backend; override the ``store`` fixture."""

    __test__ = False

    @pytest.fixture
    def store(self) -> GraphStore:
        raise NotImplementedError("a backend's test class provides the store fixture")

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def insert(store: GraphStore, *cis: ConfigurationItem) -> None:
        with store.write() as w:
            w.insert_cis(list(cis))

    # -- lifecycle -----------------------------------------------------------------------

    def test_migrate_is_idempotent_and_keeps_data(self, store: GraphStore) -> None:
        self.insert(store, make_ci("ci-a", identifiers=[("serial_number", "S1")]))
        store.migrate()
        store.migrate()
        store.ping()
        assert set(store.get_cis(["ci-a"])) == {"ci-a"}
        assert store.resolve_identifiers([("serial_number", "S1")]) == {
            ("serial_number", "S1"): "ci-a"
        }
        assert store.counts()["cis"] == 1

    def test_empty_store(self, store: GraphStore) -> None:
        counts = store.counts()
        assert counts["cis"] == 0
        assert counts["relationships"] == 0
        assert counts["history_entries"] == 0
        assert store.get_cis(["nope"]) == {}
        assert store.find_cis(CIQuery()) == []
        assert store.relationships(["nope"]) == []
        assert store.history(["nope"]) == []
        assert store.conflicts() == []
        assert store.merged_into("nope") == []
        assert store.sightings("nope") == []

    # -- CIs -----------------------------------------------------------------------------

    def test_insert_and_get_round_trip_every_field(self, store: GraphStore) -> None:
        original = make_ci(
            "ci-a",
            "network_device",
            name="core-1",
            attributes={"model": "C9300", "ip_addresses": ["10.0.0.1", "10.0.0.2"], "x": None},
            identifiers=[("serial_number", "FOC1"), ("hostname", "core-1")],
            lifecycle=Lifecycle.PLANNED,
            operational_state=OperationalState.DEGRADED,
            stale=True,
            created_at=at(1),
            updated_at=at(2),
            version=7,
        )
        other = make_ci("ci-b")
        self.insert(store, original, other)
        found = store.get_cis(["ci-a", "ci-b", "ci-missing"])
        assert set(found) == {"ci-a", "ci-b"}
        assert found["ci-a"] == original
        assert found["ci-b"] == other
        assert found["ci-a"].created_at.tzinfo is not None

    def test_summaries_give_name_and_criticality(self, store: GraphStore) -> None:
        self.insert(
            store,
            make_ci("ci-a", name="core-1", attributes={"criticality": 1, "model": "C9300"}),
            make_ci("ci-b"),
            make_ci("ci-c", merged_into="ci-a"),
            make_ci("ci-d", attributes={"sla_tier": "gold", "service_hours": "office"}),
        )
        assert store.summaries(["ci-a", "ci-b", "ci-c", "ci-d", "ci-missing", "ci-a"]) == {
            "ci-a": CISummary("core-1", 1),
            "ci-d": CISummary("ci-d", None, "gold", "office"),
            "ci-b": CISummary("ci-b", None),
            "ci-c": CISummary("ci-c", None),
        }
        assert store.summaries([]) == {}

    def test_insert_existing_id_raises_store_error(self, store: GraphStore) -> None:
        self.insert(store, make_ci("ci-a"))
        with pytest.raises(StoreError), store.write() as w:
            w.insert_cis([make_ci("ci-a", name="again")])
        assert store.get_cis(["ci-a"])["ci-a"].name == "ci-a"

    def test_update_replaces_ci_but_not_identifiers(self, store: GraphStore) -> None:
        self.insert(store, make_ci("ci-a", identifiers=[("serial_number", "S1")]))
        changed = make_ci(
            "ci-a",
            name="renamed",
            attributes={"os": "linux"},
            identifiers=[("serial_number", "S1")],
            version=2,
            updated_at=at(5),
        )
        with store.write() as w:
            w.update_cis([changed])
            assert w.load_cis(["ci-a"])["ci-a"] == changed  # read your own writes
        assert store.get_cis(["ci-a"])["ci-a"] == changed

    def test_find_cis_filters(self, store: GraphStore) -> None:
        self.insert(
            store,
            make_ci(
                "ci-1",
                "server",
                name="Web-01",
                attributes={"os": "linux", "cpu_count": 4, "ip_addresses": ["10.0.0.1"]},
            ),
            make_ci("ci-2", "server", name="web-02", attributes={"os": "windows"}),
            make_ci("ci-3", "server", name="db-01", attributes={"os": "linux"}, stale=True),
            make_ci("ci-4", "network_device", name="WEB-switch"),
            make_ci("ci-5", "server", name="web-old", merged_into="ci-1"),
        )

        def ids(**kw: Any) -> list[str]:
            return [ci.id for ci in store.find_cis(CIQuery(**kw))]

        assert ids() == ["ci-1", "ci-2", "ci-3", "ci-4"]
        assert ids(include_merged=True) == ["ci-1", "ci-2", "ci-3", "ci-4", "ci-5"]
        assert ids(ci_class="server") == ["ci-1", "ci-2", "ci-3"]
        assert ids(name_contains="web") == ["ci-1", "ci-2", "ci-4"]
        assert ids(name_contains="WEB", ci_class="server") == ["ci-1", "ci-2"]
        assert ids(attributes={"os": "linux"}) == ["ci-1", "ci-3"]
        assert ids(attributes={"os": "linux", "cpu_count": 4}) == ["ci-1"]
        assert ids(attributes={"os": "solaris"}) == []
        assert ids(attributes={"ip_addresses": ["10.0.0.1"]}) == ["ci-1"]
        assert ids(stale=True) == ["ci-3"]
        assert ids(stale=False, ci_class="server") == ["ci-1", "ci-2"]
        assert ids(limit=2) == ["ci-1", "ci-2"]

    def test_find_cis_pages_with_an_id_cursor(self, store: GraphStore) -> None:
        expected = sorted(f"ci-{i:03d}" for i in range(37))
        # inserted out of order: the order of a page is the id order, not insertion order
        self.insert(store, *(make_ci(i) for i in reversed(expected)))
        self.insert(store, make_ci("ci-zz", "location"))
        pages: list[list[str]] = []
        after: str | None = None
        while True:
            page = [
                ci.id for ci in store.find_cis(CIQuery(ci_class="server", limit=10, after=after))
            ]
            if not page:
                break
            pages.append(page)
            after = page[-1]
        assert [len(p) for p in pages] == [10, 10, 10, 7]
        assert [i for p in pages for i in p] == expected

    # -- identifiers and keys --------------------------------------------------------------

    def test_identifiers_lookup(self, store: GraphStore) -> None:
        self.insert(
            store,
            make_ci("ci-a", identifiers=[("serial_number", "S1"), ("hostname", "a")]),
            make_ci("ci-b", identifiers=[("serial_number", "S2")]),
        )
        wanted = [("serial_number", "S1"), ("serial_number", "S2"), ("hostname", "zz")]
        expected = {("serial_number", "S1"): "ci-a", ("serial_number", "S2"): "ci-b"}
        assert store.resolve_identifiers(wanted) == expected
        # same value under another kind is another identifier
        assert store.resolve_identifiers([("hostname", "S1")]) == {}
        with store.write() as w:
            assert w.lookup_identifiers(wanted) == expected
            assert w.lookup_identifiers([]) == {}
            w.add_identifiers([(("mac", "00:11:22:33:44:55"), "ci-b")])
            assert w.lookup_identifiers([("mac", "00:11:22:33:44:55")]) == {
                ("mac", "00:11:22:33:44:55"): "ci-b"
            }
        assert store.get_cis(["ci-b"])["ci-b"].identifiers == (
            ("mac", "00:11:22:33:44:55"),
            ("serial_number", "S2"),
        )

    def test_identifier_held_by_another_ci_raises_and_writes_nothing(
        self, store: GraphStore
    ) -> None:
        self.insert(
            store,
            make_ci("ci-a", identifiers=[("serial_number", "S1")]),
            make_ci("ci-b"),
        )
        seq = store.change_seq()
        with pytest.raises(StoreError), store.write() as w:
            w.update_cis([make_ci("ci-b", name="touched")])
            w.add_identifiers([(("serial_number", "S1"), "ci-b")])
        assert store.resolve_identifiers([("serial_number", "S1")]) == {
            ("serial_number", "S1"): "ci-a"
        }
        assert store.get_cis(["ci-b"])["ci-b"].name == "ci-b"
        assert store.change_seq() == seq
        # a new CI cannot be created with another's identifier either
        with pytest.raises(StoreError), store.write() as w:
            w.insert_cis([make_ci("ci-c", identifiers=[("serial_number", "S1")])])
        assert store.get_cis(["ci-c"]) == {}

    def test_remove_identifiers_frees_them(self, store: GraphStore) -> None:
        self.insert(store, make_ci("ci-a", identifiers=[("serial_number", "S1")]), make_ci("ci-b"))
        with store.write() as w:
            w.remove_identifiers([("serial_number", "S1")])
            w.add_identifiers([(("serial_number", "S1"), "ci-b")])
        assert store.resolve_identifiers([("serial_number", "S1")]) == {
            ("serial_number", "S1"): "ci-b"
        }
        assert store.get_cis(["ci-a"])["ci-a"].identifiers == ()

    def test_source_keys_are_scoped_per_source(self, store: GraphStore) -> None:
        self.insert(store, make_ci("ci-a"), make_ci("ci-b"), make_ci("ci-c"))
        with store.write() as w:
            w.set_keys("snmp", [("k1", "ci-a"), ("k2", "ci-b")])
            w.set_keys("erp", [("k1", "ci-c")])
            assert w.lookup_keys("snmp", ["k1", "k2", "k3"]) == {"k1": "ci-a", "k2": "ci-b"}
            assert w.lookup_keys("erp", ["k1", "k2"]) == {"k1": "ci-c"}
            assert w.lookup_keys("zabbix", ["k1"]) == {}
        assert store.resolve_keys(["k1"]) == {"k1": {"ci-a", "ci-c"}}
        assert store.resolve_keys(["k1", "k2"], source="snmp") == {
            "k1": {"ci-a"},
            "k2": {"ci-b"},
        }
        # insert or replace
        with store.write() as w:
            w.set_keys("snmp", [("k1", "ci-b")])
        assert store.resolve_keys(["k1"], source="snmp") == {"k1": {"ci-b"}}

    def test_move_keys_and_sightings(self, store: GraphStore) -> None:
        self.insert(store, make_ci("ci-dup"), make_ci("ci-keep"))
        with store.write() as w:
            w.set_keys("snmp", [("dev-1", "ci-dup")])
            w.record_sightings("snmp", "r1", at(1), ["ci-dup"], [])
            w.record_sightings("erp", "e1", at(2), ["ci-dup"], [])
            w.record_sightings("erp", "e2", at(5), ["ci-keep"], [])
        with store.write() as w:
            w.move_keys_and_sightings("ci-dup", "ci-keep")
            assert w.lookup_keys("snmp", ["dev-1"]) == {"dev-1": "ci-keep"}
        assert store.sightings("ci-dup") == []
        sightings = {s.source: s for s in store.sightings("ci-keep")}
        assert set(sightings) == {"snmp", "erp"}
        assert sightings["snmp"].last_run == "r1"
        # both had an erp sighting: the survivor's is kept
        assert sightings["erp"].last_run == "e2"
        assert sightings["erp"].last_seen == at(5)

    # -- relationships -------------------------------------------------------------------

    def test_relationships_save_load_and_filters(self, store: GraphStore) -> None:
        self.insert(store, *(make_ci(i) for i in ("a", "b", "c", "d")))
        ab = make_rel("a", "DEPENDS_ON", "b", {"redundancy_group": "g"})
        ac = make_rel("a", "CONNECTED_TO", "c")
        cb = make_rel("c", "DEPENDS_ON", "b")
        da = make_rel("d", "DEPENDS_ON", "a")
        with store.write() as w:
            w.save_relationships([ab, ac, cb, da], [])
            assert w.load_relationships([ab.key, ("a", "DEPENDS_ON", "d")]) == {ab.key: ab}
        assert by_key(store.relationships(["a"], direction="out")) == [ac, ab]
        assert by_key(store.relationships(["a"], direction="in")) == [da]
        assert by_key(store.relationships(["a"])) == [ac, ab, da]
        assert by_key(store.relationships(["b"], direction="in")) == [ab, cb]
        assert store.relationships(["b"], direction="out") == []
        assert by_key(store.relationships(["a"], types=["DEPENDS_ON"])) == [ab, da]
        assert store.relationships(["a", "c"], direction="out", types=["CONNECTED_TO"]) == [ac]
        assert store.relationships(["a"], types=[]) == []
        # a relationship between two of the CIs asked for is listed once
        assert by_key(store.relationships(["a", "b"])) == [ac, ab, cb, da]
        assert store.counts()["relationships"] == 4

    def test_relationship_upsert_and_removed_flag(self, store: GraphStore) -> None:
        self.insert(store, make_ci("a"), make_ci("b"))
        rel = make_rel("a", "DEPENDS_ON", "b", {"note": "x"})
        with store.write() as w:
            w.save_relationships([rel], [])
        updated = make_rel("a", "DEPENDS_ON", "b", {"note": "y"})
        removed = make_rel("a", "DEPENDS_ON", "b", {"note": "y"}, removed=True, stale=True)
        with store.write() as w:
            w.save_relationships([], [updated])
            assert w.load_relationships([rel.key]) == {rel.key: updated}
            w.save_relationships([], [removed])
            # removed relationships are still loaded by key, but not current
            assert w.load_relationships([rel.key]) == {rel.key: removed}
            assert w.relationships_of(["a"]) == []
        assert store.relationships(["a"]) == []
        assert store.relationships(["a"], include_removed=True) == [removed]
        assert store.counts()["relationships"] == 0
        with store.write() as w:
            w.save_relationships([], [updated])
            assert w.relationships_of(["b"]) == [updated]
        assert store.relationships(["b"]) == [updated]

    # -- sightings and staleness ---------------------------------------------------------

    def test_sightings_and_sweep_staleness(self, store: GraphStore) -> None:
        self.insert(store, make_ci("a"), make_ci("b"))
        ab = make_rel("a", "DEPENDS_ON", "b")
        with store.write() as w:
            w.save_relationships([ab], [])
            assert w.record_sightings("snmp", "r1", at(1), ["a", "b"], [ab.key]) == ([], [])
            assert w.sweep_unseen("snmp", "r1", 2) == ([], [])
        (s,) = store.sightings("b")
        assert (s.source, s.first_seen, s.last_seen, s.last_run, s.missed_runs, s.stale) == (
            "snmp",
            at(1),
            at(1),
            "r1",
            0,
            False,
        )
        with store.write() as w:
            w.record_sightings("snmp", "r2", at(2), ["a"], [])
            assert w.sweep_unseen("snmp", "r2", 2) == ([], [])
        assert store.sightings("b")[0].missed_runs == 1
        assert not store.sightings("b")[0].stale
        assert store.sightings("a")[0].last_seen == at(2)
        assert store.sightings("a")[0].first_seen == at(1)
        with store.write() as w:
            w.record_sightings("snmp", "r3", at(3), ["a"], [])
            assert w.sweep_unseen("snmp", "r3", 2) == (["b"], [ab.key])
        assert store.sightings("b")[0].stale
        assert store.sightings("b")[0].missed_runs == 2
        # already stale: not reported a second time
        with store.write() as w:
            w.record_sightings("snmp", "r4", at(4), ["a"], [])
            assert w.sweep_unseen("snmp", "r4", 2) == ([], [])
        assert store.sightings("b")[0].missed_runs == 3
        # seen again: reported as formerly stale, counters reset
        with store.write() as w:
            assert w.record_sightings("snmp", "r5", at(5), ["a", "b"], [ab.key]) == (
                ["b"],
                [ab.key],
            )
        (s,) = store.sightings("b")
        assert (s.missed_runs, s.stale, s.last_seen, s.first_seen) == (0, False, at(5), at(1))

    def test_ci_is_stale_only_when_stale_for_every_source(self, store: GraphStore) -> None:
        self.insert(store, make_ci("a"), make_ci("b"))
        with store.write() as w:
            w.record_sightings("snmp", "s1", at(1), ["a", "b"], [])
            w.record_sightings("erp", "e1", at(1), ["b"], [])
        with store.write() as w:
            w.record_sightings("snmp", "s2", at(2), [], [])
            assert w.sweep_unseen("snmp", "s2", 1) == (["a"], [])  # erp still vouches for b
        with store.write() as w:
            w.record_sightings("erp", "e2", at(3), [], [])
            assert w.sweep_unseen("erp", "e2", 1) == (["b"], [])
        assert {s.source: s.stale for s in store.sightings("b")} == {"snmp": True, "erp": True}

    def test_relationship_is_stale_only_when_stale_for_every_source(
        self, store: GraphStore
    ) -> None:
        self.insert(store, make_ci("a"), make_ci("b"))
        ab = make_rel("a", "DEPENDS_ON", "b")
        with store.write() as w:
            w.save_relationships([ab], [])
            w.record_sightings("snmp", "s1", at(1), [], [ab.key])
            w.record_sightings("import", "i1", at(1), [], [ab.key])
        with store.write() as w:
            w.record_sightings("import", "i2", at(2), [], [])
            assert w.sweep_unseen("import", "i2", 1) == ([], [])  # snmp still reports it
        with store.write() as w:
            # seen by snmp, which never lost it: nothing was stale for snmp
            assert w.record_sightings("snmp", "s2", at(3), [], [ab.key]) == ([], [])
        with store.write() as w:
            w.record_sightings("snmp", "s3", at(4), [], [])
            assert w.sweep_unseen("snmp", "s3", 1) == ([], [ab.key])

    def test_sweeping_a_run_twice_counts_one_missed_run(self, store: GraphStore) -> None:
        self.insert(store, make_ci("a"), make_ci("b"))
        ab = make_rel("a", "DEPENDS_ON", "b")
        with store.write() as w:
            w.save_relationships([ab], [])
            w.record_sightings("snmp", "r1", at(1), ["a", "b"], [ab.key])
        for _ in range(3):  # the same run delivered three times
            with store.write() as w:
                w.record_sightings("snmp", "r2", at(2), ["a"], [])
                assert w.sweep_unseen("snmp", "r2", 2) == ([], [])
        assert store.sightings("b")[0].missed_runs == 1
        with store.write() as w:
            w.record_sightings("snmp", "r3", at(3), ["a"], [])
            assert w.sweep_unseen("snmp", "r3", 2) == (["b"], [ab.key])
        # another source's runs are counted on their own
        with store.write() as w:
            w.record_sightings("erp", "r3", at(3), ["b"], [])
            assert w.sweep_unseen("erp", "r3", 2) == ([], [])
        assert {s.source: s.missed_runs for s in store.sightings("b")} == {"snmp": 2, "erp": 0}

    def test_first_sightings_are_sightings(self, store: GraphStore) -> None:
        self.insert(store, make_ci("a"), make_ci("b"))
        ab = make_rel("a", "DEPENDS_ON", "b")
        with store.write() as w:
            w.save_relationships([ab], [])
            w.record_first_sightings("snmp", "r1", at(1), ["a"], [ab.key])
            w.record_sightings("snmp", "r1", at(1), ["b"], [])
        assert store.sightings("a") == store.sightings("b")
        (s,) = store.sightings("a")
        assert (s.source, s.first_seen, s.last_seen, s.last_run, s.missed_runs, s.stale) == (
            "snmp",
            at(1),
            at(1),
            "r1",
            0,
            False,
        )
        with store.write() as w:
            assert w.record_sightings("snmp", "r2", at(2), ["a"], [ab.key]) == ([], [])
        assert (store.sightings("a")[0].first_seen, store.sightings("a")[0].last_seen) == (
            at(1),
            at(2),
        )
        with store.write() as w:
            stale_cis, stale_rels = w.sweep_unseen("snmp", "r3", 1)
        assert (sorted(stale_cis), stale_rels) == (["a", "b"], [ab.key])

    def test_a_sweep_in_parts_counts_each_unseen_item_once(self, store: GraphStore) -> None:
        ids = ["a", "b", "c", "d", "e"]
        self.insert(store, *(make_ci(i) for i in ids))
        rels = [make_rel("a", "DEPENDS_ON", "b"), make_rel("b", "DEPENDS_ON", "c")]
        with store.write() as w:
            w.save_relationships(rels, [])
            w.record_sightings("snmp", "r1", at(1), ids, [r.key for r in rels])
            w.record_sightings("snmp", "r2", at(2), ["e"], [])

        def sweep(run: str) -> tuple[list[str], list[RelationshipKey], int]:
            cis: list[str] = []
            keys: list[RelationshipKey] = []
            for part in range(1, 20):  # bounded: 6 unseen items, 2 a part
                with store.write() as w:
                    stale_cis, stale_rels, finished = w.sweep_unseen_part("snmp", run, 1, 2)
                cis += stale_cis
                keys += stale_rels
                if finished:
                    return cis, keys, part
            raise AssertionError("the sweep never finished")

        cis, keys, parts = sweep("r2")
        assert sorted(cis) == ["a", "b", "c", "d"] and sorted(keys) == sorted(r.key for r in rels)
        assert parts <= 4  # 6 items, 2 a part, and maybe one that finds nothing left
        assert {i: store.sightings(i)[0].missed_runs for i in ids} == {
            "a": 1,
            "b": 1,
            "c": 1,
            "d": 1,
            "e": 0,
        }
        # the finished run again counts nothing, in parts or whole
        assert sweep("r2") == ([], [], 1)
        with store.write() as w:
            assert w.sweep_unseen("snmp", "r2", 1) == ([], [])
        assert store.sightings("a")[0].missed_runs == 1
        # the next run counts again; what is stale already is not reported again
        assert sweep("r3")[:2] == (["e"], [])
        assert store.sightings("a")[0].missed_runs == 2
        with store.write() as w, pytest.raises(ValueError, match="limit"):
            w.sweep_unseen_part("snmp", "r4", 1, 0)

    def test_expiring_in_parts_reports_each_item_once_when_no_source_is_left(
        self, store: GraphStore
    ) -> None:
        self.insert(store, make_ci("a"), make_ci("b"), make_ci("c"))
        ab = make_rel("a", "DEPENDS_ON", "b")
        with store.write() as w:
            w.save_relationships([ab], [])
            w.record_sightings("snmp", "s1", at(1), ["a", "b", "c"], [ab.key])
            w.record_sightings("erp", "e1", at(1), ["a"], [])
            w.record_sightings("erp", "e2", at(5), ["c"], [])  # erp still reports c

        def expire() -> tuple[list[str], list[RelationshipKey], int]:
            cis: list[str] = []
            keys: list[RelationshipKey] = []
            for part in range(1, 20):  # bounded: 5 old sightings, 2 a part
                with store.write() as w:
                    stale_cis, stale_rels, finished = w.expire_sightings(at(3), 2)
                cis += stale_cis
                keys += stale_rels
                if finished:
                    return cis, keys, part
            raise AssertionError("the expiry never finished")

        cis, keys, parts = expire()
        assert (sorted(cis), keys) == (["a", "b"], [ab.key])
        assert parts <= 3  # 5 sightings, 2 a part
        assert {(s.source, s.stale) for s in store.sightings("c")} == {
            ("snmp", True),
            ("erp", False),
        }
        assert expire() == ([], [], 1), "what expired once is not expired again"
        with store.write() as w:
            assert w.expire_sightings(at(6)) == (["c"], [], True)
        with store.write() as w, pytest.raises(ValueError, match="limit"):
            w.expire_sightings(at(6), 0)

    def test_sweep_is_scoped_to_the_source(self, store: GraphStore) -> None:
        self.insert(store, make_ci("a"))
        with store.write() as w:
            w.record_sightings("erp", "e1", at(1), ["a"], [])
        for run in ("s1", "s2", "s3"):
            with store.write() as w:
                w.record_sightings("snmp", run, at(2), [], [])
                assert w.sweep_unseen("snmp", run, 1) == ([], [])
        assert [(s.source, s.missed_runs) for s in store.sightings("a")] == [("erp", 0)]

    # -- history -------------------------------------------------------------------------

    def test_history_ordered_by_seq_with_windows_and_both_ends(self, store: GraphStore) -> None:
        self.insert(store, make_ci("a"), make_ci("b"), make_ci("c"))
        first = [
            entry("a", 0, HistoryKind.CREATED, new={"class": "server", "name": "a"}),
            entry("a", 10, field="os", old=None, new="linux", source="snmp", actor="bob"),
            # recorded later but dated earlier: order stays the recording order
            entry("a", 5, field="os", old="linux", new="bsd", source="erp", run_id="r9"),
        ]
        second = [
            entry(
                "b",
                20,
                HistoryKind.RELATIONSHIP_ADDED,
                field="DEPENDS_ON",
                other_ci_id="a",
                new={"redundancy_group": "g"},
            ),
            entry("c", 30, field="os", new="aix"),
        ]
        with store.write() as w:
            w.append_history(first)
        with store.write() as w:
            w.append_history(second)
        got = store.history(["a"])
        assert [(e.kind, e.at, e.new) for e in got] == [
            (HistoryKind.CREATED, at(0), {"class": "server", "name": "a"}),
            (HistoryKind.ATTRIBUTE, at(10), "linux"),
            (HistoryKind.ATTRIBUTE, at(5), "bsd"),
            (HistoryKind.RELATIONSHIP_ADDED, at(20), {"redundancy_group": "g"}),
        ]
        seqs = [e.seq for e in got]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] > 0
        # every field survives the round trip
        assert got[1] == replace(first[1], seq=got[1].seq)
        assert got[2] == replace(first[2], seq=got[2].seq)
        assert got[3] == replace(second[0], seq=got[3].seq)
        # the relationship entry is found from both ends, once
        assert [e.kind for e in store.history(["b"])] == [HistoryKind.RELATIONSHIP_ADDED]
        assert len(store.history(["a", "b"])) == 4
        # windows are inclusive and filter on the entry's time
        assert [e.at for e in store.history(["a"], since=at(5))] == [at(10), at(5), at(20)]
        assert [e.at for e in store.history(["a"], until=at(5))] == [at(0), at(5)]
        assert [e.at for e in store.history(["a"], since=at(5), until=at(10))] == [at(10), at(5)]
        assert store.history(["a"], since=at(21)) == []
        assert [e.new for e in store.history(["c"])] == ["aix"]
        assert store.counts()["history_entries"] == 5

    # -- merges --------------------------------------------------------------------------

    def test_merged_into_is_transitive(self, store: GraphStore) -> None:
        self.insert(
            store,
            make_ci("ci-c"),
            make_ci("ci-b", merged_into="ci-c"),
            make_ci("ci-a", merged_into="ci-b"),
            make_ci("ci-d", merged_into="ci-c"),
            make_ci("ci-x"),
        )
        assert sorted(store.merged_into("ci-c")) == ["ci-a", "ci-b", "ci-d"]
        assert store.merged_into("ci-b") == ["ci-a"]
        assert store.merged_into("ci-a") == []
        assert store.merged_into("ci-x") == []
        assert store.counts()["cis"] == 2  # merged CIs are not counted as CIs
        assert set(store.get_cis(["ci-a", "ci-b"])) == {"ci-a", "ci-b"}

    # -- conflicts -----------------------------------------------------------------------

    def test_conflicts_round_trip_newest_first(self, store: GraphStore) -> None:
        conflicts = [
            Conflict(
                kind=ConflictKind.IDENTIFIER_CLAIMED,
                source="snmp",
                item=f"ci[{i}] dev-{i}",
                identifier=("serial_number", f"S{i}") if i % 2 == 0 else None,
                ci_id=f"ci-{i}",
                other_ci_id="ci-other" if i % 2 == 0 else None,
                detail=f"detail {i}",
                detected_at=at(i),
                run_id="r1",
            )
            for i in range(5)
        ]
        with store.write() as w:
            w.add_conflicts(conflicts[:3])
        with store.write() as w:
            w.add_conflicts(conflicts[3:])
            w.add_conflicts([])
        got = store.conflicts()
        assert [c.item for c in got] == [c.item for c in reversed(conflicts)]
        assert len({c.id for c in got}) == 5
        for stored in got:
            original = next(c for c in conflicts if c.item == stored.item)
            assert stored == replace(original, id=stored.id)
        assert [c.item for c in store.conflicts(limit=2)] == ["ci[4] dev-4", "ci[3] dev-3"]

    # -- change sequence and graph deltas ------------------------------------------------

    def test_change_seq_grows_on_every_committed_write(self, store: GraphStore) -> None:
        seen = [store.change_seq()]

        def step() -> int:
            seen.append(store.change_seq())
            assert seen[-1] > seen[-2]
            return seen[-1]

        self.insert(store, make_ci("a"), make_ci("b"))
        step()
        with store.write() as w:
            w.update_cis([make_ci("a", name="a2")])
        step()
        with store.write() as w:
            w.save_relationships([make_rel("a", "DEPENDS_ON", "b")], [])
        step()
        with store.write() as w:
            w.save_relationships([], [make_rel("a", "DEPENDS_ON", "b", removed=True)])
        step()
        with store.write() as w:
            w.append_history([entry("a", 1, field="os", new="x")])
        step()

    def test_change_seq_unchanged_by_rollback_and_reads(self, store: GraphStore) -> None:
        self.insert(store, make_ci("a"), make_ci("b"))
        seq = store.change_seq()
        with pytest.raises(RuntimeError), store.write() as w:
            w.insert_cis([make_ci("c")])
            w.update_cis([make_ci("a", name="a2")])
            w.save_relationships([make_rel("a", "DEPENDS_ON", "b")], [])
            raise RuntimeError("boom")
        assert store.change_seq() == seq
        with store.write() as w:
            w.load_cis(["a"])
            w.lookup_identifiers([("serial_number", "x")])
        store.find_cis(CIQuery())
        store.graph_delta(0)
        assert store.change_seq() == seq

    def test_a_failing_unit_of_work_rolls_back_everything(self, store: GraphStore) -> None:
        self.insert(store, make_ci("a", identifiers=[("serial_number", "S1")]), make_ci("b"))
        with store.write() as w:
            w.set_keys("snmp", [("k-a", "a")])
            w.record_sightings("snmp", "r1", at(1), ["a"], [])
        before = (store.counts(), store.change_seq(), store.get_cis(["a", "b"]))
        with pytest.raises(ValueError, match="late failure"), store.write() as w:
            w.insert_cis([make_ci("c", identifiers=[("serial_number", "S3")])])
            w.update_cis([make_ci("a", name="changed", identifiers=[("serial_number", "S1")])])
            w.add_identifiers([(("mac", "00:00:00:00:00:01"), "b")])
            w.remove_identifiers([("serial_number", "S1")])
            w.set_keys("snmp", [("k-a", "b"), ("k-c", "c")])
            w.move_keys_and_sightings("a", "b")
            w.save_relationships([make_rel("a", "DEPENDS_ON", "b")], [])
            w.record_sightings("erp", "e1", at(2), ["a", "b"], [])
            w.sweep_unseen("snmp", "r2", 1)
            w.append_history([entry("a", 2, field="os", new="x")])
            w.add_conflicts(
                [Conflict(ConflictKind.CLASS_MISMATCH, "snmp", "item", None, "a", None, "detail")]
            )
            raise ValueError("late failure")
        assert (store.counts(), store.change_seq(), store.get_cis(["a", "b"])) == before
        assert store.get_cis(["c"]) == {}
        assert store.resolve_identifiers(
            [("serial_number", "S1"), ("serial_number", "S3"), ("mac", "00:00:00:00:00:01")]
        ) == {("serial_number", "S1"): "a"}
        assert store.resolve_keys(["k-a", "k-c"]) == {"k-a": {"a"}}
        assert [(s.source, s.missed_runs) for s in store.sightings("a")] == [("snmp", 0)]
        assert store.sightings("b") == []
        assert store.relationships(["a"], include_removed=True) == []
        assert store.history(["a"]) == []
        assert store.conflicts() == []

    def test_graph_delta_from_zero_holds_everything(self, store: GraphStore) -> None:
        self.insert(
            store,
            make_ci("sw", "network_device"),
            make_ci("up1", "network_device"),
            make_ci("up2", "network_device"),
            make_ci("cl", "cluster", attributes={"min_healthy": 2}),
            make_ci("cl-unset", "cluster"),
            make_ci("m1"),
            make_ci("old", merged_into="m1"),
        )
        with store.write() as w:
            w.save_relationships(
                [
                    make_rel("sw", "CONNECTED_TO", "up1", {"redundancy_group": "uplink"}),
                    make_rel(
                        "sw",
                        "CONNECTED_TO",
                        "up2",
                        {"redundancy_group": "uplink", "min_healthy": 1},
                    ),
                    make_rel("m1", "MEMBER_OF", "cl"),
                    make_rel("old", "MEMBER_OF", "cl", removed=True),
                ],
                [],
            )
        delta = store.graph_delta(0)
        assert delta.seq == store.change_seq()
        assert delta.cis == {
            "sw": ("network_device", None),
            "up1": ("network_device", None),
            "up2": ("network_device", None),
            "cl": ("cluster", None),
            "cl-unset": ("cluster", None),
            "m1": ("server", None),
            "old": ("server", "m1"),
        }
        edges = {(e.from_id, e.type, e.to_id): e for e in delta.edges}
        assert live_edges(delta.edges) == {
            ("sw", "CONNECTED_TO", "up1"),
            ("sw", "CONNECTED_TO", "up2"),
            ("m1", "MEMBER_OF", "cl"),
        }
        assert (
            edges["sw", "CONNECTED_TO", "up1"].redundancy_group,
            edges["sw", "CONNECTED_TO", "up1"].min_healthy,
        ) == ("uplink", None)
        assert edges["sw", "CONNECTED_TO", "up2"].min_healthy == 1
        assert edges["m1", "MEMBER_OF", "cl"].redundancy_group is None
        assert delta.cluster_min_healthy.get("cl") == 2
        assert delta.cluster_min_healthy.get("cl-unset") is None
        # nothing changed since: an empty delta at the same sequence number
        again = store.graph_delta(delta.seq)
        assert (again.seq, again.cis, again.edges, again.cluster_min_healthy) == (
            delta.seq,
            {},
            [],
            {},
        )

    def test_graph_delta_is_incremental(self, store: GraphStore) -> None:
        self.insert(
            store,
            make_ci("a", "application"),
            make_ci("s1"),
            make_ci("s2"),
            make_ci("cl", "cluster", attributes={"min_healthy": 2}),
        )
        with store.write() as w:
            w.save_relationships(
                [
                    make_rel("a", "RUNS_ON", "s1"),
                    make_rel("a", "RUNS_ON", "s2"),
                    make_rel("s1", "MEMBER_OF", "cl"),
                ],
                [],
            )
        base = store.graph_delta(0).seq

        # a relationship removed, one changed, one added, a cluster size unset
        with store.write() as w:
            w.save_relationships(
                [make_rel("s2", "MEMBER_OF", "cl")],
                [
                    make_rel("a", "RUNS_ON", "s1", removed=True),
                    make_rel("a", "RUNS_ON", "s2", {"redundancy_group": "g"}),
                ],
            )
            w.update_cis([make_ci("cl", "cluster", version=2)])
        delta = store.graph_delta(base)
        assert delta.seq == store.change_seq() > base
        edges = {(e.from_id, e.type, e.to_id): e for e in delta.edges}
        assert set(edges) == {
            ("a", "RUNS_ON", "s1"),
            ("a", "RUNS_ON", "s2"),
            ("s2", "MEMBER_OF", "cl"),
        }
        assert edges["a", "RUNS_ON", "s1"].removed
        assert not edges["a", "RUNS_ON", "s2"].removed
        assert edges["a", "RUNS_ON", "s2"].redundancy_group == "g"
        assert delta.cis == {"cl": ("cluster", None)}
        # a cluster whose size was unset is reported with None, so projections drop it
        assert "cl" in delta.cluster_min_healthy
        assert delta.cluster_min_healthy["cl"] is None

        # a merge and a new cluster size
        mid = delta.seq
        with store.write() as w:
            w.update_cis(
                [
                    make_ci("s1", merged_into="s2", version=2),
                    make_ci("cl", "cluster", attributes={"min_healthy": 3}, version=3),
                ]
            )
        delta = store.graph_delta(mid)
        assert delta.edges == []
        assert delta.cis == {"s1": ("server", "s2"), "cl": ("cluster", None)}
        assert delta.cluster_min_healthy["cl"] == 3
