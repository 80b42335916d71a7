"""Celery tasks retry transient store failures with backoff, declared once for all."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from servicegraph import tasks
from servicegraph.cmdb.errors import StoreError, ValidationFailed


@pytest.fixture()
def eager(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Tasks run in the caller; the countdowns Celery asks for are recorded."""
    monkeypatch.setitem(tasks.app.conf, "task_always_eager", True)
    monkeypatch.setattr(tasks, "services", lambda: None)
    countdowns: list[float] = []
    original = tasks.housekeeping.retry

    def retry(*args: Any, **kwargs: Any) -> Any:
        countdowns.append(kwargs.get("countdown"))
        return original(*args, **kwargs)

    monkeypatch.setattr(tasks.housekeeping, "retry", retry)
    yield countdowns


def test_a_transient_failure_is_retried_with_backoff(
    eager: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def flaky(_services: Any) -> dict[str, int]:
        calls.append(1)
        if len(calls) <= 3:
            raise StoreError("the store stayed locked")
        return {"pruned": 0}

    monkeypatch.setattr(tasks.jobs, "housekeeping", flaky)
    assert tasks.housekeeping.apply().get() == {"pruned": 0}
    assert len(calls) == 4
    assert eager == [1, 2, 4], "1, 2, 4 ... s: exponential backoff without jitter"


def test_a_bad_input_is_not_retried(eager: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    def refuses(_services: Any) -> dict[str, int]:
        raise ValidationFailed("bad", field="x")

    monkeypatch.setattr(tasks.jobs, "housekeeping", refuses)
    with pytest.raises(ValidationFailed):
        tasks.housekeeping.apply().get()
    assert eager == []


def test_every_task_declares_the_same_retries() -> None:
    for task in (
        tasks.correlate,
        tasks.ingest,
        tasks.housekeeping,
        tasks.stale_cleanup,
        tasks.discover,
        tasks.poll,
    ):
        assert task.autoretry_for == tasks.TRANSIENT, task.name
        assert (task.retry_backoff, task.retry_backoff_max, task.max_retries) == (1, 60, 10)
