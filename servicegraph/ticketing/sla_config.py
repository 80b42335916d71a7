"""The desk's SLA configuration as built domain objects: calendars, policies, escalation
levels and the tiers monitoring incidents follow (``desk.calendars`` and ``desk.sla``).

Built whole at start-up (``SlaConfig.build``); the first problem is refused with
``ValidationFailed`` naming its path (``desk.sla.policies[1].escalation[0].at``), so no
half-configured SLA is ever applied.

**Which policy a ticket follows** (``SlaConfig.choose``):

* A *monitoring incident* whose impacted business services carry an ``sla_tier`` (the most
  critical one's, as correlation records it on the incident) follows the policy that
  ``tiers`` names for that tier, on the calendar its ``service_hours`` names when that is a
  declared calendar (else the policy's own). Its priority comes from computed impact, so
  the clock follows what the outage really touches, not what someone typed.
* Every other ticket, and a tier without a policy, goes by ``SlaPolicies.select``: the most
  specific policy matching service, organisation and type that has targets for the
  ticket's priority. No policy: the ticket has no clocks.

**Escalation levels** are declared per policy: ``{clock, at, notify, raise_priority,
reassign}``; ``at`` a share of the target (``0.5``) or ``breach``. Two notices come with every
policy without being declared: *at risk* when the clock reaches the policy's ``at_risk``
share, *breached* at the target, both to the assignee (or the group when nobody holds
the ticket). Levels are numbered for the fire-once record: 0 the at-risk notice, 1 the
breach notice, 2.. the declared levels in order; reordering declared levels of a running
desk therefore re-fires or skips some, as the README says.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.calendar import TWENTY_FOUR_SEVEN, BusinessCalendar
from servicegraph.ticketing.model import Incident
from servicegraph.ticketing.sla import ClockKind
from servicegraph.ticketing.sla_policy import DEFAULT_CALENDAR, SlaPolicies, SlaPolicy

AT_RISK_LEVEL = 0
BREACH_LEVEL = 1
FIRST_DECLARED_LEVEL = 2
# who a level notifies besides literal addresses
RECIPIENT_ROLES = frozenset({"assignee", "group", "group_manager"})
_LEVEL_KEYS = frozenset({"clock", "at", "notify", "raise_priority", "reassign"})


@dataclass(frozen=True)
class EscalationLevel:
    """One step of escalation: when it fires and what it does."""

    number: int  # its fire-once number (module docstring)
    clock: ClockKind
    share: float  # of the target: 1.0 is the breach
    notify: tuple[str, ...] = ()  # roles (RECIPIENT_ROLES) or e-mail addresses
    raise_priority: bool = False
    reassign: str | None = None  # a group's id
    event: str = "escalated"  # the notification event: at_risk, breached or escalated

    @property
    def name(self) -> str:
        when = "breach" if self.share >= 1.0 else f"{round(self.share * 100)}%"
        return f"{self.clock.value} at {when}"


@dataclass(frozen=True)
class Choice:
    """The policy a ticket follows, with its calendar and escalation levels."""

    policy: SlaPolicy
    calendar_name: str
    calendar: BusinessCalendar
    levels: tuple[EscalationLevel, ...]


@dataclass(frozen=True)
class SlaConfig:
    calendars: Mapping[str, BusinessCalendar] = field(
        default_factory=lambda: {DEFAULT_CALENDAR: TWENTY_FOUR_SEVEN}
    )
    policies: SlaPolicies = field(default_factory=SlaPolicies)
    levels: Mapping[str, tuple[EscalationLevel, ...]] = field(default_factory=dict)
    tiers: Mapping[str, str] = field(default_factory=dict)
    version: str = "none"  # names the declaration: clocks evaluated under another are stale

    @property
    def enabled(self) -> bool:
        return bool(self.policies.policies)

    @classmethod
    def build(
        cls,
        calendars: Mapping[str, Any] | None,
        sla: Mapping[str, Any] | None,
        *,
        path: str = "desk",
    ) -> SlaConfig:
        built: dict[str, BusinessCalendar] = {DEFAULT_CALENDAR: TWENTY_FOUR_SEVEN}
        for name, declaration in (calendars or {}).items():
            where = f"{path}.calendars.{name}"
            if name == DEFAULT_CALENDAR:
                raise ValidationFailed(f"'{DEFAULT_CALENDAR}' is built in", field=where)
            built[name] = BusinessCalendar.build(declaration, path=where)
        sla = sla or {}
        unknown = sorted(set(sla) - {"policies", "tiers"})
        if unknown:
            raise ValidationFailed(
                "unknown key (known: policies, tiers)", field=f"{path}.sla.{unknown[0]}"
            )
        raw = sla.get("policies") or []
        if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
            raise ValidationFailed("must be a list of policies", field=f"{path}.sla.policies")
        plain = [_without_levels(p) for p in raw]
        policies = SlaPolicies.build(plain, calendars=built, path=f"{path}.sla.policies")
        levels = {
            policy.name: _levels(item, policy, f"{path}.sla.policies[{i}].escalation")
            for i, (item, policy) in enumerate(zip(raw, policies.policies, strict=True))
        }
        tiers = _tiers(sla.get("tiers"), policies, f"{path}.sla.tiers")
        declaration = {"calendars": calendars or {}, "sla": sla}
        digest = hashlib.sha256(
            json.dumps(declaration, sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        return cls(built, policies, levels, tiers, version=digest)

    def policy(self, name: str) -> SlaPolicy | None:
        return next((p for p in self.policies.policies if p.name == name), None)

    def choose(self, t: Incident) -> Choice | None:
        """The policy ``t`` follows now (module docstring), or None: no clocks."""
        policy: SlaPolicy | None = None
        calendar_name: str | None = None
        if t.sla_tier is not None and t.sla_tier in self.tiers:
            tiered = self.policy(self.tiers[t.sla_tier])
            if tiered is not None and t.priority in tiered.targets:
                policy = tiered
                if t.service_hours is not None and t.service_hours in self.calendars:
                    calendar_name = t.service_hours
        if policy is None:
            policy = self.policies.select(t.service, t.organisation, t.type.value, t.priority)
        if policy is None:
            return None
        calendar_name = calendar_name or policy.calendar
        return Choice(
            policy, calendar_name, self.calendars[calendar_name], self.levels[policy.name]
        )


def _without_levels(item: Any) -> Any:
    if isinstance(item, Mapping):
        return {k: v for k, v in item.items() if k != "escalation"}
    return item


def _levels(item: Mapping[str, Any], policy: SlaPolicy, path: str) -> tuple[EscalationLevel, ...]:
    implicit = (
        EscalationLevel(
            AT_RISK_LEVEL, ClockKind.RESOLUTION, policy.at_risk, ("assignee",), event="at_risk"
        ),
        EscalationLevel(
            AT_RISK_LEVEL, ClockKind.RESPONSE, policy.at_risk, ("assignee",), event="at_risk"
        ),
        EscalationLevel(BREACH_LEVEL, ClockKind.RESOLUTION, 1.0, ("assignee",), event="breached"),
        EscalationLevel(BREACH_LEVEL, ClockKind.RESPONSE, 1.0, ("assignee",), event="breached"),
    )
    raw = item.get("escalation") or []
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise ValidationFailed("must be a list of levels", field=path)
    declared = [_level(FIRST_DECLARED_LEVEL + i, x, f"{path}[{i}]") for i, x in enumerate(raw)]
    return implicit + tuple(declared)


def _level(number: int, raw: object, path: str) -> EscalationLevel:
    if not isinstance(raw, Mapping):
        raise ValidationFailed("a level must be a mapping", field=path)
    unknown = sorted(set(raw) - _LEVEL_KEYS)
    if unknown:
        raise ValidationFailed(
            f"unknown key (known: {', '.join(sorted(_LEVEL_KEYS))})", field=f"{path}.{unknown[0]}"
        )
    try:
        clock = ClockKind(raw.get("clock", ClockKind.RESOLUTION.value))
    except ValueError:
        raise ValidationFailed(
            f"'{raw.get('clock')}' is not a clock (response, resolution)", field=f"{path}.clock"
        ) from None
    at = raw.get("at")
    if at == "breach":
        share = 1.0
    elif isinstance(at, int | float) and not isinstance(at, bool) and 0 < at <= 1:
        share = float(at)
    else:
        raise ValidationFailed(
            f"'{at}' is neither a share of the target in (0, 1] nor 'breach'", field=f"{path}.at"
        )
    notify = raw.get("notify") or []
    if isinstance(notify, str) or not isinstance(notify, Sequence):
        raise ValidationFailed("must be a list of roles or addresses", field=f"{path}.notify")
    for i, who in enumerate(notify):
        if not isinstance(who, str) or (who not in RECIPIENT_ROLES and "@" not in who):
            raise ValidationFailed(
                f"'{who}' is neither {', '.join(sorted(RECIPIENT_ROLES))} nor an address",
                field=f"{path}.notify[{i}]",
            )
    raise_priority = raw.get("raise_priority", False)
    if not isinstance(raise_priority, bool):
        raise ValidationFailed("must be true or false", field=f"{path}.raise_priority")
    reassign = raw.get("reassign")
    if reassign is not None and (not isinstance(reassign, str) or not reassign.strip()):
        raise ValidationFailed("must name a group", field=f"{path}.reassign")
    if not (notify or raise_priority or reassign):
        raise ValidationFailed(
            "a level must notify someone, raise the priority or reassign", field=path
        )
    return EscalationLevel(
        number, clock, share, tuple(notify), raise_priority, reassign.strip() if reassign else None
    )


def _tiers(raw: object, policies: SlaPolicies, path: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValidationFailed("must map a service's sla_tier to a policy name", field=path)
    names = {p.name for p in policies.policies}
    for tier, name in raw.items():
        if name not in names:
            known = ", ".join(sorted(names)) or "none"
            raise ValidationFailed(
                f"unknown policy '{name}' (known: {known})", field=f"{path}.{tier}"
            )
    return {str(k): str(v) for k, v in raw.items()}
