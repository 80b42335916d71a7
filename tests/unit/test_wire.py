"""The wire form of events: what the inbox stores and Celery tasks carry."""

from __future__ import annotations

import datetime as dt
import json

import msgspec
import pytest

from servicegraph.events.model import Event, EventStatus, Severity
from servicegraph.events.wire import (
    decode_events,
    encode_events,
    events_from_dicts,
    events_to_dicts,
)

AT = dt.datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)

EVENTS = [
    Event(
        "alertmanager",
        "NodeDown",
        EventStatus.FIRING,
        Severity.CRITICAL,
        AT,
        "am:c0ffee",
        "am:c0ffee|firing|2026-11-01 12:00:00.123456+00:00|",
        {"alertname": "NodeDown", "instance": "db-1:9100", "ünï": "cødé"},
        "node down",
        AT + dt.timedelta(seconds=1),
    ),
    Event(
        "zabbix",
        "High CPU",
        EventStatus.RESOLVED,
        Severity.MAJOR,
        dt.datetime(2026, 11, 1, 13, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        "zbx:4711",
        "zbx:4711|resolved|4712",
        received_at=AT,
        reported_at=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
    ),
]

# What the inbox wrote for EVENTS[1] before events.wire existed (msgspec's encoding of the
# dataclass): inbox files keep their format, byte for byte.
STORED = (
    b'[{"source":"zabbix","name":"High CPU","status":"resolved","severity":4,'
    b'"occurred_at":"2026-11-01T13:00:00+01:00","fingerprint":"zbx:4711",'
    b'"event_id":"zbx:4711|resolved|4712","labels":{},"summary":"",'
    b'"received_at":"2026-11-01T12:00:00.123456Z","reported_at":"2027-01-01T00:00:00Z"}]'
)


def test_events_come_back_as_they_were_sent() -> None:
    assert decode_events(encode_events(EVENTS)) == EVENTS
    assert decode_events(encode_events(EVENTS).decode()) == EVENTS
    assert decode_events(encode_events([])) == []


def test_the_inbox_format_is_unchanged() -> None:
    assert encode_events(EVENTS[1:]) == STORED
    assert decode_events(STORED) == EVENTS[1:]


def test_dicts_are_the_same_form_and_survive_a_json_serializer() -> None:
    """Celery's JSON serializer writes the dicts: what it reads back is the same events."""
    dicts = events_to_dicts(EVENTS)
    assert json.dumps(dicts, separators=(",", ":"), ensure_ascii=False).encode() == (
        encode_events(EVENTS)
    )
    back = events_from_dicts(json.loads(json.dumps(dicts)))
    assert back == EVENTS
    assert [(e.event_id, e.fingerprint) for e in back] == [
        (e.event_id, e.fingerprint) for e in EVENTS
    ]
    assert back[1].occurred_at.utcoffset() == dt.timedelta(hours=1)


def test_a_malformed_event_names_its_field() -> None:
    dicts = events_to_dicts(EVENTS)
    dicts[1]["severity"] = "critical"  # the name, not the number
    with pytest.raises(msgspec.ValidationError, match=r"\$\[1\]\.severity"):
        events_from_dicts(dicts)
    with pytest.raises(msgspec.ValidationError, match=r"missing required field `event_id`"):
        decode_events(
            b'[{"source":"x","name":"y","status":"firing","severity":1,'
            b'"occurred_at":"2026-11-01T12:00:00Z","fingerprint":"f"}]'
        )
