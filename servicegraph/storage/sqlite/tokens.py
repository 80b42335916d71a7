"""SQLite adapter of the API token port (``servicegraph.access.ports``).

Tokens live in the graph's file, beside incidents: every process that serves the API or
the webhooks shares it (with Neo4j, ``storage/neo4j/tokens.py`` keeps them there)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from servicegraph.access.model import ApiToken, Role
from servicegraph.cmdb.errors import StoreError, ValidationFailed
from servicegraph.storage.sqlite.file import from_us, to_us
from servicegraph.storage.sqlite.store import SqliteGraphStore

_COLUMNS = "id, name, role, secret_sha256, created_at, created_by, revoked_at, holder"


def token_of(r: tuple[Any, ...]) -> ApiToken:
    """The token of a row; the Neo4j adapter reads its nodes through it too."""
    return ApiToken(
        id=r[0],
        name=r[1],
        role=Role(r[2]),
        secret_sha256=r[3],
        created_at=from_us(r[4]),
        created_by=r[5],
        revoked_at=None if r[6] is None else from_us(r[6]),
        holder=r[7],
    )


class SqliteTokenStore:
    def __init__(self, file: SqliteGraphStore) -> None:
        self._file = file

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"{what} in {self._file.path} failed: {exc}") from exc

    def add_token(self, token: ApiToken) -> None:
        with self._errors("storing an API token"), self._file._transaction() as conn:
            if conn.execute("SELECT 1 FROM api_token WHERE name = ?", (token.name,)).fetchone():
                raise ValidationFailed(
                    f"a token named '{token.name}' exists; choose another name", field="name"
                )
            conn.execute(
                f"INSERT INTO api_token ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token.id,
                    token.name,
                    token.role.value,
                    token.secret_sha256,
                    to_us(token.created_at),
                    token.created_by,
                    None if token.revoked_at is None else to_us(token.revoked_at),
                    token.holder,
                ),
            )

    def get_token(self, token_id: str) -> ApiToken | None:
        with self._errors("reading an API token"):
            row = (
                self._file._read()
                .execute(f"SELECT {_COLUMNS} FROM api_token WHERE id = ?", (token_id,))
                .fetchone()
            )
        return None if row is None else token_of(row)

    def token_named(self, name: str) -> ApiToken | None:
        with self._errors("reading an API token"):
            row = (
                self._file._read()
                .execute(f"SELECT {_COLUMNS} FROM api_token WHERE name = ?", (name,))
                .fetchone()
            )
        return None if row is None else token_of(row)

    def list_tokens(self) -> list[ApiToken]:
        with self._errors("listing API tokens"):
            rows = self._file._read().execute(
                f"SELECT {_COLUMNS} FROM api_token ORDER BY created_at, id"
            )
            return [token_of(r) for r in rows]

    def revoke_token(self, token_id: str, at: dt.datetime) -> bool:
        with self._errors("revoking an API token"), self._file._transaction() as conn:
            changed = conn.execute(
                "UPDATE api_token SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (to_us(at), token_id),
            ).rowcount
        return bool(changed)
