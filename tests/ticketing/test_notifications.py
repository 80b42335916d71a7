"""Notifications as the desk enqueues them (no network: the outbox is read back).

On a real SQLite desk through the TicketService: who gets which event (the requester, the
new agent, the group's mailbox or members, never the agent who acted, never an inactive
one), in which language (the configured map by organisation, login, mail domain; the
default otherwise), the webhook documents, idempotency keys that make a repeated cause
enqueue nothing, escalations, the events setting, and nothing at all without settings.
Templates: overrides, added languages with fallback, and every kind of bad template
refused at load with its name (nothing applied); a template that fails only on a real
ticket never fails the ticket change.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.config import Settings
from servicegraph.ticketing.model import Incident
from servicegraph.ticketing.notification_policy import NotificationPolicy
from servicegraph.ticketing.notifications import idempotency_key
from servicegraph.ticketing.outbox import OutboxChannel, OutboxEntry
from servicegraph.ticketing.sla import Clock, ClockKind, ClockState
from servicegraph.ticketing.sla_config import EscalationLevel
from tests.ticketing.desk_world import T0, Desk
from tests.ticketing.notifications_desk import make_notifying_desk, notifications, queued


@pytest.fixture()
def desk(tmp_path: Path) -> Iterator[Desk]:
    yield from make_notifying_desk(tmp_path, notifications())


def mails(entries: list[OutboxEntry]) -> dict[tuple[str, str], OutboxEntry]:
    """(event, address) -> the mail."""
    found = {}
    for e in entries:
        if e.message.channel is OutboxChannel.EMAIL:
            key = (e.message.event, e.message.target)
            assert key not in found, f"two mails of {key}"
            found[key] = e
    return found


def hooks(entries: list[OutboxEntry]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (e.message.event, json.loads(e.message.body))
        for e in entries
        if e.message.channel is OutboxChannel.WEBHOOK
    ]


def work(desk: Desk, actor: str, method: str, *args: Any, **kwargs: Any) -> Incident:
    desk.clock.advance(minutes=1)
    with change_context(actor):
        result: Incident = getattr(desk.tickets, method)(*args, **kwargs)
    return result


def test_without_notification_settings_nothing_is_enqueued(tmp_path: Path) -> None:
    for desk in make_notifying_desk(tmp_path, None):
        assert desk.services.notifier is None and desk.tickets.notifier is None
        assert desk.services.sender is None
        t = desk.create(requester="c-jane", category="network/vpn")
        work(desk, "dave", "assign", t.id, agent="dave")
        work(desk, "dave", "comment", t.id, "on it", to_requester=True)
        assert desk.services.outbox.counts().pending == 0
        assert "notifications" not in desk.services.settings.schedule


def test_a_new_ticket_tells_its_requester_in_their_language_and_its_group(desk: Desk) -> None:
    t = desk.create(actor="alice", requester="c-jane", category="network/vpn", title="VPN down")
    entries = queued(desk)
    got = mails(entries)
    assert set(got) == {("created", "jane@acme.com"), ("assigned", "network@desk.example")}
    created = got[("created", "jane@acme.com")].message
    # Jane is of ACME, which reads German; the network team's mailbox the default English
    assert created.subject == f"[#{t.number}] VPN down (eingegangen)"
    assert "Guten Tag Jane," in created.body and "Team Network team" in created.body
    assert f"https://desk.example/t/{t.id}" in created.body
    assigned = got[("assigned", "network@desk.example")].message
    assert assigned.subject == f"[#{t.number}] Assigned to Network team: VPN down"
    assert "waits for an agent" in assigned.body
    assert all(m.message.created_at == T0 and m.message.ticket_id == t.id for m in entries)
    assert len({m.message.key for m in entries}) == len(entries)
    # one document per event for the webhook, whose key is the message's
    docs = hooks(entries)
    assert [event for event, _ in docs] == ["created", "assigned"]
    sent = [e for e in entries if e.message.target == "chatops"]
    for (event, doc), entry in zip(docs, sent, strict=True):
        assert doc["idempotency_key"] == entry.message.key
        assert doc["event"] == event and doc["version"] == 1 and doc["actor"] == "alice"
        assert doc["ticket"]["id"] == t.id and doc["ticket"]["assignment_group"] == "network"
        assert doc["occurred_at"] == T0.isoformat()


def test_assignments_tell_the_new_agent_or_the_members_never_the_actor(desk: Desk) -> None:
    # a group without a mailbox: each active member but the one who filed it (erin is
    # inactive, frank filed it)
    t = desk.create(actor="frank", assignment_group="noc", requester="c-joe")
    got = mails(queued(desk))
    assert set(got) == {
        ("created", "joe@globex.com"),
        ("assigned", "alice@desk.example"),
        ("assigned", "bob@desk.example"),
    }
    assert got[("assigned", "bob@desk.example")].message.subject.startswith("[#1] Zugewiesen")
    assert "Hello Alice," in got[("assigned", "alice@desk.example")].message.body
    # alice gives it to bob: bob is told (in German), alice is not
    work(desk, "alice", "assign", t.id, agent="bob")
    got = mails(queued(desk))
    assert set(got) == {("assigned", "bob@desk.example")}
    body = got[("assigned", "bob@desk.example")].message.body
    assert "Alice hat Ihnen Ticket #1 zugewiesen." in body
    # alice takes it herself: nobody hears of it by mail, the webhook still does
    work(desk, "alice", "assign", t.id, agent="alice")
    entries = queued(desk)
    assert mails(entries) == {}
    assert [event for event, _ in hooks(entries)] == ["assigned"]


def test_replies_resolution_and_closure_reach_the_requester(desk: Desk) -> None:
    t = desk.create(actor="alice", assignment_group="noc", assignee="bob", requester="c-joe")
    queued(desk)
    work(desk, "bob", "comment", t.id, "internal: the switch again")
    assert queued(desk) == []  # an internal note tells nobody
    work(desk, "bob", "comment", t.id, "Could you restart the laptop?", to_requester=True)
    got = mails(queued(desk))
    assert set(got) == {("replied", "joe@globex.com")}
    reply = got[("replied", "joe@globex.com")].message
    assert reply.subject == "[#1] Printer on fire"
    assert "Bob wrote on your ticket #1:\n\nCould you restart the laptop?" in reply.body
    work(desk, "bob", "transition", t.id, "start")
    assert mails(queued(desk)) == {}
    work(desk, "bob", "transition", t.id, "resolve", resolution_code="fixed",
         resolution="Replaced the toner.")  # fmt: skip
    resolved = mails(queued(desk))[("resolved", "joe@globex.com")].message
    assert resolved.subject == "[#1] Resolved: Printer on fire"
    assert "Resolution:\nReplaced the toner." in resolved.body
    work(desk, "bob", "transition", t.id, "close", close_code="done")
    entries = queued(desk)
    assert set(mails(entries)) == {("closed", "joe@globex.com")}
    assert [event for event, _ in hooks(entries)] == ["closed"]


def test_the_auto_close_job_tells_the_requester(desk: Desk) -> None:
    t = desk.create(actor="alice", assignment_group="noc", assignee="bob", requester="c-jane")
    work(desk, "bob", "transition", t.id, "resolve", resolution_code="fixed", resolution="ok")
    queued(desk)
    assert desk.tickets.auto_close(T0 + dt.timedelta(days=30)) == 1
    got = mails(queued(desk))
    assert set(got) == {("closed", "jane@acme.com")}
    assert got[("closed", "jane@acme.com")].message.subject == "[#1] Geschlossen: Printer on fire"


def test_only_the_configured_events_are_sent(tmp_path: Path) -> None:
    hook = {"name": "oncall", "url": "http://127.0.0.1:9/x", "secret": "x" * 16,
            "events": ["breached"]}  # fmt: skip
    for desk in make_notifying_desk(tmp_path, notifications(events=["resolved"], webhooks=[hook])):
        t = desk.create(actor="alice", assignment_group="noc", assignee="bob", requester="c-joe")
        assert queued(desk) == []
        work(desk, "bob", "transition", t.id, "resolve", resolution_code="fixed", resolution="x")
        assert [(e.message.event, e.message.target) for e in queued(desk)] == [
            ("resolved", "joe@globex.com")
        ]


def test_a_repeated_cause_enqueues_nothing_twice(desk: Desk) -> None:
    t = desk.create(actor="alice", requester="c-jane", category="network/vpn")
    first = queued(desk)
    notifier = desk.services.notifier
    assert notifier is not None
    entries = desk.history(t.id)
    again = notifier.for_change(None, t, entries, T0)
    assert sorted(m.key for m in again) == sorted(e.message.key for e in first)
    with desk.services.tickets.unit() as unit:
        unit.enqueue(again)  # the same unit retried: the keys are in the outbox already
    assert desk.services.outbox.counts().pending == len(first)
    # the key is the cause's: ticket, event, instant, recipient
    mail = next(e.message for e in first if e.message.event == "created")
    stamp = str(int((T0 - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds() * 1_000_000))
    assert mail.key == idempotency_key(t.id, "created", stamp, "jane@acme.com")
    assert mail.key.startswith(f"{t.id}.created.")


def clock(state: ClockState = ClockState.BREACHED) -> Clock:
    return Clock(ClockKind.RESOLUTION, dt.timedelta(hours=4), T0, dt.timedelta(hours=5),
                 dt.timedelta(hours=-1), False, state, T0)  # fmt: skip


def test_escalations_mail_whom_the_level_names(desk: Desk) -> None:
    t = desk.create(actor="alice", assignment_group="noc", assignee="bob", requester="c-joe")
    queued(desk)
    notifier = desk.services.notifier
    assert notifier is not None
    now = T0 + dt.timedelta(hours=5)
    level = EscalationLevel(2, ClockKind.RESOLUTION, 1.0, ("group_manager", "oncall@example.org"))
    messages = notifier.escalation(
        t, event="escalated", clock=clock(), level=level,
        recipients=["group_manager", "oncall@example.org", "assignee", "bob@desk.example"],
        now=now,
    )  # fmt: skip
    got = {(m.channel.value, m.target): m for m in messages}
    # noc's manager alice, the on-call address, bob once (as assignee and by address)
    assert set(got) == {
        ("email", "alice@desk.example"),
        ("email", "oncall@example.org"),
        ("email", "bob@desk.example"),
        ("webhook", "chatops"),
    }
    assert got[("email", "bob@desk.example")].subject == (
        "[#1] Eskaliert: Lösung Ziel verletzt: Printer on fire"
    )
    assert "Hello Alice," in got[("email", "alice@desk.example")].body
    doc = json.loads(got[("webhook", "chatops")].body)
    assert doc["event"] == "escalated" and doc["actor"] == "system"
    assert doc["sla"] == {
        "clock": "resolution", "level": 2, "share": 1.0, "state": "breached",
        "due": T0.isoformat(), "target": 14400.0, "elapsed": 18000.0, "remaining": -3600.0,
        "breached_at": T0.isoformat(),
    }  # fmt: skip
    # fired again (a second job, a restart): the same keys, so the outbox keeps one each
    later = notifier.escalation(
        t, event="escalated", clock=clock(), level=level,
        recipients=["group_manager", "oncall@example.org", "assignee"], now=now + dt.timedelta(1),
    )  # fmt: skip
    assert {m.key for m in later} == {m.key for m in messages}
    with pytest.raises(ValueError, match="at_risk, breached or escalated"):
        notifier.escalation(t, event="created", clock=clock(), level=1, recipients=[], now=now)


def test_at_risk_goes_to_the_group_when_nobody_holds_the_ticket(desk: Desk) -> None:
    t = desk.create(actor="alice", requester="c-jane", category="network/vpn")
    notifier = desk.services.notifier
    assert notifier is not None
    messages = notifier.escalation(
        t, event="at_risk", clock=clock(ClockState.AT_RISK), level=0, recipients=["assignee"],
        now=T0,
    )  # fmt: skip
    mail = next(m for m in messages if m.channel is OutboxChannel.EMAIL)
    assert mail.target == "network@desk.example"
    assert mail.subject.startswith("[#1] SLA at risk (resolution, due 09:00 UTC)")


# -- templates ----------------------------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


BAD_TEMPLATES = [
    ("syntax", {"de/created.txt.j2": "Subject: x\n{% if %}\n"},
     "notifications.templates.de.created", "does not compile"),
    ("misspelt name", {"en/resolved.txt.j2": "Subject: {{ ticket.titel }}\n"},
     "notifications.templates.en.resolved", "does not render"),
    ("no subject", {"en/replied.txt.j2": "Hello {{ recipient.name }}\n"},
     "notifications.templates.en.replied", "Subject: ..."),
    ("empty subject", {"en/closed.txt.j2": "Subject: {{ ticket.close_code or '' }}\n"},
     "notifications.templates.en.closed", "empty subject"),
    ("a field of the bare ticket", {"en/assigned.txt.j2": "Subject: {{ assignee.name }}\n"},
     "notifications.templates.en.assigned", "does not render"),
    ("not an event", {"en/craeted.txt.j2": "Subject: x\n"}, "notifications.templates.en.craeted",
     "not an event"),
    ("not a language", {"english/created.txt.j2": "Subject: x\n"},
     "notifications.templates.english", "not a language code"),
    ("not a template", {"en/created.txt": "Subject: x\n"}, "notifications.templates.en",
     "is not a template"),
    ("a broken partial", {"en/_footer.txt.j2": "{{ ticket.id }\n"},
     "notifications.templates.en._footer", "does not compile"),
    ("calls out of the sandbox", {"en/created.txt.j2": "Subject: {{ ''.__class__.__mro__ }}\n"},
     "notifications.templates.en.created", "does not render"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("files", "field", "reason"), [c[1:] for c in BAD_TEMPLATES], ids=[c[0] for c in BAD_TEMPLATES]
)
def test_a_template_that_does_not_render_is_refused_at_load_by_name(
    tmp_path: Path, files: dict[str, str], field: str, reason: str
) -> None:
    directory = write(tmp_path / "templates", files)
    with pytest.raises(ValidationFailed) as caught:
        NotificationPolicy.build(email_events=None, templates_dir=directory)
    assert caught.value.field == field
    assert reason in caught.value.reason
    # the settings refuse to load: no desk starts with it, so nothing is applied
    with pytest.raises(pydantic.ValidationError, match=field.replace(".", r"\.")):
        Settings(data_dir=tmp_path, notifications=notifications(templates_dir=str(directory)))


def test_every_bad_template_is_named_at_once(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "t", {"en/created.txt.j2": "{{ x }}\n", "de/closed.txt.j2": "Subject: {{ y }}"}
    )
    with pytest.raises(ValidationErrors) as caught:
        NotificationPolicy.build(email_events=None, templates_dir=directory)
    assert {e.field for e in caught.value.errors} == {
        "notifications.templates.de.closed",
        "notifications.templates.en.created",
    }


def test_other_bad_notification_settings_are_named(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"languages": {"c-jane": "fr"}}, r"languages\.c-jane: no templates in 'fr'"),
        ({"default_language": "fr"}, r"templates\.fr\.created: the default language"),
        ({"events": ["created", "escalation"]}, r"notifications\.events\.1: 'escalation'"),
        ({"timezone": "Mars/Olympus"}, r"notifications\.timezone"),
        ({"ticket_url": "https://desk/{ticket}"}, r"notifications\.ticket_url"),
        ({"webhooks": [{"name": "a", "url": "ftp://x/", "secret": "x" * 16}]},
         r"notifications\.webhooks\.0\.url"),
        ({"webhooks": [{"name": "a", "url": "http://x/", "secret": "short"}]},
         r"notifications\.webhooks\.0\.secret"),
        ({"smtp": {"host": "h", "from": "not an address"}}, r"notifications\.smtp\.from"),
        ({"smtp": {"host": "h", "from": "a@b.org", "username": "u"}}, r"username and password"),
        ({"smtp": {"host": "h", "from": "a@b.org", "security": "tls"}}, r"security"),
        ({"backoff_base_s": 60, "backoff_cap_s": 10}, r"notifications\.backoff_cap_s"),
    ]  # fmt: skip
    for overrides, said in cases:
        with pytest.raises(pydantic.ValidationError, match=said):
            Settings(data_dir=tmp_path, notifications=notifications(**overrides))


def test_templates_are_overridden_and_languages_added_by_directory(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "templates",
        {
            "en/created.txt.j2": "Subject: NEW {{ ticket.number }}\n{% include 'en/_sig.txt.j2' %}",
            "en/_sig.txt.j2": "-- the desk\n",
            "fr/created.txt.j2": "Subject: Nouveau ticket #{{ ticket.number }}\nBonjour\n",
        },
    )
    settings = notifications(templates_dir=str(directory), languages={"c-joe": "fr"})
    for desk in make_notifying_desk(tmp_path / "desk", settings):
        t = desk.create(actor="alice", assignment_group="noc", assignee="bob", requester="c-joe")
        got = mails(queued(desk))
        assert got[("created", "joe@globex.com")].message.subject == "Nouveau ticket #1"
        work(desk, "bob", "transition", t.id, "resolve", resolution_code="fixed", resolution="x")
        # French has no resolved template: the default language's
        resolved = mails(queued(desk))[("resolved", "joe@globex.com")].message
        assert resolved.subject == "[#1] Resolved: Printer on fire"
    policy = NotificationPolicy.build(email_events=None, templates_dir=directory)
    sample = {"ticket": {"number": 5}}
    assert policy.templates.render("en", "created", sample).subject == "NEW 5"
    assert policy.templates.render("en", "created", sample).body == "-- the desk\n"


def test_a_template_failing_on_a_real_ticket_never_fails_the_change(tmp_path: Path) -> None:
    # renders for the samples (tickets 42 and 7), divides by zero for ticket 1
    directory = write(
        tmp_path / "templates",
        {"en/created.txt.j2": "Subject: {{ 10 // (ticket.number - 1) }}\n"},
    )
    for desk in make_notifying_desk(tmp_path / "desk", notifications(templates_dir=str(directory))):
        t = desk.create(actor="alice", assignment_group="noc", assignee="bob", requester="c-joe")
        assert t.number == 1
        mail = mails(queued(desk))[("created", "joe@globex.com")].message
        assert mail.subject == "[#1] Printer on fire (created)"
        assert desk.tickets.get(t.id).number == 1


def test_the_sla_escalation_job_notifies_through_the_desks_notifier(tmp_path: Path) -> None:
    targets = {p: {"response": "1h", "resolution": "4h"} for p in range(1, 6)}
    sla = {"policies": [{"name": "standard", "targets": targets, "escalation": [
        {"clock": "resolution", "at": 0.5, "notify": ["group_manager", "oncall@example.org"]},
    ]}]}  # fmt: skip
    for desk in make_notifying_desk(tmp_path, notifications(), sla=sla):
        desk.services.desk.escalation.clock = desk.clock
        desk.services.desk.sla.clock = desk.clock
        t = desk.create(actor="alice", assignment_group="noc", assignee="bob", requester="c-joe")
        with change_context("bob"):
            desk.tickets.comment(t.id, "looking", to_requester=True)  # stops the response clock
        queued(desk)
        job = desk.services.desk.escalation
        steps = [(0.5, "escalated"), (0.75, "at_risk"), (1.01, "breached")]
        seen: list[tuple[str, str, str]] = []
        subjects: dict[tuple[str, str], str] = {}
        for share, event in steps:
            desk.clock.now = t.opened_at + dt.timedelta(hours=4) * share
            job.run()
            got = queued(desk)
            seen += [(e.message.event, e.message.channel.value, e.message.target) for e in got]
            subjects.update({(e.message.event, e.message.target): e.message.subject for e in got})
            assert {e.message.event for e in got} == {event}
        assert subjects[("escalated", "alice@desk.example")] == (
            "[#1] Escalated: resolution at 50% of its target: Printer on fire"
        )
        assert subjects[("at_risk", "bob@desk.example")].startswith("[#1] SLA gefährdet (Lösung")
        assert subjects[("breached", "bob@desk.example")] == (
            "[#1] SLA verletzt (Lösung): Printer on fire"
        )
        assert seen == [
            ("escalated", "email", "alice@desk.example"),
            ("escalated", "email", "oncall@example.org"),
            ("escalated", "webhook", "chatops"),
            ("at_risk", "email", "bob@desk.example"),
            ("at_risk", "webhook", "chatops"),
            ("breached", "email", "bob@desk.example"),
            ("breached", "webhook", "chatops"),
        ]
        job.run()
        assert queued(desk) == []  # each level once, so each message once
