"""Asset sync with an ERP in GraphQL: the declared feeds (``erpSources``), the
reconciliation report (``erpReport``: ghost assets, unregistered devices, mismatches), a
sync run (``erpSync``) and write-back (``erpWriteBack``), over the services of
``servicegraph.collectors.erp`` (wired as ``services.erp_sync``, ``erp_write_back`` and
``erp_reports``).

Both mutations are dry runs unless the client asks otherwise (``dryRun: false``): a
mutation that writes the CMDB or the ERP must be asked to. Running either needs
``edit_cmdb``, the permission that writes CIs (an import is a write of the CMDB), dry run
or not: a dry run reads the ERP and takes the store's write lock. A live report dry-runs
the feed and needs it too; the stored report is a read.

Failures are GraphQL errors with a ``code``: ``BAD_USER_INPUT`` for an undeclared source
(``declared`` lists the declared ones), or a source without ``write_back``;
``INVALID_RECORDS`` when bad records refuse a sync (``count``, the first ``errors`` with
their origin and source field; nothing was written); ``ERP_UNAVAILABLE`` when the feed or
the write-back target cannot be read or written.

Lists that can be long (a plan's items, rejected rows, report entries) take their own
``limit``, so that the complexity estimate (``limits``) counts what is asked for; the
totals are counts beside them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON

from servicegraph.access.model import Permission
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.model import Conflict
from servicegraph.collectors.erp.records import FeedError, RowError
from servicegraph.collectors.erp.reports import (
    AssetReport,
    GhostAsset,
    Mismatch,
    UnregisteredDevice,
)
from servicegraph.collectors.erp.spec import SOURCE_PREFIX, ErpSource, location
from servicegraph.collectors.erp.sync import (
    FieldChange,
    KeptValue,
    PlannedCI,
    SyncRefused,
    SyncResult,
    UnknownSource,
)
from servicegraph.collectors.erp.writeback import WriteBackChange, WriteBackResult
from servicegraph.graphql.base import denial, mutation_field, query_field
from servicegraph.graphql.cmdb_types import CIType, load_ci
from servicegraph.graphql.context import Info
from servicegraph.graphql.errors import ConflictInfo

T = TypeVar("T")

# The argument is ``source`` to clients; not in Python, where field extensions take the
# parent value by that name.
SourceArg = Annotated[str, strawberry.argument(name="source", description="The feed's name.")]
OptionalSourceArg = Annotated[
    str | None,
    strawberry.argument(name="source", description="One feed's name; null: every feed."),
]

# rows a refused sync shows in its message and extensions (the count says how many more)
SHOWN_ROWS = 20
DEFAULT_LIMIT = 100


# -- values ---------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A value as JSON can carry it (dates as ISO text, enums as their value)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return str(value)


def _json(value: Any) -> JSON | None:
    shown = plain(value)
    return None if shown is None else JSON(shown)


def bounded(items: Sequence[T], limit: int) -> list[T]:
    """The first ``limit`` items; a negative limit is the client's mistake."""
    if limit < 0:
        raise GraphQLError(
            "limit: 0 or more", extensions={"code": "BAD_USER_INPUT", "field": "limit"}
        )
    return list(items[:limit])


# -- errors ---------------------------------------------------------------------------------


def refused_error(exc: SyncRefused, source: str) -> GraphQLError:
    rows = exc.errors[:SHOWN_ROWS]
    more = len(exc.errors) - len(rows)
    lines = "".join(f"\n  {e}" for e in rows) + (f"\n  ... and {more} more" if more else "")
    return GraphQLError(
        f"{len(exc.errors)} invalid record(s) from {source}, nothing was written:{lines}\n"
        "fix them in the ERP or the mapping, or run again with allowPartial: true",
        extensions={
            "code": "INVALID_RECORDS",
            "source": source,
            "count": len(exc.errors),
            "errors": [_row_json(e) for e in rows],
        },
    )


def _row_json(error: RowError) -> dict[str, str | None]:
    return {"origin": error.origin, "field": error.field, "message": error.message}


@contextmanager
def erp_errors(source: str, declared: Sequence[str]) -> Iterator[None]:
    """The ERP's failures as GraphQL errors with a code (``source`` as the client named
    it, ``declared``: the sources there are)."""
    try:
        yield
    except UnknownSource as exc:
        raise GraphQLError(
            str(exc),
            extensions={"code": "BAD_USER_INPUT", "field": "source", "declared": list(declared)},
        ) from exc
    except SyncRefused as exc:
        raise refused_error(exc, _recorded(source)) from exc
    except FeedError as exc:
        raise GraphQLError(
            f"the ERP feed {_recorded(source)} cannot be read or written now: {exc}",
            extensions={"code": "ERP_UNAVAILABLE", "source": _recorded(source)},
        ) from exc
    except ValidationFailed as exc:
        if exc.field is None or not exc.field.startswith("erp.sources."):
            raise  # the client's argument: DomainErrors names it
        # the source's declaration lacks what was asked of it (write_back)
        raise GraphQLError(
            str(exc),
            extensions={"code": "BAD_USER_INPUT", "field": "source", "setting": exc.field},
        ) from exc


def _recorded(source: str) -> str:
    return source if source.startswith(SOURCE_PREFIX) else f"{SOURCE_PREFIX}{source}"


def _require(info: Info, permission: Permission) -> None:
    error = denial(info.context.principal, permission)
    if error is not None:
        raise error


# -- sources --------------------------------------------------------------------------------


@strawberry.type(name="ErpSource", description="An ERP feed declared under erp.sources.")
class ErpSourceType:
    name: str = strawberry.field(description="As declared; recorded as the source erp:<name>.")
    source: str = strawberry.field(description="The source its data is recorded as: erp:<name>.")
    kind: str = strawberry.field(description="csv, xlsx, json, directory, http or tryton.")
    schedule: float = strawberry.field(
        description="Seconds between scheduled runs; 0: on demand only."
    )
    complete: bool = strawberry.field(
        description="The feed lists every asset: what it no longer lists goes stale."
    )
    allow_partial: bool = strawberry.field(
        description="Scheduled runs write the valid records when some are bad."
    )
    owns: list[str] = strawberry.field(description="Attributes the feed is put first for.")
    write_back: bool = strawberry.field(description="It declares a write-back.")
    where: str | None = strawberry.field(
        description="The file, directory or URL it reads (without credentials)."
    )

    @classmethod
    def of(cls, source: ErpSource) -> ErpSourceType:
        return cls(
            name=source.name,
            source=source.source_name,
            kind=source.kind,
            schedule=source.schedule_s,
            complete=source.complete,
            allow_partial=source.allow_partial,
            owns=list(source.owns),
            write_back=source.write_back is not None,
            where=location(source),
        )


# -- the report -----------------------------------------------------------------------------


@strawberry.type(
    name="ErpGhostAsset", description="An asset the ERP lists that discovery does not see."
)
class ErpGhostAssetType:
    ci_id: strawberry.ID
    source: str = strawberry.field(description="The ERP feed listing it (erp:<name>).")
    key: str = strawberry.field(description="Its ERP id.")
    last_discovered: dt.datetime | None = strawberry.field(
        description="When discovery last saw it; null: never."
    )

    @classmethod
    def of(cls, g: GhostAsset) -> ErpGhostAssetType:
        return cls(
            ci_id=strawberry.ID(g.ci_id),
            source=g.source,
            key=g.key,
            last_discovered=g.last_discovered,
        )

    @strawberry.field
    async def ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.ci_id))


@strawberry.type(
    name="ErpUnregisteredDevice", description="A device discovery sees that no ERP feed lists."
)
class ErpUnregisteredDeviceType:
    ci_id: strawberry.ID
    seen_by: list[str] = strawberry.field(description="The sources that saw it.")
    last_seen: dt.datetime | None
    serial_number: str | None

    @classmethod
    def of(cls, u: UnregisteredDevice) -> ErpUnregisteredDeviceType:
        return cls(
            ci_id=strawberry.ID(u.ci_id),
            seen_by=list(u.seen_by),
            last_seen=u.last_seen,
            serial_number=u.serial_number,
        )

    @strawberry.field
    async def ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.ci_id))


@strawberry.type(
    name="ErpMismatch", description="One asset, two stories: the ERP's and the CMDB's."
)
class ErpMismatchType:
    ci_id: strawberry.ID | None
    name: str
    key: str | None = strawberry.field(description="The ERP id, when the ERP's record is known.")
    field: str = strawberry.field(
        description="identifiers.serial_number, an attribute (model, firmware_revision) ..."
    )
    erp_value: JSON | None
    cmdb_value: JSON | None = strawberry.field(
        description="What the CMDB holds (for a serial claimed elsewhere: the CI holding it)."
    )
    detail: str

    @classmethod
    def of(cls, m: Mismatch) -> ErpMismatchType:
        return cls(
            ci_id=strawberry.ID(m.ci_id) if m.ci_id else None,
            name=m.name,
            key=m.key,
            field=m.field,
            erp_value=_json(m.erp_value),
            cmdb_value=_json(m.cmdb_value),
            detail=m.detail,
        )

    @strawberry.field
    async def ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.ci_id) if self.ci_id else None)


@strawberry.type(
    name="ErpReport",
    description="The ERP's asset register against what discovery sees (README: reports).",
)
class ErpReportType:
    source: str | None = strawberry.field(description="The one feed reported on; null: all.")
    live: bool = strawberry.field(description="The mismatches include a dry run of the feed.")
    erp_assets: int = strawberry.field(description="CIs the ERP feeds list.")
    discovered: int = strawberry.field(description="CIs of discoverable classes discovery saw.")
    ghost_count: int
    unregistered_count: int
    mismatch_count: int
    report: strawberry.Private[AssetReport]

    @classmethod
    def of(cls, report: AssetReport, *, live: bool) -> ErpReportType:
        return cls(
            source=report.source,
            live=live,
            erp_assets=report.erp_assets,
            discovered=report.discovered,
            ghost_count=len(report.ghosts),
            unregistered_count=len(report.unregistered),
            mismatch_count=len(report.mismatches),
            report=report,
        )

    @strawberry.field(description="Never-seen first, then by name.")
    def ghosts(self, limit: int = DEFAULT_LIMIT) -> list[ErpGhostAssetType]:
        return [ErpGhostAssetType.of(g) for g in bounded(self.report.ghosts, limit)]

    @strawberry.field(description="By name.")
    def unregistered(self, limit: int = DEFAULT_LIMIT) -> list[ErpUnregisteredDeviceType]:
        return [ErpUnregisteredDeviceType.of(u) for u in bounded(self.report.unregistered, limit)]

    @strawberry.field
    def mismatches(self, limit: int = DEFAULT_LIMIT) -> list[ErpMismatchType]:
        return [ErpMismatchType.of(m) for m in bounded(self.report.mismatches, limit)]


# -- a sync run -----------------------------------------------------------------------------


@strawberry.enum(name="ErpPlanAction", description="What a sync does to one CI.")
class ErpPlanAction(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"  # listed only when a stronger source keeps an ERP value out
    STALE = "stale"  # the feed no longer lists it
    FRESH = "fresh"  # listed again after going stale
    CONFLICT = "conflict"  # not applied: see its conflicts


@strawberry.type(name="ErpFieldChange")
class ErpFieldChangeType:
    field: str = strawberry.field(
        description="name, lifecycle, operational_state, stale, identifiers.<kind> or an attribute."
    )
    old: JSON | None
    new: JSON | None

    @classmethod
    def of(cls, c: FieldChange) -> ErpFieldChangeType:
        return cls(field=c.field, old=_json(c.old), new=_json(c.new))


@strawberry.type(
    name="ErpKeptValue", description="A value the ERP gives that a stronger source keeps out."
)
class ErpKeptValueType:
    field: str
    erp_value: JSON | None
    kept_value: JSON | None
    kept_by: str

    @classmethod
    def of(cls, k: KeptValue) -> ErpKeptValueType:
        return cls(
            field=k.field,
            erp_value=_json(k.erp_value),
            kept_value=_json(k.kept_value),
            kept_by=k.kept_by,
        )


@strawberry.type(name="ErpPlannedCI", description="What a dry run would do to one CI.")
class ErpPlannedCIType:
    action: ErpPlanAction
    ci_id: strawberry.ID | None = strawberry.field(
        description="The CI (for a CI it would create, the id it would get)."
    )
    name: str
    ci_class: str = strawberry.field(name="class")
    key: str | None = strawberry.field(
        description="The ERP id; null for a CI the run only marks stale or fresh."
    )
    origin: str | None = strawberry.field(description="The record: file:line, url#index ...")
    changes: list[ErpFieldChangeType]
    kept: list[ErpKeptValueType]
    conflicts: list[str]

    @classmethod
    def of(cls, item: PlannedCI) -> ErpPlannedCIType:
        return cls(
            action=ErpPlanAction(item.action),
            ci_id=strawberry.ID(item.ci_id) if item.ci_id else None,
            name=item.name,
            ci_class=item.ci_class,
            key=item.key,
            origin=item.origin,
            changes=[ErpFieldChangeType.of(c) for c in item.changes],
            kept=[ErpKeptValueType.of(k) for k in item.kept],
            conflicts=list(item.conflicts),
        )

    @strawberry.field(description="The CI as it is now (null for one the run would create).")
    async def ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.ci_id) if self.ci_id else None)


@strawberry.type(name="ErpRowError", description="A record refused; nothing of it is written.")
class ErpRowErrorType:
    origin: str = strawberry.field(description="file:line, url#index or model/id.")
    field: str | None = strawberry.field(description="The source field at fault.")
    message: str

    @classmethod
    def of(cls, e: RowError) -> ErpRowErrorType:
        return cls(origin=e.origin, field=e.field, message=e.message)


@strawberry.type(name="ErpSyncSummary", description="What the run did (a dry run: would do).")
class ErpSyncSummary:
    created: int
    updated: int
    unchanged: int
    marked_stale: int
    conflicts: int
    rejected: int
    history_entries: int

    @classmethod
    def of(cls, summary: Mapping[str, int]) -> ErpSyncSummary:
        return cls(
            created=summary.get("cis_created", 0),
            updated=summary.get("cis_updated", 0),
            unchanged=summary.get("cis_unchanged", 0),
            marked_stale=summary.get("cis_marked_stale", 0),
            conflicts=summary.get("conflicts", 0),
            rejected=summary.get("rejected", 0),
            history_entries=summary.get("history_entries", 0),
        )


@strawberry.type(name="ErpSyncResult", description="One sync run of an ERP feed.")
class ErpSyncResultType:
    source: str = strawberry.field(description="erp:<name>")
    run_id: str
    dry_run: bool
    written: bool = strawberry.field(description="Anything was written (never for a dry run).")
    records: int = strawberry.field(description="Records the feed gave.")
    complete: bool = strawberry.field(
        description="The run counted as the feed's whole inventory: what it did not list "
        "counts a missed run towards stale."
    )
    summary: ErpSyncSummary
    notes: list[str] = strawberry.field(description="What the reader found worth saying.")
    result: strawberry.Private[SyncResult]

    @classmethod
    def of(cls, result: SyncResult) -> ErpSyncResultType:
        return cls(
            source=result.source,
            run_id=result.run_id,
            dry_run=result.dry_run,
            written=result.written,
            records=result.records,
            complete=result.complete,
            summary=ErpSyncSummary.of(result.summary),
            notes=list(result.notes),
            result=result,
        )

    @strawberry.field(
        description="A dry run's plan: every CI it would touch (unchanged ones only in the "
        "summary); empty for a real run."
    )
    def items(self, limit: int = DEFAULT_LIMIT) -> list[ErpPlannedCIType]:
        return [ErpPlannedCIType.of(i) for i in bounded(self.result.items, limit)]

    @strawberry.field(description="Records refused (summary.rejected counts them all).")
    def rejected(self, limit: int = DEFAULT_LIMIT) -> list[ErpRowErrorType]:
        return [ErpRowErrorType.of(e) for e in bounded(self.result.rejected, limit)]

    @strawberry.field(
        description="Reconciliation conflicts recorded (a dry run: found), never resolved "
        "by overwriting; the rows in `rejected` are recorded as invalid_record conflicts "
        "and not repeated here."
    )
    def conflicts(self, limit: int = DEFAULT_LIMIT) -> list[ConflictInfo]:
        found: list[Conflict] = self.result.conflicts
        return [ConflictInfo.of(c) for c in bounded(found, limit)]


# -- write-back -----------------------------------------------------------------------------


@strawberry.type(name="ErpWriteBackChange", description="One ERP field write-back sets.")
class ErpWriteBackChangeType:
    key: str = strawberry.field(description="The ERP id.")
    ci_id: strawberry.ID
    name: str
    field: str = strawberry.field(description="The ERP's field.")
    old: JSON | None = strawberry.field(description="What the ERP holds; null: nothing yet.")
    new: JSON | None

    @classmethod
    def of(cls, c: WriteBackChange) -> ErpWriteBackChangeType:
        return cls(
            key=c.key,
            ci_id=strawberry.ID(c.ci_id),
            name=c.name,
            field=c.field,
            old=_json(c.old),
            new=_json(c.new),
        )

    @strawberry.field
    async def ci(self, info: Info) -> CIType | None:
        return await load_ci(info, str(self.ci_id))


@strawberry.type(name="ErpWriteBackResult", description="One write-back run to an ERP.")
class ErpWriteBackResultType:
    source: str = strawberry.field(description="erp:<name>")
    dry_run: bool
    assets: int = strawberry.field(description="Assets of the source considered.")
    written: int = strawberry.field(description="ERP records written (0 for a dry run).")
    change_count: int = strawberry.field(description="Fields that differ, in all.")
    result: strawberry.Private[WriteBackResult]

    @classmethod
    def of(cls, result: WriteBackResult) -> ErpWriteBackResultType:
        return cls(
            source=result.source,
            dry_run=result.dry_run,
            assets=result.assets,
            written=result.written,
            change_count=len(result.changes),
            result=result,
        )

    @strawberry.field(description="Only fields whose value differs from the ERP's, by key.")
    def changes(self, limit: int = DEFAULT_LIMIT) -> list[ErpWriteBackChangeType]:
        return [ErpWriteBackChangeType.of(c) for c in bounded(self.result.changes, limit)]


# -- roots ----------------------------------------------------------------------------------


@strawberry.type
class ErpQuery:
    @query_field(description="The ERP feeds declared under erp.sources, by name.")
    def erp_sources(self, info: Info) -> list[ErpSourceType]:
        sources = info.context.services.erp_sync.sources
        return [ErpSourceType.of(sources[name]) for name in sorted(sources)]

    @query_field(
        description="Ghost assets (listed by the ERP, not seen by discovery), unregistered "
        "devices (seen, listed by no feed) and mismatches, over every feed or one (`source`). "
        "`live` also dry-runs that feed (it reads the ERP; needs edit_cmdb) for the values "
        "only the ERP's records show."
    )
    async def erp_report(
        self, info: Info, name: OptionalSourceArg = None, live: bool = False
    ) -> ErpReportType:
        reports = info.context.services.erp_reports
        with erp_errors(name or "", sorted(reports.sync.sources)):
            if live:
                _require(info, Permission.EDIT_CMDB)
                # a dry run: the same unit of work as a sync, rolled back, in the writer
                report = await info.context.write(reports.report, name, live=True)
            else:
                report = await asyncio.to_thread(reports.report, name)
        return ErpReportType.of(report, live=live)


@strawberry.type
class ErpMutation:
    @mutation_field(
        Permission.EDIT_CMDB,
        description="Read an ERP feed into the CMDB as the source erp:<name>. A dry run "
        "unless `dryRun: false`: it tells what would change and writes nothing. Bad records "
        "refuse a real run (INVALID_RECORDS) unless `allowPartial`, which writes the valid "
        "ones and records the others as invalid_record conflicts.",
    )
    async def erp_sync(
        self, info: Info, name: SourceArg, dry_run: bool = True, allow_partial: bool = False
    ) -> ErpSyncResultType:
        sync = info.context.services.erp_sync
        with erp_errors(name, sorted(sync.sources)):
            result = await info.context.write(
                sync.sync, name, dry_run=dry_run, allow_partial=allow_partial
            )
        return ErpSyncResultType.of(result)

    @mutation_field(
        Permission.EDIT_CMDB,
        description="Send what the CMDB knows better to the ERP (the source's write_back "
        "fields), only values that differ. A dry run unless `dryRun: false`.",
    )
    async def erp_write_back(
        self, info: Info, name: SourceArg, dry_run: bool = True
    ) -> ErpWriteBackResultType:
        write_back = info.context.services.erp_write_back
        with erp_errors(name, sorted(write_back.sources)):
            # it writes the ERP, not the store: no writer needed, but not on the event loop
            result = await asyncio.to_thread(write_back.run, name, dry_run=dry_run)
        return ErpWriteBackResultType.of(result)
