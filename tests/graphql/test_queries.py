"""Queries through HTTP: CIs, pages and filters, impact, dependencies, single points of
failure, the past of a CI, and errors that name the argument at fault."""

from __future__ import annotations

import datetime as dt

from tests.graphql.conftest import Site


def test_ci_by_id_key_or_identifier(site: Site) -> None:
    db1 = site.ids["db-1"]
    for ref in (db1, "db-1", "key:db-1", "hostname:db-1.hq.example.com"):
        data = site.data(
            "query($id: ID!) { ci(id: $id) { id name class identifiers { kind value } } }", id=ref
        )
        assert data["ci"]["id"] == db1, ref
        assert data["ci"]["class"] == "server"
    assert site.data('{ ci(id: "no-such-ci") { id } }')["ci"] is None


def test_ci_relationships_neighbours_and_attributes(site: Site) -> None:
    query = """query($id: ID!) { ci(id: $id) {
        name attributes attributeSources lifecycle operationalState
        out: relationships(direction: OUT) { type to { name } }
        members: relationships(direction: IN, types: ["MEMBER_OF"]) { from { name } }
        neighbours(types: ["MEMBER_OF", "RUNS_ON"]) { name }
    } }"""
    ci = site.data(query, id="pg-cluster")["ci"]
    assert ci["attributes"] == {"cluster_type": "patroni", "min_healthy": 2}
    assert ci["attributeSources"]["min_healthy"] == "import"
    assert ci["lifecycle"] == "ACTIVE"
    assert sorted(r["from"]["name"] for r in ci["members"]) == ["db-1", "db-2", "db-3"]
    assert ci["out"] == []
    assert sorted(n["name"] for n in ci["neighbours"]) == ["db-1", "db-2", "db-3", "orders-db"]


def test_cis_pages_with_a_cursor(site: Site) -> None:
    query = """query($after: String) { cis(first: 5, after: $after) {
        edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }"""
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = site.data(query, after=after)["cis"]
        seen += [e["node"]["id"] for e in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]
    assert pages == 3
    assert seen == sorted(site.ids.values())


def test_cis_filters(site: Site) -> None:
    def names(filter_: dict[str, object]) -> list[str]:
        data = site.data(
            "query($f: CIFilterInput) { cis(filter: $f, first: 100) { nodes { name } } }", f=filter_
        )
        return sorted(n["name"] for n in data["cis"]["nodes"])

    assert names({"class": "network_device"}) == ["acc-1", "core-1", "dist-1", "dist-2"]
    assert names({"nameContains": "DB"}) == ["db-1", "db-2", "db-3", "orders-db"]
    assert names({"attributes": {"role": "distribution"}}) == ["dist-1", "dist-2"]
    assert names({"class": "network_device", "attributes": {"role": "core"}}) == ["core-1"]
    assert names({"operationalState": "DOWN"}) == []
    assert len(names({"operationalState": "UNKNOWN"})) == 12  # the import sets no state
    assert names({"lifecycle": "RETIRED"}) == []
    up = site.data(
        "mutation($id: ID!) { updateCi(input: {id: $id, operationalState: DOWN}) { __typename } }",
        id=site.ids["db-2"],
    )
    assert up["updateCi"]["__typename"] == "CIPayload"
    assert names({"operationalState": "DOWN", "class": "server"}) == ["db-2"]


def test_cis_rejects_a_bad_cursor_and_page_size(site: Site) -> None:
    body = site.gql('{ cis(after: "bogus") { nodes { id } } }')
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}
    body = site.gql("{ cis(first: 0) { nodes { id } } }")
    assert body["errors"][0]["extensions"]["field"] == "first"
    body = site.gql('{ cis(filter: {class: "toaster"}) { nodes { id } } }')
    assert body["errors"][0]["extensions"]["field"] == "class"
    assert "known classes" in body["errors"][0]["message"]


def test_impact_with_paths_and_business_services(site: Site) -> None:
    query = """query($ids: [ID!]!) { impactOfSet(ciIds: $ids) {
        failed { name }
        affected { ci { name } depth }
        businessServices { ci { name } depth path { ci { name } relationship } }
        degraded { ci { name } group failed size }
        truncated } }"""
    both = site.data(query, ids=["dist-1", "dist-2"])["impactOfSet"]
    assert sorted(f["name"] for f in both["failed"]) == ["dist-1", "dist-2"]
    assert {a["ci"]["name"] for a in both["affected"]} >= {"acc-1", "pg-cluster", "Web shop"}
    (shop,) = both["businessServices"]
    assert shop["ci"]["name"] == "Web shop"
    path = [(s["ci"]["name"], s["relationship"]) for s in shop["path"]]
    assert path[0][1] is None and path[0][0] in ("dist-1", "dist-2")
    assert path[1:] == [
        ("acc-1", "CONNECTED_TO"),
        (path[2][0], "CONNECTED_TO"),
        ("pg-cluster", "MEMBER_OF"),
        ("orders-db", "RUNS_ON"),
        ("orders-app", "DEPENDS_ON"),
        ("Web shop", "DEPENDS_ON"),
    ]
    assert len(shop["path"]) == shop["depth"] + 1
    one = site.data(
        '{ impact(ciId: "dist-1") { affected { ciId } '
        "degraded { ci { name } group failed size } } }"
    )
    assert one["impact"]["affected"] == []  # acc-1 keeps its second uplink
    assert one["impact"]["degraded"] == [
        {"ci": {"name": "acc-1"}, "group": "uplink", "failed": 1, "size": 2}
    ]


def test_impact_depth_and_errors(site: Site) -> None:
    data = site.data(
        '{ impact(ciId: "acc-1", depth: 1) { affected { depth } truncated maxDepth } }'
    )
    assert {a["depth"] for a in data["impact"]["affected"]} == {1}
    assert data["impact"]["truncated"] and data["impact"]["maxDepth"] == 1
    body = site.gql('{ impact(ciId: "acc-1", depth: 0) { truncated } }')
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "depth"}
    body = site.gql('{ impact(ciId: "acc-9") { truncated } }')
    assert body["errors"][0]["extensions"] == {"code": "NOT_FOUND", "field": "ciId", "id": "acc-9"}
    body = site.gql('{ impactOfSet(ciIds: ["acc-1", "nope"]) { truncated } }')
    assert body["errors"][0]["extensions"]["field"] == "ciIds.1"


def test_dependencies_and_single_points_of_failure(site: Site) -> None:
    data = site.data("""{
        dependencies(serviceId: "web-shop") { service { name } dependencies { ci { name } depth
            path { ci { name } } } }
        singlePointsOfFailure(serviceId: "web-shop") { ci { name } depth }
    }""")
    deps = data["dependencies"]
    assert deps["service"]["name"] == "Web shop"
    names = [d["ci"]["name"] for d in deps["dependencies"]]
    assert names[:2] == ["orders-app", "orders-db"]
    assert {"core-1", "dist-1", "dist-2", "acc-1", "db-1"} <= set(names)
    first = deps["dependencies"][0]
    assert [s["ci"]["name"] for s in first["path"]] == ["Web shop", "orders-app"]
    spofs = [s["ci"]["name"] for s in data["singlePointsOfFailure"]]
    assert spofs == ["orders-app", "orders-db", "pg-cluster", "acc-1", "core-1"]


def test_ci_as_of_a_past_time(site: Site) -> None:
    before = dt.datetime.now(dt.UTC)
    changed = site.data(
        """mutation($id: ID!) { updateCi(input: {id: $id, name: "db-one",
            attributes: {owner: "dba"}}) { ... on CIPayload { ci { name version } } } }""",
        id=site.ids["db-1"],
    )
    assert changed["updateCi"]["ci"]["name"] == "db-one"
    query = """query($id: ID!, $at: DateTime!) { ciAsOf(id: $id, at: $at) {
        name attributes relationships { type toId } } }"""
    then = site.data(query, id="db-1", at=before.isoformat())["ciAsOf"]
    assert then["name"] == "db-1" and "owner" not in then["attributes"]
    assert sorted(r["type"] for r in then["relationships"]) == ["CONNECTED_TO", "MEMBER_OF"]
    now = site.data(query, id="db-1", at=dt.datetime.now(dt.UTC).isoformat())["ciAsOf"]
    assert now["name"] == "db-one" and now["attributes"]["owner"] == "dba"
    long_ago = site.data(query, id="db-1", at="2000-01-01T00:00:00Z")["ciAsOf"]
    assert long_ago is None


def test_history_is_one_timeline(site: Site) -> None:
    site.data(
        'mutation($id: ID!) { updateCi(input: {id: $id, attributes: {owner: "dba"}}) '
        "{ __typename } }",
        id=site.ids["db-1"],
    )
    entries = site.data("""{ history(ciId: "db-1") {
        at kind summary actor source
        ... on CIChangeEntry { changeKind field old new otherCi { name } } } }""")["history"]
    kinds = [e["changeKind"] for e in entries]
    assert kinds[0] == "created"
    assert kinds.count("relationship_added") == 2
    owner = next(e for e in entries if e["field"] == "owner")
    assert owner["new"] == "dba" and owner["actor"] == "admin-token"
    assert owner["source"] == "manual"
    assert owner["summary"] == "attribute owner set to 'dba'"
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    rel = next(e for e in entries if e["field"] == "MEMBER_OF")
    assert rel["otherCi"]["name"] == "pg-cluster"
    later = site.data(
        'query($t: DateTime) { history(ciId: "db-1", since: $t) { kind } }',
        t=owner["at"],
    )["history"]
    assert len(later) == 1
    body = site.gql(
        'query { history(ciId: "db-1", since: "2026-01-02T00:00:00Z", '
        'until: "2026-01-01T00:00:00Z") { at } }'
    )
    assert body["errors"][0]["extensions"]["field"] == "until"
