"""Identifier normal forms: two spellings of one fact must compare equal."""

from __future__ import annotations

import pytest

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.identifiers import DEFAULT_MATCH_ORDER, IdentifierRules


@pytest.fixture(scope="module")
def rules() -> IdentifierRules:
    return IdentifierRules()


def normal(rules: IdentifierRules, kind: str, value: str) -> str:
    ((got_kind, got_value),) = rules.normalise({kind: value}, item="t")
    assert got_kind == kind
    return got_value


@pytest.mark.parametrize(
    ("kind", "spellings", "expected"),
    [
        (
            "serial_number",
            ["FOC1234X", "foc1234x", "foc 1234x", " FOC\t1234X\n", "FOC-1234 X", "foc.1234/x"],
            "FOC1234X",
        ),
        ("asset_tag", ["at-0042", "AT0042", " AT- 0042 ", "at_0042"], "AT0042"),
        (
            "mac",
            [
                "00:1A:2B:3C:4D:5E",
                "00-1a-2b-3c-4d-5e",
                "001a.2b3c.4d5e",
                "001A2B3C4D5E",
                "0x001a2b3c4d5e",
                "00 1a 2b 3c 4d 5e",
            ],
            "00:1a:2b:3c:4d:5e",
        ),
        (
            "fqdn",
            ["Web01.Example.com.", "web01.example.com", "  WEB01.EXAMPLE.COM  "],
            "web01.example.com",
        ),
        ("hostname", ["Web01.Example.com.", "WEB01", "web01.corp.example.org"], "web01"),
        ("hostname", ["10.0.0.1"], "10.0.0.1"),  # an address is not cut at its dots
        ("management_ip", ["10.0.0.1", " 10.0.0.1 ", "10.0.0.1/24"], "10.0.0.1"),
        (
            "management_ip",
            ["2001:DB8::1", "2001:0db8:0000:0000:0000:0000:0000:0001"],
            "2001:db8::1",
        ),
        ("erp_id", ["  Asset  42 ", "asset 42", "ASSET\t42"], "asset 42"),
        ("chassis_id", ["00:1A:2B:3C:4D:5E", "001a.2b3c.4d5e"], "00:1a:2b:3c:4d:5e"),
        ("chassis_id", [" Switch  A ", "switch a"], "switch a"),  # not a MAC: kept as text
        ("component_key", ["FOC1/Gi1/0/1", "foc1/gi1/0/1"], "foc1/gi1/0/1"),
    ],
)
def test_spellings_normalise_to_one_value(
    rules: IdentifierRules, kind: str, spellings: list[str], expected: str
) -> None:
    assert {normal(rules, kind, s) for s in spellings} == {expected}


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("mac", "00:1a:2b:3c:4d"),  # too short
        ("mac", "00:1a:2b:3c:4d:5e:6f"),  # too long
        ("mac", "00:1a:2b:3c:4d:zz"),
        ("management_ip", "10.0.0.256"),
        ("management_ip", "not-an-ip"),
    ],
)
def test_malformed_values_name_item_and_field(
    rules: IdentifierRules, kind: str, value: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        rules.normalise({kind: value}, item="hosts.csv:3")
    assert (info.value.item, info.value.field) == ("hosts.csv:3", f"identifiers.{kind}")


def test_unknown_kind_names_the_field(rules: IdentifierRules) -> None:
    with pytest.raises(ValidationFailed) as info:
        rules.normalise({"imei": "123"}, item="x")
    assert info.value.field == "identifiers.imei"
    assert "serial_number" in str(info.value)


def test_non_string_values_are_refused(rules: IdentifierRules) -> None:
    with pytest.raises(ValidationFailed) as info:
        rules.normalise({"serial_number": [["nested"]]}, item="x")  # type: ignore[list-item]
    assert info.value.field == "identifiers.serial_number"


def test_result_is_in_match_order_deduplicated_and_skips_empty(rules: IdentifierRules) -> None:
    got = rules.normalise(
        {
            "management_ip": "10.0.0.9",
            "hostname": "Web01.example.com",
            "mac": ["00:1a:2b:3c:4d:5f", "001a.2b3c.4d5e", "00-1A-2B-3C-4D-5E"],
            "serial_number": "foc 1",
            "asset_tag": "   ",
            "uuid": None,
        },
        item="x",
    )
    assert got == (
        ("serial_number", "FOC1"),
        ("mac", "00:1a:2b:3c:4d:5e"),
        ("mac", "00:1a:2b:3c:4d:5f"),
        ("hostname", "web01"),
        ("management_ip", "10.0.0.9"),
    )


def test_custom_match_order() -> None:
    rules = IdentifierRules(["hostname", "serial_number"])
    assert rules.normalise({"serial_number": "s", "hostname": "h"}, item="x") == (
        ("hostname", "h"),
        ("serial_number", "S"),
    )
    assert DEFAULT_MATCH_ORDER.index("serial_number") < DEFAULT_MATCH_ORDER.index("hostname")


def test_unknown_kind_in_match_order() -> None:
    with pytest.raises(ValidationFailed, match="imei") as info:
        IdentifierRules(["serial_number", "imei"])
    assert info.value.item == "identification.match_order"
