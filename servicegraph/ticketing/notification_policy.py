"""What the ``notifications:`` settings configure, built and checked once at start.

The notifier reads this frozen policy (which events are mailed, which webhook routes get
which events, the language map, the ticket link, the time zone), so a mistake in the
settings is refused when the desk starts, named by its path (``notifications.events.2``,
``notifications.languages.acme``), and the templates are loaded and test-rendered here
(``notification_templates`` against ``notification_samples``), not at the first message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.notification_documents import EVENTS, NotificationEvent
from servicegraph.ticketing.notification_samples import sample_contexts
from servicegraph.ticketing.notification_templates import LANGUAGE_PATTERN, Templates


@dataclass(frozen=True, slots=True)
class WebhookRoute:
    """A configured endpoint (its URL and secret stay with the sender) and its events."""

    name: str
    events: frozenset[NotificationEvent]


@dataclass(frozen=True)
class NotificationPolicy:
    """What ``notifications:`` settings configure, built and checked (``build``)."""

    templates: Templates
    email_events: frozenset[NotificationEvent] = frozenset()  # empty: no mail at all
    webhooks: tuple[WebhookRoute, ...] = ()
    languages: Mapping[str, str] = field(default_factory=dict)
    ticket_url: str | None = None  # "https://desk.example/tickets/{id}" ({id}, {number})
    timezone: dt.tzinfo = dt.UTC

    @property
    def default_language(self) -> str:
        return self.templates.default_language

    @property
    def active(self) -> bool:
        """Whether any message can come out at all (else the desk skips the notifier)."""
        return bool(self.email_events) or any(w.events for w in self.webhooks)

    @classmethod
    def build(
        cls,
        *,
        email_events: Iterable[str] | None,
        webhooks: Iterable[tuple[str, Iterable[str] | None]] = (),
        default_language: str = "en",
        languages: Mapping[str, str] | None = None,
        templates_dir: Path | None = None,
        ticket_url: str | None = None,
        timezone: dt.tzinfo = dt.UTC,
    ) -> NotificationPolicy:
        """``email_events`` None: no mail (no SMTP server); ``webhooks``: (name, events or
        None for all). Raises ValidationFailed / ValidationErrors naming the setting."""
        if not LANGUAGE_PATTERN.match(default_language):
            raise ValidationFailed(
                f"'{default_language}' is not a language code (en, de ...)",
                field="notifications.default_language",
            )
        if ticket_url is not None:
            try:
                ticket_url.format(id="inc-1", number=1)
            except (KeyError, IndexError, ValueError, AttributeError) as exc:
                raise ValidationFailed(
                    f"may use {{id}} and {{number}} only ({exc})", field="notifications.ticket_url"
                ) from None
        templates = Templates.load(
            EVENTS,
            sample_contexts(ticket_url),
            default_language=default_language,
            directory=templates_dir,
            timezone=timezone,
        )
        mapped = {}
        for key, language in (languages or {}).items():
            where = f"notifications.languages.{key}"
            if not templates.has(language):
                have = ", ".join(sorted(templates.languages))
                raise ValidationFailed(
                    f"no templates in '{language}' (templates: {have})", field=where
                )
            mapped[key.strip().casefold()] = language
        routes = []
        for index, (name, events) in enumerate(webhooks):
            chosen = _events(events, f"notifications.webhooks.{index}.events")
            routes.append(WebhookRoute(name, chosen))
        return cls(
            templates=templates,
            email_events=frozenset()
            if email_events is None
            else _events(email_events, "notifications.events"),
            webhooks=tuple(routes),
            languages=MappingProxyType(mapped),
            ticket_url=ticket_url,
            timezone=timezone,
        )


def _events(values: Iterable[str] | None, field: str) -> frozenset[NotificationEvent]:
    if values is None:
        return frozenset(NotificationEvent)
    chosen = set()
    for index, value in enumerate(values):
        try:
            chosen.add(NotificationEvent(value))
        except ValueError:
            raise ValidationFailed(
                f"'{value}' is not an event; events: {', '.join(EVENTS)}", field=f"{field}.{index}"
            ) from None
    return frozenset(chosen)
