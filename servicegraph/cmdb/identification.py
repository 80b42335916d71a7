"""Identification: which configuration item each observation is, and which CIs each
observed relationship joins. Pure functions: what the store knows comes in as plain data
(``Known``), decisions and conflicts go out; the reconciler does the reading and writing.

A CI observation is, in this order: the CI its explicit id names; the CI the source's own
key led to last time; the CI holding its strongest identifier (``IdentifierRules``'
match order) that some CI holds; else a new CI. A CI merged into another is found through
its survivor, however many merges on.

Conflicts are recorded, never resolved by overwriting:

- ``CLASS_MISMATCH``: the matched CI is of another class; the record is not applied;
- ``DUPLICATE_IN_BATCH``: two records of the batch are one CI but carry different keys or
  ids, or claim one identifier for two CIs; the later record is not applied;
- ``IDENTIFIER_CLAIMED``: an identifier of the record already belongs to another CI; the
  identifier stays where it is (a likely duplicate to merge) and the record still updates
  the CI its stronger identifiers matched;
- ``ENDPOINT_SKIPPED``: a relationship whose end is a record that was not applied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.identifiers import Identifier
from servicegraph.cmdb.model import (
    ConfigurationItem,
    Conflict,
    ConflictKind,
    RelationshipKey,
    new_ci_id,
)
from servicegraph.cmdb.observation import CIObservation, CIRef
from servicegraph.cmdb.provenance import Provenance
from servicegraph.cmdb.relationships import RelationshipRules
from servicegraph.cmdb.validation import PreparedCI, PreparedRelationship


@dataclass(frozen=True, slots=True)
class Known:
    """What the store holds about a batch's records."""

    keys: Mapping[str, str] = field(default_factory=dict)  # the source's key -> CI id
    identifiers: Mapping[Identifier, str] = field(default_factory=dict)  # -> the CI holding it
    # the CIs matched, and those they were merged into (up to the last survivor)
    cis: Mapping[str, ConfigurationItem] = field(default_factory=dict)


def match(records: Sequence[PreparedCI], known: Known) -> list[str | None]:
    """Per record, the CI id it names or points at before merges and conflicts are
    considered (None: nothing known). An explicit id is returned whether it exists or not."""
    keys, identifiers = known.keys, known.identifiers
    matched: list[str | None] = []
    for p in records:
        ci_id: str | None = None
        if p.obs.ci_id is not None:
            ci_id = p.obs.ci_id
        elif p.obs.key is not None and p.obs.key in keys:
            ci_id = keys[p.obs.key]
        else:
            for ident in p.identifiers:  # already in rule order
                if ident in identifiers:
                    ci_id = identifiers[ident]
                    break
        matched.append(ci_id)
    return matched


def survivor(cis: Mapping[str, ConfigurationItem], ci_id: str) -> str:
    """The CI that ``ci_id`` was merged into, followed to the end (``ci_id`` if none)."""
    seen = set()
    while (merged_into := cis[ci_id].merged_into) is not None and ci_id not in seen:
        seen.add(ci_id)
        ci_id = merged_into
    return ci_id


@dataclass(frozen=True, slots=True)
class Identification:
    """The decision for each record of a batch, by position."""

    targets: list[str | None]  # the CI the record is; None: not applied (a conflict)
    created: set[int]  # positions of the records that create their target
    # identifiers no CI holds yet, which the record's CI takes (empty when not applied)
    own_identifiers: list[tuple[Identifier, ...]]
    keys_to_set: list[tuple[str, str]]  # (source key, CI id) to record or re-point
    conflicts: list[Conflict]


def identify(
    records: Sequence[PreparedCI],
    matched: Sequence[str | None],
    known: Known,
    provenance: Provenance,
    new_id: Callable[[], str] = new_ci_id,
) -> Identification:
    """Decide which CI each record is, from ``match``'s result and ``known.cis`` (every
    matched CI the store holds, and its survivors); ``new_id`` names the CIs to create."""
    cis = known.cis
    conflicts: list[Conflict] = []
    owner_in_batch: dict[Identifier, int] = {}  # identifier -> index of first claimant
    claimant_of_ci: dict[str, int] = {}
    targets: list[str | None] = []
    created: set[int] = set()
    for index, (p, ci_id) in enumerate(zip(records, matched, strict=True)):
        if ci_id is not None and ci_id in cis:
            ci_id = survivor(cis, ci_id)
            ci = cis[ci_id]
            if ci.ci_class != p.obs.ci_class:
                conflicts.append(
                    provenance.conflict(
                        ConflictKind.CLASS_MISMATCH,
                        p.label,
                        f"observed as {p.obs.ci_class} but matches {ci_id}, a {ci.ci_class}",
                        ci_id=ci_id,
                    )
                )
                targets.append(None)
                continue
        else:  # nothing matched, or an explicit id that does not exist yet: create it
            ci_id = new_id() if ci_id is None else ci_id
            created.add(index)
        conflict = _claimed_in_batch(
            p, ci_id, records, targets, claimant_of_ci, owner_in_batch, provenance
        )
        if conflict is not None:
            conflicts.append(conflict)
            created.discard(index)
            targets.append(None)
            continue
        claimant_of_ci.setdefault(ci_id, index)
        for ident in p.identifiers:
            owner_in_batch.setdefault(ident, index)
        targets.append(ci_id)
    own_identifiers = [
        _own_identifiers(p, ci_id, known, provenance, conflicts)
        for p, ci_id in zip(records, targets, strict=True)
    ]
    keys_to_set = [
        (p.obs.key, ci_id)
        for p, ci_id in zip(records, targets, strict=True)
        if ci_id is not None and p.obs.key is not None and known.keys.get(p.obs.key) != ci_id
    ]
    return Identification(targets, created, own_identifiers, keys_to_set, conflicts)


def _claimed_in_batch(
    p: PreparedCI,
    ci_id: str,
    records: Sequence[PreparedCI],
    targets: list[str | None],
    claimant_of_ci: dict[str, int],
    owner_in_batch: dict[Identifier, int],
    provenance: Provenance,
) -> Conflict | None:
    """The conflict when an earlier record of the batch already is ``ci_id`` but a distinct
    item, or claims one of the record's identifiers for another CI."""
    other = claimant_of_ci.get(ci_id)
    if other is not None and _distinct_records(records[other].obs, p.obs):
        return provenance.conflict(
            ConflictKind.DUPLICATE_IN_BATCH,
            p.label,
            f"identifies the same CI as {records[other].label}",
            ci_id=ci_id,
        )
    for ident in p.identifiers:
        first = owner_in_batch.get(ident)
        if first is not None and targets[first] != ci_id:
            return provenance.conflict(
                ConflictKind.DUPLICATE_IN_BATCH,
                p.label,
                f"claims the same {ident[0]} as {records[first].label}",
                identifier=ident,
                ci_id=ci_id,
                other_ci_id=targets[first],
            )
    return None


def _distinct_records(a: CIObservation, b: CIObservation) -> bool:
    """Two records of one batch are distinct items when they carry different keys or ids."""
    if a.ci_id is not None and b.ci_id is not None:
        return a.ci_id != b.ci_id
    if a.key is not None and b.key is not None:
        return a.key != b.key
    return False


def _own_identifiers(
    p: PreparedCI,
    ci_id: str | None,
    known: Known,
    provenance: Provenance,
    conflicts: list[Conflict],
) -> tuple[Identifier, ...]:
    """The record's identifiers that no CI holds; one held by another CI is a conflict
    (appended to ``conflicts``), one held by ``ci_id`` or a CI merged into it is neither."""
    if ci_id is None:
        return ()
    own = []
    for ident in p.identifiers:
        holder = known.identifiers.get(ident)
        if holder is None:
            own.append(ident)
        elif holder != ci_id and not (holder in known.cis and survivor(known.cis, holder) == ci_id):
            conflicts.append(
                provenance.conflict(
                    ConflictKind.IDENTIFIER_CLAIMED,
                    p.label,
                    f"{ident[0]} {ident[1]} already belongs to {holder}; not moved to {ci_id} "
                    "(possible duplicate: merge them if they are one item)",
                    identifier=ident,
                    ci_id=ci_id,
                    other_ci_id=holder,
                )
            )
    return tuple(own)


# -- relationship ends --------------------------------------------------------------------

Pending = tuple[str, str, PreparedRelationship]  # (from id, to id, the relationship)


@dataclass(frozen=True, slots=True)
class EndResolution:
    pending: list[Pending]  # both ends resolved to an id, not yet checked
    errors: list[ValidationFailed]  # an end no CI answers to
    conflicts: list[Conflict]  # an end that was a record not applied


def resolve_ends(
    rels: Sequence[PreparedRelationship],
    key_to_id: Mapping[str, str],
    ident_to_id: Mapping[Identifier, str],
    skipped_keys: Mapping[str, str],
    provenance: Provenance,
) -> EndResolution:
    """The CI ids a relationship's references name: a CI id as given, a key through
    ``key_to_id`` (the batch's records and the source's known keys), an identifier through
    ``ident_to_id``. A key in ``skipped_keys`` (key -> label) is a record of the batch that
    was not applied: the relationship is skipped with an ``ENDPOINT_SKIPPED`` conflict."""
    errors: list[ValidationFailed] = []
    conflicts: list[Conflict] = []
    skipped: set[str] = set()

    def resolve(ref: CIRef, label: str, field_name: str) -> str | None:
        if ref.ci_id is not None:
            return ref.ci_id
        if ref.key is not None and ref.key in skipped_keys:
            # Its end was not applied because of a conflict: skip it, say why.
            if label not in skipped:
                skipped.add(label)
                conflicts.append(
                    provenance.conflict(
                        ConflictKind.ENDPOINT_SKIPPED,
                        label,
                        f"not applied: its '{field_name}' end {skipped_keys[ref.key]} "
                        "was not applied because of a conflict",
                    )
                )
            return None
        if ref.key is not None:
            found = key_to_id.get(ref.key)
        else:
            assert ref.identifier is not None
            found = ident_to_id.get(ref.identifier)
        if found is None:
            # the message is built only when needed: this runs twice per relationship
            if ref.key is not None:
                what = f"key '{ref.key}'"
            else:
                assert ref.identifier is not None
                what = f"{ref.identifier[0]} '{ref.identifier[1]}'"
            errors.append(ValidationFailed(f"no CI with {what}", item=label, field=field_name))
        return found

    pending: list[Pending] = []
    for r in rels:
        from_id = resolve(r.from_ref, r.label, "from")
        to_id = resolve(r.to_ref, r.label, "to")
        if from_id is not None and to_id is not None:
            pending.append((from_id, to_id, r))
    return EndResolution(pending, errors, conflicts)


def check_ends(
    pending: Sequence[Pending],
    classes: Mapping[str, str],
    merged: Mapping[str, str],
    rules: RelationshipRules,
) -> tuple[dict[RelationshipKey, PreparedRelationship], list[ValidationFailed]]:
    """The relationships whose ends exist (``classes``: CI id -> class), differ, and may be
    joined by their type; errors for the others, and for ends that were merged into another
    CI (``merged``: CI id -> the CI it was merged into)."""
    errors = [
        ValidationFailed(
            f"CI {ci_id} was merged into {into}; use that id",
            item=next(r.label for f, t, r in pending if ci_id in (f, t)),
        )
        for ci_id, into in merged.items()
    ]
    resolved: dict[RelationshipKey, PreparedRelationship] = {}
    for from_id, to_id, r in pending:
        for ci_id, field_name in ((from_id, "from"), (to_id, "to")):
            if ci_id not in classes:
                errors.append(
                    ValidationFailed(f"no CI with id '{ci_id}'", item=r.label, field=field_name)
                )
        if from_id not in classes or to_id not in classes:
            continue
        if from_id == to_id:
            errors.append(
                ValidationFailed(
                    f"both ends resolve to the same CI {from_id}", item=r.label, field="to"
                )
            )
            continue
        try:
            rules.check(r.obs.type, classes[from_id], classes[to_id], item=r.label)
        except ValidationFailed as exc:
            errors.append(exc)
            continue
        resolved[(from_id, r.obs.type, to_id)] = r
    return resolved, errors
