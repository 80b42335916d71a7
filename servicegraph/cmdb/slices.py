"""A batch applied in bounded units of work (``Reconciler.apply_in_slices``).

``Reconciler.apply`` holds a whole batch in one unit of work: right for SQLite, but on
Neo4j one transaction holding every CI, relationship and history entry of a 300,000-CI
load runs into the server's transaction memory ceiling. Here the same steps run as:

1. **plan** (one unit that only reads): look up what the store knows of the whole batch's
   keys, identifiers, matched CIs, relationship ends and relationships, then decide
   everything in memory with the pure functions ``apply`` uses (``identify``,
   ``new_ci``, ``merge_observation``, ``resolve_ends``, ``check_ends``,
   ``merge_relationships``). Identification therefore sees the whole batch at once, as in
   ``apply``: a record matching a CI that another record of the batch creates is decided
   exactly as one unit decides it, whichever slice each lands in. Every conflict and every
   relationship error is known here, before anything is written;
2. **CIs**, at most ``slice_size`` CIs a unit: each CI with every record of the batch that
   targets it, its identifiers, the source's keys, its sighting, its stale flag and its
   history, so a CI is written whole in one unit or not at all;
3. **relationships**, at most ``slice_size`` a unit, each with its sighting, stale flag and
   history (both ends exist by now);
4. **conflicts**, at most ``slice_size`` a unit;
5. for a complete source, the **stale sweep**, after every sighting of the run (they all
   carry the one run id), in units of at most ``slice_size`` of the items the run did not
   see, each with the flags and history of those it marks stale.

The plan reads under the write lock but writes nothing; between units other writers may
run. What that costs is documented on ``Reconciler.apply_in_slices``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

from servicegraph.cmdb.context import current_change_context
from servicegraph.cmdb.errors import ReconciliationConflicts, ValidationErrors
from servicegraph.cmdb.identification import (
    Identification,
    check_ends,
    identify,
    match,
    resolve_ends,
)
from servicegraph.cmdb.identifiers import Identifier
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
    RelationshipKey,
)
from servicegraph.cmdb.observation import ObservationBatch
from servicegraph.cmdb.ports import GraphWriter
from servicegraph.cmdb.provenance import Provenance
from servicegraph.cmdb.validation import PreparedCI, PreparedRelationship

if TYPE_CHECKING:
    from servicegraph.cmdb.reconciliation import ConflictPolicy, Reconciler, ReconcileReport

T = TypeVar("T")

# progress(records done, records in all): called after every committed unit
Progress = Callable[[int, int], None]


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive pieces of at most ``size`` (none for no items)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class CIPlan:
    """What the batch does to its CIs, decided in memory over the whole batch."""

    decided: Identification
    existing: dict[str, ConfigurationItem]  # the matched CIs as loaded, with survivors
    created: dict[str, ConfigurationItem] = field(default_factory=dict)
    changed: dict[str, ConfigurationItem] = field(default_factory=dict)
    history: dict[str, list[HistoryEntry]] = field(default_factory=dict)  # by CI id
    seen: list[str] = field(default_factory=list)  # in batch order, repeats kept
    added_identifiers: dict[str, list[Identifier]] = field(default_factory=dict)
    key_to_id: dict[str, str] = field(default_factory=dict)
    skipped_keys: dict[str, str] = field(default_factory=dict)

    def touched(self) -> list[str]:
        """The CIs the batch applies records to, in order of first appearance."""
        return list(dict.fromkeys(self.seen))


@dataclass
class RelationshipPlan:
    keys: list[RelationshipKey]  # the relationships the batch reported (resolved)
    merge: RelationshipMerge
    conflicts: list[Conflict]
    # those with an end the batch creates: the store cannot hold them, nor their sightings
    first_seen: set[RelationshipKey] = field(default_factory=set)


@dataclass
class Totals:
    """What the units wrote, summed for the report."""

    history: int = 0
    cis_marked_stale: int = 0
    relationships_marked_stale: int = 0


class SlicedRun:
    """One batch: planned in one reading unit, written in bounded units (module doc)."""

    def __init__(
        self,
        reconciler: Reconciler,
        batch: ObservationBatch,
        *,
        slice_size: int,
        progress: Progress | None = None,
    ) -> None:
        if slice_size < 1:
            raise ValueError("slice_size must be at least 1")
        self.r = reconciler
        self.batch = batch
        self.size = slice_size
        self.progress = progress
        self.provenance = Provenance(
            at=batch.observed_at,
            source=batch.source,
            actor=current_change_context().actor,
            run_id=batch.run_id,
        )
        self.totals = Totals()
        self.done = 0  # records committed
        self.total = 0

    def run(
        self,
        prepared: list[PreparedCI],
        rels: list[PreparedRelationship],
        *,
        on_conflict: ConflictPolicy,
        rejected: Sequence[Conflict],
    ) -> ReconcileReport:
        from servicegraph.cmdb.reconciliation import ReconcileReport

        with self.r.store.write() as reader:  # reads only: nothing to commit
            cis = self._plan_cis(reader, prepared)
            relationships = self._plan_relationships(reader, rels, cis)
        conflicts = [*cis.decided.conflicts, *relationships.conflicts]
        if conflicts and on_conflict == "fail":
            raise ReconciliationConflicts(list(conflicts))
        to_record = [*conflicts, *rejected]
        touched = cis.touched()
        self.total = len(touched) + len(relationships.keys) + len(to_record)
        self._report_progress()
        for ids in chunks(touched, self.size):
            with self._unit(len(ids)) as writer:
                self._write_cis(writer, cis, ids)
        for keys in chunks(relationships.keys, self.size):
            with self._unit(len(keys)) as writer:
                self._write_relationships(writer, relationships, keys)
        for part in chunks(to_record, self.size):
            with self._unit(len(part)) as writer:
                writer.add_conflicts(part)
        if self.batch.complete:
            finished = False
            while not finished:
                with self._unit(0) as writer:
                    finished = self._sweep(writer, cis)
        merged = relationships.merge
        return ReconcileReport(
            source=self.batch.source,
            run_id=self.batch.run_id,
            cis_created=len(cis.created),
            cis_updated=len(cis.changed),
            cis_unchanged=len(touched) - len(cis.changed) - len(cis.created),
            relationships_created=merged.created,
            relationships_updated=merged.updated,
            relationships_unchanged=merged.unchanged,
            history_entries=self.totals.history,
            cis_marked_stale=self.totals.cis_marked_stale,
            relationships_marked_stale=self.totals.relationships_marked_stale,
            conflicts=conflicts,
            ci_ids=cis.decided.targets,
        )

    @contextmanager
    def _unit(self, records: int) -> Iterator[GraphWriter]:
        """A unit of work of ``records`` records, counted once it commits."""
        with self.r.store.write() as writer:
            yield writer
        self.done += records
        self._report_progress()

    def _report_progress(self) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total)

    # -- the plan ------------------------------------------------------------------------

    def _plan_cis(self, reader: GraphWriter, prepared: list[PreparedCI]) -> CIPlan:
        """``_BatchRun._apply_cis`` without its writes."""
        from servicegraph.cmdb.reconciliation import _BatchRun

        lookups = _BatchRun(self.r, reader, self.batch)
        known = lookups._lookup(prepared)
        matched = match(prepared, known)
        existing = lookups._load_matched(matched)
        known = replace(known, cis=existing)
        decided = identify(prepared, matched, known, self.provenance)
        plan = CIPlan(decided, existing)
        for index, (p, ci_id, own) in enumerate(
            zip(prepared, decided.targets, decided.own_identifiers, strict=True)
        ):
            if ci_id is None:
                if p.obs.key is not None:
                    plan.skipped_keys[p.obs.key] = p.label
                continue
            if p.obs.key is not None:
                plan.key_to_id[p.obs.key] = ci_id
            plan.seen.append(ci_id)
            if index in decided.created:
                ci, entry = new_ci(p, ci_id, own, self.provenance)
                plan.created[ci_id] = ci
                plan.history.setdefault(ci_id, []).append(entry)
                continue
            current = plan.changed.get(ci_id) or existing[ci_id]
            updated, entries = merge_observation(
                current, p, own, self.r.precedence, self.provenance
            )
            if entries:
                plan.history.setdefault(ci_id, []).extend(entries)
            if updated is not current:
                plan.changed[ci_id] = updated
        for ci_id, ci in plan.changed.items():
            before = existing[ci_id].identifiers
            added = [ident for ident in ci.identifiers if ident not in before]
            if added:
                plan.added_identifiers[ci_id] = added
        return plan

    def _plan_relationships(
        self, reader: GraphWriter, rels: list[PreparedRelationship], cis: CIPlan
    ) -> RelationshipPlan:
        """``_BatchRun._apply_relationships`` without its writes: the store's answers,
        with what the batch's CIs will add to it."""
        if not rels:
            return RelationshipPlan([], RelationshipMerge(), [])
        source = self.batch.source
        key_to_id: dict[str, str] = cis.key_to_id
        unknown_keys = {
            ref.key
            for r in rels
            for ref in (r.from_ref, r.to_ref)
            if ref.key is not None and ref.key not in key_to_id
        }
        if unknown_keys:
            key_to_id = {**reader.lookup_keys(source, unknown_keys), **key_to_id}
        idents = {ref.identifier for r in rels for ref in (r.from_ref, r.to_ref) if ref.identifier}
        ident_to_id = reader.lookup_identifiers(idents) if idents else {}
        # the identifiers the batch gives its CIs, as the store will hold them
        for ci_id, added in cis.added_identifiers.items():
            for ident in added:
                ident_to_id.setdefault(ident, ci_id)
        for ci in cis.created.values():
            for ident in ci.identifiers:
                ident_to_id.setdefault(ident, ci.id)
        ends = resolve_ends(rels, key_to_id, ident_to_id, cis.skipped_keys, self.provenance)
        classes = {i: ci.ci_class for i, ci in {**cis.existing, **cis.created}.items()}
        merged: dict[str, str] = {}
        missing = {i for f, t, _ in ends.pending for i in (f, t) if i not in classes}
        if missing:
            for ci_id, ci in reader.load_cis(missing).items():
                if ci.merged_into is not None:
                    merged[ci_id] = ci.merged_into
                classes[ci_id] = ci.ci_class
        resolved, errors = check_ends(ends.pending, classes, merged, self.r.rules)
        if ends.errors or errors:
            raise ValidationErrors([*ends.errors, *errors])
        # A relationship with an end the batch creates cannot be stored yet: a first load
        # asks the store about none of its relationships.
        first_seen = {k for k in resolved if k[0] in cis.created or k[2] in cis.created}
        current = reader.load_relationships([k for k in resolved if k not in first_seen])
        observed = {key: r.attributes for key, r in resolved.items()}
        merge = merge_relationships(observed, current, self.provenance)
        return RelationshipPlan(list(resolved), merge, ends.conflicts, first_seen)

    # -- the units -----------------------------------------------------------------------

    def _write_cis(self, writer: GraphWriter, plan: CIPlan, ids: Sequence[str]) -> None:
        """The CIs ``ids`` whole: records, identifiers, keys, sightings, flags, history."""
        from servicegraph.cmdb.reconciliation import _flip

        wanted = set(ids)
        writer.insert_cis([plan.created[i] for i in ids if i in plan.created])
        writer.update_cis([plan.changed[i] for i in ids if i in plan.changed])
        writer.add_identifiers(
            [(ident, i) for i in ids for ident in plan.added_identifiers.get(i, ())]
        )
        keys = [(k, i) for k, i in plan.decided.keys_to_set if i in wanted]
        if keys:
            writer.set_keys(self.batch.source, keys)
        batch, provenance = self.batch, self.provenance
        seen = [i for i in plan.seen if i in wanted]
        first = [i for i in seen if i in plan.created]
        writer.record_first_sightings(batch.source, batch.run_id, provenance.at, first, [])
        seen = [i for i in seen if i not in plan.created]
        fresh, _ = writer.record_sightings(batch.source, batch.run_id, provenance.at, seen, [])
        flips, _ = _flip(writer, provenance, fresh, [], [], [], plan.changed)
        history = [e for i in ids for e in plan.history.get(i, ())]
        self._append(writer, [*history, *flips.history])
        self.totals.cis_marked_stale += flips.marked_stale

    def _write_relationships(
        self, writer: GraphWriter, plan: RelationshipPlan, keys: Sequence[RelationshipKey]
    ) -> None:
        from servicegraph.cmdb.reconciliation import _flip

        wanted = set(keys)
        merge = plan.merge
        writer.save_relationships(
            [r for r in merge.new if r.key in wanted], [r for r in merge.changed if r.key in wanted]
        )
        batch, provenance = self.batch, self.provenance
        first = [k for k in keys if k in plan.first_seen]
        writer.record_first_sightings(batch.source, batch.run_id, provenance.at, [], first)
        seen = [k for k in keys if k not in plan.first_seen]
        _, fresh = writer.record_sightings(batch.source, batch.run_id, provenance.at, [], seen)
        _, flips = _flip(writer, provenance, [], [], fresh, [], {})
        history = [e for e in merge.history if (e.ci_id, e.field, e.other_ci_id) in wanted]
        self._append(writer, [*history, *flips.history])
        self.totals.relationships_marked_stale += flips.marked_stale

    def _sweep(self, writer: GraphWriter, plan: CIPlan) -> bool:
        """A part of the stale sweep of a complete source, after every sighting of the
        run: at most ``slice_size`` items, with the flags and history of those that became
        stale. Returns whether the sweep is finished."""
        from servicegraph.cmdb.reconciliation import _flip

        batch = self.batch
        stale_cis, stale_rels, finished = writer.sweep_unseen_part(
            batch.source, batch.run_id, self.r.stale_after_runs, self.size
        )
        ci_flips, rel_flips = _flip(
            writer, self.provenance, [], stale_cis, [], stale_rels, plan.changed
        )
        self._append(writer, [*ci_flips.history, *rel_flips.history])
        self.totals.cis_marked_stale += ci_flips.marked_stale
        self.totals.relationships_marked_stale += rel_flips.marked_stale
        return finished

    def _append(self, writer: GraphWriter, history: list[HistoryEntry]) -> None:
        writer.append_history(history)
        self.totals.history += len(history)
