"""Who and what is changing the graph, carried implicitly through a unit of work.

Entry points set it (the CLI, an HTTP request, a Celery task); the store records it with
every history entry, so that "who changed this and why" never depends on callers
remembering to pass it along.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ChangeContext:
    actor: str = "system"
    request_id: str | None = None


_current: ContextVar[ChangeContext] = ContextVar("servicegraph_change_context")


def current_change_context() -> ChangeContext:
    return _current.get(ChangeContext())


@contextlib.contextmanager
def change_context(actor: str, request_id: str | None = None) -> Iterator[ChangeContext]:
    ctx = replace(current_change_context(), actor=actor, request_id=request_id or uuid.uuid4().hex)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
