"""DataLoaders: a page of CIs with relationships, neighbours and open incidents costs a
bounded number of store calls, whatever the page size."""

from __future__ import annotations

from collections import Counter
from typing import Any

from servicegraph.cmdb.observation import CIObservation, CIRef, RelationshipObservation
from servicegraph.cmdb.reconciliation import batch_from
from tests.graphql.conftest import Site


class Counting:
    """Forwards every call to ``target`` and counts them by method name."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


PAGE = """query($first: Int!) { cis(first: $first, filter: {class: "server"}) {
    nodes {
        name
        relationships { type from { name class } to { name operationalState } }
        neighbours { name }
        openIncidents { title priority rootCi { name } }
    }
    pageInfo { hasNextPage } } }"""


def test_a_page_makes_a_bounded_number_of_store_calls(site: Site) -> None:
    servers = [
        CIObservation(
            ci_class="server",
            name=f"app-{n:03}",
            key=f"app-{n:03}",
            identifiers={"hostname": f"app-{n:03}"},
        )
        for n in range(150)
    ]
    links = [
        RelationshipObservation(
            type="CONNECTED_TO", from_ref=CIRef(key=s.key), to_ref=CIRef(ci_id=site.ids["acc-1"])
        )
        for s in servers
    ]
    report = site.services.reconciler.apply(batch_from("import", servers, links))
    # one incident each on the 15 servers with the lowest ids: the page (CIs by id) holds
    # them whatever ids were drawn (at most the 12 other CIs sort before them)
    first_ids = sorted(range(150), key=lambda n: str(report.ci_ids[n]))[:15]
    for n in first_ids:
        site.ids[f"app-{n:03}"] = report.ci_ids[n]  # type: ignore[assignment]
        site.alert(f"Check{n}", f"app-{n:03}")

    services = site.services
    graph = Counting(services.catalog.store)
    tickets = Counting(services.desk.incidents.store)
    services.catalog.store = graph
    services.desk.incidents.store = tickets

    def calls(first: int) -> tuple[Counter[str], Counter[str], dict[str, Any]]:
        graph.calls.clear()
        tickets.calls.clear()
        data = site.data(PAGE, "viewer", first=first)
        return Counter(graph.calls), Counter(tickets.calls), data

    big_graph, big_tickets, data = calls(100)
    nodes = data["cis"]["nodes"]
    assert len(nodes) == 100 and data["cis"]["pageInfo"]["hasNextPage"]
    with_incidents = [n for n in nodes if n["openIncidents"]]
    assert len(with_incidents) >= 6, "the page has servers with open incidents"
    assert all(n["relationships"] and n["neighbours"] for n in nodes)
    assert sum(big_graph.values()) <= 5, big_graph
    assert sum(big_tickets.values()) <= 1, big_tickets
    assert big_graph["relationships"] == 1
    assert big_tickets["open_incidents_of"] == 1

    # a store call per level of the query that reads CIs (neighbours; the ends of the
    # relationships and the incidents' root CIs), not per CI: ten times the page, same calls
    assert big_graph["get_cis"] <= 3
    small_graph, small_tickets, _ = calls(10)
    assert sum(small_graph.values()) <= 5, small_graph
    assert small_tickets == big_tickets
