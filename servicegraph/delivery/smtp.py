"""Mail over SMTP (smtplib): STARTTLS, implicit TLS or plain, AUTH when configured.

One connection serves consecutive messages (a batch of 50 is one TLS handshake, not 50);
any failure drops it, and the next message connects afresh. Every socket operation is
bounded by ``timeout_s``, so a server that accepts and then says nothing costs one
timeout, not a hung sender.

Each mail carries its idempotency key as the ``Message-ID`` (``<key@sender-domain>``):
a message sent again after a crash is the same message to every mail system and client
that deduplicates by Message-ID. ``References`` names the ticket, so a ticket's mails
thread together; ``Auto-Submitted: auto-generated`` (RFC 3834) keeps auto-responders
from answering them.

Failures become ``DeliveryFailed``: a 4xx reply, a timeout, a refused or dropped
connection are temporary; a 5xx reply (unknown mailbox, authentication refused) or a
certificate that does not verify is permanent. Both are retried by the sender up to its
attempt limit, then dead-lettered.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from pathlib import Path
from typing import Literal

from servicegraph.delivery.channel import DeliveryFailed
from servicegraph.ticketing.outbox import OutboxMessage

Security = Literal["none", "starttls", "ssl"]


@dataclass(frozen=True)
class SmtpOptions:
    host: str
    port: int
    sender: str  # the From and envelope sender address
    security: Security = "starttls"
    username: str | None = None
    password: str | None = None
    timeout_s: float = 10.0
    ca_file: Path | None = None
    verify: bool = True
    local_hostname: str | None = None  # what EHLO says; None: this host's FQDN


def message_id(key: str, sender: str) -> str:
    """The Message-ID of the message with idempotency ``key``."""
    return f"<{key}@{sender.rpartition('@')[2]}>"


def build_mail(message: OutboxMessage, sender: str) -> EmailMessage:
    """The RFC 5322 mail of an outbox message."""
    domain = sender.rpartition("@")[2]
    mail = EmailMessage(policy=SMTP_POLICY)
    mail["From"] = sender
    mail["To"] = message.target
    mail["Subject"] = message.subject
    mail["Date"] = format_datetime(message.created_at)
    mail["Message-ID"] = message_id(message.key, sender)
    if message.ticket_id:
        thread = f"<{message.ticket_id}@{domain}>"
        mail["References"] = thread
        mail["In-Reply-To"] = thread
        mail["X-Servicegraph-Ticket"] = message.ticket_id
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Auto-Response-Suppress"] = "All"
    mail["X-Servicegraph-Event"] = message.event
    mail["X-Servicegraph-Key"] = message.key
    mail.set_content(message.body, charset="utf-8")
    return mail


def _reply(code: int, text: bytes | str) -> str:
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(said.split())}"


class SmtpTransport:
    def __init__(self, options: SmtpOptions) -> None:
        self.options = options
        self.timeout_s = options.timeout_s
        self._conn: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.options.ca_file is not None:
            context.load_verify_locations(cafile=str(self.options.ca_file))
        if not self.options.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> smtplib.SMTP:
        o = self.options
        conn: smtplib.SMTP
        if o.security == "ssl":
            conn = smtplib.SMTP_SSL(
                o.host, o.port, local_hostname=o.local_hostname, timeout=o.timeout_s,
                context=self._context(),
            )  # fmt: skip
        else:
            conn = smtplib.SMTP(
                o.host, o.port, local_hostname=o.local_hostname, timeout=o.timeout_s
            )
        try:
            conn.ehlo()
            if o.security == "starttls":
                conn.starttls(context=self._context())  # refuses when not offered
                conn.ehlo()
            if o.username is not None:
                conn.login(o.username, o.password or "")
        except BaseException:
            conn.close()
            raise
        return conn

    def send(self, message: OutboxMessage) -> None:
        mail = build_mail(message, self.options.sender)
        try:
            if self._conn is None:
                self._conn = self._connect()
            refused = self._conn.send_message(
                mail, from_addr=self.options.sender, to_addrs=[message.target]
            )
        except smtplib.SMTPRecipientsRefused as exc:
            self._drop()
            code, text = exc.recipients.get(message.target, (550, b"recipient refused"))
            raise DeliveryFailed(
                f"{message.target} refused: {_reply(code, text)}", permanent=code >= 500
            ) from exc
        except smtplib.SMTPResponseException as exc:  # sender refused, DATA, AUTH, HELO
            self._drop()
            raise DeliveryFailed(
                f"the server answered {_reply(exc.smtp_code, exc.smtp_error)}",
                permanent=exc.smtp_code >= 500,
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:  # no STARTTLS, no AUTH
            self._drop()
            raise DeliveryFailed(f"the server does not support it: {exc}", permanent=True) from exc
        except ssl.SSLCertVerificationError as exc:
            self._drop()
            raise DeliveryFailed(
                f"the server's certificate does not verify: {exc.verify_message}", permanent=True
            ) from exc
        except (TimeoutError, smtplib.SMTPServerDisconnected, smtplib.SMTPException) as exc:
            self._drop()
            raise DeliveryFailed(f"{type(exc).__name__}: {exc or 'timed out'}") from exc
        except OSError as exc:  # refused, unreachable, reset, TLS failures
            self._drop()
            where = f"{self.options.host}:{self.options.port}"
            raise DeliveryFailed(f"cannot reach {where}: {exc}") from exc
        if refused:  # one recipient per message: refused means not delivered
            self._drop()
            code, text = refused.get(message.target, (550, b"recipient refused"))
            raise DeliveryFailed(
                f"{message.target} refused: {_reply(code, text)}", permanent=code >= 500
            )

    def close(self) -> None:
        """Say QUIT and hang up (the end of a batch)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()

    def _drop(self) -> None:
        """Hang up without a word: after a failure the server may not answer a QUIT."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
