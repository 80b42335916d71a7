"""Identification and reconciliation: observations in, graph changes and history out.

One batch is one unit of work. Validation happens before anything is written; an invalid
record fails the whole batch with errors naming the record and field. Then, under the
store's write lock:

1. identify: each observation matches an existing CI by explicit id, by the source's own
   key, or by the first identifier rule (in ``IdentifierRules.match_order``) with a hit;
2. detect conflicts, recorded and reported, never resolved by overwriting: two records of
   the batch claiming one identifier, or a class that differs from the matched CI (the
   record is not applied, nor are relationships to it); an identifier already held by
   another CI (the identifier stays where it is: a likely duplicate to merge; the record
   still updates the CI its stronger identifiers matched);
3. merge attributes by source precedence and write one history entry per changed field;
4. upsert relationships the same way;
5. note the sightings, and after a complete run count a missed run for everything the
   source did not report; items missing for ``stale_after_runs`` runs become stale.

Replaying a batch finds nothing to change and writes no history.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from servicegraph.cmdb.classes import ClassRegistry
from servicegraph.cmdb.context import current_change_context
from servicegraph.cmdb.errors import (
    ReconciliationConflicts,
    UnknownCI,
    ValidationErrors,
    ValidationFailed,
)
from servicegraph.cmdb.identifiers import Identifier, IdentifierRules
from servicegraph.cmdb.model import (
    ConfigurationItem,
    Conflict,
    ConflictKind,
    HistoryEntry,
    HistoryKind,
    Lifecycle,
    OperationalState,
    Relationship,
    RelationshipKey,
    new_ci_id,
)
from servicegraph.cmdb.observation import (
    CIObservation,
    CIRef,
    ObservationBatch,
    RelationshipObservation,
)
from servicegraph.cmdb.ports import GraphStore, GraphWriter
from servicegraph.cmdb.precedence import SourcePrecedence
from servicegraph.cmdb.relationships import RelationshipRules

ConflictPolicy = Literal["record", "fail"]
# the source named in the history of items marked stale by age
EXPIRY_SOURCE = "stale-cleanup"


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while one batch is applied.

    A batch allocates millions of small, acyclic objects (prepared records, CIs,
    relationships, history entries, rows). Every few hundred allocations trigger a
    collection, and the full ones traverse all of them again: a fifth of the time of a
    100,000-CI load. Reference counting still frees everything as usual; the few cycles
    made meanwhile are collected once the collector runs again.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class ReconcileReport:
    source: str
    run_id: str
    cis_created: int = 0
    cis_updated: int = 0
    cis_unchanged: int = 0
    relationships_created: int = 0
    relationships_updated: int = 0
    relationships_unchanged: int = 0
    history_entries: int = 0
    cis_marked_stale: int = 0
    relationships_marked_stale: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    # the CI each observation resolved to, by position in the batch (None: not applied)
    ci_ids: list[str | None] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {
            "cis_created": self.cis_created,
            "cis_updated": self.cis_updated,
            "cis_unchanged": self.cis_unchanged,
            "relationships_created": self.relationships_created,
            "relationships_updated": self.relationships_updated,
            "relationships_unchanged": self.relationships_unchanged,
            "history_entries": self.history_entries,
            "cis_marked_stale": self.cis_marked_stale,
            "relationships_marked_stale": self.relationships_marked_stale,
            "conflicts": len(self.conflicts),
        }


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A validated CI observation with normalised identifiers."""

    obs: CIObservation
    identifiers: tuple[Identifier, ...]
    attributes: Mapping[str, Any]
    label: str


@dataclass(frozen=True, slots=True)
class _PreparedRel:
    obs: RelationshipObservation
    attributes: Mapping[str, Any]
    from_ref: CIRef
    to_ref: CIRef
    label: str


class Reconciler:
    """Applies observation batches to the store."""

    def __init__(
        self,
        store: GraphStore,
        classes: ClassRegistry,
        relationship_rules: RelationshipRules,
        identifier_rules: IdentifierRules,
        precedence: SourcePrecedence,
        *,
        stale_after_runs: int = 3,
    ) -> None:
        if stale_after_runs < 1:
            raise ValueError("stale_after_runs must be at least 1")
        self.store = store
        self.classes = classes
        self.rules = relationship_rules
        self.identifier_rules = identifier_rules
        self.precedence = precedence
        self.stale_after_runs = stale_after_runs

    # -- validation (pure) ---------------------------------------------------------------

    def validate(self, batch: ObservationBatch) -> tuple[list[_Prepared], list[_PreparedRel]]:
        """Check every record; raise ValidationErrors listing all bad ones."""
        errors: list[ValidationFailed] = []
        prepared: list[_Prepared] = []
        seen_keys: dict[str, str] = {}
        seen_ids: dict[str, str] = {}
        for index, obs in enumerate(batch.cis):
            label = obs.origin or f"ci[{index}] {obs.key or obs.ci_id or obs.name or ''}".rstrip()
            try:
                self.classes.get(obs.ci_class, item=label)
                attributes = self.classes.validate_attributes(
                    obs.ci_class, obs.attributes, item=label
                )
                identifiers = self.identifier_rules.normalise(obs.identifiers, item=label)
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
                prepared.append(_Prepared(obs, identifiers, attributes, label))
            except ValidationFailed as exc:
                errors.append(exc)
        rels: list[_PreparedRel] = []
        for index, rel in enumerate(batch.relationships):
            label = rel.origin or f"relationship[{index}] {rel.label}"
            try:
                self.rules.get(rel.type, item=label)
                attributes = self.rules.validate_attributes(rel.attributes, item=label)
                from_ref = self._normalise_ref(rel.from_ref, label, "from")
                to_ref = self._normalise_ref(rel.to_ref, label, "to")
                if from_ref == to_ref:
                    raise ValidationFailed(
                        "a relationship needs two different CIs", item=label, field="to"
                    )
                rels.append(_PreparedRel(rel, attributes, from_ref, to_ref, label))
            except ValidationFailed as exc:
                errors.append(exc)
        if errors:
            raise ValidationErrors(errors)
        return prepared, rels

    def _normalise_ref(self, ref: CIRef, label: str, field_name: str) -> CIRef:
        # counted without a generator: this runs twice per relationship of a batch
        set_parts = (ref.ci_id is not None) + (ref.key is not None) + (ref.identifier is not None)
        if set_parts != 1:
            raise ValidationFailed(
                "give exactly one of a CI id, a key or an identifier", item=label, field=field_name
            )
        if ref.identifier is None:
            return ref
        kind, value = ref.identifier
        normal = self.identifier_rules.normalise({kind: value}, item=label)
        if not normal:
            raise ValidationFailed("empty identifier", item=label, field=field_name)
        return CIRef(identifier=normal[0])

    # -- apply ---------------------------------------------------------------------------

    def apply(
        self, batch: ObservationBatch, *, on_conflict: ConflictPolicy = "record"
    ) -> ReconcileReport:
        """Validate and apply ``batch`` in one unit of work.

        With ``on_conflict="fail"`` any conflict raises ReconciliationConflicts and nothing
        is written; with ``"record"`` conflicting records are skipped and the conflicts
        recorded in the store and the report.
        """
        with _cyclic_gc_paused():
            prepared, rels = self.validate(batch)
            with self.store.write() as writer:
                unit = _Unit(self, writer, batch)
                report = unit.run(prepared, rels)
                if report.conflicts and on_conflict == "fail":
                    raise ReconciliationConflicts(list(report.conflicts))
        return report

    # -- manual operations ---------------------------------------------------------------

    def remove_relationships(
        self, keys: Iterable[RelationshipKey], *, source: str = "manual"
    ) -> int:
        """Mark relationships removed (they stay in history). Returns how many were live."""
        ctx = current_change_context()
        now = dt.datetime.now(dt.UTC)
        with self.store.write() as writer:
            found = writer.load_relationships(list(keys))
            live = [r for r in found.values() if not r.removed]
            writer.save_relationships([], [replace(r, removed=True, updated_at=now) for r in live])
            writer.append_history(
                [
                    HistoryEntry(
                        at=now,
                        ci_id=r.from_id,
                        other_ci_id=r.to_id,
                        kind=HistoryKind.RELATIONSHIP_REMOVED,
                        field=r.type,
                        old=dict(r.attributes),
                        source=source,
                        actor=ctx.actor,
                    )
                    for r in live
                ]
            )
        return len(live)

    def expire(
        self, older_than: dt.timedelta, *, now: dt.datetime | None = None
    ) -> ReconcileReport:
        """Mark stale what no source has reported for ``older_than`` (a source that stopped
        running never completes the runs that would mark its items stale). Nothing is
        deleted; a later sighting makes the item fresh again."""
        batch = ObservationBatch(source=EXPIRY_SOURCE, observed_at=now or dt.datetime.now(dt.UTC))
        with self.store.write() as writer:
            unit = _Unit(self, writer, batch)
            stale_cis, stale_rels = writer.expire_sightings(batch.observed_at - older_than)
            unit._flip([], stale_cis, [], stale_rels)
            writer.append_history(unit.history)
            unit.report.history_entries = len(unit.history)
        return unit.report

    def merge(self, survivor_id: str, duplicate_id: str, *, source: str = "manual") -> None:
        """Merge ``duplicate_id`` into ``survivor_id``.

        The survivor takes the duplicate's identifiers, source keys, sightings and
        relationships, and any attribute it lacks. The duplicate stays in the store, retired
        and pointing at the survivor, with its history intact; the survivor's timeline
        includes it.
        """
        if survivor_id == duplicate_id:
            raise ValidationFailed("cannot merge a CI into itself", item=survivor_id)
        ctx = current_change_context()
        now = dt.datetime.now(dt.UTC)
        with self.store.write() as writer:
            found = writer.load_cis([survivor_id, duplicate_id])
            for ci_id in (survivor_id, duplicate_id):
                if ci_id not in found:
                    raise UnknownCI(ci_id)
                if found[ci_id].merged_into is not None:
                    raise ValidationFailed(
                        f"already merged into {found[ci_id].merged_into}", item=ci_id
                    )
            survivor, duplicate = found[survivor_id], found[duplicate_id]
            if survivor.ci_class != duplicate.ci_class:
                raise ValidationFailed(
                    f"cannot merge a {duplicate.ci_class} into a {survivor.ci_class}",
                    item=duplicate_id,
                    field="class",
                )
            history: list[HistoryEntry] = []

            def entry(ci_id: str, kind: HistoryKind, **kw: Any) -> None:
                history.append(
                    HistoryEntry(
                        at=now, ci_id=ci_id, kind=kind, source=source, actor=ctx.actor, **kw
                    )
                )

            # identifiers move
            writer.remove_identifiers(list(duplicate.identifiers))
            writer.add_identifiers([(ident, survivor_id) for ident in duplicate.identifiers])
            for kind, value in duplicate.identifiers:
                entry(duplicate_id, HistoryKind.IDENTIFIER_REMOVED, field=kind, old=value)
                entry(survivor_id, HistoryKind.IDENTIFIER_ADDED, field=kind, new=value)
            writer.move_keys_and_sightings(duplicate_id, survivor_id)
            # attributes the survivor lacks
            attributes = dict(survivor.attributes)
            sources = dict(survivor.attribute_sources)
            for attr, value in duplicate.attributes.items():
                if attributes.get(attr) is None and value is not None:
                    attributes[attr] = value
                    sources[attr] = duplicate.attribute_sources.get(attr, source)
                    entry(survivor_id, HistoryKind.ATTRIBUTE, field=attr, new=value)
            # relationships move
            new_rels: dict[RelationshipKey, Relationship] = {}
            retired: list[Relationship] = []
            for rel in writer.relationships_of([duplicate_id]):
                from_id = survivor_id if rel.from_id == duplicate_id else rel.from_id
                to_id = survivor_id if rel.to_id == duplicate_id else rel.to_id
                retired.append(replace(rel, removed=True, updated_at=now))
                entry(
                    rel.from_id,
                    HistoryKind.RELATIONSHIP_REMOVED,
                    field=rel.type,
                    other_ci_id=rel.to_id,
                    old=dict(rel.attributes),
                )
                if from_id != to_id:
                    new_rels[(from_id, rel.type, to_id)] = replace(
                        rel, from_id=from_id, to_id=to_id, created_at=now, updated_at=now
                    )
            existing = writer.load_relationships(list(new_rels))
            to_create = []
            to_revive = []
            for key, rel in new_rels.items():
                current = existing.get(key)
                if current is not None and not current.removed:
                    continue
                if current is None:
                    to_create.append(rel)
                else:
                    to_revive.append(replace(current, removed=False, updated_at=now))
                entry(
                    key[0],
                    HistoryKind.RELATIONSHIP_ADDED,
                    field=key[1],
                    other_ci_id=key[2],
                    new=dict(rel.attributes),
                )
            writer.save_relationships(to_create, [*retired, *to_revive])
            entry(duplicate_id, HistoryKind.MERGED_INTO, new=survivor_id)
            entry(survivor_id, HistoryKind.MERGED_FROM, new=duplicate_id)
            if duplicate.lifecycle is not Lifecycle.RETIRED:
                entry(
                    duplicate_id,
                    HistoryKind.LIFECYCLE,
                    old=duplicate.lifecycle.value,
                    new=Lifecycle.RETIRED.value,
                )
            writer.update_cis(
                [
                    replace(
                        survivor,
                        attributes=attributes,
                        attribute_sources=sources,
                        identifiers=tuple(sorted({*survivor.identifiers, *duplicate.identifiers})),
                        updated_at=now,
                        version=survivor.version + 1,
                    ),
                    replace(
                        duplicate,
                        merged_into=survivor_id,
                        lifecycle=Lifecycle.RETIRED,
                        identifiers=(),
                        updated_at=now,
                        version=duplicate.version + 1,
                    ),
                ]
            )
            writer.append_history(history)


class _Unit:
    """The state of one batch being applied inside one write transaction."""

    def __init__(
        self, reconciler: Reconciler, writer: GraphWriter, batch: ObservationBatch
    ) -> None:
        self.r = reconciler
        self.writer = writer
        self.batch = batch
        self.source = batch.source
        self.at = batch.observed_at
        ctx = current_change_context()
        self.actor = ctx.actor
        self.report = ReconcileReport(source=batch.source, run_id=batch.run_id)
        self.history: list[HistoryEntry] = []
        self.conflicts: list[Conflict] = []
        self._changed: dict[str, ConfigurationItem] = {}

    def _entry(
        self,
        ci_id: str,
        kind: HistoryKind,
        *,
        field: str | None = None,
        old: Any = None,
        new: Any = None,
        other_ci_id: str | None = None,
    ) -> None:
        # Explicit parameters instead of **kwargs: one entry per change, so this is hot.
        self.history.append(
            HistoryEntry(
                at=self.at,
                ci_id=ci_id,
                kind=kind,
                field=field,
                old=old,
                new=new,
                source=self.source,
                actor=self.actor,
                run_id=self.batch.run_id,
                other_ci_id=other_ci_id,
            )
        )

    def _conflict(
        self,
        kind: ConflictKind,
        item: str,
        detail: str,
        *,
        identifier: Identifier | None = None,
        ci_id: str | None = None,
        other_ci_id: str | None = None,
    ) -> None:
        self.conflicts.append(
            Conflict(
                kind=kind,
                source=self.source,
                item=item,
                identifier=identifier,
                ci_id=ci_id,
                other_ci_id=other_ci_id,
                detail=detail,
                detected_at=self.at,
                run_id=self.batch.run_id,
            )
        )

    # -- the whole unit --------------------------------------------------------------------

    def run(self, prepared: list[_Prepared], rels: list[_PreparedRel]) -> ReconcileReport:
        key_to_id, seen_ci_ids = self._apply_cis(prepared)
        seen_rel_keys = self._apply_relationships(rels, key_to_id)
        self._sightings(seen_ci_ids, seen_rel_keys)
        self.writer.append_history(self.history)
        self.writer.add_conflicts(self.conflicts)
        self.report.history_entries = len(self.history)
        self.report.conflicts = self.conflicts
        return self.report

    # -- CIs -----------------------------------------------------------------------------

    def _apply_cis(self, prepared: list[_Prepared]) -> tuple[dict[str, str], list[str]]:
        writer = self.writer
        keys = [p.obs.key for p in prepared if p.obs.key is not None]
        key_hits = writer.lookup_keys(self.source, keys) if keys else {}
        all_identifiers = {ident for p in prepared for ident in p.identifiers}
        ident_hits = writer.lookup_identifiers(all_identifiers) if all_identifiers else {}
        explicit_ids = [p.obs.ci_id for p in prepared if p.obs.ci_id is not None]

        # 1. identify
        matched: list[str | None] = []
        for p in prepared:
            ci_id: str | None = None
            if p.obs.ci_id is not None:
                ci_id = p.obs.ci_id  # existence is checked below
            elif p.obs.key is not None and p.obs.key in key_hits:
                ci_id = key_hits[p.obs.key]
            else:
                for ident in p.identifiers:  # already in rule order
                    if ident in ident_hits:
                        ci_id = ident_hits[ident]
                        break
            matched.append(ci_id)
        existing = writer.load_cis({m for m in matched if m is not None} | set(explicit_ids))
        # A CI merged into another is found through its survivor, however many merges on.
        survivors = {
            ci.merged_into for ci in existing.values() if ci.merged_into is not None
        } - existing.keys()
        while survivors:
            loaded = writer.load_cis(survivors)
            existing.update(loaded)
            survivors = {
                ci.merged_into for ci in loaded.values() if ci.merged_into is not None
            } - existing.keys()

        def live(ci_id: str) -> str:
            seen = set()
            while existing[ci_id].merged_into is not None and ci_id not in seen:
                seen.add(ci_id)
                ci_id = existing[ci_id].merged_into  # type: ignore[assignment]
            return ci_id

        # 2. decide, per observation, which CI it is and detect conflicts
        owner_in_batch: dict[Identifier, int] = {}  # identifier -> index of first claimant
        claimant_of_ci: dict[str, int] = {}
        targets: list[str | None] = []  # CI id per observation, None = skipped
        creates: dict[int, str] = {}
        for index, (p, ci_id) in enumerate(zip(prepared, matched, strict=True)):
            if ci_id is not None and ci_id in existing:
                ci_id = live(ci_id)
                ci = existing[ci_id]
                if ci.ci_class != p.obs.ci_class:
                    self._conflict(
                        ConflictKind.CLASS_MISMATCH,
                        p.label,
                        f"observed as {p.obs.ci_class} but matches {ci_id}, a {ci.ci_class}",
                        ci_id=ci_id,
                    )
                    targets.append(None)
                    continue
            elif ci_id is None:
                ci_id = new_ci_id()
                creates[index] = ci_id
            else:  # explicit id that does not exist yet: create under that id
                creates[index] = ci_id
            # two records of the batch that are the same CI
            other = claimant_of_ci.get(ci_id)
            if other is not None and _distinct_records(prepared[other].obs, p.obs):
                self._conflict(
                    ConflictKind.DUPLICATE_IN_BATCH,
                    p.label,
                    f"identifies the same CI as {prepared[other].label}",
                    ci_id=ci_id,
                )
                creates.pop(index, None)
                targets.append(None)
                continue
            # identifiers claimed by another record of this batch
            clash = next(
                (
                    (ident, owner_in_batch[ident])
                    for ident in p.identifiers
                    if ident in owner_in_batch and targets[owner_in_batch[ident]] != ci_id
                ),
                None,
            )
            if clash is not None:
                ident, first = clash
                self._conflict(
                    ConflictKind.DUPLICATE_IN_BATCH,
                    p.label,
                    f"claims the same {ident[0]} as {prepared[first].label}",
                    identifier=ident,
                    ci_id=ci_id,
                    other_ci_id=targets[first],
                )
                creates.pop(index, None)
                targets.append(None)
                continue
            claimant_of_ci.setdefault(ci_id, index)
            for ident in p.identifiers:
                owner_in_batch.setdefault(ident, index)
            targets.append(ci_id)

        # 3. write: new CIs, changed CIs, identifiers, keys
        new_cis: list[ConfigurationItem] = []
        changed: dict[str, ConfigurationItem] = {}
        key_rows: list[tuple[str, str]] = []
        seen: list[str] = []
        for index, (p, ci_id) in enumerate(zip(prepared, targets, strict=True)):
            if ci_id is None:
                continue
            seen.append(ci_id)
            if p.obs.key is not None and key_hits.get(p.obs.key) != ci_id:
                key_rows.append((p.obs.key, ci_id))
            own = []
            for ident in p.identifiers:
                holder = ident_hits.get(ident)
                if holder is None:
                    own.append(ident)
                elif holder != ci_id and not (holder in existing and live(holder) == ci_id):
                    self._conflict(
                        ConflictKind.IDENTIFIER_CLAIMED,
                        p.label,
                        f"{ident[0]} {ident[1]} already belongs to {holder}; "
                        f"not moved to {ci_id} (possible duplicate: merge them if they are "
                        "one item)",
                        identifier=ident,
                        ci_id=ci_id,
                        other_ci_id=holder,
                    )
            if index in creates:
                ci = self._new_ci(p, ci_id, tuple(own))
                new_cis.append(ci)
                self.report.cis_created += 1
                continue
            current = changed.get(ci_id) or existing[ci_id]
            updated = self._merge_into(current, p, own)
            if updated is not current:
                changed[ci_id] = updated
        created_ids = {ci.id for ci in new_cis}
        added_identifiers = [
            (ident, ci_id)
            for ci_id, ci in changed.items()
            for ident in ci.identifiers
            if ident not in existing[ci_id].identifiers
        ]
        self.report.cis_updated = len(changed)
        self.report.cis_unchanged = len(set(seen)) - len(changed) - len(created_ids)
        writer.insert_cis(new_cis)
        writer.update_cis(list(changed.values()))
        writer.add_identifiers(added_identifiers)
        if key_rows:
            writer.set_keys(self.source, key_rows)
        self.report.ci_ids = targets
        self._existing = existing
        self._changed = changed
        self._created = {ci.id: ci for ci in new_cis}
        key_to_id = {
            p.obs.key: ci_id
            for p, ci_id in zip(prepared, targets, strict=True)
            if p.obs.key is not None and ci_id is not None
        }
        self._skipped_keys = {
            p.obs.key: p.label
            for p, ci_id in zip(prepared, targets, strict=True)
            if p.obs.key is not None and ci_id is None
        }
        return key_to_id, seen

    def _new_ci(
        self, p: _Prepared, ci_id: str, identifiers: tuple[Identifier, ...]
    ) -> ConfigurationItem:
        name = p.obs.name or p.obs.key or (identifiers[0][1] if identifiers else ci_id)
        attributes = {k: v for k, v in p.attributes.items() if v is not None}
        ci = ConfigurationItem(
            id=ci_id,
            ci_class=p.obs.ci_class,
            name=name,
            attributes=attributes,
            identifiers=tuple(sorted(identifiers)),
            lifecycle=p.obs.lifecycle or Lifecycle.ACTIVE,
            operational_state=p.obs.operational_state or OperationalState.UNKNOWN,
            created_at=self.at,
            updated_at=self.at,
            attribute_sources={"name": self.source, **{k: self.source for k in attributes}},
        )
        self._entry(
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
        return ci

    def _merge_into(
        self, ci: ConfigurationItem, p: _Prepared, own_identifiers: list[Identifier]
    ) -> ConfigurationItem:
        """The CI with the observation merged in; the same object when nothing changes."""
        may = self.r.precedence.may_override
        source = self.source
        attributes: dict[str, Any] | None = None
        sources: dict[str, str] | None = None
        changes: dict[str, Any] = {}
        for attr, value in p.attributes.items():
            current_source = ci.attribute_sources.get(attr)
            if not may(attr, source, current_source):
                continue
            old = ci.attributes.get(attr)
            if old == value:
                # A stronger source confirming the value owns it from now on.
                if (
                    current_source != source
                    and value is not None
                    and self.r.precedence.rank(attr, source)
                    < self.r.precedence.rank(attr, current_source or "")
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
            self._entry(ci.id, HistoryKind.ATTRIBUTE, field=attr, old=old, new=value)
        name = p.obs.name
        if (
            name is not None
            and name != ci.name
            and may("name", source, ci.attribute_sources.get("name"))
        ):
            sources = sources or dict(ci.attribute_sources)
            sources["name"] = source
            changes["name"] = name
            self._entry(ci.id, HistoryKind.NAME, old=ci.name, new=name)
        if p.obs.lifecycle is not None and p.obs.lifecycle != ci.lifecycle:
            changes["lifecycle"] = p.obs.lifecycle
            self._entry(
                ci.id, HistoryKind.LIFECYCLE, old=ci.lifecycle.value, new=p.obs.lifecycle.value
            )
        state = p.obs.operational_state
        if state is not None and state != ci.operational_state:
            changes["operational_state"] = state
            self._entry(
                ci.id,
                HistoryKind.OPERATIONAL_STATE,
                old=ci.operational_state.value,
                new=state.value,
            )
        new_identifiers = [i for i in own_identifiers if i not in ci.identifiers]
        for kind, value in new_identifiers:
            self._entry(ci.id, HistoryKind.IDENTIFIER_ADDED, field=kind, new=value)
        if new_identifiers:
            changes["identifiers"] = tuple(sorted({*ci.identifiers, *new_identifiers}))
        if attributes is not None:
            changes["attributes"] = attributes
        if sources is not None:
            changes["attribute_sources"] = sources
        if not changes:
            return ci
        content_changed = set(changes) != {"attribute_sources"}
        return replace(
            ci,
            **changes,
            updated_at=self.at if content_changed else ci.updated_at,
            version=ci.version + 1 if content_changed else ci.version,
        )

    # -- relationships -------------------------------------------------------------------

    def _apply_relationships(
        self, rels: list[_PreparedRel], key_to_id: dict[str, str]
    ) -> list[RelationshipKey]:
        if not rels:
            return []
        writer = self.writer
        # resolve references the batch itself could not
        unknown_keys = {
            ref.key
            for r in rels
            for ref in (r.from_ref, r.to_ref)
            if ref.key is not None and ref.key not in key_to_id
        }
        if unknown_keys:
            key_to_id = {**writer.lookup_keys(self.source, unknown_keys), **key_to_id}
        idents = {
            ref.identifier
            for r in rels
            for ref in (r.from_ref, r.to_ref)
            if ref.identifier is not None
        }
        ident_to_id = writer.lookup_identifiers(idents) if idents else {}
        for ci in self._created.values():
            for ident in ci.identifiers:
                ident_to_id.setdefault(ident, ci.id)
        classes: dict[str, str] = {
            ci_id: ci.ci_class for ci_id, ci in {**self._existing, **self._created}.items()
        }
        errors: list[ValidationFailed] = []
        resolved: dict[RelationshipKey, _PreparedRel] = {}

        skipped: set[str] = set()

        def resolve(ref: CIRef, label: str, field_name: str) -> str | None:
            if ref.ci_id is not None:
                return ref.ci_id
            if ref.key is not None and ref.key in self._skipped_keys:
                # Its end was not applied because of a conflict: skip it, say why.
                if label not in skipped:
                    skipped.add(label)
                    self._conflict(
                        ConflictKind.ENDPOINT_SKIPPED,
                        label,
                        f"not applied: its '{field_name}' end {self._skipped_keys[ref.key]} "
                        "was not applied because of a conflict",
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

        pending: list[tuple[str, str, _PreparedRel]] = []
        for r in rels:
            from_id = resolve(r.from_ref, r.label, "from")
            to_id = resolve(r.to_ref, r.label, "to")
            if from_id is not None and to_id is not None:
                pending.append((from_id, to_id, r))
        missing = {i for f, t, _ in pending for i in (f, t) if i not in classes}
        if missing:
            loaded = writer.load_cis(missing)
            for ci_id, ci in loaded.items():
                if ci.merged_into is not None:
                    errors.append(
                        ValidationFailed(
                            f"CI {ci_id} was merged into {ci.merged_into}; use that id",
                            item=next(r.label for f, t, r in pending if ci_id in (f, t)),
                        )
                    )
                classes[ci_id] = ci.ci_class
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
                self.r.rules.check(r.obs.type, classes[from_id], classes[to_id], item=r.label)
            except ValidationFailed as exc:
                errors.append(exc)
                continue
            resolved[(from_id, r.obs.type, to_id)] = r
        if errors:
            raise ValidationErrors(errors)
        current = writer.load_relationships(list(resolved))
        new: list[Relationship] = []
        changed: list[Relationship] = []
        for key, r in resolved.items():
            rel = current.get(key)
            attrs = {k: v for k, v in r.attributes.items() if v is not None}
            if rel is None:
                new.append(
                    Relationship(
                        key[0], key[1], key[2], attrs, created_at=self.at, updated_at=self.at
                    )
                )
                self._entry(
                    key[0],
                    HistoryKind.RELATIONSHIP_ADDED,
                    field=key[1],
                    other_ci_id=key[2],
                    new=attrs,
                )
                continue
            merged = dict(rel.attributes)
            for k, v in r.attributes.items():
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
            if rel.removed:
                changed.append(replace(rel, attributes=merged, removed=False, updated_at=self.at))
                self._entry(
                    key[0],
                    HistoryKind.RELATIONSHIP_ADDED,
                    field=key[1],
                    other_ci_id=key[2],
                    new=merged,
                )
                self.report.relationships_created += 1
            elif merged != dict(rel.attributes):
                changed.append(replace(rel, attributes=merged, updated_at=self.at))
                self._entry(
                    key[0],
                    HistoryKind.RELATIONSHIP_ATTRIBUTE,
                    field=key[1],
                    other_ci_id=key[2],
                    old=dict(rel.attributes),
                    new=merged,
                )
                self.report.relationships_updated += 1
            else:
                self.report.relationships_unchanged += 1
        self.report.relationships_created += len(new)
        writer.save_relationships(new, changed)
        return list(resolved)

    # -- sightings and staleness ---------------------------------------------------------

    def _sightings(self, ci_ids: list[str], rel_keys: list[RelationshipKey]) -> None:
        writer = self.writer
        fresh_cis, fresh_rels = writer.record_sightings(
            self.source, self.batch.run_id, self.at, ci_ids, rel_keys
        )
        stale_cis: list[str] = []
        stale_rels: list[RelationshipKey] = []
        if self.batch.complete:
            stale_cis, stale_rels = writer.sweep_unseen(
                self.source, self.batch.run_id, self.r.stale_after_runs
            )
        self._flip(fresh_cis, stale_cis, fresh_rels, stale_rels)

    def _flip(
        self,
        fresh_cis: list[str],
        stale_cis: list[str],
        fresh_rels: list[RelationshipKey],
        stale_rels: list[RelationshipKey],
    ) -> None:
        """Set the stale flag of CIs and relationships, with their history entries."""
        writer = self.writer
        flips: dict[str, bool] = {ci_id: False for ci_id in fresh_cis}
        flips.update({ci_id: True for ci_id in stale_cis})
        if flips:
            loaded = {
                **writer.load_cis([i for i in flips if i not in self._changed]),
                **{i: self._changed[i] for i in flips if i in self._changed},
            }
            updates = []
            for ci_id, stale in flips.items():
                ci = loaded.get(ci_id)
                if ci is None or ci.stale == stale:
                    continue
                updates.append(replace(ci, stale=stale, updated_at=self.at, version=ci.version + 1))
                self._entry(
                    ci_id,
                    HistoryKind.STALE if stale else HistoryKind.FRESH,
                    old=not stale,
                    new=stale,
                )
                if stale:
                    self.report.cis_marked_stale += 1
            writer.update_cis(updates)
        rel_flips: dict[RelationshipKey, bool] = {k: False for k in fresh_rels}
        rel_flips.update({k: True for k in stale_rels})
        if rel_flips:
            loaded_rels = writer.load_relationships(list(rel_flips))
            updates_rels = []
            for key, stale in rel_flips.items():
                rel = loaded_rels.get(key)
                if rel is None or rel.stale == stale:
                    continue
                updates_rels.append(replace(rel, stale=stale, updated_at=self.at))
                self._entry(
                    key[0],
                    HistoryKind.RELATIONSHIP_STALE if stale else HistoryKind.RELATIONSHIP_FRESH,
                    field=key[1],
                    other_ci_id=key[2],
                )
                if stale:
                    self.report.relationships_marked_stale += 1
            writer.save_relationships([], updates_rels)


def _distinct_records(a: CIObservation, b: CIObservation) -> bool:
    """Two records of one batch are distinct items when they carry different keys or ids."""
    if a.ci_id is not None and b.ci_id is not None:
        return a.ci_id != b.ci_id
    if a.key is not None and b.key is not None:
        return a.key != b.key
    return False


def batch_from(
    source: str,
    cis: Sequence[CIObservation],
    relationships: Sequence[RelationshipObservation] = (),
    *,
    complete: bool = False,
    observed_at: dt.datetime | None = None,
) -> ObservationBatch:
    """Convenience for callers that build a batch from plain lists."""
    batch = ObservationBatch(
        source=source, cis=list(cis), relationships=list(relationships), complete=complete
    )
    if observed_at is not None:
        batch = replace(batch, observed_at=observed_at)
    return batch
