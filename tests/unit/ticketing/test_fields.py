"""Custom fields: declarations refused naming the path, fields merged from the ticket type
and the category chain, values coerced to JSON-friendly types or refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.ticketing.fields import FIELD_TYPES, CustomFieldSchema

DECLARATION: dict[str, Any] = {
    "service_request": {
        "laptop_model": {"type": "choice", "choices": ["x1", "t14", "mac"], "required": True},
        "needed_by": {"type": "date", "label": "Needed by"},
        "quantity": {"type": "int", "min": 1, "max": 10, "default": 1},
    },
    "incident": {
        "users_affected": {"type": "int", "min": 0},
        "seen_at": {"type": "datetime"},
    },
    "category:network": {
        "site": {"type": "str", "max_length": 12},
        "asset_tag": {"type": "str", "pattern": r"AT-\d{4}"},
    },
    "category:network/vpn": {
        "site": {"type": "str", "max_length": 12, "required": True},  # required here
        "profile": {"type": "choice", "choices": ["staff", "contractor"], "default": "staff"},
        "ports": {"type": "list[str]", "choices": ["443", "1194", "500"], "max_items": 2},
        "split_tunnel": {"type": "bool"},
        "bandwidth_mbps": {"type": "float", "min": 0.5, "max": 1000},
    },
}
SCHEMA = CustomFieldSchema.build(DECLARATION)


@pytest.mark.parametrize(
    ("ticket_type", "category", "names"),
    [
        ("service_request", None, ["laptop_model", "needed_by", "quantity"]),
        ("incident", None, ["users_affected", "seen_at"]),
        ("incident", "network", ["users_affected", "seen_at", "site", "asset_tag"]),
        (
            "incident",
            "network/vpn",
            ["users_affected", "seen_at", "site", "asset_tag", "profile", "ports",
             "split_tunnel", "bandwidth_mbps"],
        ),
        # a category below network/vpn that declares nothing inherits the whole chain
        ("incident", "network/vpn/mobile", ["users_affected", "seen_at", "site", "asset_tag",
                                            "profile", "ports", "split_tunnel", "bandwidth_mbps"]),
        ("service_request", "hardware/laptops", ["laptop_model", "needed_by", "quantity"]),
    ],
)  # fmt: skip
def test_fields_for_merges_type_then_category_chain(
    ticket_type: str, category: str | None, names: list[str]
) -> None:
    assert list(SCHEMA.fields_for(ticket_type, category)) == names


def test_the_nearest_declaration_wins() -> None:
    assert SCHEMA.fields_for("incident", "network")["site"].required is False
    vpn_site = SCHEMA.fields_for("incident", "network/vpn")["site"]
    assert (vpn_site.required, vpn_site.scope) == (True, "category:network/vpn")
    assert SCHEMA.fields_for("service_request")["needed_by"].label == "Needed by"


@pytest.mark.parametrize(
    ("ticket_type", "category", "field"),
    [("problem_report", None, "ticket_type"), ("incident", "Network/VPN", "category"),
     ("incident", "network//vpn", "category")],
)  # fmt: skip
def test_fields_for_refuses_unknown_type_and_bad_path(
    ticket_type: str, category: str, field: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        SCHEMA.fields_for(ticket_type, category)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("ticket_type", "category", "values", "expected"),
    [
        # a new request: defaults filled in, the choice kept, the date as ISO text
        ("service_request", None, {"laptop_model": "t14", "needed_by": "2026-04-01"},
         {"laptop_model": "t14", "needed_by": "2026-04-01", "quantity": 1}),
        ("service_request", None, {"laptop_model": " mac ", "quantity": "3"},
         {"laptop_model": "mac", "quantity": 3}),
        ("service_request", None, {"laptop_model": "x1", "needed_by": None},
         {"laptop_model": "x1", "needed_by": None, "quantity": 1}),  # None clears
        ("service_request", None, {"laptop_model": "x1", "needed_by": ""},
         {"laptop_model": "x1", "needed_by": None, "quantity": 1}),  # empty text is no value
        ("incident", None, {"seen_at": "2026-03-01T09:30:00+01:00"},
         {"seen_at": "2026-03-01T08:30:00+00:00"}),  # date-times in UTC
        ("incident", None, {"seen_at": "2026-03-01T09:30:00"},
         {"seen_at": "2026-03-01T09:30:00+00:00"}),  # no offset: UTC
        ("incident", None, {"users_affected": 0}, {"users_affected": 0}),
        ("incident", "network/vpn",
         {"site": "HQ", "ports": ["443", " 1194 "], "split_tunnel": "yes", "bandwidth_mbps": 50},
         {"site": "HQ", "profile": "staff", "ports": ["443", "1194"], "split_tunnel": True,
          "bandwidth_mbps": 50.0}),
        ("incident", "network", {"asset_tag": "AT-0042"}, {"asset_tag": "AT-0042"}),
        ("incident", None, {}, {}),
    ],
)  # fmt: skip
def test_validate_coerces(
    ticket_type: str, category: str | None, values: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert SCHEMA.validate(ticket_type, category, values) == expected


SR, INC, VPN = "service_request", "incident", "network/vpn"
X1 = {"laptop_model": "x1"}  # what a request needs
HQ = {"site": "HQ"}  # what a VPN ticket needs


@pytest.mark.parametrize(
    ("ticket_type", "category", "values", "field", "text"),
    [
        (SR, None, {}, "laptop_model", "is required for service_request"),
        (SR, None, {"laptop_model": "  "}, "laptop_model", "is required"),
        (SR, None, {"laptop_model": "x2"}, "laptop_model", "one of x1, t14, mac, not 'x2'"),
        (SR, None, {"laptop_model": 1}, "laptop_model", "one of x1, t14, mac, not 1"),
        (SR, None, {**X1, "colour": "red"}, "colour",
         "no such custom field for service_request; fields: laptop_model, needed_by, quantity"),
        (SR, "network", {**X1, "vpn": "x"}, "vpn", "for service_request in network"),
        (SR, None, {**X1, "quantity": 0}, "quantity", "at least 1, not 0"),
        (SR, None, {**X1, "quantity": 11}, "quantity", "at most 10"),
        (SR, None, {**X1, "quantity": 2.5}, "quantity", "whole number"),
        (SR, None, {**X1, "quantity": True}, "quantity", "whole number"),
        (SR, None, {**X1, "quantity": "two"}, "quantity", "whole number, not 'two'"),
        (SR, None, {**X1, "needed_by": "31/01/2026"}, "needed_by", "YYYY-MM-DD"),
        (SR, None, {**X1, "needed_by": 1767225600}, "needed_by", "a date"),
        (INC, None, {"seen_at": "yesterday"}, "seen_at", "ISO 8601"),
        (INC, None, {"users_affected": -1}, "users_affected", "at least 0"),
        (INC, "network", {"site": "a site too long!!!!!"}, "site", "at most 12 characters, not 20"),
        (INC, "network", {"site": 12}, "site", "must be text"),
        (INC, "network", {"asset_tag": "AT-42"}, "asset_tag", r"not match the pattern AT-\d{4}"),
        (INC, "network", {"asset_tag": "xAT-0042"}, "asset_tag", "does not match"),  # whole value
        (INC, VPN, {}, "site", "is required for incident in network/vpn"),
        (INC, VPN, {**HQ, "ports": "443"}, "ports", "list of texts"),
        (INC, VPN, {**HQ, "ports": ["22"]}, "ports", "one of 443, 1194, 500, not '22'"),
        (INC, VPN, {**HQ, "ports": ["443", "500", "1194"]}, "ports", "at most 2 items"),
        (INC, VPN, {**HQ, "split_tunnel": "maybe"}, "split_tunnel", "true or false"),
        (INC, VPN, {**HQ, "bandwidth_mbps": "nan"}, "bandwidth_mbps", "finite"),
        (INC, VPN, {**HQ, "bandwidth_mbps": 0.1}, "bandwidth_mbps", "at least 0.5"),
        (INC, VPN, {**HQ, "profile": "guest"}, "profile", "staff, contractor"),
    ],
)  # fmt: skip
def test_validate_refuses_naming_the_field(
    ticket_type: str, category: str | None, values: dict[str, Any], field: str, text: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        SCHEMA.validate(ticket_type, category, values, item="req-7")
    assert info.value.field == f"custom_fields.{field}"
    assert info.value.item == "req-7"
    assert text in str(info.value)


def test_several_errors_are_reported_together() -> None:
    with pytest.raises(ValidationErrors) as info:
        SCHEMA.validate("incident", "network/vpn", {"colour": "red", "profile": "guest"})
    fields = [error.field for error in info.value.errors]
    assert fields == ["custom_fields.colour", "custom_fields.profile", "custom_fields.site"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, {}),  # nothing required, nothing defaulted in an update
        ({"needed_by": "2026-05-01"}, {"needed_by": "2026-05-01"}),
        ({"quantity": None}, {"quantity": None}),
    ],
)
def test_partial_updates(values: dict[str, Any], expected: dict[str, Any]) -> None:
    assert SCHEMA.validate("service_request", None, values, partial=True) == expected


def test_partial_update_cannot_clear_a_required_field() -> None:
    with pytest.raises(ValidationFailed) as info:
        SCHEMA.validate("service_request", None, {"laptop_model": None}, partial=True)
    assert info.value.field == "custom_fields.laptop_model"


def test_values_must_be_a_mapping() -> None:
    with pytest.raises(ValidationFailed) as info:
        SCHEMA.validate("incident", None, ["seen_at"])  # type: ignore[arg-type]
    assert info.value.field == "custom_fields"


def test_every_type_is_declarable() -> None:
    extra = {"choice": {"choices": ["a"]}}
    declaration = {
        "incident": {f"f_{i}": {"type": t, **extra.get(t, {})} for i, t in enumerate(FIELD_TYPES)}
    }
    assert [
        f.type for f in CustomFieldSchema.build(declaration).fields_for("incident").values()
    ] == list(FIELD_TYPES)


def test_no_declaration_no_fields() -> None:
    schema = CustomFieldSchema.build(None)
    assert schema.fields_for("incident", "network") == {}
    with pytest.raises(ValidationFailed) as info:
        schema.validate("incident", None, {"x": 1})
    assert info.value.field == "custom_fields.x"
    assert "fields: none" in str(info.value)


@pytest.mark.parametrize(
    ("spec", "where", "text"),
    [
        ({"type": "enum"}, ".type", "unknown type 'enum'; use one of str, int, float, bool"),
        ({}, ".type", "unknown type None"),
        ({"type": "choice"}, ".choices", "a choice field needs choices"),
        ({"type": "choice", "choices": []}, ".choices", "non-empty list"),
        ({"type": "choice", "choices": ["a", "a"]}, ".choices", "distinct"),
        ({"type": "choice", "choices": ["a", " "]}, ".choices", "non-blank"),
        ({"type": "choice", "choices": ["a"], "default": "b"}, ".default",
         "the default must be one of a, not 'b'"),
        ({"type": "int", "max_length": 3}, "", "unknown keys ['max_length'] for a int field"),
        ({"type": "int", "min": 5, "max": 1}, ".min", "above max 1"),
        ({"type": "int", "min": 1.5}, ".min", "whole number"),
        ({"type": "float", "max": "10"}, ".max", "a number"),
        ({"type": "int", "required": "yes"}, ".required", "true or false"),
        ({"type": "int", "default": "many"}, ".default", "whole number"),
        ({"type": "str", "pattern": "(unclosed"}, ".pattern", "not a regular expression"),
        ({"type": "str", "max_length": 0}, ".max_length", "1 or more"),
        ({"type": "str", "label": 3}, ".label", "must be text"),
        ({"type": "list[str]", "max_items": True}, ".max_items", "1 or more"),
        ("str", "", "mapping with at least 'type'"),
    ],
)  # fmt: skip
def test_bad_field_declarations_name_the_path(spec: Any, where: str, text: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        CustomFieldSchema.build({"service_request": {"laptop_model": spec}})
    assert info.value.field == f"custom_fields.service_request.laptop_model{where}"
    assert text in str(info.value)


@pytest.mark.parametrize(
    ("declaration", "field", "text"),
    [
        ({SR: {"Laptop Model": {"type": "str"}}}, "service_request.Laptop Model", "lower case"),
        ({SR: ["s"]}, "service_request", "must map field names"),
        ({"servce_request": {}}, "servce_request",
         "unknown ticket type 'servce_request'; use one of incident, service_request, "
         "or category:<path>"),
        ({"category:Network": {}}, "category:Network", "not a category path"),
        ({INC: {"site": {"type": "str"}}, "category:network": {"site": {"type": "int"}}},
         "category:network.site.type", "is 'int' but 'str' under 'incident': a custom field has"),
    ],
)  # fmt: skip
def test_bad_scopes_name_the_path(declaration: Any, field: str, text: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        CustomFieldSchema.build(declaration)
    assert info.value.field == f"custom_fields.{field}"
    assert text in str(info.value)


def test_declaration_must_be_a_mapping_and_types_are_the_callers() -> None:
    with pytest.raises(ValidationFailed) as info:
        CustomFieldSchema.build(["incident"])  # type: ignore[arg-type]
    assert info.value.field == "custom_fields"
    schema = CustomFieldSchema.build(
        {"change": {"backout_plan": {"type": "str", "required": True}}},
        ticket_types=["incident", "service_request", "problem", "change"],
    )
    assert list(schema.fields_for("change")) == ["backout_plan"]
    with pytest.raises(ValidationFailed) as info:
        CustomFieldSchema.build({"change": {}}, path="desk.custom_fields")
    assert info.value.field == "desk.custom_fields.change"


def test_list_defaults_are_copies() -> None:
    schema = CustomFieldSchema.build(
        {"incident": {"tags": {"type": "list[str]", "default": ["network"]}}}
    )
    first = schema.validate("incident", None, {})
    assert first == {"tags": ["network"]}
    first["tags"].append("changed")  # type: ignore[attr-defined]
    assert schema.validate("incident", None, {}) == {"tags": ["network"]}
