"""ERP asset sync through GraphQL over HTTP: the declared feeds without their credentials,
dry runs that write nothing, real runs that do, the reconciliation report, write-back to
a file, and the errors (bad records, an unreadable feed, an undeclared source, roles).

The feeds are real CSV files in tmp_path, read by the csv reader; the small site
(examples/small-site.json, imported as the source ``import``) is the discovered estate.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servicegraph.collectors.erp.spec import public_url
from tests.graphql.conftest import Site, make_site

HEADER = "InventoryNo;SerialNo;CostCenter;Category;Name\n"
# INV-1 is core-1 of the small site (same serial); INV-2 is a switch nobody ever saw
ASSETS = HEADER + "INV-1;FOC2001A1;CC-10;Switch;core-1\nINV-2;SN-GHOST-1;CC-20;Switch;spare-sw\n"
# a printer the class map does not know, and a good row
BROKEN = HEADER + "INV-7;SN-7;CC-1;Printer;printer-1\nINV-8;SN-8;CC-1;Switch;sw-8\n"
SECRET = "s3cret-pw"


def erp_settings(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "assets.csv").write_text(ASSETS, encoding="utf-8")
    (tmp_path / "broken.csv").write_text(BROKEN, encoding="utf-8")
    mapping = {
        "kind": "csv",
        "key": "InventoryNo",
        "class": {"from": "Category", "transforms": [{"map": {"Switch": "network_device"}}]},
        "fields": {
            "name": "Name",
            "identifiers.serial_number": "SerialNo",
            "attributes.cost_centre": "CostCenter",
        },
    }
    return {
        "sources": {
            "assets": {
                **mapping,
                "path": str(tmp_path / "assets.csv"),
                "write_back": {
                    "path": str(tmp_path / "out.csv"),
                    "fields": {"SerialNo": "identifiers.serial_number", "Class": "class"},
                },
            },
            "broken": {**mapping, "path": str(tmp_path / "broken.csv")},
            "missing": {**mapping, "path": str(tmp_path / "nowhere.csv")},
            "api": {
                "kind": "http",
                "url": f"https://sync:{SECRET}@erp.example.com/api/assets?site=hq&api_key={SECRET}",
                "key": "id",
                "class": "server",
                "schedule": 3600,
                "complete": False,
                "owns": ["owner"],
            },
        }
    }


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[Site]:
    yield from make_site(tmp_path, erp=erp_settings(tmp_path))


SYNC = """
mutation($source: String!, $dryRun: Boolean, $allowPartial: Boolean) {
  erpSync(source: $source, dryRun: $dryRun, allowPartial: $allowPartial) {
    source runId dryRun written records complete notes
    summary { created updated unchanged markedStale conflicts rejected historyEntries }
    items { action ciId name class key origin ci { id name }
            changes { field old new } kept { field erpValue keptValue keptBy } conflicts }
    rejected { origin field message }
    conflicts { kind item detail }
  }
}"""
REPORT = """
query($source: String, $live: Boolean) {
  erpReport(source: $source, live: $live) {
    source live erpAssets discovered ghostCount unregisteredCount mismatchCount
    ghosts { ciId ci { id name class } source key lastDiscovered }
    unregistered { ci { name } seenBy lastSeen serialNumber }
    mismatches { ciId name key field erpValue cmdbValue detail }
  }
}"""
WRITE_BACK = """
mutation($source: String!, $dryRun: Boolean) {
  erpWriteBack(source: $source, dryRun: $dryRun) {
    source dryRun assets written changeCount
    changes { key ciId name field old new ci { name } }
  }
}"""
FIND = "query($ref: ID!) { ci(id: $ref) { id name class attributes attributeSources } }"
SWITCHES = '{ cis(filter: {class: "network_device"}, first: 100) { nodes { id } } }'


def switches(site: Site) -> int:
    return len(site.data(SWITCHES)["cis"]["nodes"])


def sync(site: Site, source: str = "assets", **variables: Any) -> dict[str, Any]:
    result: dict[str, Any] = site.data(SYNC, source=source, **variables)["erpSync"]
    return result


def error(body: dict[str, Any]) -> dict[str, Any]:
    assert body.get("errors"), body
    first: dict[str, Any] = body["errors"][0]
    return first


def test_sources_are_listed_with_where_they_read_and_no_credentials(
    site: Site, tmp_path: Path
) -> None:
    query = "{ erpSources { name kind schedule complete owns writeBack where } }"
    body = site.gql(query, "viewer")
    assert SECRET not in str(body)
    sources = {s["name"]: s for s in body["data"]["erpSources"]}
    assert list(sources) == ["api", "assets", "broken", "missing"]
    assert sources["assets"] == {
        "name": "assets",
        "kind": "csv",
        "schedule": 0.0,
        "complete": True,
        "owns": [],
        "writeBack": True,
        "where": str(tmp_path / "assets.csv"),
    }
    assert sources["api"] == {
        "name": "api",
        "kind": "http",
        "schedule": 3600.0,
        "complete": False,
        "owns": ["owner"],
        "writeBack": False,
        "where": "https://erp.example.com/api/assets?site=hq&api_key=***",
    }


def test_public_url_drops_user_password_fragment_and_secret_parameters() -> None:
    assert public_url("http://u:p@erp:8000/rpc/") == "http://erp:8000/rpc/"
    assert (
        public_url("https://erp.example.com/a?page=2&access_token=x&Password=y#tok=z")
        == "https://erp.example.com/a?page=2&access_token=***&Password=***"
    )


def test_a_sync_is_a_dry_run_unless_asked_and_writes_nothing(site: Site) -> None:
    before = switches(site)
    plan = sync(site)  # no dryRun given: a dry run
    assert plan["dryRun"] is True and plan["written"] is False
    assert plan["source"] == "erp:assets" and plan["records"] == 2 and plan["complete"] is True
    assert plan["summary"]["created"] == 1 and plan["summary"]["updated"] == 1
    assert plan["summary"]["rejected"] == 0 and plan["rejected"] == []
    items = {i["key"]: i for i in plan["items"]}
    assert items["INV-2"]["action"] == "CREATE" and items["INV-2"]["class"] == "network_device"
    assert items["INV-2"]["ci"] is None  # it does not exist yet
    core = items["INV-1"]
    assert core["action"] == "UPDATE" and core["ci"]["name"] == "core-1"
    assert core["ciId"] == site.ids["core-1"] and core["origin"]
    changed = {c["field"]: c for c in core["changes"]}
    assert changed["cost_centre"]["old"] is None and changed["cost_centre"]["new"] == "CC-10"
    assert changed["identifiers.erp_id"]["new"] == "inv-1"  # identifiers are normalised

    assert switches(site) == before
    assert site.data(FIND, ref="erp_id:INV-2")["ci"] is None
    assert "cost_centre" not in site.data(FIND, ref=site.ids["core-1"])["ci"]["attributes"]


def test_a_real_sync_creates_and_updates_the_cis_and_a_replay_changes_nothing(
    site: Site,
) -> None:
    before = switches(site)
    done = sync(site, dryRun=False)
    assert done["dryRun"] is False and done["written"] is True and done["items"] == []
    assert done["summary"]["created"] == 1 and done["summary"]["updated"] == 1
    assert done["summary"]["historyEntries"] > 0
    assert switches(site) == before + 1
    spare = site.data(FIND, ref="erp_id:INV-2")["ci"]
    assert spare["name"] == "spare-sw" and spare["class"] == "network_device"
    assert spare["attributes"]["cost_centre"] == "CC-20"
    assert spare["attributeSources"]["cost_centre"] == "erp:assets"
    core = site.data(FIND, ref="erp_id:INV-1")["ci"]
    assert core["id"] == site.ids["core-1"] and core["attributes"]["cost_centre"] == "CC-10"

    again = sync(site, dryRun=False)
    assert again["summary"]["created"] == 0 and again["summary"]["updated"] == 0
    assert again["summary"]["unchanged"] == 2 and again["summary"]["historyEntries"] == 0


def test_the_report_lists_a_never_discovered_asset_as_a_ghost(site: Site) -> None:
    sync(site, dryRun=False)
    report = site.data(REPORT, "viewer", source="assets")["erpReport"]
    assert report["source"] == "erp:assets" and report["live"] is False
    assert report["erpAssets"] == 2
    assert report["ghostCount"] == 1
    (ghost,) = report["ghosts"]
    assert ghost["ci"]["name"] == "spare-sw" and ghost["ci"]["class"] == "network_device"
    assert ghost["source"] == "erp:assets" and ghost["key"] == "INV-2"
    assert ghost["lastDiscovered"] is None  # never
    # core-1 is both listed and discovered; dist-1 only discovered: unregistered
    unregistered = {u["ci"]["name"]: u for u in report["unregistered"]}
    assert "core-1" not in unregistered
    assert unregistered["dist-1"]["seenBy"] == ["import"]
    assert unregistered["dist-1"]["serialNumber"] == "FOC2001B1"
    assert unregistered["dist-1"]["lastSeen"] is not None
    assert report["unregisteredCount"] == len(report["unregistered"])


def test_a_live_report_shows_an_erp_serial_that_another_ci_holds(
    site: Site, tmp_path: Path
) -> None:
    sync(site, dryRun=False)
    # the ERP now gives spare-sw the serial of dist-1
    (tmp_path / "assets.csv").write_text(ASSETS.replace("SN-GHOST-1", "FOC2001B1"))
    report = site.data(REPORT, "engineer", source="assets", live=True)["erpReport"]
    assert report["live"] is True
    claimed = [m for m in report["mismatches"] if m["field"] == "identifiers.serial_number"]
    assert claimed, report["mismatches"]
    assert claimed[0]["erpValue"] == "FOC2001B1"
    assert claimed[0]["cmdbValue"] == site.ids["dist-1"]  # the CI holding it
    assert report["mismatchCount"] == len(report["mismatches"])
    # a live report is a dry run: nothing changed
    spare = site.data(FIND, ref="erp_id:INV-2")["ci"]
    assert site.data(FIND, ref="serial_number:FOC2001B1")["ci"]["id"] != spare["id"]


def test_write_back_to_a_file_is_a_dry_run_unless_asked(site: Site, tmp_path: Path) -> None:
    sync(site, dryRun=False)
    out = tmp_path / "out.csv"
    plan = site.data(WRITE_BACK, source="assets")["erpWriteBack"]
    assert plan["source"] == "erp:assets" and plan["dryRun"] is True
    assert plan["assets"] == 2 and plan["written"] == 0 and plan["changeCount"] == 2
    changes = {c["key"]: c for c in plan["changes"]}
    # the ERP gave both serials: only what it does not know goes back
    assert changes["INV-1"]["field"] == "Class" and changes["INV-1"]["old"] is None
    assert changes["INV-1"]["new"] == "network_device"
    assert changes["INV-1"]["ciId"] == site.ids["core-1"]
    assert changes["INV-1"]["ci"]["name"] == "core-1"
    assert not out.exists()

    done = site.data(WRITE_BACK, source="assets", dryRun=False)["erpWriteBack"]
    assert done["dryRun"] is False and done["written"] == 2
    written = out.read_text().splitlines()
    assert written[0] == "InventoryNo;SerialNo;Class" and "INV-1;;network_device" in written
    assert any(line.startswith("INV-2;") for line in written)
    again = site.data(WRITE_BACK, source="assets")["erpWriteBack"]
    assert again["changeCount"] == 0 and again["changes"] == []


def test_bad_records_refuse_a_real_run_listing_them_and_allow_partial_writes_the_rest(
    site: Site,
) -> None:
    refused = error(site.gql(SYNC, source="broken", dryRun=False))
    ext = refused["extensions"]
    assert ext["code"] == "INVALID_RECORDS" and ext["count"] == 1
    assert ext["source"] == "erp:broken"
    (row,) = ext["errors"]
    assert row["field"] == "Category" and "Printer" in row["message"]
    assert row["origin"] in refused["message"] and "Printer" in refused["message"]
    assert "allowPartial" in refused["message"]
    assert site.data(FIND, ref="erp_id:INV-8")["ci"] is None  # nothing written

    plan = sync(site, "broken")  # a dry run shows the rows and does not refuse
    assert plan["summary"]["rejected"] == 1 and plan["rejected"][0]["field"] == "Category"
    assert plan["complete"] is False  # a rejected row must not count as gone from the ERP
    assert any("write nothing" in n for n in plan["notes"])

    partial = sync(site, "broken", dryRun=False, allowPartial=True)
    assert partial["written"] is True and partial["summary"]["created"] == 1
    assert partial["summary"]["rejected"] == 1
    assert [r["field"] for r in partial["rejected"]] == ["Category"]
    # a rejected row is also the invalid_record conflict the run recorded in the store
    assert [(c["kind"], c["item"].rsplit(":", 1)[1]) for c in partial["conflicts"]] == [
        ("invalid_record", "2")
    ]
    assert site.data(FIND, ref="erp_id:INV-8")["ci"]["name"] == "sw-8"


def test_a_feed_that_cannot_be_read_is_erp_unavailable(site: Site) -> None:
    failed = error(site.gql(SYNC, source="missing"))
    assert failed["extensions"]["code"] == "ERP_UNAVAILABLE"
    assert failed["extensions"]["source"] == "erp:missing"
    assert "nowhere.csv" in failed["message"]


def test_an_undeclared_source_is_refused_naming_the_declared_ones(site: Site) -> None:
    declared = ["api", "assets", "broken", "missing"]
    for body in (
        site.gql(SYNC, source="nope"),
        site.gql(REPORT, source="nope"),
        site.gql(WRITE_BACK, source="erp:nope"),
    ):
        failed = error(body)
        assert failed["extensions"]["code"] == "BAD_USER_INPUT"
        assert failed["extensions"]["field"] == "source"
        assert failed["extensions"]["declared"] == declared
        assert "api, assets, broken, missing" in failed["message"]
    no_target = error(site.gql(WRITE_BACK, source="broken"))
    assert no_target["extensions"]["code"] == "BAD_USER_INPUT"
    assert no_target["extensions"]["setting"] == "erp.sources.broken.write_back"


def test_a_live_report_needs_a_source(site: Site) -> None:
    failed = error(site.gql(REPORT, live=True))
    assert failed["extensions"] == {"code": "BAD_USER_INPUT", "field": "source"}


def test_running_a_sync_or_write_back_needs_edit_cmdb(site: Site) -> None:
    for body in (
        site.gql(SYNC, "viewer", source="assets"),
        site.gql(WRITE_BACK, "viewer", source="assets"),
        site.gql(REPORT, "agent", source="assets", live=True),
    ):
        refused = error(body)
        assert refused["extensions"] == {"code": "FORBIDDEN", "required": "edit_cmdb"}
    assert site.data(REPORT, "viewer")["erpReport"]["source"] is None  # the stored report
    assert sync(site)["dryRun"] is True  # admin
    engineer = site.data(SYNC, "engineer", source="assets", dryRun=False)["erpSync"]
    assert engineer["written"] is True
    denied = error(site.gql("{ erpSources { name } }", "integration"))
    assert denied["extensions"]["code"] == "FORBIDDEN"


def test_lists_take_a_limit(site: Site) -> None:
    query = """mutation($limit: Int!) { erpSync(source: "assets") {
        summary { created updated } items(limit: $limit) { key } } }"""
    result = site.data(query, limit=1)["erpSync"]
    assert len(result["items"]) == 1 and result["summary"]["created"] == 1
    bad = error(site.gql(query, limit=-1))
    assert bad["extensions"] == {"code": "BAD_USER_INPUT", "field": "limit"}
