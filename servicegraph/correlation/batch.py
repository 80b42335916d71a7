"""One correlation batch: inbox events -> deduplicated alerts -> incidents, in one unit.

``Correlator.process_pending`` (``correlator.py``) builds a ``Batch`` per unit of work;
the batch applies the claimed events (dedup, attach to an incident: its own, a reopened,
a related or a new one), expires flapping, resolves what has been clear for the hold
time, analyses the changed incidents (``assessment``), saves alerts, incidents, their
history and alert cycles, then detects recurrence (``recurrence``). The rules are in the
correlator's module docstring.

Changes (``changes``): an alert that would open an incident while a change is carried out
on its CI (or on one it hard-depends on) is expected: it opens none and carries the
change's id, or opens a P5 incident tagged and linked to the change
(``CorrelationPolicy.expected_alerts``); it stays firing and is looked at again with its
next event, so once the change is over it opens its incident. An incident the batch opens
whose root CI a change touched shortly before is linked to that change (caused_by_change),
the reason in its history. The changes are loaded once, by the first alert about to open
an incident.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING

from servicegraph.cmdb.model import new_id
from servicegraph.correlation.assessment import assess
from servicegraph.correlation.changes import EXPECTED_TAG, LOAD_MARGIN, ChangeMatch, ChangeWindow
from servicegraph.correlation.policy import BatchResult, ExpectedAlerts
from servicegraph.correlation.ports import CorrelationUnit
from servicegraph.correlation.recurrence import Recurrence
from servicegraph.correlation.rootcause import HardTopology
from servicegraph.correlation.state import FORGET_EVERY, Analysis, Members, WorkerState
from servicegraph.correlation.steps import ACTOR
from servicegraph.events.model import Alert, AlertCycle, Event, EventStatus
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import (
    Incident,
    LinkKind,
    TicketLink,
    WorklogEntry,
    WorklogKind,
)

if TYPE_CHECKING:
    from servicegraph.correlation.correlator import Correlator


class Batch:
    """One unit of correlation work: what ``Correlator.process_pending`` runs inside a
    ``CorrelationUnit``, with the correlator's caches and in-memory state."""

    def __init__(self, correlator: Correlator, unit: CorrelationUnit, hard: HardTopology) -> None:
        self.c = correlator
        self.policy = correlator.policy
        self.unit = unit
        self.now = correlator.clock()
        self.hard = hard
        self.graph = self.hard.graph
        self.result = BatchResult()
        self.recurrence = Recurrence(
            unit, self.policy, self.now, self.result, facts=self.c._ci_facts
        )
        self.changed_alerts: dict[str, Alert] = {}
        self.dirty: set[str] = set()
        self.new_incidents: list[str] = []
        self.worklog: list[WorklogEntry] = []  # the incidents' history from this batch
        # fire/clear cycles begun or ended: (fingerprint, fired at) -> (alert, cleared at)
        self.cycles: dict[tuple[str, dt.datetime], tuple[Alert, dt.datetime | None]] = {}
        self._next_number: int | None = None
        self._changes: ChangeWindow | None = None  # loaded when first needed
        self.links: dict[tuple[str, str], TicketLink] = {}  # (incident, change) -> link

    # -- state -----------------------------------------------------------------------------

    def _sync_state(self) -> WorkerState:
        state = self.c._state
        version = self.unit.state_version()
        if state.version == version:
            return state
        state = WorkerState(version=version)
        active = self.unit.active_incidents(self.now - self.policy.reopen_window)
        # monitoring incidents only (the port's contract): a ticket people opened has no
        # alerts to clear and must not be resolved for being "all clear"
        state.incidents = {i.id: i for i in active}
        for incident_id, alerts in self.unit.alerts_of(state.incidents).items():
            state.members[incident_id] = {a.fingerprint: a for a in alerts}
            state.alerts.update(state.members[incident_id])
        for incident_id in state.incidents:
            state.members.setdefault(incident_id, {})
            self._index_incident(state, incident_id)
            members = state.members[incident_id].values()
            if any(a.flapping for a in members):
                state.flapping.add(incident_id)
            state.clearing.add(incident_id)  # _resolve_due keeps those really clearing
        self.c._state = state
        return state

    def _node(self, ci_id: str | None) -> int | None:
        if ci_id is None:
            return None
        return self.graph.index.get(ci_id)

    def _index_incident(self, state: WorkerState, incident_id: str) -> None:
        incident = state.incidents[incident_id]
        old = state.footprints.pop(incident_id, set())
        for node in old:
            holders = state.index.get(node)
            if holders is not None:
                holders.discard(incident_id)
        if not incident.status.active:
            return
        footprint: set[int] = set()
        for alert in state.members[incident_id].values():
            alert_node = self._node(alert.ci_id)
            if alert_node is not None:
                footprint |= self.hard.upstream(alert_node)
        root = self._node(incident.root_ci_id)
        if root is not None:
            footprint.add(root)
        state.footprints[incident_id] = footprint
        for node in footprint:
            state.index.setdefault(node, set()).add(incident_id)

    # -- the batch -------------------------------------------------------------------------

    def run(self, limit: int) -> BatchResult:
        state = self._sync_state()
        claimed = self.unit.claim_pending(limit)
        events = claimed.events
        self.result.events = claimed.read
        self.result.redeliveries = claimed.read - len(events)
        if events:
            self._apply_events(state, events)
        self._expire_flapping(state)
        self._resolve_due(state)
        self._recompute(state)
        self._route(state)
        self._link_possible_causes(state)
        touched = bool(self.changed_alerts or self.dirty)
        if self.changed_alerts:
            self.unit.save_alerts(list(self.changed_alerts.values()))
        if self.dirty:
            self.unit.save_incidents([state.incidents[i] for i in sorted(self.dirty)])
        if self.links:
            self.unit.save_links(list(self.links.values()))
        if self.worklog:
            self.unit.append_worklog(self.worklog)
            self._notify(state)
        if self.cycles:
            self.unit.record_cycles(
                [
                    AlertCycle(fingerprint, fired, cleared, alert.incident_id)
                    for (fingerprint, fired), (alert, cleared) in self.cycles.items()
                ]
            )
        # after saving: the store's answers about past incidents include this batch's
        self.recurrence.detect(state, self.new_incidents)
        self.recurrence.link(state)
        if claimed.read:
            # stamped at the end, so received -> processed measures the whole batch
            self.unit.mark_processed(self.c.clock())
        if touched:
            state.version = self.unit.touched()
        self._forget_old(state)
        return self.result

    def _notify(self, state: WorkerState) -> None:
        """The messages of what the batch's steps did, in its unit (opt-in: a storm opens
        thousands of incidents). A new incident has no "before": its routing to a group
        is an assignment; the others' steps (resolved, reopened) speak for themselves."""
        notifier = self.c.notifier
        if notifier is None:
            return
        by_ticket: dict[str, list[WorklogEntry]] = {}
        for e in self.worklog:
            by_ticket.setdefault(e.ticket_id, []).append(e)
        new = set(self.new_incidents)
        messages = []
        for incident_id, entries in by_ticket.items():
            incident = state.incidents.get(incident_id)
            if incident is not None:
                before = None if incident_id in new else incident
                messages += notifier.for_change(before, incident, entries, self.now)
        if messages:
            self.unit.enqueue(messages)

    def _apply_events(self, state: WorkerState, events: list[Event]) -> None:
        # alerts outside the tracked incidents (``state.alerts``): loaded or new
        # not ``... - state.alerts.keys()``: that walks every alert tracked, each batch
        missing = {e.fingerprint for e in events if e.fingerprint not in state.alerts}
        known = self.unit.load_alerts(missing) if missing else {}
        new_fps = missing - known.keys()
        first_event: dict[str, Event] = {}
        for e in events:
            if e.fingerprint in new_fps:
                first_event.setdefault(e.fingerprint, e)
        mapped = self.c.mapper.map_many([e.labels for e in first_event.values()])
        ci_of = dict(zip(first_event, mapped, strict=True))
        for e in events:
            self._apply(state, known, e, ci_of)

    def _apply(
        self, state: WorkerState, known: dict[str, Alert], e: Event, ci_of: Mapping[str, str | None]
    ) -> None:
        t = e.occurred_at
        alert = state.alerts.get(e.fingerprint) or known.get(e.fingerprint)
        if e.reported_at is not None:
            self.result.clamped += 1
        if alert is None:
            alert = Alert(
                fingerprint=e.fingerprint,
                source=e.source,
                name=e.name,
                severity=e.severity,
                status=e.status,
                labels=dict(e.labels),
                summary=e.summary,
                first_seen=t,
                last_seen=t,
                last_change=t,
                ci_id=ci_of.get(e.fingerprint),
                cleared_at=t if e.status is EventStatus.RESOLVED else None,
                transitions=[t],
                reported_at=e.reported_at,
            )
            known[e.fingerprint] = alert
            self.changed_alerts[e.fingerprint] = alert
            self.result.alerts_created += 1
            if alert.ci_id is None:
                self.result.unmapped += 1
            if alert.firing:
                self.cycles[(alert.fingerprint, t)] = (alert, None)
                self._attach(state, alert, t)
            return
        self.changed_alerts[e.fingerprint] = alert
        alert.count += 1
        if e.reported_at is not None:
            alert.reported_at = e.reported_at
        if t > alert.last_seen:
            alert.last_seen = t
            alert.severity = e.severity
            alert.summary = e.summary or alert.summary
        if e.status is alert.status or t < alert.last_change:
            # a repeat, or a message older than the last change: counted, nothing more
            self.result.duplicates += 1
            if alert.firing and not self._in_open_incident(state, alert):
                self._attach(state, alert, t)
            return
        if e.status is EventStatus.RESOLVED:  # the cycle that began when it last fired
            self.cycles[(alert.fingerprint, alert.last_change)] = (alert, t)
        else:
            self.cycles[(alert.fingerprint, t)] = (alert, None)
        alert.status = e.status
        alert.last_change = t
        horizon = t - self.policy.flap_window
        alert.transitions = [x for x in alert.transitions if x >= horizon] + [t]
        if len(alert.transitions) >= self.policy.flap_threshold:
            alert.flapping = True
        if e.status is EventStatus.RESOLVED:
            alert.cleared_at = t
            if alert.incident_id in state.incidents:
                self.dirty.add(alert.incident_id)
        else:
            alert.cleared_at = None
            self._attach(state, alert, t)

    def _in_open_incident(self, state: WorkerState, alert: Alert) -> bool:
        incident = state.incidents.get(alert.incident_id or "")
        return incident is not None and incident.status.active

    def _attach(self, state: WorkerState, alert: Alert, t: dt.datetime) -> None:
        """Put a firing alert into an incident: its own, a reopened, a related or a new one."""
        incident = state.incidents.get(alert.incident_id or "")
        if incident is not None:
            if incident.status.active:
                self._touch(incident, t)
                return
            recent = (
                incident.resolved_at is not None
                and t - incident.resolved_at <= self.policy.reopen_window
            )
            is_root = incident.root_inferred or incident.root_fingerprint in (
                None,
                alert.fingerprint,
            )
            entry = self.c.steps.reopen(incident, alert, t) if recent and is_root else None
            if entry is not None:
                self.worklog.append(entry)
                self.result.incidents_reopened += 1
                self._touch(incident, t)
                self._index_incident(state, incident.id)
                return
            # it left that incident for good; it starts or joins another
            state.members.get(incident.id, {}).pop(alert.fingerprint, None)
            state.analysis.pop(incident.id, None)  # analyses only grow: rebuilt if needed
            alert.incident_id = None
        node = self._node(alert.ci_id)
        if node is not None:
            related: set[str] = set()
            for n in self.hard.upstream(node):
                related |= state.index.get(n, set())
            candidates = [
                state.incidents[i]
                for i in related
                if t - state.incidents[i].last_alert_at <= self.policy.group_window
            ]
            if candidates:
                target = max(candidates, key=lambda i: (i.last_alert_at, i.number))
                alert.change_id = None  # in an incident now: not held back any longer
                self._join(state, target, alert, t)
                return
        expected = self._expected(alert, t)
        alert.change_id = expected.change.id if expected is not None else None
        if expected is not None and self.policy.expected_alerts is ExpectedAlerts.SUPPRESS:
            self.result.expected += 1  # no incident: its next event looks again
            return
        self._open(state, alert, t, expected)

    def _touch(self, incident: Incident, t: dt.datetime) -> None:
        if t > incident.last_alert_at:
            incident.last_alert_at = t
        incident.clear_since = None
        self.dirty.add(incident.id)

    def _join(self, state: WorkerState, incident: Incident, alert: Alert, t: dt.datetime) -> None:
        alert.incident_id = incident.id
        state.members[incident.id][alert.fingerprint] = alert
        state.alerts[alert.fingerprint] = alert
        self._touch(incident, t)
        node = self._node(alert.ci_id)
        if node is not None:
            analysis = state.analysis.get(incident.id)
            if analysis is not None and analysis.current(self.hard):
                analysis.add(node)
            else:  # built afresh when next needed
                state.analysis.pop(incident.id, None)
            footprint = state.footprints.setdefault(incident.id, set())
            for n in self.hard.upstream(node) - footprint:
                footprint.add(n)
                state.index.setdefault(n, set()).add(incident.id)

    def _open(
        self, state: WorkerState, alert: Alert, t: dt.datetime, expected: ChangeMatch | None
    ) -> None:
        if self._next_number is None:
            self._next_number = self.unit.next_incident_number()
        incident = Incident(
            id=new_id("inc"),
            number=self._next_number,
            title=alert.name,
            status=TicketStatus.NEW,
            opened_at=t,
            updated_at=self.now,
            last_alert_at=t,
            root_ci_id=alert.ci_id,
            root_fingerprint=alert.fingerprint,
        )
        self._next_number += 1
        state.incidents[incident.id] = incident
        state.members[incident.id] = {}
        self.new_incidents.append(incident.id)
        self.worklog.append(self.c.steps.opened(incident, alert, t))
        self.result.incidents_opened += 1
        if expected is not None:
            # the lowest priority, as correlation's own choice with the reason: the matrix
            # and routing's bounds leave it (``Incident.agent_override``); an agent may
            # set another
            reason = self._link_change(incident, expected)
            incident.priority = 5
            incident.priority_reason, incident.priority_set_by = reason, ACTOR
            incident.tags.append(EXPECTED_TAG)
        self._join(state, incident, alert, t)

    # -- changes ---------------------------------------------------------------------------

    def _change_window(self) -> ChangeWindow:
        """The changes around the batch's time, loaded once (only a batch that opens an
        incident asks: repeats of a storm's alerts cost no query)."""
        if self._changes is None:
            after = self.policy.after_change_window
            changes = self.unit.changes_touching(
                self.now - after - LOAD_MARGIN, self.now + LOAD_MARGIN
            )
            self._changes = ChangeWindow(changes, self.hard, after)
        return self._changes

    def _expected(self, alert: Alert, t: dt.datetime) -> ChangeMatch | None:
        if alert.ci_id is None:
            return None
        return self._change_window().expecting(alert.ci_id, t)

    def _link_possible_causes(self, state: WorkerState) -> None:
        """Link the incidents this batch opened to the changes that may have caused them,
        by their root cause as analysed (``_recompute``)."""
        if not self.new_incidents:
            return
        window = self._change_window()
        if window.empty:
            return
        for incident_id in self.new_incidents:
            incident = state.incidents.get(incident_id)
            if incident is None or incident.root_ci_id is None:
                continue
            for match in window.possible_causes(incident.root_ci_id, incident.opened_at):
                if (incident.id, match.change.id) not in self.links:
                    self._link_change(incident, match)

    def _link_change(self, incident: Incident, match: ChangeMatch) -> str:
        """Link the incident to the change (caused_by_change), the reason logged on both
        (as ``tickets_changes.linked_entries`` logs people's links); returns the reason."""
        change = match.change
        link = TicketLink(incident.id, change.id, LinkKind.CAUSED_BY_CHANGE, self.now, ACTOR)
        self.links[(incident.id, change.id)] = link
        facts = self.c._ci_facts({match.ci_id, match.change_ci_id})
        reason = match.reason(lambda ci_id: facts[ci_id][0] if ci_id in facts else ci_id)
        what = f"{incident.id} {link.kind.value.replace('_', ' ')} {change.id}"
        for ticket_id in (incident.id, change.id):
            self.worklog.append(
                WorklogEntry(
                    ticket_id=ticket_id,
                    at=self.now,
                    actor=ACTOR,
                    kind=WorklogKind.LINKED,
                    text=reason,
                    field="links",
                    new=what,
                )
            )
        return reason

    def _route(self, state: WorkerState) -> None:
        """Route the incidents this batch opened, once their root cause and services are
        known; their ROUTED entries follow their CREATED ones."""
        router = self.c.router
        opened = [state.incidents[i] for i in self.new_incidents if i in state.incidents]
        if router is not None and opened:
            self.worklog.extend(router(opened, self.now, ACTOR))

    # -- time-driven -------------------------------------------------------------------------

    def _expire_flapping(self, state: WorkerState) -> None:
        horizon = self.now - self.policy.flap_window
        for incident_id in list(state.flapping):
            incident = state.incidents.get(incident_id)
            members = state.members.get(incident_id, {})
            still = False
            for alert in members.values():
                if alert.flapping and alert.last_change < horizon:
                    alert.flapping = False
                    alert.transitions = []
                    self.changed_alerts[alert.fingerprint] = alert
                    self.dirty.add(incident_id)
                still = still or alert.flapping
            if not still or incident is None:
                state.flapping.discard(incident_id)

    def _resolve_due(self, state: WorkerState) -> None:
        # Only an incident that changed, or is waiting out its hold time, can resolve now.
        for incident_id in self.dirty | state.clearing:
            incident = state.incidents.get(incident_id)
            if incident is None or not incident.status.active:
                state.clearing.discard(incident_id)
                state.holding.discard(incident_id)
                continue
            holding = incident_id in state.holding and incident_id not in self.dirty
            clear_since = incident.clear_since if holding else None
            if clear_since is None:
                clear_since = self._clear_since(state, incident)
                if clear_since is None:
                    continue
            if self.now - clear_since >= self.policy.hold_time:
                # when it qualified, not when this batch noticed
                at = min(self.now, clear_since + self.policy.hold_time)
                why = f"every alert clear for {self.policy.hold_time}"
                entry = self.c.steps.resolve(incident, at, why)
                if entry is None:
                    continue  # the lifecycle keeps it as it is (and it is checked again)
                self.worklog.append(entry)
                self.result.incidents_resolved += 1
                self.dirty.add(incident.id)
                state.clearing.discard(incident_id)
                state.holding.discard(incident_id)
                self._index_incident(state, incident.id)

    def _clear_since(self, state: WorkerState, incident: Incident) -> dt.datetime | None:
        """Since when all the incident's alerts are clear; None while one fires or flaps.
        Keeps ``clearing`` and ``holding`` and the incident's ``clear_since`` current."""
        incident_id = incident.id
        state.holding.discard(incident_id)
        members = state.members.get(incident_id, {}).values()
        if not members or any(a.firing for a in members):
            # without alerts (a monitoring ticket imported, or raised by an integration
            # through the API) there is nothing whose clearing could resolve it
            state.clearing.discard(incident_id)
            return None
        if any(a.flapping for a in members):
            state.flapping.add(incident_id)
            return None
        state.clearing.add(incident_id)
        cleared = [a.cleared_at for a in members if a.cleared_at is not None]
        clear_since = max(cleared) if cleared else incident.last_alert_at
        if incident.clear_since != clear_since:
            incident.clear_since = clear_since
            self.dirty.add(incident_id)
        state.holding.add(incident_id)
        return clear_since

    def _forget_old(self, state: WorkerState) -> None:
        # a walk over every incident held: once a second is enough for a window of minutes,
        # and small batches (a steady trickle of events) do not pay it each time
        if state.forgotten_at is not None and self.now - state.forgotten_at < FORGET_EVERY:
            return
        state.forgotten_at = self.now
        horizon = self.now - self.policy.reopen_window
        for incident_id in [
            i.id
            for i in state.incidents.values()
            if not i.status.active and (i.resolved_at or self.now) < horizon
        ]:
            state.incidents.pop(incident_id)
            for fingerprint, alert in state.members.pop(incident_id, {}).items():
                if alert.incident_id == incident_id:
                    state.alerts.pop(fingerprint, None)
            state.footprints.pop(incident_id, None)
            state.analysis.pop(incident_id, None)

    # -- incident analysis -------------------------------------------------------------------

    def _recompute(self, state: WorkerState) -> None:
        if not self.dirty:
            return
        graph = self.graph
        analysed: list[tuple[Incident, Members, tuple[str, ...]]] = []
        wanted: set[str] = set()  # CIs whose name or criticality the titles and impact need
        for incident_id in self.dirty:
            incident = state.incidents[incident_id]
            incident.updated_at = self.now
            root, services = self._analysis(state, incident_id).result(
                self.policy.inferred_min_share
            )
            root_id = graph.ids[root.node] if root is not None else None
            members = Members.of(state.members.get(incident_id, {}), root_id)
            incident.alert_count = members.count
            if root is not None:
                incident.root_ci_id = root_id
                incident.root_inferred = root.inferred
                incident.root_confidence = round(root.confidence, 3)
                first_on_root = members.first_on_root
                incident.root_fingerprint = (
                    first_on_root.fingerprint if first_on_root is not None else None
                )
            incident.flapping = members.flapping
            if incident.flapping:
                state.flapping.add(incident_id)
            analysed.append((incident, members, services))
            wanted.update(services)
            if incident.root_ci_id is not None:
                wanted.add(incident.root_ci_id)
            self.result.incidents_updated += 1
        facts = self.c._ci_facts(wanted)
        for incident, members, services in analysed:
            alerts = state.members[incident.id]
            # an agent's override stays, and routing's bounds apply (see ``assessment``)
            assess(incident, alerts, members, services, facts, self.policy).apply_to(incident)

    def _analysis(self, state: WorkerState, incident_id: str) -> Analysis:
        analysis = state.analysis.get(incident_id)
        if analysis is None or not analysis.current(self.hard):
            analysis = Analysis(
                self.hard, self.c.impact.max_depth, self.c._business_nodes(self.graph)
            )
            for alert in state.members.get(incident_id, {}).values():
                node = self._node(alert.ci_id)
                if node is not None:
                    analysis.add(node)
            state.analysis[incident_id] = analysis
        return analysis
