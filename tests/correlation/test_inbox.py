"""The inbox: redeliveries recognised at once or when correlated, group commit, the
version-0 file upgrade, and a sequence that survives pruning."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from servicegraph.bootstrap import bootstrap
from servicegraph.cmdb.errors import StoreError
from servicegraph.config import Settings
from servicegraph.events.model import Alert, Event, EventStatus, Severity
from servicegraph.storage.sqlite.inbox import INBOX_VERSION, InboxWriter
from servicegraph.ticketing.ports import IncidentFilter

from .conftest import T0, World


def _event(n: int, *, ci_id: str | None = None, fingerprint: str | None = None) -> Event:
    return Event(
        source="test",
        name="NodeDown",
        status=EventStatus.FIRING,
        severity=Severity.MAJOR,
        occurred_at=T0,
        fingerprint=fingerprint or f"fp-{n}",
        event_id=f"event-{n}",
        labels={"ci_id": ci_id} if ci_id else {},
    )


def _db1_alert(world: World) -> Alert:
    (incident,) = world.services.tickets.find_incidents(IncidentFilter(ci_ids=(world.ids["db-1"],)))
    (alert,) = world.services.tickets.incident_alerts([incident.id]).get(incident.id, [])
    return alert


def test_a_redelivery_the_webhook_no_longer_remembers_is_dropped_when_correlated(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(InboxWriter, "RECENT_KEYS", 3)
    correlator = world.services.correlator
    first = _event(0, ci_id=world.ids["db-1"], fingerprint="db-1-down")
    assert correlator.ingest([first]) == 1
    assert correlator.drain().events == 1
    # enough other events that the first is out of the webhook's memory
    for n in range(1, 8):
        assert correlator.ingest([_event(n)]) == 1
    assert correlator.ingest([first]) == 1, "not recognised at once: stored"
    result = correlator.drain()
    assert (result.events, result.redeliveries) == (8, 1)
    assert world.services.inbox.pending_count() == 0
    assert _db1_alert(world).count == 1, "the redelivery took no effect"


def test_a_redelivery_appended_by_another_process_counts_once(world: World) -> None:
    """Two stores on one file remember separately; the correlation unit decides."""
    other = bootstrap(world.services.settings)
    try:
        event = _event(0, ci_id=world.ids["db-1"], fingerprint="db-1-down")
        other.inbox.append([_event(99)], T0)  # loads its memory now
        assert world.services.correlator.ingest([event]) == 1
        assert world.services.correlator.drain().events == 2
        assert other.inbox.append([event], T0) == 1, "unknown to it: stored"
        result = world.services.correlator.drain()
        assert (result.events, result.redeliveries) == (1, 1)
        assert _db1_alert(world).count == 1
    finally:
        other.close()


def test_the_same_event_twice_in_one_claim_takes_effect_once(world: World) -> None:
    """Two stores that both missed it append the same event; one batch claims both."""
    other = bootstrap(world.services.settings)
    try:
        event = _event(0, ci_id=world.ids["db-1"], fingerprint="db-1-down")
        other.inbox.append([_event(99)], T0)  # loads its memory while empty
        assert world.services.correlator.ingest([event]) == 1
        assert other.inbox.append([event], T0) == 1
        result = world.services.correlator.drain()
        assert (result.events, result.redeliveries) == (3, 1)
        assert _db1_alert(world).count == 1
    finally:
        other.close()


def test_appends_from_many_threads_commit_together_and_lose_nothing(world: World) -> None:
    inbox = world.services.inbox
    stored: list[int] = []
    errors: list[BaseException] = []

    def sender(k: int) -> None:
        try:
            for b in range(20):
                # every batch shares half its events with the next sender's
                events = [_event(k * 1000 + b * 10 + i) for i in range(10)]
                events += [_event((k + 1) % 8 * 1000 + b * 10 + i) for i in range(10)]
                stored.append(inbox.append(events, T0))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert sum(stored) == 8 * 20 * 10, "each distinct event stored once"
    assert inbox.counts()["events"] == 1600
    assert world.services.correlator.drain().events == 1600


def test_an_emptied_inbox_keeps_counting_up(world: World) -> None:
    """After pruning removed every event, new ones still come after the cursor."""
    correlator = world.services.correlator
    assert correlator.ingest([_event(1)]) == 1
    correlator.drain()
    assert world.services.inbox.prune(T0 + dt.timedelta(days=400)) == 1
    assert world.services.inbox.counts()["events"] == 0
    assert correlator.ingest([_event(1)]) == 1, "pruned: new again"
    assert correlator.ingest([_event(2, ci_id=world.ids["db-1"])]) == 1
    result = correlator.drain()
    assert result.events == 2
    assert world.services.inbox.pending_count() == 0
    assert _db1_alert(world).count == 1


def _with_old_inbox(
    tmp_path: Path, write: Callable[[Path], None], *, cursor: int
) -> tuple[Settings, Path]:
    """A graph file at the current version beside an inbox file ``write`` makes, with
    the events up to ``cursor`` correlated."""
    settings = Settings(data_dir=tmp_path)
    bootstrap(settings).close()
    inbox_path = settings.sqlite_file.with_name(f"{settings.sqlite_file.stem}-inbox.sqlite3")
    inbox_path.unlink()
    write(inbox_path)
    with sqlite3.connect(settings.sqlite_file) as graph:
        graph.execute("UPDATE meta SET value = ? WHERE key = 'inbox_cursor'", (cursor,))
    return settings, inbox_path


def _version_0_inbox(path: Path, events: int, processed: int) -> None:
    """An inbox file as servicegraph wrote it before the inbox had a version."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE inbox (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, "
        "received_at INTEGER NOT NULL, source TEXT NOT NULL, name TEXT NOT NULL, "
        "status TEXT NOT NULL, severity INTEGER NOT NULL, occurred_at INTEGER NOT NULL, "
        "fingerprint TEXT NOT NULL, labels TEXT NOT NULL, summary TEXT NOT NULL, "
        "processed_at INTEGER)"
    )
    at = int(T0.timestamp() * 1_000_000)
    conn.executemany(
        "INSERT INTO inbox VALUES (?, ?, ?, 'test', 'NodeDown', 'firing', 4, ?, ?, '{}', '', ?)",
        [
            (n, f"event-{n}", at, at, f"fp-{n}", at + 1000 if n <= processed else None)
            for n in range(1, events + 1)
        ],
    )
    conn.commit()
    conn.close()


def test_a_version_0_inbox_is_upgraded_without_losing_or_repeating_events(
    tmp_path: Path,
) -> None:
    settings, inbox_path = _with_old_inbox(
        tmp_path, lambda path: _version_0_inbox(path, events=5, processed=3), cursor=3
    )
    services = bootstrap(settings)
    try:
        with sqlite3.connect(inbox_path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == INBOX_VERSION
            assert conn.execute("SELECT count(*) FROM inbox").fetchone()[0] == 5
            assert conn.execute("SELECT last_seq FROM inbox_processed").fetchall() == [(3,)]
        inbox = services.inbox
        assert inbox.pending_count() == 2
        # a redelivery of a correlated event and of a waiting one: both recognised at once
        assert services.correlator.ingest([_event(2), _event(5)]) == 0
        services.inbox._writer.forget()  # type: ignore[attr-defined]
        services.inbox._writer.RECENT_KEYS = 1  # type: ignore[attr-defined]
        # past the webhook's memory, the correlated one is still dropped when claimed
        assert services.correlator.ingest([_event(2)]) == 1
        result = services.correlator.drain()
        assert (result.events, result.redeliveries) == (3, 1)
        assert result.alerts_created == 2, "events 4 and 5, once each"
    finally:
        services.close()


def _version_1_inbox(path: Path, events: int, pruned: int, processed: int) -> None:
    """An inbox file with a row per event (version 1), its first ``pruned`` events gone."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE inbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_key INTEGER NOT NULL, "
        "event_id TEXT NOT NULL, received_at INTEGER NOT NULL, source TEXT NOT NULL, "
        "name TEXT NOT NULL, status TEXT NOT NULL, severity INTEGER NOT NULL, "
        "occurred_at INTEGER NOT NULL, fingerprint TEXT NOT NULL, labels TEXT NOT NULL, "
        "summary TEXT NOT NULL)"
    )
    conn.execute(
        "CREATE TABLE inbox_processed (last_seq INTEGER PRIMARY KEY, processed_at INTEGER)"
    )
    at = int(T0.timestamp() * 1_000_000)
    conn.executemany(
        "INSERT INTO inbox VALUES (?, 0, ?, ?, 'test', 'NodeDown', 'firing', 4, ?, ?, ?, 's')",
        [
            (n, f"event-{n}", at, at, f"fp-{n}", '{"ci_id":"x","é":"ü"}')
            for n in range(1, events + 1)
        ],
    )
    conn.execute("DELETE FROM inbox WHERE seq <= ?", (pruned,))
    conn.execute("INSERT INTO inbox_processed VALUES (?, ?)", (processed, at + 1000))
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(("events", "pruned"), [(8, 3), (4, 4)])
def test_a_version_1_inbox_is_upgraded_keeping_sequence_and_events(
    tmp_path: Path, events: int, pruned: int
) -> None:
    settings, inbox_path = _with_old_inbox(
        tmp_path,
        lambda path: _version_1_inbox(path, events=events, pruned=pruned, processed=4),
        cursor=4,
    )
    services = bootstrap(settings)
    try:
        with sqlite3.connect(inbox_path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == INBOX_VERSION
            assert conn.execute("SELECT last_seq FROM inbox_processed").fetchall() == [(4,)]
        inbox = services.inbox
        assert inbox.counts()["events"] == events - pruned
        assert inbox.pending_count() == events - 4
        assert services.correlator.ingest([_event(100)]) == 1
        with sqlite3.connect(inbox_path) as conn:  # numbered after the highest ever used
            assert conn.execute("SELECT max(seq) FROM inbox").fetchone()[0] == events + 1
        assert services.correlator.drain().events == events - 4 + 1
        waiting = [a for a in services.tickets.unmapped_alerts() if a.fingerprint != "fp-100"]
        assert sorted(a.fingerprint for a in waiting) == [f"fp-{n}" for n in range(5, events + 1)]
        assert all(a.labels == {"ci_id": "x", "é": "ü"} and a.summary == "s" for a in waiting)
    finally:
        services.close()


def test_a_claim_may_end_inside_what_one_append_stored(world: World) -> None:
    correlator = world.services.correlator
    inbox = world.services.inbox
    assert correlator.ingest([_event(n) for n in range(10)]) == 10
    assert correlator.ingest([_event(n) for n in range(10, 13)]) == 3
    seen = []
    while inbox.pending_count():
        before = inbox.pending_count()
        result = correlator.process_pending(limit=4)
        assert inbox.pending_count() == before - result.events
        seen.append(result.events)
    assert seen == [4, 4, 4, 1]
    assert world.services.tickets.counts()["alerts"] == 13, "each event once"


def test_a_failed_group_commit_fails_every_sender_of_it_and_stores_nothing(
    world: World,
) -> None:
    store = world.services.inbox
    settings = world.services.settings
    inbox = settings.sqlite_file.with_name(f"{settings.sqlite_file.stem}-inbox.sqlite3")
    with sqlite3.connect(inbox) as other:  # broken underneath the running store
        other.execute("ALTER TABLE inbox RENAME TO inbox_away")
    outcomes: list[str] = []

    def sender(k: int) -> None:
        try:
            store.append([_event(k * 100 + i) for i in range(5)], T0)
            outcomes.append("stored")
        except StoreError:
            outcomes.append("failed")

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outcomes == ["failed"] * 6, "every sender answered, none stored"
    with sqlite3.connect(inbox) as other:
        other.execute("ALTER TABLE inbox_away RENAME TO inbox")
    # a failed append is no duplicate later: the sender's retry is stored
    assert store.append([_event(k) for k in range(5)], T0) == 5
    assert store.counts()["events"] == 5
