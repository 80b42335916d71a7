"""ERP source declarations, transforms and the mapping of records to observations."""

from __future__ import annotations

import pytest

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.precedence import SourcePrecedence
from servicegraph.collectors.erp.mapping import map_records
from servicegraph.collectors.erp.records import SourceRecord
from servicegraph.collectors.erp.spec import build_source, build_sources
from servicegraph.collectors.erp.transforms import TransformError, build_transform

BASE = {
    "kind": "csv",
    "path": "/exports/assets.csv",
    "key": "InventoryNo",
    "class": {"from": "Category", "transforms": [{"map": {"Switch": "network_device"}}]},
}


def source(**extra: object):
    return build_source("assets", {**BASE, **extra}, path="erp.sources.assets")


@pytest.mark.parametrize(
    ("steps", "raw", "expected"),
    [
        (["trim"], "  core   switch ", "core switch"),
        (["trim", "upper"], " foc1234x ", "FOC1234X"),
        ([{"decimal": "comma"}], "1 234,56", 1234.56),
        ([{"decimal": "comma"}], "1\u00a0234,5", 1234.5),
        ([{"decimal": "point"}], "1,234.5", 1234.5),
        ([{"date": "%d.%m.%Y"}], "31.12.2024", "2024-12-31"),
        ([{"date": ["%d.%m.%Y", "%Y-%m-%d"]}], "2024-01-05", "2024-01-05"),
        (
            [
                {
                    "unit": {"to": "kg", "factors": {"g": 0.001, "kg": 1, "t": 1000}},
                    "decimal": "comma",
                }
            ],
            "2,5 t",
            2500.0,
        ),
        ([{"unit": {"to": "kg", "factors": {"g": 0.001, "kg": 1}}}], "12", 12.0),
        (["integer"], "0042", 42),
        ([{"split": ";"}], "a; b;;c", ["a", "b", "c"]),
        ([{"map": {"Switch": "network_device"}}], "switch", "network_device"),
        ([{"map": {"A": "x"}, "default": "y"}], "B", "y"),
        ([{"default": "unknown"}], "", "unknown"),
        ([{"date": "%d.%m.%Y"}], "", ""),  # empty passes: the ERP says nothing
    ],
)
def test_transforms(steps: list[object], raw: object, expected: object) -> None:
    assert build_transform(steps, field="f").apply(raw) == expected


@pytest.mark.parametrize(
    ("steps", "raw", "message"),
    [
        ([{"date": "%d.%m.%Y"}], "31.02.2023", "not a date in the format %d.%m.%Y"),
        ([{"decimal": "comma"}], "abc", "not a number"),
        ([{"map": {"Switch": "network_device"}}], "Router", "'Router' is not in the map"),
        (["integer"], "4.5", "not a whole number"),
        ([{"unit": {"to": "kg", "factors": {"kg": 1}}}], "3 lb", "unknown unit 'lb'"),
    ],
)
def test_transform_errors_say_what_was_expected(
    steps: list[object], raw: str, message: str
) -> None:
    with pytest.raises(TransformError, match=message):
        build_transform(steps, field="f").apply(raw)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"kind": "ftp"}, "erp.sources.assets.kind"),
        ({**BASE, "kind": "csv", "path": ""}, "erp.sources.assets.path"),
        ({k: v for k, v in BASE.items() if k != "key"}, "erp.sources.assets.key"),
        ({k: v for k, v in BASE.items() if k != "class"}, "erp.sources.assets.class"),
        (
            {**BASE, "fields": {"identifiers.serial": "SerialNo"}},
            "erp.sources.assets.fields.identifiers.serial",
        ),
        ({**BASE, "fields": {"colour": "Colour"}}, "erp.sources.assets.fields.colour"),
        (
            {**BASE, "fields": {"name": {"from": "N", "transforms": ["shout"]}}},
            "erp.sources.assets.fields.name.transforms[0]",
        ),
        ({**BASE, "encoding": "klingon"}, "erp.sources.assets.encoding"),
        ({**BASE, "schedule": -1}, "erp.sources.assets.schedule"),
        ({**BASE, "url": "http://x"}, "erp.sources.assets.url"),
        (
            {**BASE, "write_back": {"fields": {"Serial": "identifiers.nope"}, "path": "/x.csv"}},
            "erp.sources.assets.write_back.fields.Serial",
        ),
        (
            {
                **{k: v for k, v in BASE.items() if k != "path"},
                "kind": "tryton",
                "url": "http://127.0.0.1:8000/",
                "database": "erp",
            },
            "erp.sources.assets.user",
        ),
    ],
)
def test_bad_declarations_name_the_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        build_sources({"assets": spec})
    assert caught.value.field == field


def test_the_erp_shaped_export_maps_to_observations() -> None:
    src = source(
        fields={
            "name": "Name",
            "identifiers.serial_number": {"from": "SerialNo", "transforms": ["trim", "upper"]},
            "identifiers.asset_tag": "InventoryNo",
            "attributes.cost_centre": "CostCenter",
            "attributes.owner": "Responsible",
            "attributes.purchase_value": {"from": "Value", "transforms": [{"decimal": "comma"}]},
            "lifecycle": {
                "from": "Status",
                "transforms": [{"map": {"in use": "active", "disposed": "retired"}}],
            },
        }
    )
    record = SourceRecord(
        "assets.csv:2",
        {
            "InventoryNo": "000123",
            "SerialNo": " foc1234x ",
            "CostCenter": "CC-410",
            "Responsible": "J. Smith",
            "Category": "Switch",
            "Name": "core-1",
            "Value": "12 500,00",
            "Status": "disposed",
        },
    )
    mapped = map_records(src, [record])
    assert mapped.errors == []
    (obs,) = mapped.observations
    assert obs.key == "000123"
    assert obs.ci_class == "network_device"
    assert obs.identifiers == {
        "erp_id": ["000123"],
        "serial_number": ["FOC1234X"],
        "asset_tag": ["000123"],
    }
    assert obs.attributes == {
        "cost_centre": "CC-410",
        "owner": "J. Smith",
        "purchase_value": 12500.0,
    }
    assert obs.lifecycle is not None and obs.lifecycle.value == "retired"
    assert obs.origin == "assets.csv:2"


def test_row_errors_name_origin_and_source_field() -> None:
    src = source(
        fields={
            "attributes.purchase_date": {"from": "Bought", "transforms": [{"date": "%d.%m.%Y"}]}
        }
    )
    records = [
        SourceRecord("a.csv:2", {"InventoryNo": "1", "Category": "Switch", "Bought": "01.01.2024"}),
        SourceRecord("a.csv:3", {"InventoryNo": "", "Category": "Switch"}),
        SourceRecord("a.csv:4", {"InventoryNo": "2", "Category": "Switch", "Bought": "yesterday"}),
        SourceRecord("a.csv:5", {"InventoryNo": "1", "Category": "Switch"}),
        SourceRecord("a.csv:6", {"InventoryNo": "3", "Category": "Chair"}),
    ]
    mapped = map_records(src, records)
    assert [o.key for o in mapped.observations] == ["1"]
    assert [(e.origin, e.field) for e in mapped.errors] == [
        ("a.csv:3", "InventoryNo"),
        ("a.csv:4", "Bought"),
        ("a.csv:5", "InventoryNo"),
        ("a.csv:6", "Category"),
    ]
    assert "already the InventoryNo of a.csv:2" in mapped.errors[2].message


def test_a_dotted_field_reaches_into_nested_records() -> None:
    src = source(fields={"attributes.supplier": "supplier.name", "name": "product.rec_name"})
    record = SourceRecord(
        "account.asset/7",
        {
            "InventoryNo": "7",
            "Category": "Switch",
            "supplier": {"name": "ACME"},
            "product.": {"rec_name": "C9300"},
        },
    )
    (obs,) = map_records(src, [record]).observations
    assert obs.attributes == {"supplier": "ACME"}
    assert obs.name == "C9300"


def test_precedence_ranks_a_feed_as_its_family_and_owners_first() -> None:
    policy = SourcePrecedence({"cost_centre": ["erp", "manual"], "model": ["snmp", "erp"]})
    assert policy.may_override("cost_centre", "erp:assets", "manual")
    assert not policy.may_override("model", "erp:assets", "snmp")
    owned = policy.with_owner("erp:assets", ["model", "location"])
    assert owned.may_override("model", "erp:assets", "snmp")
    assert not owned.may_override("model", "snmp", "erp:assets")
    assert not owned.may_override("location", "snmp", "erp:assets")
    # another feed of the family does not inherit what one feed owns
    assert not owned.may_override("model", "erp:other", "snmp")


def test_the_readme_example_declares_valid_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    import re
    from pathlib import Path

    import yaml

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Asset sync with an ERP") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    monkeypatch.setenv("TRYTON_PASSWORD", "pw")
    monkeypatch.setenv("ERP_TOKEN", "token")
    sources = build_sources(yaml.safe_load(block.group(1))["erp"]["sources"])
    assert sorted(sources) == ["assets-api", "fixed-assets", "tryton-assets"]
    assert sources["tryton-assets"].option("related") == {
        "lot": {"model": "stock.lot", "by": "product"}
    }
