"""Reading a ServiceNow incident event log: one row per update of an incident, rebuilt into
the desk's tickets with their history, so a desk that migrates keeps its reports.

The log (ServiceNow's incident table audited per update, as in the UCI "Incident
management process enriched event log", Amaral, Fantinato, Peres 2018, DOI
10.24432/C57S4H, CC BY 4.0) is a CSV with a header row; the columns read are ``COLUMNS``
(``number``, ``incident_state``, ``sys_mod_count``, ``opened_at`` and ``sys_updated_at``
are required, any other may be missing, extra ones are ignored). Times are day-first
minutes without a zone (``29-02-2016 01:16``), read in the zone given (UTC by default);
``?`` is an empty cell. Every row repeats the incident's fields as they were after that
update (and a few, such as ``resolved_at`` and ``closed_code``, as they were at the end).

How an incident is rebuilt (README "Importing history from ServiceNow" says it for users):

- Its rows are ordered by ``sys_mod_count``, then file order, except that a row dated
  before ``opened_at`` goes first: in every such row of the real log the count repeats
  another row's and the row is the incident's earliest state (its group is the one the
  later rows' ``reassignment_count`` starts from). An entry is never dated before the
  ticket's opening nor before the entry of the row ahead of it: the history reads in
  order, as SLA clocks (which sort by time) read it.
- Each row is an update at its ``sys_updated_at`` by its ``sys_updated_by``: whatever
  changed since the row before becomes the entries the live desk writes for it
  (``tickets_work``): ASSIGNED for the group and the agent, a TRANSITION of ``status``
  (with the CHANGED ``pending_reason`` / ``resolution_code`` / ``close_code`` entries that
  entering or leaving pending, resolved and closed write), CHANGED for priority, impact,
  urgency and category. The live desk logs a reopen as the TRANSITION out of resolved,
  with no REOPENED entry; so does the import.
- Status (``STATES``): New -> new; Active -> in_progress (ServiceNow's "In Progress",
  which may have no agent); Awaiting User Info and Awaiting Evidence -> pending
  (awaiting_requester); Awaiting Vendor -> pending (awaiting_vendor); Awaiting Problem ->
  pending (awaiting_change); Resolved; Closed; Canceled -> cancelled. ``-100`` is no state
  (ServiceNow's incident states are 1..8; the real log has a handful of such rows): the
  row's other fields apply and the status stays as it was.
- ``resolved_at``: when the incident last entered Resolved (a reopen clears it, the next
  resolution sets it, as on the live desk); one closed without passing Resolved counts as
  resolved when closed. ServiceNow's own ``resolved_at`` column, the time of the last
  update made while resolved, is not read. ``closed_at``: when it entered Closed.
- ``reopen_count``: rows that move the incident from resolved or closed to an active
  status. ``reassignment_count``: changes of ``assignment_group`` once it has had one
  (to or from an empty group too: ServiceNow's own count, from the rows the log holds).
- ``first_response_at``: the first update that moves the incident out of New to work,
  pending, resolved or closed: what the requester sees an agent do (the live desk's
  ``tickets_work.RESPONDING``, closed added for a log that skips Resolved).
- The facts reports need beyond the ticket's fields are ``custom_fields`` of the last row
  (``FACTS``): ``made_sla`` (bool: ServiceNow's verdict when the log ends), ``knowledge``,
  ``u_priority_confirmation`` (bools), ``closed_code``, ``cmdb_ci``, ``location``,
  ``symptom`` (the source's names as they are); empty ones are left out.
- People are directory keys slugged from the names (``Group 56`` -> ``group-56``,
  ``Resolver 17`` -> ``resolver-17``): group from ``assignment_group``, agent from
  ``assigned_to`` and ``resolved_by``, requester (a contact) from ``caller_id``; actors
  from ``sys_updated_by`` and ``opened_by`` (or ``sys_created_by``). Each rebuilt incident
  lists the groups, agents (with the groups they were assigned in) and contacts it names,
  for the import to create in the directory.

Problems are collected per row, as ``ValidationFailed`` naming ``file:line`` and the
column: a bad time, an unknown state, priority, impact or urgency, a bad
``sys_mod_count``, a row whose ``opened_at`` differs from its incident's, a row of an
incident whose rows ended earlier (an incident's rows must be together, as the log is
sorted by number), a row with the wrong number of cells. An incident with any bad row is
refused whole (a history with holes would be taken for the truth, and a re-run skips what
was imported); the others are rebuilt. Nothing here writes anything.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import secrets
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.lifecycle import PendingReason, TicketStatus
from servicegraph.ticketing.model import Channel, Incident, TicketType, WorklogEntry, WorklogKind
from servicegraph.ticketing.tickets_work import RESPONDING, changed, entry

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
IMPORT_ACTOR = "servicenow-import"  # the actor when the log names nobody
_ANSWERED = RESPONDING | {TicketStatus.CLOSED}
_ENDED = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED})
_SLUG = re.compile(r"[^a-z0-9]+")
_MAX_TIMES = 1_000_000  # minute strings cached before the cache starts over


@dataclass(slots=True)
class Rebuilt:
    """One incident of the log, rebuilt: the ticket (``number`` 0: the import numbers it
    when it saves it), its worklog in order, and the directory records it names."""

    incident: Incident
    worklog: list[WorklogEntry]
    rows: int
    first_line: int
    groups: dict[str, str] = field(default_factory=dict)  # key -> the source's name
    agents: dict[str, tuple[str, set[str]]] = field(default_factory=dict)  # name, groups
    contacts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Refused:
    """Rows that were not rebuilt (an incident with a bad row, or rows of none) and why."""

    number: str | None
    rows: int
    problems: tuple[ValidationFailed, ...]


Item = Rebuilt | Refused


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


class IdSequence:
    """Ticket ids of the desk's shape (``inc-`` and 16 hex digits, as ``new_id``'s) that
    share a random prefix per import and count up: the worklog's ``(ticket_id, seq)``
    index then takes each batch's entries in a few pages rather than all over the index
    (random ids made a 400,000-row import a fifth slower)."""

    def __init__(self) -> None:
        self.prefix = f"inc-{secrets.token_hex(4)}"
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"{self.prefix}{self.count:08x}"


class _Times:
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


class _Slugs(dict[str, str]):
    """Names to keys, each name slugged once."""

    def __missing__(self, name: str) -> str:
        key = self[name] = slug(name)
        return key


_MISS: Any = object()
_STATE_CELLS: dict[str, tuple[TicketStatus, str | None] | None] = {**STATES, NO_STATE: None}


@dataclass(frozen=True, slots=True)
class _Columns:
    """Where the cells a row is read for are (-1: an optional column the log lacks)."""

    opened_at: int
    mod: int
    updated_at: int
    state: int
    priority: int
    impact: int
    urgency: int
    group: int
    agent: int
    actor: int
    category: int
    subcategory: int

    @classmethod
    def of(cls, index: dict[str, int]) -> _Columns:
        return cls(
            *(index[c] for c in ("opened_at", "sys_mod_count", "sys_updated_at", "incident_state")),
            *(
                index.get(c, -1)
                for c in (
                    "priority", "impact", "urgency", "assignment_group", "assigned_to",
                    "sys_updated_by", "category", "subcategory",
                )
            ),
        )  # fmt: skip


@dataclass(slots=True)
class _Row:
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


class EventLogReader:
    """Reads one log; iterate over ``items`` for the incidents and refusals in file order.

    ``name`` labels the problems (``name:line``); ``zone`` is the zone of the log's times;
    ``new_id`` gives each ticket its id (by default ``IdSequence``'s)."""

    def __init__(
        self,
        *,
        name: str,
        zone: dt.tzinfo = dt.UTC,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self.name = name
        self.times = _Times(zone)
        self.keys = _Slugs()
        self.new_id = new_id or IdSequence()
        self.rows_read = 0
        self._index: dict[str, int] = {}
        self._width = 0
        self._c = _Columns.of({c: i for i, c in enumerate(REQUIRED)})
        # cell text -> what it reads as, per kind of cell (the slow paths fill them)
        self._mods: dict[str, int] = {}
        self._levels: dict[str, dict[str, Any]] = {"priority": {}, "impact": {}, "urgency": {}}
        self._keys: dict[str, str | None] = {}
        self._paths: dict[tuple[str, str], str] = {}

    def read(self, source: Path | str | TextIO | Iterable[str]) -> Iterator[Item]:
        """``items`` of a path (``Path``), text (``str``), an open text file or lines; a
        file that cannot be opened is one ``Refused`` naming it."""
        if isinstance(source, str):
            yield from self.items(io.StringIO(source.removeprefix("\ufeff"), newline=""))
            return
        if not isinstance(source, Path):
            yield from self.items(source)
            return
        try:
            handle = source.open(encoding="utf-8-sig", newline="")
        except OSError as exc:
            problem = ValidationFailed(f"cannot read: {exc.strerror}", item=self.name)
            yield Refused(None, 0, (problem,))
            return
        with handle:
            yield from self.items(handle)

    # -- the file ------------------------------------------------------------------------

    def items(self, lines: Iterable[str]) -> Iterator[Item]:
        """The log's incidents in the order their rows come, each rebuilt or refused.

        A log that cannot be read at all (no header, a required column missing, not CSV
        or not UTF-8 from some line on) yields a last ``Refused`` naming the file (or the
        line) and stops there."""
        reader = csv.reader(lines)
        try:
            header = [h.strip().removeprefix("\ufeff") for h in next(reader, [])]
            self._index = index = self._columns(header)
            self._c = _Columns.of(index)
        except ValidationFailed as exc:
            yield Refused(None, 0, (exc,))
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            yield Refused(None, 0, (ValidationFailed(f"not CSV: {exc}", item=f"{self.name}:1"),))
            return
        at_number = index["number"]
        self._width = width = len(header)
        done: dict[str, int] = {}  # number -> its first line, for incidents already read
        group: list[tuple[int, list[str]]] = []
        current: str | None = None
        try:
            for cells in reader:
                line = reader.line_num
                if len(cells) != width:
                    if not any(c.strip() for c in cells):
                        continue  # a blank line
                    if len(cells) <= at_number:  # not even its number: a row of its own
                        yield self._bad_width(line, cells, width)
                        continue  # (its incident's rows go on around it)
                number = cells[at_number].strip()
                if number != current:
                    yield from self._flush(current, group, done)
                    current, group = number, []
                group.append((line, cells))
        except (csv.Error, UnicodeDecodeError) as exc:
            yield from self._flush(current, group, done)
            where = f"{self.name}:{reader.line_num + 1}"
            reason = f"not CSV: {exc}" if isinstance(exc, csv.Error) else f"not UTF-8: {exc}"
            yield Refused(
                None, 0, (ValidationFailed(f"{reason}; nothing after it read", item=where),)
            )
            return
        yield from self._flush(current, group, done)

    def _columns(self, header: Sequence[str]) -> dict[str, int]:
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
        return {c: header.index(c) for c in COLUMNS if c in header}

    def _bad_width(self, line: int, cells: list[str], width: int) -> Refused:
        self.rows_read += 1
        return Refused(None, 1, (self._width_problem(line, cells, width),))

    def _width_problem(self, line: int, cells: list[str], width: int) -> ValidationFailed:
        return ValidationFailed(
            f"has {len(cells)} cells but the header names {width} columns",
            item=f"{self.name}:{line}",
        )

    def _flush(
        self, number: str | None, group: list[tuple[int, list[str]]], done: dict[str, int]
    ) -> Iterator[Item]:
        if not group:
            return
        self.rows_read += len(group)
        assert number is not None
        if not number or number == EMPTY:
            problems = tuple(
                ValidationFailed("is empty; row refused", item=f"{self.name}:{ln}", field="number")
                for ln, _ in group
            )
            yield Refused(None, len(group), problems)
            return
        if number in done:
            first = done[number]
            problems = tuple(
                ValidationFailed(
                    f"{number}'s rows began at line {first} and other incidents' rows came "
                    "between: an incident's rows must be together (the log sorted by number); "
                    "these rows are refused",
                    item=f"{self.name}:{ln}",
                    field="number",
                )
                for ln, _ in group
            )
            yield Refused(number, len(group), problems)
            return
        done[number] = group[0][0]
        yield self.rebuild(number, group)

    # -- one incident ----------------------------------------------------------------------

    def rebuild(self, number: str, group: Sequence[tuple[int, list[str]]]) -> Item:
        """One incident from its rows (``(line, cells)`` in file order), or its refusal."""
        idx = self._index
        problems: list[ValidationFailed] = []
        first_line = group[0][0]
        sound = next(((ln, c) for ln, c in group if len(c) == self._width), None)
        if sound is None:  # no row of the incident has its cells
            problems = [self._width_problem(ln, cells, self._width) for ln, cells in group]
            return Refused(number, len(group), tuple(problems))
        opened_line, first = sound
        opened_text = first[idx["opened_at"]].strip()
        opened = self.times(opened_text)
        if opened is None:
            problems.append(self._problem(opened_line, "opened_at", _bad_time(opened_text)))
        rows: list[_Row] = []
        for line, cells in group:
            row = self._row(line, cells, opened_text, problems)
            if row is not None:
                rows.append(row)
        if problems or opened is None:
            return Refused(number, len(group), tuple(problems))
        rows.sort(key=lambda r: (r.at >= opened, r.mod, r.line))
        return self._walk(number, opened, rows, first_line, len(group))

    def _problem(self, line: int, column: str, reason: str) -> ValidationFailed:
        return ValidationFailed(reason, item=f"{self.name}:{line}", field=column)

    def _cell(self, cells: list[str], column: str) -> str | None:
        at = self._index.get(column)
        if at is None:
            return None
        value = cells[at].strip()
        return None if not value or value == EMPTY else value

    def _row(
        self, line: int, cells: list[str], opened_text: str, problems: list[ValidationFailed]
    ) -> _Row | None:
        """The row's changing fields; each cell text is parsed once per reader (a log
        repeats the same few hundred values), the slow paths below say what is wrong."""
        if len(cells) != self._width:
            problems.append(self._width_problem(line, cells, self._width))
            return None
        c = self._c
        bad = len(problems)
        raw = cells[c.opened_at]
        if raw != opened_text and raw.strip() != opened_text:
            problems.append(
                self._problem(
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
            problems.append(self._problem(line, "sys_updated_at", _bad_time(raw.strip())))
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
        raw = cells[c.group] if c.group >= 0 else EMPTY
        group = keys.get(raw, _MISS)
        if group is _MISS:
            group = self._key(line, raw, "assignment_group", problems)
        raw = cells[c.agent] if c.agent >= 0 else EMPTY
        agent = keys.get(raw, _MISS)
        if agent is _MISS:
            agent = self._key(line, raw, "assigned_to", problems)
        raw = cells[c.actor] if c.actor >= 0 else EMPTY
        actor = keys.get(raw, _MISS)
        if actor is _MISS:
            actor = self._key(line, raw, "sys_updated_by", problems)
        raw = cells[c.category] if c.category >= 0 else EMPTY
        top = keys.get(raw, _MISS)
        if top is _MISS:
            top = self._key(line, raw, "category", problems)
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
        return _Row(
            line, mod, at, state, source_state, actor, group, agent, priority, impact, urgency,
            category, cells,
        )  # fmt: skip

    def _mod(self, line: int, raw: str, problems: list[ValidationFailed]) -> int:
        text = raw.strip()
        if text.isdigit() and text.isascii():
            mod = self._mods[raw] = int(text)
            return mod
        problems.append(self._problem(line, "sys_mod_count", f"'{text}' is not a count"))
        return -1

    def _state(
        self, line: int, raw: str, problems: list[ValidationFailed]
    ) -> tuple[str, tuple[TicketStatus, str | None] | None]:
        text = raw.strip()
        state = _STATE_CELLS.get(text, _MISS)
        if state is _MISS:
            known = ", ".join(STATES)
            problems.append(
                self._problem(line, "incident_state", f"unknown state '{text}' (known: {known})")
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
                self._problem(
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
                self._problem(line, column, f"'{value}' has no letter or digit to name it by")
            )
            return None
        self._keys[raw] = key
        return key

    # -- the history ---------------------------------------------------------------------

    def _walk(
        self, number: str, opened: dt.datetime, rows: list[_Row], first_line: int, count: int
    ) -> Rebuilt:
        cell = self._cell
        head, last = rows[0], rows[-1]
        creator_name = cell(head.cells, "opened_by") or cell(head.cells, "sys_created_by")
        creator = (self.keys[creator_name] if creator_name else "") or IMPORT_ACTOR
        caller = cell(last.cells, "caller_id")
        requester = self.keys[caller] if caller else None
        contact = cell(last.cells, "contact_type")
        channel = CHANNELS.get(contact, Channel.IMPORT) if contact else Channel.IMPORT
        t = Incident(
            id=self.new_id(),
            number=0,
            title=_title(cell, last.cells, number),
            status=TicketStatus.NEW,
            opened_at=opened,
            updated_at=opened,
            last_alert_at=opened,
            priority=head.priority,
            impact=head.impact,
            urgency=head.urgency,
            type=TicketType.INCIDENT,
            channel=channel,
            requester=requester or None,
            category=head.category,
            created_by=creator,
            external_ref=number,
        )
        words = f"P{t.priority} ({t.impact} impact x {t.urgency} urgency)"
        text = f"incident via {channel}: {words}; imported from ServiceNow {number}"
        log = [entry(t.id, opened, creator, WorklogKind.CREATED, text)]
        resolver_name = cell(last.cells, "resolved_by")
        resolver = self.keys[resolver_name] if resolver_name else None
        code_name = cell(last.cells, "closed_code")
        code = self.keys[code_name] if code_name else None
        item = Rebuilt(t, log, count, first_line)
        at = opened
        for row in rows:
            if row.at > at:
                at = row.at
            actor = row.actor or creator
            if row.group != t.assignment_group:
                if row is not head:  # the first row's group is the one it was created with
                    t.reassignment_count += 1
                log.append(_assigned(t, at, actor, "assignment_group", row.group))
                t.assignment_group = row.group
                if row.group is not None and row.group not in item.groups:
                    item.groups[row.group] = cell(row.cells, "assignment_group") or row.group
            if row.agent is not None:
                _agent(item, row, cell)
            if row.agent != t.assignee:
                log.append(_assigned(t, at, actor, "assignee", row.agent))
                t.assignee = row.agent
            if row.state is not None and (row.state[0] is not t.status or row.state[1]):
                _state(t, row, at, actor, resolver, code, log)
            if row.priority != t.priority:
                shown = f"priority: P{t.priority} -> P{row.priority}"
                log.append(changed(t, at, actor, "priority", t.priority, row.priority, shown))
                t.priority = row.priority
            if row.impact != t.impact:
                log.append(changed(t, at, actor, "impact", t.impact, row.impact))
                t.impact = row.impact
            if row.urgency != t.urgency:
                log.append(changed(t, at, actor, "urgency", t.urgency, row.urgency))
                t.urgency = row.urgency
            if row.category != t.category:
                log.append(changed(t, at, actor, "category", t.category, row.category))
                t.category = row.category
        t.updated_at = at
        if resolver is not None and resolver_name and t.resolved_by == resolver:
            item.agents.setdefault(resolver, (resolver_name, set()))
        t.custom_fields = _facts(cell, last.cells)
        if requester and caller:
            item.contacts[requester] = caller
        return item


def _bad_time(text: str) -> str:
    shown = f"'{text}'" if text else "empty"
    return f"{shown} is not a time such as 29-02-2016 01:16 (day-month-year hour:minute)"


def _title(cell: Callable[[list[str], str], str | None], cells: list[str], number: str) -> str:
    """The log has no short description: the category, subcategory and symptom say it."""
    where = " / ".join(v for v in (cell(cells, "category"), cell(cells, "subcategory")) if v)
    symptom = cell(cells, "u_symptom")
    if where and symptom:
        return f"{where}: {symptom}"
    return where or symptom or f"ServiceNow incident {number}"


def _facts(cell: Callable[[list[str], str], str | None], cells: list[str]) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for name, column in (
        ("made_sla", "made_sla"),
        ("knowledge", "knowledge"),
        ("u_priority_confirmation", "u_priority_confirmation"),
    ):
        value = cell(cells, column)
        if value is not None and value in BOOLEANS:
            facts[name] = BOOLEANS[value]
    for name, column in (
        ("closed_code", "closed_code"),
        ("cmdb_ci", "cmdb_ci"),
        ("location", "location"),
        ("symptom", "u_symptom"),
    ):
        value = cell(cells, column)
        if value is not None:
            facts[name] = value
    return facts


def _agent(item: Rebuilt, row: _Row, cell: Callable[[list[str], str], str | None]) -> None:
    assert row.agent is not None
    known = item.agents.get(row.agent)
    if known is not None and (row.group is None or row.group in known[1]):
        return
    if known is None:
        known = item.agents[row.agent] = (cell(row.cells, "assigned_to") or row.agent, set())
    if row.group is not None:
        known[1].add(row.group)


def _assigned(t: Incident, at: dt.datetime, actor: str, name: str, new: str | None) -> WorklogEntry:
    """The ASSIGNED entry the live desk writes (``tickets_work.assign_to``)."""
    old = getattr(t, name)
    if name == "assignment_group":
        text = f"group {new}" if new else "group cleared"
    else:
        text = f"assigned to {new}" if new else "unassigned"
    if old:
        text += f" (was {old})"
    # the shape of ``tickets_work.entry`` (old and new are text already)
    return WorklogEntry(t.id, at, actor, _ASSIGNED, text, field=name, old=old, new=new)


_PENDING, _RESOLVED, _CLOSED = TicketStatus.PENDING, TicketStatus.RESOLVED, TicketStatus.CLOSED


def _step(old: TicketStatus, target: TicketStatus) -> str:
    """The live lifecycle's name for the step (``lifecycle.DEFAULT_TICKET_LIFECYCLE``)."""
    if old in _ENDED and target.active:
        return "reopen"
    if target is TicketStatus.IN_PROGRESS:
        return "resume" if old is _PENDING else "start"
    names = {
        _PENDING: "pend",
        _RESOLVED: "resolve",
        _CLOSED: "close",
        TicketStatus.CANCELLED: "cancel",
    }
    return names.get(target, "requeue")  # requeue: back to new


_STEPS = {(old, new): _step(old, new) for old in TicketStatus for new in TicketStatus}
_TRANSITION, _ASSIGNED = WorklogKind.TRANSITION, WorklogKind.ASSIGNED


def _state(
    t: Incident,
    row: _Row,
    at: dt.datetime,
    actor: str,
    resolver: str | None,
    code: str | None,
    log: list[WorklogEntry],
) -> None:
    """Enter the row's status as ``tickets_work.take_step``/``_apply_target`` do: the
    TRANSITION, then one CHANGED entry per field the step sets or clears."""
    assert row.state is not None
    target, reason = row.state
    old = t.status
    if target is old:
        if target is _PENDING and reason != t.pending_reason:
            log.append(changed(t, at, actor, "pending_reason", t.pending_reason, reason))
            t.pending_reason = reason
        return
    step = _STEPS[old, target]
    detail = reason or (code if target in _ENDED else None)
    text = step + (f" ({detail})" if detail else "") + f": ServiceNow '{row.source_state}'"
    # the shape of ``tickets_work.entry``, the statuses as their text
    log.append(
        WorklogEntry(t.id, at, actor, _TRANSITION, text, field="status", old=old, new=target)
    )

    def put(name: str, value: object) -> None:
        before = getattr(t, name)
        if before != value:
            log.append(changed(t, at, actor, name, before, value))
            setattr(t, name, value)

    if target is _PENDING:
        put("pending_reason", reason)
    elif old is _PENDING:
        put("pending_reason", None)
    if target is _RESOLVED:
        put("resolution_code", code)
        t.resolved_at, t.resolved_by = at, resolver or actor
    elif old in _ENDED and target.active:  # reopened: the old values stay in the entries
        put("resolution_code", None)
        put("close_code", None)
        t.resolved_at = t.resolved_by = t.closed_at = None
        t.reopen_count += 1
    if target is _CLOSED:
        put("close_code", code)
        t.closed_at = at
        if t.resolved_at is None:  # closed without passing Resolved: resolved when closed
            t.resolved_at, t.resolved_by = at, resolver or actor
    if target is TicketStatus.IN_PROGRESS and t.acknowledged_at is None:
        t.acknowledged_at, t.acknowledged_by = at, actor
    if target in _ANSWERED and t.first_response_at is None:
        t.first_response_at = at
    t.status = target


def read_event_log(
    source: Path | str | TextIO | Iterable[str],
    *,
    name: str | None = None,
    timezone: str | dt.tzinfo | None = None,
    new_id: Callable[[], str] | None = None,
) -> Iterator[Item]:
    """The incidents of a log: a path (``Path``), text (``str``), an open text file or
    lines; ``name`` labels problems (the path by default, else ``<text>``); ``timezone``
    the zone of the log's times (UTC by default; unknown: ``ValidationFailed`` at once).
    See ``EventLogReader`` for a reader whose ``rows_read`` counts as it goes."""
    zone = zone_of(timezone)
    label = name or (str(source) if isinstance(source, Path) else "<text>")
    kwargs: dict[str, Any] = {"name": label, "zone": zone}
    if new_id is not None:
        kwargs["new_id"] = new_id
    reader = EventLogReader(**kwargs)
    return reader.read(source)
