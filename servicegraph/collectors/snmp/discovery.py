"""SNMP discovery: get -> transform -> load -> cleanup.

* get (``Discovery.collect_all``): every target is read by a worker of a bounded pool; a
  device has its own session, per-request timeout and retries, and an overall deadline, so
  a dead, slow or misbehaving agent costs its own worker some seconds and nothing else.
  What is read from one agent is ``collect.collect_device``. Neighbours' management
  addresses found in LLDP/CDP tables are queued one crawl step deeper, within the crawl
  depth and the allowed subnets.
* transform (``transform``): pure, from snapshots to observation batches.
* load (``sync``): two batches of one run through ``Reconciler.apply``: devices, then
  interfaces and links anchored on the devices' CI ids; what the graph already holds
  about them is asked through ``inventory``.
* cleanup: the second batch of a full run is ``complete``: reconciliation counts a missed
  run for every item the source reported before and not now, and marks items stale after
  ``stale_after_runs`` misses. Items are never deleted.

Each run has a run id, used as the update tag of every sighting and history entry. The
per-device outcome (ok, partial, timeout, auth_failure, error, no_credential) is in the
run report, in the metrics, and never includes a credential.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from servicegraph.cmdb.model import utcnow
from servicegraph.cmdb.reconciliation import Reconciler, ReconcileReport
from servicegraph.collectors.snmp import mibs, transform
from servicegraph.collectors.snmp.client import SessionFactory
from servicegraph.collectors.snmp.collect import collect_device
from servicegraph.collectors.snmp.credentials import CredentialSet, Network
from servicegraph.collectors.snmp.inventory import (
    real_devices_among_placeholders,
    remembered_links,
    retire_superseded,
)
from servicegraph.collectors.snmp.metrics import SnmpMetrics
from servicegraph.collectors.snmp.plan import Plan
from servicegraph.collectors.snmp.session import SessionOptions, SnmpError
from servicegraph.collectors.snmp.targets import DEFAULT_PORT, Target, in_subnets

log = logging.getLogger(__name__)


# -- get ------------------------------------------------------------------------------------------


@dataclass
class DeviceResult:
    target: Target
    outcome: str  # ok, partial, timeout, auth_failure, error, no_credential
    snapshot: mibs.DeviceSnapshot | None = None
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    requests: int = 0
    varbinds: int = 0

    def to_dict(self) -> dict[str, Any]:
        s = self.snapshot
        return {
            "target": self.target.label,
            "origin": self.target.origin,
            "depth": self.target.depth,
            "via": self.target.via,
            "outcome": self.outcome,
            "error": self.error,
            "problems": self.problems,
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            "varbinds": self.varbinds,
            "sys_name": s.system.name if s else None,
            "interfaces": len(s.interfaces) if s else 0,
            "neighbours": len(s.neighbours) if s else 0,
        }


@dataclass(frozen=True)
class DiscoveryOptions:
    concurrency: int = 16
    device_timeout: float = 300.0  # overall deadline for one device
    crawl_depth: int = 0  # 0: only the targets
    allowed_subnets: tuple[Network, ...] = ()  # where crawling may go
    default_port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.device_timeout <= 0:
            raise ValueError("device_timeout must be positive")
        if self.crawl_depth < 0:
            raise ValueError("crawl_depth must be 0 or more")
        if self.crawl_depth and not self.allowed_subnets:
            raise ValueError(
                "crawling needs allowed subnets (snmp.allowed_subnets or --allow-subnet), "
                "so that it never wanders outside the networks you mean"
            )


ResultCallback = Callable[[DeviceResult, int, int], None]  # result, done, known so far


class Discovery:
    """Reads devices with bounded concurrency and crawls their neighbours."""

    def __init__(
        self,
        factory: SessionFactory,
        credentials: CredentialSet,
        options: DiscoveryOptions,
        *,
        metrics: SnmpMetrics | None = None,
        on_result: ResultCallback | None = None,
    ) -> None:
        self.factory = factory
        self.credentials = credentials
        self.options = options
        self.metrics = metrics
        self.on_result = on_result

    async def collect_all(self, targets: Sequence[Target]) -> list[DeviceResult]:
        queue: asyncio.Queue[Target] = asyncio.Queue()
        # a target given with its own credential is its own agent (snmpsim, or proxies,
        # serve several devices on one address, told apart by community or context)
        known: set[tuple[str, int, str | None]] = set()
        results: list[DeviceResult] = []
        addresses_seen: set[str] = set()

        def enqueue(target: Target) -> None:
            key = (target.host, target.port, target.credential.name if target.credential else None)
            if key in known:
                return
            known.add(key)
            queue.put_nowait(target)

        for target in targets:
            enqueue(target)

        async def worker() -> None:
            while True:
                target = await queue.get()
                try:
                    result = await self.collect_one(target)
                    results.append(result)
                    if result.snapshot is not None:
                        addresses_seen.update(a.address for a in result.snapshot.ip_addresses)
                        for neighbour in self._neighbours(result, addresses_seen):
                            enqueue(neighbour)
                    if self.on_result is not None:
                        self.on_result(result, len(results), len(known))
                finally:
                    queue.task_done()

        workers = [asyncio.create_task(worker()) for _ in range(self.options.concurrency)]
        try:
            await queue.join()
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return results

    def _neighbours(self, result: DeviceResult, addresses_seen: set[str]) -> list[Target]:
        snapshot = result.snapshot
        depth = result.target.depth + 1
        if snapshot is None or depth > self.options.crawl_depth:
            return []
        found = []
        for neighbour in snapshot.neighbours:
            for address in neighbour.management_addresses:
                if address in addresses_seen or not in_subnets(
                    address, self.options.allowed_subnets
                ):
                    continue
                found.append(
                    Target(
                        address,
                        self.options.default_port,
                        origin="neighbour",
                        depth=depth,
                        via=result.target.label,
                    )
                )
        return found

    async def collect_one(self, target: Target) -> DeviceResult:
        """One device, whatever happens: the outcome says how it went."""
        started = time.monotonic()
        rule = self.credentials.lookup(target.host)
        credential = target.credential or (rule.credential if rule else None)
        if credential is None:
            result = DeviceResult(target, "no_credential", error="no credential for this address")
            self._record(result)
            return result
        options = self.factory.options
        if rule is not None and target.credential is None:
            options = replace(
                options,
                timeout=rule.timeout if rule.timeout is not None else options.timeout,
                retries=rule.retries if rule.retries is not None else options.retries,
            )
        session = self.factory.open(target.host, target.port, credential, options)
        result = DeviceResult(target, "error")
        try:
            snapshot, problems = await asyncio.wait_for(
                collect_device(session, target.host, target.port, depth=target.depth),
                self.options.device_timeout,
            )
            result.snapshot = snapshot
            result.problems = problems
            result.outcome = "partial" if snapshot.missing else "ok"
        except SnmpError as exc:
            result.outcome = exc.outcome
            result.error = str(exc)
        except TimeoutError:
            result.outcome = "timeout"
            result.error = f"gave up after {self.options.device_timeout:g}s"
        except Exception as exc:  # a bug or an agent answer nobody foresaw: one device fails
            log.exception("discovery of %s failed", target.label)
            result.outcome = "error"
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            await session.close()
        result.seconds = time.monotonic() - started
        result.requests = session.requests
        result.varbinds = session.varbinds
        self._record(result)
        return result

    def _record(self, result: DeviceResult) -> None:
        log.info(
            "snmp %s: %s%s",
            result.target.label,
            result.outcome,
            f" ({result.error})" if result.error else "",
        )
        if self.metrics is not None:
            self.metrics.device(
                result.target.label,
                result.outcome,
                result.seconds,
                result.requests,
                result.varbinds,
            )


# -- load -----------------------------------------------------------------------------------------


@dataclass
class RunReport:
    run_id: str
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    complete: bool = False
    results: list[DeviceResult] = field(default_factory=list)
    devices: int = 0
    placeholders: int = 0
    interfaces: int = 0
    links: int = 0
    warnings: list[str] = field(default_factory=list)
    reconcile: dict[str, int] = field(default_factory=dict)
    loaded: bool = False
    error: str | None = None

    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.outcome] = counts.get(r.outcome, 0) + 1
        return counts

    def failures(self) -> list[DeviceResult]:
        return [r for r in self.results if r.outcome not in ("ok",)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "complete": self.complete,
            "loaded": self.loaded,
            "error": self.error,
            "devices": self.devices,
            "placeholders": self.placeholders,
            "interfaces": self.interfaces,
            "links": self.links,
            "outcomes": self.outcomes(),
            "reconcile": self.reconcile,
            "warnings": self.warnings,
            "results": [r.to_dict() for r in self.results],
        }


def _merge(reports: Sequence[ReconcileReport]) -> dict[str, int]:
    total: dict[str, int] = {}
    for report in reports:
        for key, value in report.summary().items():
            total[key] = total.get(key, 0) + value
    return total


def sync(
    reconciler: Reconciler,
    snapshots: Sequence[mibs.DeviceSnapshot],
    *,
    run_id: str,
    observed_at: dt.datetime,
    complete: bool,
) -> tuple[Plan, list[ReconcileReport], list[str]]:
    """Load one run's snapshots: devices first, then their interfaces and links."""
    plan = transform.plan(snapshots)
    known = real_devices_among_placeholders(reconciler, plan)
    first = reconciler.apply(
        transform.device_batch(plan, run_id=run_id, observed_at=observed_at, known_devices=known)
    )
    components = transform.component_batch(
        plan,
        first.ci_ids,
        run_id=run_id,
        observed_at=observed_at,
        complete=complete,
        remembered=remembered_links(reconciler, {i: first.ci_ids[i] for i in known}),
    )
    second = reconciler.apply(components.batch)
    warnings = list(components.warnings)
    for conflict in (*first.conflicts, *second.conflicts):
        warnings.append(f"conflict: {conflict}")
    position = {obs.key: i for i, obs in enumerate(components.batch.cis)}
    interface_ids = {
        where: ci_id
        for where, key in components.interface_keys.items()
        if (ci_id := second.ci_ids[position[key]]) is not None
    }
    retired = retire_superseded(
        reconciler, transform.superseded_links(plan, first.ci_ids, interface_ids)
    )
    if retired:
        warnings.append(f"{retired} link(s) replaced by links between interfaces")
    return plan, [first, second], plan.warnings + warnings


async def run_discovery(
    reconciler: Reconciler,
    targets: Sequence[Target],
    *,
    credentials: CredentialSet,
    session_options: SessionOptions,
    options: DiscoveryOptions,
    complete: bool,
    engine: str = "fast",
    metrics: SnmpMetrics | None = None,
    on_result: ResultCallback | None = None,
    run_id: str | None = None,
) -> RunReport:
    """One discovery run, collected, transformed and loaded."""
    report = RunReport(run_id=run_id or uuid.uuid4().hex, started_at=utcnow(), complete=complete)
    factory = SessionFactory(session_options, engine=engine)
    try:
        discovery = Discovery(factory, credentials, options, metrics=metrics, on_result=on_result)
        report.results = await discovery.collect_all(targets)
    finally:
        factory.close()
    snapshots = [r.snapshot for r in report.results if r.snapshot is not None]
    try:
        plan, reports, warnings = sync(
            reconciler,
            snapshots,
            run_id=report.run_id,
            observed_at=report.started_at,
            complete=complete,
        )
    except Exception as exc:
        report.error = f"loading failed: {exc}"
        if metrics is not None:
            metrics.run("failed", report.outcomes(), time.time())
        raise
    finally:
        report.finished_at = utcnow()
    report.loaded = True
    report.devices = plan.discovered
    report.placeholders = plan.placeholders
    report.interfaces = sum(len(s.interfaces) for d in plan.devices if (s := d.snapshot))
    report.links = len(plan.links)
    report.warnings = warnings
    report.reconcile = _merge(reports)
    if metrics is not None:
        metrics.run("loaded", report.outcomes(), time.time())
    return report


def save_report(report: RunReport, directory: Path) -> Path:
    """Write the run report as JSON (one file per run id); it holds no credentials."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{report.run_id}.json"
    path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return path
