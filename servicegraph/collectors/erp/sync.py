"""One ERP sync run: read the feed, map its records, reconcile them as the source
``erp:<name>``, or show what that would do.

- Every record is read, mapped and validated before anything is written. By default one
  bad record refuses the run (``SyncRefused`` lists every bad row with its origin and the
  source field), as ``import`` does; ``allow_partial`` writes the valid ones and records
  the others as ``invalid_record`` conflicts in the same unit of work.
- A run is *complete* (what the feed no longer lists counts a missed run, and is marked
  stale after ``stale_after_runs``) only when the source says its feed is its whole
  inventory, the feed was read to the end and no record was left out: a CI of a rejected
  row must not count as gone from the ERP.
- Conflicts (a serial the ERP gives to one asset already belongs to another CI) are
  recorded and reported, never resolved by overwriting (``cmdb.reconciliation``).
- A dry run (``plan``) runs the same unit of work and rolls it back, then tells per CI
  and attribute what would be created, changed, kept by a stronger source or marked stale.
- A replay of the same feed writes nothing: reconciliation finds nothing to change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from servicegraph.cmdb.errors import CmdbError, ValidationErrors, ValidationFailed
from servicegraph.cmdb.model import (
    ConfigurationItem,
    Conflict,
    ConflictKind,
    HistoryEntry,
    HistoryKind,
    utcnow,
)
from servicegraph.cmdb.observation import ObservationBatch
from servicegraph.cmdb.precedence import SourcePrecedence
from servicegraph.cmdb.reconciliation import Preview, Reconciler, Validated
from servicegraph.collectors.erp.feeds import Feed, Progress, open_feed
from servicegraph.collectors.erp.mapping import map_records, source_field_of
from servicegraph.collectors.erp.records import FeedRead, RowError
from servicegraph.collectors.erp.spec import ErpSource

Action = Literal["create", "update", "unchanged", "stale", "fresh", "conflict"]


class UnknownSource(CmdbError):
    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = list(known)
        listed = ", ".join(known) or "none: declare one under erp.sources in the settings"
        super().__init__(f"no ERP source '{name}'; declared: {listed}")


class SyncRefused(CmdbError):
    """Bad records refused the run; nothing was written."""

    def __init__(self, source: str, errors: Sequence[RowError]) -> None:
        self.errors = list(errors)
        shown = "\n".join(f"  {e}" for e in self.errors[:20])
        more = f"\n  ... and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
        super().__init__(
            f"{len(self.errors)} invalid record(s) from {source}, nothing was written:\n"
            f"{shown}{more}\nfix them in the ERP or the mapping, or allow a partial run "
            "(the valid rows written, these recorded as invalid_record conflicts)"
        )


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str  # name, lifecycle, operational_state, identifiers.<kind>, an attribute
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class KeptValue:
    """A value the ERP gives that a stronger source's value keeps out."""

    field: str
    erp_value: Any
    kept_value: Any
    kept_by: str


@dataclass(frozen=True)
class PlannedCI:
    action: Action
    ci_id: str | None
    name: str
    ci_class: str
    key: str | None  # the ERP id; None for a CI the run only marks stale or fresh
    origin: str | None
    changes: list[FieldChange] = field(default_factory=list)
    kept: list[KeptValue] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SyncResult:
    source: str  # the source name as recorded: erp:<name>
    run_id: str
    dry_run: bool
    records: int  # records the feed gave
    complete: bool  # the stale sweep ran
    summary: dict[str, int]
    rejected: list[RowError]
    conflicts: list[Conflict]
    written: bool
    # the dry run: every CI the run would touch (unchanged ones only as counts)
    items: list[PlannedCI] = field(default_factory=list)
    notes: tuple[str, ...] = ()


FeedOpener = Callable[[ErpSource], Feed]


class ErpSync:
    def __init__(
        self,
        reconciler: Reconciler,
        sources: Mapping[str, ErpSource],
        *,
        open_feed: FeedOpener = open_feed,
    ) -> None:
        self.reconciler = reconciler
        self.sources = dict(sources)
        self._open_feed = open_feed

    def source(self, name: str) -> ErpSource:
        found = self.sources.get(name.removeprefix("erp:"))
        if found is None:
            raise UnknownSource(name, sorted(self.sources))
        return found

    def read(self, source: ErpSource, progress: Progress | None = None) -> FeedRead:
        """The feed's records (raises FeedError when the ERP cannot be read)."""
        return self._open_feed(source).read(progress)

    def sync(
        self,
        name: str,
        *,
        dry_run: bool = False,
        allow_partial: bool = False,
        progress: Progress | None = None,
        now: dt.datetime | None = None,
    ) -> SyncResult:
        source = self.source(name)
        read = self.read(source, progress)
        batch, rejected, validated = self._batch(source, read, now or utcnow())
        if rejected and not allow_partial and not dry_run:
            raise SyncRefused(source.source_name, rejected)
        if dry_run:
            return self._plan(source, batch, read, rejected, allow_partial, validated)
        conflicts = [_rejection(source, batch, e) for e in rejected]
        report = self.reconciler.apply(
            batch, on_conflict="record", rejected=conflicts, validated=validated
        )
        return SyncResult(
            source=source.source_name,
            run_id=batch.run_id,
            dry_run=False,
            records=len(read.records),
            complete=batch.complete,
            summary={
                **report.summary(),
                "conflicts": len(report.conflicts) + len(conflicts),
                "rejected": len(rejected),
            },
            rejected=rejected,
            conflicts=[*report.conflicts, *conflicts],
            written=True,
            notes=read.notes,
        )

    # -- steps ---------------------------------------------------------------------------

    def _batch(
        self, source: ErpSource, read: FeedRead, at: dt.datetime
    ) -> tuple[ObservationBatch, list[RowError], Validated]:
        """The valid records as one batch, validated as reconciliation validates, and
        every refused one (with the source field the user knows)."""
        mapped = map_records(source, read.records)
        rejected = [*read.errors, *mapped.errors]
        observations = mapped.observations
        while True:
            batch = ObservationBatch(
                source=source.source_name,
                cis=observations,
                complete=source.complete and read.complete and not rejected,
                observed_at=at,
            )
            try:
                validated = self.reconciler.validate(batch)
            except ValidationErrors as exc:
                invalid = [_row_error(source, e) for e in exc.errors]
            except ValidationFailed as exc:
                invalid = [_row_error(source, exc)]
            else:
                rejected.sort(key=_origin_order)
                return batch, rejected, validated
            # the rest validated again: rare (a partial run) and always right
            refused = {e.origin for e in invalid}
            observations = [o for o in observations if o.origin not in refused]
            rejected.extend(invalid)

    def _plan(
        self,
        source: ErpSource,
        batch: ObservationBatch,
        read: FeedRead,
        rejected: list[RowError],
        allow_partial: bool,
        validated: Validated,
    ) -> SyncResult:
        preview = self.reconciler.preview(batch, validated=validated)
        items = plan_items(
            batch,
            preview,
            self.reconciler.precedence,
            others=self.reconciler.store.get_cis(_touched_elsewhere(batch, preview)),
        )
        return SyncResult(
            source=source.source_name,
            run_id=batch.run_id,
            dry_run=True,
            records=len(read.records),
            complete=batch.complete,
            summary={**preview.report.summary(), "rejected": len(rejected)},
            rejected=rejected,
            conflicts=preview.report.conflicts,
            written=False,
            items=items,
            notes=(
                *read.notes,
                *(
                    ()
                    if not rejected or allow_partial
                    else ("a real run would write nothing: fix the rows or allow a partial run",)
                ),
            ),
        )


def _origin_order(error: RowError) -> tuple[str, int]:
    # "file.csv:17" sorts by file, then line as a number
    head, _, tail = error.origin.rpartition(":")
    return (head, int(tail)) if tail.isdigit() else (error.origin, 0)


def _row_error(source: ErpSource, failure: ValidationFailed) -> RowError:
    column = source_field_of(source, failure)
    where = failure.field if column is None else f"{column}"
    message = failure.reason
    if column is not None and failure.field and column != failure.field:
        message = f"{message} (mapped to {failure.field})"
    return RowError(failure.item or source.source_name, where, message)


def _rejection(source: ErpSource, batch: ObservationBatch, error: RowError) -> Conflict:
    detail = f"field '{error.field}': {error.message}" if error.field else error.message
    return Conflict(
        kind=ConflictKind.INVALID_RECORD,
        source=source.source_name,
        item=error.origin,
        identifier=None,
        ci_id=None,
        other_ci_id=None,
        detail=detail,
        detected_at=batch.observed_at,
        run_id=batch.run_id,
    )


# -- the dry run's plan: pure over the preview --------------------------------------------


def _touched_elsewhere(batch: ObservationBatch, preview: Preview) -> list[str]:
    """CIs the run flips stale or fresh without the batch naming them."""
    reported = {ci_id for ci_id in preview.report.ci_ids if ci_id is not None}
    return sorted(
        {
            e.ci_id
            for e in preview.history
            if e.kind in (HistoryKind.STALE, HistoryKind.FRESH) and e.ci_id not in reported
        }
    )


def plan_items(
    batch: ObservationBatch,
    preview: Preview,
    precedence: SourcePrecedence,
    *,
    others: Mapping[str, ConfigurationItem],
) -> list[PlannedCI]:
    """Per CI, what the run does: its history entries read back as changes, the values
    precedence keeps out (which no history records), its conflicts."""
    by_ci: dict[str, list[HistoryEntry]] = {}
    for entry in preview.history:
        by_ci.setdefault(entry.ci_id, []).append(entry)
    conflicts: dict[str, list[str]] = {}
    for conflict in preview.report.conflicts:
        conflicts.setdefault(conflict.item, []).append(f"{conflict.kind}: {conflict.detail}")
    items: list[PlannedCI] = []
    seen: set[str] = set()
    for obs, prepared, ci_id in zip(
        batch.cis, preview.prepared, preview.report.ci_ids, strict=True
    ):
        label = obs.origin or obs.key or ""
        if ci_id is None:
            items.append(
                PlannedCI(
                    "conflict",
                    None,
                    obs.name or obs.key or "",
                    obs.ci_class,
                    obs.key,
                    obs.origin,
                    conflicts=conflicts.get(label, []),
                )
            )
            continue
        if ci_id in seen:
            continue
        seen.add(ci_id)
        entries = by_ci.get(ci_id, [])
        before = preview.before.get(ci_id)
        kept = _kept(before, prepared.attributes, batch.source, precedence)
        created = any(e.kind is HistoryKind.CREATED for e in entries)
        changes = [] if created else [ch for e in entries if (ch := _change(e)) is not None]
        action: Action = "create" if created else "update" if changes else "unchanged"
        if any(e.kind is HistoryKind.FRESH for e in entries) and action == "unchanged":
            action = "fresh"
        if action == "unchanged" and not kept and label not in conflicts:
            continue
        items.append(
            PlannedCI(
                action,
                ci_id,
                (before.name if before else obs.name) or obs.key or ci_id,
                obs.ci_class,
                obs.key,
                obs.origin,
                changes=changes,
                kept=kept,
                conflicts=conflicts.get(label, []),
            )
        )
    for ci_id, ci in others.items():
        flips = by_ci.get(ci_id, [])
        stale = any(e.kind is HistoryKind.STALE for e in flips)
        items.append(
            PlannedCI(
                "stale" if stale else "fresh",
                ci_id,
                ci.name,
                ci.ci_class,
                None,
                None,
                changes=[FieldChange("stale", not stale, stale)],
            )
        )
    return items


def _change(entry: HistoryEntry) -> FieldChange | None:
    kind = entry.kind
    if kind is HistoryKind.ATTRIBUTE:
        return FieldChange(entry.field or "", entry.old, entry.new)
    if kind is HistoryKind.NAME:
        return FieldChange("name", entry.old, entry.new)
    if kind is HistoryKind.LIFECYCLE:
        return FieldChange("lifecycle", entry.old, entry.new)
    if kind is HistoryKind.OPERATIONAL_STATE:
        return FieldChange("operational_state", entry.old, entry.new)
    if kind is HistoryKind.IDENTIFIER_ADDED:
        return FieldChange(f"identifiers.{entry.field}", None, entry.new)
    if kind in (HistoryKind.STALE, HistoryKind.FRESH):
        return FieldChange("stale", entry.old, entry.new)
    return None


def _kept(
    before: ConfigurationItem | None,
    observed: Mapping[str, Any],
    source: str,
    precedence: SourcePrecedence,
) -> list[KeptValue]:
    if before is None:
        return []
    kept: list[KeptValue] = []
    for name, value in observed.items():
        current = before.attributes.get(name)
        if value is None or value == current:
            continue
        owner = before.attribute_sources.get(name)
        if not precedence.may_override(name, source, owner):
            kept.append(KeptValue(name, value, current, owner or "?"))
    return kept


def dry_run_lines(result: SyncResult) -> list[str]:
    """The plan as text, one line per CI and one per field: what the CLI prints."""
    lines: list[str] = []
    for item in result.items:
        head = f"{item.action:<9} {item.name} ({item.ci_class})"
        if item.key:
            head += f" key {item.key}"
        if item.origin:
            head += f" [{item.origin}]"
        lines.append(head)
        lines.extend(f"    {c.field}: {_short(c.old)} -> {_short(c.new)}" for c in item.changes)
        lines.extend(
            f"    {k.field}: ERP says {_short(k.erp_value)}, kept {_short(k.kept_value)} "
            f"(kept by {k.kept_by})"
            for k in item.kept
        )
        lines.extend(f"    conflict: {c}" for c in item.conflicts)
    return lines


def _short(value: Any) -> str:
    text = "-" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
