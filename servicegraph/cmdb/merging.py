"""Merging what a source observed into what the graph holds: pure functions that return
the records to write and one history entry per change.

- a new CI from an observation (``new_ci``);
- an observation into the CI it was identified as (``merge_observation``), attribute by
  attribute under source precedence: a source may set an attribute that no stronger source
  set; a stronger source confirming the value takes it over; ``None`` clears it;
- observed relationships into the stored ones (``merge_relationships``): created, revived
  when removed, attributes merged.

Nothing here reads or writes a store; the same input gives the same records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from servicegraph.cmdb.identifiers import Identifier
from servicegraph.cmdb.model import (
    ConfigurationItem,
    HistoryEntry,
    HistoryKind,
    Lifecycle,
    OperationalState,
    Relationship,
    RelationshipKey,
)
from servicegraph.cmdb.precedence import SourcePrecedence
from servicegraph.cmdb.provenance import Provenance
from servicegraph.cmdb.validation import PreparedCI


def new_ci(
    p: PreparedCI, ci_id: str, identifiers: Sequence[Identifier], provenance: Provenance
) -> tuple[ConfigurationItem, HistoryEntry]:
    """The CI a record creates, and its ``CREATED`` entry. Without a name it is called by
    its key, else its strongest identifier, else its id."""
    name = p.obs.name or p.obs.key or (identifiers[0][1] if identifiers else ci_id)
    attributes = {k: v for k, v in p.attributes.items() if v is not None}
    source = provenance.source
    ci = ConfigurationItem(
        id=ci_id,
        ci_class=p.obs.ci_class,
        name=name,
        attributes=attributes,
        identifiers=tuple(sorted(identifiers)),
        lifecycle=p.obs.lifecycle or Lifecycle.ACTIVE,
        operational_state=p.obs.operational_state or OperationalState.UNKNOWN,
        created_at=provenance.at,
        updated_at=provenance.at,
        attribute_sources={"name": source, **{k: source for k in attributes}},
    )
    created = provenance.entry(
        ci_id,
        HistoryKind.CREATED,
        new={
            "class": ci.ci_class,
            "name": ci.name,
            "attributes": attributes,
            "identifiers": [list(i) for i in ci.identifiers],
            "lifecycle": ci.lifecycle.value,
            "operational_state": ci.operational_state.value,
        },
    )
    return ci, created


def merge_observation(
    ci: ConfigurationItem,
    p: PreparedCI,
    own_identifiers: Sequence[Identifier],
    precedence: SourcePrecedence,
    provenance: Provenance,
) -> tuple[ConfigurationItem, list[HistoryEntry]]:
    """The CI with the observation merged in, and an entry per changed field; the same
    object, and no entries, when nothing changes. A change of attribute ownership alone
    (a stronger source confirming a value) is written without an entry or a new version."""
    history: list[HistoryEntry] = []
    attributes, sources = _merge_attributes(ci, p.attributes, precedence, provenance, history)
    source = provenance.source
    changes: dict[str, Any] = {}
    name = p.obs.name
    if (
        name is not None
        and name != ci.name
        and precedence.may_override("name", source, ci.attribute_sources.get("name"))
    ):
        sources = sources or dict(ci.attribute_sources)
        sources["name"] = source
        changes["name"] = name
        history.append(provenance.entry(ci.id, HistoryKind.NAME, old=ci.name, new=name))
    if p.obs.lifecycle is not None and p.obs.lifecycle != ci.lifecycle:
        changes["lifecycle"] = p.obs.lifecycle
        history.append(
            provenance.entry(
                ci.id, HistoryKind.LIFECYCLE, old=ci.lifecycle.value, new=p.obs.lifecycle.value
            )
        )
    state = p.obs.operational_state
    if state is not None and state != ci.operational_state:
        changes["operational_state"] = state
        history.append(
            provenance.entry(
                ci.id,
                HistoryKind.OPERATIONAL_STATE,
                old=ci.operational_state.value,
                new=state.value,
            )
        )
    new_identifiers = [i for i in own_identifiers if i not in ci.identifiers]
    for kind, value in new_identifiers:
        history.append(provenance.entry(ci.id, HistoryKind.IDENTIFIER_ADDED, field=kind, new=value))
    if new_identifiers:
        changes["identifiers"] = tuple(sorted({*ci.identifiers, *new_identifiers}))
    if attributes is not None:
        changes["attributes"] = attributes
    if sources is not None:
        changes["attribute_sources"] = sources
    if not changes:
        return ci, history
    content_changed = set(changes) != {"attribute_sources"}
    updated = replace(
        ci,
        **changes,
        updated_at=provenance.at if content_changed else ci.updated_at,
        version=ci.version + 1 if content_changed else ci.version,
    )
    return updated, history


def _merge_attributes(
    ci: ConfigurationItem,
    observed: Mapping[str, Any],
    precedence: SourcePrecedence,
    provenance: Provenance,
    history: list[HistoryEntry],
) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
    """The CI's attributes and attribute sources after the observed attributes, each None
    when unchanged (copied only on the first change: most observations change nothing);
    an ``ATTRIBUTE`` entry per changed value is appended to ``history``."""
    may = precedence.may_override
    source = provenance.source
    attributes: dict[str, Any] | None = None
    sources: dict[str, str] | None = None
    for attr, value in observed.items():
        current_source = ci.attribute_sources.get(attr)
        if not may(attr, source, current_source):
            continue
        old = ci.attributes.get(attr)
        if old == value:
            # A stronger source confirming the value owns it from now on.
            if (
                current_source != source
                and value is not None
                and precedence.rank(attr, source) < precedence.rank(attr, current_source or "")
            ):
                sources = sources or dict(ci.attribute_sources)
                sources[attr] = source
            continue
        attributes = attributes if attributes is not None else dict(ci.attributes)
        sources = sources or dict(ci.attribute_sources)
        if value is None:
            attributes.pop(attr, None)
            sources.pop(attr, None)
        else:
            attributes[attr] = value
            sources[attr] = source
        history.append(
            provenance.entry(ci.id, HistoryKind.ATTRIBUTE, field=attr, old=old, new=value)
        )
    return attributes, sources


@dataclass(slots=True)
class RelationshipMerge:
    """What merging observed relationships into the stored ones gives."""

    new: list[Relationship] = field(default_factory=list)
    changed: list[Relationship] = field(default_factory=list)  # revived or attributes merged
    history: list[HistoryEntry] = field(default_factory=list)
    created: int = 0  # new or revived
    updated: int = 0
    unchanged: int = 0


def merge_relationships(
    observed: Mapping[RelationshipKey, Mapping[str, Any]],
    current: Mapping[RelationshipKey, Relationship],
    provenance: Provenance,
) -> RelationshipMerge:
    """``observed`` (key -> attributes as observed, ``None`` clearing one) against
    ``current``, the stored relationships of those keys (removed ones included)."""
    at = provenance.at
    out = RelationshipMerge()
    for key, observed_attrs in observed.items():
        rel = current.get(key)
        if rel is None:
            attrs = {k: v for k, v in observed_attrs.items() if v is not None}
            out.new.append(
                Relationship(key[0], key[1], key[2], attrs, created_at=at, updated_at=at)
            )
            out.history.append(
                provenance.entry(
                    key[0],
                    HistoryKind.RELATIONSHIP_ADDED,
                    field=key[1],
                    other_ci_id=key[2],
                    new=attrs,
                )
            )
            continue
        merged = dict(rel.attributes)
        for k, v in observed_attrs.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        if rel.removed:
            out.changed.append(replace(rel, attributes=merged, removed=False, updated_at=at))
            out.history.append(
                provenance.entry(
                    key[0],
                    HistoryKind.RELATIONSHIP_ADDED,
                    field=key[1],
                    other_ci_id=key[2],
                    new=merged,
                )
            )
            out.created += 1
        elif merged != dict(rel.attributes):
            out.changed.append(replace(rel, attributes=merged, updated_at=at))
            out.history.append(
                provenance.entry(
                    key[0],
                    HistoryKind.RELATIONSHIP_ATTRIBUTE,
                    field=key[1],
                    other_ci_id=key[2],
                    old=dict(rel.attributes),
                    new=merged,
                )
            )
            out.updated += 1
        else:
            out.unchanged += 1
    out.created += len(out.new)
    return out
