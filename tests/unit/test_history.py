"""History: a CI's timeline, and the CI with its relationships as they were at a past time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from servicegraph.bootstrap import Services
from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.errors import UnknownCI
from servicegraph.cmdb.model import HistoryKind, Lifecycle, OperationalState
from servicegraph.cmdb.observation import (
    CIObservation,
    CIRef,
    ObservationBatch,
    RelationshipObservation,
)

T0 = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)


def at(days: float) -> dt.datetime:
    return T0 + dt.timedelta(days=days)


def rel(rel_type: str, a: str, b: str, **attributes: Any) -> RelationshipObservation:
    return RelationshipObservation(rel_type, CIRef(key=a), CIRef(key=b), attributes)


def apply(
    services: Services,
    day: float,
    cis: list[CIObservation],
    rels: list[RelationshipObservation] | None = None,
    source: str = "snmp",
) -> list[str]:
    report = services.reconciler.apply(
        ObservationBatch(source, cis, rels or [], observed_at=at(day))
    )
    assert not report.conflicts
    return [i for i in report.ci_ids if i is not None]


@pytest.fixture
def past(services: Services) -> dict[str, str]:
    """A server whose attributes and relationships changed over a few days."""
    srv, app, db = apply(
        services,
        0,
        [
            CIObservation(
                "server",
                "srv",
                {"serial_number": "S1"},
                {"os": "rhel8", "cpu_count": 4},
                key="srv",
            ),
            CIObservation("application", "app", key="app"),
            CIObservation("database", "db", key="db"),
        ],
        [rel("RUNS_ON", "app", "srv")],
    )
    apply(
        services,
        2,
        [
            CIObservation(
                "server",
                "srv-renamed",
                {"hostname": "srv.example.com"},
                {"os": "rhel9", "cpu_count": None, "memory_mb": 2048},
                key="srv",
                operational_state=OperationalState.UP,
            )
        ],
        [rel("RUNS_ON", "db", "srv"), rel("RUNS_ON", "app", "srv", redundancy_group="g")],
    )
    assert apply(
        services,
        4,
        [CIObservation("server", ci_id=srv, lifecycle=Lifecycle.RETIRED)],
        source="manual",
    ) == [srv]
    # removed by a person, now (after every dated batch above)
    with change_context("carol"):
        assert services.reconciler.remove_relationships([(app, "RUNS_ON", srv)]) == 1
    return {"srv": srv, "app": app, "db": db}


def test_as_of_before_creation_is_none(services: Services, past: dict[str, str]) -> None:
    assert services.history.as_of(past["srv"], at(-1)) is None


def test_as_of_returns_attributes_and_relationships_of_the_time(
    services: Services, past: dict[str, str]
) -> None:
    srv, app, db = past["srv"], past["app"], past["db"]
    day1 = services.history.as_of(srv, at(1))
    assert day1 is not None
    assert day1.at == at(1)
    assert (day1.ci.name, dict(day1.ci.attributes)) == ("srv", {"os": "rhel8", "cpu_count": 4})
    assert day1.ci.identifiers == (("serial_number", "S1"),)
    assert day1.ci.lifecycle is Lifecycle.ACTIVE
    assert day1.ci.operational_state is OperationalState.UNKNOWN
    assert [(r.key, dict(r.attributes)) for r in day1.relationships] == [
        ((app, "RUNS_ON", srv), {})
    ]

    day3 = services.history.as_of(srv, at(3))
    assert day3 is not None
    assert day3.ci.name == "srv-renamed"
    assert dict(day3.ci.attributes) == {"os": "rhel9", "memory_mb": 2048}
    assert day3.ci.identifiers == (("hostname", "srv"), ("serial_number", "S1"))
    assert day3.ci.operational_state is OperationalState.UP
    assert day3.ci.lifecycle is Lifecycle.ACTIVE
    assert sorted((r.key, dict(r.attributes)) for r in day3.relationships) == sorted(
        [((app, "RUNS_ON", srv), {"redundancy_group": "g"}), ((db, "RUNS_ON", srv), {})]
    )

    day5 = services.history.as_of(srv, at(5))
    assert day5 is not None
    assert day5.ci.lifecycle is Lifecycle.RETIRED
    assert len(day5.relationships) == 2  # the removal happened later

    now = services.history.as_of(srv, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    assert now is not None
    assert [r.key for r in now.relationships] == [(db, "RUNS_ON", srv)]
    # the state folded from history agrees with the stored CI
    current = services.store.get_cis([srv])[srv]
    assert now.ci.name == current.name
    assert dict(now.ci.attributes) == dict(current.attributes)
    assert now.ci.identifiers == current.identifiers
    assert now.ci.lifecycle is current.lifecycle
    assert now.ci.operational_state is current.operational_state


def test_as_of_from_the_other_end(services: Services, past: dict[str, str]) -> None:
    srv, app = past["srv"], past["app"]
    day1 = services.history.as_of(app, at(1))
    assert day1 is not None
    assert [r.key for r in day1.relationships] == [(app, "RUNS_ON", srv)]
    now = services.history.as_of(app, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    assert now is not None and now.relationships == ()


def test_timeline_of_the_changes(services: Services, past: dict[str, str]) -> None:
    srv, app = past["srv"], past["app"]
    timeline = services.history.timeline(srv)
    assert [e.seq for e in timeline] == sorted(e.seq for e in timeline)
    rows = [(e.at, e.kind, e.field, e.old, e.new, e.source) for e in timeline[:-1]]
    hashable = [(r[0], r[1], r[2], repr(r[3]), repr(r[4]), r[5]) for r in rows]
    assert rows[0][:2] == (at(0), HistoryKind.CREATED)
    assert (at(0), HistoryKind.RELATIONSHIP_ADDED, "RUNS_ON", None, {}, "snmp") in rows
    day2 = {r for r in hashable if r[0] == at(2)}
    expected = [
        (at(2), HistoryKind.ATTRIBUTE, "os", "rhel8", "rhel9", "snmp"),
        (at(2), HistoryKind.ATTRIBUTE, "cpu_count", 4, None, "snmp"),
        (at(2), HistoryKind.ATTRIBUTE, "memory_mb", None, 2048, "snmp"),
        (at(2), HistoryKind.NAME, None, "srv", "srv-renamed", "snmp"),
        (at(2), HistoryKind.OPERATIONAL_STATE, None, "unknown", "up", "snmp"),
        (at(2), HistoryKind.IDENTIFIER_ADDED, "hostname", None, "srv", "snmp"),
        (at(2), HistoryKind.RELATIONSHIP_ADDED, "RUNS_ON", None, {}, "snmp"),
        (
            at(2),
            HistoryKind.RELATIONSHIP_ATTRIBUTE,
            "RUNS_ON",
            {},
            {"redundancy_group": "g"},
            "snmp",
        ),
    ]
    assert {(r[0], r[1], r[2], repr(r[3]), repr(r[4]), r[5]) for r in expected} == day2
    assert (at(4), HistoryKind.LIFECYCLE, None, "active", "retired", "manual") in rows
    removal = timeline[-1]
    assert removal.kind is HistoryKind.RELATIONSHIP_REMOVED
    assert (removal.ci_id, removal.field, removal.other_ci_id) == (app, "RUNS_ON", srv)
    assert (removal.source, removal.actor) == ("manual", "carol")
    assert removal.old == {"redundancy_group": "g"}
    assert removal.at > at(4)
    # windows select by time, both ends included
    window = services.history.timeline(srv, since=at(2), until=at(4))
    assert {e.at for e in window} == {at(2), at(4)}


def test_unknown_ci(services: Services) -> None:
    with pytest.raises(UnknownCI):
        services.history.as_of("ci-nope", at(0))
    with pytest.raises(UnknownCI):
        services.history.timeline("ci-nope")
