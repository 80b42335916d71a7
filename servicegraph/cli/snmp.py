"""What the SNMP commands of the CLI share: the credential given on the command line, the
progress display of a discovery, its summary, and printing events. Kept out of ``cli.py``
so that the command functions there stay short."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from servicegraph.collectors.snmp.credentials import Credential, CredentialError, Secret
from servicegraph.collectors.snmp.discovery import DeviceResult, RunReport
from servicegraph.events.device import MonitoringEvent

SOURCE_NAME = "command line"


def cli_credential(
    *,
    community: str | None,
    version: str | None,
    user: str | None,
    auth_protocol: str | None,
    auth_key: str | None,
    priv_protocol: str | None,
    priv_key: str | None,
    context: str,
) -> Credential | None:
    """The credential of the command-line options, or None when none were given."""
    wanted = (version or ("3" if user else "2c")).lower().removeprefix("v")
    wanted = "2c" if wanted == "2" else wanted
    if wanted == "3":
        if community:
            raise CredentialError("--community is for SNMPv1/v2c; SNMPv3 uses --v3-user")
        if not user:
            raise CredentialError("SNMPv3 needs --v3-user")
        return Credential(
            SOURCE_NAME,
            "3",
            user=user,
            auth_protocol=auth_protocol or ("sha" if auth_key else "none"),
            auth_key=Secret(auth_key) if auth_key else None,
            priv_protocol=priv_protocol or ("aes" if priv_key else "none"),
            priv_key=Secret(priv_key) if priv_key else None,
            context=context,
        )
    if user or auth_key or priv_key:
        raise CredentialError("--v3-* options need SNMPv3 (--snmp-version 3)")
    if wanted not in ("1", "2c"):
        raise CredentialError(f"unknown SNMP version '{version}'; use 1, 2c or 3")
    if not community:
        if version:
            raise CredentialError(f"SNMPv{wanted} needs --community")
        return None
    return Credential(SOURCE_NAME, "1" if wanted == "1" else "2c", community=Secret(community))


class DiscoveryProgress:
    """A progress bar on stderr whose total grows as crawling finds neighbours."""

    def __init__(self, console: Console, total: int, *, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]discover"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self.task = self.progress.add_task("", total=total)

    def update(self, result: DeviceResult, done: int, known: int) -> None:
        name = result.snapshot.system.name if result.snapshot else None
        label = f"{result.target.label}" + (f" {name}" if name else "")
        self.progress.update(
            self.task, completed=done, total=known, description=f"{label}: {result.outcome}"
        )

    @contextmanager
    def shown(self) -> Iterator[DiscoveryProgress]:
        with self.progress:
            yield self


def summary(report: RunReport) -> list[Table]:
    totals = Table(title="SNMP discovery", caption=f"run {report.run_id}", title_justify="left")
    totals.add_column("")
    totals.add_column("count", justify="right")
    rows: list[tuple[str, Any]] = [
        ("devices", report.devices),
        ("placeholders (undiscovered neighbours)", report.placeholders),
        ("interfaces", report.interfaces),
        ("links", report.links),
        *((f"outcome {k}", v) for k, v in sorted(report.outcomes().items())),
        *((k.replace("_", " "), v) for k, v in report.reconcile.items() if v),
    ]
    for label, value in rows:
        totals.add_row(label, f"{value:,}")
    tables = [totals]
    failures = report.failures()
    if failures:
        table = Table(title="devices not fully discovered", title_justify="left")
        for column in ("target", "outcome", "why"):
            table.add_column(column, overflow="fold")
        for r in failures:
            table.add_row(r.target.label, r.outcome, r.error or "; ".join(r.problems[:3]))
        tables.append(table)
    return tables


def print_events(events: Sequence[MonitoringEvent], console: Console, *, as_json: bool) -> None:
    for event in events:
        if as_json:
            sys.stdout.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            console.print(
                f"{event.occurred_at:%Y-%m-%d %H:%M:%S} {event.status.value:8} "
                f"{event.severity:8} {event.kind:18} {event.summary}",
                highlight=False,
            )
