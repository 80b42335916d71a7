"""Change risk from the graph: what a change puts at stake while its CIs are worked on, and
what their history says, scored factor by factor with one reason for each.

Every factor adds points and says why, in names people know (``RiskPolicy`` holds the
points and the thresholds):

- each business service that *fails* while the change's CIs are down (all together) adds
  points by its criticality (1, the most critical, adds most); the reason names the
  change CIs that are a single point of failure of it, or says that the CIs take it
  down together;
- services that only *degrade* (a redundancy group absorbs the loss: an access switch
  keeps running on its other uplink, a cluster on its other members) add the points of
  the most critical of them, once: they keep running, without their spare; the reason
  names the redundancy and says the services are not affected;
- the other CIs that fail with the change's add a point per ``cis_per_point`` (the blast
  radius);
- open incidents and open problems on the change's CIs, and earlier changes on them that
  failed, add points each (each factor capped: history says how likely it goes wrong, not
  how much is at stake);
- a CI the graph does not hold adds points once: what it affects is unknown.

The score maps to a level through the policy's thresholds. A change whose CIs (all known
to the graph) touch no business service is capped at ``RiskPolicy.no_service_cap`` (LOW),
whatever its history adds: nothing the business runs is at stake.

Pure: ``change_analysis`` gathers the inputs from the graph and the ticket store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.relationships import MEMBERS_GROUP
from servicegraph.ticketing.change_model import ChangeRisk

_UNRANKED = 3  # where a service without a criticality sorts (1 most critical .. 5)


@dataclass(frozen=True)
class ServiceImpact:
    """A business service a change puts at stake."""

    ci_id: str
    name: str
    criticality: int | None  # 1 (most critical) .. 5; None when unset
    fails: bool  # False: it keeps running, on reduced redundancy (degrades only)
    spof_ci_ids: tuple[str, ...] = ()  # the change CIs each of which alone fails it

    @property
    def rank(self) -> int:
        """The criticality used for points and order: unset counts as 3, and values
        outside 1..5 as the nearest end."""
        if self.criticality is None:
            return _UNRANKED
        return min(max(self.criticality, 1), 5)


@dataclass(frozen=True)
class RedundantGroup:
    """A redundancy group that loses members to the change but keeps its CI running (as
    ``cmdb.impact.DegradedGroup``), with the members lost and the services it keeps up."""

    ci_id: str  # the CI that keeps running
    group: str  # the group's name ("uplink"; "members" for a cluster's members)
    failed: int  # members lost
    size: int
    min_healthy: int
    lost: tuple[str, ...] = ()  # the members lost (CI ids)
    services: tuple[str, ...] = ()  # business services needing ``ci_id`` that do not fail

    @property
    def remaining(self) -> int:
        return self.size - self.failed


@dataclass(frozen=True)
class FailedChange:
    """An earlier change on some of this change's CIs that failed."""

    number: int
    ci_ids: tuple[str, ...]  # the CIs it shares with this change
    failed_at: dt.datetime | None = None


@dataclass(frozen=True)
class RiskInputs:
    """What the risk of a change is computed from (``change_analysis`` gathers it)."""

    ci_ids: tuple[str, ...]  # the change's CIs
    names: Mapping[str, str] = field(default_factory=dict)  # CI id -> name (ids if absent)
    services: tuple[ServiceImpact, ...] = ()  # failing and degrading business services
    failed_count: int = 0  # CIs that fail with the change's CIs (those excluded)
    redundancy: tuple[RedundantGroup, ...] = ()  # the groups that absorb the loss
    open_incidents: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # CI -> numbers
    open_problems: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # CI -> numbers
    failed_changes: tuple[FailedChange, ...] = ()  # earlier failed changes on the CIs
    unknown_ci_ids: tuple[str, ...] = ()  # change CIs the graph does not hold


@dataclass(frozen=True)
class RiskAssessment:
    level: ChangeRisk
    # one per factor: the failing services, unknown CIs, redundancy, blast radius, history
    reasons: tuple[str, ...]
    services: tuple[ServiceImpact, ...]  # failing first, most critical first
    score: int  # the sum of the factors' points (before the no-service cap)


@dataclass(frozen=True)
class RiskPolicy:
    """Points per factor and the thresholds of the levels.

    With the defaults, a change on a single point of failure of a criticality-1 service
    is HIGH (50), two such services, or one with history on top, are VERY_HIGH; a change
    on one side of a redundant pair that keeps a criticality-1 service running is LOW
    (10), MEDIUM with an open incident on top.
    """

    # a failing service, by criticality 1 .. 5, and when unset
    failing_points: tuple[int, int, int, int, int] = (50, 35, 20, 15, 15)
    failing_unranked: int = 20
    # degrading services: the points of the most critical one, once
    degraded_points: tuple[int, int, int, int, int] = (10, 6, 4, 2, 1)
    degraded_unranked: int = 4
    # blast radius: a point per this many CIs failing with the change's, at most max
    cis_per_point: int = 10
    max_blast_points: int = 20
    # history, per distinct record, each factor capped
    incident_points: int = 5
    max_incident_points: int = 15
    problem_points: int = 5
    max_problem_points: int = 15
    failed_change_points: int = 10
    max_failed_change_points: int = 20
    # a change CI not in the graph (or no CI at all): its impact is unknown
    unknown_impact_points: int = 15
    # a score at or above each threshold reaches that level; below medium_from is LOW
    medium_from: int = 15
    high_from: int = 35
    very_high_from: int = 70
    # the highest level of a change that touches no business service (None: no cap)
    no_service_cap: ChangeRisk | None = ChangeRisk.LOW
    # how many services and failed changes are named one by one (the rest are counted)
    listed: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.medium_from < self.high_from < self.very_high_from:
            raise ValidationFailed(
                "thresholds must be positive and rising: medium < high < very high",
                field="medium_from",
            )
        if self.cis_per_point < 1:
            raise ValidationFailed("must be at least 1", field="cis_per_point")
        if self.listed < 1:
            raise ValidationFailed("must be at least 1", field="listed")

    def level_of(self, score: int) -> ChangeRisk:
        if score >= self.very_high_from:
            return ChangeRisk.VERY_HIGH
        if score >= self.high_from:
            return ChangeRisk.HIGH
        if score >= self.medium_from:
            return ChangeRisk.MEDIUM
        return ChangeRisk.LOW


def assess_risk(inputs: RiskInputs, policy: RiskPolicy = RiskPolicy()) -> RiskAssessment:
    """The risk of a change from what it puts at stake and its CIs' history."""
    # the services' own names stand, whether or not the caller's names hold them
    names = {**inputs.names, **{s.ci_id: s.name for s in inputs.services}}
    factors: list[tuple[int, str]] = []  # (points, reason), in the order shown
    failing = sorted((s for s in inputs.services if s.fails), key=_service_order)
    degrading = sorted((s for s in inputs.services if not s.fails), key=_service_order)
    unknown = set(inputs.unknown_ci_ids)
    known = [c for c in dict.fromkeys(inputs.ci_ids) if c not in unknown]

    if not inputs.ci_ids:
        factors.append(
            (
                policy.unknown_impact_points,
                "the change names no configuration item: what it affects is unknown",
            )
        )
    elif not inputs.services and known:
        factors.append((0, f"no business service depends on {name_list(known, names, 'or')}"))
    factors.extend(_failing_factors(failing, known, names, policy))
    if unknown:
        verb = "is" if len(unknown) == 1 else "are"
        factors.append(
            (
                policy.unknown_impact_points,
                f"{name_list(inputs.unknown_ci_ids, names)} {verb} not in the configuration "
                "graph: what it affects is unknown",
            )
        )
    factors.extend(_redundancy_factors(inputs, names, degrading, policy))
    if inputs.failed_count > 0:
        points = min(inputs.failed_count // policy.cis_per_point, policy.max_blast_points)
        count = inputs.failed_count
        verb = "CI fails" if count == 1 else "CIs fail"
        factors.append((points, f"{count:,} other {verb} with {name_list(known, names)}"))
    factors.extend(
        _record_factors(
            inputs.open_incidents,
            inputs.ci_ids,
            names,
            "open incident",
            policy.incident_points,
            policy.max_incident_points,
        )
    )
    factors.extend(
        _record_factors(
            inputs.open_problems,
            inputs.ci_ids,
            names,
            "open problem",
            policy.problem_points,
            policy.max_problem_points,
        )
    )
    factors.extend(_failed_change_factors(inputs.failed_changes, names, policy))

    score = sum(points for points, _ in factors)
    level = policy.level_of(score)
    cap = policy.no_service_cap
    touches_nothing = bool(known) and not inputs.unknown_ci_ids and not inputs.services
    if cap is not None and touches_nothing and level.rank > cap.rank:
        level = cap
    return RiskAssessment(
        level=level,
        reasons=tuple(reason for _, reason in factors),
        services=(*failing, *degrading),
        score=score,
    )


def _service_order(service: ServiceImpact) -> tuple[int, str, str]:
    return service.rank, service.name, service.ci_id


def _criticality(service: ServiceImpact) -> str:
    if service.criticality is None:
        return "no criticality set"
    return f"criticality {service.criticality}"


def _failing_factors(
    failing: list[ServiceImpact], known: list[str], names: Mapping[str, str], policy: RiskPolicy
) -> list[tuple[int, str]]:
    def points(service: ServiceImpact) -> int:
        if service.criticality is None:
            return policy.failing_unranked
        return policy.failing_points[service.rank - 1]

    factors: list[tuple[int, str]] = []
    for service in failing[: policy.listed]:
        factors.append((points(service), _failing_reason(service, known, names)))
    rest = failing[policy.listed :]
    if rest:
        ranks = sorted({s.rank for s in rest})
        span = f"criticality {ranks[0]}" + (f" to {ranks[-1]}" if len(ranks) > 1 else "")
        noun = "service fails" if len(rest) == 1 else "services fail"
        factors.append(
            (sum(points(s) for s in rest), f"{len(rest):,} more business {noun} ({span})")
        )
    return factors


def _failing_reason(service: ServiceImpact, known: list[str], names: Mapping[str, str]) -> str:
    label = f"{service.name} ({_criticality(service)})"
    if service.ci_id in service.spof_ci_ids:
        return f"the change is on {label} itself"
    spofs = service.spof_ci_ids
    if len(spofs) == 1:
        return f"{name_list(spofs, names)} is a single point of failure of {label}"
    if spofs:
        return f"{name_list(spofs, names)} are each a single point of failure of {label}"
    # no CI fails it alone: the change takes down several at once (both sides of a pair)
    return f"{label} fails with {name_list(known, names)} down together"


def _redundancy_factors(
    inputs: RiskInputs,
    names: Mapping[str, str],
    degrading: list[ServiceImpact],
    policy: RiskPolicy,
) -> list[tuple[int, str]]:
    """One reason per kind of absorbed loss (the same members lost, the same group shape):
    a distribution switch leaves eight access switches on one uplink, said once. The
    degrading services' points come with the first reason."""
    points = 0
    if degrading:
        top = degrading[0]
        points = (
            policy.degraded_unranked
            if top.criticality is None
            else policy.degraded_points[top.rank - 1]
        )
    degraded_ids = {s.ci_id for s in degrading}
    service_order = {s.ci_id: i for i, s in enumerate(degrading)}
    kinds: dict[tuple[tuple[str, ...], str, int, int, int], list[RedundantGroup]] = {}
    for group in inputs.redundancy:
        key = (group.lost, group.group, group.remaining, group.size, group.min_healthy)
        kinds.setdefault(key, []).append(group)
    # the losses of the change's own CIs first, then the widest
    changed = set(inputs.ci_ids)
    ordered = sorted(
        kinds.items(), key=lambda kind: (not changed.intersection(kind[0][0]), -len(kind[1]))
    )
    factors: list[tuple[int, str]] = []
    told: set[str] = set()
    for (lost, group_name, remaining, size, min_healthy), groups in ordered:
        cis = sorted((g.ci_id for g in groups), key=lambda c: (names.get(c, c), c))
        one = len(cis) == 1
        members = "members" if group_name == MEMBERS_GROUP else f"{group_name} providers"
        text = (
            f"{name_list(cis, names)} {'keeps' if one else 'keep'} running on {remaining} of "
            f"{'its' if one else 'their'} {size} {members}"
        )
        if min_healthy > 1:
            text += f" ({'it needs' if one else 'they need'} {min_healthy})"
        if lost:
            lost_names = name_list(sorted(lost, key=lambda c: (names.get(c, c), c)), names)
            text = f"{lost_names} {'is' if len(lost) == 1 else 'are'} redundant: {text}"
        else:
            text = f"redundancy absorbs the loss: {text}"
        kept = sorted(
            {s for g in groups for s in g.services if s in degraded_ids},
            key=lambda s: service_order[s],
        )
        if kept:
            told.update(kept)
            verb = "is" if len(kept) == 1 else "are"
            text += f"; {name_list(kept, names)} {verb} not affected"
        factors.append((points if not factors else 0, text))
    untold = [s for s in degrading if s.ci_id not in told]
    if untold:
        verb = "runs" if len(untold) == 1 else "run"
        listed = name_list([s.ci_id for s in untold], names)
        factors.append((points if not factors else 0, f"{listed} {verb} on reduced redundancy"))
    return factors


def _record_factors(
    records: Mapping[str, tuple[int, ...]],
    ci_ids: Iterable[str],
    names: Mapping[str, str],
    noun: str,
    each: int,
    cap: int,
) -> list[tuple[int, str]]:
    """One reason per CI with open records; points per distinct record (an incident on
    two of the CIs counts once), capped, with the first reason."""
    factors: list[tuple[int, str]] = []
    counted: set[int] = set()
    for ci_id in dict.fromkeys(ci_ids):
        numbers = records.get(ci_id, ())
        if not numbers:
            continue
        new = set(numbers) - counted
        counted |= new
        count = len(set(numbers))
        factors.append(
            (0, f"{count} {noun}{'' if count == 1 else 's'} on {names.get(ci_id, ci_id)}")
        )
    if factors:
        factors[0] = (min(len(counted) * each, cap), factors[0][1])
    return factors


def _failed_change_factors(
    failed: Iterable[FailedChange], names: Mapping[str, str], policy: RiskPolicy
) -> list[tuple[int, str]]:
    """The most recent failures named, the rest counted; points per failed change, capped,
    with the first reason."""
    changes = sorted(
        {c.number: c for c in failed}.values(),
        key=lambda c: (c.failed_at is None, -(c.failed_at or _EPOCH).timestamp(), -c.number),
    )
    factors: list[tuple[int, str]] = []
    for change in changes[: policy.listed]:
        text = f"change {change.number} on {name_list(change.ci_ids, names)} failed"
        if change.failed_at is not None:
            text += f" on {change.failed_at.date().isoformat()}"
        factors.append((0, text))
    rest = len(changes) - policy.listed
    if rest > 0:
        noun = "change" if rest == 1 else "changes"
        factors.append((0, f"{rest} earlier failed {noun} on these CIs"))
    if factors:
        points = min(len(changes) * policy.failed_change_points, policy.max_failed_change_points)
        factors[0] = (points, factors[0][1])
    return factors


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def name_list(
    ids: Iterable[str], names: Mapping[str, str], conjunction: str = "and", limit: int = 3
) -> str:
    """CI names as people list them: "a", "a and b", "a, b and c", "a, b, c and 4 more"
    (an id stands for a CI without a name)."""
    shown = [names.get(i, i) for i in dict.fromkeys(ids)]
    if len(shown) > limit + 1:  # "and 1 more" is no shorter than the name itself
        return f"{', '.join(shown[:limit])} {conjunction} {len(shown) - limit:,} more"
    if len(shown) <= 1:
        return "".join(shown)
    return f"{', '.join(shown[:-1])} {conjunction} {shown[-1]}"
