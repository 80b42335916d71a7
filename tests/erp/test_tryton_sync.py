"""Asset sync against a live Tryton (trytond with account_asset and stock_lot on SQLite,
started by tests/erp/tryton_fixture.py): create, update under precedence, stale after
missed complete runs, write-back read back from Tryton, dry runs that write nothing on
either side, and a wrong password or an unreachable ERP as one clear line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from servicegraph.bootstrap import Services
from servicegraph.cmdb.identifiers import IDENTIFIER_KINDS
from servicegraph.cmdb.observation import CIObservation, ObservationBatch
from servicegraph.collectors.erp.records import FeedError
from tests.erp.tryton_fixture import (
    TrytonServer,
    close_assets,
    create_assets,
    sample_rows,
    tryton_available,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrytonServer]:
    reason = tryton_available()
    if reason is not None:
        if os.environ.get("SG_REQUIRE_EXTERNAL") == "1":
            pytest.fail(f"Tryton: {reason}", pytrace=False)
        pytest.skip(f"Tryton: {reason}")
    erp = TrytonServer()
    erp.start(tmp_path_factory.mktemp("tryton"))
    try:
        yield erp
    finally:
        erp.stop()


def declaration(erp: TrytonServer, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "tryton",
        "url": erp.url,
        "database": erp.database,
        "user": erp.user,
        "password": erp.password,
        "model": "account.asset",
        "domain": [["state", "!=", "draft"], ["product.code", "like", "TS-%"]],
        "related": {"lot": {"model": "stock.lot", "by": "product"}},
        "batch_size": 4,  # several pages of RPC for a handful of assets
        "key": "number",
        "class": "server",
        "fields": {
            "identifiers.serial_number": "lot.number",
            "identifiers.asset_tag": "product.code",
            "attributes.model": "product.template.name",
            "attributes.purchase_date": "purchase_date",
            "attributes.purchase_value": "value",
            "attributes.supplier": "supplier_invoice_line.invoice.party.name",
            "lifecycle": {
                "from": "state",
                "transforms": [{"map": {"running": "active", "closed": "retired"}}],
            },
        },
        "owns": ["purchase_value"],
        "write_back": {
            "fields": {"comment": "CMDB: {attributes.model} os {attributes.os_version}"}
        },
        **extra,
    }


@pytest.fixture
def assets(server: TrytonServer) -> list[dict[str, Any]]:
    """Ten running assets of this test's own (codes TS-<n>-...)."""
    prefix = f"TS-{os.urandom(3).hex()}"
    rows = sample_rows(10, prefix=prefix)
    for row in rows:
        row["run"] = True
    ids = create_assets(server, rows)
    for row, asset_id in zip(rows, ids, strict=True):
        row["id"] = asset_id
    return rows


@pytest.fixture
def erp(
    server: TrytonServer, assets: list[dict[str, Any]], make_services: Callable[..., Services]
) -> Services:
    prefix = str(assets[0]["code"]).rsplit("-", 1)[0]
    spec = declaration(server)
    spec["domain"] = [["state", "!=", "draft"], ["product.code", "like", f"{prefix}-%"]]
    return make_services(erp={"sources": {"fa": spec}}, stale_after_runs=2)


def numbers(server: TrytonServer, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = server.search_read(
        "account.asset", [["id", "in", [r["id"] for r in rows]]], ["number", "comment", "state"]
    )
    return {str(r["number"]): r for r in found}


def by_serial(services: Services, serial: str) -> Any:
    normal = IDENTIFIER_KINDS["serial_number"].normalise(serial)
    ids = services.store.resolve_identifiers([("serial_number", normal)])
    (ci,) = services.store.get_cis(ids.values()).values()
    return ci


def test_sync_creates_every_running_asset_and_replays_as_nothing(
    erp: Services, server: TrytonServer, assets: list[dict[str, Any]]
) -> None:
    result = erp.erp_sync.sync("fa")
    assert result.records == 10 and result.summary["cis_created"] == 10
    assert result.complete
    ci = by_serial(erp, assets[0]["serial"])
    held = numbers(server, assets)
    number = next(n for n, r in held.items() if r["id"] == assets[0]["id"])
    assert ci.identifier("erp_id") == number.lower()
    assert ci.attributes["purchase_value"] == float(assets[0]["value"])
    assert ci.attributes["supplier"] == assets[0]["supplier"]
    assert ci.attributes["model"] == assets[0]["product"]
    assert erp.erp_sync.sync("fa").summary["history_entries"] == 0


def test_update_under_precedence(erp: Services, assets: list[dict[str, Any]]) -> None:
    # discovery saw the first asset first and knows its model better
    erp.reconciler.apply(
        ObservationBatch(
            source="snmp",
            cis=[
                CIObservation(
                    "server",
                    name="db-7",
                    identifiers={"serial_number": assets[0]["serial"]},
                    attributes={"model": "PowerEdge R650xs", "purchase_value": 1.0},
                )
            ],
        )
    )
    plan = erp.erp_sync.sync("fa", dry_run=True)
    (item,) = [i for i in plan.items if i.action == "update"]
    assert [(k.field, k.kept_by) for k in item.kept] == [("model", "snmp")]
    assert "purchase_value" in {c.field for c in item.changes}  # the feed owns it
    erp.erp_sync.sync("fa")
    ci = by_serial(erp, assets[0]["serial"])
    assert ci.attributes["model"] == "PowerEdge R650xs"
    assert ci.attributes["purchase_value"] == float(assets[0]["value"])
    assert ci.attribute_sources["purchase_value"] == "erp:fa"


def test_closed_assets_retire_and_unlisted_ones_go_stale_after_missed_runs(
    erp: Services, server: TrytonServer, assets: list[dict[str, Any]]
) -> None:
    erp.erp_sync.sync("fa")
    close_assets(server, [assets[1]["id"]])
    erp.erp_sync.sync("fa")
    assert by_serial(erp, assets[1]["serial"]).lifecycle.value == "retired"
    # the ERP no longer lists an asset: two complete runs later it is stale, not deleted
    source = erp.erp_sync.sources["fa"]
    narrowed = {
        **source.options,
        "domain": [*source.options["domain"], ["id", "!=", assets[2]["id"]]],
    }
    erp.erp_sync.sources["fa"] = replace(source, options=narrowed)
    first = erp.erp_sync.sync("fa")
    assert first.summary["cis_marked_stale"] == 0
    second = erp.erp_sync.sync("fa")
    assert second.summary["cis_marked_stale"] == 1
    assert by_serial(erp, assets[2]["serial"]).stale


def test_write_back_is_visible_in_tryton_and_its_dry_run_writes_nothing(
    erp: Services, server: TrytonServer, assets: list[dict[str, Any]]
) -> None:
    erp.erp_sync.sync("fa")
    erp.reconciler.apply(
        ObservationBatch(
            source="snmp",
            cis=[
                CIObservation(
                    "server",
                    identifiers={"serial_number": assets[3]["serial"]},
                    attributes={"model": "R650xs", "os_version": "2.19.1"},
                )
            ],
        )
    )
    before = numbers(server, assets)
    plan = erp.erp_write_back.run("fa", dry_run=True)
    assert [(c.field, c.new) for c in plan.changes] == [("comment", "CMDB: R650xs os 2.19.1")]
    assert numbers(server, assets) == before  # nothing written to Tryton
    done = erp.erp_write_back.run("fa")
    assert done.written == 1
    after = numbers(server, assets)
    (changed,) = [r for r in after.values() if r["id"] == assets[3]["id"]]
    assert changed["comment"] == "CMDB: R650xs os 2.19.1"
    assert erp.erp_write_back.run("fa").written == 0  # said once


def test_a_dry_run_writes_nothing_to_the_store(erp: Services) -> None:
    before = erp.store.counts()
    plan = erp.erp_sync.sync("fa", dry_run=True)
    assert sum(1 for i in plan.items if i.action == "create") == 10
    assert erp.store.counts() == before


def test_a_wrong_password_and_an_unreachable_erp_are_one_line(
    server: TrytonServer, make_services: Callable[..., Services]
) -> None:
    services = make_services(
        erp={
            "sources": {
                "wrong": declaration(server, password="not-the-password"),
                "down": declaration(server, url="http://127.0.0.1:9/"),
            }
        }
    )
    before = services.store.counts()
    with pytest.raises(FeedError, match=r"refused the login of 'admin' \(HTTP 401\)"):
        services.erp_sync.sync("wrong")
    with pytest.raises(FeedError, match=r"cannot reach Tryton at http://127\.0\.0\.1:9/erp/rpc/"):
        services.erp_sync.sync("down")
    assert services.store.counts() == before
