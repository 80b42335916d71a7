"""Export view of the SQLite ticket repository (``TicketStore.snapshot``): every alert,
cycle, incident, problem (and its links), freeze window, change, ticket link and worklog
entry, read in pages from one read transaction of a connection of its own, so that WAL
keeps the view consistent while writers carry on (as the graph's ``dump.py`` does).

Each listing walks its table in the order the port states, ``_PAGE`` rows at a time; a
change's CIs are read per page of changes, so no listing holds more than a page.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from servicegraph.events.model import Alert, AlertCycle
from servicegraph.storage.sqlite.change_rows import (
    CHANGE_COLUMNS,
    FREEZE_COLUMNS,
    change_of,
    freeze_of,
)
from servicegraph.storage.sqlite.file import from_us
from servicegraph.storage.sqlite.incident_rows import (
    ALERT_COLUMNS,
    INCIDENT_COLUMNS,
    PROBLEM_COLUMNS,
    opt_dt,
    to_alert,
    to_incident,
    to_problem,
)
from servicegraph.storage.sqlite.ticket_unit import IN, ids_json
from servicegraph.ticketing.change_model import FreezeWindow
from servicegraph.ticketing.model import (
    Change,
    Incident,
    LinkKind,
    Problem,
    TicketLink,
    WorklogEntry,
    WorklogKind,
)
from servicegraph.ticketing.ports import ProblemLink

_PAGE = 1000

# what each listing reads, by the snapshot's method name (``counts`` counts the same rows)
_TABLES = {
    "alerts": "alert",
    "alert_cycles": "alert_cycle",
    "incidents": "incident",
    "problems": "problem",
    "problem_links": "problem_incident",
    "freeze_windows": "freeze_window",
    "changes": "change_request",
    "links": "ticket_link",
    "worklog": "worklog",
}


class SqliteTicketSnapshot:
    """What ``SqliteTicketStore.snapshot`` yields (``ticketing.ports.TicketSnapshot``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _pages(self, sql: str) -> Iterator[list[tuple[Any, ...]]]:
        cursor = self._conn.execute(sql)
        try:
            while rows := cursor.fetchmany(_PAGE):
                yield rows
        finally:
            cursor.close()

    def counts(self) -> dict[str, int]:
        return {
            name: int(self._conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for name, table in _TABLES.items()
        }

    def alerts(self) -> Iterator[Alert]:
        for rows in self._pages(f"SELECT {ALERT_COLUMNS} FROM alert ORDER BY fingerprint"):
            yield from (to_alert(r) for r in rows)

    def alert_cycles(self) -> Iterator[AlertCycle]:
        for rows in self._pages(
            "SELECT fingerprint, fired_at, cleared_at, incident_id FROM alert_cycle "
            "ORDER BY fingerprint, fired_at"
        ):
            yield from (AlertCycle(r[0], from_us(r[1]), opt_dt(r[2]), r[3]) for r in rows)

    def incidents(self) -> Iterator[Incident]:
        for rows in self._pages(f"SELECT {INCIDENT_COLUMNS} FROM incident ORDER BY number"):
            yield from (to_incident(r) for r in rows)

    def problems(self) -> Iterator[Problem]:
        for rows in self._pages(f"SELECT {PROBLEM_COLUMNS} FROM problem ORDER BY number"):
            yield from (to_problem(r, []) for r in rows)

    def problem_links(self) -> Iterator[ProblemLink]:
        for rows in self._pages(
            "SELECT problem_id, incident_id, linked_at FROM problem_incident "
            "ORDER BY problem_id, incident_id"
        ):
            yield from (ProblemLink(r[0], r[1], from_us(r[2])) for r in rows)

    def changes(self) -> Iterator[Change]:
        for rows in self._pages(f"SELECT {CHANGE_COLUMNS} FROM change_request ORDER BY number"):
            cis: dict[str, list[str]] = {}
            for change_id, ci_id in self._conn.execute(
                f"SELECT change_id, ci_id FROM change_ci WHERE change_id IN {IN} "
                "ORDER BY change_id, position",
                (ids_json(r[0] for r in rows),),
            ):
                cis.setdefault(change_id, []).append(ci_id)
            yield from (change_of(r, cis.get(r[0], [])) for r in rows)

    def freeze_windows(self) -> Iterator[FreezeWindow]:
        for rows in self._pages(f"SELECT {FREEZE_COLUMNS} FROM freeze_window ORDER BY id"):
            yield from (freeze_of(r) for r in rows)

    def links(self) -> Iterator[TicketLink]:
        for rows in self._pages(
            "SELECT source_id, kind, target_id, created_at, created_by FROM ticket_link "
            "ORDER BY source_id, kind, target_id"
        ):
            yield from (TicketLink(r[0], r[2], LinkKind(r[1]), from_us(r[3]), r[4]) for r in rows)

    def worklog(self) -> Iterator[WorklogEntry]:
        for rows in self._pages(
            "SELECT seq, ticket_id, at, actor, kind, text, field, old_value, new_value "
            "FROM worklog ORDER BY seq"
        ):
            yield from (
                WorklogEntry(
                    ticket_id=r[1],
                    at=from_us(r[2]),
                    actor=r[3],
                    kind=WorklogKind(r[4]),
                    text=r[5],
                    seq=r[0],
                    field=r[6],
                    old=r[7],
                    new=r[8],
                )
                for r in rows
            )
