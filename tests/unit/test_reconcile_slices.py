"""``Reconciler.apply_in_slices`` against ``Reconciler.apply`` over twin SQLite stores: the
same batches give the same graph, history (but for the order of entries), sightings,
conflicts and report, however small the slices."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from servicegraph.bootstrap import Services
from servicegraph.cmdb import model
from servicegraph.cmdb.errors import ReconciliationConflicts, StoreError, ValidationErrors
from servicegraph.cmdb.model import ConflictKind
from servicegraph.cmdb.observation import (
    CIObservation,
    CIRef,
    ObservationBatch,
    RelationshipObservation,
)
from servicegraph.cmdb.ports import GraphWriter
from servicegraph.cmdb.reconciliation import ReconcileReport

T0 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)


def obs(ci_class: str = "server", name: str | None = None, **kw: Any) -> CIObservation:
    return CIObservation(ci_class, name, kw.pop("identifiers", {}), kw.pop("attributes", {}), **kw)


def rel(rel_type: str, a: str, b: str, **attributes: Any) -> RelationshipObservation:
    return RelationshipObservation(rel_type, CIRef(key=a), CIRef(key=b), attributes)


def batch(
    cis: list[CIObservation],
    rels: list[RelationshipObservation] | None = None,
    *,
    source: str = "snmp",
    hours: float = 0,
    complete: bool = False,
) -> ObservationBatch:
    return ObservationBatch(
        source,
        cis,
        rels or [],
        observed_at=T0 + dt.timedelta(hours=hours),
        complete=complete,
        run_id=f"run-{source}-{hours}",
    )


@pytest.fixture(autouse=True)
def _numbered_ci_ids(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """New CIs numbered in creation order, so that twin stores name them alike."""
    counter = itertools.count(1)
    monkeypatch.setattr(model, "new_id", lambda prefix: f"{prefix}-{next(counter):05d}")
    yield lambda: None


@dataclasses.dataclass
class Twins:
    """Two stores fed the same batches: ``one`` by ``apply``, ``sliced`` in slices."""

    one: Services
    sliced: Services
    slice_size: int
    monkeypatch: pytest.MonkeyPatch

    def _numbered_from(self, start: int) -> None:
        counter = itertools.count(start)
        self.monkeypatch.setattr(model, "new_id", lambda prefix: f"{prefix}-{next(counter):05d}")

    def apply(self, b: ObservationBatch, **kw: Any) -> tuple[ReconcileReport, ReconcileReport]:
        start = self.one.store.counts()["cis"] + 1
        self._numbered_from(start)
        expected = self.one.reconciler.apply(b, **kw)
        self._numbered_from(start)
        got = self.sliced.reconciler.apply_in_slices(b, slice_size=self.slice_size, **kw)
        assert comparable(got) == comparable(expected)
        assert state(self.sliced) == state(self.one)
        return expected, got


def comparable(report: ReconcileReport) -> dict[str, Any]:
    return {
        **report.summary(),
        "run_id": report.run_id,
        "ci_ids": report.ci_ids,
        "conflicts": [dataclasses.replace(c, id=0) for c in report.conflicts],
    }


def state(services: Services) -> dict[str, Any]:
    """Everything the store holds of the graph; history and conflicts as sorted lists
    (their order between units of one run is not promised), without store-made numbers."""
    with services.store.snapshot() as snap:
        return {
            "cis": sorted(snap.cis(), key=lambda c: c.id),
            "keys": sorted(snap.source_keys(), key=repr),
            "ci_sightings": sorted(snap.ci_sightings(), key=repr),
            "relationships": sorted(snap.relationships(), key=lambda r: r.key),
            "relationship_sightings": sorted(snap.relationship_sightings(), key=repr),
            "sweeps": sorted(snap.source_sweeps(), key=repr),
            "history": sorted((dataclasses.replace(h, seq=0) for h in snap.history()), key=repr),
            "conflicts": sorted((dataclasses.replace(c, id=0) for c in snap.conflicts()), key=repr),
        }


@pytest.fixture(params=[1, 2, 3, 1000], ids=lambda n: f"slice{n}")
def twins(
    request: pytest.FixtureRequest,
    make_services: Callable[..., Services],
    monkeypatch: pytest.MonkeyPatch,
) -> Twins:
    return Twins(make_services(), make_services(), request.param, monkeypatch)


def estate(n: int = 8) -> tuple[list[CIObservation], list[RelationshipObservation]]:
    cis = [
        obs(
            name=f"srv{i}",
            key=f"srv-{i}",
            identifiers={"serial_number": f"S{i}", "hostname": f"srv{i}"},
            attributes={"os": "linux", "cpu_count": i % 3},
        )
        for i in range(n)
    ]
    cis += [obs("application", f"app{i}", key=f"app-{i}") for i in range(n // 2)]
    rels = [rel("DEPENDS_ON", f"srv-{i}", f"srv-{(i + 3) % n}") for i in range(n)]
    rels += [rel("RUNS_ON", f"app-{i}", f"srv-{n - 1 - i}", port=8000 + i) for i in range(n // 2)]
    return cis, rels


# -- the same as one apply ----------------------------------------------------------------


def test_fresh_load(twins: Twins) -> None:
    cis, rels = estate()
    report, _ = twins.apply(batch(cis, rels))
    assert (report.cis_created, report.relationships_created) == (12, 12)
    assert report.history_entries == 24 and not report.conflicts


def test_updates_and_replay(twins: Twins) -> None:
    cis, rels = estate()
    twins.apply(batch(cis, rels))
    changed = [
        dataclasses.replace(c, attributes={**c.attributes, "os": "bsd"})
        if i % 2 and c.ci_class == "server"
        else c
        for i, c in enumerate(cis)
    ]
    # the first server again, by serial number, with a new identifier
    changed.append(obs(identifiers={"serial_number": "s0", "asset_tag": "A0"}))
    rels = [
        dataclasses.replace(r, attributes={"port": 9000}) if r.type == "RUNS_ON" else r
        for r in rels
    ]
    report, _ = twins.apply(batch(changed, rels, hours=1))
    assert report.cis_updated == 5 and report.relationships_updated == 4
    replay, _ = twins.apply(batch(changed, rels, hours=1))
    assert replay.history_entries == 0 and replay.cis_updated == 0


def test_identification_across_slices(twins: Twins) -> None:
    """Records far apart in one batch that are one CI, or claim one identifier, are
    decided as one unit decides them, whichever slice they land in."""
    twins.apply(batch([obs(name="old", key="old", identifiers={"serial_number": "OLD"})]))
    records = [
        obs(name="a", identifiers={"serial_number": "NEW1"}),  # creates a CI
        obs(name="b", key="b"),
        obs(name="c", key="c"),
        # the existing CI, by identifier then by key, three slices apart
        obs(identifiers={"serial_number": "old"}, attributes={"os": "linux"}),
        obs(name="d", key="d"),
        obs(key="old", attributes={"role": "ops"}, identifiers={"hostname": "old1"}),
        # the identifier the first record's new CI takes: a duplicate in the batch
        obs(name="e", identifiers={"serial_number": "NEW1", "hostname": "e1"}),
        # an explicit id that does not exist yet
        obs(name="f", ci_id="ci-explicit"),
    ]
    links = [
        rel("DEPENDS_ON", "b", "old"),
        RelationshipObservation(
            "DEPENDS_ON", CIRef(identifier=("serial_number", "new1")), CIRef(key="d")
        ),
        RelationshipObservation(
            "DEPENDS_ON", CIRef(identifier=("hostname", "old1")), CIRef(ci_id="ci-explicit")
        ),
    ]
    report, _ = twins.apply(batch(records, links, hours=1))
    assert [c.kind for c in report.conflicts] == [ConflictKind.DUPLICATE_IN_BATCH]
    assert report.ci_ids[3] == report.ci_ids[5] == "ci-00001"
    assert report.relationships_created == 3


def test_relationships_across_slices_to_known_keys(twins: Twins) -> None:
    cis, rels = estate(10)
    twins.apply(batch(cis))
    # relationships alone, naming CIs of earlier runs by key
    report, _ = twins.apply(batch([], rels, hours=1))
    assert report.relationships_created == len(rels)


def test_stale_sweep_of_a_complete_source(
    make_services: Callable[..., Services], monkeypatch: pytest.MonkeyPatch
) -> None:
    twins = Twins(
        make_services(stale_after_runs=2), make_services(stale_after_runs=2), 2, monkeypatch
    )
    cis, rels = estate()
    twins.apply(batch(cis, rels, complete=True))
    rest = [c for c in cis if c.key not in {"srv-1", "app-0"}]
    kept = [r for r in rels if r.from_ref.key not in {"srv-1", "app-0"}]
    marked = [twins.apply(batch(rest, kept, hours=h, complete=True))[0] for h in (1, 2, 3)]
    assert [r.cis_marked_stale for r in marked] == [0, 2, 0]
    assert [r.relationships_marked_stale for r in marked] == [0, 2, 0]
    back, _ = twins.apply(batch(cis, rels, hours=4, complete=True))  # fresh again
    assert back.history_entries == 4
    # a replayed complete run counts no missed run
    twins.apply(batch(rest, kept, hours=4, complete=True))


def test_conflicts_recorded(twins: Twins) -> None:
    twins.apply(batch([obs(name="sw", key="sw", identifiers={"serial_number": "X1"})]))
    twins.apply(batch([obs(name="h", key="h", identifiers={"hostname": "taken"})]))
    records = [
        obs("network_device", "sw", identifiers={"serial_number": "x1"}),  # class mismatch
        # matches sw by serial; its host name is another CI's
        obs(name="n", key="n", identifiers={"serial_number": "X1", "hostname": "taken"}),
        obs("application", "app", key="app"),
        obs("application", "app2", key="app2"),
    ]
    records[0] = dataclasses.replace(records[0], key="swk")
    links = [rel("RUNS_ON", "app", "swk"), rel("RUNS_ON", "app2", "n")]
    report, _ = twins.apply(batch(records, links, hours=1, source="erp"))
    assert [c.kind for c in report.conflicts] == [
        ConflictKind.CLASS_MISMATCH,
        ConflictKind.IDENTIFIER_CLAIMED,
        ConflictKind.ENDPOINT_SKIPPED,
    ]


def test_fail_on_conflict_writes_nothing(twins: Twins) -> None:
    twins.apply(batch([obs(name="sw", key="sw", identifiers={"serial_number": "X1"})]))
    before = state(twins.sliced)
    cis, rels = estate()
    clash = [*cis, obs("network_device", "sw", identifiers={"serial_number": "x1"})]
    with pytest.raises(ReconciliationConflicts) as caught:
        twins.sliced.reconciler.apply_in_slices(
            batch(clash, rels, hours=1), slice_size=twins.slice_size, on_conflict="fail"
        )
    assert [c.kind for c in caught.value.conflicts] == [ConflictKind.CLASS_MISMATCH]  # type: ignore[attr-defined]
    bad_end = [*rels, rel("RUNS_ON", "app-0", "nowhere")]
    with pytest.raises(ValidationErrors):
        twins.sliced.reconciler.apply_in_slices(batch(cis, bad_end, hours=1), slice_size=1)
    assert state(twins.sliced) == before


# -- bounded units ------------------------------------------------------------------------


def units_of(services: Services) -> list[int]:
    """Wrap the reconciler's store: the number of writes of each unit, as it commits."""
    real = services.reconciler.store
    sizes: list[int] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        @contextmanager
        def write(self) -> Iterator[GraphWriter]:
            with real.write() as writer:
                counted = CountingWriter(writer)
                yield counted
            sizes.append(counted.rows)

    services.reconciler.store = Counting()
    return sizes


class CountingWriter:
    def __init__(self, writer: GraphWriter) -> None:
        self.writer, self.rows = writer, 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.writer, name)
        if name in {"insert_cis", "update_cis", "save_relationships"}:

            def counted(*args: Any) -> Any:
                self.rows += sum(len(a) for a in args)
                return method(*args)

            return counted
        return method


def test_units_hold_at_most_slice_size_records(services: Services) -> None:
    sizes = units_of(services)
    cis, rels = estate(20)
    progress: list[tuple[int, int]] = []
    report = services.reconciler.apply_in_slices(
        batch(cis, rels, complete=True), slice_size=7, progress=lambda *p: progress.append(p)
    )
    assert report.cis_created == 30 and report.relationships_created == 30
    # a reading plan, 5 units of CIs, 5 of relationships, the sweep
    assert sizes == [0, 7, 7, 7, 7, 2, 7, 7, 7, 7, 2, 0]
    assert progress[0] == (0, 60) and progress[-1] == (60, 60)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    with pytest.raises(ValueError, match="slice_size"):
        services.reconciler.apply_in_slices(batch(cis), slice_size=0)


def test_failure_part_way_then_the_same_import_again(
    make_services: Callable[..., Services], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Earlier units stay committed; importing the same records again finishes the job,
    ending where one apply ends, and a third time changes nothing."""
    twins = Twins(make_services(), make_services(), 4, monkeypatch)
    cis, rels = estate(12)
    services = twins.sliced
    real = services.reconciler.store
    units = 0

    class Failing:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        @contextmanager
        def write(self) -> Iterator[GraphWriter]:
            nonlocal units
            units += 1
            with real.write() as writer:
                yield writer
                if units == 4:  # the plan, two units of CIs, then this one fails
                    raise StoreError("the store went away")

    services.reconciler.store = Failing()
    twins._numbered_from(1)
    with pytest.raises(StoreError):
        services.reconciler.apply_in_slices(batch(cis, rels, hours=0), slice_size=4)
    services.reconciler.store = real
    assert services.store.counts()["cis"] == 8 and services.store.counts()["relationships"] == 0

    # the same import again (a new run): the rest is written, nothing else changes
    twins._numbered_from(9)
    again = services.reconciler.apply_in_slices(batch(cis, rels, hours=0), slice_size=4)
    assert (again.cis_created, again.cis_unchanged, again.cis_updated) == (10, 8, 0)
    assert again.relationships_created == len(rels)
    twins._numbered_from(1)
    twins.one.reconciler.apply(batch(cis, rels, hours=0))
    assert state(services) == state(twins.one)

    replay = services.reconciler.apply_in_slices(batch(cis, rels, hours=0), slice_size=4)
    assert replay.history_entries == 0
    assert (replay.cis_created, replay.cis_updated, replay.relationships_created) == (0, 0, 0)
    assert state(services) == state(twins.one)
