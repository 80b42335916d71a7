"""A messy 10,000-row ERP export synced end to end: every bad row is reported with its
file, line and field and nothing is written; a partial run writes the valid rows and
records the rest; the same file declared as UTF-8 is one clear error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from servicegraph.bootstrap import Services
from servicegraph.cmdb.model import ConflictKind
from servicegraph.collectors.erp.sync import SyncRefused
from tests.erp.messy import write_messy_export

MAPPING: dict[str, Any] = {
    "kind": "csv",
    "key": "InventoryNo",
    "class": "server",
    "fields": {
        "name": "Name",
        "identifiers.serial_number": "SerialNo",
        "attributes.cost_centre": "CostCenter",
        "attributes.owner": "Responsible",
        "attributes.purchase_date": {"from": "PurchaseDate", "transforms": [{"date": "%d.%m.%Y"}]},
        "attributes.purchase_value": {"from": "Value", "transforms": [{"decimal": "comma"}]},
    },
}


def line(origin: str) -> int:
    return int(origin.rsplit(":", 1)[1])


@pytest.fixture
def messy(tmp_path: Path) -> tuple[Path, dict[str, list[int]]]:
    path = tmp_path / "export.csv"
    return path, write_messy_export(path, rows=10_000)


def test_every_bad_row_refuses_the_run_and_a_partial_run_records_them(
    messy: tuple[Path, dict[str, list[int]]], make_services: Callable[..., Services]
) -> None:
    path, bad = messy
    services = make_services(erp={"sources": {"assets": {**MAPPING, "path": str(path)}}})
    wrong = {
        "broken_quoting": None,
        "bad_date": "PurchaseDate",
        "bad_value": "Value",
        "duplicate_inventory": "InventoryNo",
    }
    expected = sorted((n, field) for kind, field in wrong.items() for n in bad[kind])
    with pytest.raises(SyncRefused) as refused:
        services.erp_sync.sync("assets")
    got = sorted((line(e.origin), e.field) for e in refused.value.errors)
    assert got == expected  # every bad row, at its line, naming its column
    assert all(e.origin.startswith(f"{path}:") for e in refused.value.errors)
    assert services.store.counts()["cis"] == 0  # nothing written

    partial = services.erp_sync.sync("assets", allow_partial=True)
    assert partial.summary["cis_created"] == 10_000 - len(expected)
    assert partial.summary["rejected"] == len(expected)
    assert not partial.complete  # a rejected row's asset must not count as gone
    recorded = [
        c for c in services.store.conflicts(limit=10_000) if c.kind is ConflictKind.INVALID_RECORD
    ]
    assert sorted(line(c.item) for c in recorded) == [n for n, _ in expected]
    # the rows without a serial were imported: the ERP simply does not know it
    assert services.store.counts()["cis"] == 10_000 - len(expected)


def test_a_windows_1251_file_declared_as_utf8_is_one_error_and_writes_nothing(
    messy: tuple[Path, dict[str, list[int]]], make_services: Callable[..., Services]
) -> None:
    path, _ = messy
    declared = {**MAPPING, "path": str(path), "encoding": "utf-8"}
    services = make_services(erp={"sources": {"assets": declared}})
    with pytest.raises(SyncRefused) as refused:
        services.erp_sync.sync("assets")
    (error,) = refused.value.errors
    assert "Windows-1251" in error.message and "cp1251" in error.message
    assert services.store.counts()["cis"] == 0
