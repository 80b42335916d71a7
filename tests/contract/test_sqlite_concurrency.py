"""Two OS processes reconcile into one SQLite file at the same time, racing on the same
CIs. Nothing may be lost or duplicated, history must stay consistent, and neither process
may ever see "database is locked"."""

from __future__ import annotations

import multiprocessing
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from servicegraph.cmdb.identifiers import Identifier, IdentifierRules
from servicegraph.cmdb.model import HistoryKind
from servicegraph.cmdb.ports import CIQuery
from servicegraph.storage.sqlite import SqliteGraphStore
from tests.contract.concurrent_writer import (
    CLUSTERS,
    SHARED,
    app_key,
    cluster_uuid,
    run_worker,
    shared_in_batch,
    shared_serial,
)

BATCHES = 80
_RULES = IdentifierRules()


def ident(kind: str, value: str) -> Identifier:
    """The stored (normalised) form of an identifier."""
    ((normal),) = _RULES.normalise({kind: value}, item="test")
    return normal


@pytest.mark.timeout(90)
def test_two_processes_upserting_the_same_cis(tmp_path: Path) -> None:
    db_path = tmp_path / "shared.sqlite3"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=run_worker, args=(str(db_path), w, BATCHES, barrier, results))
        for w in (0, 1)
    ]
    for p in workers:
        p.start()
    reports: dict[int, tuple[str, Any]] = {}
    try:
        for _ in workers:
            worker, status, payload = results.get(timeout=60)
            reports[worker] = (status, payload)
    finally:
        for p in workers:
            p.join(timeout=10)
            if p.is_alive():  # only the processes this test started
                p.terminate()
                p.join()
    errors = {w: payload for w, (status, payload) in reports.items() if status != "ok"}
    assert not errors, "\n".join(f"worker {w}:\n{tb}" for w, tb in errors.items())
    assert all("locked" not in str(payload) for _, payload in reports.values())
    assert [p.exitcode for p in workers] == [0, 0]

    # the two processes really wrote at the same time
    spans = {w: (payload[0][0], payload[-1][1]) for w, (_, payload) in reports.items()}
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]

    store = SqliteGraphStore(db_path)
    try:
        check_graph(store)
    finally:
        store.close()


def check_graph(store: SqliteGraphStore) -> None:
    everything = store.find_cis(CIQuery(include_merged=True, limit=10_000))
    by_class: dict[str, list[str]] = defaultdict(list)
    for ci in everything:
        by_class[ci.ci_class].append(ci.id)
    # one CI per shared identifier: no duplicates, nothing lost
    assert len(by_class["server"]) == SHARED
    assert len(by_class["cluster"]) == CLUSTERS
    assert len(by_class["application"]) == 2 * BATCHES
    assert all(ci.merged_into is None for ci in everything)

    found = store.resolve_identifiers(
        [ident("serial_number", shared_serial(j)) for j in range(SHARED)]
    )
    assert len(found) == SHARED and set(found.values()) == set(by_class["server"])
    server_of = {j: found[ident("serial_number", shared_serial(j))] for j in range(SHARED)}
    macs = store.resolve_identifiers(
        [ident("mac", f"02:00:00:00:00:{j:02x}") for j in range(SHARED)]
    )
    assert len(macs) == SHARED
    for (_, mac), ci_id in macs.items():
        assert server_of[int(mac[-2:], 16)] == ci_id
    found = store.resolve_identifiers([ident("uuid", cluster_uuid(j)) for j in range(CLUSTERS)])
    assert set(found.values()) == set(by_class["cluster"])
    cluster_of = {j: found[ident("uuid", cluster_uuid(j))] for j in range(SHARED)}
    # both sources' keys for a shared server lead to the same CI
    keys = store.resolve_keys([f"shared-{j}" for j in range(SHARED)])
    for j in range(SHARED):
        assert keys[f"shared-{j}"] == {server_of[j]}

    # every relationship either worker reported is there, once
    expected: set[tuple[str, str, str]] = set()
    apps = store.resolve_keys([app_key(w, i) for w in (0, 1) for i in range(BATCHES)])
    for w in (0, 1):
        for i in range(BATCHES):
            shared = shared_in_batch(w, i)
            (app_id,) = apps[app_key(w, i)]
            expected.add((app_id, "RUNS_ON", server_of[shared[0]]))
            for j in shared:
                expected.add((server_of[j], "MEMBER_OF", cluster_of[j]))
    all_ids = [ci.id for ci in everything]
    rels = store.relationships(all_ids, include_removed=True)
    assert {r.key for r in rels} == expected
    assert not any(r.removed or r.stale for r in rels)
    assert store.counts()["relationships"] == len(expected)

    # history: created once, relationships added once, attribute changes chain up
    history = store.history(all_ids)
    seqs = [e.seq for e in history]
    assert seqs == sorted(set(seqs))
    created = [e.ci_id for e in history if e.kind is HistoryKind.CREATED]
    assert sorted(created) == sorted(all_ids)
    added = [
        (e.ci_id, e.field, e.other_ci_id)
        for e in history
        if e.kind is HistoryKind.RELATIONSHIP_ADDED
    ]
    assert sorted(added) == sorted(expected)  # type: ignore[arg-type]
    current = store.get_cis(all_ids)
    for ci_id in by_class["server"]:
        value = next(
            e.new["attributes"].get("os_version")
            for e in history
            if e.ci_id == ci_id and e.kind is HistoryKind.CREATED
        )
        for e in history:
            if e.ci_id == ci_id and e.kind is HistoryKind.ATTRIBUTE:
                assert e.field == "os_version"
                assert e.old == value, f"{ci_id}: history skips from {value} to {e.old}"
                value = e.new
        assert current[ci_id].attributes["os_version"] == value
    assert store.counts()["history_entries"] == len(history)
