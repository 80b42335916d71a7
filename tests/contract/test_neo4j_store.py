"""The store contract, and export/restore, over the Neo4j adapter, plus what only Neo4j has.

Runs live on the session's Neo4j (the ``neo4j`` fixture: ``NEO4J_URI``'s server, or one
started from tools/neo4j). EVERY TEST EMPTIES THE DATABASE: a ``NEO4J_URI`` must name a
scratch server or database, never one holding data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from servicegraph.cmdb.errors import SchemaTooNew, StoreUnavailable
from servicegraph.cmdb.ports import GraphStore
from servicegraph.storage.neo4j import Neo4jGraphStore, cypher, schema
from servicegraph.storage.neo4j.records import consume as _consume
from tests.contract.dump_contract import DumpContract, EmptyTarget
from tests.contract.store_contract import StoreContract, make_ci
from tests.neo4j_server import Neo4jAddress

_address: Neo4jAddress | None = None


@pytest.fixture(autouse=True)
def _server(neo4j: Neo4jAddress) -> None:
    global _address
    _address = neo4j


def open_store(**overrides: Any) -> Neo4jGraphStore:
    assert _address is not None, "the neo4j fixture runs first"
    settings: dict[str, Any] = {
        **_address.store_settings(),
        # small batches, so that the contract's data crosses batch boundaries
        "batch_size": 3,
        **overrides,
    }
    return Neo4jGraphStore(_address.uri, **settings)


def empty(store: Neo4jGraphStore) -> Neo4jGraphStore:
    store.delete_everything(keep_schema=True)
    try:
        store.migrate()
    except SchemaTooNew:  # test_schema_from_a_newer_release_is_refused left it behind
        store.delete_everything()
        store.migrate()
    return store


@pytest.fixture
def neo4j_store() -> Iterator[Neo4jGraphStore]:
    store = open_store()
    try:
        yield empty(store)
    finally:
        store.close()


class TestNeo4jStore(StoreContract, DumpContract):
    __test__ = True

    @pytest.fixture
    def store(self, neo4j_store: Neo4jGraphStore) -> Neo4jGraphStore:
        return neo4j_store

    @pytest.fixture
    def empty_target(self) -> EmptyTarget:
        # One database: the export is on disk before the store is emptied for the restore.
        def make(store: GraphStore) -> GraphStore:
            assert isinstance(store, Neo4jGraphStore)
            return empty(store)

        return make


def test_capabilities() -> None:
    caps = Neo4jGraphStore.capabilities
    assert caps.concurrent_writers is True


def test_ping_before_migrate_says_what_to_do(neo4j_store: Neo4jGraphStore) -> None:
    neo4j_store.delete_everything()
    with pytest.raises(StoreUnavailable, match="migrat"):
        neo4j_store.ping()
    with pytest.raises(StoreUnavailable, match="migrat"), neo4j_store.write():
        pass


def test_schema_from_a_newer_release_is_refused(neo4j_store: Neo4jGraphStore) -> None:
    newer = {"name": cypher.SCHEMA_VERSION_NAME, "version": len(schema.MIGRATIONS) + 1}
    neo4j_store._write_auto("test", _consume(cypher.SET_SCHEMA_VERSION, newer))
    with pytest.raises(SchemaTooNew, match="upgrade"):
        neo4j_store.migrate()


def test_wrong_password_is_one_clear_error() -> None:
    store = open_store(password="certainly-not-the-password")
    try:
        with pytest.raises(StoreUnavailable, match="credentials") as info:
            store.ping()
        assert info.value.__cause__ is not None
    finally:
        store.close()


def test_unknown_database_is_one_clear_error() -> None:
    store = open_store(database="servicegraph-no-such-database")
    try:
        with pytest.raises(StoreUnavailable, match="database"):
            store.migrate()
    finally:
        store.close()


def test_units_of_work_are_serialised_across_connections(
    neo4j_store: Neo4jGraphStore,
) -> None:
    """A second unit waits for the first to commit before it reads anything, so two
    units cannot both find an identifier free and both create a CI for it."""
    other = open_store()
    events: list[str] = []
    first_in = threading.Event()

    def second() -> None:
        first_in.wait(5)
        with other.write() as w:
            events.append("second locked")
            found = w.lookup_identifiers([("serial_number", "S1")])
            events.append(f"second sees {found.get(('serial_number', 'S1'))}")

    thread = threading.Thread(target=second)
    thread.start()
    try:
        with neo4j_store.write() as w:
            first_in.set()
            time.sleep(0.5)  # the second unit is now waiting for the lock
            w.insert_cis([make_ci("ci-a", identifiers=[("serial_number", "S1")])])
            events.append("first commits")
        thread.join(10)
    finally:
        other.close()
    assert events == ["first commits", "second locked", "second sees ci-a"]


def test_attribute_projection_follows_updates(neo4j_store: Neo4jGraphStore) -> None:
    from servicegraph.cmdb.ports import CIQuery

    with neo4j_store.write() as w:
        w.insert_cis([make_ci("ci-a", attributes={"os": "linux", "tags": ["a", "b"]})])
    assert [c.id for c in neo4j_store.find_cis(CIQuery(attributes={"tags": ["a", "b"]}))] == [
        "ci-a"
    ]
    with neo4j_store.write() as w:
        w.update_cis([make_ci("ci-a", attributes={"owner": "ops"}, version=2)])
    assert neo4j_store.find_cis(CIQuery(attributes={"os": "linux"})) == []
    assert [c.id for c in neo4j_store.find_cis(CIQuery(attributes={"os": None}))] == ["ci-a"]


def test_a_first_sighting_of_an_item_seen_before_is_refused(
    neo4j_store: Neo4jGraphStore,
) -> None:
    """Neo4j writes first sightings without looking for one: its constraint is what
    stops a wrong caller, and the unit fails whole."""
    import datetime as dt

    from servicegraph.cmdb.errors import StoreError

    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with neo4j_store.write() as w:
        w.insert_cis([make_ci("ci-a")])
        w.record_sightings("snmp", "r1", when, ["ci-a"], [])
    with pytest.raises(StoreError, match="first sightings"), neo4j_store.write() as w:
        w.record_first_sightings("snmp", "r2", when, ["ci-a"], [])
    assert neo4j_store.sightings("ci-a")[0].last_run == "r1"


def six_seen_once(store: Neo4jGraphStore) -> list[str]:
    """Six CIs, each seen by one snmp run on 2026-01-01: the items of a bounded part."""
    import datetime as dt

    ids = [f"ci-{n}" for n in range(6)]
    with store.write() as w:
        w.insert_cis([make_ci(i) for i in ids])
        w.record_sightings("snmp", "r1", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), ids, [])
    return ids


def test_a_sweep_part_holds_at_most_its_limit(neo4j_store: Neo4jGraphStore) -> None:
    """Neo4j really splits a sweep (the contract lets a store finish in one part): the
    first part of six unseen items, two a part, counts two and is not finished."""
    ids = six_seen_once(neo4j_store)
    with neo4j_store.write() as w:
        assert w.sweep_unseen_part("snmp", "r2", 5, 2) == ([], [], False)
    assert sorted(neo4j_store.sightings(i)[0].missed_runs for i in ids) == [0, 0, 0, 0, 1, 1]


def test_an_expiry_part_holds_at_most_its_limit(neo4j_store: Neo4jGraphStore) -> None:
    """Neo4j really splits an expiry (the contract lets a store finish in one part): the
    first part of six old sightings, two a part, marks two and is not finished."""
    import datetime as dt

    ids = six_seen_once(neo4j_store)
    with neo4j_store.write() as w:
        stale_cis, stale_rels, finished = w.expire_sightings(
            dt.datetime(2026, 2, 1, tzinfo=dt.UTC), 2
        )
    assert (len(stale_cis), stale_rels, finished) == (2, [], False)
    assert sorted(neo4j_store.sightings(i)[0].stale for i in ids) == [False] * 4 + [True] * 2


def test_change_seq_of_other_hosts_is_at_most_one_poll_interval_old(
    neo4j_store: Neo4jGraphStore,
) -> None:
    """``change_seq`` is read at most once per poll interval (a Bolt round trip before
    every impact query cost 50x the query), yet this process's own commits are seen at
    once and another host's within the interval."""
    other = open_store(change_poll_interval=2.0)  # another host
    try:
        before = other.change_seq()
        with neo4j_store.write() as w:
            w.insert_cis([make_ci("ci-a")])
        after = neo4j_store.change_seq()
        assert after > before  # this process's own commit: at once
        assert other.change_seq() == before  # the other host's reading is kept...
        deadline = time.monotonic() + 5
        while other.change_seq() != after and time.monotonic() < deadline:
            time.sleep(0.05)
        assert other.change_seq() == after  # ...for the interval only
        with other.write() as w:
            w.insert_cis([make_ci("ci-b")])
        assert other.change_seq() > after  # and its own commits drop it at once
    finally:
        other.close()


def test_a_zero_poll_interval_reads_the_sequence_every_time(
    neo4j_store: Neo4jGraphStore,
) -> None:
    other = open_store(change_poll_interval=0)
    try:
        before = other.change_seq()
        with neo4j_store.write() as w:
            w.insert_cis([make_ci("ci-a")])
        assert other.change_seq() > before
    finally:
        other.close()
