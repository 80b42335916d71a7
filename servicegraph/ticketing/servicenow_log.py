"""Reading a ServiceNow incident event log: one row per update of an incident, rebuilt into
the desk's tickets with their history, so a desk that migrates keeps its reports. This
module reads the file and groups its rows by incident; ``servicenow_fields`` reads a row's
cells, ``servicenow_history`` rebuilds an incident from its rows (both say how).

The log (ServiceNow's incident table audited per update, as in the UCI "Incident
management process enriched event log", Amaral, Fantinato, Peres 2018, DOI
10.24432/C57S4H, CC BY 4.0) is a CSV with a header row; the columns read are
``servicenow_fields.COLUMNS`` (``number``, ``incident_state``, ``sys_mod_count``,
``opened_at`` and ``sys_updated_at`` are required, any other may be missing, extra ones
are ignored). Times are day-first
minutes without a zone (``29-02-2016 01:16``), read in the zone given (UTC by default);
``?`` is an empty cell. Every row repeats the incident's fields as they were after that
update (and a few, such as ``resolved_at`` and ``closed_code``, as they were at the end).

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
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.servicenow_fields import (
    EMPTY,
    Row,
    RowReader,
    bad_time,
    slug,
    zone_of,
)
from servicegraph.ticketing.servicenow_history import Rebuilt, rebuild_history

# the reader's public names; Rebuilt, slug and zone_of live beside the walk and the cells
# and are named here too, for the callers (history_import, the tests) that import them here
__all__ = [
    "EventLogReader",
    "IdSequence",
    "Item",
    "Rebuilt",
    "Refused",
    "read_event_log",
    "slug",
    "zone_of",
]


@dataclass(frozen=True, slots=True)
class Refused:
    """Rows that were not rebuilt (an incident with a bad row, or rows of none) and why."""

    number: str | None
    rows: int
    problems: tuple[ValidationFailed, ...]


Item = Rebuilt | Refused


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
        self.fields = RowReader(name, zone)
        self.new_id = new_id or IdSequence()
        self.rows_read = 0

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
            index = self.fields.header(header)
        except ValidationFailed as exc:
            yield Refused(None, 0, (exc,))
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            yield Refused(None, 0, (ValidationFailed(f"not CSV: {exc}", item=f"{self.name}:1"),))
            return
        at_number = index["number"]
        width = len(header)
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
                        self.rows_read += 1
                        yield Refused(None, 1, (self.fields.width_problem(line, cells),))
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
        fields = self.fields
        problems: list[ValidationFailed] = []
        sound = next(((ln, c) for ln, c in group if len(c) == fields.width), None)
        if sound is None:  # no row of the incident has its cells
            problems = [fields.width_problem(ln, cells) for ln, cells in group]
            return Refused(number, len(group), tuple(problems))
        opened_line, first = sound
        opened_text = first[fields.index["opened_at"]].strip()
        opened = fields.times(opened_text)
        if opened is None:
            problems.append(fields.problem(opened_line, "opened_at", bad_time(opened_text)))
        rows: list[Row] = []
        read_row = fields.row
        for line, cells in group:
            row = read_row(line, cells, opened_text, problems)
            if row is not None:
                rows.append(row)
        if problems or opened is None:
            return Refused(number, len(group), tuple(problems))
        return rebuild_history(
            number,
            opened,
            rows,
            first_line=group[0][0],
            count=len(group),
            fields=fields,
            new_id=self.new_id,
        )


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
