"""Reconciliation: observation batches in, graph changes and history out.

One batch is one unit of work. Every record is validated before anything is written
(``validation``: an invalid record fails the whole batch, errors naming record and field).
Then, under the store's write lock, each step a pure function over plain data:

1. identify (``identification``): which CI each observation is (explicit id, the source's
   own key, the first identifier rule with a hit) and the conflicts, recorded and never
   resolved by overwriting;
2. merge (``merging``): attributes by per-attribute source precedence, one history entry
   per changed field; relationships the same way;
3. sightings (``staleness``): after a complete run everything the source did not report
   counts a missed run; items missing for ``stale_after_runs`` runs become stale.

This module is the service around those steps: it reads from the store what they need,
and writes what they decide. Replaying a batch finds nothing to change and writes no
history. Merging duplicates by hand is planned in ``duplicates``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from servicegraph.cmdb.classes import ClassRegistry
from servicegraph.cmdb.context import current_change_context
from servicegraph.cmdb.duplicates import check_mergeable, moved_keys, plan_merge
from servicegraph.cmdb.errors import ReconciliationConflicts, ValidationErrors, ValidationFailed
from servicegraph.cmdb.identification import (
    Identification,
    Known,
    Pending,
    check_ends,
    identify,
    match,
    resolve_ends,
)
from servicegraph.cmdb.identifiers import Identifier, IdentifierRules
from servicegraph.cmdb.merging import (
    RelationshipMerge,
    merge_observation,
    merge_relationships,
    new_ci,
)
from servicegraph.cmdb.model import (
    ConfigurationItem,
    Conflict,
    HistoryEntry,
    HistoryKind,
    Relationship,
    RelationshipKey,
)
from servicegraph.cmdb.observation import (
    CIObservation,
    ObservationBatch,
    RelationshipObservation,
)
from servicegraph.cmdb.ports import GraphStore, GraphWriter
from servicegraph.cmdb.precedence import SourcePrecedence
from servicegraph.cmdb.provenance import Provenance
from servicegraph.cmdb.relationships import RelationshipRules
from servicegraph.cmdb.staleness import Flips, flip_cis, flip_relationships, stale_flags
from servicegraph.cmdb.validation import PreparedCI, PreparedRelationship, validate_batch

ConflictPolicy = Literal["record", "fail"]
Validated = tuple[list[PreparedCI], list[PreparedRelationship]]  # Reconciler.validate's
# the source named in the history of items marked stale by age
EXPIRY_SOURCE = "stale-cleanup"
# sightings an expiry unit marks at most: as many as an import's unit holds records
EXPIRY_PART_SIZE = 20_000


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

    def validate(
        self, batch: ObservationBatch
    ) -> tuple[list[PreparedCI], list[PreparedRelationship]]:
        """Check every record; raise ValidationErrors listing all bad ones."""
        return validate_batch(batch, self.classes, self.rules, self.identifier_rules)

    def apply(
        self,
        batch: ObservationBatch,
        *,
        on_conflict: ConflictPolicy = "record",
        rejected: Sequence[Conflict] = (),
        validated: Validated | None = None,
    ) -> ReconcileReport:
        """Validate and apply ``batch`` in one unit of work.

        With ``on_conflict="fail"`` any conflict raises ReconciliationConflicts and nothing
        is written; with ``"record"`` conflicting records are skipped and the conflicts
        recorded in the store and the report. ``rejected``: records the caller left out of
        the batch (invalid rows of a partial import), recorded with it in one unit.
        ``validated``: what ``validate`` returned for this very batch, when the caller
        checked it already (validation is a tenth of a replay's time).

        The process's garbage collector is left alone: an entry point applying a large
        batch pauses it around the call (``servicegraph.runtime.heap.collector_paused``).
        """
        prepared, rels = validated or self.validate(batch)
        with self.store.write() as writer:
            report = _BatchRun(self, writer, batch).run(prepared, rels)
            if report.conflicts and on_conflict == "fail":
                raise ReconciliationConflicts(list(report.conflicts))
            writer.add_conflicts(rejected)
        return report

    def apply_in_slices(
        self,
        batch: ObservationBatch,
        *,
        slice_size: int,
        on_conflict: ConflictPolicy = "record",
        progress: Callable[[int, int], None] | None = None,
        rejected: Sequence[Conflict] = (),
        validated: Validated | None = None,
    ) -> ReconcileReport:
        """Validate and apply ``batch`` as ``apply`` does, in units of work of at most
        ``slice_size`` records each, under the batch's one run id (``slices``).

        The whole batch is validated, identified and merged in memory first, in one unit
        that only reads; then its CIs are written (each CI whole, with its identifiers,
        keys, sighting and history, in one unit), then its relationships, then the
        conflicts, then, for a complete source, the stale sweep. The graph, its history
        (but for the order of entries) and the report are those of one ``apply``.

        With ``on_conflict="fail"`` every conflict of the whole batch, and every
        relationship whose end is missing, is found before anything is written: nothing
        is. ``progress(done, total)`` is called after each unit, with records committed.

        The trade-off: each unit is all-or-nothing, the run is not. A failure part-way
        (the store gone, a timeout) leaves the earlier units committed: the CIs and
        relationships they hold are in the graph, the rest are not, and a complete
        source's sweep has not run. Running the same import again is safe: it finds the
        committed records unchanged (no history, no new version) and writes the rest.
        Between units other writers may run; what the plan read may then be out of date,
        and a unit that meets it (an identifier another writer took meanwhile) fails as a
        unit, as a concurrent ``apply`` would have been refused by the write lock. The
        sweep runs in units of at most ``slice_size`` unseen items too; one that fails
        part-way has counted the missed run of the items its committed units hold (the
        run did not see them) and of no others.
        """
        from servicegraph.cmdb.slices import SlicedRun

        prepared, rels = validated or self.validate(batch)
        run = SlicedRun(self, batch, slice_size=slice_size, progress=progress)
        return run.run(prepared, rels, on_conflict=on_conflict, rejected=rejected)

    def preview(self, batch: ObservationBatch, *, validated: Validated | None = None) -> Preview:
        """What ``apply`` would do, written nowhere: the batch runs in a write transaction
        that is rolled back, so the answer is exactly the real run's (identification,
        precedence, conflicts, the stale sweep) without a second implementation of it."""
        prepared, rels = validated or self.validate(batch)
        outcome: Preview | None = None
        try:
            with self.store.write() as writer:
                run = _BatchRun(self, writer, batch)
                report = run.run(prepared, rels)
                outcome = Preview(report, run.history, run.before, prepared)
                raise _RollBack
        except _RollBack:
            pass
        assert outcome is not None
        return outcome

    # -- manual operations ---------------------------------------------------------------

    def remove_relationships(
        self, keys: Iterable[RelationshipKey], *, source: str = "manual"
    ) -> int:
        """Mark relationships removed (they stay in history). Returns how many were live."""
        now = dt.datetime.now(dt.UTC)
        provenance = Provenance(now, source, current_change_context().actor)
        with self.store.write() as writer:
            found = writer.load_relationships(list(keys))
            live = [r for r in found.values() if not r.removed]
            writer.save_relationships([], [replace(r, removed=True, updated_at=now) for r in live])
            writer.append_history(
                [
                    provenance.entry(
                        r.from_id,
                        HistoryKind.RELATIONSHIP_REMOVED,
                        field=r.type,
                        other_ci_id=r.to_id,
                        old=dict(r.attributes),
                    )
                    for r in live
                ]
            )
        return len(live)

    def expire(
        self,
        older_than: dt.timedelta,
        *,
        now: dt.datetime | None = None,
        part_size: int = EXPIRY_PART_SIZE,
    ) -> ReconcileReport:
        """Mark stale what no source has reported for ``older_than`` (a source that stopped
        running never completes the runs that would mark its items stale). Nothing is
        deleted; a later sighting makes the item fresh again.

        Runs in units of at most ``part_size`` sightings, each with the flags and history
        of what it made stale, so that a source of 300,000 items that went silent expires
        without one transaction holding it all. A failure part-way leaves the earlier units
        committed; the next expiry finishes the rest."""
        if part_size < 1:
            raise ValueError("part_size must be at least 1")
        at = now or dt.datetime.now(dt.UTC)
        run_id = uuid.uuid4().hex
        provenance = Provenance(at, EXPIRY_SOURCE, current_change_context().actor, run_id)
        history_entries = cis_marked_stale = relationships_marked_stale = 0
        finished = False
        while not finished:
            with self.store.write() as writer:
                stale_cis, stale_rels, finished = writer.expire_sightings(
                    at - older_than, part_size
                )
                ci_flips, rel_flips = _flip(writer, provenance, [], stale_cis, [], stale_rels, {})
                history = [*ci_flips.history, *rel_flips.history]
                writer.append_history(history)
            history_entries += len(history)
            cis_marked_stale += ci_flips.marked_stale
            relationships_marked_stale += rel_flips.marked_stale
        return ReconcileReport(
            source=EXPIRY_SOURCE,
            run_id=run_id,
            history_entries=history_entries,
            cis_marked_stale=cis_marked_stale,
            relationships_marked_stale=relationships_marked_stale,
        )

    def merge(self, survivor_id: str, duplicate_id: str, *, source: str = "manual") -> None:
        """Merge ``duplicate_id`` into ``survivor_id``.

        The survivor takes the duplicate's identifiers, source keys, sightings and
        relationships, and any attribute it lacks. The duplicate stays in the store, retired
        and pointing at the survivor, with its history intact; the survivor's timeline
        includes it.
        """
        if survivor_id == duplicate_id:
            raise ValidationFailed("cannot merge a CI into itself", item=survivor_id)
        provenance = Provenance(dt.datetime.now(dt.UTC), source, current_change_context().actor)
        with self.store.write() as writer:
            found = writer.load_cis([survivor_id, duplicate_id])
            survivor, duplicate = check_mergeable(found, survivor_id, duplicate_id)
            writer.remove_identifiers(list(duplicate.identifiers))
            writer.add_identifiers([(ident, survivor_id) for ident in duplicate.identifiers])
            writer.move_keys_and_sightings(duplicate_id, survivor_id)
            relationships = writer.relationships_of([duplicate_id])
            existing = writer.load_relationships(
                moved_keys(relationships, duplicate_id, survivor_id)
            )
            plan = plan_merge(survivor, duplicate, relationships, existing, provenance)
            writer.save_relationships(plan.to_create, plan.to_save)
            writer.update_cis([plan.survivor, plan.duplicate])
            writer.append_history(plan.history)


@dataclass(frozen=True)
class Preview:
    """A batch's effect, computed and rolled back (``Reconciler.preview``)."""

    report: ReconcileReport
    history: list[HistoryEntry]  # every entry the run would write
    before: Mapping[str, ConfigurationItem]  # the CIs it matched, as they are now
    prepared: list[PreparedCI]  # the validated records, in the batch's order


class _RollBack(Exception):
    """Ends a preview's transaction without committing it."""


@dataclass(frozen=True, slots=True)
class _AppliedCIs:
    """What the CI phase of a batch hands to the relationship and sighting phases."""

    targets: list[str | None]  # by position in the batch: the CI, None when not applied
    seen: list[str]  # the CIs the batch reported, in its order (repeats kept)
    key_to_id: dict[str, str]  # the batch's keys of records applied
    skipped_keys: dict[str, str]  # the batch's keys of records not applied -> their label
    existing: Mapping[str, ConfigurationItem]  # as loaded before the batch
    created: dict[str, ConfigurationItem]
    changed: dict[str, ConfigurationItem]  # existing CIs as the batch left them
    history: list[HistoryEntry]
    conflicts: list[Conflict]


@dataclass(frozen=True, slots=True)
class _AppliedRelationships:
    keys: list[RelationshipKey]  # the relationships the batch reported
    merge: RelationshipMerge
    conflicts: list[Conflict]


class _BatchRun:
    """One batch applied inside one write transaction. It holds what every phase needs
    (the rules, the writer, the batch's provenance); each phase returns what the next one
    needs, and ``run`` writes the history and conflicts they produced."""

    def __init__(
        self, reconciler: Reconciler, writer: GraphWriter, batch: ObservationBatch
    ) -> None:
        self.r = reconciler
        self.writer = writer
        self.batch = batch
        self.provenance = Provenance(
            at=batch.observed_at,
            source=batch.source,
            actor=current_change_context().actor,
            run_id=batch.run_id,
        )
        # what the run wrote, for a preview to show
        self.history: list[HistoryEntry] = []
        self.before: Mapping[str, ConfigurationItem] = {}

    def run(self, prepared: list[PreparedCI], rels: list[PreparedRelationship]) -> ReconcileReport:
        cis = self._apply_cis(prepared)
        relationships = self._apply_relationships(rels, cis)
        ci_flips, rel_flips = self._sightings(cis, relationships.keys)
        history = [
            *cis.history,
            *relationships.merge.history,
            *ci_flips.history,
            *rel_flips.history,
        ]
        conflicts = [*cis.conflicts, *relationships.conflicts]
        self.history, self.before = history, cis.existing
        self.writer.append_history(history)
        self.writer.add_conflicts(conflicts)
        merged = relationships.merge
        return ReconcileReport(
            source=self.batch.source,
            run_id=self.batch.run_id,
            cis_created=len(cis.created),
            cis_updated=len(cis.changed),
            cis_unchanged=len(set(cis.seen)) - len(cis.changed) - len(cis.created),
            relationships_created=merged.created,
            relationships_updated=merged.updated,
            relationships_unchanged=merged.unchanged,
            history_entries=len(history),
            cis_marked_stale=ci_flips.marked_stale,
            relationships_marked_stale=rel_flips.marked_stale,
            conflicts=conflicts,
            ci_ids=cis.targets,
        )

    # -- CIs -----------------------------------------------------------------------------

    def _apply_cis(self, prepared: list[PreparedCI]) -> _AppliedCIs:
        known = self._lookup(prepared)
        matched = match(prepared, known)
        known = replace(known, cis=self._load_matched(matched))
        decided = identify(prepared, matched, known, self.provenance)
        applied = self._write_cis(prepared, decided, known)
        if decided.keys_to_set:
            self.writer.set_keys(self.batch.source, decided.keys_to_set)
        return applied

    def _lookup(self, prepared: list[PreparedCI]) -> Known:
        """What the store knows of the batch's source keys and identifiers."""
        writer = self.writer
        keys = [p.obs.key for p in prepared if p.obs.key is not None]
        identifiers = {ident for p in prepared for ident in p.identifiers}
        return Known(
            keys=writer.lookup_keys(self.batch.source, keys) if keys else {},
            identifiers=writer.lookup_identifiers(identifiers) if identifiers else {},
        )

    def _load_matched(self, matched: list[str | None]) -> dict[str, ConfigurationItem]:
        """The matched CIs the store holds, and those they were merged into, however many
        merges on."""
        existing = self.writer.load_cis({m for m in matched if m is not None})
        survivors = {ci.merged_into for ci in existing.values() if ci.merged_into} - existing.keys()
        while survivors:
            loaded = self.writer.load_cis(survivors)
            existing.update(loaded)
            survivors = {
                ci.merged_into for ci in loaded.values() if ci.merged_into
            } - existing.keys()
        return existing

    def _write_cis(
        self, prepared: list[PreparedCI], decided: Identification, known: Known
    ) -> _AppliedCIs:
        """Create and update the CIs as decided, with their new identifiers."""
        provenance, existing = self.provenance, known.cis
        created: dict[str, ConfigurationItem] = {}
        changed: dict[str, ConfigurationItem] = {}
        history: list[HistoryEntry] = []
        seen: list[str] = []
        for index, (p, ci_id, own) in enumerate(
            zip(prepared, decided.targets, decided.own_identifiers, strict=True)
        ):
            if ci_id is None:
                continue
            seen.append(ci_id)
            if index in decided.created:
                ci, entry = new_ci(p, ci_id, own, provenance)
                created[ci_id] = ci
                history.append(entry)
                continue
            current = changed.get(ci_id) or existing[ci_id]
            updated, entries = merge_observation(current, p, own, self.r.precedence, provenance)
            history.extend(entries)
            if updated is not current:
                changed[ci_id] = updated
        added_identifiers: list[tuple[Identifier, str]] = [
            (ident, ci_id)
            for ci_id, ci in changed.items()
            for ident in ci.identifiers
            if ident not in existing[ci_id].identifiers
        ]
        self.writer.insert_cis(list(created.values()))
        self.writer.update_cis(list(changed.values()))
        self.writer.add_identifiers(added_identifiers)
        keyed = [(p.obs.key, p.label, t) for p, t in zip(prepared, decided.targets, strict=True)]
        return _AppliedCIs(
            targets=decided.targets,
            seen=seen,
            key_to_id={k: t for k, _, t in keyed if k is not None and t is not None},
            skipped_keys={k: label for k, label, t in keyed if k is not None and t is None},
            existing=existing,
            created=created,
            changed=changed,
            history=history,
            conflicts=decided.conflicts,
        )

    # -- relationships -------------------------------------------------------------------

    def _apply_relationships(
        self, rels: list[PreparedRelationship], cis: _AppliedCIs
    ) -> _AppliedRelationships:
        if not rels:
            return _AppliedRelationships([], RelationshipMerge(), [])
        key_to_id, ident_to_id = self._end_lookups(rels, cis)
        ends = resolve_ends(rels, key_to_id, ident_to_id, cis.skipped_keys, self.provenance)
        classes, merged = self._classes_of(ends.pending, cis)
        resolved, errors = check_ends(ends.pending, classes, merged, self.r.rules)
        if ends.errors or errors:
            raise ValidationErrors([*ends.errors, *errors])
        current = self.writer.load_relationships(list(resolved))
        observed = {key: r.attributes for key, r in resolved.items()}
        merge = merge_relationships(observed, current, self.provenance)
        self.writer.save_relationships(merge.new, merge.changed)
        return _AppliedRelationships(list(resolved), merge, ends.conflicts)

    def _end_lookups(
        self, rels: list[PreparedRelationship], cis: _AppliedCIs
    ) -> tuple[Mapping[str, str], dict[Identifier, str]]:
        """Keys and identifiers the relationships' ends name -> CI id: the batch's own
        records first, then the store."""
        key_to_id: Mapping[str, str] = cis.key_to_id
        unknown_keys = {
            ref.key
            for r in rels
            for ref in (r.from_ref, r.to_ref)
            if ref.key is not None and ref.key not in key_to_id
        }
        if unknown_keys:
            key_to_id = {**self.writer.lookup_keys(self.batch.source, unknown_keys), **key_to_id}
        idents = {
            ref.identifier
            for r in rels
            for ref in (r.from_ref, r.to_ref)
            if ref.identifier is not None
        }
        ident_to_id = self.writer.lookup_identifiers(idents) if idents else {}
        for ci in cis.created.values():
            for ident in ci.identifiers:
                ident_to_id.setdefault(ident, ci.id)
        return key_to_id, ident_to_id

    def _classes_of(
        self, pending: list[Pending], cis: _AppliedCIs
    ) -> tuple[dict[str, str], dict[str, str]]:
        """The class of every CI the relationships join that exists (id -> class), and
        which of those loaded from the store were merged into another (id -> survivor)."""
        classes = {ci_id: ci.ci_class for ci_id, ci in {**cis.existing, **cis.created}.items()}
        merged: dict[str, str] = {}
        missing = {i for f, t, _ in pending for i in (f, t) if i not in classes}
        if missing:
            for ci_id, ci in self.writer.load_cis(missing).items():
                if ci.merged_into is not None:
                    merged[ci_id] = ci.merged_into
                classes[ci_id] = ci.ci_class
        return classes, merged

    # -- sightings and staleness ---------------------------------------------------------

    def _sightings(
        self, cis: _AppliedCIs, rel_keys: list[RelationshipKey]
    ) -> tuple[Flips[ConfigurationItem], Flips[Relationship]]:
        writer, batch, provenance = self.writer, self.batch, self.provenance
        fresh_cis, fresh_rels = writer.record_sightings(
            batch.source, batch.run_id, provenance.at, cis.seen, rel_keys
        )
        stale_cis: list[str] = []
        stale_rels: list[RelationshipKey] = []
        if batch.complete:
            stale_cis, stale_rels = writer.sweep_unseen(
                batch.source, batch.run_id, self.r.stale_after_runs
            )
        return _flip(writer, provenance, fresh_cis, stale_cis, fresh_rels, stale_rels, cis.changed)


def _flip(
    writer: GraphWriter,
    provenance: Provenance,
    fresh_cis: list[str],
    stale_cis: list[str],
    fresh_rels: list[RelationshipKey],
    stale_rels: list[RelationshipKey],
    changed: Mapping[str, ConfigurationItem],
) -> tuple[Flips[ConfigurationItem], Flips[Relationship]]:
    """Set the stale flag of CIs and relationships; ``changed`` holds CIs this unit of work
    already changed (and has not reloaded)."""
    ci_flags = stale_flags(fresh_cis, stale_cis)
    ci_flips: Flips[ConfigurationItem] = Flips([], [], 0)
    if ci_flags:
        loaded = {
            **writer.load_cis([i for i in ci_flags if i not in changed]),
            **{i: changed[i] for i in ci_flags if i in changed},
        }
        ci_flips = flip_cis(ci_flags, loaded, provenance)
        writer.update_cis(ci_flips.updates)
    rel_flags = stale_flags(fresh_rels, stale_rels)
    rel_flips: Flips[Relationship] = Flips([], [], 0)
    if rel_flags:
        rel_flips = flip_relationships(
            rel_flags, writer.load_relationships(list(rel_flags)), provenance
        )
        writer.save_relationships([], rel_flips.updates)
    return ci_flips, rel_flips


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
