"""Export and restore (``GraphStore.snapshot`` and the writer's ``restore_*``), the same
for every backend: a graph exported and restored into an empty store reads back
identical, record for record, history in the same order.

A backend's test class mixes ``DumpContract`` in beside ``StoreContract`` and provides
``store`` and ``empty_target``: a fixture returning a function that, given the populated
store, returns an empty migrated store to restore into (a new file; or, with one database
only, the same database emptied after the export was written).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from servicegraph.cmdb.errors import StoreError
from servicegraph.cmdb.export import export_graph, import_graph, read_export
from servicegraph.cmdb.model import Conflict, ConflictKind, HistoryKind
from servicegraph.cmdb.ports import CIQuery, GraphStore
from tests.contract.store_contract import at, entry, make_ci, make_rel

EmptyTarget = Callable[[GraphStore], GraphStore]


def populate(store: GraphStore) -> None:
    """A small graph that uses every kind of record and every optional field."""
    with store.write() as w:
        w.insert_cis(
            [
                make_ci(
                    "ci-sw",
                    "network_device",
                    attributes={"model": "C9300", "ports": [1, 2, 48], "nothing": None},
                    identifiers=[("serial_number", "FOC1"), ("hostname", "sw")],
                    created_at=at(1),
                    updated_at=at(3),
                    version=3,
                ),
                make_ci("ci-srv", attributes={"os": "linux", "cpu": 2.5, "virtual": False}),
                make_ci("ci-old", stale=True, merged_into="ci-srv", identifiers=[("mac", "m1")]),
                make_ci("ci-cl", "cluster", attributes={"min_healthy": 2}),
            ]
        )
        w.set_keys("snmp", [("sw-key", "ci-sw"), ("srv-key", "ci-srv")])
        w.set_keys("erp", [("E-1", "ci-srv")])
        w.save_relationships(
            [
                make_rel("ci-srv", "CONNECTED_TO", "ci-sw", {"redundancy_group": "uplink"}),
                make_rel("ci-srv", "MEMBER_OF", "ci-cl"),
                make_rel("ci-old", "MEMBER_OF", "ci-cl", removed=True, stale=True),
            ],
            [],
        )
        w.record_sightings(
            "snmp",
            "r1",
            at(5),
            ["ci-sw", "ci-srv", "ci-old"],
            [("ci-srv", "CONNECTED_TO", "ci-sw"), ("ci-old", "MEMBER_OF", "ci-cl")],
        )
        w.record_sightings("erp", "e1", at(6), ["ci-srv"], [])
    with store.write() as w:
        w.record_sightings("snmp", "r2", at(7), ["ci-sw", "ci-srv"], [])
        w.sweep_unseen("snmp", "r2", 1)
        w.append_history(
            [
                entry("ci-sw", 1, HistoryKind.CREATED, new={"class": "network_device"}),
                entry("ci-sw", 3, field="model", old="C9200", new="C9300", source="snmp"),
                # recorded later, dated earlier: the restored order is the recorded order
                entry("ci-sw", 2, field="ports", new=[1, 2, 48], actor="bob", run_id="r1"),
                entry(
                    "ci-srv",
                    4,
                    HistoryKind.RELATIONSHIP_ADDED,
                    field="CONNECTED_TO",
                    other_ci_id="ci-sw",
                    new={"redundancy_group": "uplink"},
                ),
            ]
        )
        w.add_conflicts(
            [
                Conflict(
                    ConflictKind.IDENTIFIER_CLAIMED,
                    "snmp",
                    "rec-1",
                    ("serial_number", "FOC1"),
                    "ci-x",
                    "ci-sw",
                    "claimed",
                    detected_at=at(8),
                    run_id="r2",
                ),
                Conflict(
                    ConflictKind.CLASS_MISMATCH, "erp", "rec-2", None, "ci-srv", None, "class"
                ),
            ]
        )


def records(store: GraphStore) -> list[dict[str, Any]]:
    """The export of ``store`` without its header, in a canonical order."""
    buffer = io.StringIO()
    export_graph(store, buffer)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()[1:-1]]
    # only some sections have a defined order (see GraphSnapshot); sort within sections
    return sorted(lines, key=lambda r: (r["type"], json.dumps(r, sort_keys=True)))


class DumpContract:
    """Mix into a backend's test class; needs the ``store`` and ``empty_target`` fixtures."""

    __test__ = False

    @pytest.fixture
    def empty_target(self) -> EmptyTarget:
        raise NotImplementedError("a backend's test class provides empty_target")

    def _round_trip(
        self, store: GraphStore, empty_target: EmptyTarget, tmp_path: Path
    ) -> tuple[GraphStore, list[dict[str, Any]]]:
        populate(store)
        path = tmp_path / "graph.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            export_graph(store, handle, store_name="test")
        before = records(store)
        seq = store.change_seq()
        target = empty_target(store)
        import_graph(target, read_export(path), commit_every=3)
        assert target.change_seq() >= seq
        return target, before

    def test_export_then_restore_reads_back_identical(
        self, store: GraphStore, empty_target: EmptyTarget, tmp_path: Path
    ) -> None:
        target, before = self._round_trip(store, empty_target, tmp_path)
        assert records(target) == before
        counts = {r["type"] for r in before}
        assert counts == {
            "ci",
            "source_key",
            "ci_sighting",
            "relationship",
            "relationship_sighting",
            "source_sweep",
            "history",
            "conflict",
        }
        # through the port, too
        assert [e.kind for e in target.history(["ci-sw"])] == [
            HistoryKind.CREATED,
            HistoryKind.ATTRIBUTE,
            HistoryKind.ATTRIBUTE,
            HistoryKind.RELATIONSHIP_ADDED,
        ]
        assert target.merged_into("ci-srv") == ["ci-old"]
        assert target.resolve_identifiers([("serial_number", "FOC1")]) == {
            ("serial_number", "FOC1"): "ci-sw"
        }
        assert target.resolve_keys(["E-1"]) == {"E-1": {"ci-srv"}}
        assert {s.source: s.stale for s in target.sightings("ci-old")} == {"snmp": True}
        assert [c.item for c in target.conflicts()] == ["rec-2", "rec-1"]
        assert [c.id for c in target.find_cis(CIQuery(include_merged=True))] == [
            "ci-cl",
            "ci-old",
            "ci-srv",
            "ci-sw",
        ]

    def test_restored_store_numbers_new_records_after_the_old(
        self, store: GraphStore, empty_target: EmptyTarget, tmp_path: Path
    ) -> None:
        target, _ = self._round_trip(store, empty_target, tmp_path)
        old_seqs = [e.seq for e in target.history(["ci-sw", "ci-srv"])]
        old_ids = [c.id for c in target.conflicts()]
        seq = target.change_seq()
        with target.write() as w:
            w.append_history([entry("ci-srv", 9, field="os", new="bsd")])
            w.add_conflicts(
                [Conflict(ConflictKind.CLASS_MISMATCH, "x", "rec-3", None, None, None, "d")]
            )
        assert target.history(["ci-srv"])[-1].seq > max(old_seqs)
        assert target.conflicts()[0].id > max(old_ids)
        assert target.change_seq() > seq

    def test_restore_refuses_a_store_that_is_not_empty(
        self, store: GraphStore, tmp_path: Path
    ) -> None:
        populate(store)
        path = tmp_path / "graph.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            export_graph(store, handle)
        counts = store.counts()
        with pytest.raises(StoreError, match="not empty"):
            import_graph(store, read_export(path))
        assert store.counts() == counts

    def test_empty_store_exports_an_empty_graph(self, store: GraphStore) -> None:
        buffer = io.StringIO()
        counts = export_graph(store, buffer)
        assert set(counts.values()) == {0}
        header, end = (json.loads(line) for line in buffer.getvalue().splitlines())
        assert header["format"] == "servicegraph-export"
        assert end == {"type": "end", "counts": counts}
