"""Driver errors as domain errors: what went wrong with Neo4j, said so that the operator
knows what to check, and never with the password a URI may hold.

The store, its unit of work and its export raise only ``cmdb.errors`` types; each catches
the driver's exceptions and raises ``driver_error(...)`` from them (``raise ... from
exc``), so the driver error stays attached for the logs.
"""

from __future__ import annotations

from neo4j.exceptions import (
    AuthError,
    ClientError,
    ConstraintError,
    DatabaseUnavailable,
    Forbidden,
    IncompleteCommit,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from servicegraph.access.redaction import redact_in, redact_uri
from servicegraph.cmdb.errors import CmdbError, StoreError, StoreUnavailable
from servicegraph.storage.neo4j.records import one_line


def driver_error(exc: Exception, action: str, *, uri: str, database: str, user: str) -> CmdbError:
    """The domain error for a driver error met while doing ``action`` on ``database`` at
    ``uri`` as ``user`` (callers chain it: ``from exc``)."""
    where = f"Neo4j at {redact_uri(uri)} (database '{database}')"
    detail = redact_in(one_line(exc), uri)
    if isinstance(exc, AuthError):
        return StoreUnavailable(
            f"{where} rejected the credentials of user '{user}' ({detail}); "
            "check SERVICEGRAPH_NEO4J_USER and SERVICEGRAPH_NEO4J_PASSWORD"
        )
    if isinstance(exc, IncompleteCommit):
        return StoreError(
            f"{action}: the connection to {where} broke while committing, so the change "
            "may or may not have been saved; check before repeating it"
        )
    if isinstance(exc, ServiceUnavailable | SessionExpired | DatabaseUnavailable):
        return StoreUnavailable(
            f"{where} is unreachable ({detail}); check SERVICEGRAPH_NEO4J_URI and that "
            "the server is running"
        )
    if isinstance(exc, ClientError) and exc.code == "Neo.ClientError.Database.DatabaseNotFound":
        return StoreUnavailable(
            f"{where}: the database does not exist; create it or set SERVICEGRAPH_NEO4J_DATABASE"
        )
    if isinstance(exc, Forbidden):
        return StoreError(f"{action}: user '{user}' is not allowed to: {detail}")
    if isinstance(exc, ConstraintError):
        return StoreError(f"{action}: {detail}")
    if "db.memory.transaction.max" in detail or "MemoryPoolOutOfMemoryError" in (
        getattr(exc, "code", "") or ""
    ):
        # transient to the driver, but the same transaction fails the same way again
        return StoreError(
            f"{action}: the transaction needs more memory than the server allows "
            f"(db.memory.transaction.max on {where}); write in smaller transactions "
            "(`servicegraph import --commit-every N`) or raise the setting"
        )
    if isinstance(exc, TransientError):
        return StoreError(f"{action}: a transient Neo4j error, safe to retry: {detail}")
    return StoreError(f"{action} failed on {where}: {detail}")
