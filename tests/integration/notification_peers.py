"""The real peers the notification tests deliver to, all on 127.0.0.1 and started by the
test: an SMTP server (aiosmtpd) recording what arrives, plain, STARTTLS or implicit TLS
with a certificate made for the test, AUTH optional, and able to refuse (a 4xx or 5xx
reply) or to hold a message before answering; an HTTP receiver of webhooks that checks
the HMAC signature and records the idempotency keys; a server that accepts connections
and never answers (a timeout)."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "servicegraph test SMTP")])
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@dataclass
class Received:
    """A mail as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    login: str | None

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"]).strip()  # folded when the line is long

    @property
    def key(self) -> str:
        return str(self.message["X-Servicegraph-Key"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content()).replace("\r\n", "\n")


@dataclass
class SmtpInbox:
    """An aiosmtpd handler. ``refuse(rcpt)`` may return a reply ("550 ...") to refuse a
    recipient; ``on_data`` is called with each message before it is answered, in the
    server's thread (a test kills the sender from there); ``hold_s`` delays the answer."""

    refuse: Callable[[str], str | None] | None = None
    on_data: Callable[[Received], None] | None = None
    hold_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)  # every RCPT TO, accepted or not
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:  # fmt: skip
        with self.lock:
            self.attempts.append(address)
        answer = self.refuse(address) if self.refuse is not None else None
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data.login.decode() if session.auth_data else None
        got = Received(envelope.mail_from, list(envelope.rcpt_tos), parsed,
                       session.ssl is not None, login)  # fmt: skip
        with self.lock:
            self.received.append(got)
        if self.on_data is not None:
            self.on_data(got)
        if self.hold_s:
            await asyncio.sleep(self.hold_s)
        return "250 Message accepted"

    def keys(self) -> list[str]:
        with self.lock:
            return [r.key for r in self.received]


def authenticator(login: str, password: str) -> Callable[..., AuthResult]:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            login.encode(),
            password.encode(),
        )
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    return check


@contextmanager
def smtp_server(inbox: SmtpInbox, **options: Any) -> Iterator[int]:
    """An aiosmtpd server on 127.0.0.1; yields its port. ``options``: aiosmtpd's
    (tls_context=, require_starttls=, authenticator=, auth_required=, ssl_context=)."""
    port = free_port()
    controller = Controller(inbox, hostname=HOST, port=port, server_hostname="mx.test", **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@contextmanager
def silent_server() -> Iterator[int]:
    """Accepts connections and never says a word: every client times out."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


@dataclass
class Delivery:
    key: str
    event: str
    signed: bool  # the signature header matched the body and the secret
    document: dict[str, Any]


class WebhookReceiver:
    """A real HTTP server receiving webhooks: checks each signature against ``secret``,
    answers ``status(n)`` for the n-th request (200 by default), calls ``on_request``
    before answering."""

    def __init__(
        self,
        secret: str,
        *,
        status: Callable[[int], int] | None = None,
        on_request: Callable[[Delivery], None] | None = None,
    ) -> None:
        self.secret = secret.encode()
        self.status = status or (lambda n: 200)
        self.on_request = on_request
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(receiver.secret, body, hashlib.sha256).hexdigest()
                signed = hmac.compare_digest(
                    expected, self.headers.get("X-Servicegraph-Signature", "")
                )
                got = Delivery(
                    self.headers.get("Idempotency-Key", ""),
                    self.headers.get("X-Servicegraph-Event", ""),
                    signed,
                    json.loads(body),
                )
                with receiver.lock:
                    receiver.deliveries.append(got)
                    n = len(receiver.deliveries)
                if receiver.on_request is not None:
                    receiver.on_request(got)
                code = receiver.status(n)
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (a timeout test) or was killed

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}/hooks/desk"

    def keys(self) -> list[str]:
        with self.lock:
            return [d.key for d in self.deliveries]

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
