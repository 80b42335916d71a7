"""ERP asset sync from a file: 100,000 assets (by default) in a `;`-separated CSV export as
an ERP writes it (inventory number, serial, name, category, cost centre, owner, purchase
date dd.mm.yyyy, value with a decimal comma), declared as the source ``assets`` with the
mapping of the README's example, synced into a fresh embedded store:

1. **full sync**: the first run creates every CI (read, map, validate, reconcile);
2. **no-change resync**: the same file again: nothing to write (0 history entries);
3. **dry run**: a file with 1% of the assets changed (cost centre) and 0.5% gone, on the
   full store: the plan per CI and attribute, rolled back (the store is checked unchanged);
4. **sync of that file**: what the dry run said, written.

Each step prints wall and CPU time; the read (CSV to records) and map steps are timed
apart. With ``--tryton`` (trytond installed), also the read of ``--tryton-assets`` (10,000)
fixed assets from a live Tryton through its JSON-RPC (tests/erp/tryton_fixture.py seeds
it), reported, not judged.

Targets (the issue's): full sync <= 60 s, no-change resync <= 10 s, dry run <= 30 s.

    python -m benchmarks.bench_erp
    python -m benchmarks.bench_erp --assets 10000 --tryton

Exit status: 0 whatever the timings; 1 on errors (a resync that writes, a dry run that
writes, counts that differ from the file's).
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.collectors.erp.feeds import open_feed
from servicegraph.collectors.erp.mapping import map_records
from servicegraph.collectors.erp.spec import ErpSource
from servicegraph.config import Settings
from servicegraph.runtime.heap import collector_paused

TARGETS = {"full sync": 60.0, "no-change resync": 10.0, "dry run": 30.0}
CATEGORIES = {"Коммутатор": "network_device", "Сервер": "server", "Маршрутизатор": "network_device"}
T = TypeVar("T")

SOURCE: dict[str, Any] = {
    "kind": "csv",
    "key": "InventoryNo",
    "class": {"from": "Category", "transforms": [{"map": CATEGORIES}]},
    "fields": {
        "name": "Name",
        "identifiers.serial_number": {"from": "SerialNo", "transforms": ["trim", "upper"]},
        "identifiers.asset_tag": "InventoryNo",
        "attributes.cost_centre": "CostCenter",
        "attributes.owner": "Responsible",
        "attributes.purchase_date": {"from": "PurchaseDate", "transforms": [{"date": "%d.%m.%Y"}]},
        "attributes.purchase_value": {"from": "Value", "transforms": [{"decimal": "comma"}]},
    },
    "owns": ["purchase_date", "purchase_value"],
}


def write_export(
    path: Path, assets: int, seed: int, *, changed: float = 0.0, gone: float = 0.0
) -> int:
    """The export file; ``changed`` and ``gone``: shares of assets with another cost
    centre, and left out. Returns the rows written."""
    rng = random.Random(seed)
    categories = list(CATEGORIES)
    written = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle, delimiter=";")
        out.writerow(
            [
                "InventoryNo",
                "SerialNo",
                "Name",
                "Category",
                "CostCenter",
                "Responsible",
                "PurchaseDate",
                "Value",
            ]
        )
        for n in range(assets):
            draw = rng.random()
            if draw < gone:
                continue
            cost_centre = f"CC-{n % 97:03d}" if draw >= gone + changed else f"CC-NEW-{n % 7}"
            out.writerow(
                [
                    f"{n:08d}",
                    f"sn{n:010d}",
                    f"asset-{n}",
                    categories[n % len(categories)],
                    cost_centre,
                    f"Сотрудник {n % 1500}",
                    f"{1 + n % 28:02d}.{1 + n % 12:02d}.{2015 + n % 10}",
                    f"{100 + n % 9000} {n % 1000:03d},{n % 100:02d}",
                ]
            )
            written += 1
    return written


def timed(label: str, fn: Callable[[], T], results: list[tuple[str, float, float]]) -> T:
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    results.append((label, wall, cpu))
    print(f"  {label}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    return value


def run(args: argparse.Namespace) -> int:
    results: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-erp-") as tmp:
        base = Path(tmp)
        export = base / "assets.csv"
        rows = write_export(export, args.assets, args.seed)
        changed_export = base / "assets-changed.csv"
        changed_rows = write_export(
            changed_export, args.assets, args.seed, changed=0.01, gone=0.005
        )
        print(
            f"wrote {rows:,} assets ({export.stat().st_size / 1e6:.1f} MB) and a changed export",
            flush=True,
        )
        settings = Settings(
            data_dir=base / "data",
            erp={
                "sources": {
                    "assets": {**SOURCE, "path": str(export)},
                    "changed": {**SOURCE, "path": str(changed_export)},
                }
            },
        )
        services = bootstrap(settings)
        try:
            errors = steps(services, rows, changed_rows, results)
            if args.tryton:
                errors += tryton_read(args, services, base, results)
        finally:
            services.close()
    print("\n| step | wall s | CPU s | target s | met |\n|---|---|---|---|---|")
    for label, wall, cpu in results:
        target = TARGETS.get(label)
        met = "" if target is None else ("yes" if wall <= target else "NO")
        shown = "" if target is None else f"{target:g}"
        print(f"| {label} | {wall:.2f} | {cpu:.2f} | {shown} | {met} |")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


def read_and_map(
    source: ErpSource, rows: int, results: list[tuple[str, float, float]]
) -> list[str]:
    """The read and map steps timed apart (a sync does both again)."""
    label = "read 100k-row CSV" if rows == 100_000 else "read CSV"
    read = timed(label, lambda: open_feed(source).read(), results)
    mapped = timed("map records", lambda: map_records(source, read.records), results)
    if len(mapped.observations) != rows or mapped.errors:
        return [f"mapped {len(mapped.observations)} of {rows} rows, {len(mapped.errors)} errors"]
    return []


def steps(
    services: Services, rows: int, changed_rows: int, results: list[tuple[str, float, float]]
) -> list[str]:
    errors: list[str] = []
    sync = services.erp_sync
    source = sync.source("assets")
    errors += read_and_map(source, rows, results)  # what it holds is freed before the syncs
    with collector_paused():
        first = timed("full sync", lambda: sync.sync("assets"), results)
        if first.summary["cis_created"] != rows:
            errors.append(f"full sync created {first.summary['cis_created']} CIs, not {rows}")
        again = timed("no-change resync", lambda: sync.sync("assets"), results)
        if again.summary["history_entries"]:
            errors.append(f"the resync wrote {again.summary['history_entries']} history entries")
        # the changed export as the same source: the dry run of the next run
        sync.sources["assets"] = replace(sync.sources["changed"], name="assets")
        before = services.store.counts()
        plan = timed("dry run", lambda: sync.sync("assets", dry_run=True), results)
        if services.store.counts() != before:
            errors.append("the dry run wrote to the store")
        updates = sum(1 for i in plan.items if i.action == "update")
        print(
            f"    plan: {updates:,} updates, {len(plan.items):,} items of {changed_rows:,} rows",
            flush=True,
        )
        real = timed("sync of the changed export", lambda: sync.sync("assets"), results)
        if real.summary["cis_updated"] != updates:
            errors.append(
                f"the run updated {real.summary['cis_updated']}, the dry run said {updates}"
            )
    return errors


def tryton_read(
    args: argparse.Namespace,
    services: Services,
    base: Path,
    results: list[tuple[str, float, float]],
) -> list[str]:
    """Create the assets in a live Tryton (draft: running 10,000 would post depreciation
    for each), then read them through JSON-RPC with their lots joined, and sync them."""
    try:
        from tests.erp.tryton_fixture import (
            TrytonServer,
            create_assets,
            sample_rows,
            tryton_available,
        )
    except ImportError as exc:
        return [f"--tryton needs the test fixture (run from the repository root): {exc}"]
    reason = tryton_available()
    if reason is not None:
        return [f"--tryton: {reason}"]
    from servicegraph.collectors.erp.spec import build_source

    server = TrytonServer()
    server.start(base / "tryton")
    try:
        rows = sample_rows(args.tryton_assets, prefix="BE")
        timed(
            f"create {len(rows):,} Tryton assets (setup)",
            lambda: create_assets(server, rows),
            results,
        )
        spec = {
            "kind": "tryton",
            "url": server.url,
            "database": server.database,
            "user": server.user,
            "password": server.password,
            "related": {"lot": {"model": "stock.lot", "by": "product"}},
            "key": "id",  # a draft asset has no number yet
            "class": "server",
            "fields": {
                "name": "product.rec_name",
                "identifiers.serial_number": "lot.number",
                "identifiers.asset_tag": "product.code",
                "attributes.purchase_value": "value",
                "attributes.purchase_date": "purchase_date",
            },
        }
        source = build_source("tryton", spec, path="erp.sources.tryton")
        read = timed(
            f"read {len(rows):,} assets + lots through JSON-RPC",
            lambda: open_feed(source).read(),
            results,
        )
        if len(read.records) != len(rows):
            return [f"read {len(read.records)} Tryton assets, created {len(rows)}"]
        services.erp_sync.sources["tryton"] = source
        with collector_paused():
            synced = timed(
                f"sync {len(rows):,} Tryton assets",
                lambda: services.erp_sync.sync("tryton"),
                results,
            )
        if synced.summary["cis_created"] != len(rows):
            return [f"the Tryton sync created {synced.summary['cis_created']} of {len(rows)}"]
    finally:
        server.stop()
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ERP asset sync benchmark.")
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tryton", action="store_true", help="also read assets from a live Tryton")
    parser.add_argument("--tryton-assets", type=int, default=10_000)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
