"""The service catalogue: services, the category tree, and the defaults a ticket gets."""

from __future__ import annotations

from typing import Any

import pytest

from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.ticketing.catalogue import Catalogue, Category, Defaults, Service
from servicegraph.ticketing.model import TicketType

INCIDENT = TicketType.INCIDENT
REQUEST = TicketType.SERVICE_REQUEST

CONFIG: dict[str, Any] = {
    "services": [
        {
            "id": "email",
            "name": "E-mail",
            "ci_id": "ci-email",
            "owner_group": "messaging",
            "defaults": {
                "group": "messaging",
                "priority": 4,
                "impact": "medium",
                "custom_fields": {"site": "hq", "sla": "gold"},
            },
        },
        {"id": "vpn", "name": "VPN", "request_types": "service_request"},
        {"id": "fax", "name": "Fax", "active": False},
    ],
    "categories": [
        {"path": "network", "name": "Network", "owner_group": "noc", "defaults": {"priority": 3}},
        {
            "path": "network/vpn",
            "name": "VPN",
            "defaults": {"group": "noc-vpn", "urgency": "high", "custom_fields": {"site": "dc"}},
        },
        {"path": "network/vpn/token", "name": "Tokens", "types": ["service_request"]},
        {"path": "hardware", "name": "Hardware", "types": "incident"},
    ],
}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.from_mapping(CONFIG)


# --- records ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Service("", "S"), "id"),
        (lambda: Service("a b", "S"), "id"),
        (lambda: Service("s", " "), "name"),
        (lambda: Service("s", "S", request_types=()), "request_types"),
        (lambda: Service("s", "S", request_types=("outage",)), "request_types"),  # type: ignore[arg-type]
        (lambda: Service("s", "S", owner_group="a;b"), "owner_group"),
        (lambda: Service("s", "S", ci_id=""), "ci_id"),
        (lambda: Service("s", "S", active="no"), "active"),  # type: ignore[arg-type]
        (lambda: Service("s", "S", description=3), "description"),  # type: ignore[arg-type]
        (lambda: Category("Network", "N"), "path"),
        (lambda: Category("network//vpn", "N"), "path"),
        (lambda: Category("network/", "N"), "path"),
        (lambda: Category("network", ""), "name"),
        (lambda: Category("network", "N", types="change"), "types"),  # type: ignore[arg-type]
        (lambda: Defaults(priority=0), "defaults.priority"),
        (lambda: Defaults(priority=6), "defaults.priority"),
        (lambda: Defaults(priority=True), "defaults.priority"),
        (lambda: Defaults(impact="huge"), "defaults.impact"),
        (lambda: Defaults(urgency="1"), "defaults.urgency"),
        (lambda: Defaults(group="no c"), "defaults.group"),
        (lambda: Defaults(custom_fields={"": 1}), "defaults.custom_fields"),
        (lambda: Defaults(custom_fields=["x"]), "defaults.custom_fields"),  # type: ignore[arg-type]
    ],
)
def test_records_name_the_bad_field(make: Any, field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        make()
    assert info.value.field == field


def test_category_parent() -> None:
    assert Category("network/vpn/token", "T").parent == "network/vpn"
    assert Category("network", "N").parent is None


# --- building ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("services", "categories", "groups", "item", "field"),
    [
        ([Service("s", "S"), Service("s", "T")], [], None, "service 's'", "id"),
        (
            [Service("s", "S", ci_id="ci-1"), Service("t", "T", ci_id="ci-1")],
            [],
            None,
            "service 't'",
            "ci_id",
        ),
        ([], [Category("a", "A"), Category("a", "B")], None, "category 'a'", "path"),
        ([], [Category("a/b", "B")], None, "category 'a/b'", "path"),  # unknown parent
        ([], [Category("a", "A"), Category("a/b/c", "C")], None, "category 'a/b/c'", "path"),
        ([Service("s", "S", owner_group="ghost")], [], {"noc"}, "service 's'", "owner_group"),
        (
            [Service("s", "S", defaults=Defaults(group="ghost"))],
            [],
            {"noc"},
            "service 's'",
            "defaults.group",
        ),
        ([], [Category("a", "A", owner_group="ghost")], {"noc"}, "category 'a'", "owner_group"),
        (
            [],
            [Category("a", "A", types=(INCIDENT,)), Category("a/b", "B", types=(REQUEST,))],
            None,
            "category 'a/b'",
            "types",
        ),
    ],
)
def test_build_refuses(
    services: list[Service],
    categories: list[Category],
    groups: set[str] | None,
    item: str,
    field: str,
) -> None:
    with pytest.raises(ValidationErrors) as info:
        Catalogue.build(services, categories, groups=groups)
    assert [(e.item, e.field) for e in info.value.errors] == [(item, field)]


def test_build_accepts_known_groups() -> None:
    cat = Catalogue.build(
        [Service("s", "S", owner_group="noc", defaults=Defaults(group="noc"))],
        [Category("a", "A", owner_group="noc")],
        groups={"noc"},
    )
    assert cat.service("s").owner_group == "noc"


@pytest.mark.parametrize(
    ("data", "item", "field"),
    [
        (
            {"services": [{"id": "s", "name": "S", "colour": "red"}]},
            "catalogue.services[0]",
            "colour",
        ),
        ({"services": [{"name": "S"}]}, "catalogue.services[0]", "id"),
        ({"services": [{"id": "s"}]}, "catalogue.services[0]", "name"),
        ({"services": ["email"]}, "catalogue.services[0]", None),
        ({"services": {"id": "s"}}, "catalogue", "services"),
        (
            {"services": [{"id": "s", "name": "S", "defaults": {"prio": 1}}]},
            "catalogue.services[0]",
            "defaults.prio",
        ),
        (
            {"services": [{"id": "s", "name": "S", "defaults": 3}]},
            "catalogue.services[0]",
            "defaults",
        ),
        (
            {"services": [{"id": "s", "name": "S", "defaults": {"priority": "high"}}]},
            "catalogue.services[0]",
            "defaults.priority",
        ),
        (
            {"services": [{"id": "s", "name": "S", "request_types": ["problem"]}]},
            "catalogue.services[0]",
            "request_types",
        ),
        ({"categories": [{"path": "A/B", "name": "x"}]}, "catalogue.categories[0]", "path"),
        (
            {"categories": [{"path": "a", "name": "A", "kids": []}]},
            "catalogue.categories[0]",
            "kids",
        ),
        ({"categories": [{"path": "a/b", "name": "B"}]}, "category 'a/b'", "path"),
    ],
)
def test_from_mapping_names_record_and_field(
    data: dict[str, Any], item: str, field: str | None
) -> None:
    with pytest.raises(ValidationErrors) as info:
        Catalogue.from_mapping(data)
    assert [(e.item, e.field) for e in info.value.errors] == [(item, field)]


@pytest.mark.parametrize(("data", "field"), [([], None), ({"servics": []}, "servics")])
def test_from_mapping_top_level(data: Any, field: str | None) -> None:
    with pytest.raises(ValidationFailed) as info:
        Catalogue.from_mapping(data)
    assert (info.value.item, info.value.field) == ("catalogue", field)


def test_from_mapping_empty() -> None:
    assert Catalogue.from_mapping(None).services == {}


# --- lookups ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "kwargs", "field", "message"),
    [
        ("print", {}, "service", "no service 'print'"),
        ("print", {"field": "service_id"}, "service_id", "no service"),
        ("fax", {}, "service", "retired"),
        ("vpn", {"ticket_type": INCIDENT}, "service", "takes no incident tickets"),
    ],
)
def test_service_lookup_errors(
    catalogue: Catalogue, service: str, kwargs: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        catalogue.service(service, **kwargs)
    assert info.value.field == field
    assert message in str(info.value)


def test_service_lookup(catalogue: Catalogue) -> None:
    assert catalogue.service("vpn", ticket_type=REQUEST).request_types == (REQUEST,)
    assert catalogue.service("email", ticket_type=INCIDENT).ci_id == "ci-email"
    assert not catalogue.service("fax", active_only=False).active
    assert catalogue.service_for_ci("ci-email").id == "email"  # type: ignore[union-attr]
    assert catalogue.service_for_ci("ci-other") is None


@pytest.mark.parametrize(
    ("path", "kwargs", "field", "message"),
    [
        ("network/wifi", {}, "category", "no category 'network/wifi'"),
        ("net", {}, "category", "no category"),
        ("net", {"field": "subcategory"}, "subcategory", "no category"),
        ("hardware", {"ticket_type": REQUEST}, "category", "does not apply to service_request"),
        ("network/vpn/token", {"ticket_type": INCIDENT}, "category", "does not apply"),
    ],
)
def test_category_lookup_errors(
    catalogue: Catalogue, path: str, kwargs: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        catalogue.category(path, **kwargs)
    assert info.value.field == field
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("path", "types"),
    [
        ("network", (INCIDENT, REQUEST)),
        ("network/vpn", (INCIDENT, REQUEST)),
        ("network/vpn/token", (REQUEST,)),
        ("hardware", (INCIDENT,)),
    ],
)
def test_types_inherit(catalogue: Catalogue, path: str, types: tuple[TicketType, ...]) -> None:
    assert catalogue.types_for(path) == types
    catalogue.category(path, ticket_type=types[0])


def test_tree(catalogue: Catalogue) -> None:
    assert [c.path for c in catalogue.children(None)] == ["hardware", "network"]
    assert [c.path for c in catalogue.children("network")] == ["network/vpn"]
    assert [c.path for c in catalogue.chain("network/vpn/token")] == [
        "network",
        "network/vpn",
        "network/vpn/token",
    ]


@pytest.mark.parametrize(
    ("service", "category", "expected"),
    [
        (None, None, Defaults()),
        (
            "email",
            None,
            Defaults("messaging", 4, "medium", None, {"site": "hq", "sla": "gold"}),
        ),
        ("vpn", None, Defaults()),
        (None, "network", Defaults(priority=3)),
        # the nearest category wins over its parent and over the service
        (
            "email",
            "network",
            Defaults("messaging", 3, "medium", None, {"site": "hq", "sla": "gold"}),
        ),
        (
            "email",
            "network/vpn",
            Defaults("noc-vpn", 3, "medium", "high", {"site": "dc", "sla": "gold"}),
        ),
        (
            "email",
            "network/vpn/token",
            Defaults("noc-vpn", 3, "medium", "high", {"site": "dc", "sla": "gold"}),
        ),
        ("fax", "hardware", Defaults()),  # a retired service still has its defaults
    ],
)
def test_defaults_for(
    catalogue: Catalogue, service: str | None, category: str | None, expected: Defaults
) -> None:
    assert catalogue.defaults_for(service, category) == expected


@pytest.mark.parametrize(
    ("service", "category", "field"),
    [("print", None, "service"), (None, "network/wifi", "category")],
)
def test_defaults_for_unknown(
    catalogue: Catalogue, service: str | None, category: str | None, field: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        catalogue.defaults_for(service, category)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("service", "category", "expected"),
    [
        ("email", None, "messaging"),
        ("email", "network/vpn/token", "noc"),  # nearest category with an owner
        ("vpn", None, None),
        ("vpn", "network/vpn", "noc"),
        ("email", "hardware", "messaging"),  # no owner on the category chain
        (None, None, None),
    ],
)
def test_owner_group(
    catalogue: Catalogue, service: str | None, category: str | None, expected: str | None
) -> None:
    assert catalogue.owner_group(service, category) == expected
