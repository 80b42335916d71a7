"""Problems from recurrence: a batch's new incidents open or extend a problem when

- their root CI was the root of ``problem_incidents_per_ci`` incidents within
  ``problem_window`` (signature ``ci:<ci id>``), or
- their root alert's ``source/name`` was the root cause on ``problem_recurring_cis`` CIs
  within that window (signature ``alert:<source>/<name>``).

A problem is found again by its signature: a new one gets all its incidents, an existing
one only the batch's new ones (the others were linked when they were new). A resolved
problem that recurs is reopened (its fix did not hold); a closed one is final, so the
recurrence opens a new problem and the closed one keeps an archived signature
(``<signature>#<number>``).

The batch asks after saving its alerts and incidents, so that the store's answers about
past incidents include this batch's, and links the problems' incidents after that.

Titles and reasons are read by people: they name CIs by name (``facts``, the correlator's
cached CI facts) and the window in words ("7 days", ``durations``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from functools import partial

from servicegraph.cmdb.model import new_id
from servicegraph.correlation.assessment import CIFacts
from servicegraph.correlation.policy import BatchResult, CorrelationPolicy
from servicegraph.correlation.state import WorkerState
from servicegraph.correlation.steps import ACTOR
from servicegraph.ticketing.durations import human_duration
from servicegraph.ticketing.lifecycle import ActorKind
from servicegraph.ticketing.model import Problem, ProblemStatus
from servicegraph.ticketing.ports import TicketUnit
from servicegraph.ticketing.problem_lifecycle import (
    ProblemStepFields,
    load_problem_lifecycle,
    take_problem_step,
)

# correlation reopens problems by the default lifecycle's reopen step (to investigating or
# open), which a deployment's own lifecycle must keep
_LIFECYCLE = load_problem_lifecycle()


class Recurrence:
    """Problem detection for one batch: ``detect``, then ``link``, in its unit of work."""

    def __init__(
        self,
        unit: TicketUnit,
        policy: CorrelationPolicy,
        now: dt.datetime,
        result: BatchResult,
        *,
        facts: Callable[[set[str]], CIFacts] | None = None,
    ) -> None:
        self.unit = unit
        self.policy = policy
        self.now = now
        self.result = result
        # CI id -> (name, ...) for the CIs asked, at least those that exist
        # (``Correlator._ci_facts``); without it, titles fall back to CI ids
        self.facts = facts
        self._links: list[tuple[Problem, list[str]]] = []

    def detect(self, state: WorkerState, new_incidents: Sequence[str]) -> None:
        """Open or update the problems that the new incidents (ids in ``state``) recur in,
        and note which incidents to link to each."""
        self._links = []
        if not new_incidents:
            return
        since = self.now - self.policy.problem_window
        window = human_duration(self.policy.problem_window)
        new = [state.incidents[i] for i in new_incidents]
        roots = sorted({i.root_ci_id for i in new if i.root_ci_id is not None})
        if roots:
            by_root: dict[str, list[str]] = {}
            for incident in self.unit.incidents_with_root(roots, since):
                if incident.root_ci_id is not None:
                    by_root.setdefault(incident.root_ci_id, []).append(incident.id)
            recurring = {
                root: incident_ids
                for root, incident_ids in by_root.items()
                if len(incident_ids) >= self.policy.problem_incidents_per_ci
            }
            names = self._names(set(recurring))
            for root, incident_ids in sorted(recurring.items()):
                self._problem(
                    f"ci:{root}",
                    root,
                    f"recurring incidents on {names[root]}",
                    f"{len(incident_ids)} incidents on {names[root]} within {window}",
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
                reason = f"'{signature}' was the root cause on {cis} CIs within {window}"
                self._problem(
                    f"alert:{signature}",
                    None,
                    reason,
                    reason,
                    new_ids=new_ids,
                    all_ids=partial(self.unit.incidents_named, signature, since),
                )

    def _names(self, ci_ids: set[str]) -> dict[str, str]:
        """The name of each of ``ci_ids``; its id for a CI without a known name."""
        facts = self.facts(ci_ids) if self.facts is not None and ci_ids else {}
        names: dict[str, str] = {}
        for ci_id in ci_ids:
            fact = facts.get(ci_id)
            names[ci_id] = fact[0] if fact is not None and fact[0] else ci_id
        return names

    def _problem(
        self,
        signature: str,
        root_ci_id: str | None,
        title: str,
        reason: str,
        *,
        new_ids: list[str],
        all_ids: Callable[[], list[str]],
    ) -> None:
        """Open the problem ``signature`` with all its incidents, or link this batch's new
        ones (``new_ids``) to it: the others were linked when they were new."""
        problem = self.unit.find_problem(signature)
        if problem is not None and problem.status is ProblemStatus.CLOSED:
            # closed is final: the recurrence is a new problem, and the signature names the
            # live one (the closed one keeps its incidents and history under an archived
            # signature)
            problem.signature = f"{signature}#{problem.number}"
            self.unit.save_problem(problem)
            problem = None
        if problem is None:
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
            if problem.status is ProblemStatus.RESOLVED:
                self._reopen(problem, len(linked))
        self.unit.save_problem(problem)
        self._links.append((problem, linked))

    def _reopen(self, problem: Problem, count: int) -> None:
        """The fix did not hold: the problem is worked again, by whoever had it (open when
        nobody did), with the recurrence as the reason."""
        target = ProblemStatus.INVESTIGATING if problem.assignee else ProblemStatus.OPEN
        again = "incident" if count == 1 else "incidents"
        entries = take_problem_step(
            _LIFECYCLE,
            problem,
            target.value,
            ProblemStepFields(reason=f"{count} new {again} since it was resolved"),
            actor=ACTOR,
            actor_kind=ActorKind.SYSTEM,
            now=self.now,
        )
        self.unit.append_worklog(entries)
        self.result.problems_reopened += 1

    def link(self, state: WorkerState) -> None:
        """Link the incidents noted by ``detect``; those held in ``state`` learn their
        problem (the first one, as the store keeps it)."""
        for problem, incident_ids in self._links:
            self.unit.link_problem(problem.id, incident_ids, self.now)
            for incident_id in incident_ids:
                incident = state.incidents.get(incident_id)
                if incident is not None and incident.problem_id is None:
                    incident.problem_id = problem.id
