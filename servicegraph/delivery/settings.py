"""Notification settings (the ``notifications:`` section, ``SERVICEGRAPH_NOTIFICATIONS__*``).

Nothing is configured by default, and then nothing is enqueued: the notifier exists only
when a channel does (an SMTP server, or at least one webhook endpoint). Everything is
checked at start-up, the templates too (compiled and rendered against sample tickets by
``ticketing.notification_policy.NotificationPolicy.build``), each problem named by its path
(``notifications.smtp.port``, ``notifications.templates.de.created``). Secrets (the SMTP
password, webhook secrets) are ``SecretStr`` and never echoed in errors.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.ticketing.notification_documents import EVENTS
from servicegraph.ticketing.notification_policy import NotificationPolicy
from servicegraph.ticketing.outbox import RetryPolicy
from servicegraph.ticketing.people import check_email, check_key

DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
MIN_SECRET = 16


def _said(exc: ValidationFailed | ValidationErrors) -> str:
    errors = exc.errors if isinstance(exc, ValidationErrors) else [exc]
    return "; ".join(f"{e.field}: {e.reason}" if e.field else e.reason for e in errors)


class SmtpSettings(BaseModel):
    """The mail server the desk sends through (smtplib): STARTTLS (587), implicit TLS
    (``ssl``, 465) or plain (``none``, 25: a relay on the same network), with AUTH
    LOGIN/PLAIN when a username is given."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, populate_by_name=True)

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535, description="Default by security.")
    security: Literal["none", "starttls", "ssl"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(alias="from", description="The From address, e.g. desk@example.org.")
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    ca_file: Path | None = Field(
        default=None, description="A CA bundle to trust besides the system's (own CAs)."
    )
    verify: bool = Field(default=True, description="Check the server's certificate and name.")

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]

    @model_validator(mode="after")
    def _check(self) -> SmtpSettings:
        try:
            check_email(self.sender, "from")
        except ValidationFailed as exc:
            raise ValueError(f"notifications.smtp.from: {exc.reason}") from None
        if (self.username is None) != (self.password is None):
            raise ValueError(
                "notifications.smtp: give username and password together (AUTH needs both)"
            )
        if self.username is not None and self.security == "none":
            raise ValueError(
                "notifications.smtp.security: 'none' would send the password in clear; "
                "use starttls or ssl"
            )
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"notifications.smtp.ca_file: {self.ca_file} is not a file")
        return self


class WebhookSettings(BaseModel):
    """An endpoint that receives a signed JSON document per event (``delivery.webhook``)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: str
    url: str
    secret: SecretStr = Field(description=f"HMAC-SHA256 key, at least {MIN_SECRET} characters.")
    events: list[str] | None = Field(default=None, description="Unset: every event.")
    timeout_s: float = Field(default=10.0, gt=0, le=300)


class NotificationSettings(BaseModel):
    """Templates, recipients' languages, channels, and how the sender retries."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    events: list[str] | None = Field(
        default=None, description=f"Events that send mail; unset: all ({', '.join(EVENTS)})."
    )
    default_language: str = "en"
    languages: dict[str, str] = Field(
        default_factory=dict,
        description="Who reads which language: a login, contact or group id, an address, an "
        "organisation id or a mail domain -> a language of the templates (en, de, ...).",
    )
    templates_dir: Path | None = Field(
        default=None, description="Templates overriding the shipped ones: <lang>/<event>.txt.j2."
    )
    ticket_url: str | None = Field(
        default=None, description="A link to the ticket in mails, e.g. https://desk/t/{id}."
    )
    timezone: str = Field(default="UTC", description="The zone times in mails are shown in.")
    monitoring: bool = Field(
        default=False,
        description="Monitoring incidents notify too (created, routed to a group, resolved: "
        "webhooks and the group's mailbox); off, a storm sends nothing but the SLA "
        "escalations of its incidents.",
    )
    smtp: SmtpSettings | None = None
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    max_attempts: int = Field(default=8, ge=1, le=100, description="Then a dead letter.")
    backoff_base_s: float = Field(default=30.0, gt=0, description="Wait after the 1st failure.")
    backoff_cap_s: float = Field(default=3600.0, gt=0, description="Longest wait between tries.")
    batch_size: int = Field(default=50, ge=1, le=10_000, description="Messages per claim.")
    lease_s: float = Field(
        default=300.0,
        ge=1,
        description="How long a claimed message is the sender's: a sender that died holds "
        "its messages this long, then another sends them.",
    )
    send_interval_s: float = Field(
        default=5.0, gt=0, description="How often the sender job looks for due messages."
    )
    sent_retention_days: float = Field(
        default=7.0, gt=0, description="Sent messages are kept this long, then pruned."
    )

    _policy: NotificationPolicy | None = PrivateAttr(default=None)

    @property
    def active(self) -> bool:
        """A channel is configured: without one nothing is enqueued at all."""
        return self.smtp is not None or bool(self.webhooks)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            base=dt.timedelta(seconds=self.backoff_base_s),
            cap=dt.timedelta(seconds=self.backoff_cap_s),
        )

    def zone(self) -> dt.tzinfo:
        return dt.UTC if self.timezone == "UTC" else zoneinfo.ZoneInfo(self.timezone)

    def policy(self) -> NotificationPolicy | None:
        """The checked policy (templates loaded), or None when no channel is configured."""
        if not self.active:
            return None
        if self._policy is None:
            self._policy = NotificationPolicy.build(
                email_events=(self.events if self.events is not None else EVENTS)
                if self.smtp is not None
                else None,
                webhooks=[(w.name, w.events) for w in self.webhooks],
                default_language=self.default_language,
                languages=self.languages,
                templates_dir=self.templates_dir,
                ticket_url=self.ticket_url,
                timezone=self.zone(),
            )
        return self._policy

    @model_validator(mode="after")
    def _check(self) -> NotificationSettings:
        if self.backoff_cap_s < self.backoff_base_s:
            raise ValueError("notifications.backoff_cap_s: must not be below backoff_base_s")
        try:
            self.zone()
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"notifications.timezone: '{self.timezone}' is not a time zone (e.g. Europe/Berlin)"
            ) from None
        names: set[str] = set()
        for index, hook in enumerate(self.webhooks):
            where = f"notifications.webhooks.{index}"
            try:
                check_key(hook.name, "name")
            except ValidationFailed as exc:
                raise ValueError(f"{where}.name: {exc.reason}") from None
            if hook.name in names:
                raise ValueError(f"{where}.name: '{hook.name}' names two endpoints")
            names.add(hook.name)
            parts = urlsplit(hook.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{where}.url: must be an http:// or https:// URL with a host")
            if len(hook.secret.get_secret_value()) < MIN_SECRET:
                raise ValueError(f"{where}.secret: must be at least {MIN_SECRET} characters")
        try:
            self.policy()  # the templates, languages and events, checked now
        except (ValidationFailed, ValidationErrors) as exc:
            raise ValueError(_said(exc)) from None
        return self
