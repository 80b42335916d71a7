"""SQLite adapter of the directory port (``servicegraph.ticketing.ports.DirectoryStore``):
people and the service catalogue in the tables of migration 9 (``desk_agent``,
``desk_group``, ``desk_group_member``, ``desk_organisation``, ``desk_contact``,
``desk_service``, ``desk_category``).

They live in the graph's file with tickets (with Neo4j, ``storage/neo4j/directory.py``),
so every process of a deployment sees one directory. ``version`` is a row of
``meta`` (``directory_version``) that each save advances in its own transaction: a reader
in another process that sees the new version reads the new rows too.

Lists (roles, domains, request types) and defaults are JSON text. Loads read in one
snapshot (``BEGIN`` ... ``COMMIT`` on the thread's connection), so a save committed halfway
through a load is not seen in part. A stored row that no longer reads as a valid record
(edited by hand, written by a newer release) raises ``StoreError`` naming the row instead
of failing later in a ticket.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from servicegraph.cmdb.errors import CmdbError, StoreError
from servicegraph.storage.sqlite import directory_dump
from servicegraph.storage.sqlite.file import _rollback, to_us
from servicegraph.storage.sqlite.store import SqliteGraphStore
from servicegraph.ticketing.catalogue import Catalogue, Category, Defaults, Service
from servicegraph.ticketing.people import Agent, Contact, Directory, Group, Organisation
from servicegraph.ticketing.ports import DirectoryRecords, PeopleBatch

VERSION_KEY = "directory_version"
T = TypeVar("T")


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def defaults_json(d: Defaults) -> str:
    return json_text(
        {
            "group": d.group,
            "priority": d.priority,
            "impact": d.impact,
            "urgency": d.urgency,
            "custom_fields": dict(d.custom_fields),
        }
    )


def _defaults(text: str) -> Defaults:
    return Defaults(**json.loads(text))


def _records(
    conn: sqlite3.Connection, sql: str, table: str, build: Callable[[tuple[Any, ...]], T]
) -> list[T]:
    """The records of a query's rows (key first); a row that the record's own checks
    refuse is a damaged store, named by its table and key."""
    found = []
    for row in conn.execute(sql):
        try:
            found.append(build(row))
        except (CmdbError, ValueError, TypeError, KeyError) as exc:
            raise StoreError(f"the stored {table} row '{row[0]}' is not valid: {exc}") from exc
    return found


class SqliteDirectoryStore:
    def __init__(self, file: SqliteGraphStore) -> None:
        self._file = file

    # -- reads ------------------------------------------------------------------------------

    @contextmanager
    def _snapshot(self, what: str) -> Iterator[sqlite3.Connection]:
        """One read transaction: every SELECT inside sees the same committed state."""
        with self._file.errors(what):
            conn = self._file._read()
            nested = conn.in_transaction  # inside a unit of this thread: already one view
            if not nested:
                conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if not nested:
                    _rollback(conn)  # nothing was written: ending the read is all

    def version(self) -> int:
        with self._file.errors("reading the directory version"):
            row = (
                self._file._read()
                .execute("SELECT value FROM meta WHERE key = ?", (VERSION_KEY,))
                .fetchone()
            )
        return 0 if row is None else int(row[0])

    def load_directory(self) -> Directory:
        with self._snapshot("reading the directory") as conn:
            members: dict[str, list[str]] = {}
            groups_of: dict[str, list[str]] = {}
            # only pairs whose both ends exist: the store keeps no foreign keys
            for group_id, login in conn.execute(
                "SELECT m.group_id, m.login FROM desk_group_member m "
                "JOIN desk_group g ON g.id = m.group_id "
                "JOIN desk_agent a ON a.login = m.login ORDER BY m.group_id, m.login"
            ):
                members.setdefault(group_id, []).append(login)
                groups_of.setdefault(login, []).append(group_id)
            agents = _records(
                conn,
                "SELECT login, name, email, phone, roles, active FROM desk_agent",
                "desk_agent",
                lambda r: _agent(r, groups_of),
            )
            groups = _records(
                conn,
                "SELECT id, name, email, manager, description FROM desk_group",
                "desk_group",
                lambda r: _group(r, members),
            )
            organisations = _records(
                conn,
                "SELECT id, name, domains, notes FROM desk_organisation",
                "desk_organisation",
                _organisation,
            )
            contacts = _records(
                conn,
                "SELECT id, name, email, organisation, phone, vip, active FROM desk_contact",
                "desk_contact",
                _contact,
            )
        # Directory() rather than Directory.build(): the rows were checked when saved, and
        # a load must not refuse the whole desk over one reference gone stale by hand
        return Directory(
            agents={a.login: a for a in agents},
            groups={g.id: g for g in groups},
            organisations={o.id: o for o in organisations},
            contacts={c.id: c for c in contacts},
        )

    def load_catalogue(self) -> Catalogue:
        with self._snapshot("reading the service catalogue") as conn:
            services = _records(
                conn,
                "SELECT id, name, ci_id, owner_group, request_types, defaults, description, "
                "active FROM desk_service ORDER BY id",
                "desk_service",
                _service,
            )
            categories = _records(
                conn,
                "SELECT path, name, owner_group, defaults, types FROM desk_category ORDER BY path",
                "desk_category",
                _category,
            )
        try:
            return Catalogue.build(services, categories)
        except CmdbError as exc:
            raise StoreError(f"the stored service catalogue is not valid: {exc}") from exc

    # -- writes -----------------------------------------------------------------------------

    def _stale(self, conn: sqlite3.Connection, expected: int | None) -> bool:
        """Whether the caller computed its batch from another version than the stored one
        (read inside the write transaction, so nobody can save in between)."""
        if expected is None:
            return False
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (VERSION_KEY,)).fetchone()
        return (0 if row is None else int(row[0])) != expected

    def _advance(self, conn: sqlite3.Connection) -> int:
        row = conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, 1) "
            "ON CONFLICT (key) DO UPDATE SET value = value + 1 RETURNING value",
            (VERSION_KEY,),
        ).fetchone()
        return int(row[0])

    def save_people(
        self, batch: PeopleBatch, at: dt.datetime, *, expected: int | None = None
    ) -> int | None:
        stamp = to_us(at)  # a naive time fails here, before the transaction
        with self._file.errors("saving people"), self._file._transaction() as conn:
            if self._stale(conn, expected):
                return None
            _save_agents(conn, batch.agents, stamp)
            _save_groups(conn, batch.groups, stamp)
            conn.executemany(
                "INSERT INTO desk_organisation (id, name, domains, notes, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
                "domains = excluded.domains, notes = excluded.notes, "
                "updated_at = excluded.updated_at",
                [
                    (o.id, o.name, json_text(list(o.domains)), o.notes, stamp)
                    for o in batch.organisations
                ],
            )
            _save_contacts(conn, batch.contacts, stamp)
            return self._advance(conn)

    def save_catalogue(
        self,
        services: Sequence[Service],
        categories: Sequence[Category],
        at: dt.datetime,
        *,
        expected: int | None = None,
    ) -> int | None:
        stamp = to_us(at)
        with self._file.errors("saving the service catalogue"), self._file._transaction() as conn:
            if self._stale(conn, expected):
                return None
            conn.executemany(
                "INSERT INTO desk_service (id, name, ci_id, owner_group, request_types, "
                "defaults, description, active, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET name = excluded.name, ci_id = excluded.ci_id, "
                "owner_group = excluded.owner_group, request_types = excluded.request_types, "
                "defaults = excluded.defaults, description = excluded.description, "
                "active = excluded.active, updated_at = excluded.updated_at",
                [
                    (
                        s.id,
                        s.name,
                        s.ci_id,
                        s.owner_group,
                        json_text([t.value for t in s.request_types]),
                        defaults_json(s.defaults),
                        s.description,
                        int(s.active),
                        stamp,
                    )
                    for s in services
                ],
            )
            conn.executemany(
                "INSERT INTO desk_category (path, name, owner_group, defaults, types, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
                "name = excluded.name, owner_group = excluded.owner_group, "
                "defaults = excluded.defaults, types = excluded.types, "
                "updated_at = excluded.updated_at",
                [
                    (
                        c.path,
                        c.name,
                        c.owner_group,
                        defaults_json(c.defaults),
                        json_text([t.value for t in c.types]),
                        stamp,
                    )
                    for c in categories
                ],
            )
            return self._advance(conn)

    # -- export and restore (servicegraph export / import --from-export): directory_dump.py --

    def export_records(self) -> DirectoryRecords:
        with self._snapshot("reading the directory for an export") as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (VERSION_KEY,)).fetchone()
            return directory_dump.read_records(
                conn, 0 if row is None else int(row[0]), DIRECTORY_ROWS
            )

    def restore_records(self, records: DirectoryRecords) -> int:
        with self._file.errors("restoring the directory"), self._file._transaction() as conn:
            if directory_dump.holds_records(conn):
                raise StoreError(
                    "the directory is not empty; an export is restored into a new, empty store"
                )
            directory_dump.write_records(conn, records, defaults_json)
            version = self._advance(conn)
            if records.version > version:
                conn.execute(
                    "UPDATE meta SET value = ? WHERE key = ?", (records.version, VERSION_KEY)
                )
                version = records.version
            return version


def _save_agents(conn: sqlite3.Connection, agents: Sequence[Agent], stamp: int) -> None:
    conn.executemany(
        "INSERT INTO desk_agent (login, name, email, phone, roles, active, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (login) DO UPDATE SET name = excluded.name, "
        "email = excluded.email, phone = excluded.phone, roles = excluded.roles, "
        "active = excluded.active, updated_at = excluded.updated_at",
        [
            (
                a.login,
                a.name,
                a.email,
                a.phone,
                json_text([r.value for r in a.roles]),
                int(a.active),
                stamp,
            )
            for a in agents
        ],
    )
    conn.executemany("DELETE FROM desk_group_member WHERE login = ?", [(a.login,) for a in agents])
    conn.executemany(
        "INSERT OR IGNORE INTO desk_group_member (group_id, login) VALUES (?, ?)",
        [(g, a.login) for a in agents for g in a.groups],
    )


def _save_groups(conn: sqlite3.Connection, groups: Sequence[Group], stamp: int) -> None:
    conn.executemany(
        "INSERT INTO desk_group (id, name, email, manager, description, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
        "email = excluded.email, manager = excluded.manager, "
        "description = excluded.description, updated_at = excluded.updated_at",
        [(g.id, g.name, g.email, g.manager, g.description, stamp) for g in groups],
    )
    conn.executemany("DELETE FROM desk_group_member WHERE group_id = ?", [(g.id,) for g in groups])
    conn.executemany(
        "INSERT OR IGNORE INTO desk_group_member (group_id, login) VALUES (?, ?)",
        [(g.id, m) for g in groups for m in g.members],
    )


def _save_contacts(conn: sqlite3.Connection, contacts: Sequence[Contact], stamp: int) -> None:
    # A contact's email is unique (desk_contact_email): a batch that moves an address from
    # one contact to another would trip over the old owner's row in the middle of the
    # batch, so the batch's addresses are cleared first and written back with their rows.
    conn.executemany(
        "UPDATE desk_contact SET email = NULL WHERE id = ?", [(c.id,) for c in contacts]
    )
    conn.executemany(
        "INSERT INTO desk_contact (id, name, email, organisation, phone, vip, active, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
        "name = excluded.name, email = excluded.email, organisation = excluded.organisation, "
        "phone = excluded.phone, vip = excluded.vip, active = excluded.active, "
        "updated_at = excluded.updated_at",
        [
            (c.id, c.name, c.email, c.organisation, c.phone, int(c.vip), int(c.active), stamp)
            for c in contacts
        ],
    )


def _agent(r: tuple[Any, ...], groups_of: dict[str, list[str]]) -> Agent:
    return Agent(
        login=r[0],
        name=r[1],
        email=r[2],
        phone=r[3],
        roles=tuple(json.loads(r[4])),
        active=bool(r[5]),
        groups=tuple(groups_of.get(r[0], ())),
    )


def _group(r: tuple[Any, ...], members: dict[str, list[str]]) -> Group:
    return Group(
        id=r[0],
        name=r[1],
        email=r[2],
        manager=r[3],
        description=r[4],
        members=tuple(members.get(r[0], ())),
    )


def _organisation(r: tuple[Any, ...]) -> Organisation:
    return Organisation(id=r[0], name=r[1], domains=tuple(json.loads(r[2])), notes=r[3])


def _contact(r: tuple[Any, ...]) -> Contact:
    return Contact(
        id=r[0],
        name=r[1],
        email=r[2],
        organisation=r[3],
        phone=r[4],
        vip=bool(r[5]),
        active=bool(r[6]),
    )


def _service(r: tuple[Any, ...]) -> Service:
    return Service(
        id=r[0],
        name=r[1],
        ci_id=r[2],
        owner_group=r[3],
        request_types=tuple(json.loads(r[4])),
        defaults=_defaults(r[5]),
        description=r[6],
        active=bool(r[7]),
    )


def _category(r: tuple[Any, ...]) -> Category:
    return Category(
        path=r[0],
        name=r[1],
        owner_group=r[2],
        defaults=_defaults(r[3]),
        types=tuple(json.loads(r[4])),
    )


# the row readers, for directory_dump's export (which reads the same columns plus the time)
# and for the Neo4j adapter's, which reads its nodes into the same rows
DIRECTORY_ROWS: dict[str, Callable[..., Any]] = {
    "agent": _agent,
    "group": _group,
    "organisation": _organisation,
    "contact": _contact,
    "service": _service,
    "category": _category,
}
