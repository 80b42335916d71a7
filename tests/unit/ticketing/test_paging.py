"""Opaque ticket cursors: they round-trip the sort key, and anything else is refused
naming the field."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Incident
from servicegraph.ticketing.paging import (
    decode_cursor,
    encode_cursor,
    microseconds,
    page_of,
    sort_key,
)
from servicegraph.ticketing.ports import TicketOrder

T0 = dt.datetime(2026, 11, 2, 9, 0, 0, 123456, tzinfo=dt.UTC)


def _ticket(number: int, priority: int = 3, opened: dt.datetime = T0) -> Incident:
    return Incident(
        id=f"inc-{number}",
        number=number,
        title="t",
        status=TicketStatus.NEW,
        opened_at=opened,
        updated_at=opened,
        last_alert_at=opened,
        priority=priority,
    )


@pytest.mark.parametrize(
    ("order", "key"),
    [
        (TicketOrder.NEWEST, (1,)),
        (TicketOrder.NEWEST, (10**15,)),
        (TicketOrder.QUEUE, (1, 0, 7)),
        (TicketOrder.QUEUE, (5, -86_400_000_000, 3)),  # before the epoch
        (TicketOrder.QUEUE, (3, microseconds(T0), 2**40)),
    ],
)
def test_a_cursor_round_trips_its_key_and_is_url_safe(
    order: TicketOrder, key: tuple[int, ...]
) -> None:
    cursor = encode_cursor(order, key)
    assert decode_cursor(cursor, order) == key
    assert all(c.isalnum() or c in "-_" for c in cursor)


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("cursor", "order", "message"),
    [
        ("", TicketOrder.NEWEST, "not a cursor"),
        ("not base64 at all!", TicketOrder.NEWEST, "not a cursor"),
        (_raw("c1|newest|abc"), TicketOrder.NEWEST, "not a cursor"),
        (_raw("c1|newest|1|2"), TicketOrder.NEWEST, "not a cursor"),
        (_raw("c1|queue|1|2"), TicketOrder.QUEUE, "not a cursor"),
        (_raw("c9|newest|1"), TicketOrder.NEWEST, "not a cursor"),
        (_raw("c1|oldest|1"), TicketOrder.NEWEST, "not a cursor"),
        (_raw("c1|newest|²"), TicketOrder.NEWEST, "not a cursor"),
        (_raw("c1|newest|" + "9" * 30), TicketOrder.NEWEST, "not a cursor"),
        (encode_cursor(TicketOrder.NEWEST, (4,)), TicketOrder.QUEUE, "of the newest order"),
        (encode_cursor(TicketOrder.QUEUE, (1, 2, 3)), TicketOrder.NEWEST, "of the queue order"),
        ("A" * 500, TicketOrder.NEWEST, "not a cursor"),
    ],
)
def test_a_bad_cursor_is_refused_naming_the_field(
    cursor: str, order: TicketOrder, message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message) as info:
        decode_cursor(cursor, order, field="after")
    assert info.value.field == "after"


def test_the_sort_key_is_the_stores_and_exact_to_the_microsecond() -> None:
    ticket = _ticket(42, priority=2)
    assert sort_key(ticket, TicketOrder.NEWEST) == (42,)
    assert sort_key(ticket, TicketOrder.QUEUE) == (2, 1793610000123456, 42)
    # far dates, where a float of seconds would lose microseconds
    far = dt.datetime(9000, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC)
    assert microseconds(far) % 1_000_000 == 1


def test_a_page_says_whether_another_follows() -> None:
    rows = [_ticket(n) for n in (9, 8, 7)]
    full = page_of(rows, TicketOrder.NEWEST, 2)
    assert [t.number for t in full.items] == [9, 8]
    assert full.next_cursor is not None
    assert decode_cursor(full.next_cursor, TicketOrder.NEWEST) == (8,)
    last = page_of(rows[:2], TicketOrder.NEWEST, 2)
    assert last.next_cursor is None
    assert page_of([], TicketOrder.QUEUE, 5).next_cursor is None
