"""Domain exceptions of the cmdb. Entry points (CLI, HTTP, GraphQL) translate them."""

from __future__ import annotations


class CmdbError(Exception):
    """Base class of every error the configuration graph raises on purpose."""


class ValidationFailed(CmdbError):
    """Input that does not fit the CI model.

    ``item`` names the record (CI key, id or ``file:line``) and ``field`` the offending
    field, so that a user can find and fix it without reading a stack trace.
    """

    def __init__(self, message: str, *, item: str | None = None, field: str | None = None) -> None:
        self.item = item
        self.field = field
        self.reason = message
        where = []
        if item:
            where.append(item)
        if field:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


class ValidationErrors(CmdbError):
    """Several validation failures found in one batch; nothing of the batch was written."""

    def __init__(self, errors: list[ValidationFailed]) -> None:
        self.errors = errors
        shown = "\n".join(f"  {e}" for e in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} invalid record(s):\n{shown}{more}")


class UnknownCI(CmdbError):
    """A CI id that the store does not hold."""

    def __init__(self, ci_id: str) -> None:
        self.ci_id = ci_id
        super().__init__(f"no configuration item with id '{ci_id}'")


class ReconciliationConflicts(CmdbError):
    """Observations that contradict each other or the graph (e.g. two CIs claim one serial)."""

    def __init__(self, conflicts: list[object]) -> None:
        self.conflicts = conflicts
        shown = "\n".join(f"  {c}" for c in conflicts[:20])
        more = f"\n  ... and {len(conflicts) - 20} more" if len(conflicts) > 20 else ""
        super().__init__(f"{len(conflicts)} reconciliation conflict(s):\n{shown}{more}")


# Seconds entry points tell a client to wait before retrying after StoreUnavailable or
# StoreError (HTTP Retry-After): long enough for a lock or a failover, short for a sender.
RETRY_AFTER_S = 5


class StoreUnavailable(CmdbError):
    """The configured store cannot be reached or opened."""


class StoreError(CmdbError):
    """A store operation failed for a reason other than bad input."""


class SchemaTooNew(StoreError):
    """The data was written by a newer servicegraph than the one running."""
