"""The desk's ticket service: incidents and service requests raised and worked by people.

The agreed API of the entry points (GraphQL, CLI). Every write is one ``TicketStore``
unit: the ticket is loaded in it, checked and changed by pure steps (``intake`` for a new
ticket, ``tickets_work`` for transitions and assignments, ``tickets_changes`` for fields,
priority and links), and saved with one worklog entry per changed field, or nothing at
all when a step refuses. The actor is the ``ChangeContext``'s (the API token's holder, or
the CLI user); people act as agents unless a method is told ``actor_kind``.

Tickets share the incident table, its numbering and its history with the incidents
correlation opens from alerts; ``unit.touched()`` tells correlation when a monitoring
incident changed under it (a people's ticket is none of its business, so their writes do
not make every correlation worker reload).

Errors: ``ValidationFailed`` / ``ValidationErrors`` naming the field, ``TicketNotFound``
(kind, id, field), ``InvalidState`` naming the allowed steps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from servicegraph.cmdb.context import current_change_context
from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.cmdb.model import new_id, utcnow
from servicegraph.cmdb.ports import GraphStore
from servicegraph.ticketing.catalogue import Catalogue
from servicegraph.ticketing.errors import InvalidState, TicketNotFound
from servicegraph.ticketing.intake import MAX_TEXT, NewTicket, admit, choice, resolve_cis
from servicegraph.ticketing.intake import text as clean
from servicegraph.ticketing.lifecycle import ActorKind, TicketStatus
from servicegraph.ticketing.model import (
    Channel,
    Incident,
    LinkKind,
    TicketLink,
    TicketType,
    WorklogEntry,
    WorklogKind,
)
from servicegraph.ticketing.notifications import Notifier
from servicegraph.ticketing.paging import Page
from servicegraph.ticketing.people import Directory
from servicegraph.ticketing.ports import IncidentFilter, TicketOrder, TicketStore, TicketUnit
from servicegraph.ticketing.ticket_reads import TicketReads
from servicegraph.ticketing.tickets_changes import (
    TicketChanges,
    apply_changes,
    check_link,
    link_kind,
    linked_entries,
    override_priority,
)
from servicegraph.ticketing.tickets_policy import DeskPolicy
from servicegraph.ticketing.tickets_routing import CIFacts, TicketRouter, read_ci_facts
from servicegraph.ticketing.tickets_work import (
    StepFields,
    assign_to,
    entry,
    responded,
    take_step,
)

__all__ = ["NewTicket", "Page", "TicketChanges", "TicketService"]

Clock = Callable[[], dt.datetime]
Step = Callable[[TicketUnit, Incident, dt.datetime, str], list[WorklogEntry]]

AUTO_CLOSE_CODE = "auto_closed"
SYSTEM = "system"  # the actor of the auto-close job's entries
AUTO_CLOSE_CHUNK = 200  # tickets closed per unit: the write lock is never held for long
MAX_ANCESTORS = 100


def _actor() -> str:
    return current_change_context().actor


def _reason(exc: ValidationFailed | TicketNotFound) -> str:
    return exc.reason if isinstance(exc, ValidationFailed) else str(exc)


@dataclass(frozen=True)
class _Made:
    """A ticket checked by ``TicketService._prepare``, to be saved as it is."""

    ticket: Incident
    entries: list[WorklogEntry]
    parent: Incident | None


def _optional(value: str | None, field: str, limit: int = MAX_TEXT) -> str | None:
    """Blank is as good as not given."""
    if value is None:
        return None
    return clean(value, field, limit=limit, required=False) or None


class TicketService(TicketReads):
    """See the module docstring; ``directory`` and ``catalogue`` give the current people
    and service catalogue (``DeskDirectory`` caches them per version). Its reads (a
    ticket, pages, queues, links, history) are ``TicketReads``'."""

    def __init__(
        self,
        store: TicketStore,
        graph: GraphStore,
        *,
        directory: Callable[[], Directory],
        catalogue: Callable[[], Catalogue],
        policy: DeskPolicy | None = None,
        clock: Clock = utcnow,
        notifier: Notifier | None = None,
    ) -> None:
        self.store = store
        self.graph = graph
        self.directory = directory
        self.catalogue = catalogue
        self.policy = policy or DeskPolicy()
        self.clock = clock
        self.router = TicketRouter(graph, directory, catalogue, self.policy)
        # notifications: the messages a change causes are enqueued in its unit (None: off)
        self.notifier = notifier

    # -- create ------------------------------------------------------------------------------

    def create(self, new: NewTicket) -> Incident:
        """Open a ticket (see ``intake`` for the rules); routed, optionally auto-assigned
        to the group's least-loaded agent, numbered from the shared incident sequence."""
        now, actor = self.clock(), _actor()
        made = self._prepare(new, self.directory(), self.catalogue(), now, actor, {})
        with self.store.unit() as unit:
            self._save(unit, made, now, actor)
        return made.ticket

    def create_many(
        self, news: Sequence[NewTicket], *, dry_run: bool = False, items: Sequence[str] = ()
    ) -> list[Incident]:
        """Open every ticket or none (an import): each is checked as ``create`` checks it
        before anything is written, then all are saved in one unit (consecutive numbers).
        ValidationErrors lists every refused ticket, its ``item`` being ``items[i]`` (the
        import's ``file:line``) or ``#i`` counted from 1. ``dry_run`` checks only: the
        tickets are returned unnumbered (0) and nothing is written. Automatic assignment
        counts the batch's own tickets, so a batch spreads over the group."""
        now, actor = self.clock(), _actor()
        directory, catalogue = self.directory(), self.catalogue()
        counts: dict[str, int] = {}
        made: list[_Made] = []
        errors: list[ValidationFailed] = []
        for index, new in enumerate(news):
            item = items[index] if index < len(items) else f"#{index + 1}"
            try:
                made.append(self._prepare(new, directory, catalogue, now, actor, counts))
            except (ValidationFailed, ValidationErrors, TicketNotFound) as exc:
                found = exc.errors if isinstance(exc, ValidationErrors) else [exc]
                errors += [ValidationFailed(_reason(e), item=item, field=e.field) for e in found]
        if errors:
            raise ValidationErrors(errors)
        if not dry_run and made:
            with self.store.unit() as unit:
                for one in made:
                    self._save(unit, one, now, actor)
        return [one.ticket for one in made]

    def _prepare(
        self,
        new: NewTicket,
        directory: Directory,
        catalogue: Catalogue,
        now: dt.datetime,
        actor: str,
        counts: dict[str, int],
    ) -> _Made:
        """The checked ticket and its first history, nothing written; ``counts`` are the
        open tickets per agent read so far (updated with the automatic assignment)."""
        kind = choice(TicketType, new.type, "type")
        cis = self._ci_facts(new.affected_ci_ids)
        prefix = "req" if kind is TicketType.SERVICE_REQUEST else "inc"
        admission = admit(
            new,
            ticket_id=new_id(prefix),
            now=now,
            actor=actor,
            directory=directory,
            catalogue=catalogue,
            policy=self.policy,
            cis=cis,
            decide_route=lambda facts, support, owner: self.router.decide(
                facts, directory, support_groups=support, service_owner=owner
            ),
        )
        ticket, entries = admission.ticket, admission.entries
        parent = self.get(new.parent_id, field="parent_id") if new.parent_id else None
        agent, note = new.assignee, ""
        if agent is None and self.policy.auto_assign and ticket.assignment_group:
            members = directory.group_members(ticket.assignment_group)
            unread = [m.login for m in members if m.login not in counts]
            counts.update({login: 0 for login in unread} | self.store.open_counts(unread))
            agent = directory.least_loaded(ticket.assignment_group, counts)
            note = "automatic, the member with the fewest open tickets"
        if agent is not None:
            entries += assign_to(
                self.policy.lifecycle, directory, ticket, group=None, agent=agent,
                actor=actor, actor_kind=ActorKind.SYSTEM, now=now, note=note,
            )  # fmt: skip
            counts[agent] = counts.get(agent, 0) + 1
        return _Made(ticket, entries, parent)

    def _save(self, unit: TicketUnit, made: _Made, now: dt.datetime, actor: str) -> None:
        ticket, entries, parent = made.ticket, list(made.entries), made.parent
        ticket.number = unit.next_incident_number()
        unit.save_incidents([ticket])
        if parent is not None:
            link = TicketLink(parent.id, ticket.id, LinkKind.PARENT_OF, now, actor)
            unit.save_links([link])
            entries += linked_entries(link, now, actor)
        unit.append_worklog(entries)
        if self.notifier is not None:  # notifications, in the unit that creates the ticket
            unit.enqueue(self.notifier.for_change(None, ticket, entries, now))
        if parent is not None and parent.channel is Channel.MONITORING:
            unit.touched()

    def _ci_facts(
        self, ci_ids: Sequence[str], field: str = "affected_ci_ids"
    ) -> dict[str, CIFacts]:
        """The affected CIs, checked to exist (merged ones stand for their survivors), with
        what routing needs of each, in the caller's order."""
        if not ci_ids:
            return {}
        found = self.graph.get_cis(ci_ids)
        survivors = {ci.merged_into for ci in found.values() if ci.merged_into}
        if survivors - found.keys():
            found.update(self.graph.get_cis(survivors - found.keys()))
        ids = resolve_cis(ci_ids, found)
        facts = read_ci_facts(self.graph, {i: found[i] for i in ids})
        return {i: facts[i] for i in ids}

    # -- work --------------------------------------------------------------------------------

    def _work(self, ticket_id: str, step: Step, *, field: str = "ticket_id") -> Incident:
        now, actor = self.clock(), _actor()
        with self.store.unit() as unit:
            ticket = unit.load_incidents([ticket_id]).get(ticket_id)
            if ticket is None:
                raise TicketNotFound("ticket", ticket_id, field=field)
            before = replace(ticket) if self.notifier is not None else None
            entries = step(unit, ticket, now, actor)
            if entries:
                ticket.updated_at = max(now, ticket.updated_at)
                unit.update_incidents([ticket])
                unit.append_worklog(entries)
                if self.notifier is not None:  # notifications, in the unit of the change
                    unit.enqueue(self.notifier.for_change(before, ticket, entries, now))
                if ticket.channel is Channel.MONITORING:
                    unit.touched()
        return ticket

    def transition(
        self,
        ticket_id: str,
        step: str,
        *,
        pending_reason: str | None = None,
        resolution_code: str | None = None,
        resolution: str | None = None,
        close_code: str | None = None,
        reason: str | None = None,
        actor_kind: ActorKind = ActorKind.AGENT,
    ) -> Incident:
        """Take a lifecycle step (start, pend, resume, resolve, close, cancel, reopen,
        assign) or move to a status; the lifecycle says what the step requires."""
        name = clean(step, "step", limit=64)
        kind = choice(ActorKind, actor_kind, "actor_kind")
        fields = StepFields(
            pending_reason=_optional(pending_reason, "pending_reason", 64),
            resolution_code=_optional(resolution_code, "resolution_code", 64),
            resolution=_optional(resolution, "resolution"),
            close_code=_optional(close_code, "close_code", 64),
            reason=_optional(reason, "reason"),
        )

        def step_(
            unit: TicketUnit, t: Incident, now: dt.datetime, actor: str
        ) -> list[WorklogEntry]:
            return take_step(
                self.policy.lifecycle, t, name, fields, actor=actor, actor_kind=kind, now=now,
                reopen_window=self.policy.reopen_window,
            )  # fmt: skip

        return self._work(ticket_id, step_)

    def assign(
        self,
        ticket_id: str,
        *,
        group: str | None = None,
        agent: str | None = None,
        actor_kind: ActorKind = ActorKind.AGENT,
    ) -> Incident:
        """Give the ticket to a group and/or one of its agents (``tickets_work.assign_to``)."""
        directory = self.directory()

        def step(unit: TicketUnit, t: Incident, now: dt.datetime, actor: str) -> list[WorklogEntry]:
            return assign_to(
                self.policy.lifecycle, directory, t, group=group, agent=agent, actor=actor,
                actor_kind=actor_kind, now=now,
            )  # fmt: skip

        return self._work(ticket_id, step)

    def update(self, ticket_id: str, changes: TicketChanges) -> Incident:
        """Change fields (``tickets_changes.apply_changes``)."""
        directory, catalogue = self.directory(), self.catalogue()
        ci_ids = None
        if changes.affected_ci_ids is not None:
            ci_ids = list(self._ci_facts(changes.affected_ci_ids))

        def step(unit: TicketUnit, t: Incident, now: dt.datetime, actor: str) -> list[WorklogEntry]:
            return apply_changes(
                t, changes, ci_ids=ci_ids, directory=directory, catalogue=catalogue,
                policy=self.policy, actor=actor, now=now,
            )  # fmt: skip

        return self._work(ticket_id, step)

    def override_priority(self, ticket_id: str, priority: int, reason: str) -> Incident:
        """An agent's priority instead of the matrix's, with the reason (required unless
        it equals the matrix's, which ends an override)."""

        def step(unit: TicketUnit, t: Incident, now: dt.datetime, actor: str) -> list[WorklogEntry]:
            return override_priority(t, priority, reason, self.policy, actor, now)

        return self._work(ticket_id, step)

    def comment(self, ticket_id: str, text: str, *, to_requester: bool = False) -> Incident:
        """A note in the history; always allowed, closed tickets included. An internal
        note by default; ``to_requester`` makes it a reply the requester sees (and is told
        of), the ticket's first response if it has none."""
        body = clean(text, "text", limit=MAX_TEXT)
        kind = WorklogKind.REPLY if to_requester else WorklogKind.COMMENT

        def step(unit: TicketUnit, t: Incident, now: dt.datetime, actor: str) -> list[WorklogEntry]:
            if to_requester:
                responded(t, now)
            return [entry(t.id, now, actor, kind, body)]

        return self._work(ticket_id, step)

    # -- links -------------------------------------------------------------------------------

    def link(self, source_id: str, kind: LinkKind, target_id: str) -> TicketLink:
        """Link two tickets (or a ticket to the change that caused it); linking again
        returns the stored link. Refused: a self-link, a target that does not exist (a
        caused_by_change target must be a change), a second parent or duplicate target, a
        parent cycle."""
        link_as = link_kind(kind)
        target_id = clean(target_id, "target_id", limit=64)
        self._check_target(link_as, target_id)
        made: list[TicketLink] = []

        def step(unit: TicketUnit, t: Incident, now: dt.datetime, actor: str) -> list[WorklogEntry]:
            existing = check_link(t, link_as, target_id, self.store.links_of([t.id, target_id]))
            if existing is not None:
                made.append(existing)
                return []
            if link_as is LinkKind.PARENT_OF and target_id in self._ancestors(t.id):
                raise ValidationFailed(f"{target_id} is an ancestor of {t.id}", field="target_id")
            link = TicketLink(t.id, target_id, link_as, now, actor)
            unit.save_links([link])
            made.append(link)
            return linked_entries(link, now, actor)

        self._work(source_id, step, field="source_id")
        return made[0]

    def unlink(self, source_id: str, kind: LinkKind, target_id: str) -> None:
        link_as = link_kind(kind)

        def step(unit: TicketUnit, t: Incident, now: dt.datetime, actor: str) -> list[WorklogEntry]:
            stored = self.store.links_of([t.id]).get(t.id, [])
            key = (t.id, link_as, target_id)
            found = next((x for x in stored if (x.source_id, x.kind, x.target_id) == key), None)
            if found is None:
                what = f"{t.id} {link_as.value} {target_id}"
                raise TicketNotFound("link", what, field="target_id")
            unit.delete_links([found])
            return linked_entries(found, now, actor, removed=True)

        self._work(source_id, step, field="source_id")

    def _check_target(self, kind: LinkKind, target_id: str) -> None:
        if kind is LinkKind.CAUSED_BY_CHANGE:
            if not target_id.startswith("chg-"):
                raise ValidationFailed("must be a change (chg-...)", field="target_id")
            if target_id not in self.store.get_changes([target_id]):
                raise TicketNotFound("change", target_id, field="target_id")
        else:
            self.get(target_id, field="target_id")

    def _ancestors(self, ticket_id: str) -> set[str]:
        """The parents of ``ticket_id``, theirs, and so on (a bounded walk)."""
        seen: set[str] = set()
        current = ticket_id
        for _ in range(MAX_ANCESTORS):
            links = self.store.links_of([current]).get(current, [])
            parent = next(
                (
                    x.source_id
                    for x in links
                    if x.kind is LinkKind.PARENT_OF and x.target_id == current
                ),
                None,
            )
            if parent is None or parent in seen:
                break
            seen.add(parent)
            current = parent
        return seen

    # -- the auto-close job ------------------------------------------------------------------

    def auto_close(self, now: dt.datetime | None = None, *, limit: int = 1000) -> int:
        """Close resolved tickets nobody reopened within ``auto_close_days`` (close code
        ``auto_closed``, by the system); returns how many. Safe to run twice (a closed
        ticket is no longer resolved) and bounded (at most ``limit``, in short units)."""
        days = self.policy.auto_close_days
        if days is None:
            return 0
        now = now or self.clock()
        if now.tzinfo is None:
            raise ValidationFailed("needs a time zone", field="now")
        due = now - dt.timedelta(days=days) + dt.timedelta(microseconds=1)  # resolved <= now-days
        closed, after = 0, None
        while closed < limit:
            query = IncidentFilter(
                status=TicketStatus.RESOLVED,
                resolved_before=due,
                order=TicketOrder.NEWEST,
                after=after,
                limit=min(AUTO_CLOSE_CHUNK, limit - closed),
            )
            batch = self.store.find_incidents(query)
            if not batch:
                break
            after = (batch[-1].number,)
            closed += self._close_due([t.id for t in batch], now, due, days)
        return closed

    def _close_due(self, ids: list[str], now: dt.datetime, due: dt.datetime, days: int) -> int:
        actor = SYSTEM  # the job closes them, whoever runs it
        done = 0
        with self.store.unit() as unit:
            entries: list[WorklogEntry] = []
            tickets = unit.load_incidents(ids)
            saved = []
            for t in tickets.values():  # loaded again: one reopened meanwhile stays open
                if t.status is not TicketStatus.RESOLVED or t.resolved_at is None:
                    continue
                if t.resolved_at >= due:
                    continue
                fields = StepFields(
                    close_code=AUTO_CLOSE_CODE,
                    reason=f"resolved more than {days} days ago and not reopened",
                )
                try:
                    entries += take_step(
                        self.policy.lifecycle, t, "close", fields, actor=actor,
                        actor_kind=ActorKind.SYSTEM, now=now,
                        reopen_window=self.policy.reopen_window,
                    )  # fmt: skip
                except InvalidState:
                    continue  # a lifecycle that lets nobody close it: left resolved
                t.updated_at = max(now, t.updated_at)
                saved.append(t)
                done += 1
            if saved:
                unit.update_incidents(saved)
                unit.append_worklog(entries)
                if self.notifier is not None:  # notifications: "closed" to each requester
                    for t in saved:
                        unit.enqueue(self.notifier.for_change(t, t, entries, now))
                if any(t.channel is Channel.MONITORING for t in saved):
                    unit.touched()
        return done
