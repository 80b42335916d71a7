"""SLA policies: which response and resolution targets a ticket is held to, and on which calendar.

A policy matches tickets by service, organisation and ticket type (``None`` = any) and gives,
per priority 1..5, a first-response and a resolution target. Selection picks the **most
specific** matching policy (organisation+service > service > organisation > type > default;
a type on top of the others breaks ties between equal ranks), then declaration order. This is
iTop's "contract x service" attachment made explicit, without its "shortest target wins" rule,
which surprises users when a generic policy silently beats the one written for their customer.

Policies are validated whole when loaded (``SlaPolicies.build``): an unknown calendar, a bad
duration, a priority out of 1..5, an at-risk share out of (0, 1) or a policy without targets is
refused with ``ValidationFailed`` naming the path (``sla.policies[2].targets.1.response``), so
nothing half-configured is ever applied.

Durations: ``"30m"``, ``"4h"``, ``"2d"``, ``"1h30m"`` or a number of seconds. They are amounts
of *counted* time on the policy's calendar: on a Mon-Fri 08:00-18:00 calendar ``"2d"`` is 48
working hours (almost five working days); write one working day as ``"10h"``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.lifecycle import PendingReason

RESPONSE = "response"
RESOLUTION = "resolution"
DEFAULT_PAUSING_REASONS: frozenset[str] = frozenset(
    {PendingReason.AWAITING_REQUESTER.value, PendingReason.AWAITING_VENDOR.value}
)
DEFAULT_AT_RISK = 0.75
DEFAULT_CALENDAR = "24x7"

_PRIORITIES = range(1, 6)
_KNOWN_REASONS = frozenset(r.value for r in PendingReason)
_KEYS = frozenset(
    {
        "name",
        "service",
        "organisation",
        "ticket_type",
        "targets",
        "calendar",
        "pausing_reasons",
        "at_risk",
    }
)
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class Calendar(Protocol):
    """What the clocks need of a business calendar (``ticketing.calendar.BusinessCalendar``)."""

    def elapsed(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """Working time between two instants (zero when ``end <= start``)."""
        ...

    def add(self, start: dt.datetime, duration: dt.timedelta) -> dt.datetime:
        """The instant at which ``duration`` of working time has passed since ``start``."""
        ...


def parse_duration(value: object, *, field: str) -> dt.timedelta:
    """A positive target duration from ``"1h30m"``-style text or a number of seconds."""
    if isinstance(value, bool):
        raise ValidationFailed("a duration must be text like '4h' or seconds", field=field)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value.strip().lower())
        if not value.strip() or match is None:
            raise ValidationFailed(
                f"'{value}' is not a duration (use e.g. '30m', '4h', '2d', '1h30m')", field=field
            )
        d, h, m, s = (int(g) if g else 0 for g in match.groups())
        seconds = float(((d * 24 + h) * 60 + m) * 60 + s)
    else:
        raise ValidationFailed("a duration must be text like '4h' or seconds", field=field)
    if seconds <= 0:
        raise ValidationFailed("a target must be longer than zero", field=field)
    return dt.timedelta(seconds=seconds)


@dataclass(frozen=True)
class Targets:
    """The two targets of one priority, in counted (business) time."""

    response: dt.timedelta
    resolution: dt.timedelta


@dataclass(frozen=True)
class SlaPolicy:
    """One policy: what it matches, its targets per priority, its calendar and pause rules."""

    name: str
    targets: Mapping[int, Targets]
    calendar: str = DEFAULT_CALENDAR
    service: str | None = None
    organisation: str | None = None
    ticket_type: str | None = None
    pausing_reasons: frozenset[str] = DEFAULT_PAUSING_REASONS
    at_risk: float = DEFAULT_AT_RISK

    def matches(
        self, service: str | None, organisation: str | None, ticket_type: str | None
    ) -> bool:
        """True when every criterion the policy sets equals the ticket's value."""
        return (
            (self.service is None or self.service == service)
            and (self.organisation is None or self.organisation == organisation)
            and (self.ticket_type is None or self.ticket_type == ticket_type)
        )

    @property
    def specificity(self) -> tuple[int, int]:
        """Rank for selection: (org+service 4 > service 3 > organisation 2 > type 1 > 0, type)."""
        if self.service is not None and self.organisation is not None:
            rank = 4
        elif self.service is not None:
            rank = 3
        elif self.organisation is not None:
            rank = 2
        elif self.ticket_type is not None:
            rank = 1
        else:
            rank = 0
        return rank, int(self.ticket_type is not None)

    def target(self, priority: int, kind: str) -> dt.timedelta:
        """The ``kind`` ("response" or "resolution") target of ``priority``."""
        t = self.targets[priority]
        return t.response if kind == RESPONSE else t.resolution


@dataclass(frozen=True)
class SlaPolicies:
    """The validated policies of a desk, in declaration order."""

    policies: tuple[SlaPolicy, ...] = ()

    @classmethod
    def build(
        cls,
        raw: Sequence[Mapping[str, Any]],
        *,
        calendars: Mapping[str, Calendar],
        path: str = "sla.policies",
    ) -> SlaPolicies:
        """Validate mappings (from settings) into policies; the first problem is raised."""
        if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
            raise ValidationFailed("must be a list of policies", field=path)
        policies: list[SlaPolicy] = []
        seen: set[str] = set()
        for i, item in enumerate(raw):
            policy = _policy(item, calendars=calendars, path=f"{path}[{i}]")
            if policy.name in seen:
                raise ValidationFailed(
                    f"policy name '{policy.name}' is used twice", field=f"{path}[{i}].name"
                )
            seen.add(policy.name)
            policies.append(policy)
        return cls(tuple(policies))

    def select(
        self,
        service: str | None,
        organisation: str | None,
        ticket_type: str | None,
        priority: int,
    ) -> SlaPolicy | None:
        """The most specific policy matching the ticket and covering its priority, or None.

        A policy without targets for ``priority`` does not apply, so a customer policy that
        covers only P1/P2 leaves P3 tickets to the service's or the default policy.
        """
        best: SlaPolicy | None = None
        for policy in self.policies:
            if priority not in policy.targets:
                continue
            if not policy.matches(service, organisation, ticket_type):
                continue
            # strictly greater: the first declared of equally specific policies wins
            if best is None or policy.specificity > best.specificity:
                best = policy
        return best


def _text(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed("must be non-empty text", field=field)
    return value.strip()


def _policy(item: object, *, calendars: Mapping[str, Calendar], path: str) -> SlaPolicy:
    if not isinstance(item, Mapping):
        raise ValidationFailed("a policy must be a mapping", field=path)
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise ValidationFailed(
            f"unknown key '{unknown[0]}' (known: {', '.join(sorted(_KEYS))})",
            field=f"{path}.{unknown[0]}",
        )
    name = _text(item.get("name"), f"{path}.name")
    if name is None:
        raise ValidationFailed("a policy needs a name", field=f"{path}.name")
    calendar = _text(item.get("calendar", DEFAULT_CALENDAR), f"{path}.calendar")
    if calendar is None or calendar not in calendars:
        known = ", ".join(sorted(calendars)) or "none"
        raise ValidationFailed(
            f"unknown calendar '{calendar}' (known: {known})", field=f"{path}.calendar"
        )
    return SlaPolicy(
        name=name,
        targets=_targets(item.get("targets"), f"{path}.targets"),
        calendar=calendar,
        service=_text(item.get("service"), f"{path}.service"),
        organisation=_text(item.get("organisation"), f"{path}.organisation"),
        ticket_type=_text(item.get("ticket_type"), f"{path}.ticket_type"),
        pausing_reasons=_reasons(item.get("pausing_reasons"), f"{path}.pausing_reasons"),
        at_risk=_share(item.get("at_risk", DEFAULT_AT_RISK), f"{path}.at_risk"),
    )


def _targets(raw: object, path: str) -> dict[int, Targets]:
    if not isinstance(raw, Mapping) or not raw:
        raise ValidationFailed("a policy needs targets for at least one priority", field=path)
    out: dict[int, Targets] = {}
    for key, value in raw.items():
        try:
            priority = int(key)
        except (TypeError, ValueError):
            priority = 0
        if isinstance(key, bool) or priority not in _PRIORITIES:
            raise ValidationFailed(f"priority '{key}' is not 1..5", field=f"{path}.{key}")
        if priority in out:
            raise ValidationFailed(f"priority {priority} is given twice", field=f"{path}.{key}")
        here = f"{path}.{key}"
        if not isinstance(value, Mapping):
            raise ValidationFailed("must map 'response' and 'resolution' to durations", field=here)
        extra = sorted(set(value) - {RESPONSE, RESOLUTION})
        if extra:
            raise ValidationFailed(f"unknown target '{extra[0]}'", field=f"{here}.{extra[0]}")
        for kind in (RESPONSE, RESOLUTION):
            if kind not in value:
                raise ValidationFailed(f"a {kind} target is required", field=f"{here}.{kind}")
        out[priority] = Targets(
            response=parse_duration(value[RESPONSE], field=f"{here}.{RESPONSE}"),
            resolution=parse_duration(value[RESOLUTION], field=f"{here}.{RESOLUTION}"),
        )
    return out


def _reasons(raw: object, path: str) -> frozenset[str]:
    if raw is None:
        return DEFAULT_PAUSING_REASONS
    if isinstance(raw, str) or not isinstance(raw, Iterable):
        raise ValidationFailed("must be a list of pending reasons", field=path)
    reasons = list(raw)
    for i, reason in enumerate(reasons):
        if reason not in _KNOWN_REASONS:
            known = ", ".join(sorted(_KNOWN_REASONS))
            raise ValidationFailed(
                f"unknown pending reason '{reason}' (known: {known})", field=f"{path}[{i}]"
            )
    return frozenset(reasons)


def _share(raw: object, path: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 < raw < 1:
        raise ValidationFailed(f"'{raw}' is not a share strictly between 0 and 1", field=path)
    return float(raw)
