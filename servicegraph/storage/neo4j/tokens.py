"""Neo4j adapter of the API token port (``servicegraph.access.ports.TokenStore``),
mirroring ``storage.sqlite.tokens``.

Tokens are ``(:ApiToken)`` nodes in the graph's database, so every process that serves the
API or the webhooks, on any host, sees a token the moment it is added or revoked. The
properties are SQLite's columns with SQLite's encodings, and a record is read back by
SQLite's row codec, so both adapters store and read the same values.

Writes hold the desk lock (``schema.DESK_LOCK``): Neo4j runs read committed, and the lock
is what makes "is the name free? then add" one step across processes, as ``BEGIN
IMMEDIATE`` makes it in SQLite. The uniqueness constraint on ``name`` stands behind it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from neo4j import ManagedTransaction, Transaction
from neo4j.exceptions import ConstraintError

from servicegraph.access.model import ApiToken
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.storage.neo4j import schema, token_cypher
from servicegraph.storage.neo4j.records import run
from servicegraph.storage.sqlite.file import to_us
from servicegraph.storage.sqlite.tokens import token_of

if TYPE_CHECKING:  # the store imports the schema, which imports the catalogues
    from servicegraph.storage.neo4j.store import Neo4jGraphStore

T = TypeVar("T")


def _row(token: ApiToken) -> dict[str, Any]:
    """The node's properties: the ``api_token`` row (an active token has no
    ``revoked_at``, a token without a holder no ``holder``)."""
    row = {
        "id": token.id,
        "name": token.name,
        "role": token.role.value,
        "secret_sha256": token.secret_sha256,
        "created_at": to_us(token.created_at),
        "created_by": token.created_by,
        "revoked_at": None if token.revoked_at is None else to_us(token.revoked_at),
        "holder": token.holder,
    }
    return {k: v for k, v in row.items() if v is not None}


def _token(record: Any) -> ApiToken:
    return token_of(tuple(record[c] for c in token_cypher.COLUMNS))


def _name_used(name: str) -> ValidationFailed:
    return ValidationFailed(f"a token named '{name}' exists; choose another name", field="name")


class Neo4jTokenStore:
    """``access.ports.TokenStore`` over a ``Neo4jGraphStore``'s database."""

    def __init__(self, graph: Neo4jGraphStore) -> None:
        self._graph = graph

    def _locked(self, purpose: str, work: Callable[[Transaction], T]) -> T:
        return self._graph.run_locked(purpose, schema.DESK_LOCK, work)

    def add_token(self, token: ApiToken) -> None:
        row = _row(token)  # a naive time is refused here, before anything is written

        def work(tx: Transaction) -> None:
            if run(tx, token_cypher.NAME_USED, name=token.name).single() is not None:
                raise _name_used(token.name)
            try:
                run(tx, token_cypher.ADD, row=row).consume()
            except ConstraintError as exc:  # a writer that did not take the lock
                if "`name`" in (exc.message or ""):
                    raise _name_used(token.name) from exc
                raise

        self._locked("storing an API token", work)

    def get_token(self, token_id: str) -> ApiToken | None:
        def work(tx: ManagedTransaction) -> ApiToken | None:
            record = run(tx, token_cypher.BY_ID, id=token_id).single()
            return None if record is None else _token(record)

        return self._graph.read("reading an API token", work)

    def token_named(self, name: str) -> ApiToken | None:
        def work(tx: ManagedTransaction) -> ApiToken | None:
            record = run(tx, token_cypher.BY_NAME, name=name).single()
            return None if record is None else _token(record)

        return self._graph.read("reading an API token", work)

    def list_tokens(self) -> list[ApiToken]:
        def work(tx: ManagedTransaction) -> list[ApiToken]:
            return [_token(r) for r in run(tx, token_cypher.ALL)]

        return self._graph.read("listing API tokens", work)

    def revoke_token(self, token_id: str, at: dt.datetime) -> bool:
        revoked = to_us(at)

        def work(tx: Transaction) -> bool:
            return run(tx, token_cypher.REVOKE, id=token_id, at=revoked).single() is not None

        return self._locked("revoking an API token", work)
