"""Migration 14 on a store written by the release before it (schema version 13, built
here by that release's migrations): an incident saved before its root alert had no root
signature, so problem detection never found it. Migrated, it has the alert's
``source/name``; one whose root alert is gone stays unnamed, one already named keeps its
name; and saving alerts finds the incidents through the new index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from servicegraph.storage.sqlite import SqliteGraphStore
from servicegraph.storage.sqlite.incident_rows import NAME_INCIDENTS_OF_ALERT
from servicegraph.storage.sqlite.migrations import MIGRATIONS

INCIDENT = (
    "INSERT INTO incident (id, number, title, status, opened_at, updated_at, last_alert_at, "
    "priority, impact, urgency, root_inferred, root_confidence, business_services, flapping, "
    "reopen_count, alert_count, root_fingerprint, root_signature) "
    "VALUES (?, ?, 'down', 'open', 0, 0, 0, 3, 3, 3, 0, 1.0, '[]', 0, 0, 1, ?, ?)"
)
ALERT = (
    "INSERT INTO alert (fingerprint, source, name, severity, status, labels, summary, "
    "first_seen, last_seen, last_change, count, transitions) "
    "VALUES (?, 'test', ?, 3, 'firing', '{}', '', 0, 0, 0, 1, '[]')"
)


def test_incidents_saved_before_their_root_alert_are_named(tmp_path: Path) -> None:
    path = tmp_path / "servicegraph.sqlite3"
    conn = sqlite3.connect(path)
    try:
        for script in MIGRATIONS[:13]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 13")
        conn.execute(ALERT, ("a1", "NodeDown"))
        conn.executemany(
            INCIDENT,
            [
                ("inc-1", 1, "a1", None),  # saved before its alert
                ("inc-2", 2, "gone", None),  # its root alert is not in the store
                ("inc-3", 3, "a1", "test/Renamed"),  # named already
                ("inc-4", 4, None, None),  # no root alert at all
            ],
        )
        conn.commit()
    finally:
        conn.close()

    store = SqliteGraphStore(path, lock_timeout=10)
    try:
        store.migrate()
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        names = dict(conn.execute("SELECT id, root_signature FROM incident ORDER BY id"))
        assert names == {
            "inc-1": "test/NodeDown",
            "inc-2": None,
            "inc-3": "test/Renamed",
            "inc-4": None,
        }
        plan = " ".join(
            str(r[3])
            for r in conn.execute(f"EXPLAIN QUERY PLAN {NAME_INCIDENTS_OF_ALERT}", ("x", "a1"))
        )
        assert "incident_root_fingerprint" in plan, plan
    finally:
        conn.close()
