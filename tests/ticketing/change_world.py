"""The example site for the change analysis tests: its CIs imported into the real store of
the ``services`` fixture, a ChangeAnalysis over it, and changes built as records (saved
straight through the ticket store's unit when a test needs them stored)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from servicegraph.bootstrap import Services
from servicegraph.cmdb.importer import read_files
from servicegraph.ticketing.change_analysis import ChangeAnalysis
from servicegraph.ticketing.change_model import Change, ChangeRisk, ChangeStatus, FreezeWindow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
T0 = dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def change(
    number: int,
    ci_ids: Sequence[str],
    *,
    status: ChangeStatus = ChangeStatus.SCHEDULED,
    start: dt.datetime | None = T0,
    hours: float = 2,
    title: str | None = None,
) -> Change:
    return Change(
        id=f"chg-{number}",
        number=number,
        title=title or f"Change {number}",
        status=status,
        risk=ChangeRisk.LOW,
        created_at=T0 - 24 * HOUR,
        updated_at=T0 - 24 * HOUR,
        created_by="alice",
        ci_ids=list(ci_ids),
        planned_start=start,
        planned_end=None if start is None else start + hours * HOUR,
    )


def freeze(
    name: str,
    ci_ids: Sequence[str] = (),
    *,
    start: dt.datetime = T0,
    hours: float = 24,
    reason: str = "",
) -> FreezeWindow:
    return FreezeWindow(
        id=f"frz-{name.lower().replace(' ', '-')}",
        name=name,
        starts_at=start,
        ends_at=start + hours * HOUR,
        created_at=T0 - 48 * HOUR,
        created_by="alice",
        reason=reason,
        ci_ids=tuple(ci_ids),
    )


@dataclass
class Site:
    services: Services
    analysis: ChangeAnalysis
    ids: dict[str, str] = field(default_factory=dict)  # the example's keys -> CI ids

    def change(
        self,
        number: int,
        *keys: str,
        status: ChangeStatus = ChangeStatus.SCHEDULED,
        start: dt.datetime | None = T0,
        hours: float = 2,
        title: str | None = None,
    ) -> Change:
        """A change on the example's CIs, named by their keys."""
        ci_ids = [self.ids[k] for k in keys]
        return change(number, ci_ids, status=status, start=start, hours=hours, title=title)

    def save(self, *records: Change | FreezeWindow) -> None:
        with self.services.tickets.unit() as u:
            for record in records:
                if isinstance(record, Change):
                    u.save_change(record)
                else:
                    u.save_freeze_window(record)


def site_world(services: Services) -> Site:
    batch = read_files([EXAMPLES / "small-site.json"], services.classes, source="import")
    report = services.reconciler.apply(batch)
    ids = {str(obs.key): str(ci_id) for obs, ci_id in zip(batch.cis, report.ci_ids, strict=True)}
    assert all(report.ci_ids)
    analysis = ChangeAnalysis(services.impact, services.store, services.tickets)
    return Site(services, analysis, ids)
