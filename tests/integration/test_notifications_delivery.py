"""Notifications delivered to real peers started by the test, and read where they arrived.

A ticket created, assigned, replied to and resolved through the TicketService reaches
the right people in their language at a real SMTP server (aiosmtpd on 127.0.0.1) and a
real HTTP receiver, which checks every HMAC signature; STARTTLS with AUTH and implicit
TLS against a certificate made by the test; refusals (451, 550, HTTP 503/404) and
servers that time out are retried on the backoff schedule and end as dead letters,
while ticket work goes on; the CLI lists and retries the dead letters.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from servicegraph.cli import app
from servicegraph.cmdb.context import change_context
from servicegraph.delivery.sender import OutboxSender
from servicegraph.delivery.smtp import message_id
from servicegraph.ticketing.model import Incident
from tests.integration.notification_peers import (
    SmtpInbox,
    WebhookReceiver,
    authenticator,
    self_signed,
    server_context,
    silent_server,
    smtp_server,
)
from tests.ticketing.desk_world import T0, Clock, Desk
from tests.ticketing.notifications_desk import SECRET, make_notifying_desk, notifications

SENDER = "desk@example.org"


def plain_smtp(port: int, **more: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "security": "none", "from": SENDER,
            "timeout_s": 5, **more}  # fmt: skip


def hook(receiver: WebhookReceiver, **more: Any) -> dict[str, Any]:
    return {"name": "chatops", "url": receiver.url, "secret": SECRET, "timeout_s": 5, **more}


@pytest.fixture()
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as r:
        yield r


def desk_for(tmp_path: Path, **notify: Any) -> Iterator[Desk]:
    return make_notifying_desk(tmp_path / "desk", notifications(**notify))


def sender_of(desk: Desk, clock: Clock | None = None) -> OutboxSender:
    sender = desk.services.sender
    assert sender is not None
    sender.clock = clock or Clock(T0 + dt.timedelta(minutes=30))
    return sender


def work(desk: Desk, actor: str, method: str, *args: Any, **kwargs: Any) -> Incident:
    desk.clock.advance(minutes=1)
    with change_context(actor):
        result: Incident = getattr(desk.tickets, method)(*args, **kwargs)
    return result


def test_a_ticket_reaches_the_right_people_in_their_language(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    inbox = SmtpInbox()
    with smtp_server(inbox) as port:
        for desk in desk_for(tmp_path, smtp=plain_smtp(port), webhooks=[hook(receiver)]):
            t = desk.create(actor="alice", requester="c-jane", category="network/vpn",
                            title="VPN down since 8:00")  # fmt: skip
            work(desk, "alice", "assign", t.id, agent="dave")
            work(desk, "dave", "comment", t.id, "Which client version?", to_requester=True)
            work(desk, "dave", "transition", t.id, "start")
            work(desk, "dave", "transition", t.id, "resolve", resolution_code="fixed",
                 resolution="Renewed the gateway certificate.")  # fmt: skip
            queued = desk.services.outbox.counts().pending
            report = sender_of(desk).drain()
            assert (report.sent, report.failed, report.dead) == (queued, 0, 0)
            assert sender_of(desk).drain().claimed == 0  # nothing twice
            outbox = desk.services.outbox.counts()
            assert (outbox.pending, outbox.sent, outbox.dead) == (0, queued, 0)

    n = t.number
    got = [(r.rcpt_tos, r.subject) for r in inbox.received]
    assert got == [
        (["jane@acme.com"], f"[#{n}] VPN down since 8:00 (eingegangen)"),
        (["network@desk.example"], f"[#{n}] Assigned to Network team: VPN down since 8:00"),
        (["dave@desk.example"], f"[#{n}] Assigned to Dave: VPN down since 8:00"),
        (["jane@acme.com"], f"[#{n}] VPN down since 8:00"),
        (["jane@acme.com"], f"[#{n}] Gelöst: VPN down since 8:00"),
    ]
    created, _, assigned, replied, resolved = inbox.received
    assert "wir haben Ihre Störungsmeldung erhalten" in created.body
    assert "Alice assigned ticket #1 to you." in assigned.body
    assert "Dave hat zu Ihrem Ticket #1 geschrieben:\n\nWhich client version?" in replied.body
    assert "Lösung:\nRenewed the gateway certificate." in resolved.body
    for r in inbox.received:
        assert r.mail_from == SENDER and r.message["From"] == SENDER
        assert r.message_id == message_id(r.key, SENDER) == f"<{r.key}@example.org>"
        assert r.message["References"] == f"<{t.id}@example.org>"
        assert r.message["Auto-Submitted"] == "auto-generated"
        assert r.message["X-Servicegraph-Ticket"] == t.id
        assert not r.tls
    assert len({r.key for r in inbox.received}) == 5
    # the webhook: one signed document per event, keyed as the outbox keyed it
    assert [d.event for d in receiver.deliveries] == [
        "created", "assigned", "assigned", "replied", "resolved"
    ]  # fmt: skip
    assert all(d.signed for d in receiver.deliveries)
    assert [d.document["idempotency_key"] for d in receiver.deliveries] == receiver.keys()
    assert receiver.deliveries[-1].document["ticket"]["resolution"] == (
        "Renewed the gateway certificate."
    )
    assert receiver.deliveries[-1].document["ticket"]["status"] == "resolved"


def test_starttls_and_auth_against_a_certificate_of_the_test(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    inbox = SmtpInbox()
    tls = {"tls_context": server_context(cert, key), "require_starttls": True,
           "authenticator": authenticator("desk", "pa55word"), "auth_required": True}  # fmt: skip
    with smtp_server(inbox, **tls) as port:
        smtp = plain_smtp(port, security="starttls", username="desk", password="pa55word",
                          ca_file=str(cert))  # fmt: skip
        for desk in desk_for(tmp_path, smtp=smtp, webhooks=[]):
            desk.create(actor="alice", requester="c-joe", assignment_group="noc", assignee="bob")
            report = sender_of(desk).drain()
            assert (report.sent, report.failed) == (2, 0)
        (joe, bob) = inbox.received
        assert (joe.rcpt_tos, joe.tls, joe.login) == (["joe@globex.com"], True, "desk")
        assert bob.subject == "[#1] Zugewiesen an Bob: Printer on fire"

        # a wrong password and an unverifiable certificate: refused, to be retried
        for case, more in (
            ("auth", {"password": "wrong"}),
            ("cert", {"ca_file": None}),
        ):
            smtp = plain_smtp(port, security="starttls", username="desk", password="pa55word",
                              ca_file=str(cert))  # fmt: skip
            smtp.update(more)
            for desk in desk_for(tmp_path / case, smtp=smtp, webhooks=[]):
                desk.create(actor="alice", requester="c-joe", assignment_group="noc",
                            assignee="bob")  # fmt: skip
                report = sender_of(desk).drain()
                assert (report.sent, report.failed) == (0, 2)
                (entry,) = desk.services.outbox.get([1]).values()
                assert entry.last_error is not None and entry.last_error.startswith("permanent")
                said = "535" if case == "auth" else "does not verify"
                assert said in entry.last_error
    assert len(inbox.received) == 2


def test_implicit_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    inbox = SmtpInbox()
    with smtp_server(inbox, ssl_context=server_context(cert, key)) as port:
        smtp = plain_smtp(port, security="ssl", ca_file=str(cert))
        for desk in desk_for(tmp_path, smtp=smtp, webhooks=[], events=["created"]):
            desk.create(actor="alice", requester="c-joe")
            assert sender_of(desk).drain().sent == 1
    (mail,) = inbox.received
    assert mail.rcpt_tos == ["joe@globex.com"] and mail.subject == "[#1] Printer on fire (received)"


def backoff(**more: Any) -> dict[str, Any]:
    """Three attempts, 10 s then 20 s apart; mail on new tickets only."""
    return {"max_attempts": 3, "backoff_base_s": 10, "backoff_cap_s": 3600,
            "events": ["created"], **more}  # fmt: skip


def test_refusals_are_retried_on_the_backoff_schedule_then_dead_lettered(tmp_path: Path) -> None:
    tries: dict[str, int] = {}

    def refuse(address: str) -> str | None:
        tries[address] = tries.get(address, 0) + 1
        if address == "joe@globex.com" and tries[address] <= 2:
            return "451 4.3.0 mailbox busy, try later"
        if address == "jane@acme.com":
            return "550 5.1.1 no such mailbox"
        return None

    inbox = SmtpInbox(refuse=refuse)
    with smtp_server(inbox) as port:
        for desk in desk_for(tmp_path, smtp=plain_smtp(port), webhooks=[], **backoff()):
            desk.create(actor="alice", requester="c-joe")  # message 1
            desk.create(actor="alice", requester="c-jane")  # message 2
            clock = Clock(T0 + dt.timedelta(minutes=1))
            sender = sender_of(desk, clock)
            outbox = desk.services.outbox
            first = sender.drain()
            assert (first.sent, first.failed) == (0, 2)
            joe, jane = outbox.get([1])[1], outbox.get([2])[2]
            assert joe.next_attempt_at == clock.now + dt.timedelta(seconds=10)
            busy = "451 4.3.0 mailbox busy, try later"
            assert joe.last_error == f"temporary: joe@globex.com refused: {busy}"
            assert jane.last_error == "permanent: jane@acme.com refused: 550 5.1.1 no such mailbox"
            # not due yet: nothing is tried; ticket work goes on meanwhile
            clock.advance(seconds=9)
            assert sender.drain().claimed == 0
            meanwhile = desk.create(actor="alice", requester="c-hans")
            assert desk.tickets.get(meanwhile.id).requester == "c-hans"
            clock.advance(seconds=1)  # 10 s: the second attempt, then 20 s for the third
            assert (sender.drain().failed, outbox.get([1])[1].attempts) == (2, 2)
            assert outbox.get([2])[2].next_attempt_at == clock.now + dt.timedelta(seconds=20)
            clock.advance(seconds=20)
            third = sender.drain()
            assert (third.sent, third.dead) == (1, 1)  # joe's got through, jane's is dead
            (dead,) = outbox.dead_letters()
            assert (dead.id, dead.attempts, dead.dead_at) == (2, 3, clock.now)
            clock.advance(days=1)
            assert sender.drain().claimed == 0  # a dead letter is tried no more
    assert tries == {"joe@globex.com": 3, "jane@acme.com": 3, "hans@example.de": 1}
    assert [r.rcpt_tos for r in inbox.received] == [["hans@example.de"], ["joe@globex.com"]]


def test_a_server_that_never_answers_costs_a_timeout_and_never_blocks_ticket_work(
    tmp_path: Path,
) -> None:
    with silent_server() as port:
        smtp = plain_smtp(port, timeout_s=0.25)
        # a writer waits at most 0.1 s for the lock: had the sender held it while waiting
        # for the server, the tickets below could not be written
        settings = {"sqlite_lock_timeout": 0.1}
        for desk in make_notifying_desk(
            tmp_path / "desk", notifications(smtp=smtp, webhooks=[], **backoff()), settings=settings
        ):
            for _ in range(3):
                desk.create(actor="alice", requester="c-joe")
            clock = Clock(T0 + dt.timedelta(minutes=5))
            sender = sender_of(desk, clock)
            done = threading.Event()
            result: list[Any] = []

            def send(
                sender: OutboxSender = sender,
                done: threading.Event = done,
                result: list[Any] = result,
            ) -> None:
                result.append(sender.drain())
                done.set()

            thread = threading.Thread(target=send)
            thread.start()
            created = [desk.create(actor="alice", title=f"meanwhile {i}") for i in range(5)]
            work(desk, "alice", "assign", created[0].id, group="noc", agent="bob")
            thread.join(30)
            assert done.is_set() and len(created) == 5
            (report,) = result
            assert (report.sent, report.failed) == (0, 3)
            (entry,) = desk.services.outbox.get([1]).values()
            assert entry.last_error is not None and "timed out" in entry.last_error
            for _ in range(2):  # the remaining attempts, each after its backoff
                clock.advance(hours=1)
                sender.drain()
            counts = desk.services.outbox.counts()
            assert (counts.dead, counts.sent) == (3, 0)
            assert {e.attempts for e in desk.services.outbox.dead_letters()} == {3}


def test_webhooks_are_retried_with_the_same_key_and_a_fresh_signature(tmp_path: Path) -> None:
    with WebhookReceiver(SECRET, status=lambda n: 503 if n <= 2 else 200) as flaky:
        notify = notifications(smtp=None, webhooks=[hook(flaky, events=["created"])], **backoff())
        for desk in make_notifying_desk(tmp_path / "desk", notify):
            desk.create(actor="alice", requester="c-joe")
            clock = Clock(T0 + dt.timedelta(minutes=1))
            sender = sender_of(desk, clock)
            assert sender.drain().failed == 1
            (entry,) = desk.services.outbox.get([1]).values()
            assert entry.last_error == "temporary: chatops answered 503 Service Unavailable"
            clock.advance(seconds=10)
            assert sender.drain().failed == 1
            clock.advance(seconds=20)
            assert sender.drain().sent == 1
    assert len(flaky.deliveries) == 3
    assert len(set(flaky.keys())) == 1 and all(d.signed for d in flaky.deliveries)

    # a receiver with another secret rejects what it cannot verify: a 4xx is permanent
    wrong = WebhookReceiver("another-secret-0123456789", status=lambda n: 401)
    with wrong:
        notify = notifications(
            smtp=None, webhooks=[hook(wrong, events=["created"])], **backoff(max_attempts=1)
        )
        for desk in make_notifying_desk(tmp_path / "other", notify):
            desk.create(actor="alice", requester="c-joe")
            report = sender_of(desk).drain()
            assert (report.sent, report.dead) == (0, 1)
            (dead,) = desk.services.outbox.dead_letters()
            assert dead.last_error == "permanent: chatops answered 401 Unauthorized"
    assert [d.signed for d in wrong.deliveries] == [False]


def test_a_slow_webhook_receiver_is_a_bounded_timeout(tmp_path: Path) -> None:
    release = threading.Event()
    with WebhookReceiver(SECRET, on_request=lambda d: release.wait(5)) as slow:
        notify = notifications(smtp=None, webhooks=[hook(slow, timeout_s=0.3, events=["created"])])
        for desk in make_notifying_desk(tmp_path / "desk", notify):
            desk.create(actor="alice", requester="c-joe")
            report = sender_of(desk).drain()
            release.set()
            assert report.failed == 1
            (entry,) = desk.services.outbox.get([1]).values()
            assert entry.last_error is not None and "timed out" in entry.last_error


def test_the_cli_lists_and_retries_dead_letters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = SmtpInbox(refuse=lambda a: "550 5.1.1 no such mailbox" if "joe" in a else None)
    with smtp_server(inbox) as port:
        notify = notifications(smtp=plain_smtp(port), webhooks=[], **backoff(max_attempts=1))
        for desk in make_notifying_desk(tmp_path, notify):
            desk.create(actor="alice", requester="c-joe")
            desk.create(actor="alice", requester="c-jane")
        config = tmp_path / "servicegraph.yaml"
        config.write_text(yaml.safe_dump({"notifications": notify}))
        monkeypatch.setenv("SERVICEGRAPH_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("SERVICEGRAPH_CONFIG", str(config))
        cli = CliRunner()

        def run(*args: str, code: int = 0) -> str:
            result = cli.invoke(app, list(args))
            assert result.exit_code == code, result.output + result.stderr
            return result.stdout if code == 0 else result.stderr

        assert run("notifications", "send") == "1 sent, 1 dead-lettered\n"
        assert json.loads(run("notifications", "status", "--json")) == {
            "pending": 0, "sent": 1, "dead": 1
        }  # fmt: skip
        (dead,) = json.loads(run("notifications", "dead", "--json"))
        assert (dead["id"], dead["target"], dead["event"], dead["attempts"]) == (
            1, "joe@globex.com", "created", 1
        )  # fmt: skip
        assert "550 5.1.1 no such mailbox" in dead["last_error"]
        assert "joe@globex.com" in run("notifications", "dead")
        assert "not dead letters: 2, 99" in run("notifications", "retry", "2", "99", code=1)
        assert "not both" in run("notifications", "retry", "1", "--all", code=2)
        assert run("notifications", "retry", "--all") == "1 dead letter(s) due again\n"
        inbox.refuse = None  # the mailbox exists now
        assert run("notifications", "send") == "1 sent\n"
        assert run("notifications", "dead") == "no dead letters\n"
    assert sorted(r.rcpt_tos[0] for r in inbox.received) == ["jane@acme.com", "joe@globex.com"]


def test_send_without_a_channel_says_what_to_configure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVICEGRAPH_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["notifications", "send"])
    assert result.exit_code == 1
    assert "no notification channel is configured" in result.stderr


def test_the_periodic_job_sends_in_the_embedded_scheduler_and_is_a_beat_entry(
    tmp_path: Path,
) -> None:
    from servicegraph import tasks
    from servicegraph.runtime import jobs
    from servicegraph.runtime.scheduler import EmbeddedScheduler

    inbox = SmtpInbox()
    with smtp_server(inbox) as port:
        notify = notifications(smtp=plain_smtp(port), webhooks=[], events=["created"])
        for desk in make_notifying_desk(tmp_path / "desk", notify):
            settings = desk.services.settings
            assert settings.schedule["notifications"] == settings.notifications.send_interval_s
            desk.create(actor="alice", requester="c-joe")
            scheduler = EmbeddedScheduler(desk.services, {"notifications": 0.05}, jobs.PERIODIC)
            scheduler.start()
            try:
                deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
                while not inbox.received and dt.datetime.now(dt.UTC) < deadline:
                    threading.Event().wait(0.05)
            finally:
                scheduler.stop()
            assert [r.rcpt_tos for r in inbox.received] == [["joe@globex.com"]]
            assert desk.services.outbox.counts().sent == 1
            beat = tasks.configure(
                settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
            ).conf.beat_schedule
            assert beat["notifications every 5 s"]["task"] == "servicegraph.notifications"
    for desk in make_notifying_desk(tmp_path / "quiet", None):
        assert jobs.notifications(desk.services) == {
            "skipped": "no notification channel: set notifications.smtp or .webhooks"
        }
