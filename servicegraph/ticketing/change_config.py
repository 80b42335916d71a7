"""How change management is configured (``desk.changes``): the approvals each risk level
needs, the standard-change templates, the lifecycles.

Shape (YAML, every key optional)::

    changes:
      approvals: {low: 1, medium: 1, high: 2, very_high: 3}   # CAB approvals by risk
      emergency_approvals: 1                                  # whatever the risk
      templates:                                              # standard changes
        patch-linux-server:
          title: Monthly OS patches
          implementation_plan: apt upgrade, reboot one node at a time
          backout_plan: boot the previous kernel
          max_risk: medium          # a riskier change from it is refused: raise a normal one
      lifecycles: {normal: ..., emergency: ..., standard: ...}  # lifecycle.py format

Why per risk level: the CAB's attention goes where the graph says the damage would be
(ServiceNow and GLPI set approval levels by rules; here the rule is the risk itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.ticketing.change_lifecycle import load_change_lifecycles
from servicegraph.ticketing.change_model import ChangeRisk, ChangeType
from servicegraph.ticketing.lifecycle import StateMachine

DEFAULT_APPROVALS: dict[ChangeRisk, int] = {
    ChangeRisk.LOW: 1,
    ChangeRisk.MEDIUM: 1,
    ChangeRisk.HIGH: 2,
    ChangeRisk.VERY_HIGH: 3,
}
_TEMPLATE_KEYS = {"title", "description", "implementation_plan", "backout_plan", "max_risk"}
_ROOT_KEYS = {"approvals", "emergency_approvals", "templates", "lifecycles"}


@dataclass(frozen=True)
class ChangeTemplate:
    """A standard change: pre-approved work done the same way each time."""

    name: str
    title: str
    description: str = ""
    implementation_plan: str = ""
    backout_plan: str = ""
    max_risk: ChangeRisk = ChangeRisk.MEDIUM


@dataclass(frozen=True)
class ChangePolicy:
    approvals: Mapping[ChangeRisk, int] = field(default_factory=lambda: dict(DEFAULT_APPROVALS))
    emergency_approvals: int = 1
    templates: Mapping[str, ChangeTemplate] = field(default_factory=dict)
    lifecycles: Mapping[ChangeType, StateMachine] = field(default_factory=load_change_lifecycles)

    def approvals_required(self, change_type: ChangeType, risk: ChangeRisk) -> int:
        """How many CAB approvals a change needs: none for a standard one."""
        if change_type is ChangeType.STANDARD:
            return 0
        if change_type is ChangeType.EMERGENCY:
            return self.emergency_approvals
        return self.approvals[risk]

    @classmethod
    def build(cls, spec: Mapping[str, Any] | None, *, path: str = "desk.changes") -> ChangePolicy:
        """Validate ``spec`` (the module's shape), naming the field path of any error."""
        spec = dict(spec or {})
        unknown = set(spec) - _ROOT_KEYS
        if unknown:
            raise ValidationFailed(
                f"unknown keys {sorted(unknown)}; use {', '.join(sorted(_ROOT_KEYS))}", field=path
            )
        approvals = dict(DEFAULT_APPROVALS)
        given = spec.get("approvals") or {}
        if not isinstance(given, Mapping):
            raise ValidationFailed("must map risk levels to counts", field=f"{path}.approvals")
        for level, count in given.items():
            where = f"{path}.approvals.{level}"
            risk = _risk(level, where)
            approvals[risk] = _count(count, where)
        emergency = _count(spec.get("emergency_approvals", 1), f"{path}.emergency_approvals")
        ranks = [approvals[r] for r in sorted(approvals, key=lambda r: r.rank)]
        if ranks != sorted(ranks):
            raise ValidationFailed(
                "a riskier change cannot need fewer approvals than a safer one",
                field=f"{path}.approvals",
            )
        return cls(
            approvals=approvals,
            emergency_approvals=emergency,
            templates=_templates(spec.get("templates") or {}, f"{path}.templates"),
            lifecycles=load_change_lifecycles(spec.get("lifecycles"), path=f"{path}.lifecycles"),
        )


def _risk(value: object, field: str) -> ChangeRisk:
    try:
        return ChangeRisk(str(value))
    except ValueError:
        levels = ", ".join(r.value for r in ChangeRisk)
        raise ValidationFailed(f"unknown risk {value!r}; use {levels}", field=field) from None


def _count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 20:
        raise ValidationFailed("must be a whole number from 1 to 20", field=field)
    return value


def _templates(value: object, path: str) -> dict[str, ChangeTemplate]:
    if not isinstance(value, Mapping):
        raise ValidationFailed("must map template names to templates", field=path)
    templates = {}
    for name, body in value.items():
        where = f"{path}.{name}"
        if not isinstance(body, Mapping):
            raise ValidationFailed("must be a mapping", field=where)
        unknown = set(body) - _TEMPLATE_KEYS
        if unknown:
            raise ValidationFailed(
                f"unknown keys {sorted(unknown)}; use {', '.join(sorted(_TEMPLATE_KEYS))}",
                field=where,
            )
        title = str(body.get("title") or "").strip()
        if not title:
            raise ValidationFailed("a template needs a title", field=f"{where}.title")
        templates[str(name)] = ChangeTemplate(
            name=str(name),
            title=title,
            description=str(body.get("description") or ""),
            implementation_plan=str(body.get("implementation_plan") or ""),
            backout_plan=str(body.get("backout_plan") or ""),
            max_risk=_risk(body.get("max_risk", ChangeRisk.MEDIUM.value), f"{where}.max_risk"),
        )
    return templates
