"""Routing rules: which group a new ticket goes to, and what else it gets, as data.

Rules are a YAML-shaped list, evaluated in order by the pure function ``route``; the
decision names the rule that chose the group and explains every match, so "why did this
land in NOC?" has an answer (DESIGN §2). Like Znuny's PostMaster filters and ServiceNow's
risk conditions the **first matching rule wins**; a rule with ``stop: false`` lets later
rules add to what it did (GLPI runs every rule that way). ::

    - name: vpn
      when: {category: network/vpn, channel: [email, portal]}
      then: {group: noc, priority_floor: 2, tags: [vpn]}
    - name: vip
      when: {organisation: acme}
      then: {tags: [vip], custom_fields: {callback: true}, stop: false}

Conditions (all given ones must hold; a list means any of its values):
``type``, ``channel``, ``service``, ``organisation``; ``category`` (a path and everything
under it: ``network`` matches ``network/vpn``, not ``networking``); ``ci_class`` and
``ci_attribute`` (``{support_group: noc}``, ``{environment: [prod, dr]}``), which one and
the same affected CI must satisfy together; ``title_keywords`` (any of them as a whole word
or phrase, case-insensitive); ``priority_at_least`` / ``priority_at_most``.

Priority 1 is the most urgent. Every priority bound speaks of urgency, not of the number:
``priority_at_least: 2`` holds for priorities 1 and 2; ``priority_at_most: 3`` for 3, 4
and 5; a ticket without a priority yet satisfies neither. Likewise the action
``priority_floor: 2`` means "at least as urgent as 2" (the priority number becomes <= 2)
and ``priority_ceiling: 4`` "at most as urgent as 4" (the number becomes >= 4).

Actions: ``group`` (the first rule that sets one keeps it), ``priority_floor`` /
``priority_ceiling`` (bounds of all matched rules combine: the most urgent floor and the
least urgent ceiling), ``tags`` (added), ``custom_fields`` (set; the first rule to set a
field keeps it), ``stop`` (default true).

When no rule sets a group: the affected CI's support group, else the service's owner
group, else the triage group.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.ticketing.catalogue import check_path, check_priority
from servicegraph.ticketing.model import Channel, TicketType
from servicegraph.ticketing.people import check_key

SUPPORT_GROUP_ATTRIBUTE = "support_group"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_ -]*$")
RULE_KEYS = ("name", "description", "enabled", "when", "then")
Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What routing may look at: the new ticket and the CIs it affects, primary first."""

    type: TicketType
    channel: Channel
    title: str = ""
    service: str | None = None
    category: str | None = None  # a category path
    organisation: str | None = None  # the requester's organisation id
    priority: int | None = None  # 1 (most urgent) .. 5, None when not yet known
    cis: tuple[tuple[str, Mapping[str, Any]], ...] = ()  # (class, attributes) per CI


@dataclass(frozen=True, slots=True)
class Conditions:
    """A rule's ``when``: None is "any"; a tuple holds the accepted values."""

    type: tuple[TicketType, ...] | None = None
    channel: tuple[Channel, ...] | None = None
    service: tuple[str, ...] | None = None
    organisation: tuple[str, ...] | None = None
    category: tuple[str, ...] | None = None
    ci_class: tuple[str, ...] | None = None
    ci_attribute: tuple[tuple[str, tuple[Scalar, ...]], ...] | None = None
    title_keywords: tuple[str, ...] | None = None
    priority_at_least: int | None = None  # as urgent as this or more: number <= it
    priority_at_most: int | None = None  # as urgent as this or less: number >= it

    def explain(self, facts: TicketFacts) -> tuple[str, ...] | None:
        """Why the facts satisfy every condition (one phrase each), or None if one fails."""
        reasons: list[str] = []
        for key in ("type", "channel", "service", "organisation"):
            wanted = getattr(self, key)
            if wanted is not None:
                actual = getattr(facts, key)
                if actual not in wanted:
                    return None
                reasons.append(f"{key} {actual}")
        for check in (_category, _ci, _title, _priority):
            reason = check(self, facts)
            if reason is None:
                return None
            if reason:
                reasons.append(reason)
        return tuple(reasons)


def _category(c: Conditions, facts: TicketFacts) -> str | None:
    if c.category is None:
        return ""
    path = facts.category or ""
    for prefix in c.category:
        if path == prefix or path.startswith(prefix + "/"):
            return f"category {path}" + (f" under {prefix}" if path != prefix else "")
    return None


def _same(rule_value: Scalar, actual: Any) -> bool:
    if isinstance(actual, list | tuple | set | frozenset):
        return any(_same(rule_value, a) for a in actual)
    if isinstance(rule_value, str) and isinstance(actual, str):
        return rule_value.casefold() == actual.casefold()
    if isinstance(rule_value, bool) or isinstance(actual, bool):
        return rule_value is actual  # true is no 1
    if isinstance(rule_value, int | float) and isinstance(actual, int | float):
        return rule_value == actual
    return False


def _ci(c: Conditions, facts: TicketFacts) -> str | None:
    if c.ci_class is None and c.ci_attribute is None:
        return ""
    for ci_class, attributes in facts.cis:
        if c.ci_class is not None and ci_class not in c.ci_class:
            continue
        if all(any(_same(v, attributes.get(k)) for v in vs) for k, vs in c.ci_attribute or ()):
            shown = ", ".join(f"{k}={attributes.get(k)}" for k, _ in c.ci_attribute or ())
            return f"affected CI {ci_class}" + (f" with {shown}" if shown else "")
    return None


@functools.lru_cache(maxsize=1024)
def _word(keyword: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(keyword) + r"(?!\w)", re.IGNORECASE)


def _title(c: Conditions, facts: TicketFacts) -> str | None:
    if c.title_keywords is None:
        return ""
    for keyword in c.title_keywords:
        if _word(keyword).search(facts.title):
            return f'title has "{keyword}"'
    return None


def _priority(c: Conditions, facts: TicketFacts) -> str | None:
    if c.priority_at_least is None and c.priority_at_most is None:
        return ""
    p = facts.priority
    if p is None:
        return None
    if c.priority_at_least is not None and p > c.priority_at_least:
        return None
    if c.priority_at_most is not None and p < c.priority_at_most:
        return None
    bounds = []
    if c.priority_at_least is not None:
        bounds.append(f"at least as urgent as {c.priority_at_least}")
    if c.priority_at_most is not None:
        bounds.append(f"at most as urgent as {c.priority_at_most}")
    return f"priority {p} ({' and '.join(bounds)})"


@dataclass(frozen=True, slots=True)
class Actions:
    """A rule's ``then``."""

    group: str | None = None
    priority_floor: int | None = None  # the priority number becomes <= this
    priority_ceiling: int | None = None  # the priority number becomes >= this
    tags: tuple[str, ...] = ()
    custom_fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    stop: bool = True


@dataclass(frozen=True, slots=True)
class Rule:
    name: str  # as written, or the rule's index in the list when it has none
    when: Conditions
    then: Actions
    description: str = ""
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Where a ticket goes and why. ``rule`` names what set the group: a rule, or
    ``default:ci_support_group``, ``default:service_owner``, ``default:triage``."""

    group: str
    rule: str
    priority_floor: int | None = None
    priority_ceiling: int | None = None
    tags: tuple[str, ...] = ()
    custom_fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    matched: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()

    def clamp(self, priority: int) -> int:
        """The priority within the decision's bounds; if they disagree, the floor wins (a
        ticket handled too urgently costs less than one handled too late)."""
        if self.priority_ceiling is not None:
            priority = max(priority, self.priority_ceiling)
        if self.priority_floor is not None:
            priority = min(priority, self.priority_floor)
        return priority


@dataclass(frozen=True)
class RoutingRules:
    """The ordered rules; build them from configuration with ``build``."""

    rules: tuple[Rule, ...] = ()

    @classmethod
    def build(cls, data: Any, *, groups: Collection[str] | None = None) -> RoutingRules:
        """Parse a list of rule mappings; raises ValidationErrors naming, per bad rule, the
        key as ``routing.<name or index>.<when|then>.<key>``. With ``groups``, a rule's
        group must be one of them."""
        if data is None:
            return cls()
        if not isinstance(data, list):
            raise ValidationFailed("must be a list of rules", field="routing")
        errors: list[ValidationFailed] = []
        rules: list[Rule] = []
        for index, raw in enumerate(data):
            try:
                rule = _rule(raw, index, groups)
            except ValidationFailed as exc:
                errors.append(exc)
                continue
            if any(r.name == rule.name for r in rules):
                msg = "another rule has this name"
                errors.append(ValidationFailed(msg, field=f"routing.{rule.name}.name"))
            rules.append(rule)
        if errors:
            raise ValidationErrors(errors)
        return cls(tuple(rules))


@dataclass
class _Outcome:
    """What the matched rules decided so far (mutable while ``route`` runs)."""

    group: str | None = None
    group_rule: str = ""
    floor: int | None = None
    ceiling: int | None = None
    tags: dict[str, None] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)

    def apply(self, name: str, then: Actions) -> list[str]:
        """Apply one matched rule's actions; returns what it did, in words."""
        did: list[str] = []
        if then.group is not None and self.group is None:
            self.group, self.group_rule = then.group, name
            did.append(f"group {then.group}")
        elif then.group is not None:
            did.append(f"group {then.group} ignored (rule '{self.group_rule}' set {self.group})")
        if then.priority_floor is not None:
            self.floor = min(then.priority_floor, self.floor or 5)
            did.append(f"priority at least as urgent as {then.priority_floor}")
        if then.priority_ceiling is not None:
            self.ceiling = max(then.priority_ceiling, self.ceiling or 1)
            did.append(f"priority at most as urgent as {then.priority_ceiling}")
        if then.tags:
            self.tags.update(dict.fromkeys(then.tags))
            did.append("tags " + ", ".join(then.tags))
        for key, value in then.custom_fields.items():
            if key in self.fields:
                did.append(f"{key} kept (set by an earlier rule)")
            else:
                self.fields[key] = value
                did.append(f"{key}={value}")
        return did


def route(
    facts: TicketFacts,
    rules: RoutingRules,
    *,
    triage_group: str,
    ci_support_group: str | None = None,
    service_owner_group: str | None = None,
) -> RoutingDecision:
    """Evaluate the rules in order. ``ci_support_group`` is the affected CI's support group
    when the caller knows it better than the facts (inherited through the graph); without
    it, the first affected CI with a ``support_group`` attribute gives it."""
    outcome = _Outcome()
    matched: list[str] = []
    reasons: list[str] = []
    for rule in rules.rules:
        why = rule.when.explain(facts) if rule.enabled else None
        if why is None:
            continue
        matched.append(rule.name)
        did = outcome.apply(rule.name, rule.then)
        reasons.append(
            f"rule '{rule.name}' matched ({'; '.join(why) or 'no conditions'}): "
            + (", ".join(did) or "no actions")
            + ("; stop" if rule.then.stop else "")
        )
        if rule.then.stop:
            break
    group, group_rule = outcome.group, outcome.group_rule
    if group is None:
        group, group_rule, reason = _default_group(
            facts, triage_group, ci_support_group, service_owner_group
        )
        reasons.append(reason)
    return RoutingDecision(
        group=group,
        rule=group_rule,
        priority_floor=outcome.floor,
        priority_ceiling=outcome.ceiling,
        tags=tuple(outcome.tags),
        custom_fields=MappingProxyType(outcome.fields),
        matched=tuple(matched),
        reasons=tuple(reasons),
    )


def _default_group(
    facts: TicketFacts, triage: str, ci_support: str | None, service_owner: str | None
) -> tuple[str, str, str]:
    if ci_support is None:
        found = (attributes.get(SUPPORT_GROUP_ATTRIBUTE) for _, attributes in facts.cis)
        ci_support = next((g.strip() for g in found if isinstance(g, str) and g.strip()), None)
    why = "no rule set a group: "
    if ci_support:
        return ci_support, "default:ci_support_group", f"{why}the CI's support group {ci_support}"
    if service_owner:
        owner = f"{why}service {facts.service}'s owner {service_owner}"
        return service_owner, "default:service_owner", owner
    return triage, "default:triage", f"{why}the triage group {triage}"


# --- parsing ----------------------------------------------------------------------------


def _strings(value: Any, where: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values:
        raise ValidationFailed("must be a text or a non-empty list of texts", field=where)
    if not all(isinstance(v, str) and v.strip() for v in values):
        raise ValidationFailed("every value must be a non-empty text", field=where)
    return tuple(dict.fromkeys(v.strip() for v in values))


def _enums(kind: type[enum.StrEnum], value: Any, where: str) -> tuple[Any, ...]:
    found = []
    for raw in _strings(value, where):
        try:
            found.append(kind(raw.lower()))
        except ValueError:
            allowed = ", ".join(m.value for m in kind)
            raise ValidationFailed(f"'{raw}' is not one of {allowed}", field=where) from None
    return tuple(found)


def _attributes(value: Any, where: str) -> tuple[tuple[str, tuple[Scalar, ...]], ...]:
    if not isinstance(value, Mapping) or not value:
        raise ValidationFailed("must map attribute names to values", field=where)
    parsed = []
    for name, raw in value.items():
        values = raw if isinstance(raw, list) else [raw]
        if not isinstance(name, str) or not values:
            raise ValidationFailed("must map attribute names to values", field=where)
        if not all(isinstance(v, Scalar) for v in values):
            raise ValidationFailed("values are texts, numbers or booleans", field=f"{where}.{name}")
        parsed.append((name, tuple(values)))
    return tuple(parsed)


def _custom_fields(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
        raise ValidationFailed("must map field names to values", field=where)
    return MappingProxyType(dict(value))


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed("must be true or false", field=where)
    return value


Parser = Callable[[Any, str], Any]
CONDITIONS: dict[str, Parser] = {
    "type": lambda v, w: _enums(TicketType, v, w),
    "channel": lambda v, w: _enums(Channel, v, w),
    "service": _strings,
    "organisation": _strings,
    "category": lambda v, w: tuple(check_path(p, w) for p in _strings(v, w)),
    "ci_class": _strings,
    "ci_attribute": _attributes,
    "title_keywords": _strings,
    "priority_at_least": check_priority,
    "priority_at_most": check_priority,
}
ACTIONS: dict[str, Parser] = {
    "group": check_key,
    "priority_floor": check_priority,
    "priority_ceiling": check_priority,
    "tags": _strings,
    "custom_fields": _custom_fields,
    "stop": _bool,
}


def _section(raw: Any, parsers: Mapping[str, Parser], where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValidationFailed("must be a mapping", field=where)
    for key in raw:
        if key not in parsers:
            raise ValidationFailed(f"unknown key; use {', '.join(parsers)}", field=f"{where}.{key}")
    return {key: parsers[key](value, f"{where}.{key}") for key, value in raw.items()}


def _rule(raw: Any, index: int, groups: Collection[str] | None) -> Rule:
    if not isinstance(raw, Mapping):
        raise ValidationFailed("a rule is a mapping with when and then", field=f"routing.{index}")
    name = raw.get("name", str(index))
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValidationFailed(
            "a rule name is letters, digits, spaces, _ and -", field=f"routing.{index}.name"
        )
    where = f"routing.{name}"
    for key in raw:
        if key not in RULE_KEYS:
            raise ValidationFailed(
                f"unknown key; use {', '.join(RULE_KEYS)}", field=f"{where}.{key}"
            )
    when = Conditions(**_section(raw.get("when"), CONDITIONS, f"{where}.when"))
    then = Actions(**_section(raw.get("then"), ACTIONS, f"{where}.then"))
    _bounds(when.priority_at_least, when.priority_at_most, f"{where}.when.priority_at_most")
    _bounds(then.priority_floor, then.priority_ceiling, f"{where}.then.priority_ceiling")
    if groups is not None and then.group is not None and then.group not in groups:
        raise ValidationFailed(f"no group '{then.group}'", field=f"{where}.then.group")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ValidationFailed("must be text", field=f"{where}.description")
    enabled = _bool(raw.get("enabled", True), f"{where}.enabled")
    return Rule(name=name, when=when, then=then, description=description, enabled=enabled)


def _bounds(urgent: int | None, lax: int | None, where: str) -> None:
    if urgent is not None and lax is not None and lax > urgent:
        raise ValidationFailed(
            f"no priority is at least as urgent as {urgent} and at most as urgent as {lax}",
            field=where,
        )
