"""Outbound webhooks: the event's JSON document POSTed to a configured endpoint, signed.

Headers of every delivery:

- ``X-Servicegraph-Signature: sha256=<hex>``: HMAC-SHA256 of the exact body bytes with
  the endpoint's secret; the receiver recomputes it and compares in constant time;
- ``Idempotency-Key``: the message's key (also ``idempotency_key`` in the body); a
  delivery repeated after a crash or a lost answer carries the same one;
- ``X-Servicegraph-Event``: created, assigned, replied, resolved, closed, at_risk,
  breached, escalated.

A 2xx answer is a delivery. Anything else is not: 3xx (redirects are not followed: the
signature was made for this URL), 4xx (permanent, but 408 and 429 temporary) and 5xx,
refused connections and timeouts (``timeout_s`` bounds connecting and each read). The
sender retries with backoff up to its limit, then dead-letters the message.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servicegraph.delivery.channel import DeliveryFailed
from servicegraph.ticketing.outbox import OutboxMessage

SIGNATURE_HEADER = "X-Servicegraph-Signature"
USER_AGENT = "servicegraph-webhooks/1"
MAX_ANSWER = 64 * 1024  # bytes of an answer read (and thrown away) before closing
TEMPORARY_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True)
class WebhookEndpoint:
    name: str
    url: str
    secret: bytes
    timeout_s: float = 10.0


def signature(secret: bytes, body: bytes) -> str:
    """The value of the signature header of ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx


class WebhookTransport:
    def __init__(self, endpoints: Mapping[str, WebhookEndpoint]) -> None:
        self.endpoints = dict(endpoints)
        self.timeout_s = max((e.timeout_s for e in self.endpoints.values()), default=10.0)
        self._opener = urllib.request.build_opener(_NoRedirects())

    def send(self, message: OutboxMessage) -> None:
        endpoint = self.endpoints.get(message.target)
        if endpoint is None:
            raise DeliveryFailed(
                f"no webhook endpoint named '{message.target}' (notifications.webhooks)",
                permanent=True,
            )
        body = message.body.encode("utf-8")
        request = urllib.request.Request(
            endpoint.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": USER_AGENT,
                SIGNATURE_HEADER: signature(endpoint.secret, body),
                "Idempotency-Key": message.key,
                "X-Servicegraph-Event": message.event,
            },
        )
        try:
            with self._opener.open(request, timeout=endpoint.timeout_s) as answer:
                answer.read(MAX_ANSWER)
                status = int(answer.status)
        except urllib.error.HTTPError as exc:
            with exc:
                status = exc.code
                permanent = 400 <= status < 500 and status not in TEMPORARY_4XX
                raise DeliveryFailed(
                    f"{endpoint.name} answered {status} {exc.reason}", permanent=permanent
                ) from exc
        except urllib.error.URLError as exc:  # refused, unreachable, TLS, name lookup
            raise DeliveryFailed(f"cannot reach {endpoint.name}: {exc.reason}") from exc
        except (TimeoutError, OSError) as exc:  # a read timed out or the peer hung up
            raise DeliveryFailed(f"{endpoint.name}: {type(exc).__name__}: {exc}") from exc
        if not 200 <= status < 300:
            raise DeliveryFailed(f"{endpoint.name} answered {status}")

    def close(self) -> None:
        """Nothing kept open: each delivery is its own connection."""
