"""Which CI an event is about, from the labels monitoring sources attach."""

from __future__ import annotations

from collections.abc import Callable

from servicegraph.bootstrap import Services
from servicegraph.cmdb.observation import CIObservation, CIRef, ObservationBatch
from servicegraph.cmdb.observation import RelationshipObservation as Rel
from servicegraph.correlation.mapping import CIMapper, event_hints


def estate(services: Services) -> dict[str, str]:
    cis = [
        CIObservation(
            "network_device",
            "sw1",
            {"serial_number": "SW1", "management_ip": "10.9.0.1", "hostname": "sw1"},
            key="sw1",
        ),
        CIObservation(
            "interface",
            "Gi0/1",
            {"component_key": "SW1/Gi0/1"},
            {"if_index": 1, "if_name": "Gi0/1"},
            key="gi1",
        ),
        CIObservation(
            "interface",
            "Gi0/2",
            {"component_key": "SW1/Gi0/2"},
            {"if_index": 2, "if_name": "Gi0/2"},
            key="gi2",
        ),
        CIObservation("server", "web", {"fqdn": "web.example.com"}, key="web"),
        CIObservation("application", "shop", {"service_id": "shop-api"}, key="shop"),
    ]
    rels = [
        Rel("PART_OF", CIRef(key="gi1"), CIRef(key="sw1")),
        Rel("PART_OF", CIRef(key="gi2"), CIRef(key="sw1")),
    ]
    report = services.reconciler.apply(ObservationBatch("import", cis, rels))
    return {c.key: i for c, i in zip(cis, report.ci_ids, strict=True)}  # type: ignore[misc]


def test_labels_map_to_cis_in_order_of_strength(make_services: Callable[..., Services]) -> None:
    services = make_services()
    ids = estate(services)
    mapper = CIMapper(services.store, services.reconciler.identifier_rules, services.impact)
    cases = [
        ({"ci_id": ids["web"], "host": "sw1"}, ids["web"]),  # explicit id wins
        ({"management_ip": "10.9.0.1", "ifName": "Gi0/2"}, ids["gi2"]),
        ({"agent_address": "10.9.0.1", "ifIndex": "1"}, ids["gi1"]),
        ({"host": "sw1", "ifName": "Gi9/9"}, ids["sw1"]),  # unknown port: the device
        ({"instance": "web.example.com:9100"}, ids["web"]),
        ({"hostname": "WEB.example.com."}, ids["web"]),
        ({"instance": "10.9.0.1:161"}, ids["sw1"]),
        ({"job": "shop-api"}, ids["shop"]),
        ({"host": "nowhere"}, None),
        ({"ci_id": "ci-missing"}, None),
        ({}, None),
    ]
    got = mapper.map_many([labels for labels, _ in cases])
    assert got == [expected for _, expected in cases]


def test_hints_strip_ports_and_understand_ipv6() -> None:
    assert ("ident", "management_ip", "2001:db8::1") in event_hints(
        {"instance": "[2001:db8::1]:9100"}
    )
    assert event_hints({"instance": "db-1:9100"}) == [("ident", "hostname", "db-1")]
