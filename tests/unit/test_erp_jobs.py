"""ERP feeds on their schedule: one job entry per scheduled feed, for the embedded
scheduler and for Celery beat, and the job itself runs a sync."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from servicegraph import tasks
from servicegraph.bootstrap import Services
from servicegraph.config import Settings
from servicegraph.runtime import jobs


def declaration(path: Path, schedule: float) -> dict[str, object]:
    return {
        "kind": "csv",
        "path": str(path),
        "schedule": schedule,
        "key": "InventoryNo",
        "class": "network_device",
        "fields": {"name": "Name", "attributes.cost_centre": "CostCenter"},
    }


def test_each_scheduled_feed_is_a_job_that_syncs(
    tmp_path: Path, make_services: Callable[..., Services]
) -> None:
    export = tmp_path / "assets.csv"
    export.write_text("InventoryNo;Name;CostCenter\nINV-1;sw-1;CC-1\nINV-2;sw-2;CC-2\n")
    services = make_services(
        erp={
            "sources": {
                "hourly": declaration(export, 3600),
                "manual": declaration(export, 0),
            }
        }
    )
    entries = jobs.erp_jobs(services)
    assert {name: interval for name, (interval, _) in entries.items()} == {
        "erp_sync:hourly": 3600.0
    }
    _, job = entries["erp_sync:hourly"]
    result = job(services)
    assert result["cis_created"] == 2 and result["records"] == 2 and result["complete"]
    assert job(services)["history_entries"] == 0  # the next run finds nothing to change


def test_celery_beat_has_an_entry_per_scheduled_feed(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        broker_url="redis://127.0.0.1:6379/0",  # configure() does not connect
        erp={"sources": {"hourly": declaration(tmp_path / "a.csv", 3600)}},
    )
    app = tasks.configure(settings)
    (entry,) = [e for name, e in app.conf.beat_schedule.items() if name.startswith("erp_sync")]
    assert entry == {"task": "servicegraph.erp_sync", "schedule": 3600.0, "args": ["hourly"]}
    assert tasks.ROUTES["servicegraph.erp_sync"] == {"queue": "collect"}
