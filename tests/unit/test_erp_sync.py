"""ERP sync over the embedded store: reconciliation under precedence, dry runs that write
nothing, refused and partial runs, staleness after missed complete runs, write-back rows
and the reconciliation reports.

The feed is the connector port itself (``feeds.Feed``) holding records as a file or the
ERP would give them; the real readers are tested against real files, HTTP servers and a
live Tryton in tests/erp.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from servicegraph.bootstrap import Services
from servicegraph.cmdb.model import ConflictKind
from servicegraph.cmdb.observation import CIObservation, ObservationBatch
from servicegraph.collectors.erp.estate import read_estate
from servicegraph.collectors.erp.records import FeedRead, SourceRecord
from servicegraph.collectors.erp.spec import ErpSource
from servicegraph.collectors.erp.sync import ErpSync, SyncRefused, dry_run_lines
from servicegraph.collectors.erp.writeback import desired_rows

SPEC: dict[str, Any] = {
    "kind": "csv",
    "path": "/exports/assets.csv",
    "key": "InventoryNo",
    "class": {
        "from": "Category",
        "transforms": [{"map": {"Switch": "network_device", "Server": "server"}}],
    },
    "fields": {
        "name": "Name",
        "identifiers.serial_number": {"from": "SerialNo", "transforms": ["trim", "upper"]},
        "attributes.cost_centre": "CostCenter",
        "attributes.owner": "Responsible",
        "attributes.model": "Model",
        "attributes.purchase_value": "Value",
        "attributes.purchase_date": {"from": "Bought", "transforms": [{"date": "%d.%m.%Y"}]},
    },
    "owns": ["purchase_date"],
    "write_back": {
        "path": "/exports/to-erp.csv",
        "fields": {
            "SerialNo": "identifiers.serial_number",
            "Model": "attributes.model",
            "Status": "operational_state",
            "Note": "{attributes.model} fw {attributes.firmware_revision}, seen {last_seen}",
        },
    },
}


def row(number: int, **values: str) -> dict[str, str]:
    base = {
        "InventoryNo": f"INV-{number}",
        "SerialNo": f"foc{number:04d}",
        "Name": f"sw-{number}",
        "Category": "Switch",
        "CostCenter": "CC-10",
        "Responsible": "alice",
        "Model": "C9300",
        "Bought": "01.02.2023",
        "Value": "1200.5",
    }
    return {**base, **values}


class RecordsFeed:
    """The feed port over records held in memory (what a reader would have produced)."""

    rows: list[dict[str, str]] = []

    def __init__(self, source: ErpSource) -> None:
        self.source = source

    def read(self, progress: Any = None) -> FeedRead:
        records = [SourceRecord(f"assets.csv:{i + 2}", r) for i, r in enumerate(self.rows)]
        return FeedRead(records, [])


@pytest.fixture
def erp(make_services: Callable[..., Services]) -> tuple[Services, ErpSync, list[dict[str, str]]]:
    services = make_services(erp={"sources": {"assets": SPEC}}, stale_after_runs=2)
    rows: list[dict[str, str]] = []

    class Feed(RecordsFeed):
        pass

    Feed.rows = rows
    sync = ErpSync(services.reconciler, services.erp_sync.sources, open_feed=Feed)
    return services, sync, rows


def by_key(services: Services, key: str) -> list[Any]:
    ids = services.store.resolve_keys([key], "erp:assets")[key]
    return list(services.store.get_cis(ids).values())


def discover(services: Services, name: str, serial: str, **attributes: Any) -> None:
    services.reconciler.apply(
        ObservationBatch(
            source="snmp",
            cis=[
                CIObservation(
                    "network_device",
                    name=name,
                    identifiers={"serial_number": serial},
                    attributes=attributes,
                )
            ],
        )
    )


def test_sync_creates_updates_under_precedence_and_replays_as_nothing(erp: Any) -> None:
    services, sync, rows = erp
    discover(services, "core-1", "FOC0001", model="C9300-48P", firmware_revision="17.9.4")
    rows.extend([row(1), row(2, Category="Server", Name="srv-2")])
    result = sync.sync("assets")
    assert result.summary["cis_created"] == 1 and result.summary["cis_updated"] == 1
    (ci,) = by_key(services, "INV-1")
    assert ci.attributes["model"] == "C9300-48P"  # kept by snmp: the device knows its model
    assert ci.attributes["cost_centre"] == "CC-10"  # the ERP's fact
    assert ci.attribute_sources["cost_centre"] == "erp:assets"
    assert ci.identifier("erp_id") == "inv-1"
    before = services.store.counts()
    replay = sync.sync("assets")
    assert replay.summary["history_entries"] == 0
    assert replay.summary["cis_unchanged"] == 2
    assert services.store.counts() == before


def test_dry_run_tells_per_attribute_and_writes_nothing(erp: Any) -> None:
    services, sync, rows = erp
    discover(services, "core-1", "FOC0001", model="C9300-48P")
    rows.extend([row(1), row(3)])
    before = services.store.counts()
    result = sync.sync("assets", dry_run=True)
    assert services.store.counts() == before
    assert not result.written
    by_key = {i.key: i for i in result.items}
    assert by_key["INV-3"].action == "create"
    update = by_key["INV-1"]
    assert update.action == "update"
    assert {c.field for c in update.changes} >= {"cost_centre", "owner", "identifiers.erp_id"}
    (kept,) = update.kept
    assert (kept.field, kept.erp_value, kept.kept_value, kept.kept_by) == (
        "model",
        "C9300",
        "C9300-48P",
        "snmp",
    )
    text = "\n".join(dry_run_lines(result))
    assert "model: ERP says C9300, kept C9300-48P (kept by snmp)" in text
    # and the real run does what the dry run said
    real = sync.sync("assets")
    assert real.summary["cis_created"] == 1 and real.summary["cis_updated"] == 1


def test_a_bad_row_refuses_the_run_unless_partial(erp: Any) -> None:
    services, sync, rows = erp
    rows.extend([row(1), row(2, Bought="31.02.2023"), row(3, Category="Chair")])
    before = services.store.counts()
    with pytest.raises(SyncRefused) as refused:
        sync.sync("assets")
    assert [(e.origin, e.field) for e in refused.value.errors] == [
        ("assets.csv:3", "Bought"),
        ("assets.csv:4", "Category"),
    ]
    assert services.store.counts() == before
    partial = sync.sync("assets", allow_partial=True)
    assert partial.summary["cis_created"] == 1 and partial.summary["rejected"] == 2
    assert not partial.complete  # rejected rows' CIs must not count as gone
    recorded = [c for c in services.store.conflicts() if c.kind is ConflictKind.INVALID_RECORD]
    assert sorted(c.item for c in recorded) == ["assets.csv:3", "assets.csv:4"]
    assert "31.02.2023" in recorded[0].detail or "31.02.2023" in recorded[1].detail


def test_an_attribute_type_error_names_the_source_column(erp: Any) -> None:
    _, sync, rows = erp
    rows.extend([row(1), row(2, Value="12,5 EUR")])
    with pytest.raises(SyncRefused) as refused:
        sync.sync("assets")
    (error,) = refused.value.errors
    assert (error.origin, error.field) == ("assets.csv:3", "Value")
    assert "(mapped to purchase_value)" in error.message


def test_assets_the_erp_stops_listing_go_stale_after_missed_complete_runs(erp: Any) -> None:
    services, sync, rows = erp
    rows.extend([row(1), row(2)])
    sync.sync("assets")
    rows.pop()
    first = sync.sync("assets")
    assert first.summary["cis_marked_stale"] == 0
    planned = sync.sync("assets", dry_run=True)
    (stale,) = [i for i in planned.items if i.action == "stale"]
    assert stale.name == "sw-2"
    second = sync.sync("assets")
    assert second.summary["cis_marked_stale"] == 1
    (gone,) = by_key(services, "INV-2")
    assert gone.stale  # marked, never deleted
    rows.append(row(2))
    assert sync.sync("assets").summary["history_entries"] >= 1  # fresh again


def test_a_serial_of_another_ci_is_a_conflict_never_an_overwrite(erp: Any) -> None:
    services, sync, rows = erp
    discover(services, "edge-9", "FOC0009")
    rows.extend([row(1), row(2, SerialNo="FOC0009", Category="Server", Name="srv-2")])
    result = sync.sync("assets")
    kinds = {c.kind for c in result.conflicts}
    assert ConflictKind.CLASS_MISMATCH in kinds or ConflictKind.IDENTIFIER_CLAIMED in kinds
    edge = services.store.get_cis(
        services.store.resolve_identifiers([("serial_number", "FOC0009")]).values()
    )
    (ci,) = edge.values()
    assert ci.ci_class == "network_device" and ci.name == "edge-9"


def test_write_back_rows_carry_what_discovery_knows(erp: Any) -> None:
    services, sync, rows = erp
    rows.extend([row(1), row(2)])
    sync.sync("assets")
    discover(services, "sw-1", "FOC0001", model="C9300-48P", firmware_revision="17.9.4")
    source = sync.source("assets")
    wanted = dict(desired_rows(source, read_estate(services.store).values()))
    _, values = wanted["INV-1"]
    assert values["SerialNo"] == "FOC0001"
    assert values["Model"] == "C9300-48P"  # snmp's: the ERP said C9300
    assert values["Note"].startswith("C9300-48P fw 17.9.4, seen 20")
    _, other = wanted["INV-2"]
    assert "Model" not in other  # the ERP's own value is not echoed back
    assert "Note" not in other  # a template of facts the CMDB does not know stays unsent


def test_reports_list_ghosts_unregistered_and_two_serials(erp: Any) -> None:
    services, sync, rows = erp
    rows.extend([row(1), row(2)])
    sync.sync("assets")
    discover(services, "sw-1", "FOC0001")  # INV-1 seen by discovery
    discover(services, "rogue-7", "FOC7777")  # a switch no ERP lists
    report = services.erp_reports.report(now=dt.datetime.now(dt.UTC))
    assert [g.key for g in report.ghosts] == ["INV-2"]
    assert [u.name for u in report.unregistered] == ["rogue-7"]
    assert report.erp_assets == 2 and report.discovered == 2
