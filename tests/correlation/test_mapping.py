"""Which CI an event is about, from the labels monitoring sources attach."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from servicegraph.bootstrap import Services
from servicegraph.cmdb.observation import CIObservation, CIRef, ObservationBatch
from servicegraph.cmdb.observation import RelationshipObservation as Rel
from servicegraph.correlation.mapping import CIMapper, event_hints
from tests.correlation.conftest import World


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


class CountingStore:
    """The store, counting the calls the mapper makes (to check they are batched)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


def test_a_ci_id_label_may_be_a_key_or_an_identifier(
    make_services: Callable[..., Services],
) -> None:
    services = make_services()
    ids = estate(services)
    for source, host in (("snmp", "twin-a"), ("zabbix", "twin-b")):
        twin = CIObservation("server", host, {"hostname": host}, key="twin")
        services.reconciler.apply(ObservationBatch(source, [twin], []))
    dup = CIObservation("server", "web-dup", {"hostname": "web-dup"}, key="web-dup")
    (dup_id,) = services.reconciler.apply(ObservationBatch("erp", [dup], [])).ci_ids
    assert dup_id is not None
    services.reconciler.merge(ids["web"], dup_id)
    mapper = CIMapper(services.store, services.reconciler.identifier_rules, services.impact)
    cases = [
        ({"ci_id": "web"}, ids["web"]),  # a bare key
        ({"ci_id": "key:sw1"}, ids["sw1"]),
        ({"ci_id": "serial_number:sw1"}, ids["sw1"]),  # normalised as identifiers are
        ({"ci_id": "hostname:web.example.com"}, None),  # web has an fqdn, not a hostname
        ({"ci_id": "fqdn:web.example.com"}, ids["web"]),
        ({"ci_id": f"id:{ids['gi1']}"}, ids["gi1"]),
        ({"ci_id": dup_id}, ids["web"]),  # a merged CI: its survivor
        ({"ci_id": "web-dup"}, ids["web"]),  # the key of a merged CI: the survivor
        ({"ci_id": "twin"}, None),  # a key of two CIs names neither
        ({"ci_id": "twin", "host": "sw1"}, ids["sw1"]),  # ... and the next label decides
        ({"ci_id": "hostname:"}, None),
        ({"ci_id": "nothing-by-that-name"}, None),
    ]
    got = mapper.map_many([labels for labels, _ in cases])
    assert got == [expected for _, expected in cases]


def test_keys_and_identifiers_in_ci_id_labels_are_resolved_in_one_batch(
    make_services: Callable[..., Services],
) -> None:
    services = make_services()
    ids = estate(services)
    store = CountingStore(services.store)
    mapper = CIMapper(store, services.reconciler.identifier_rules, services.impact)
    services.impact.impact([ids["sw1"]])  # the projection is current
    assert mapper.map_many([{"ci_id": i} for i in ids.values()] * 20) == list(ids.values()) * 20
    assert set(store.calls) == {"change_seq"}, "real ids: the projection answers"

    store.calls.clear()
    refs = {"web": ids["web"], "key:gi2": ids["gi2"], "serial_number:SW1": ids["sw1"]}
    labels = [{"ci_id": ref, "n": str(n)} for n in range(20) for ref in refs]
    assert mapper.map_many(labels) == list(refs.values()) * 20
    assert store.calls["resolve_keys"] == 1 and store.calls["resolve_identifiers"] == 1
    assert store.calls["get_cis"] <= 2, store.calls
    store.calls.clear()
    assert mapper.map_many(labels) == list(refs.values()) * 20
    assert set(store.calls) == {"change_seq"}, "cached until the graph changes"


def test_an_event_naming_its_ci_by_key_opens_an_incident_on_it(world: World) -> None:
    event = world.event("PortDown", None, labels={"ci_id": "acc-1"})
    world.send(event)
    (incident,) = world.incidents()
    assert incident.root_ci_id == world.ids["acc-1"]
    assert world.services.tickets.unmapped_alerts() == []
