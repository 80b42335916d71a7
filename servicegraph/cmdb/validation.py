"""Validation of an observation batch, before anything is written.

Every record is checked against the CI classes, relationship types and identifier rules;
all bad records are reported together (``ValidationErrors``), each naming the record and
the field, so one run of a large import lists everything to fix. What passes comes out
prepared for identification: identifiers normalised and in match order, attributes typed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servicegraph.cmdb.classes import ClassRegistry
from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.cmdb.identifiers import Identifier, IdentifierRules
from servicegraph.cmdb.observation import (
    CIObservation,
    CIRef,
    ObservationBatch,
    RelationshipObservation,
)
from servicegraph.cmdb.relationships import RelationshipRules


@dataclass(frozen=True, slots=True)
class PreparedCI:
    """A validated CI observation with normalised identifiers (strongest rule first)."""

    obs: CIObservation
    identifiers: tuple[Identifier, ...]
    attributes: Mapping[str, Any]
    label: str


@dataclass(frozen=True, slots=True)
class PreparedRelationship:
    """A validated relationship observation; an identifier reference is normalised."""

    obs: RelationshipObservation
    attributes: Mapping[str, Any]
    from_ref: CIRef
    to_ref: CIRef
    label: str


def validate_batch(
    batch: ObservationBatch,
    classes: ClassRegistry,
    relationship_rules: RelationshipRules,
    identifier_rules: IdentifierRules,
) -> tuple[list[PreparedCI], list[PreparedRelationship]]:
    """Check every record; raise ValidationErrors listing all bad ones."""
    errors: list[ValidationFailed] = []
    prepared: list[PreparedCI] = []
    seen_keys: dict[str, str] = {}
    seen_ids: dict[str, str] = {}
    for index, obs in enumerate(batch.cis):
        label = obs.origin or f"ci[{index}] {obs.key or obs.ci_id or obs.name or ''}".rstrip()
        try:
            prepared.append(_prepare_ci(obs, label, classes, identifier_rules, seen_keys, seen_ids))
        except ValidationFailed as exc:
            errors.append(exc)
    rels: list[PreparedRelationship] = []
    for index, rel in enumerate(batch.relationships):
        label = rel.origin or f"relationship[{index}] {rel.label}"
        try:
            rels.append(_prepare_relationship(rel, label, relationship_rules, identifier_rules))
        except ValidationFailed as exc:
            errors.append(exc)
    if errors:
        raise ValidationErrors(errors)
    return prepared, rels


def _prepare_ci(
    obs: CIObservation,
    label: str,
    classes: ClassRegistry,
    identifier_rules: IdentifierRules,
    seen_keys: dict[str, str],
    seen_ids: dict[str, str],
) -> PreparedCI:
    """One CI record checked; ``seen_keys`` and ``seen_ids`` (value -> label) catch a key or
    id given twice in the batch, and are updated."""
    classes.get(obs.ci_class, item=label)
    attributes = classes.validate_attributes(obs.ci_class, obs.attributes, item=label)
    identifiers = identifier_rules.normalise(obs.identifiers, item=label)
    if obs.name is not None and not obs.name.strip():
        raise ValidationFailed("must not be empty", item=label, field="name")
    if obs.key is not None:
        if obs.key in seen_keys:
            raise ValidationFailed(
                f"key '{obs.key}' appears twice (also {seen_keys[obs.key]})",
                item=label,
                field="key",
            )
        seen_keys[obs.key] = label
    if obs.ci_id is not None:
        if obs.ci_id in seen_ids:
            raise ValidationFailed(
                f"id '{obs.ci_id}' appears twice (also {seen_ids[obs.ci_id]})",
                item=label,
                field="id",
            )
        seen_ids[obs.ci_id] = label
    if obs.key is None and obs.ci_id is None and not identifiers:
        raise ValidationFailed(
            "needs an id, a key or at least one identifier to be recognised again",
            item=label,
            field="identifiers",
        )
    return PreparedCI(obs, identifiers, attributes, label)


def _prepare_relationship(
    rel: RelationshipObservation,
    label: str,
    rules: RelationshipRules,
    identifier_rules: IdentifierRules,
) -> PreparedRelationship:
    rules.get(rel.type, item=label)
    attributes = rules.validate_attributes(rel.attributes, item=label)
    from_ref = _normalise_ref(rel.from_ref, label, "from", identifier_rules)
    to_ref = _normalise_ref(rel.to_ref, label, "to", identifier_rules)
    if from_ref == to_ref:
        raise ValidationFailed("a relationship needs two different CIs", item=label, field="to")
    return PreparedRelationship(rel, attributes, from_ref, to_ref, label)


def _normalise_ref(
    ref: CIRef, label: str, field_name: str, identifier_rules: IdentifierRules
) -> CIRef:
    # counted without a generator: this runs twice per relationship of a batch
    set_parts = (ref.ci_id is not None) + (ref.key is not None) + (ref.identifier is not None)
    if set_parts != 1:
        raise ValidationFailed(
            "give exactly one of a CI id, a key or an identifier", item=label, field=field_name
        )
    if ref.identifier is None:
        return ref
    kind, value = ref.identifier
    normal = identifier_rules.normalise({kind: value}, item=label)
    if not normal:
        raise ValidationFailed("empty identifier", item=label, field=field_name)
    return CIRef(identifier=normal[0])
