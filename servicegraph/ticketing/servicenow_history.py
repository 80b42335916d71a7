"""One ServiceNow incident rebuilt from its update rows: the ticket as it ended and the
worklog the live desk would have written on the way (``tickets_work``'s entries), so that
SLA clocks, reopen and reassignment counts and the reports read an imported ticket as
they read one worked on this desk. Apart from reading the cells (``servicenow_fields``)
and the file (``servicenow_log``) because this is the part that must follow the live
desk's lifecycle, entry for entry.

How an incident is rebuilt (README "Importing history from ServiceNow" says it for users):

- Its rows are ordered by ``sys_mod_count``, then file order, except that a row dated
  before ``opened_at`` goes first: in every such row of the real log the count repeats
  another row's and the row is the incident's earliest state (its group is the one the
  later rows' ``reassignment_count`` starts from). An entry is never dated before the
  ticket's opening nor before the entry of the row ahead of it: the history reads in
  order, as SLA clocks (which sort by time) read it.
- Each row is an update at its ``sys_updated_at`` by its ``sys_updated_by``: whatever
  changed since the row before becomes the entries the live desk writes for it
  (``tickets_work``): ASSIGNED for the group and the agent, a TRANSITION of ``status``
  (with the CHANGED ``pending_reason`` / ``resolution_code`` / ``close_code`` entries that
  entering or leaving pending, resolved and closed write), CHANGED for priority, impact,
  urgency and category. The live desk logs a reopen as the TRANSITION out of resolved,
  with no REOPENED entry; so does the import.
- Status (``servicenow_fields.STATES``): New -> new; Active -> in_progress (ServiceNow's
  "In Progress", which may have no agent); Awaiting User Info and Awaiting Evidence ->
  pending (awaiting_requester); Awaiting Vendor -> pending (awaiting_vendor); Awaiting
  Problem -> pending (awaiting_change); Resolved; Closed; Canceled -> cancelled. ``-100``
  is no state (ServiceNow's incident states are 1..8; the real log has a handful of such
  rows): the row's other fields apply and the status stays as it was.
- ``resolved_at``: when the incident last entered Resolved (a reopen clears it, the next
  resolution sets it, as on the live desk); one closed without passing Resolved counts as
  resolved when closed. ServiceNow's own ``resolved_at`` column, the time of the last
  update made while resolved, is not read. ``closed_at``: when it entered Closed.
- ``reopen_count``: rows that move the incident from resolved or closed to an active
  status. ``reassignment_count``: changes of ``assignment_group`` once it has had one
  (to or from an empty group too: ServiceNow's own count, from the rows the log holds).
- ``first_response_at``: the first update that moves the incident out of New to work,
  pending, resolved or closed: what the requester sees an agent do (the live desk's
  ``tickets_work.RESPONDING``, closed added for a log that skips Resolved).
- The facts reports need beyond the ticket's fields are ``custom_fields`` of the last row
  (``servicenow_fields.FACTS``): ``made_sla`` (bool: ServiceNow's verdict when the log
  ends), ``knowledge``, ``u_priority_confirmation`` (bools), ``closed_code``, ``cmdb_ci``,
  ``location``, ``symptom`` (the source's names as they are); empty ones are left out.
- People: group from ``assignment_group``, agent from ``assigned_to`` and
  ``resolved_by``, requester (a contact) from ``caller_id``; actors from
  ``sys_updated_by`` and ``opened_by`` (or ``sys_created_by``). Each rebuilt incident
  lists the groups, agents (with the groups they were assigned in) and contacts it names,
  for the import to create in the directory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.model import Channel, Incident, TicketType, WorklogEntry, WorklogKind
from servicegraph.ticketing.servicenow_fields import BOOLEANS, CHANNELS, Row, RowReader
from servicegraph.ticketing.tickets_work import RESPONDING, changed, entry

IMPORT_ACTOR = "servicenow-import"  # the actor when the log names nobody
_ANSWERED = RESPONDING | {TicketStatus.CLOSED}
_ENDED = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED})

Cell = Callable[[list[str], str], str | None]


@dataclass(slots=True)
class Rebuilt:
    """One incident of the log, rebuilt: the ticket (``number`` 0: the import numbers it
    when it saves it), its worklog in order, and the directory records it names."""

    incident: Incident
    worklog: list[WorklogEntry]
    rows: int
    first_line: int
    groups: dict[str, str] = field(default_factory=dict)  # key -> the source's name
    agents: dict[str, tuple[str, set[str]]] = field(default_factory=dict)  # name, groups
    contacts: dict[str, str] = field(default_factory=dict)


def rebuild_history(
    number: str,
    opened: dt.datetime,
    rows: list[Row],
    *,
    first_line: int,
    count: int,
    fields: RowReader,
    new_id: Callable[[], str],
) -> Rebuilt:
    """The incident ``number`` opened at ``opened`` from its sound rows (in file order;
    sorted here), ``count`` rows from ``first_line`` on in the file; ``fields`` reads the
    rows' other cells and names people, ``new_id`` gives the ticket its id."""
    rows.sort(key=lambda r: (r.at >= opened, r.mod, r.line))
    cell, keys = fields.cell, fields.keys
    head, last = rows[0], rows[-1]
    creator_name = cell(head.cells, "opened_by") or cell(head.cells, "sys_created_by")
    creator = (keys[creator_name] if creator_name else "") or IMPORT_ACTOR
    caller = cell(last.cells, "caller_id")
    requester = keys[caller] if caller else None
    contact = cell(last.cells, "contact_type")
    channel = CHANNELS.get(contact, Channel.IMPORT) if contact else Channel.IMPORT
    t = Incident(
        id=new_id(),
        number=0,
        title=_title(cell, last.cells, number),
        status=TicketStatus.NEW,
        opened_at=opened,
        updated_at=opened,
        last_alert_at=opened,
        priority=head.priority,
        impact=head.impact,
        urgency=head.urgency,
        type=TicketType.INCIDENT,
        channel=channel,
        requester=requester or None,
        category=head.category,
        created_by=creator,
        external_ref=number,
    )
    words = f"P{t.priority} ({t.impact} impact x {t.urgency} urgency)"
    text = f"incident via {channel}: {words}; imported from ServiceNow {number}"
    log = [entry(t.id, opened, creator, WorklogKind.CREATED, text)]
    resolver_name = cell(last.cells, "resolved_by")
    resolver = keys[resolver_name] if resolver_name else None
    code_name = cell(last.cells, "closed_code")
    code = keys[code_name] if code_name else None
    item = Rebuilt(t, log, count, first_line)
    at = opened
    for row in rows:
        if row.at > at:
            at = row.at
        actor = row.actor or creator
        if row.group != t.assignment_group:
            if row is not head:  # the first row's group is the one it was created with
                t.reassignment_count += 1
            log.append(_assigned(t, at, actor, "assignment_group", row.group))
            t.assignment_group = row.group
            if row.group is not None and row.group not in item.groups:
                item.groups[row.group] = cell(row.cells, "assignment_group") or row.group
        if row.agent is not None:
            _agent(item, row, cell)
        if row.agent != t.assignee:
            log.append(_assigned(t, at, actor, "assignee", row.agent))
            t.assignee = row.agent
        if row.state is not None and (row.state[0] is not t.status or row.state[1]):
            _state(t, row, at, actor, resolver, code, log)
        if row.priority != t.priority:
            shown = f"priority: P{t.priority} -> P{row.priority}"
            log.append(changed(t, at, actor, "priority", t.priority, row.priority, shown))
            t.priority = row.priority
        if row.impact != t.impact:
            log.append(changed(t, at, actor, "impact", t.impact, row.impact))
            t.impact = row.impact
        if row.urgency != t.urgency:
            log.append(changed(t, at, actor, "urgency", t.urgency, row.urgency))
            t.urgency = row.urgency
        if row.category != t.category:
            log.append(changed(t, at, actor, "category", t.category, row.category))
            t.category = row.category
    t.updated_at = at
    if resolver is not None and resolver_name and t.resolved_by == resolver:
        item.agents.setdefault(resolver, (resolver_name, set()))
    t.custom_fields = _facts(cell, last.cells)
    if requester and caller:
        item.contacts[requester] = caller
    return item


def _title(cell: Cell, cells: list[str], number: str) -> str:
    """The log has no short description: the category, subcategory and symptom say it."""
    where = " / ".join(v for v in (cell(cells, "category"), cell(cells, "subcategory")) if v)
    symptom = cell(cells, "u_symptom")
    if where and symptom:
        return f"{where}: {symptom}"
    return where or symptom or f"ServiceNow incident {number}"


def _facts(cell: Cell, cells: list[str]) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for name, column in (
        ("made_sla", "made_sla"),
        ("knowledge", "knowledge"),
        ("u_priority_confirmation", "u_priority_confirmation"),
    ):
        value = cell(cells, column)
        if value is not None and value in BOOLEANS:
            facts[name] = BOOLEANS[value]
    for name, column in (
        ("closed_code", "closed_code"),
        ("cmdb_ci", "cmdb_ci"),
        ("location", "location"),
        ("symptom", "u_symptom"),
    ):
        value = cell(cells, column)
        if value is not None:
            facts[name] = value
    return facts


def _agent(item: Rebuilt, row: Row, cell: Cell) -> None:
    assert row.agent is not None
    known = item.agents.get(row.agent)
    if known is not None and (row.group is None or row.group in known[1]):
        return
    if known is None:
        known = item.agents[row.agent] = (cell(row.cells, "assigned_to") or row.agent, set())
    if row.group is not None:
        known[1].add(row.group)


def _assigned(t: Incident, at: dt.datetime, actor: str, name: str, new: str | None) -> WorklogEntry:
    """The ASSIGNED entry the live desk writes (``tickets_work.assign_to``)."""
    old = getattr(t, name)
    if name == "assignment_group":
        text = f"group {new}" if new else "group cleared"
    else:
        text = f"assigned to {new}" if new else "unassigned"
    if old:
        text += f" (was {old})"
    # the shape of ``tickets_work.entry`` (old and new are text already)
    return WorklogEntry(t.id, at, actor, _ASSIGNED, text, field=name, old=old, new=new)


_PENDING, _RESOLVED, _CLOSED = TicketStatus.PENDING, TicketStatus.RESOLVED, TicketStatus.CLOSED


def _step(old: TicketStatus, target: TicketStatus) -> str:
    """The live lifecycle's name for the step (``lifecycle.DEFAULT_TICKET_LIFECYCLE``)."""
    if old in _ENDED and target.active:
        return "reopen"
    if target is TicketStatus.IN_PROGRESS:
        return "resume" if old is _PENDING else "start"
    names = {
        _PENDING: "pend",
        _RESOLVED: "resolve",
        _CLOSED: "close",
        TicketStatus.CANCELLED: "cancel",
    }
    return names.get(target, "requeue")  # requeue: back to new


_STEPS = {(old, new): _step(old, new) for old in TicketStatus for new in TicketStatus}
_TRANSITION, _ASSIGNED = WorklogKind.TRANSITION, WorklogKind.ASSIGNED


def _state(
    t: Incident,
    row: Row,
    at: dt.datetime,
    actor: str,
    resolver: str | None,
    code: str | None,
    log: list[WorklogEntry],
) -> None:
    """Enter the row's status as ``tickets_work.take_step``/``_apply_target`` do: the
    TRANSITION, then one CHANGED entry per field the step sets or clears."""
    assert row.state is not None
    target, reason = row.state
    old = t.status
    if target is old:
        if target is _PENDING and reason != t.pending_reason:
            log.append(changed(t, at, actor, "pending_reason", t.pending_reason, reason))
            t.pending_reason = reason
        return
    step = _STEPS[old, target]
    detail = reason or (code if target in _ENDED else None)
    text = step + (f" ({detail})" if detail else "") + f": ServiceNow '{row.source_state}'"
    # the shape of ``tickets_work.entry``, the statuses as their text
    log.append(
        WorklogEntry(t.id, at, actor, _TRANSITION, text, field="status", old=old, new=target)
    )

    def put(name: str, value: object) -> None:
        before = getattr(t, name)
        if before != value:
            log.append(changed(t, at, actor, name, before, value))
            setattr(t, name, value)

    if target is _PENDING:
        put("pending_reason", reason)
    elif old is _PENDING:
        put("pending_reason", None)
    if target is _RESOLVED:
        put("resolution_code", code)
        t.resolved_at, t.resolved_by = at, resolver or actor
    elif old in _ENDED and target.active:  # reopened: the old values stay in the entries
        put("resolution_code", None)
        put("close_code", None)
        t.resolved_at = t.resolved_by = t.closed_at = None
        t.reopen_count += 1
    if target is _CLOSED:
        put("close_code", code)
        t.closed_at = at
        if t.resolved_at is None:  # closed without passing Resolved: resolved when closed
            t.resolved_at, t.resolved_by = at, resolver or actor
    if target is TicketStatus.IN_PROGRESS and t.acknowledged_at is None:
        t.acknowledged_at, t.acknowledged_by = at, actor
    if target in _ANSWERED and t.first_response_at is None:
        t.first_response_at = at
    t.status = target
