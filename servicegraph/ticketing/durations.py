"""Durations as people read them in titles and reasons: "7 days", "36 hours", "90 minutes".

One unit, the largest that measures the duration exactly, so the text stays short and
true: a window of 36 hours is "36 hours" (not "1 day"), one of 90 minutes "90 minutes".
A duration that no whole minute measures is told in seconds; fractions of a second are
dropped. ``str(timedelta)`` ("7 days, 0:00:00") is for logs, never for people.

Elapsed times ("closed 25 minutes before") are measured, not configured: ``human_elapsed``
rounds them down to two units at most ("2 hours 5 minutes", "3 days 4 hours").
"""

from __future__ import annotations

import datetime as dt

_UNITS = (("day", 86_400), ("hour", 3600), ("minute", 60), ("second", 1))


def human_duration(delta: dt.timedelta) -> str:
    """``delta`` in its largest exact unit: "1 day", "36 hours", "90 minutes", "45 seconds";
    a negative duration gets a minus sign."""
    seconds = int(delta.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    if seconds == 0:
        return "0 seconds"
    unit, size = next((unit, size) for unit, size in _UNITS if seconds % size == 0)
    count = seconds // size
    return f"{sign}{count:,} {unit}{'' if count == 1 else 's'}"


def human_elapsed(span: dt.timedelta) -> str:
    """A duration as people say it: "40 seconds", "25 minutes", "2 hours 5 minutes",
    "3 days 4 hours"."""
    seconds = int(abs(span.total_seconds()))
    if seconds < 60:
        return _plural(seconds, "second")
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return _plural(minutes, "minute")
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return _plural(hours, "hour") + (f" {_plural(minutes, 'minute')}" if minutes else "")
    days, hours = divmod(hours, 24)
    return _plural(days, "day") + (f" {_plural(hours, 'hour')}" if hours else "")


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"
