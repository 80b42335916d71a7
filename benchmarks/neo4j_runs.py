"""Neo4j for the benchmarks: the server, and services on it holding a generated graph.

The server is ``NEO4J_URI``'s (ITS DATABASE IS EMPTIED; ``NEO4J_USER``, ``NEO4J_PASSWORD``,
``NEO4J_DATABASE``), else one started from tools/neo4j (``tests/neo4j_server.py``) in a
scratch home under benchmarks/out/.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.observation import ObservationBatch
from servicegraph.config import Settings
from servicegraph.runtime.heap import collector_paused
from tests.contract.neo4j_stores import fresh_graph
from tests.neo4j_server import Neo4jAddress, Neo4jServer, address_from_environment

OUT = Path(__file__).resolve().parent / "out"
SLICE = 20_000  # records per transaction: what `servicegraph import` does on Neo4j


class LoadFailed(Exception):
    """The generated graph did not load cleanly."""


@contextmanager
def neo4j_server(name: str, heap: str = "2g") -> Iterator[Neo4jAddress]:
    given = address_from_environment()
    if given is not None:
        yield given
        return
    home = OUT / f"{name}-neo4j-server"
    shutil.rmtree(home, ignore_errors=True)
    server = Neo4jServer(home=home, heap=heap)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def loaded_services(
    batch: ObservationBatch, address: Neo4jAddress, data_dir: Path, **settings: Any
) -> Iterator[Services]:
    """Services on Neo4j holding ``batch``, loaded now through the reconciler in bounded
    units into the emptied database."""
    fresh_graph(address).close()
    services = bootstrap(Settings(data_dir=data_dir, **address.settings(), **settings))
    try:
        print(f"loading {len(batch.cis):,} CIs into Neo4j...")
        start = time.perf_counter()
        with collector_paused():
            report = services.reconciler.apply_in_slices(batch, slice_size=SLICE)
        if report.conflicts:
            raise LoadFailed(f"loading the graph reported {len(report.conflicts)} conflicts")
        print(f"  loaded in {time.perf_counter() - start:.1f} s")
        yield services
    finally:
        services.close()
