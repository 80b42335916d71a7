"""The pushed payload formats (Alertmanager, Zabbix, generic) as msgspec Structs: their
constraints, the one error format, and ids that stay what they were."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.collectors.monitoring import alertmanager, generic, zabbix
from servicegraph.collectors.monitoring.payload import BODY, reason_and_field
from servicegraph.events.model import Event, EventStatus, Severity
from tests.http.conftest import valid_payloads

NOW = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
Parse = Callable[[bytes, dt.datetime], list[Event]]


def _parse(parse: Parse, payload: Any) -> list[Event]:
    return parse(json.dumps(payload).encode(), NOW)


def _refused(parse: Parse, payload: Any) -> ValidationFailed:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(ValidationFailed) as caught:
        parse(body, NOW)
    return caught.value


# -- the error format ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reason", "field"),
    [
        (
            "Expected `str`, got `int` - at `$.alerts[1].startsAt`",
            "Expected `str`, got `int`",
            "alerts.1.startsAt",
        ),
        ("Expected `str`, got `int` - at `$.labels[...]`", "Expected `str`, got `int`", "labels"),
        ("Expected `object`, got `array`", "Expected `object`, got `array`", BODY),
        ("Object missing required field `name`", "Field required", "name"),
        ("Object missing required field `tag` - at `$.tags[0]`", "Field required", "tags.0.tag"),
        (
            "Object contains unknown field `n`me` - at `$.events[1]`",
            "Object contains unknown field `n`me`",
            "events.1.n`me",
        ),
        ("Object contains unknown field ``", "Object contains unknown field ``", BODY),
        ("Invalid enum value 'x'\n - at `$.status`", "Invalid enum value 'x'\n", "status"),
    ],
)
def test_a_msgspec_error_gives_the_reason_and_the_field(
    message: str, reason: str, field: str
) -> None:
    assert reason_and_field(message) == (reason, field)


class _Inner(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class _Outer(msgspec.Struct):
    items: list[_Inner]
    labels: dict[str, str] = {}


def test_the_error_format_is_msgspec_s() -> None:
    """The helper reads msgspec's text (it offers no structured path): held to what this
    msgspec writes, so that an upgrade that changes it fails here."""
    decoder = msgspec.json.Decoder(_Outer)
    cases = {
        b'{"items": [{"name": "a"}, {"name": 1}]}': "items.1.name",
        b'{"items": [{"name": "a"}, {}]}': "items.1.name",
        b'{"items": [{"name": "a", "x": 1}]}': "items.0.x",
        b'{"items": [], "labels": {"a": 1}}': "labels",
        b'{"labels": {}}': "items",
    }
    for body, field in cases.items():
        with pytest.raises(msgspec.ValidationError) as caught:
            decoder.decode(body)
        assert reason_and_field(str(caught.value))[1] == field, str(caught.value)


@pytest.mark.parametrize(
    ("parse", "payload", "field"),
    [
        (generic.parse_one, {"name": ""}, "name"),
        (generic.parse_one, {"name": "x" * 501}, "name"),
        (generic.parse_one, {"name": "x", "source": ""}, "source"),
        (generic.parse_one, {"name": "x", "source": "s" * 101}, "source"),
        (generic.parse_one, {"name": "x", "fingerprint": ""}, "fingerprint"),
        (generic.parse_one, {"name": "x", "event_id": ""}, "event_id"),
        (generic.parse_one, {"name": "x", "status": "pending"}, "status"),
        (generic.parse_one, {"name": "x", "labels": {"a": 1}}, "labels"),
        (generic.parse_one, {"name": "x", "colour": "red"}, "colour"),
        (generic.parse_one, {"labels": {}}, "name"),
        (generic.parse_batch, {"events": []}, "events"),
        (generic.parse_batch, {"events": [{"name": "x"}] * 10_001}, "events"),
        (generic.parse_batch, {"events": [{"name": "x"}, {"name": "y", "z": 1}]}, "events.1.z"),
        (generic.parse_batch, {"events": [{"name": "x"}], "more": []}, "more"),
        (zabbix.parse, {**valid_payloads()["zabbix"], "status": "MAYBE"}, "status"),
        (zabbix.parse, {**valid_payloads()["zabbix"], "event_id": ""}, "event_id"),
        (zabbix.parse, {**valid_payloads()["zabbix"], "extra": 1}, "extra"),
        (zabbix.parse, {**valid_payloads()["zabbix"], "tags": [{"value": "v"}]}, "tags.0.tag"),
        (alertmanager.parse, {**valid_payloads()["alertmanager"], "version": "5"}, "version"),
        (alertmanager.parse, {**valid_payloads()["alertmanager"], "alerts": []}, "alerts"),
    ],
)
def test_the_constraints_name_the_field(parse: Parse, payload: Any, field: str) -> None:
    assert _refused(parse, payload).field == field


@pytest.mark.parametrize("parse", [generic.parse_one, generic.parse_batch, zabbix.parse])
def test_a_body_that_is_not_json_or_not_an_object_names_the_body(parse: Parse) -> None:
    assert _refused(parse, b"{nope").reason.startswith("the body is not valid JSON")
    assert _refused(parse, b"[]").field == BODY


# -- what the formats accept ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "status"),
    [
        ("PROBLEM", EventStatus.FIRING),
        ("problem", EventStatus.FIRING),
        (" Problem ", EventStatus.FIRING),
        ("firing", EventStatus.FIRING),
        ("RESOLVED", EventStatus.RESOLVED),
        ("Ok", EventStatus.RESOLVED),
        ("recovery", EventStatus.RESOLVED),
    ],
)
def test_zabbix_status_in_any_case(spelling: str, status: EventStatus) -> None:
    (event,) = _parse(zabbix.parse, {**valid_payloads()["zabbix"], "status": spelling})
    assert event.status is status
    assert event.event_id == f"zbx:4711|{status.value}|"


def test_zabbix_tags_keep_their_unknown_keys_out() -> None:
    payload = {**valid_payloads()["zabbix"], "tags": [{"tag": "a", "value": "b", "x": 1}]}
    (event,) = _parse(zabbix.parse, payload)
    assert event.labels["a"] == "b"


@pytest.mark.parametrize(
    ("given", "occurred"),
    [
        ("2026-11-01T12:00:00Z", dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)),
        ("2026-11-01T13:00:00+01:00", dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)),
        ("2026-11-01T12:00:00", dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)),  # naive: UTC
        ("0001-01-01T00:00:00Z", NOW),  # Go's zero time: not given
        ("0001-01-01T00:00:00+23:59", NOW),
        (1793534400, dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)),  # Unix seconds
        ("1793534400", dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)),
        (None, NOW),
    ],
)
def test_times_are_read_as_utc(given: Any, occurred: dt.datetime) -> None:
    (one,) = _parse(generic.parse_one, {"name": "x", "occurred_at": given})
    (z,) = _parse(zabbix.parse, {**valid_payloads()["zabbix"], "time": given})
    for event in (one, z):
        assert event.occurred_at == occurred
        assert event.occurred_at.tzinfo is dt.UTC


@pytest.mark.parametrize("given", ["9999-12-31T23:59:59-23:59", "2026-11-01", "yesterday"])
def test_times_that_are_no_time_in_utc_are_bad_fields(given: str) -> None:
    assert _refused(generic.parse_one, {"name": "x", "occurred_at": given}).field == "occurred_at"
    batch = {"events": [{"name": "x"}, {"name": "y", "occurred_at": given}]}
    assert _refused(generic.parse_batch, batch).field == "events.1.occurred_at"
    payload = {**valid_payloads()["zabbix"], "time": given}
    assert _refused(zabbix.parse, payload).field == "time"


def test_a_name_is_counted_in_characters() -> None:
    (event,) = _parse(generic.parse_one, {"name": "\N{GRINNING FACE}" * 500})
    assert len(event.name) == 500


# -- identity: the idempotency keys are what pydantic's parsing gave ------------------------


def test_ids_and_fingerprints_are_unchanged() -> None:
    """Computed by the parsers of before msgspec took over the generic and Zabbix formats:
    a redelivery across an upgrade is still recognised."""
    payloads = valid_payloads()
    ids = {
        source: [(e.fingerprint, e.event_id) for e in _parse(parse, payloads[source])]
        for source, parse in (
            ("alertmanager", alertmanager.parse),
            ("zabbix", zabbix.parse),
            ("generic", generic.parse_one),
            ("batch", generic.parse_batch),
        )
    }
    assert ids == {
        "alertmanager": [("am:c0ffee", "am:c0ffee|firing|2026-11-01T12:00:00+00:00|")],
        "zabbix": [("zbx:4711", "zbx:4711|firing|")],
        "generic": [("02ab12c16d4949efa1bc8102", "7ff434711634a1c00e776067")],
        "batch": [
            ("02ab12c16d4949efa1bc8102", "48c27c22be3c388977e7e6b5"),
            ("4576dfc1b983d95b5c5da33b", "5f3ce02979391d9d5c219f34"),
        ],
    }
    full = {
        "name": "X",
        "labels": {"a": "1", "b": "2"},
        "fingerprint_labels": ["a"],
        "ci_id": "ci-1",
        "occurred_at": "2026-11-01T13:00:00.5+01:00",
        "severity": "critical",
        "summary": "s",
        "source": "nagios",
    }
    (event,) = _parse(generic.parse_one, full)
    assert (event.fingerprint, event.event_id) == (
        "40392321787e32457408bfdc",
        "e2dab5bbeb45129b404cbf63",
    )
    assert (event.severity, dict(event.labels)) == (
        Severity.CRITICAL,
        {"a": "1", "b": "2", "ci_id": "ci-1"},
    )
    for naive_or_seconds in ("2026-11-01T12:00:00", 1793534400):
        (event,) = _parse(generic.parse_one, {"name": "X", "occurred_at": naive_or_seconds})
        assert event.event_id == "404313f41dc6ff819451312c"
