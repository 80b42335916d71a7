"""Export and restore of the SQLite directory (``DirectoryStore.export_records`` and
``restore_records``): every record of the people and catalogue tables with the time it
was last saved, read in one snapshot, and written back as it was into an empty directory.

The rows are read back into records by the same builders ``directory.py`` loads with (a
row that no longer reads as a valid record is a ``StoreError`` naming it), each section
ordered by its key, so that an export of one store equals that of its restored copy.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from servicegraph.cmdb.errors import CmdbError, StoreError
from servicegraph.storage.sqlite.file import from_us, to_us
from servicegraph.ticketing.ports import DirectoryRecords, Stamped

R = TypeVar("R")

TABLES = (
    "desk_agent",
    "desk_group",
    "desk_group_member",
    "desk_organisation",
    "desk_contact",
    "desk_service",
    "desk_category",
)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _stamped(
    conn: sqlite3.Connection, sql: str, table: str, build: Callable[[tuple[Any, ...]], R]
) -> tuple[Stamped[R], ...]:
    """The records of a query's rows (key first, ``updated_at`` last)."""
    found = []
    for row in conn.execute(sql):
        try:
            found.append(Stamped(build(row[:-1]), from_us(row[-1])))
        except (CmdbError, ValueError, TypeError, KeyError) as exc:
            raise StoreError(f"the stored {table} row '{row[0]}' is not valid: {exc}") from exc
    return tuple(found)


def read_records(
    conn: sqlite3.Connection, version: int, builders: dict[str, Callable[..., Any]]
) -> DirectoryRecords:
    """Every record, inside the caller's read transaction. ``builders`` are the loaders'
    row readers of ``directory.py`` (``agent`` and ``group`` take the membership too)."""
    members: dict[str, list[str]] = {}
    groups_of: dict[str, list[str]] = {}
    for group_id, login in conn.execute(
        "SELECT m.group_id, m.login FROM desk_group_member m "
        "JOIN desk_group g ON g.id = m.group_id "
        "JOIN desk_agent a ON a.login = m.login ORDER BY m.group_id, m.login"
    ):
        members.setdefault(group_id, []).append(login)
        groups_of.setdefault(login, []).append(group_id)
    agent, group = builders["agent"], builders["group"]
    return DirectoryRecords(
        agents=_stamped(
            conn,
            "SELECT login, name, email, phone, roles, active, updated_at FROM desk_agent "
            "ORDER BY login",
            "desk_agent",
            lambda r: agent(r, groups_of),
        ),
        groups=_stamped(
            conn,
            "SELECT id, name, email, manager, description, updated_at FROM desk_group ORDER BY id",
            "desk_group",
            lambda r: group(r, members),
        ),
        organisations=_stamped(
            conn,
            "SELECT id, name, domains, notes, updated_at FROM desk_organisation ORDER BY id",
            "desk_organisation",
            builders["organisation"],
        ),
        contacts=_stamped(
            conn,
            "SELECT id, name, email, organisation, phone, vip, active, updated_at "
            "FROM desk_contact ORDER BY id",
            "desk_contact",
            builders["contact"],
        ),
        services=_stamped(
            conn,
            "SELECT id, name, ci_id, owner_group, request_types, defaults, description, "
            "active, updated_at FROM desk_service ORDER BY id",
            "desk_service",
            builders["service"],
        ),
        categories=_stamped(
            conn,
            "SELECT path, name, owner_group, defaults, types, updated_at FROM desk_category "
            "ORDER BY path",
            "desk_category",
            builders["category"],
        ),
        version=version,
    )


def holds_records(conn: sqlite3.Connection) -> bool:
    return any(
        conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0] for table in TABLES
    )


def write_records(
    conn: sqlite3.Connection, records: DirectoryRecords, defaults_json: Callable[[Any], str]
) -> None:
    """Insert every record with its own ``updated_at`` (all rows are made first: a naive
    time raises ValueError before anything is written)."""
    agents = [
        (a.login, a.name, a.email, a.phone, _json([r.value for r in a.roles]), int(a.active), t)
        for a, t in _unstamped(records.agents)
    ]
    groups = [
        (g.id, g.name, g.email, g.manager, g.description, t) for g, t in _unstamped(records.groups)
    ]
    members = {(g, s.record.login) for s in records.agents for g in s.record.groups}
    members |= {(s.record.id, m) for s in records.groups for m in s.record.members}
    organisations = [
        (o.id, o.name, _json(list(o.domains)), o.notes, t)
        for o, t in _unstamped(records.organisations)
    ]
    contacts = [
        (c.id, c.name, c.email, c.organisation, c.phone, int(c.vip), int(c.active), t)
        for c, t in _unstamped(records.contacts)
    ]
    services = [
        (
            v.id,
            v.name,
            v.ci_id,
            v.owner_group,
            _json([k.value for k in v.request_types]),
            defaults_json(v.defaults),
            v.description,
            int(v.active),
            t,
        )
        for v, t in _unstamped(records.services)
    ]
    categories = [
        (
            c.path,
            c.name,
            c.owner_group,
            defaults_json(c.defaults),
            _json([k.value for k in c.types]),
            t,
        )
        for c, t in _unstamped(records.categories)
    ]
    conn.executemany(
        "INSERT INTO desk_agent (login, name, email, phone, roles, active, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        agents,
    )
    conn.executemany(
        "INSERT INTO desk_group (id, name, email, manager, description, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        groups,
    )
    conn.executemany(
        "INSERT INTO desk_group_member (group_id, login) VALUES (?, ?)", sorted(members)
    )
    conn.executemany(
        "INSERT INTO desk_organisation (id, name, domains, notes, updated_at) "
        "VALUES (?, ?, ?, ?, ?)",
        organisations,
    )
    conn.executemany(
        "INSERT INTO desk_contact (id, name, email, organisation, phone, vip, active, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        contacts,
    )
    conn.executemany(
        "INSERT INTO desk_service (id, name, ci_id, owner_group, request_types, defaults, "
        "description, active, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        services,
    )
    conn.executemany(
        "INSERT INTO desk_category (path, name, owner_group, defaults, types, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        categories,
    )


def _unstamped(stamped: tuple[Stamped[R], ...]) -> list[tuple[R, int]]:
    """Each record and its time as stored (microseconds)."""
    return [(s.record, to_us(s.updated_at)) for s in stamped]
