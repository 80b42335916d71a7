"""The escalation job: SLA clocks that reach a level fire it, once per ticket, clock and level.

What a level does (``sla_config.EscalationLevel``): notify (the assignee, the group, the
group's manager, literal addresses), raise the priority by one step, hand the ticket to
another group. Each firing is an ESCALATED entry in the ticket's history, with what it did.

**Once, whatever the timing.** A level fires when the job finds the clock at or past its
share; the job claims the level (``TicketUnit.claim_escalation``: a row keyed by ticket,
clock and level) in the same unit as its effects, so a job that dies before the commit
leaves it unclaimed for the next run, and two jobs running at once (two beat hosts, a
manual run beside the scheduler) serialise on the store's write lock and the second finds
it claimed. A job that runs late fires every level the clock passed meanwhile, in order.
Only running clocks fire: a ticket resolved or paused before the job came is not
escalated after the fact.

**What the job reads.** Only the tickets whose ``next_check_at`` has come (an index), and
in each run a bounded number of tickets whose clocks were evaluated under another
configuration, re-evaluated from history (after a policy changed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.model import utcnow
from servicegraph.ticketing.lifecycle import ActorKind, StateMachine
from servicegraph.ticketing.model import Incident, WorklogEntry, WorklogKind
from servicegraph.ticketing.notifications import escalation_recipients
from servicegraph.ticketing.outbox import OutboxMessage
from servicegraph.ticketing.people import Directory
from servicegraph.ticketing.ports import TicketStore, TicketUnit
from servicegraph.ticketing.sla import Clock
from servicegraph.ticketing.sla_config import EscalationLevel
from servicegraph.ticketing.sla_projection import Fired, SlaProjector, SlaRecord
from servicegraph.ticketing.tickets_work import assign_to, changed, entry

ACTOR = "sla"  # the actor of the job's history entries and priority raises
CHUNK = 200  # tickets per unit: the write lock is never held for long


class EscalationNotifier(Protocol):
    """Renders the messages of a level (``ticketing.notifications``)."""

    def escalation(
        self,
        ticket: Incident,
        *,
        event: str,
        level: EscalationLevel,
        clock: Clock,
        recipients: Sequence[str],
        now: dt.datetime,
    ) -> list[OutboxMessage]: ...


@dataclass
class SweepReport:
    evaluated: int = 0  # tickets whose clocks the run looked at
    reevaluated: int = 0  # of those, evaluated again from history (configuration changed)
    fired: int = 0  # levels fired
    levels: list[tuple[str, str]] = field(default_factory=list)  # (ticket id, level name)


class EscalationJob:
    def __init__(
        self,
        store: TicketStore,
        projector: SlaProjector,
        *,
        directory: Callable[[], Directory],
        lifecycle: StateMachine,
        notifier: EscalationNotifier | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.store = store
        self.projector = projector
        self.directory = directory
        self.lifecycle = lifecycle
        self.notifier = notifier
        self.clock = clock

    def run(self, now: dt.datetime | None = None, *, limit: int = 10_000) -> SweepReport:
        """Fire the levels due at ``now`` (default: the clock's now) on up to ``limit``
        tickets, after re-evaluating up to ``limit`` stale ones."""
        report = SweepReport()
        if not self.projector.enabled:
            return report
        now = now or self.clock()
        stale = self.store.sla_stale(self.projector.config.version, limit)
        for i in range(0, len(stale), CHUNK):
            with self.store.unit() as unit:
                report.reevaluated += self._reevaluate(unit, stale[i : i + CHUNK])
        due = self.store.sla_due(now, limit)
        directory = self.directory()
        for i in range(0, len(due), CHUNK):
            with self.store.unit() as unit:
                self._escalate(unit, due[i : i + CHUNK], now, directory, report)
        report.evaluated += len(due)
        return report

    def _reevaluate(self, unit: TicketUnit, ids: Sequence[str]) -> int:
        """The clocks of ``ids`` evaluated again from their history, at the unit's commit
        (the store's own re-evaluation of the tickets a unit saves)."""
        return len(ids) if unit.reevaluate_sla(ids) else 0

    def _escalate(
        self,
        unit: TicketUnit,
        ids: Sequence[str],
        now: dt.datetime,
        directory: Directory,
        report: SweepReport,
    ) -> None:
        records = unit.load_sla(ids)
        incidents = unit.load_incidents(records)
        fired = unit.fired_levels(records)
        changed_tickets: list[Incident] = []
        kept: list[SlaRecord] = []
        log: list[WorklogEntry] = []
        messages: list[OutboxMessage] = []
        for ticket_id, stored in records.items():
            t = incidents.get(ticket_id)
            if t is None:
                continue
            done = set(fired.get(ticket_id, frozenset()))
            record = self.projector.at(stored, now, frozenset(done))
            moved = False
            for level in self.projector.levels(record):
                clock = record.clock(level.clock)
                if clock.stopped_at is not None or clock.paused:
                    continue
                if (level.clock.value, level.number) in done:
                    continue
                if clock.elapsed < clock.target * level.share:
                    continue
                if not unit.claim_escalation(ticket_id, level.clock.value, level.number, now):
                    continue  # another job fired it in the meantime
                done.add((level.clock.value, level.number))
                entries, notes = self._fire(t, level, clock, record, directory, now)
                log += entries
                messages += notes
                moved = moved or any(e.kind is not WorklogKind.ESCALATED for e in entries)
                report.fired += 1
                report.levels.append((ticket_id, level.name))
            if moved:
                t.updated_at = now
                changed_tickets.append(t)  # its clocks are evaluated again at the commit
            else:
                kept.append(self.projector.at(stored, now, frozenset(done)))
        if log:
            unit.append_worklog(log)
        if changed_tickets:
            unit.update_incidents(changed_tickets)
        if messages:
            unit.enqueue(messages)
        unit.save_sla(kept)

    def _fire(
        self,
        t: Incident,
        level: EscalationLevel,
        clock: Clock,
        record: SlaRecord,
        directory: Directory,
        now: dt.datetime,
    ) -> tuple[list[WorklogEntry], list[OutboxMessage]]:
        """What ``level`` does to ``t``: entries for the history, messages for the outbox."""
        did: list[str] = []
        entries: list[WorklogEntry] = []
        recipients = _recipients(level.notify, t, directory)
        if level.raise_priority and t.priority > 1:
            before = t.priority
            t.priority, t.priority_set_by = before - 1, ACTOR
            t.priority_reason = f"SLA escalation: {level.name} of policy '{record.policy}'"
            entries.append(
                changed(t, now, ACTOR, "priority", before, t.priority,
                        f"priority: P{before} -> P{t.priority}: {t.priority_reason}")
            )  # fmt: skip
            did.append(f"priority P{before} -> P{t.priority}")
        if level.reassign is not None and level.reassign != t.assignment_group:
            try:
                entries += assign_to(
                    self.lifecycle, directory, t, group=level.reassign, agent=None,
                    actor=ACTOR, actor_kind=ActorKind.SYSTEM, now=now,
                    note=f"SLA escalation: {level.name}",
                )  # fmt: skip
                did.append(f"reassigned to {level.reassign}")
            except ValidationFailed as exc:
                did.append(f"could not reassign to {level.reassign}: {exc.reason}")
        messages: list[OutboxMessage] = []
        if recipients:
            did.append("notified " + ", ".join(recipients))
            if self.notifier is not None:  # it resolves the roles itself, with languages
                messages = self.notifier.escalation(
                    t, event=level.event, level=level, clock=clock, recipients=level.notify,
                    now=now,
                )  # fmt: skip
        elif level.notify:
            did.append("nobody to notify (" + ", ".join(level.notify) + " unknown)")
        state = "breached" if clock.elapsed >= clock.target else f"{_share(clock)} of its target"
        text = f"SLA {level.name} ({record.policy}): the {clock.kind.value} clock is {state}"
        if did:
            text += "; " + "; ".join(did)
        head = entry(t.id, now, ACTOR, WorklogKind.ESCALATED, text,
                     field=clock.kind.value, new=str(level.number))  # fmt: skip
        return [head, *entries], messages


def _share(clock: Clock) -> str:
    return f"{round(clock.elapsed / clock.target * 100)}%"


def _recipients(notify: Sequence[str], t: Incident, directory: Directory) -> list[str]:
    """The addresses a level's roles and addresses come to, each once, in order: whom the
    notifier mails (``notifications.escalation_recipients``), so the history says it."""
    found = [r.email for who in notify for r in escalation_recipients(directory, t, who)]
    return list(dict.fromkeys(found))


__all__ = ["EscalationJob", "EscalationNotifier", "Fired", "SweepReport"]
