"""Problem candidates: which item is behind most of the incidents of a period?

An incident is *explained* by every CI whose loss alone fails the incident's root CI:
exactly the CIs for which ``servicegraph impact <ci>`` reports the root as failing (the
failure propagation of ``ImpactGraph``, redundancy honoured, within twice the correlator's
topology depth like ``HardTopology.failure_of``). The root always explains its incident. A
provider common to both members of a redundancy group explains what hangs under the group
although it is not a hard dependency of it: core-1, behind the two uplinks of an access
switch, explains the access switch's incidents; either uplink alone does not.

Candidates rank by incidents explained, then by how often they were the recorded root
cause, then by their alerts in the incidents they explain, then by name and id: of a switch
and the silent router above it that explain the same incidents, the switch that was blamed
and alerted ranks first. Each candidate says why in words (``reason``), with CI names.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from servicegraph.cmdb.relationships import MEMBERS_GROUP
from servicegraph.cmdb.topology import REQUIRED, ImpactGraph
from servicegraph.correlation.correlator import Correlator
from servicegraph.correlation.rootcause import HardTopology
from servicegraph.ticketing.model import Incident
from servicegraph.ticketing.ports import IncidentFilter

_ROOTS_TOLD = 3  # roots a reason names; the others are counted


@dataclass(frozen=True)
class ProblemCandidate:
    ci_id: str
    ci_class: str
    name: str
    incidents_explained: int
    as_root: int  # incidents whose recorded root cause is this CI
    alerts: int  # alerts on this CI within the incidents it explains
    incident_ids: tuple[str, ...]
    reason: str  # why it explains them, in words: "its loss fails dist-1 (root of 4 ...)"


def problem_candidates(
    correlator: Correlator,
    *,
    since: dt.datetime,
    until: dt.datetime | None = None,
    limit: int = 20,
    max_incidents: int = 100_000,
) -> list[ProblemCandidate]:
    """The ``limit`` CIs explaining most of the incidents opened from ``since`` (to
    ``until``), best first (see the module)."""
    incidents = correlator.tickets.find_incidents(
        IncidentFilter(opened_since=since, limit=max_incidents)
    )
    if until is not None:
        incidents = [i for i in incidents if i.opened_at <= until]
    if limit < 1:
        return []
    with correlator.impact.reading() as graph:
        # a topology of its own: its caches are not shared with the correlation worker's thread
        credit = Crediting(HardTopology(graph, correlator.policy.topology_depth))
        return _Ranking(correlator, credit, incidents).top(limit)


class Crediting:
    """Which CIs explain an incident rooted on a node: those whose loss alone fails it."""

    def __init__(self, hard: HardTopology) -> None:
        self.hard = hard
        self.graph = hard.graph
        self._explainers: dict[int, frozenset[int]] = {}

    def explainers(self, root: int) -> frozenset[int]:
        """``root`` and every CI upstream of it whose failure set holds it (cached per
        root; the failure sets are cached by ``HardTopology``)."""
        found = self._explainers.get(root)
        if found is None:
            graph = self.graph
            hard = self.hard
            # failure spreads down the provider edges: what fails ``root`` within the
            # propagation bound is upstream of it within that many hops
            upstream = graph.upstream(root, max_depth=hard.depth * 2)
            found = frozenset(
                node
                for node in upstream
                if node == root or (node not in graph.merged and root in hard.failure_of(node)[0])
            )
            self._explainers[root] = found
        return found

    def exhausted_group(self, node: int, root: int) -> tuple[int, int] | None:
        """Where ``node``'s failure reaches ``root`` through redundancy: the dependent and
        the group of it that loses more providers than it tolerates, nearest ``node``;
        None when the way down is hard dependencies only."""
        graph = self.graph
        failed = self.hard.failure_of(node)[0]
        path = []
        current = root
        while current != node:
            path.append(current)
            current = failed[current]
        for dependent in reversed(path):
            gid = graph.providers[dependent].get(failed[dependent], REQUIRED)
            if gid == REQUIRED:
                continue
            for group in graph.groups_of(gid):
                tolerance = graph.tolerance[group]
                if tolerance > 0 and len(self.group_failed(failed, dependent, group)) > tolerance:
                    return dependent, group
        return None

    def group_failed(self, failed: Mapping[int, int], dependent: int, group: int) -> list[int]:
        """The providers of ``dependent`` in ``group`` among ``failed``."""
        graph = self.graph
        return [
            provider
            for provider, gid in graph.providers[dependent].items()
            if provider in failed and group in graph.groups_of(gid)
        ]


class _Ranking:
    """The incidents of a period tallied by the CIs that explain them."""

    def __init__(self, correlator: Correlator, credit: Crediting, incidents: list[Incident]):
        self.correlator = correlator
        self.credit = credit
        self.graph: ImpactGraph = credit.graph
        self.by_root: dict[int, list[str]] = {}  # root node -> its incidents
        self.root_of: dict[str, int] = {}  # incident id -> its root node
        for incident in incidents:
            root = self.graph.index.get(incident.root_ci_id or "")
            if root is not None:
                self.by_root.setdefault(root, []).append(incident.id)
                self.root_of[incident.id] = root
        self.roots_of: dict[int, list[int]] = {}  # candidate -> the roots it explains
        self.explained: dict[int, int] = {}  # candidate -> incidents it explains
        for root, incident_ids in self.by_root.items():
            for node in credit.explainers(root):
                self.roots_of.setdefault(node, []).append(root)
                self.explained[node] = self.explained.get(node, 0) + len(incident_ids)

    def _as_root(self, node: int) -> int:
        return len(self.by_root.get(node, ()))

    def _contenders(self, limit: int) -> list[int]:
        """The candidates that may be in the top ``limit``: the alert counts and names that
        break the remaining ties are read for these only."""

        def key(node: int) -> tuple[int, int]:
            return (-self.explained[node], -self._as_root(node))

        order = sorted(self.explained, key=key)
        if len(order) <= limit:
            return order
        cut = key(order[limit - 1])
        return [node for node in order if key(node) <= cut]

    def _alerts(self, contenders: Iterable[int]) -> dict[int, int]:
        """Alerts on each contender within the incidents it explains: each alert once per
        incident it was in. An alert that fires again in a later incident moves to it, so
        the earlier incidents it was in are read from its fire/clear cycles."""
        wanted = set(contenders)
        ids = self.graph.ids
        index = self.graph.index
        on = self.correlator.tickets.alerts_on(ids[n] for n in wanted)
        node_of = {a.fingerprint: index[a.ci_id] for a in on if a.ci_id in index}
        seen = {(a.fingerprint, a.incident_id) for a in on}
        for fingerprint, cycles in self.correlator.tickets.alert_cycles(node_of).items():
            seen.update((fingerprint, c.incident_id) for c in cycles)
        counts = dict.fromkeys(wanted, 0)
        for fingerprint, incident_id in seen:
            node = node_of.get(fingerprint)
            root = self.root_of.get(incident_id or "")
            if node is not None and root is not None and node in self.credit.explainers(root):
                counts[node] += 1
        return counts

    def _names(self, nodes: Collection[int]) -> dict[int, str]:
        ids = self.graph.ids
        found = self.correlator.graph_store.summaries({ids[n] for n in nodes})
        return {n: found[ids[n]].name if ids[n] in found else ids[n] for n in nodes}

    def top(self, limit: int) -> list[ProblemCandidate]:
        contenders = self._contenders(limit)
        alerts = self._alerts(contenders)
        names = self._names(contenders)
        ids = self.graph.ids
        contenders.sort(
            key=lambda n: (
                -self.explained[n],
                -self._as_root(n),
                -alerts[n],
                names[n].casefold(),
                ids[n],
            )
        )
        top = contenders[:limit]
        told = set(top)
        for node in top:
            told.update(self.roots_of[node])
            for root in self.roots_of[node]:
                if root != node:
                    exhausted = self.credit.exhausted_group(node, root)
                    if exhausted is not None:
                        told.add(exhausted[0])
        names.update(self._names(told - names.keys()))
        result = []
        for node in top:
            result.append(
                ProblemCandidate(
                    ci_id=ids[node],
                    ci_class=self.graph.classes[node],
                    name=names[node],
                    incidents_explained=self.explained[node],
                    as_root=self._as_root(node),
                    alerts=alerts[node],
                    incident_ids=tuple(
                        sorted(i for root in self.roots_of[node] for i in self.by_root[root])
                    ),
                    reason=self._reason(node, names),
                )
            )
        return result

    def _reason(self, node: int, names: Mapping[int, str]) -> str:
        """Why ``node`` explains its incidents: "root cause of 2 incidents; its loss fails
        dist-1 (root of 4 incidents); ...", the roots with most incidents first."""
        parts = []
        as_root = self._as_root(node)
        if as_root:
            parts.append(f"root cause of {_incidents(as_root)}")
        others = sorted(
            (r for r in self.roots_of[node] if r != node),
            key=lambda r: (-len(self.by_root[r]), names[r].casefold(), r),
        )
        for root in others[:_ROOTS_TOLD]:
            of_root = f"{names[root]} (root of {_incidents(len(self.by_root[root]))})"
            exhausted = self.credit.exhausted_group(node, root)
            if exhausted is None:
                parts.append(f"its loss fails {of_root}")
                continue
            dependent, group = exhausted
            lost = self._group_words(node, dependent, group, names)
            if dependent == root:  # "both uplinks of acc-1 (root of 2 incidents)"
                lost += f" (root of {_incidents(len(self.by_root[root]))})"
            else:  # "both uplinks of acc-1, hence db-1 (root of 2 incidents)"
                lost += f", hence {of_root}"
            parts.append(f"behind redundancy: its loss fails {lost}")
        rest = others[_ROOTS_TOLD:]
        if rest:
            count = sum(len(self.by_root[r]) for r in rest)
            parts.append(f"and {len(rest)} more roots ({_incidents(count)})")
        return "; ".join(parts)

    def _group_words(self, node: int, dependent: int, group: int, names: Mapping[int, str]) -> str:
        """What ``node``'s loss takes of the group: "both uplinks of acc-1", "all 3 members
        of pg-cluster", "2 of the 3 members of pg-cluster"."""
        info = self.graph.groups[group]
        failed = len(
            self.credit.group_failed(self.credit.hard.failure_of(node)[0], dependent, group)
        )
        noun = (
            info.name if info.name == MEMBERS_GROUP or info.name.endswith("s") else f"{info.name}s"
        )
        of = f"{noun} of {names[dependent]}"
        if failed == info.size == 2:
            return f"both {of}"
        if failed == info.size:
            return f"all {info.size} {of}"
        return f"{failed} of the {info.size} {of}"


def _incidents(count: int) -> str:
    return f"{count} incident{'' if count == 1 else 's'}"
