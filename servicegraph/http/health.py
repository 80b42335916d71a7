"""What ``GET /healthz`` checks: each part the service needs, named when it fails.

- ``graph``: the configuration graph's store answers (and how many CIs it holds);
- ``tickets``: the store of incidents, tickets and API tokens answers;
- ``inbox``: events can be appended now: the last append did not fail (a full disk, a
  corrupt file: the webhooks answered 503) and the inbox's write lock can be taken;
- ``correlation``: the worker runs (when it runs in this process) and keeps up: the oldest
  event waiting for it is younger than ``health_max_lag_s``.

Any part down makes the answer 503, with ``failing`` listing the parts and each part its
``error``: a load balancer takes the instance out, an operator reads why.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from servicegraph.bootstrap import Services
from servicegraph.cmdb.errors import CmdbError

log = logging.getLogger(__name__)

# How long the inbox probe waits for the write lock: a writer holds it for milliseconds.
INBOX_PROBE_TIMEOUT_S = 1.0


class Runner(Protocol):
    def alive(self) -> tuple[bool, str]:
        """Whether it runs, and what to tell an operator."""


@dataclass(frozen=True)
class Correlation:
    """Where correlation runs, as this process knows it."""

    runs: str  # "thread", "process", "celery", "another API process", "elsewhere"
    runner: Runner | None = None  # this process's worker, when it runs here


@dataclass(frozen=True)
class Health:
    parts: dict[str, dict[str, Any]]

    @property
    def failing(self) -> list[str]:
        return [name for name, part in self.parts.items() if part["status"] != "up"]

    @property
    def status_code(self) -> int:
        return 503 if self.failing else 200

    def body(self, version: str) -> dict[str, Any]:
        return {
            "status": "down" if self.failing else "ok",
            "version": version,
            "failing": self.failing,
            **self.parts,
        }


class _Down(Exception):
    """A part that answers but is not well: the details stay in the report."""

    def __init__(self, error: str, details: dict[str, Any]) -> None:
        super().__init__(error)
        self.details = details


def _part(check: Callable[[], dict[str, Any]], name: str) -> dict[str, Any]:
    """``check``'s details, marked up; any failure marked down with its message."""
    try:
        return {"status": "up", **check()}
    except _Down as down:
        return {"status": "down", **down.details, "error": str(down)}
    except CmdbError as exc:
        return {"status": "down", "error": str(exc)}
    except Exception as exc:  # a failure the store did not translate: still a 503
        log.warning("health check of %s failed unexpectedly", name, exc_info=True)
        return {"status": "down", "error": f"{type(exc).__name__}: {exc}"}


def check_health(
    services: Services, correlation: Correlation, now: Callable[[], dt.datetime]
) -> Health:
    settings = services.settings

    def graph() -> dict[str, Any]:
        services.store.ping()
        return {"backend": settings.store, "counts": services.store.counts()}

    def tickets() -> dict[str, Any]:
        services.tickets.ping()
        return {}

    def inbox() -> dict[str, Any]:
        services.inbox.check_writable(INBOX_PROBE_TIMEOUT_S)
        return {}

    def correlating() -> dict[str, Any]:
        details: dict[str, Any] = {"runs": correlation.runs}
        if correlation.runner is not None:
            alive, state = correlation.runner.alive()
            details["state"] = state
            if not alive:
                raise _Down(state, details)
        waiting, oldest = services.inbox.lag()
        age = (now() - oldest).total_seconds() if oldest is not None else 0.0
        details.update(waiting=waiting, oldest_waiting_s=round(age, 3))
        if age > settings.health_max_lag_s:
            raise _Down(
                f"{waiting} events wait for correlation, the oldest for {age:.0f} s "
                f"(health_max_lag_s: {settings.health_max_lag_s:.0f})",
                details,
            )
        return details

    parts = {
        "graph": _part(graph, "graph"),
        "tickets": _part(tickets, "tickets"),
        "inbox": _part(inbox, "inbox"),
        "correlation": _part(correlating, "correlation"),
    }
    parts["graph"].setdefault("backend", settings.store)
    return Health(parts)
