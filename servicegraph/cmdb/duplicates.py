"""Merging a duplicate CI into its survivor: what changes, as pure functions.

Two records of one item (a switch the ERP knows by asset tag and SNMP by serial) are
merged by hand once a conflict pointed at them. The survivor takes the duplicate's
identifiers, relationships and any attribute it lacks; the duplicate stays, retired and
pointing at the survivor, with its history intact. The reconciler moves the source keys
and sightings and writes what ``plan_merge`` returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from servicegraph.cmdb.errors import UnknownCI, ValidationFailed
from servicegraph.cmdb.model import (
    ConfigurationItem,
    HistoryEntry,
    HistoryKind,
    Lifecycle,
    Relationship,
    RelationshipKey,
)
from servicegraph.cmdb.provenance import Provenance


def check_mergeable(
    found: Mapping[str, ConfigurationItem], survivor_id: str, duplicate_id: str
) -> tuple[ConfigurationItem, ConfigurationItem]:
    """The survivor and the duplicate (``found``: the store's CIs of the two ids), or
    raise: either unknown, already merged, or the two of different classes."""
    for ci_id in (survivor_id, duplicate_id):
        if ci_id not in found:
            raise UnknownCI(ci_id)
        if found[ci_id].merged_into is not None:
            raise ValidationFailed(f"already merged into {found[ci_id].merged_into}", item=ci_id)
    survivor, duplicate = found[survivor_id], found[duplicate_id]
    if survivor.ci_class != duplicate.ci_class:
        raise ValidationFailed(
            f"cannot merge a {duplicate.ci_class} into a {survivor.ci_class}",
            item=duplicate_id,
            field="class",
        )
    return survivor, duplicate


def _repointed(rel: Relationship, duplicate_id: str, survivor_id: str) -> RelationshipKey:
    from_id = survivor_id if rel.from_id == duplicate_id else rel.from_id
    to_id = survivor_id if rel.to_id == duplicate_id else rel.to_id
    return (from_id, rel.type, to_id)


def moved_keys(
    relationships: Iterable[Relationship], duplicate_id: str, survivor_id: str
) -> list[RelationshipKey]:
    """The keys the duplicate's relationships take at the survivor (one between the two
    would join the survivor to itself: it goes)."""
    keys = (_repointed(rel, duplicate_id, survivor_id) for rel in relationships)
    return list(dict.fromkeys(k for k in keys if k[0] != k[2]))


@dataclass(frozen=True, slots=True)
class MergePlan:
    survivor: ConfigurationItem  # with the duplicate's identifiers and missing attributes
    duplicate: ConfigurationItem  # retired, without identifiers, pointing at the survivor
    to_create: list[Relationship]  # the duplicate's relationships at the survivor
    to_save: list[Relationship]  # the duplicate's, removed; removed ones revived
    history: list[HistoryEntry]


def plan_merge(
    survivor: ConfigurationItem,
    duplicate: ConfigurationItem,
    relationships: Iterable[Relationship],
    existing: Mapping[RelationshipKey, Relationship],
    provenance: Provenance,
) -> MergePlan:
    """The merge of ``duplicate`` into ``survivor``: ``relationships`` are the duplicate's,
    ``existing`` the stored relationships at their ``moved_keys`` (live or removed)."""
    at, entry = provenance.at, provenance.entry
    survivor_id, duplicate_id = survivor.id, duplicate.id
    history: list[HistoryEntry] = []
    for kind, value in duplicate.identifiers:
        history.append(entry(duplicate_id, HistoryKind.IDENTIFIER_REMOVED, field=kind, old=value))
        history.append(entry(survivor_id, HistoryKind.IDENTIFIER_ADDED, field=kind, new=value))
    attributes, sources = _missing_attributes(survivor, duplicate, provenance, history)
    to_create, to_save = _move_relationships(
        relationships, duplicate_id, survivor_id, existing, provenance, history
    )
    history.append(entry(duplicate_id, HistoryKind.MERGED_INTO, new=survivor_id))
    history.append(entry(survivor_id, HistoryKind.MERGED_FROM, new=duplicate_id))
    if duplicate.lifecycle is not Lifecycle.RETIRED:
        history.append(
            entry(
                duplicate_id,
                HistoryKind.LIFECYCLE,
                old=duplicate.lifecycle.value,
                new=Lifecycle.RETIRED.value,
            )
        )
    return MergePlan(
        survivor=replace(
            survivor,
            attributes=attributes,
            attribute_sources=sources,
            identifiers=tuple(sorted({*survivor.identifiers, *duplicate.identifiers})),
            updated_at=at,
            version=survivor.version + 1,
        ),
        duplicate=replace(
            duplicate,
            merged_into=survivor_id,
            lifecycle=Lifecycle.RETIRED,
            identifiers=(),
            updated_at=at,
            version=duplicate.version + 1,
        ),
        to_create=to_create,
        to_save=to_save,
        history=history,
    )


def _missing_attributes(
    survivor: ConfigurationItem,
    duplicate: ConfigurationItem,
    provenance: Provenance,
    history: list[HistoryEntry],
) -> tuple[dict[str, Any], dict[str, str]]:
    """The survivor's attributes and their sources, with those it lacks taken from the
    duplicate (and the duplicate's source for them); an entry each appended to ``history``."""
    attributes = dict(survivor.attributes)
    sources = dict(survivor.attribute_sources)
    for attr, value in duplicate.attributes.items():
        if attributes.get(attr) is None and value is not None:
            attributes[attr] = value
            sources[attr] = duplicate.attribute_sources.get(attr, provenance.source)
            history.append(
                provenance.entry(survivor.id, HistoryKind.ATTRIBUTE, field=attr, new=value)
            )
    return attributes, sources


def _move_relationships(
    relationships: Iterable[Relationship],
    duplicate_id: str,
    survivor_id: str,
    existing: Mapping[RelationshipKey, Relationship],
    provenance: Provenance,
    history: list[HistoryEntry],
) -> tuple[list[Relationship], list[Relationship]]:
    """The relationships to create at the survivor, and those to save: the duplicate's,
    removed, and removed ones at the survivor revived. One the survivor already has live
    is not added again. Entries are appended to ``history``."""
    at = provenance.at
    moved: dict[RelationshipKey, Relationship] = {}
    retired: list[Relationship] = []
    for rel in relationships:
        retired.append(replace(rel, removed=True, updated_at=at))
        history.append(
            provenance.entry(
                rel.from_id,
                HistoryKind.RELATIONSHIP_REMOVED,
                field=rel.type,
                other_ci_id=rel.to_id,
                old=dict(rel.attributes),
            )
        )
        key = _repointed(rel, duplicate_id, survivor_id)
        if key[0] != key[2]:
            moved[key] = replace(rel, from_id=key[0], to_id=key[2], created_at=at, updated_at=at)
    to_create: list[Relationship] = []
    revived: list[Relationship] = []
    for key, rel in moved.items():
        current = existing.get(key)
        if current is not None and not current.removed:
            continue
        if current is None:
            to_create.append(rel)
        else:
            revived.append(replace(current, removed=False, updated_at=at))
        history.append(
            provenance.entry(
                key[0],
                HistoryKind.RELATIONSHIP_ADDED,
                field=key[1],
                other_ci_id=key[2],
                new=dict(rel.attributes),
            )
        )
    return to_create, [*retired, *revived]
