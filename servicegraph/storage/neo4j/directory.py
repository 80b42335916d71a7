"""Neo4j adapter of the directory port (``servicegraph.ticketing.ports.DirectoryStore``),
mirroring ``storage.sqlite.directory`` and ``directory_dump``: people and the service
catalogue as nodes in the graph's database (``directory_cypher`` lists them), so every
process on every host sees one directory.

Each save is one transaction holding the desk lock (``schema.DESK_LOCK``), which makes
the stale-version check and the writes one step, and advances the
``directory_version`` counter with the rows. The properties are SQLite's columns with
SQLite's encodings, and rows are read back by SQLite's row readers (a row that no longer
reads as a valid record is a ``StoreError`` naming it).

Loads are consistent without a lock: Neo4j runs read committed, so a load reads the
version, every row, then the version again, and reads again when a save committed in
between (a seqlock: loads are rare, once per version, and never wait for ticket work).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from neo4j import ManagedTransaction, Transaction

from servicegraph.cmdb.errors import CmdbError, StoreError, StoreUnavailable, ValidationFailed
from servicegraph.storage.neo4j import cypher, directory_cypher, schema
from servicegraph.storage.neo4j.records import Tx, batches, run
from servicegraph.storage.sqlite.directory import DIRECTORY_ROWS, defaults_json, json_text
from servicegraph.storage.sqlite.file import from_us, to_us
from servicegraph.ticketing.catalogue import Catalogue, Category, Service
from servicegraph.ticketing.people import Agent, Contact, Directory, Group, Organisation
from servicegraph.ticketing.ports import DirectoryRecords, PeopleBatch, Stamped

if TYPE_CHECKING:  # the store imports the schema, which imports the catalogues
    from servicegraph.storage.neo4j.store import Neo4jGraphStore

T = TypeVar("T")
R = TypeVar("R")
_LOAD_TRIES = 20  # loads retried when a save committed meanwhile

# the tables of SQLite's row readers (``storage.sqlite.directory.DIRECTORY_ROWS``), for the errors
_TABLE = {
    "DeskAgent": "desk_agent",
    "DeskGroup": "desk_group",
    "DeskOrganisation": "desk_organisation",
    "DeskContact": "desk_contact",
    "DeskService": "desk_service",
    "DeskCategory": "desk_category",
}


# -- rows (SQLite's columns, SQLite's encodings) -----------------------------------------------


def _agent_row(a: Agent, stamp: int) -> dict[str, Any]:
    roles = json_text([r.value for r in a.roles])
    return {"login": a.login, "name": a.name, "email": a.email, "phone": a.phone,
            "roles": roles, "active": int(a.active), "updated_at": stamp}  # fmt: skip


def _group_row(g: Group, stamp: int) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "email": g.email, "manager": g.manager,
            "description": g.description, "updated_at": stamp}  # fmt: skip


def _organisation_row(o: Organisation, stamp: int) -> dict[str, Any]:
    return {"id": o.id, "name": o.name, "domains": json_text(list(o.domains)), "notes": o.notes,
            "updated_at": stamp}  # fmt: skip


def _contact_row(c: Contact, stamp: int) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "email": c.email, "organisation": c.organisation,
            "phone": c.phone, "vip": int(c.vip), "active": int(c.active),
            "updated_at": stamp}  # fmt: skip


def _service_row(s: Service, stamp: int) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "ci_id": s.ci_id, "owner_group": s.owner_group,
            "request_types": json_text([t.value for t in s.request_types]),
            "defaults": defaults_json(s.defaults), "description": s.description,
            "active": int(s.active), "updated_at": stamp}  # fmt: skip


def _category_row(c: Category, stamp: int) -> dict[str, Any]:
    return {"path": c.path, "name": c.name, "owner_group": c.owner_group,
            "defaults": defaults_json(c.defaults), "types": json_text([t.value for t in c.types]),
            "updated_at": stamp}  # fmt: skip


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """A node holds no null property: a missing one reads back as null."""
    return {k: v for k, v in row.items() if v is not None}


# -- reading ----------------------------------------------------------------------------------


def _version(tx: Tx) -> int:
    record = run(tx, cypher.READ_SEQUENCE, name=directory_cypher.SEQUENCE_VERSION).single()
    return 0 if record is None else int(record["value"])


def _rows(tx: Tx, label: str) -> list[tuple[Any, ...]]:
    _, columns = directory_cypher.TABLES[label]
    names = (*columns, "updated_at")
    return [tuple(r[c] for c in names) for r in run(tx, directory_cypher.ALL[label])]


def _build(
    label: str, rows: list[tuple[Any, ...]], build: Callable[[tuple[Any, ...]], R]
) -> list[R]:
    found = []
    for row in rows:
        try:
            found.append(build(row))
        except (CmdbError, ValueError, TypeError, KeyError) as exc:
            raise StoreError(
                f"the stored {_TABLE[label]} row '{row[0]}' is not valid: {exc}"
            ) from exc
    return found


class _Raw:
    """Every directory row as read in one consistent moment (see ``_consistent``)."""

    def __init__(self, tx: Tx, labels: Sequence[str], members: bool) -> None:
        self.rows = {label: _rows(tx, label) for label in labels}
        self.members: dict[str, list[str]] = {}
        self.groups_of: dict[str, list[str]] = {}
        if members:
            for r in run(tx, directory_cypher.MEMBERS):
                self.members.setdefault(r["group_id"], []).append(r["login"])
                self.groups_of.setdefault(r["login"], []).append(r["group_id"])

    def records(self, label: str) -> list[tuple[Any, dt.datetime | None]]:
        return [
            (row[:-1], None if row[-1] is None else from_us(row[-1])) for row in self.rows[label]
        ]

    def built(self, label: str, name: str) -> list[Any]:
        build = DIRECTORY_ROWS[name]
        if name == "agent":
            return _build(
                label, [r[:-1] for r in self.rows[label]], lambda r: build(r, self.groups_of)
            )
        if name == "group":
            return _build(
                label, [r[:-1] for r in self.rows[label]], lambda r: build(r, self.members)
            )
        return _build(label, [r[:-1] for r in self.rows[label]], build)

    def stamped(self, label: str, name: str) -> tuple[Stamped[Any], ...]:
        built = self.built(label, name)
        return tuple(
            Stamped(record, from_us(row[-1]))
            for record, row in zip(built, self.rows[label], strict=True)
        )


_PEOPLE = ("DeskAgent", "DeskGroup", "DeskOrganisation", "DeskContact")
_CATALOGUE = ("DeskService", "DeskCategory")


class Neo4jDirectoryStore:
    """``ticketing.ports.DirectoryStore`` over a ``Neo4jGraphStore``'s database."""

    def __init__(self, graph: Neo4jGraphStore) -> None:
        self._graph = graph

    def _locked(self, purpose: str, work: Callable[[Transaction], T]) -> T:
        return self._graph.run_locked(purpose, schema.DESK_LOCK, work)

    def _consistent(self, what: str, labels: Sequence[str], members: bool) -> tuple[int, _Raw]:
        """The rows of ``labels`` as of one version: read between two reads of the
        version that agree (a save advances it in the transaction of its rows)."""

        def work(tx: ManagedTransaction) -> tuple[int, int, _Raw]:
            before = _version(tx)
            raw = _Raw(tx, labels, members)
            return before, _version(tx), raw

        for _ in range(_LOAD_TRIES):
            before, after, raw = self._graph.read(what, work)
            if before == after:
                return after, raw
        raise StoreUnavailable(f"{what}: the directory kept changing; try again")

    def version(self) -> int:
        return self._graph.read("reading the directory version", _version)

    def load_directory(self) -> Directory:
        _, raw = self._consistent("reading the directory", _PEOPLE, True)
        agents = raw.built("DeskAgent", "agent")
        groups = raw.built("DeskGroup", "group")
        organisations = raw.built("DeskOrganisation", "organisation")
        contacts = raw.built("DeskContact", "contact")
        # Directory() rather than Directory.build(), as SQLite's: the rows were checked
        # when saved
        return Directory(
            agents={a.login: a for a in agents},
            groups={g.id: g for g in groups},
            organisations={o.id: o for o in organisations},
            contacts={c.id: c for c in contacts},
        )

    def load_catalogue(self) -> Catalogue:
        _, raw = self._consistent("reading the service catalogue", _CATALOGUE, False)
        services = raw.built("DeskService", "service")
        categories = raw.built("DeskCategory", "category")
        try:
            return Catalogue.build(services, categories)
        except CmdbError as exc:
            raise StoreError(f"the stored service catalogue is not valid: {exc}") from exc

    # -- writes -------------------------------------------------------------------------------

    def _upsert(self, tx: Transaction, label: str, rows: list[dict[str, Any]]) -> None:
        for batch in batches(rows, self._graph.batch_size):
            run(tx, directory_cypher.UPSERT[label], rows=[_clean(r) for r in batch]).consume()

    def _members(self, tx: Transaction, pairs: list[dict[str, str]]) -> None:
        for batch in batches(pairs, self._graph.batch_size):
            run(tx, directory_cypher.ADD_MEMBERS, rows=list(batch)).consume()

    def _advance(self, tx: Transaction) -> int:
        record = run(
            tx, cypher.ADVANCE_SEQUENCE, name=directory_cypher.SEQUENCE_VERSION, count=1
        ).single()
        if record is None:
            raise StoreUnavailable("the Neo4j database has no directory counter; run migrations")
        return int(record["value"])

    def save_people(
        self, batch: PeopleBatch, at: dt.datetime, *, expected: int | None = None
    ) -> int | None:
        stamp = to_us(at)  # a naive time fails here, before the transaction
        agents = [_agent_row(a, stamp) for a in batch.agents]
        groups = [_group_row(g, stamp) for g in batch.groups]
        organisations = [_organisation_row(o, stamp) for o in batch.organisations]
        contacts = [_contact_row(c, stamp) for c in batch.contacts]
        emails = sorted({c.email.lower() for c in batch.contacts if c.email})
        size = self._graph.batch_size

        def work(tx: Transaction) -> int | None:
            if expected is not None and _version(tx) != expected:
                return None
            self._upsert(tx, "DeskAgent", agents)
            for some in batches([a.login for a in batch.agents], size):
                run(tx, directory_cypher.DROP_MEMBERS_OF_AGENTS, logins=list(some)).consume()
            self._members(
                tx, [{"group_id": g, "login": a.login} for a in batch.agents for g in a.groups]
            )
            self._upsert(tx, "DeskGroup", groups)
            for some in batches([g.id for g in batch.groups], size):
                run(tx, directory_cypher.DROP_MEMBERS_OF_GROUPS, group_ids=list(some)).consume()
            self._members(
                tx, [{"group_id": g.id, "login": m} for g in batch.groups for m in g.members]
            )
            self._upsert(tx, "DeskOrganisation", organisations)
            # the whole batch is written before emails are checked: addresses may change
            # hands within it
            self._upsert(tx, "DeskContact", contacts)
            for some in batches(emails, size):
                taken = run(tx, directory_cypher.DUPLICATE_EMAIL, emails=list(some)).single()
                if taken is not None:
                    refused = ValidationFailed(
                        f"the email {taken['email']} belongs to another contact", field="email"
                    )
                    raise StoreError(f"saving people: {refused}") from refused
            return self._advance(tx)

        return self._locked("saving people", work)

    def save_catalogue(
        self,
        services: Sequence[Service],
        categories: Sequence[Category],
        at: dt.datetime,
        *,
        expected: int | None = None,
    ) -> int | None:
        stamp = to_us(at)
        service_rows = [_service_row(s, stamp) for s in services]
        category_rows = [_category_row(c, stamp) for c in categories]

        def work(tx: Transaction) -> int | None:
            if expected is not None and _version(tx) != expected:
                return None
            self._upsert(tx, "DeskService", service_rows)
            self._upsert(tx, "DeskCategory", category_rows)
            return self._advance(tx)

        return self._locked("saving the service catalogue", work)

    # -- export and restore (servicegraph export / import --from-export) ----------------------

    def export_records(self) -> DirectoryRecords:
        version, raw = self._consistent(
            "reading the directory for an export", (*_PEOPLE, *_CATALOGUE), True
        )
        return DirectoryRecords(
            agents=raw.stamped("DeskAgent", "agent"),
            groups=raw.stamped("DeskGroup", "group"),
            organisations=raw.stamped("DeskOrganisation", "organisation"),
            contacts=raw.stamped("DeskContact", "contact"),
            services=raw.stamped("DeskService", "service"),
            categories=raw.stamped("DeskCategory", "category"),
            version=version,
        )

    def restore_records(self, records: DirectoryRecords) -> int:
        # every row is made first: a naive time raises ValueError before anything is written
        rows: dict[str, list[dict[str, Any]]] = {
            "DeskAgent": [_agent_row(s.record, to_us(s.updated_at)) for s in records.agents],
            "DeskGroup": [_group_row(s.record, to_us(s.updated_at)) for s in records.groups],
            "DeskOrganisation": [
                _organisation_row(s.record, to_us(s.updated_at)) for s in records.organisations
            ],
            "DeskContact": [_contact_row(s.record, to_us(s.updated_at)) for s in records.contacts],
            "DeskService": [_service_row(s.record, to_us(s.updated_at)) for s in records.services],
            "DeskCategory": [
                _category_row(s.record, to_us(s.updated_at)) for s in records.categories
            ],
        }
        pairs = {(g, s.record.login) for s in records.agents for g in s.record.groups}
        pairs |= {(s.record.id, m) for s in records.groups for m in s.record.members}
        members = [{"group_id": g, "login": login} for g, login in sorted(pairs)]

        def work(tx: Transaction) -> int:
            held = run(tx, directory_cypher.HOLDS_RECORDS).single()
            if held is not None and held["held"]:
                raise StoreError(
                    "the directory is not empty; an export is restored into a new, empty store"
                )
            for label, some in rows.items():
                self._upsert(tx, label, some)
            self._members(tx, members)
            version = self._advance(tx)
            if records.version > version:
                raised = run(
                    tx,
                    cypher.RAISE_SEQUENCE,
                    name=directory_cypher.SEQUENCE_VERSION,
                    value=records.version,
                ).single()
                version = records.version if raised is None else int(raised["value"])
            return version

        return self._locked("restoring the directory", work)
