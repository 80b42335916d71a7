"""Versioned schema of the SQLite store. ``PRAGMA user_version`` holds the applied version.

Append new migrations; never edit a released one. Times are integer microseconds since the
Unix epoch (UTC); JSON columns hold attribute maps.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: configuration graph, identification, sightings, history, conflicts
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('change_seq', 0);

    CREATE TABLE ci (
        id                TEXT PRIMARY KEY,
        class             TEXT NOT NULL,
        name              TEXT NOT NULL,
        attributes        TEXT NOT NULL,
        attribute_sources TEXT NOT NULL,
        lifecycle         TEXT NOT NULL,
        operational_state TEXT NOT NULL,
        stale             INTEGER NOT NULL DEFAULT 0,
        merged_into       TEXT,
        created_at        INTEGER NOT NULL,
        updated_at        INTEGER NOT NULL,
        version           INTEGER NOT NULL,
        change_seq        INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX ci_class ON ci (class, id);
    CREATE INDEX ci_merged_into ON ci (merged_into) WHERE merged_into IS NOT NULL;
    CREATE INDEX ci_seq ON ci (change_seq);

    CREATE TABLE ci_identifier (
        kind  TEXT NOT NULL,
        value TEXT NOT NULL,
        ci_id TEXT NOT NULL,
        PRIMARY KEY (kind, value)
    ) WITHOUT ROWID;
    CREATE INDEX ci_identifier_ci ON ci_identifier (ci_id);

    CREATE TABLE source_key (
        source TEXT NOT NULL,
        key    TEXT NOT NULL,
        ci_id  TEXT NOT NULL,
        PRIMARY KEY (source, key)
    ) WITHOUT ROWID;

    CREATE TABLE ci_sighting (
        ci_id       TEXT NOT NULL,
        source      TEXT NOT NULL,
        first_seen  INTEGER NOT NULL,
        last_seen   INTEGER NOT NULL,
        last_run    TEXT,
        missed_runs INTEGER NOT NULL DEFAULT 0,
        stale       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (ci_id, source)
    ) WITHOUT ROWID;
    CREATE INDEX ci_sighting_source ON ci_sighting (source, last_run);

    CREATE TABLE relationship (
        from_id    TEXT NOT NULL,
        type       TEXT NOT NULL,
        to_id      TEXT NOT NULL,
        attributes TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        removed    INTEGER NOT NULL DEFAULT 0,
        stale      INTEGER NOT NULL DEFAULT 0,
        change_seq INTEGER NOT NULL,
        PRIMARY KEY (from_id, type, to_id)
    ) WITHOUT ROWID;
    CREATE INDEX relationship_to ON relationship (to_id, type);
    CREATE INDEX relationship_seq ON relationship (change_seq);

    CREATE TABLE relationship_sighting (
        from_id     TEXT NOT NULL,
        type        TEXT NOT NULL,
        to_id       TEXT NOT NULL,
        source      TEXT NOT NULL,
        first_seen  INTEGER NOT NULL,
        last_seen   INTEGER NOT NULL,
        last_run    TEXT,
        missed_runs INTEGER NOT NULL DEFAULT 0,
        stale       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (from_id, type, to_id, source)
    ) WITHOUT ROWID;
    CREATE INDEX relationship_sighting_source ON relationship_sighting (source, last_run);

    CREATE TABLE history (
        seq         INTEGER PRIMARY KEY,
        at          INTEGER NOT NULL,
        ci_id       TEXT NOT NULL,
        kind        TEXT NOT NULL,
        field       TEXT,
        old         TEXT,
        new         TEXT,
        source      TEXT,
        actor       TEXT,
        run_id      TEXT,
        other_ci_id TEXT
    );
    CREATE INDEX history_ci ON history (ci_id, seq);
    CREATE INDEX history_other ON history (other_ci_id, seq) WHERE other_ci_id IS NOT NULL;

    CREATE TABLE conflict (
        id               INTEGER PRIMARY KEY,
        detected_at      INTEGER NOT NULL,
        kind             TEXT NOT NULL,
        source           TEXT NOT NULL,
        item             TEXT NOT NULL,
        identifier_kind  TEXT,
        identifier_value TEXT,
        ci_id            TEXT,
        other_ci_id      TEXT,
        detail           TEXT NOT NULL,
        run_id           TEXT
    );
    """,
    # 2: monitoring: alerts, incidents, problems
    """
    -- the events live in a separate inbox file (see sqlite/event_inbox.py), this is the
    -- sequence number of the last one whose effects are committed here
    INSERT INTO meta (key, value) VALUES ('inbox_cursor', 0);

    CREATE TABLE alert (
        fingerprint TEXT PRIMARY KEY,
        source      TEXT NOT NULL,
        name        TEXT NOT NULL,
        severity    INTEGER NOT NULL,
        status      TEXT NOT NULL,
        labels      TEXT NOT NULL,
        summary     TEXT NOT NULL,
        first_seen  INTEGER NOT NULL,
        last_seen   INTEGER NOT NULL,
        last_change INTEGER NOT NULL,
        count       INTEGER NOT NULL,
        ci_id       TEXT,
        incident_id TEXT,
        cleared_at  INTEGER,
        flapping    INTEGER NOT NULL DEFAULT 0,
        transitions TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX alert_incident ON alert (incident_id) WHERE incident_id IS NOT NULL;
    CREATE INDEX alert_unmapped ON alert (last_seen) WHERE ci_id IS NULL;
    CREATE INDEX alert_ci ON alert (ci_id, last_seen);

    CREATE TABLE incident (
        id               TEXT PRIMARY KEY,
        number           INTEGER NOT NULL UNIQUE,
        title            TEXT NOT NULL,
        status           TEXT NOT NULL,
        opened_at        INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        last_alert_at    INTEGER NOT NULL,
        priority         INTEGER NOT NULL,
        impact           TEXT NOT NULL,
        urgency          TEXT NOT NULL,
        root_ci_id       TEXT,
        root_inferred    INTEGER NOT NULL,
        root_confidence  REAL NOT NULL,
        root_fingerprint TEXT,
        business_services TEXT NOT NULL,
        flapping         INTEGER NOT NULL,
        clear_since      INTEGER,
        resolved_at      INTEGER,
        reopen_count     INTEGER NOT NULL,
        problem_id       TEXT,
        alert_count      INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX incident_status ON incident (status, last_alert_at);
    CREATE INDEX incident_root ON incident (root_ci_id, opened_at);
    CREATE INDEX incident_resolved ON incident (resolved_at) WHERE resolved_at IS NOT NULL;

    CREATE TABLE problem (
        id          TEXT PRIMARY KEY,
        number      INTEGER NOT NULL UNIQUE,
        title       TEXT NOT NULL,
        status      TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        root_ci_id  TEXT,
        reason      TEXT NOT NULL,
        signature   TEXT NOT NULL UNIQUE,
        known_error TEXT,
        workaround  TEXT
    ) WITHOUT ROWID;

    CREATE TABLE problem_incident (
        problem_id  TEXT NOT NULL,
        incident_id TEXT NOT NULL,
        linked_at   INTEGER NOT NULL,
        PRIMARY KEY (problem_id, incident_id)
    ) WITHOUT ROWID;
    CREATE INDEX problem_incident_incident ON problem_incident (incident_id);
    """,
    # 3: the last complete run each source swept, so that a replayed run (a retried task)
    # does not count a second missed run towards staleness
    """
    CREATE TABLE source_sweep (
        source TEXT PRIMARY KEY,
        run_id TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 4: ticketing (people working incidents, problems and changes, with a worklog) and
    # API tokens (hashed secrets with a role) for the GraphQL API
    """
    ALTER TABLE incident ADD COLUMN acknowledged_at INTEGER;
    ALTER TABLE incident ADD COLUMN acknowledged_by TEXT;
    ALTER TABLE incident ADD COLUMN assignee TEXT;
    ALTER TABLE incident ADD COLUMN resolved_by TEXT;
    ALTER TABLE incident ADD COLUMN resolution TEXT;
    CREATE INDEX incident_updated ON incident (updated_at);
    CREATE INDEX problem_root ON problem (root_ci_id) WHERE root_ci_id IS NOT NULL;

    CREATE TABLE worklog (
        seq       INTEGER PRIMARY KEY,
        ticket_id TEXT NOT NULL,
        at        INTEGER NOT NULL,
        actor     TEXT NOT NULL,
        kind      TEXT NOT NULL,
        text      TEXT NOT NULL
    );
    CREATE INDEX worklog_ticket ON worklog (ticket_id, seq);

    CREATE TABLE change_request (
        id            TEXT PRIMARY KEY,
        number        INTEGER NOT NULL UNIQUE,
        title         TEXT NOT NULL,
        description   TEXT NOT NULL,
        status        TEXT NOT NULL,
        risk          TEXT NOT NULL,
        planned_start INTEGER,
        planned_end   INTEGER,
        created_at    INTEGER NOT NULL,
        created_by    TEXT NOT NULL,
        updated_at    INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE change_ci (
        change_id TEXT NOT NULL,
        ci_id     TEXT NOT NULL,
        position  INTEGER NOT NULL,
        PRIMARY KEY (change_id, ci_id)
    ) WITHOUT ROWID;
    CREATE INDEX change_ci_ci ON change_ci (ci_id);

    CREATE TABLE api_token (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL UNIQUE,
        role          TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        created_by    TEXT NOT NULL,
        revoked_at    INTEGER
    ) WITHOUT ROWID;
    """,
    # 5: the root alert's "source/name" on the incident, so that problem detection finds
    # the incidents with the same root alert through an index instead of a join per row
    # (root_ci_id in the index: counting their root CIs reads the index alone)
    """
    ALTER TABLE incident ADD COLUMN root_signature TEXT;
    UPDATE incident SET root_signature = (
        SELECT a.source || '/' || a.name FROM alert AS a
        WHERE a.fingerprint = incident.root_fingerprint
    );
    CREATE INDEX incident_root_signature ON incident (root_signature, opened_at, root_ci_id)
        WHERE root_signature IS NOT NULL;
    """,
    # 6: the key of every inbox event correlated (sqlite/inbox.py): a redelivery that the
    # webhook did not recognise is dropped by the correlation unit that claims it
    """
    CREATE TABLE inbox_seen (
        key INTEGER PRIMARY KEY,
        seq INTEGER NOT NULL
    );
    CREATE INDEX inbox_seen_seq ON inbox_seen (seq);
    """,
    # 7: the time a source gave for an alert's event that was dated in the future, when
    # correlation dated it at its reception instead (max_clock_skew_s)
    """
    ALTER TABLE alert ADD COLUMN reported_at INTEGER;
    """,
    # 8: the SNMP poller's last sample of every device, and the lease of the cycle that
    # holds them (storage/sqlite/poll_state.py); before, a JSON file in DATA_DIR
    """
    CREATE TABLE snmp_poll_sample (
        host   TEXT NOT NULL,
        port   INTEGER NOT NULL,
        sample TEXT NOT NULL,
        PRIMARY KEY (host, port)
    ) WITHOUT ROWID;
    CREATE TABLE snmp_poll_lease (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        holder     TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    """,
    # 9: the service desk. Incidents become tickets (incident or service request) with a
    # lifecycle: 'open' is 'new', or 'assigned' when someone held it; the desk's fields; the
    # queues' indexes (a group's or an agent's active tickets by priority, then age); links
    # between tickets; field changes in the worklog; every fire/clear cycle of an alert;
    # people (agents, groups, organisations, contacts), the service catalogue, and the
    # holder of an API token (the actor of what it does)
    """
    UPDATE incident SET status = CASE WHEN assignee IS NULL THEN 'new' ELSE 'assigned' END
        WHERE status = 'open';
    ALTER TABLE incident ADD COLUMN type TEXT NOT NULL DEFAULT 'incident';
    ALTER TABLE incident ADD COLUMN channel TEXT NOT NULL DEFAULT 'monitoring';
    ALTER TABLE incident ADD COLUMN description TEXT NOT NULL DEFAULT '';
    ALTER TABLE incident ADD COLUMN requester TEXT;
    ALTER TABLE incident ADD COLUMN organisation TEXT;
    ALTER TABLE incident ADD COLUMN service TEXT;
    ALTER TABLE incident ADD COLUMN category TEXT;
    ALTER TABLE incident ADD COLUMN affected_ci_ids TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE incident ADD COLUMN priority_reason TEXT;
    ALTER TABLE incident ADD COLUMN priority_set_by TEXT;
    ALTER TABLE incident ADD COLUMN assignment_group TEXT;
    ALTER TABLE incident ADD COLUMN pending_reason TEXT;
    ALTER TABLE incident ADD COLUMN resolution_code TEXT;
    ALTER TABLE incident ADD COLUMN close_code TEXT;
    ALTER TABLE incident ADD COLUMN closed_at INTEGER;
    ALTER TABLE incident ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE incident ADD COLUMN custom_fields TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE incident ADD COLUMN routed_by TEXT;
    ALTER TABLE incident ADD COLUMN created_by TEXT;
    CREATE INDEX incident_group_queue ON incident (assignment_group, priority, opened_at, number)
        WHERE status IN ('new', 'assigned', 'in_progress', 'pending');
    CREATE INDEX incident_agent_queue ON incident (assignee, priority, opened_at, number)
        WHERE status IN ('new', 'assigned', 'in_progress', 'pending');
    CREATE INDEX incident_requester ON incident (requester, number) WHERE requester IS NOT NULL;
    CREATE INDEX incident_closing ON incident (status, resolved_at);

    CREATE TABLE ticket_link (
        source_id  TEXT NOT NULL,
        kind       TEXT NOT NULL,
        target_id  TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (source_id, kind, target_id)
    ) WITHOUT ROWID;
    CREATE INDEX ticket_link_target ON ticket_link (target_id);

    ALTER TABLE worklog ADD COLUMN field TEXT;
    ALTER TABLE worklog ADD COLUMN old_value TEXT;
    ALTER TABLE worklog ADD COLUMN new_value TEXT;

    CREATE TABLE alert_cycle (
        fingerprint TEXT NOT NULL,
        fired_at    INTEGER NOT NULL,
        cleared_at  INTEGER,
        incident_id TEXT,
        PRIMARY KEY (fingerprint, fired_at)
    ) WITHOUT ROWID;
    CREATE INDEX alert_cycle_incident ON alert_cycle (incident_id) WHERE incident_id IS NOT NULL;

    CREATE TABLE desk_agent (
        login      TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        email      TEXT NOT NULL,
        phone      TEXT,
        roles      TEXT NOT NULL,
        active     INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE desk_group (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        email       TEXT,
        manager     TEXT,
        description TEXT NOT NULL,
        updated_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE desk_group_member (
        group_id TEXT NOT NULL,
        login    TEXT NOT NULL,
        PRIMARY KEY (group_id, login)
    ) WITHOUT ROWID;
    CREATE INDEX desk_group_member_login ON desk_group_member (login);
    CREATE TABLE desk_organisation (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        domains    TEXT NOT NULL,
        notes      TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE desk_contact (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        email        TEXT,
        organisation TEXT,
        phone        TEXT,
        vip          INTEGER NOT NULL,
        active       INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX desk_contact_email ON desk_contact (lower(email)) WHERE email IS NOT NULL;
    CREATE TABLE desk_service (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        ci_id         TEXT,
        owner_group   TEXT,
        request_types TEXT NOT NULL,
        defaults      TEXT NOT NULL,
        description   TEXT NOT NULL,
        active        INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE desk_category (
        path        TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        owner_group TEXT,
        defaults    TEXT NOT NULL,
        types       TEXT NOT NULL,
        updated_at  INTEGER NOT NULL
    ) WITHOUT ROWID;

    ALTER TABLE api_token ADD COLUMN holder TEXT;
    """,
    # 10: searches by status read (status, number) instead of sorting every ticket of the
    # status (1.3 s for the closed ones of a million-ticket desk); every active ticket in
    # queue order has an index as each group's and agent's queue has; the CIs people said
    # a ticket affects (affected_ci_ids), indexed, so that a CI's ticket lists find them
    """
    CREATE INDEX incident_status_number ON incident (status, number);
    CREATE INDEX incident_queue ON incident (priority, opened_at, number)
        WHERE status IN ('new', 'assigned', 'in_progress', 'pending');
    CREATE TABLE ticket_ci (
        ci_id     TEXT NOT NULL,
        ticket_id TEXT NOT NULL,
        PRIMARY KEY (ci_id, ticket_id)
    ) WITHOUT ROWID;
    CREATE INDEX ticket_ci_ticket ON ticket_ci (ticket_id);
    INSERT OR IGNORE INTO ticket_ci (ci_id, ticket_id)
        SELECT j.value, i.id FROM incident AS i, json_each(i.affected_ci_ids) AS j;
    """,
    # 11: routing's priority bounds kept on the ticket (Incident.priority_floor and
    # priority_ceiling; NULL: that side open), so that the priority keeps following impact
    # x urgency within them. Before, a bound that moved the priority was stored as an
    # override (priority_set_by 'routing', the reason "routing rule 'x': at least as urgent
    # as P2 (P5 -> P2)"), which froze it; those rows get the bounds their reason names (a
    # ceiling less urgent than the floor kept at the floor, as routing keeps them) and lose
    # the override. A bound that did not move the priority when the ticket was routed was
    # stored nowhere and cannot be recovered: such tickets stay unbounded.
    """
    ALTER TABLE incident ADD COLUMN priority_floor INTEGER;
    ALTER TABLE incident ADD COLUMN priority_ceiling INTEGER;
    UPDATE incident SET
        priority_floor = CASE WHEN instr(priority_reason, 'at least as urgent as P') > 0
            THEN CAST(substr(priority_reason,
                instr(priority_reason, 'at least as urgent as P') + 23, 1) AS INTEGER) END,
        priority_ceiling = CASE WHEN instr(priority_reason, 'at most as urgent as P') > 0
            THEN CAST(substr(priority_reason,
                instr(priority_reason, 'at most as urgent as P') + 22, 1) AS INTEGER) END
        WHERE priority_set_by = 'routing';
    UPDATE incident SET priority_floor = NULL WHERE priority_floor NOT BETWEEN 1 AND 5;
    UPDATE incident SET priority_ceiling = NULL WHERE priority_ceiling NOT BETWEEN 1 AND 5;
    UPDATE incident SET priority_ceiling = priority_floor WHERE priority_ceiling > priority_floor;
    UPDATE incident SET priority_reason = NULL, priority_set_by = NULL
        WHERE priority_set_by = 'routing';
    """,
    # 12: SLA clocks, escalation and notifications. The ticket's response stop, its
    # reassignments, its number in the tool it was imported from and the tier and hours of
    # the business service whose SLA a monitoring incident follows; each ticket's clocks as
    # last evaluated (``ticket_sla``: what queues order by and what the escalation job
    # reads, ``next_check_at`` the next instant a clock changes state or a level is due;
    # ``ticket_sla_none``: those no policy covered, under which configuration);
    # the escalation levels fired (once per ticket, clock and level: the primary key); the
    # notification outbox, written in the transaction of the change that causes a message
    # and emptied by the sender job (``key`` the idempotency key)
    """
    ALTER TABLE incident ADD COLUMN first_response_at INTEGER;
    ALTER TABLE incident ADD COLUMN reassignment_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE incident ADD COLUMN external_ref TEXT;
    ALTER TABLE incident ADD COLUMN sla_tier TEXT;
    ALTER TABLE incident ADD COLUMN service_hours TEXT;
    ALTER TABLE incident ADD COLUMN sla_due_at INTEGER;
    UPDATE incident SET first_response_at = acknowledged_at;
    CREATE INDEX incident_external_ref ON incident (external_ref) WHERE external_ref IS NOT NULL;
    CREATE INDEX incident_opened ON incident (opened_at);
    CREATE INDEX incident_due_queue ON incident
        (coalesce(sla_due_at, 9223372036854775807), number)
        WHERE status IN ('new', 'assigned', 'in_progress', 'pending');
    CREATE INDEX incident_group_due_queue ON incident
        (assignment_group, coalesce(sla_due_at, 9223372036854775807), number)
        WHERE status IN ('new', 'assigned', 'in_progress', 'pending');
    CREATE INDEX incident_agent_due_queue ON incident
        (assignee, coalesce(sla_due_at, 9223372036854775807), number)
        WHERE status IN ('new', 'assigned', 'in_progress', 'pending');
    CREATE TABLE ticket_sla (
        ticket_id              TEXT PRIMARY KEY,
        policy                 TEXT NOT NULL,
        calendar               TEXT NOT NULL,
        priority               INTEGER NOT NULL,
        response_target_s      REAL NOT NULL,
        response_elapsed_s     REAL NOT NULL,
        response_due_at        INTEGER NOT NULL,
        response_state         TEXT NOT NULL,
        response_paused        INTEGER NOT NULL,
        response_stopped_at    INTEGER,
        response_breached_at   INTEGER,
        resolution_target_s    REAL NOT NULL,
        resolution_elapsed_s   REAL NOT NULL,
        resolution_due_at      INTEGER NOT NULL,
        resolution_state       TEXT NOT NULL,
        resolution_paused      INTEGER NOT NULL,
        resolution_stopped_at  INTEGER,
        resolution_breached_at INTEGER,
        next_check_at          INTEGER,
        evaluated_at           INTEGER NOT NULL,
        config                 TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX ticket_sla_next ON ticket_sla (next_check_at) WHERE next_check_at IS NOT NULL;
    CREATE TABLE ticket_sla_none (
        ticket_id TEXT PRIMARY KEY,
        config    TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE sla_escalation (
        ticket_id TEXT NOT NULL,
        clock     TEXT NOT NULL,
        level     INTEGER NOT NULL,
        fired_at  INTEGER NOT NULL,
        PRIMARY KEY (ticket_id, clock, level)
    ) WITHOUT ROWID;
    CREATE TABLE notification_outbox (
        id              INTEGER PRIMARY KEY,
        key             TEXT NOT NULL UNIQUE,
        event           TEXT NOT NULL,
        ticket_id       TEXT,
        channel         TEXT NOT NULL,
        target          TEXT NOT NULL,
        subject         TEXT NOT NULL,
        body            TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        claimed_until   INTEGER,
        sent_at         INTEGER,
        dead_at         INTEGER,
        last_error      TEXT
    );
    CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_at)
        WHERE sent_at IS NULL AND dead_at IS NULL;
    CREATE INDEX notification_outbox_dead ON notification_outbox (dead_at)
        WHERE dead_at IS NOT NULL;
    """,
    # 13: change and problem management. A change's type, template, implementer, risk as
    # computed from the graph (with its reasons), the approvals its risk needs and those
    # given, its tasks and accepted conflicts (JSON lists: read and written with the
    # change, never queried alone), plans, actual times and close code; the old statuses
    # map onto the new lifecycle (planned -> draft, approved -> scheduled, in_progress ->
    # implementing, completed -> closed as successful). A problem's assignee, analysis,
    # fixing change and resolution. Freeze windows. The change an expected alert was
    # linked to (change-aware correlation).
    """
    ALTER TABLE change_request ADD COLUMN change_type TEXT NOT NULL DEFAULT 'normal';
    ALTER TABLE change_request ADD COLUMN template TEXT;
    ALTER TABLE change_request ADD COLUMN assignee TEXT;
    ALTER TABLE change_request ADD COLUMN risk_reasons TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE change_request ADD COLUMN risk_assessed_at INTEGER;
    ALTER TABLE change_request ADD COLUMN approvals_required INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE change_request ADD COLUMN approvals TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE change_request ADD COLUMN tasks TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE change_request ADD COLUMN conflict_overrides TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE change_request ADD COLUMN implementation_plan TEXT NOT NULL DEFAULT '';
    ALTER TABLE change_request ADD COLUMN backout_plan TEXT NOT NULL DEFAULT '';
    ALTER TABLE change_request ADD COLUMN actual_start INTEGER;
    ALTER TABLE change_request ADD COLUMN actual_end INTEGER;
    ALTER TABLE change_request ADD COLUMN close_code TEXT;
    ALTER TABLE change_request ADD COLUMN close_notes TEXT NOT NULL DEFAULT '';
    UPDATE change_request SET status = CASE status
        WHEN 'planned' THEN 'draft' WHEN 'approved' THEN 'scheduled'
        WHEN 'in_progress' THEN 'implementing' WHEN 'completed' THEN 'closed'
        ELSE status END;
    UPDATE change_request SET close_code = 'successful' WHERE status = 'closed';
    CREATE INDEX change_request_status ON change_request (status);
    CREATE INDEX change_request_window ON change_request (planned_end, planned_start);
    CREATE INDEX change_request_ended ON change_request (actual_end)
        WHERE actual_end IS NOT NULL;

    ALTER TABLE problem ADD COLUMN assignee TEXT;
    ALTER TABLE problem ADD COLUMN description TEXT NOT NULL DEFAULT '';
    ALTER TABLE problem ADD COLUMN root_cause TEXT NOT NULL DEFAULT '';
    ALTER TABLE problem ADD COLUMN fix TEXT NOT NULL DEFAULT '';
    ALTER TABLE problem ADD COLUMN fixing_change_id TEXT;
    ALTER TABLE problem ADD COLUMN resolved_at INTEGER;
    ALTER TABLE problem ADD COLUMN closed_at INTEGER;
    ALTER TABLE problem ADD COLUMN resolution TEXT NOT NULL DEFAULT '';
    CREATE INDEX problem_status ON problem (status);
    CREATE INDEX problem_fixing_change ON problem (fixing_change_id)
        WHERE fixing_change_id IS NOT NULL;

    CREATE TABLE freeze_window (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        starts_at  INTEGER NOT NULL,
        ends_at    INTEGER NOT NULL,
        reason     TEXT NOT NULL,
        ci_ids     TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX freeze_window_period ON freeze_window (ends_at, starts_at);

    ALTER TABLE alert ADD COLUMN change_id TEXT;
    CREATE INDEX alert_change ON alert (change_id) WHERE change_id IS NOT NULL;
    """,
    # 14: an incident saved before its root alert gets the alert's "source/name" when the
    # alert is saved (save_alerts finds its incidents through this index), and those
    # saved so before this release get it now
    """
    CREATE INDEX incident_root_fingerprint ON incident (root_fingerprint)
        WHERE root_fingerprint IS NOT NULL;
    UPDATE incident SET root_signature = (
        SELECT a.source || '/' || a.name FROM alert AS a
        WHERE a.fingerprint = incident.root_fingerprint
    )
    WHERE root_signature IS NULL AND root_fingerprint IS NOT NULL;
    """,
]
