"""CI classes: built-in and declared ones, typed attributes, errors that name the field."""

from __future__ import annotations

import pytest

from servicegraph.cmdb.classes import ClassRegistry
from servicegraph.cmdb.errors import ValidationFailed


@pytest.fixture(scope="module")
def registry() -> ClassRegistry:
    return ClassRegistry.build()


def test_builtin_classes(registry: ClassRegistry) -> None:
    for name in (
        "network_device",
        "interface",
        "server",
        "virtual_machine",
        "application",
        "database",
        "cluster",
        "business_service",
        "location",
    ):
        assert name in registry
    assert registry.get("server").lineage == ("server",)
    # attributes common to every class
    assert registry.get("location").attribute_types["owner"] == "str"


def test_unknown_class_names_item_and_field(registry: ClassRegistry) -> None:
    with pytest.raises(ValidationFailed) as info:
        registry.validate_attributes("toaster", {}, item="row 7")
    err = info.value
    assert (err.item, err.field) == ("row 7", "class")
    assert "toaster" in str(err) and "row 7" in str(err)
    assert "server" in str(err)  # lists what is known


def test_attributes_are_coerced_and_partial(registry: ClassRegistry) -> None:
    assert registry.validate_attributes(
        "server", {"cpu_count": "8", "os": "  linux  "}, item="x"
    ) == {"cpu_count": 8, "os": "linux"}
    # only what was given comes back; None means "empty" and is kept
    assert registry.validate_attributes("server", {"os": None}, item="x") == {"os": None}
    assert registry.validate_attributes("server", {}, item="x") == {}
    assert registry.validate_attributes(
        "network_device", {"ip_addresses": ["10.0.0.1"], "placeholder": True}, item="x"
    ) == {"ip_addresses": ["10.0.0.1"], "placeholder": True}


@pytest.mark.parametrize(
    ("ci_class", "attributes", "field"),
    [
        ("server", {"cpu_count": "many"}, "cpu_count"),
        ("server", {"memory_mb": 1.5}, "memory_mb"),
        ("network_device", {"ip_addresses": "10.0.0.1"}, "ip_addresses"),
        ("network_device", {"ip_addresses": ["10.0.0.1", 7]}, "ip_addresses.1"),
        ("database", {"size_gb": "huge"}, "size_gb"),
        ("cluster", {"min_healthy": 0}, "min_healthy"),
        ("cluster", {"min_healthy": -2}, "min_healthy"),
    ],
)
def test_wrong_attribute_type_names_item_and_field(
    registry: ClassRegistry, ci_class: str, attributes: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        registry.validate_attributes(ci_class, attributes, item="ci[3] web-01")
    assert info.value.item == "ci[3] web-01"
    assert info.value.field == field
    assert "ci[3] web-01" in str(info.value) and field in str(info.value)


def test_unknown_attribute_names_item_and_field(registry: ClassRegistry) -> None:
    with pytest.raises(ValidationFailed) as info:
        registry.validate_attributes("server", {"os": "linux", "colour": "red"}, item="srv-1")
    assert (info.value.item, info.value.field) == ("srv-1", "colour")
    assert "colour" in str(info.value)
    assert "classes.server.attributes" in str(info.value)  # says how to declare it


def test_declared_class_extends_a_builtin() -> None:
    registry = ClassRegistry.build(
        {
            "load_balancer": {
                "extends": "network_device",
                "attributes": {"vip_count": "int", "vips": "list[str]"},
            },
            "f5_big_ip": {"extends": "load_balancer", "attributes": {"tmos": "str"}},
        }
    )
    lb = registry.get("load_balancer")
    assert lb.parent == "network_device"
    assert lb.is_a("network_device") and lb.is_a("load_balancer")
    assert not lb.is_a("server")
    f5 = registry.get("f5_big_ip")
    assert f5.lineage == ("f5_big_ip", "load_balancer", "network_device")
    # inherited, own and common attributes validate; types are enforced
    assert registry.validate_attributes(
        "f5_big_ip",
        {"vendor": "F5", "vip_count": "3", "tmos": "17.1", "owner": "netops"},
        item="lb-1",
    ) == {"vendor": "F5", "vip_count": 3, "tmos": "17.1", "owner": "netops"}
    with pytest.raises(ValidationFailed) as info:
        registry.validate_attributes("load_balancer", {"vip_count": "lots"}, item="lb-1")
    assert info.value.field == "vip_count"
    with pytest.raises(ValidationFailed) as info:
        registry.validate_attributes("load_balancer", {"tmos": "17.1"}, item="lb-1")
    assert info.value.field == "tmos"  # a child's attribute is not the parent's


def test_declared_class_without_parent_and_extra_builtin_attributes() -> None:
    registry = ClassRegistry.build(
        {
            "storage_array": {"attributes": {"capacity_tb": "float"}},
            "server": {"attributes": {"warranty_end": "datetime"}},
        }
    )
    assert registry.get("storage_array").lineage == ("storage_array",)
    assert registry.validate_attributes("storage_array", {"capacity_tb": 12}, item="x") == {
        "capacity_tb": 12.0
    }
    assert registry.validate_attributes(
        "server", {"warranty_end": "2027-01-31T00:00:00Z", "os": "linux"}, item="x"
    ) == {"warranty_end": "2027-01-31T00:00:00Z", "os": "linux"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"x_y": {"extends": "no_such_class"}}, "extends unknown class 'no_such_class'"),
        ({"x_y": {"attributes": {"size": "bigint"}}}, "unknown attribute type 'bigint'"),
        ({"x_y": {"extend": "server"}}, "unknown keys"),
        ({"x_y": ["server"]}, "must be a mapping"),
        ({"9lives": {}}, "letters, digits and underscores"),
        ({"bad-name": {}}, "letters, digits and underscores"),
        (
            {"a_a": {"extends": "b_b"}, "b_b": {"extends": "a_a"}},
            "inheritance cycle",
        ),
    ],
)
def test_bad_class_declarations_are_refused(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationFailed, match=message) as info:
        ClassRegistry.build(spec)  # type: ignore[arg-type]
    assert info.value.item is not None and info.value.item.startswith("class '")


def test_bad_attribute_type_names_the_attribute() -> None:
    with pytest.raises(ValidationFailed) as info:
        ClassRegistry.build({"x_y": {"attributes": {"size": "bigint"}}})
    assert (info.value.item, info.value.field) == ("class 'x_y'", "size")


def test_classes_declared_in_settings_reach_reconciliation(make_services) -> None:
    from servicegraph.cmdb.observation import CIObservation, ObservationBatch

    services = make_services(
        classes={"load_balancer": {"extends": "network_device", "attributes": {"vips": "int"}}}
    )
    report = services.reconciler.apply(
        ObservationBatch(
            "import",
            [CIObservation("load_balancer", "lb1", {"serial_number": "LB1"}, {"vips": "4"})],
        )
    )
    (ci_id,) = report.ci_ids
    assert ci_id is not None
    ci = services.store.get_cis([ci_id])[ci_id]
    assert (ci.ci_class, dict(ci.attributes)) == ("load_balancer", {"vips": 4})
