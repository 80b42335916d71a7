"""The body of one writer process in the SQLite concurrency test.

It lives in an importable module (not the test file) because ``spawn`` starts a fresh
interpreter that imports the target function by name. Each worker reports through the
queue: its apply intervals on success, or the full traceback of any exception.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

SHARED = 24  # servers both workers report
CLUSTERS = 4


def shared_serial(j: int) -> str:
    return f"SHARED-{j:03d}"


def cluster_uuid(j: int) -> str:
    return f"cluster-{j % CLUSTERS}"


def shared_in_batch(worker: int, i: int) -> list[int]:
    """The shared servers batch ``i`` of ``worker`` reports: the workers walk the shared
    range in opposite directions, so that they race on the same CIs all the time."""
    base = i if worker == 0 else SHARED - 1 - i
    return sorted({base % SHARED, (base + 1) % SHARED, (base + 7) % SHARED})


def app_key(worker: int, i: int) -> str:
    return f"w{worker}-app-{i:03d}"


def run_worker(db_path: str, worker: int, batches: int, barrier: Any, results: Any) -> None:
    intervals: list[tuple[float, float]] = []
    try:
        from servicegraph.bootstrap import bootstrap
        from servicegraph.cmdb.observation import (
            CIObservation,
            CIRef,
            ObservationBatch,
            RelationshipObservation,
        )
        from servicegraph.cmdb.ports import CIQuery
        from servicegraph.config import Settings

        path = Path(db_path)
        services = bootstrap(
            Settings(data_dir=path.parent, sqlite_path=path, sqlite_lock_timeout=30)
        )
        source = f"collector-{worker}"
        barrier.wait(timeout=30)
        for i in range(batches):
            cis = []
            rels = []
            for j in shared_in_batch(worker, i):
                identifiers = {"serial_number": shared_serial(j)}
                if worker == 1:
                    identifiers["mac"] = f"02:00:00:00:00:{j:02x}"
                cis.append(
                    CIObservation(
                        "server",
                        f"shared-{j}",
                        identifiers,
                        {"os_version": f"w{worker}-b{i}"},
                        key=f"shared-{j}",
                    )
                )
                rels.append(
                    RelationshipObservation(
                        "MEMBER_OF",
                        CIRef(identifier=("serial_number", shared_serial(j))),
                        CIRef(identifier=("uuid", cluster_uuid(j))),
                    )
                )
            # the clusters the batch's MEMBER_OF edges need, created by whichever worker
            # reports them first
            for uuid in sorted({cluster_uuid(j) for j in shared_in_batch(worker, i)}):
                cis.append(CIObservation("cluster", uuid, {"uuid": uuid}, {"min_healthy": 1}))
            first = shared_in_batch(worker, i)[0]
            cis.append(
                CIObservation(
                    "application",
                    app_key(worker, i),
                    {"service_id": app_key(worker, i)},
                    key=app_key(worker, i),
                )
            )
            rels.append(
                RelationshipObservation(
                    "RUNS_ON",
                    CIRef(key=app_key(worker, i)),
                    CIRef(identifier=("serial_number", shared_serial(first))),
                )
            )
            started = time.monotonic()
            report = services.reconciler.apply(ObservationBatch(source, cis, rels))
            intervals.append((started, time.monotonic()))
            if report.conflicts:
                raise AssertionError(f"batch {i}: unexpected conflicts {report.conflicts}")
            # readers run beside the other process's writer
            services.store.find_cis(CIQuery(ci_class="server", limit=5))
            services.impact.refresh()
        services.close()
        results.put((worker, "ok", intervals))
    except BaseException:
        results.put((worker, "error", traceback.format_exc()))
