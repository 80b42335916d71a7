"""The five-device topology: CONNECTED_TO links from LLDP and CDP, crawling from a seed,
and placeholders for undiscovered neighbours that become the real device later."""

from __future__ import annotations

import ipaddress

from servicegraph.bootstrap import Services
from servicegraph.collectors.snmp.credentials import CredentialRule, CredentialSet
from servicegraph.collectors.snmp.discovery import DiscoveryOptions
from servicegraph.collectors.snmp.targets import Target
from tests.snmp.conftest import TOPOLOGY, TOPOLOGY_HOSTS
from tests.snmp.helpers import community, discover, find, interfaces_of, links
from tests.snmp.simulator import Simulator
from tests.snmp.topology import EXPECTED_LINKS

PUBLIC = CredentialSet(default=community("public"))


def _targets(simulator: Simulator, *names: str) -> list[Target]:
    return [Target(TOPOLOGY_HOSTS[n], simulator.port) for n in names]


def test_explicit_targets_give_the_links_of_the_topology(
    simulator: Simulator, services: Services
) -> None:
    report = discover(services, _targets(simulator, *TOPOLOGY), credentials=PUBLIC)

    assert [r.outcome for r in report.results] == ["ok"] * 5
    assert report.devices == 5
    assert report.placeholders == 1  # the server behind acc2
    assert links(services) == EXPECTED_LINKS
    server = find(services, "chassis_id", "52:54:00:aa:bb:cc")
    assert server.attributes["placeholder"] is True
    assert server.name == "srv-db1"


def test_crawling_from_the_core_finds_everything_and_orients_uplinks(
    simulator: Simulator, services: Services
) -> None:
    options = DiscoveryOptions(
        concurrency=4,
        crawl_depth=3,
        allowed_subnets=(ipaddress.ip_network("127.0.0.0/29"),),
        default_port=simulator.port,
    )
    report = discover(services, _targets(simulator, "core"), credentials=PUBLIC, options=options)

    by_name = {r.snapshot.system.name: r.target for r in report.results if r.snapshot}
    assert sorted(by_name) == ["acc1", "acc2", "core", "dist1", "dist2.example.net"]
    assert by_name["core"].depth == 0
    assert {by_name["dist1"].depth, by_name["dist2.example.net"].depth} == {1}
    assert {by_name["acc1"].depth, by_name["acc2"].depth} == {2}
    assert links(services) == EXPECTED_LINKS
    # The server is outside the allowed subnets: seen, not crawled.
    assert "10.9.9.9" not in {r.target.host for r in report.results}
    # An access switch's uplinks leave from the access switch (the end further away).
    acc1 = find(services, "serial_number", "SGACC0001")
    uplinks = {i.attributes["if_name"]: i.id for i in interfaces_of(services, acc1.id)}
    outgoing = services.store.relationships(
        [uplinks["Gi0/49"], uplinks["Gi0/50"]], direction="out", types=["CONNECTED_TO"]
    )
    assert len(outgoing) == 2


def test_a_placeholder_becomes_the_device_when_it_is_discovered(
    simulator: Simulator, services: Services
) -> None:
    first = discover(services, _targets(simulator, "acc2"), credentials=PUBLIC, complete=False)
    assert first.placeholders == 2  # dist1 (LLDP) and the server
    placeholder = find(services, "chassis_id", "02:00:00:00:02:00")
    assert placeholder.attributes["placeholder"] is True
    assert placeholder.name == "dist1"

    discover(services, _targets(simulator, *TOPOLOGY), credentials=PUBLIC)

    dist1 = find(services, "serial_number", "SGDIST0001")
    assert dist1.id == placeholder.id
    assert "placeholder" not in dist1.attributes
    assert dist1.attributes["model"] == "SG-5000"
    assert links(services) == EXPECTED_LINKS


def test_a_device_that_stops_answering_stays_while_its_neighbours_see_it(
    simulator: Simulator, services: Services
) -> None:
    discover(services, _targets(simulator, *TOPOLOGY), credentials=PUBLIC)
    before = find(services, "serial_number", "SGACC0002")

    discover(services, _targets(simulator, "core", "dist1", "dist2", "acc1"), credentials=PUBLIC)

    after = services.store.get_cis([before.id])[before.id]
    assert not after.stale
    assert after.attributes == before.attributes  # not turned back into a placeholder
    assert links(services) == EXPECTED_LINKS


def test_credentials_per_subnet_and_per_target(simulator: Simulator, services: Services) -> None:
    wrong = community("not-the-community")
    credentials = CredentialSet(
        [
            CredentialRule(wrong, subnets=(ipaddress.ip_network("127.0.0.0/29"),)),
            CredentialRule(community("public"), targets=frozenset({TOPOLOGY_HOSTS["core"]})),
        ]
    )
    report = discover(
        services,
        _targets(simulator, "core", "dist1"),
        credentials=credentials,
        session=type(services).__mro__
        and __import__(
            "servicegraph.collectors.snmp.client", fromlist=["SessionOptions"]
        ).SessionOptions(timeout=0.3, retries=0),
    )
    outcome = {r.target.host: r.outcome for r in report.results}
    assert outcome == {TOPOLOGY_HOSTS["core"]: "ok", TOPOLOGY_HOSTS["dist1"]: "timeout"}
