"""Stale and fresh: the flag a CI or relationship carries while no source reports it.

The store counts missed runs per source and says which items just crossed
``stale_after_runs`` (or were not reported for a given age) and which were seen again;
these pure functions turn that into the records to write and their history entries.
Nothing is ever deleted: a later sighting makes the item fresh again.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from servicegraph.cmdb.model import (
    ConfigurationItem,
    HistoryEntry,
    HistoryKind,
    Relationship,
    RelationshipKey,
)
from servicegraph.cmdb.provenance import Provenance

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def stale_flags(fresh: Iterable[K], stale: Iterable[K]) -> dict[K, bool]:
    """Item -> the stale flag it should carry; an item in both lists ends stale."""
    flags = dict.fromkeys(fresh, False)
    flags.update(dict.fromkeys(stale, True))
    return flags


@dataclass(frozen=True, slots=True)
class Flips(Generic[T]):
    updates: list[T]  # the items whose flag changes, as they will be
    history: list[HistoryEntry]
    marked_stale: int


def flip_cis(
    flags: Mapping[str, bool], cis: Mapping[str, ConfigurationItem], provenance: Provenance
) -> Flips[ConfigurationItem]:
    """The CIs (as loaded: ``cis``) whose stale flag differs from the one wanted
    (``stale_flags``), with the flag set, a new version and an entry each; a CI not loaded
    is left alone."""
    at = provenance.at
    updates: list[ConfigurationItem] = []
    history: list[HistoryEntry] = []
    marked = 0
    for ci_id, stale in flags.items():
        ci = cis.get(ci_id)
        if ci is None or ci.stale == stale:
            continue
        updates.append(replace(ci, stale=stale, updated_at=at, version=ci.version + 1))
        kind = HistoryKind.STALE if stale else HistoryKind.FRESH
        history.append(provenance.entry(ci_id, kind, old=not stale, new=stale))
        marked += stale
    return Flips(updates, history, marked)


def flip_relationships(
    flags: Mapping[RelationshipKey, bool],
    relationships: Mapping[RelationshipKey, Relationship],
    provenance: Provenance,
) -> Flips[Relationship]:
    """As ``flip_cis``, for relationships (which carry no version)."""
    at = provenance.at
    updates: list[Relationship] = []
    history: list[HistoryEntry] = []
    marked = 0
    for key, stale in flags.items():
        rel = relationships.get(key)
        if rel is None or rel.stale == stale:
            continue
        updates.append(replace(rel, stale=stale, updated_at=at))
        kind = HistoryKind.RELATIONSHIP_STALE if stale else HistoryKind.RELATIONSHIP_FRESH
        history.append(provenance.entry(key[0], kind, field=key[1], other_ci_id=key[2]))
        marked += stale
    return Flips(updates, history, marked)
