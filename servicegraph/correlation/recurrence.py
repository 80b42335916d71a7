"""Problems from recurrence: a batch's new incidents open or extend a problem when

- their root CI was the root of ``problem_incidents_per_ci`` incidents within
  ``problem_window`` (signature ``ci:<ci id>``), or
- their root alert's ``source/name`` was the root cause on ``problem_recurring_cis`` CIs
  within that window (signature ``alert:<source>/<name>``).

A problem is found again by its signature: a new one gets all its incidents, an existing
one only the batch's new ones (the others were linked when they were new).

The batch asks after saving its alerts and incidents, so that the store's answers about
past incidents include this batch's, and links the problems' incidents after that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from functools import partial

from servicegraph.cmdb.model import new_id
from servicegraph.correlation.policy import BatchResult, CorrelationPolicy
from servicegraph.correlation.state import WorkerState
from servicegraph.ticketing.model import Problem, ProblemStatus
from servicegraph.ticketing.ports import TicketUnit


class Recurrence:
    """Problem detection for one batch: ``detect``, then ``link``, in its unit of work."""

    def __init__(
        self, unit: TicketUnit, policy: CorrelationPolicy, now: dt.datetime, result: BatchResult
    ) -> None:
        self.unit = unit
        self.policy = policy
        self.now = now
        self.result = result
        self._links: list[tuple[Problem, list[str]]] = []

    def detect(self, state: WorkerState, new_incidents: Sequence[str]) -> None:
        """Open or update the problems that the new incidents (ids in ``state``) recur in,
        and note which incidents to link to each."""
        self._links = []
        if not new_incidents:
            return
        since = self.now - self.policy.problem_window
        new = [state.incidents[i] for i in new_incidents]
        roots = sorted({i.root_ci_id for i in new if i.root_ci_id is not None})
        if roots:
            by_root: dict[str, list[str]] = {}
            for incident in self.unit.incidents_with_root(roots, since):
                if incident.root_ci_id is not None:
                    by_root.setdefault(incident.root_ci_id, []).append(incident.id)
            for root, incident_ids in sorted(by_root.items()):
                if len(incident_ids) >= self.policy.problem_incidents_per_ci:
                    self._problem(
                        f"ci:{root}",
                        root,
                        f"{len(incident_ids)} incidents on this CI within "
                        f"{self.policy.problem_window}",
                        new_ids=[i.id for i in new if i.root_ci_id == root],
                        all_ids=partial(list, incident_ids),
                    )
        by_signature: dict[str, list[str]] = {}
        for incident in new:
            root_alert = state.members[incident.id].get(incident.root_fingerprint or "")
            if root_alert is not None and incident.root_ci_id is not None:
                signature = f"{root_alert.source}/{root_alert.name}"
                by_signature.setdefault(signature, []).append(incident.id)
        for signature, new_ids in sorted(by_signature.items()):
            cis = self.unit.count_roots_named(signature, since)
            if cis >= self.policy.problem_recurring_cis:
                self._problem(
                    f"alert:{signature}",
                    None,
                    f"'{signature}' was the root cause on {cis} CIs within "
                    f"{self.policy.problem_window}",
                    new_ids=new_ids,
                    all_ids=partial(self.unit.incidents_named, signature, since),
                )

    def _problem(
        self,
        signature: str,
        root_ci_id: str | None,
        reason: str,
        *,
        new_ids: list[str],
        all_ids: Callable[[], list[str]],
    ) -> None:
        """Open the problem ``signature`` with all its incidents, or link this batch's new
        ones (``new_ids``) to it: the others were linked when they were new."""
        problem = self.unit.find_problem(signature)
        if problem is None:
            title = reason if root_ci_id is None else f"recurring incidents on {root_ci_id}"
            problem = Problem(
                id=new_id("prb"),
                number=self.unit.next_problem_number(),
                title=title,
                status=ProblemStatus.OPEN,
                created_at=self.now,
                updated_at=self.now,
                root_ci_id=root_ci_id,
                reason=reason,
                signature=signature,
            )
            self.result.problems_opened += 1
            linked = sorted(all_ids())
        else:
            problem.updated_at = self.now
            problem.reason = reason
            linked = sorted(new_ids)
        self.unit.save_problem(problem)
        self._links.append((problem, linked))

    def link(self, state: WorkerState) -> None:
        """Link the incidents noted by ``detect``; those held in ``state`` learn their
        problem (the first one, as the store keeps it)."""
        for problem, incident_ids in self._links:
            self.unit.link_problem(problem.id, incident_ids, self.now)
            for incident_id in incident_ids:
                incident = state.incidents.get(incident_id)
                if incident is not None and incident.problem_id is None:
                    incident.problem_id = problem.id
