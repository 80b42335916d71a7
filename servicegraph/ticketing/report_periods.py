"""The time axis of the desk's reports: the reporting window (``--from``/``--to``) and the
periods a report is cut into (``--per day|week|month``), in a time zone.

Why a module of its own: a period is a calendar notion (a day, an ISO week, a month *in a
time zone*), and one rule must say it wherever a report is cut, in Python and in the SQL an
adapter writes (``storage/sqlite/reports.py`` labels UTC periods in SQL and checks against
``label`` here). Periods are labelled as ISO 8601 writes them: ``2026-03-02`` (a day),
``2026-W10`` (an ISO week: Monday to Sunday, numbered by its Thursday's year) and
``2026-03`` (a month). Without ``--timezone`` they are UTC days, weeks and months.

The window is half-open, ``[from, to)``. ``--from 2026-01-01`` is that day's first instant
in the report's time zone; ``--to 2026-12-31`` (a date) includes that whole day, so
``--from 2026-01-01 --to 2026-12-31`` is the year; an ISO time (``2026-03-01T12:00``, the
zone's when it names none, or ``...Z``) is that instant.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from servicegraph.cmdb.errors import ValidationFailed

UTC_NAME = "UTC"
MAX_PERIODS = 10_000  # a backlog cut into more periods than this is refused (narrow --from)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Per(enum.StrEnum):
    """How a report is cut in time."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"


def zone(name: str | None, *, field: str = "timezone") -> dt.tzinfo:
    """The time zone an IANA name (``Europe/Berlin``) or ``UTC`` names."""
    if name is None or name.strip().upper() == UTC_NAME:
        return dt.UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(
            f"'{name}' is not a time zone (an IANA name such as Europe/Berlin, or UTC)",
            field=field,
        ) from None


def instant(
    value: str | dt.datetime | dt.date, tz: dt.tzinfo, *, field: str, end: bool
) -> dt.datetime:
    """An aware UTC instant from a date or an ISO 8601 time (module docstring): a date is
    the first instant of that day in ``tz``, or with ``end`` the first instant after it."""
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=tz)
        return moment.astimezone(dt.UTC)
    if isinstance(value, dt.date):
        day = value
    else:
        text = value.strip()
        if not _DATE.match(text):
            try:
                moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise ValidationFailed(
                    f"'{value}' is not a date (2026-03-01) or an ISO 8601 time "
                    "(2026-03-01T12:00:00Z)",
                    field=field,
                ) from None
            return instant(moment, tz, field=field, end=end)
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise ValidationFailed(f"'{value}' is not a valid date", field=field) from None
    if end:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.UTC)


def label(moment: dt.datetime, per: Per, tz: dt.tzinfo) -> str:
    """The label of the period of ``per`` that holds ``moment``, in ``tz``."""
    local = moment.astimezone(tz)
    if per is Per.DAY:
        return local.date().isoformat()
    if per is Per.WEEK:
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{local.year:04d}-{local.month:02d}"


def start_of(period: str, per: Per, tz: dt.tzinfo) -> dt.datetime:
    """The first instant (UTC) of the period labelled ``period``."""
    if per is Per.DAY:
        day = dt.date.fromisoformat(period)
    elif per is Per.WEEK:
        year, _, week = period.partition("-W")
        day = dt.date.fromisocalendar(int(year), int(week), 1)
    else:
        year, _, month = period.partition("-")
        day = dt.date(int(year), int(month), 1)
    return dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.UTC)


def following(period: str, per: Per) -> str:
    """The label of the period after ``period``."""
    if per is Per.DAY:
        return (dt.date.fromisoformat(period) + dt.timedelta(days=1)).isoformat()
    if per is Per.WEEK:
        year, _, week = period.partition("-W")
        monday = dt.date.fromisocalendar(int(year), int(week), 1) + dt.timedelta(days=7)
        y, w, _ = monday.isocalendar()
        return f"{y}-W{w:02d}"
    year, _, month = period.partition("-")
    y, m = (int(year), int(month) + 1) if month != "12" else (int(year) + 1, 1)
    return f"{y:04d}-{m:02d}"


def cut(
    start: dt.datetime, end: dt.datetime, per: Per, tz: dt.tzinfo
) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """The periods that meet ``[start, end)``, each as (label, first instant, end): the
    first may begin before ``start``, the last end after ``end``."""
    periods: list[tuple[str, dt.datetime, dt.datetime]] = []
    if end <= start:
        return periods
    current = label(start, per, tz)
    while True:
        begins = start_of(current, per, tz)
        if begins >= end:
            return periods
        nxt = following(current, per)
        periods.append((current, begins, start_of(nxt, per, tz)))
        if len(periods) > MAX_PERIODS:
            raise ValidationFailed(
                f"more than {MAX_PERIODS:,} periods of a {per.value}: narrow --from/--to "
                "or cut by a longer period",
                field="per",
            )
        current = nxt
