"""Provenance: when, from which source, by whom and in which run the graph is changed.

One unit of work (a reconciled batch, a merge, a stale sweep) has one provenance, stamped
on every history entry and conflict it records. The pure steps of reconciliation take it as
plain data, so they build complete records without reaching for a clock or a context.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from servicegraph.cmdb.identifiers import Identifier
from servicegraph.cmdb.model import Conflict, ConflictKind, HistoryEntry, HistoryKind


@dataclass(frozen=True, slots=True)
class Provenance:
    at: dt.datetime
    source: str
    actor: str | None = None
    run_id: str | None = None  # the batch's run; None for manual operations

    def entry(
        self,
        ci_id: str,
        kind: HistoryKind,
        *,
        field: str | None = None,
        old: Any = None,
        new: Any = None,
        other_ci_id: str | None = None,
    ) -> HistoryEntry:
        # Explicit parameters instead of **kwargs: one entry per change, so this is hot.
        return HistoryEntry(
            at=self.at,
            ci_id=ci_id,
            kind=kind,
            field=field,
            old=old,
            new=new,
            source=self.source,
            actor=self.actor,
            run_id=self.run_id,
            other_ci_id=other_ci_id,
        )

    def conflict(
        self,
        kind: ConflictKind,
        item: str,
        detail: str,
        *,
        identifier: Identifier | None = None,
        ci_id: str | None = None,
        other_ci_id: str | None = None,
    ) -> Conflict:
        return Conflict(
            kind=kind,
            source=self.source,
            item=item,
            identifier=identifier,
            ci_id=ci_id,
            other_ci_id=other_ci_id,
            detail=detail,
            detected_at=self.at,
            run_id=self.run_id,
        )
