"""``kill -9`` of the notification sender mid-batch loses nothing and sends again only the
message that was on the wire, which the receivers recognise by its idempotency key.

150 tickets are raised through the TicketService: 300 messages (a mail to the requester
and a signed webhook document each). ``servicegraph notifications send --loop`` runs as
a separate process against a real SMTP server and a real HTTP receiver. The SMTP server
kills it with SIGKILL while it holds a mail's DATA unanswered (the mail arrived; its
sender never heard so): the 37th mail or the first after it that is not the last of its
batch of 20, so that claimed messages are left behind. A second process is killed the
same way by the HTTP receiver from its 60th request on; a third one finishes and is
stopped with SIGTERM. Every key then arrived, exactly the two that were in flight when
the kills landed arrived twice, and deduplicating by key leaves exactly the 300.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from servicegraph.cmdb.model import utcnow
from tests.integration.notification_peers import (
    Delivery,
    Received,
    SmtpInbox,
    WebhookReceiver,
    smtp_server,
)
from tests.ticketing.notifications_desk import SECRET, make_notifying_desk

TICKETS = 150
BATCH = 20
# the first sender is killed at the first mail from its 37th on, the second at the first
# webhook from its 60th on, that is not the last of its batch: mid-batch
KILL_AT_MAIL = 37
KILL_AT_HOOK = 60


class Kills:
    """Which sender process is running, and the kills the receivers make."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.lock = threading.Lock()
        self.process: subprocess.Popen[bytes] | None = None
        self.phase = 0  # 1: the first sender, 2: the second, 3: the last
        self.mails = 0  # received in this phase
        self.hooks = 0
        self.killed: dict[int, str] = {}  # phase -> the key in flight when it was killed
        self.done = {1: threading.Event(), 2: threading.Event()}

    def start(self, phase: int, process: subprocess.Popen[bytes]) -> None:
        with self.lock:
            self.phase, self.process, self.mails, self.hooks = phase, process, 0, 0

    def _mid_batch(self, key: str) -> bool:
        """Whether the sender holds claimed messages besides the one it is sending."""
        with sqlite3.connect(self.database) as conn:
            (others,) = conn.execute(
                "SELECT count(*) FROM notification_outbox WHERE sent_at IS NULL "
                "AND claimed_until IS NOT NULL AND key != ?",
                (key,),
            ).fetchone()
        return bool(others)

    def _kill(self, key: str) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)  # before the receiver answers
        self.killed[self.phase] = key
        self.done[self.phase].set()
        self.phase = -self.phase

    def on_mail(self, got: Received) -> None:
        with self.lock:
            self.mails += 1
            if self.phase == 1 and self.mails >= KILL_AT_MAIL and self._mid_batch(got.key):
                self._kill(got.key)

    def on_hook(self, got: Delivery) -> None:
        with self.lock:
            self.hooks += 1
            if self.phase == 2 and self.hooks >= KILL_AT_HOOK and self._mid_batch(got.key):
                self._kill(got.key)


def outbox(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT key, channel, sent_at, dead_at, claimed_until FROM notification_outbox "
            "ORDER BY id"
        ).fetchall()


def test_kill_9_mid_batch_loses_none_and_repeats_only_the_message_in_flight(
    tmp_path: Path,
) -> None:
    data = tmp_path / "desk"
    kills = Kills(data / "servicegraph.sqlite3")
    inbox = SmtpInbox(on_data=kills.on_mail)
    with smtp_server(inbox) as port, WebhookReceiver(SECRET, on_request=kills.on_hook) as hooks:
        notify: dict[str, Any] = {
            "smtp": {"host": "127.0.0.1", "port": port, "security": "none",
                     "from": "desk@example.org", "timeout_s": 10},
            "webhooks": [{"name": "chatops", "url": hooks.url, "secret": SECRET,
                          "events": ["created"], "timeout_s": 10}],
            "events": ["created"],
            "batch_size": BATCH,
            "lease_s": 2,  # a killed sender's claimed messages wait this long
            "max_attempts": 8,
        }  # fmt: skip
        for desk in make_notifying_desk(data, notify):
            desk.clock.now = utcnow() - dt.timedelta(seconds=1)  # due at once for real senders
            for i in range(TICKETS):
                desk.create(actor="alice", requester="c-joe", title=f"ticket {i}")
        rows = outbox(data / "servicegraph.sqlite3")
        expected = {"email": {r[0] for r in rows if r[1] == "email"},
                    "webhook": {r[0] for r in rows if r[1] == "webhook"}}  # fmt: skip
        assert len(rows) == 2 * TICKETS and all(len(v) == TICKETS for v in expected.values())

        config = tmp_path / "servicegraph.yaml"
        config.write_text(yaml.safe_dump({"notifications": notify}))
        env = {**os.environ, "SERVICEGRAPH_DATA_DIR": str(data),
               "SERVICEGRAPH_CONFIG": str(config)}  # fmt: skip

        def sender(phase: int) -> subprocess.Popen[bytes]:
            log = (tmp_path / f"sender-{phase}.log").open("wb")
            process = subprocess.Popen(
                [sys.executable, "-m", "servicegraph.cli", "notifications", "send", "--loop",
                 "--interval", "0.2"],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            kills.start(phase, process)
            return process

        for phase in (1, 2):
            process = sender(phase)
            assert kills.done[phase].wait(120), (tmp_path / f"sender-{phase}.log").read_text()
            assert process.wait(30) == -signal.SIGKILL
            # mid-batch: the killed sender had sent some, and left claimed ones unsent
            state = outbox(data / "servicegraph.sqlite3")
            in_flight = next(r for r in state if r[0] == kills.killed[phase])
            assert in_flight[2] is None and in_flight[4] is not None  # claimed, never marked
            assert any(r[2] is None and r[4] is not None and r[0] != in_flight[0] for r in state)

        last = sender(3)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the outbox is empty (the leases run out)
            if all(r[2] is not None for r in outbox(data / "servicegraph.sqlite3")):
                break
            time.sleep(0.1)
        last.send_signal(signal.SIGTERM)  # finishes the message on the wire, then exits
        assert last.wait(30) == 0, (tmp_path / "sender-3.log").read_text()

    mails, documents = collections.Counter(inbox.keys()), collections.Counter(hooks.keys())
    # none lost, none foreign
    assert set(mails) == expected["email"] and set(documents) == expected["webhook"]
    # sent twice: only the message each kill interrupted, once more
    assert {k: n for k, n in mails.items() if n > 1} == {kills.killed[1]: 2}
    assert {k: n for k, n in documents.items() if n > 1} == {kills.killed[2]: 2}
    assert sum(mails.values()) == TICKETS + 1 and sum(documents.values()) == TICKETS + 1
    # the receiving side, deduplicating by key, has each message exactly once
    assert len(set(inbox.keys()) | set(hooks.keys())) == 2 * TICKETS
    twice = [r for r in inbox.received if r.key == kills.killed[1]]
    assert twice[0].message_id == twice[1].message_id and twice[0].body == twice[1].body
    assert all(d.signed for d in hooks.deliveries)
    state = outbox(data / "servicegraph.sqlite3")
    assert all(r[2] is not None and r[3] is None for r in state)  # all sent, no dead letter
