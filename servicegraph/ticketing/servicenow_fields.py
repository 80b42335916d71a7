"""The cells of a ServiceNow incident event log read as the desk's values: the columns read,
the tables from ServiceNow's values to the desk's, and ``RowReader``, which turns one row
into what can change from one update to the next. Kept apart from the file and from the
rebuilt history (``servicenow_log``, ``servicenow_history``) because this is where the
source's vocabulary and the per-row speed live: a million-row log repeats a few hundred
cell texts, each parsed once per reader.

- Columns: ``REQUIRED`` must be in the header, any other of ``COLUMNS`` may be missing
  (its cells then read as empty), extra ones are ignored; ``?`` is an empty cell.
- Times are day-first minutes without a zone (``29-02-2016 01:16``, seconds allowed),
  read in the zone given (``zone_of``: UTC by default) and kept as aware UTC times.
- ``incident_state`` -> status and pending reason (``STATES``); ``-100`` (``NO_STATE``)
  is no state, the row leaves the status as it was. ``priority`` (``1 - Critical`` ..
  ``5 - Planning``), ``impact`` and ``urgency`` (``1 - High`` .. ``3 - Low``) by the
  number before the dash; empty: P3, medium.
- People and categories are directory keys slugged from the names (``slug``:
  ``Group 56`` -> ``group-56``); a category with a subcategory reads ``top/sub``.

A bad cell is a ``ValidationFailed`` naming ``file:line`` and the column, appended to the
problems of the row's incident.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.lifecycle import PendingReason, TicketStatus
from servicegraph.ticketing.model import Channel

EMPTY = "?"
REQUIRED = ("number", "incident_state", "sys_mod_count", "opened_at", "sys_updated_at")
COLUMNS = (
    *REQUIRED,
    "sys_updated_by",
    "opened_by",
    "sys_created_by",
    "caller_id",
    "contact_type",
    "location",
    "category",
    "subcategory",
    "u_symptom",
    "cmdb_ci",
    "impact",
    "urgency",
    "priority",
    "assignment_group",
    "assigned_to",
    "knowledge",
    "u_priority_confirmation",
    "made_sla",
    "closed_code",
    "resolved_by",
)
# ServiceNow's incident_state -> the desk's status and pending reason
STATES: dict[str, tuple[TicketStatus, str | None]] = {
    "New": (TicketStatus.NEW, None),
    "Active": (TicketStatus.IN_PROGRESS, None),
    "In Progress": (TicketStatus.IN_PROGRESS, None),
    "Awaiting User Info": (TicketStatus.PENDING, PendingReason.AWAITING_REQUESTER.value),
    "Awaiting Evidence": (TicketStatus.PENDING, PendingReason.AWAITING_REQUESTER.value),
    "Awaiting Vendor": (TicketStatus.PENDING, PendingReason.AWAITING_VENDOR.value),
    "Awaiting Problem": (TicketStatus.PENDING, PendingReason.AWAITING_CHANGE.value),
    "Resolved": (TicketStatus.RESOLVED, None),
    "Closed": (TicketStatus.CLOSED, None),
    "Canceled": (TicketStatus.CANCELLED, None),
    "Cancelled": (TicketStatus.CANCELLED, None),
}
NO_STATE = "-100"  # not a ServiceNow state: the row leaves the status as it was
# contact_type -> channel. "Direct opening" is an agent typing the incident into the tool
# itself, which on this desk is the API (GraphQL or the CLI), NewTicket's default channel.
CHANNELS = {
    "Phone": Channel.PHONE,
    "IVR": Channel.PHONE,
    "Email": Channel.EMAIL,
    "Self service": Channel.PORTAL,
    "Direct opening": Channel.API,
    "Chat": Channel.CHAT,
}
LEVELS = {"1": "high", "2": "medium", "3": "low"}  # impact and urgency "1 - High" ...
PRIORITIES = {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5}  # "1 - Critical" .. "5 - Planning"
BOOLEANS = {"TRUE": True, "FALSE": False, "true": True, "false": False, "1": True, "0": False}
FACTS = (
    "made_sla",
    "knowledge",
    "u_priority_confirmation",
    "closed_code",
    "cmdb_ci",
    "location",
    "symptom",
)
_SLUG = re.compile(r"[^a-z0-9]+")
_MAX_TIMES = 1_000_000  # minute strings cached before the cache starts over


def slug(name: str) -> str:
    """A directory key from a name: lower case, runs of anything else than letters and
    digits as one ``-`` (``Opened by  8`` -> ``opened-by-8``); empty when nothing is left."""
    return _SLUG.sub("-", name.lower()).strip("-")


def zone_of(name: str | dt.tzinfo | None) -> dt.tzinfo:
    """The zone the log's times are read in; an unknown name is refused naming it."""
    if name is None:
        return dt.UTC
    if isinstance(name, dt.tzinfo):
        return name
    if name.upper() == "UTC":
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(
            f"unknown time zone '{name}' (an IANA name such as Europe/Lisbon)", field="timezone"
        ) from None


class Times:
    """Minute strings to aware UTC times, each string parsed once (a year of minutes is
    525,600 strings; a million rows repeat them)."""

    def __init__(self, zone: dt.tzinfo) -> None:
        self.zone = zone
        self.cache: dict[str, dt.datetime | None] = {}

    def __call__(self, text: str) -> dt.datetime | None:
        """The time, or None for text that is no ``DD-MM-YYYY HH:MM[:SS]`` time."""
        try:
            return self.cache[text]
        except KeyError:
            pass
        if len(self.cache) >= _MAX_TIMES:
            self.cache.clear()
        parsed = self._parse(text)
        self.cache[text] = parsed
        return parsed

    def _parse(self, text: str) -> dt.datetime | None:
        n = len(text)
        if n not in (16, 19) or text[2] != "-" or text[5] != "-" or text[10] != " ":
            return None
        if text[13] != ":" or (n == 19 and text[16] != ":"):
            return None
        digits = text[0:2] + text[3:5] + text[6:10] + text[11:13] + text[14:16] + text[17:19]
        if not digits.isdigit() or not digits.isascii():
            return None
        try:
            local = dt.datetime(
                int(text[6:10]),
                int(text[3:5]),
                int(text[0:2]),
                int(text[11:13]),
                int(text[14:16]),
                int(text[17:19]) if n == 19 else 0,
                tzinfo=self.zone,
            )
        except ValueError:
            return None
        return local if self.zone is dt.UTC else local.astimezone(dt.UTC)


class Slugs(dict[str, str]):
    """Names to keys, each name slugged once."""

    def __missing__(self, name: str) -> str:
        key = self[name] = slug(name)
        return key


def bad_time(text: str) -> str:
    """The reason a time cell is refused with."""
    shown = f"'{text}'" if text else "empty"
    return f"{shown} is not a time such as 29-02-2016 01:16 (day-month-year hour:minute)"


_MISS: Any = object()
_STATE_CELLS: dict[str, tuple[TicketStatus, str | None] | None] = {**STATES, NO_STATE: None}


@dataclass(frozen=True, slots=True)
class Columns:
    """Where the cells a row is read for are (-1: an optional column the log lacks)."""

    opened_at: int
    mod: int
    updated_at: int
    state: int
    priority: int
    impact: int
    urgency: int
    subcategory: int
    # (where, column) of the cells read as directory keys: group, agent, actor, category
    named: tuple[tuple[int, str], ...]

    @classmethod
    def of(cls, index: dict[str, int]) -> Columns:
        named = ("assignment_group", "assigned_to", "sys_updated_by", "category")
        return cls(
            opened_at=index["opened_at"],
            mod=index["sys_mod_count"],
            updated_at=index["sys_updated_at"],
            state=index["incident_state"],
            priority=index.get("priority", -1),
            impact=index.get("impact", -1),
            urgency=index.get("urgency", -1),
            subcategory=index.get("subcategory", -1),
            named=tuple((index.get(c, -1), c) for c in named),
        )


@dataclass(slots=True)
class Row:
    """What an update row says that can change from one update to the next."""

    line: int
    mod: int
    at: dt.datetime
    state: tuple[TicketStatus, str | None] | None  # None: -100, the status stays
    source_state: str
    actor: str | None
    group: str | None
    agent: str | None
    priority: int
    impact: str
    urgency: str
    category: str | None
    cells: list[str]


class RowReader:
    """Reads the rows of one log, once ``header`` has said where its columns are.

    ``name`` labels the problems (``name:line``); ``zone`` is the zone of the log's times.
    ``times`` and ``keys`` (names to directory keys) are shared with whoever reads the
    log's other cells, so that each text is parsed once."""

    def __init__(self, name: str, zone: dt.tzinfo = dt.UTC) -> None:
        self.name = name
        self.times = Times(zone)
        self.keys = Slugs()
        self.index: dict[str, int] = {}
        self.width = 0
        self._c = Columns.of({c: i for i, c in enumerate(REQUIRED)})
        # cell text -> what it reads as, per kind of cell (the slow paths fill them)
        self._mods: dict[str, int] = {}
        self._levels: dict[str, dict[str, Any]] = {"priority": {}, "impact": {}, "urgency": {}}
        self._keys: dict[str, str | None] = {}
        self._paths: dict[tuple[str, str], str] = {}

    def header(self, header: Sequence[str]) -> dict[str, int]:
        """Take the log's header (the first line's cells, stripped): the column of each
        known column name it has; ``ValidationFailed`` when it is empty or lacks one of
        ``REQUIRED``."""
        if not any(header):
            raise ValidationFailed(
                "empty: the first line must name the columns", item=f"{self.name}:1"
            )
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ValidationFailed(
                f"missing column(s) {', '.join(missing)}; a ServiceNow incident event log "
                f"has {', '.join(REQUIRED)} at least",
                item=f"{self.name}:1",
                field=missing[0],
            )
        self.index = index = {c: header.index(c) for c in COLUMNS if c in header}
        self._c = Columns.of(index)
        self.width = len(header)
        return index

    def problem(self, line: int, column: str, reason: str) -> ValidationFailed:
        return ValidationFailed(reason, item=f"{self.name}:{line}", field=column)

    def width_problem(self, line: int, cells: list[str]) -> ValidationFailed:
        return ValidationFailed(
            f"has {len(cells)} cells but the header names {self.width} columns",
            item=f"{self.name}:{line}",
        )

    def cell(self, cells: list[str], column: str) -> str | None:
        """The text of a row's cell; None when it is empty or the log lacks the column."""
        at = self.index.get(column)
        if at is None:
            return None
        value = cells[at].strip()
        return None if not value or value == EMPTY else value

    def row(
        self, line: int, cells: list[str], opened_text: str, problems: list[ValidationFailed]
    ) -> Row | None:
        """The row's changing fields; each cell text is parsed once per reader (a log
        repeats the same few hundred values), the slow paths below say what is wrong."""
        if len(cells) != self.width:
            problems.append(self.width_problem(line, cells))
            return None
        c = self._c
        bad = len(problems)
        raw = cells[c.opened_at]
        if raw != opened_text and raw.strip() != opened_text:
            problems.append(
                self.problem(
                    line,
                    "opened_at",
                    f"'{raw.strip()}' differs from the incident's first row ('{opened_text}'): "
                    "one incident is opened once",
                )
            )
        raw = cells[c.mod]
        mod = self._mods.get(raw)
        if mod is None:
            mod = self._mod(line, raw, problems)
        raw = cells[c.updated_at]
        at = self.times.cache.get(raw, _MISS)
        if at is _MISS:
            at = self.times(raw)
        if at is None:
            problems.append(self.problem(line, "sys_updated_at", bad_time(raw.strip())))
        source_state = cells[c.state]
        state = _STATE_CELLS.get(source_state, _MISS)
        if state is _MISS:
            source_state, state = self._state(line, source_state, problems)
        levels = self._levels
        raw = cells[c.priority] if c.priority >= 0 else EMPTY
        priority = levels["priority"].get(raw)
        if priority is None:
            priority = self._level(line, raw, "priority", PRIORITIES, 3, problems)
        raw = cells[c.impact] if c.impact >= 0 else EMPTY
        impact = levels["impact"].get(raw)
        if impact is None:
            impact = self._level(line, raw, "impact", LEVELS, "medium", problems)
        raw = cells[c.urgency] if c.urgency >= 0 else EMPTY
        urgency = levels["urgency"].get(raw)
        if urgency is None:
            urgency = self._level(line, raw, "urgency", LEVELS, "medium", problems)
        keys = self._keys
        named: list[str | None] = []
        for i, column in c.named:
            raw = cells[i] if i >= 0 else EMPTY
            key = keys.get(raw, _MISS)
            named.append(self._key(line, raw, column, problems) if key is _MISS else key)
        group, agent, actor, top = named
        category = None
        if top is not None:
            raw = cells[c.subcategory] if c.subcategory >= 0 else EMPTY
            sub = keys.get(raw, _MISS)
            if sub is _MISS:
                sub = self._key(line, raw, "subcategory", problems)
            category = top if sub is None else self._paths.get((top, sub))
            if category is None:
                category = self._paths[(top, sub)] = f"{top}/{sub}"
        if len(problems) > bad or at is None:
            return None
        return Row(
            line, mod, at, state, source_state, actor, group, agent, priority, impact, urgency,
            category, cells,
        )  # fmt: skip

    def _mod(self, line: int, raw: str, problems: list[ValidationFailed]) -> int:
        text = raw.strip()
        if text.isdigit() and text.isascii():
            mod = self._mods[raw] = int(text)
            return mod
        problems.append(self.problem(line, "sys_mod_count", f"'{text}' is not a count"))
        return -1

    def _state(
        self, line: int, raw: str, problems: list[ValidationFailed]
    ) -> tuple[str, tuple[TicketStatus, str | None] | None]:
        text = raw.strip()
        state = _STATE_CELLS.get(text, _MISS)
        if state is _MISS:
            known = ", ".join(STATES)
            problems.append(
                self.problem(line, "incident_state", f"unknown state '{text}' (known: {known})")
            )
            return text, None
        return text, state

    def _level(
        self,
        line: int,
        raw: str,
        column: str,
        table: dict[str, Any],
        default: Any,
        problems: list[ValidationFailed],
    ) -> Any:
        value = raw.strip()
        if not value or value == EMPTY:
            self._levels[column][raw] = default
            return default
        found = table.get(value.partition(" - ")[0].strip()) if " - " in value else None
        if found is None:
            lowest = max(table)
            problems.append(
                self.problem(
                    line,
                    column,
                    f"'{value}' is not a {column} such as '1 - High' (1 to {lowest}, a dash, "
                    "its name)",
                )
            )
            return default
        self._levels[column][raw] = found
        return found

    def _key(
        self, line: int, raw: str, column: str, problems: list[ValidationFailed]
    ) -> str | None:
        value = raw.strip()
        if not value or value == EMPTY:
            self._keys[raw] = None
            return None
        key = self.keys[value]
        if not key:
            problems.append(
                self.problem(line, column, f"'{value}' has no letter or digit to name it by")
            )
            return None
        self._keys[raw] = key
        return key
