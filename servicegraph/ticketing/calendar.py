"""Business calendars: the working time that SLA clocks count.

Why a module of its own: a first-response or resolution target is business time ("4 h
within Mon-Fri 08:00-18:00 Berlin, not on Bavarian holidays"), and the desk, the escalation
job and the reports must agree to the second on when such a clock runs. One pure,
validated value decides; nothing here touches a store.

Semantics, once for all (they are what the property tests check against a minute-by-minute
reference):

* An instant is **working** when its *local wall-clock* time in the calendar's time zone
  falls in one of the intervals declared for its local weekday, and its local date is not a
  holiday. Intervals are half-open ``[start, end)``; ``"24:00"`` ends at the next midnight.
* Business time is real elapsed time (UTC seconds) over working instants. So 08:00-18:00 is
  10 h on the DST-change days too; a declared wall time that does not exist locally (02:30
  on a spring-forward day) is never worked, and one that occurs twice (02:30 on a fall-back
  day) is worked both times: a 00:00-24:00 day is 23 h or 25 h then, as the wall clock says.
* Holidays (a country's, optionally a subdivision's, from the ``holidays`` package, plus
  explicit dates) are whole local days off.

Efficiency: ``elapsed`` and ``add`` walk local days, never minutes, and skip whole weeks
that hold no holiday and no UTC-offset change at the calendar's nominal weekly total, so a
90-day span costs well under a millisecond. One assumption the tz database honours: a
local date never goes backwards as time runs (offset changes do not cross midnight
backwards).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

from servicegraph.cmdb.errors import ValidationFailed

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
_ZERO = timedelta(0)
_EPOCH = datetime(1970, 1, 1)
# UTC offsets lie within -12 h .. +14 h: the instants of one local day lie within these.
_BEFORE = timedelta(hours=14)
_AFTER = timedelta(hours=12)
_TIME = re.compile(r"^(\d{2}):(\d{2})$")
_KEYS = frozenset({"timezone", "hours", "holidays"})
_HOLIDAY_KEYS = frozenset({"country", "subdivision", "dates"})
# A calendar that declares working time always reaches some within this many days; the
# guard only turns an impossible endless walk into an error.
_MAX_IDLE_DAYS = 3700

_CACHED = 20_000  # local dates kept per cache (55 years)
_ALWAYS_KEY = date.min  # where the week cache keeps "every instant works" (never a real week)

Interval = tuple[int, int]  # seconds after local midnight, [start, end)
_Span = tuple[datetime, datetime]  # naive UTC, [start, end)


@dataclass(frozen=True, eq=False)
class BusinessCalendar:
    """A validated business calendar; build it with ``build`` (or use ``TWENTY_FOUR_SEVEN``).

    ``hours`` maps a weekday index (0 = Monday) to its sorted, non-overlapping intervals in
    seconds after local midnight; a day absent is not worked.
    """

    timezone: ZoneInfo
    hours: Mapping[int, tuple[Interval, ...]]
    holiday_dates: frozenset[date] = frozenset()
    country: str | None = None
    subdivision: str | None = None
    _country_days: Any = field(default=None, repr=False)
    # Per local date: its spans and whether the week from it is plain. The SLA sweep and
    # the reports ask about the same few hundred days again and again; a zone conversion
    # per question made a 30-minute span cost 35 us. Bounded: cleared past _CACHED days.
    _span_cache: dict[date, list[_Span]] = field(default_factory=dict, repr=False)
    _week_cache: dict[date, bool] = field(default_factory=dict, repr=False)
    _weekly_total: list[timedelta] = field(default_factory=list, repr=False)  # once computed

    @classmethod
    def build(cls, declaration: Mapping[str, Any], *, path: str = "calendar") -> BusinessCalendar:
        """The calendar ``declaration`` describes (see the module docstring for its shape),
        refused with ``ValidationFailed`` naming the offending key under ``path``."""
        if not isinstance(declaration, Mapping):
            raise ValidationFailed("must map timezone, hours and holidays", field=path)
        for key in declaration:
            if key not in _KEYS:
                raise ValidationFailed(
                    f"unknown key; expected one of {', '.join(sorted(_KEYS))}",
                    field=f"{path}.{key}",
                )
        tz = _zone(declaration.get("timezone", "UTC"), f"{path}.timezone")
        hours: dict[int, tuple[Interval, ...]]
        if declaration.get("hours") is None:
            hours = {day: ((0, 86400),) for day in range(7)}
        else:
            hours = _hours(declaration["hours"], f"{path}.hours")
        country, subdivision, days, dates = _holidays(
            declaration.get("holidays") or {}, f"{path}.holidays"
        )
        calendar = cls(
            timezone=tz,
            hours=MappingProxyType(hours),
            holiday_dates=dates,
            country=country,
            subdivision=subdivision,
            _country_days=days,
        )
        full = all(hours.get(d) == ((0, 86400),) for d in range(7))
        calendar._week_cache[_ALWAYS_KEY] = full and not dates and country is None
        return calendar

    # -- queries -------------------------------------------------------------------------

    def is_holiday(self, day: date) -> bool:
        """Whether the local date ``day`` is a whole day off."""
        if day in self.holiday_dates:
            return True
        return self._country_days is not None and day in self._country_days

    def working(self, at: datetime) -> bool:
        """Whether ``at`` (aware) is working time."""
        moment = _utc(at, "at")
        local_day = self._local_date(moment)
        return any(s <= moment < e for s, e in self._spans(local_day))

    def next_working(self, at: datetime) -> datetime:
        """``at`` (as UTC) if it is working time, else the next instant that is."""
        moment = _utc(at, "at")
        day = self._local_date(moment) - DAY
        for _ in range(_MAX_IDLE_DAYS):
            for s, e in self._spans(day):
                if e > moment:
                    return _aware(max(s, moment))
            day += DAY
        raise ValueError("the calendar reaches no working time")  # pragma: no cover

    @property
    def always(self) -> bool:
        """Every instant is working time (24x7 without holidays): business time is
        elapsed time, which the clocks use without walking days."""
        return self._always

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between two aware instants; zero if ``end <= start``."""
        if self._always and start.tzinfo is UTC and end.tzinfo is UTC:
            # the SLA clocks' common case, without conversions (only in UTC: between two
            # times of one zoneinfo zone Python subtracts wall clocks, across DST too)
            return max(end - start, _ZERO)
        lo, hi = _utc(start, "start"), _utc(end, "end")
        if hi <= lo:
            return _ZERO
        first, last = self._local_date(lo), self._local_date(hi)
        total = _ZERO
        day = first - DAY
        while day <= last + DAY:
            # days strictly inside the span count whole: a plain week at its nominal total
            if day >= first + 2 * DAY and day + WEEK <= last - DAY and self._plain_week(day):
                total += self._weekly
                day += WEEK
                continue
            for s, e in self._spans(day):
                s, e = max(s, lo), min(e, hi)
                if s < e:
                    total += e - s
            day += DAY
        return total

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The UTC instant at which ``duration`` of business time after ``start`` has passed.

        ``add(s, 0)`` is ``s``; a start outside working time counts from the next working
        moment, and the result is always a working instant's end boundary or inside one.
        """
        if duration < _ZERO:
            raise ValidationFailed("must not be negative", field="duration")
        if self._always and start.tzinfo is UTC:
            return start + duration
        moment = _utc(start, "start")
        if duration == _ZERO:
            return _aware(moment)
        first = self._local_date(moment)
        remaining = duration
        day = first - DAY
        idle = 0
        while idle < _MAX_IDLE_DAYS:
            if day >= first + 2 * DAY and remaining > self._weekly and self._plain_week(day):
                remaining -= self._weekly
                day += WEEK
                continue
            spans = self._spans(day)
            idle = 0 if spans else idle + 1
            for s, e in spans:
                s = max(s, moment)
                if s >= e:
                    continue
                if remaining <= e - s:
                    return _aware(s + remaining)
                remaining -= e - s
            day += DAY
        raise ValueError("the calendar reaches no working time")  # pragma: no cover

    # -- internals -----------------------------------------------------------------------

    @property
    def _weekly(self) -> timedelta:
        """Business time of a week without holidays or offset changes (computed once)."""
        if not self._weekly_total:
            total = sum(e - s for day in self.hours.values() for s, e in day)
            self._weekly_total.append(timedelta(seconds=total))
        return self._weekly_total[0]

    def _local_date(self, moment: datetime) -> date:
        return moment.replace(tzinfo=UTC).astimezone(self.timezone).date()

    def _offset(self, moment: datetime) -> timedelta:
        offset = moment.replace(tzinfo=UTC).astimezone(self.timezone).utcoffset()
        return offset if offset is not None else _ZERO

    @property
    def _always(self) -> bool:
        return self._week_cache.get(_ALWAYS_KEY, False)

    def _plain_week(self, day: date) -> bool:
        """Whether the seven local days from ``day`` are worked exactly as declared: no
        holiday among them and one UTC offset throughout."""
        found = self._week_cache.get(day)
        if found is None:
            found = self._week_cache[day] = self._compute_plain_week(day)
            _bound(self._week_cache)
        return found

    def _compute_plain_week(self, day: date) -> bool:
        if any(self.is_holiday(day + timedelta(days=i)) for i in range(7)):
            return False
        base = datetime.combine(day, time())
        return self._offset(base - _BEFORE) == self._offset(base + WEEK + _AFTER)

    def _spans(self, day: date) -> list[_Span]:
        """The working instants of local date ``day``, as sorted naive-UTC spans (cached)."""
        found = self._span_cache.get(day)
        if found is None:
            found = self._span_cache[day] = self._compute_spans(day)
            _bound(self._span_cache)
        return found

    def _compute_spans(self, day: date) -> list[_Span]:
        """The working instants of local date ``day``, as sorted naive-UTC spans.

        The offset is constant over the day's candidate instants, or changes once at a
        transition found by bisection; each declared wall-clock interval maps through each
        constant-offset piece, which yields nothing for a wall time that does not exist and
        two spans for one that repeats.
        """
        intervals = self.hours.get(day.weekday())
        if not intervals or self.is_holiday(day):
            return []
        base = datetime.combine(day, time())
        lo, hi = base - _BEFORE, base + DAY + _AFTER
        before, after = self._offset(lo), self._offset(hi)
        if before == after:
            pieces = [(lo, hi, before)]
        else:
            switch = self._transition(lo, hi, after)
            pieces = [(lo, switch, before), (switch, hi, after)]
        spans: list[_Span] = []
        for a, b in intervals:
            for p, q, offset in pieces:
                s = max(base + timedelta(seconds=a) - offset, p)
                e = min(base + timedelta(seconds=b) - offset, q)
                if s < e:
                    spans.append((s, e))
        spans.sort()
        merged: list[_Span] = []
        for s, e in spans:
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
            else:
                merged.append((s, e))
        return merged

    def _transition(self, lo: datetime, hi: datetime, after: timedelta) -> datetime:
        """The first whole second in ``(lo, hi]`` whose offset is ``after`` (tz database
        transitions fall on whole seconds)."""
        low = (lo - _EPOCH) // timedelta(seconds=1)
        high = (hi - _EPOCH) // timedelta(seconds=1)
        while high - low > 1:
            mid = (low + high) // 2
            if self._offset(_EPOCH + timedelta(seconds=mid)) == after:
                high = mid
            else:
                low = mid
        return _EPOCH + timedelta(seconds=high)


# -- building -----------------------------------------------------------------------------


def _bound(cache: dict[date, Any]) -> None:
    if len(cache) > _CACHED:
        kept = {k: cache[k] for k in (_ALWAYS_KEY,) if k in cache}
        cache.clear()
        cache.update(kept)


def _zone(value: Any, where: str) -> ZoneInfo:
    if not isinstance(value, str) or not value:
        raise ValidationFailed("must be an IANA time zone name such as Europe/Berlin", field=where)
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"unknown time zone {value!r}", field=where) from None


def _hours(value: Any, where: str) -> dict[int, tuple[Interval, ...]]:
    if not isinstance(value, Mapping):
        raise ValidationFailed("must map weekdays (mon..sun) to intervals", field=where)
    hours: dict[int, tuple[Interval, ...]] = {}
    for key, intervals in value.items():
        if key not in WEEKDAYS:
            raise ValidationFailed(
                f"unknown weekday; expected one of {', '.join(WEEKDAYS)}", field=f"{where}.{key}"
            )
        day = _day(intervals, f"{where}.{key}")
        if day:
            hours[WEEKDAYS.index(key)] = day
    if not hours:
        raise ValidationFailed("declares no working time at all", field=where)
    return hours


def _day(value: Any, where: str) -> tuple[Interval, ...]:
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValidationFailed('must be a list of ["HH:MM", "HH:MM"] intervals', field=where)
    found: list[tuple[Interval, str]] = []
    for index, pair in enumerate(value):
        at = f"{where}.{index}"
        if isinstance(pair, str | bytes) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValidationFailed('must be a pair ["HH:MM", "HH:MM"]', field=at)
        start, end = _clock(pair[0], at, "start"), _clock(pair[1], at, "end")
        if start == 86400:
            raise ValidationFailed("24:00 may only end an interval", field=at)
        if end <= start:
            raise ValidationFailed(
                f"interval {pair[0]}-{pair[1]} is empty or inverted (split an overnight "
                "shift at 24:00 / 00:00 of the next day)",
                field=at,
            )
        found.append(((start, end), at))
    found.sort()
    for (previous, _), (current, at) in pairwise(found):
        if current[0] < previous[1]:
            raise ValidationFailed("overlaps another interval of the day", field=at)
    return tuple(interval for interval, _ in found)


def _clock(value: Any, where: str, end: str) -> int:
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValidationFailed(f"{end} {value!r} is not a time HH:MM", field=where)
    hour, minute = int(match[1]), int(match[2])
    if (hour, minute) != (24, 0) and (hour > 23 or minute > 59):
        raise ValidationFailed(f"{end} {value!r} is not a time of day", field=where)
    return hour * 3600 + minute * 60


def _holidays(value: Any, where: str) -> tuple[str | None, str | None, Any, frozenset[date]]:
    if not isinstance(value, Mapping):
        raise ValidationFailed("must map country, subdivision and dates", field=where)
    for key in value:
        if key not in _HOLIDAY_KEYS:
            raise ValidationFailed(
                f"unknown key; expected one of {', '.join(sorted(_HOLIDAY_KEYS))}",
                field=f"{where}.{key}",
            )
    country, subdivision = value.get("country"), value.get("subdivision")
    days: Any = None
    if subdivision is not None and country is None:
        raise ValidationFailed("needs a country", field=f"{where}.subdivision")
    if country is not None:
        if not isinstance(country, str):
            raise ValidationFailed("must be an ISO 3166 country code", field=f"{where}.country")
        try:
            holidays_lib.country_holidays(country)
        except NotImplementedError:
            raise ValidationFailed(
                f"unknown holiday country {country!r}", field=f"{where}.country"
            ) from None
        try:
            days = holidays_lib.country_holidays(country, subdiv=subdivision)
        except (NotImplementedError, TypeError, ValueError):
            raise ValidationFailed(
                f"{country} has no subdivision {subdivision!r}", field=f"{where}.subdivision"
            ) from None
    dates = _dates(value.get("dates") or [], f"{where}.dates")
    return country, subdivision, days, dates


def _dates(value: Any, where: str) -> frozenset[date]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValidationFailed("must be a list of dates YYYY-MM-DD", field=where)
    found: set[date] = set()
    for index, item in enumerate(value):
        if isinstance(item, date) and not isinstance(item, datetime):
            found.add(item)  # YAML reads an unquoted 2026-12-24 as a date already
            continue
        try:
            if not isinstance(item, str) or len(item) != 10:
                raise ValueError
            found.add(date.fromisoformat(item))
        except ValueError:
            raise ValidationFailed(
                f"{item!r} is not a date YYYY-MM-DD", field=f"{where}.{index}"
            ) from None
    return frozenset(found)


def _utc(value: datetime, name: str) -> datetime:
    """``value`` as naive UTC, refusing a naive datetime (its zone would be a guess)."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValidationFailed("must be a timezone-aware datetime", field=name)
    return value.astimezone(UTC).replace(tzinfo=None)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


TWENTY_FOUR_SEVEN = BusinessCalendar.build({"timezone": "UTC"})
"""Every instant is working: the calendar of a 24x7 service."""
