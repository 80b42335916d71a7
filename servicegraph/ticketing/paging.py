"""Pages of tickets and the opaque cursors that continue them.

Why keyset cursors: a desk of a million tickets cannot be paged by offset (page 2,000
would read 100,000 rows first, and a ticket created meanwhile shifts every later page),
and a cap of 1,000 rows leaves the rest unreachable. A cursor carries the sort key of the
last ticket shown (``IncidentFilter.after``): the next page starts strictly after it, so
walking the pages returns every ticket exactly once even while tickets are added.

The cursor is opaque to clients (base64url of a versioned text) so that its layout may
change; it names its order, and a cursor of one order given to a listing in another is
refused rather than silently starting somewhere else.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.model import Incident
from servicegraph.ticketing.ports import NO_DUE, TicketOrder

T = TypeVar("T")

_VERSION = "c1"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# how many integers the sort key of each order has (see ``IncidentFilter.after``)
KEY_SIZE = {TicketOrder.NEWEST: 1, TicketOrder.QUEUE: 3, TicketOrder.DUE: 2}


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing, and the cursor of the next one (None on the last page)."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(order: TicketOrder, key: tuple[int, ...]) -> str:
    """An opaque, URL-safe cursor continuing after ``key`` in ``order``."""
    if len(key) != KEY_SIZE[order]:
        raise ValueError(f"a {order} key has {KEY_SIZE[order]} parts, not {len(key)}")
    text = "|".join([_VERSION, order.value, *(str(int(part)) for part in key)])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order: TicketOrder, field: str = "after") -> tuple[int, ...]:
    """The sort key ``cursor`` carries; ``ValidationFailed`` naming ``field`` when it is
    malformed, from another version, or of another order than ``order``."""
    bad = ValidationFailed(
        "is not a cursor this listing gave out (pass the nextCursor of the previous page)",
        field=field,
    )
    if not isinstance(cursor, str) or not cursor or len(cursor) > 200:
        raise bad
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad from None
    version, _, rest = text.partition("|")
    kind, _, numbers = rest.partition("|")
    if version != _VERSION or kind not in {o.value for o in TicketOrder}:
        raise bad
    if kind != order.value:
        raise ValidationFailed(
            f"is a cursor of the {kind} order, and this listing is in {order.value} order",
            field=field,
        )
    parts = numbers.split("|")
    if len(parts) != KEY_SIZE[order] or not all(_is_int(p) for p in parts):
        raise bad
    return tuple(int(p) for p in parts)


def sort_key(incident: Incident, order: TicketOrder) -> tuple[int, ...]:
    """The key of ``incident`` in ``order``, as the store compares it: ``(number,)``, or
    ``(priority, opened_at in microseconds since the epoch, number)``."""
    if order is TicketOrder.NEWEST:
        return (incident.number,)
    if order is TicketOrder.DUE:
        due = incident.sla_due_at
        return (NO_DUE if due is None else microseconds(due), incident.number)
    return (incident.priority, microseconds(incident.opened_at), incident.number)


def microseconds(value: dt.datetime) -> int:
    """Exact integer microseconds since the epoch (no float rounding), as stored."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def page_of(rows: Sequence[Incident], order: TicketOrder, size: int) -> Page[Incident]:
    """A page from ``rows``, fetched with a limit of ``size + 1``: one row more than the
    page says there is a next page, without a second query to count."""
    items = list(rows[:size])
    more = len(rows) > size and bool(items)
    return Page(items, encode_cursor(order, sort_key(items[-1], order)) if more else None)


def _is_int(text: str) -> bool:
    digits = text[1:] if text.startswith("-") else text
    return digits.isascii() and digits.isdigit() and len(digits) <= 20
