"""Reading history: an item's timeline, and the item as it was at a past moment.

The store keeps one entry per change (see ``HistoryKind``); a CI's state at time ``t`` is
its ``created`` snapshot with every later entry up to ``t`` applied in sequence order.
Relationship entries are stored once, under their ``from`` end, and found from both ends.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from servicegraph.cmdb.errors import UnknownCI
from servicegraph.cmdb.model import (
    CIState,
    ConfigurationItem,
    HistoryEntry,
    HistoryKind,
    Lifecycle,
    OperationalState,
    Relationship,
    RelationshipKey,
)
from servicegraph.cmdb.ports import GraphStore


class HistoryService:
    def __init__(self, store: GraphStore) -> None:
        self.store = store

    def timeline(
        self,
        ci_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[HistoryEntry]:
        """Every recorded change of the CI and of the CIs merged into it, oldest first."""
        if ci_id not in self.store.get_cis([ci_id]):
            raise UnknownCI(ci_id)
        ids = [ci_id, *self.store.merged_into(ci_id)]
        return self.store.history(ids, since=since, until=until)

    def as_of(self, ci_id: str, at: dt.datetime) -> CIState | None:
        """The CI and its relationships as they were at ``at``; None if it did not exist."""
        if ci_id not in self.store.get_cis([ci_id]):
            raise UnknownCI(ci_id)
        return state_as_of(ci_id, self.store.history([ci_id], until=at), at)


def state_as_of(ci_id: str, entries: list[HistoryEntry], at: dt.datetime) -> CIState | None:
    """Fold ``entries`` (the CI's history, in sequence order) up to ``at``."""
    ci: ConfigurationItem | None = None
    attributes: dict[str, Any] = {}
    identifiers: set[tuple[str, str]] = set()
    relationships: dict[RelationshipKey, Relationship] = {}
    for e in entries:
        if e.at > at:
            continue
        if e.other_ci_id is not None or e.kind in _RELATIONSHIP_KINDS:
            _apply_relationship_entry(relationships, e)
            continue
        if e.ci_id != ci_id:
            continue
        if e.kind is HistoryKind.CREATED:
            snapshot = e.new or {}
            attributes = dict(snapshot.get("attributes") or {})
            identifiers = {(k, v) for k, v in snapshot.get("identifiers") or ()}
            ci = ConfigurationItem(
                id=ci_id,
                ci_class=snapshot["class"],
                name=snapshot["name"],
                attributes={},
                lifecycle=Lifecycle(snapshot.get("lifecycle", "active")),
                operational_state=OperationalState(snapshot.get("operational_state", "unknown")),
                created_at=e.at,
                updated_at=e.at,
            )
            continue
        if ci is None:
            continue  # entries before creation cannot happen; ignore defensively
        ci = replace(ci, updated_at=e.at)
        if e.kind is HistoryKind.ATTRIBUTE and e.field is not None:
            if e.new is None:
                attributes.pop(e.field, None)
            else:
                attributes[e.field] = e.new
        elif e.kind is HistoryKind.NAME:
            ci = replace(ci, name=e.new)
        elif e.kind is HistoryKind.LIFECYCLE:
            ci = replace(ci, lifecycle=Lifecycle(e.new))
        elif e.kind is HistoryKind.OPERATIONAL_STATE:
            ci = replace(ci, operational_state=OperationalState(e.new))
        elif e.kind is HistoryKind.IDENTIFIER_ADDED and e.field is not None:
            identifiers.add((e.field, e.new))
        elif e.kind is HistoryKind.IDENTIFIER_REMOVED and e.field is not None:
            identifiers.discard((e.field, e.old))
        elif e.kind in (HistoryKind.STALE, HistoryKind.FRESH):
            ci = replace(ci, stale=e.kind is HistoryKind.STALE)
        elif e.kind is HistoryKind.MERGED_INTO:
            ci = replace(ci, merged_into=e.new)
    if ci is None:
        return None
    ci = replace(ci, attributes=attributes, identifiers=tuple(sorted(identifiers)))
    live = tuple(sorted((r for r in relationships.values() if not r.removed), key=lambda r: r.key))
    return CIState(ci=ci, relationships=live, at=at)


_RELATIONSHIP_KINDS = frozenset(
    {
        HistoryKind.RELATIONSHIP_ADDED,
        HistoryKind.RELATIONSHIP_REMOVED,
        HistoryKind.RELATIONSHIP_ATTRIBUTE,
        HistoryKind.RELATIONSHIP_STALE,
        HistoryKind.RELATIONSHIP_FRESH,
    }
)


def _apply_relationship_entry(
    relationships: dict[RelationshipKey, Relationship], e: HistoryEntry
) -> None:
    if e.field is None or e.other_ci_id is None:
        return
    key = (e.ci_id, e.field, e.other_ci_id)
    current = relationships.get(key)
    if e.kind is HistoryKind.RELATIONSHIP_ADDED:
        relationships[key] = Relationship(
            key[0], key[1], key[2], dict(e.new or {}), created_at=e.at, updated_at=e.at
        )
    elif current is None:
        return
    elif e.kind is HistoryKind.RELATIONSHIP_REMOVED:
        relationships[key] = replace(current, removed=True, updated_at=e.at)
    elif e.kind is HistoryKind.RELATIONSHIP_ATTRIBUTE:
        relationships[key] = replace(current, attributes=dict(e.new or {}), updated_at=e.at)
    elif e.kind in (HistoryKind.RELATIONSHIP_STALE, HistoryKind.RELATIONSHIP_FRESH):
        relationships[key] = replace(
            current, stale=e.kind is HistoryKind.RELATIONSHIP_STALE, updated_at=e.at
        )
