"""SNMP on the command line: ``discover`` and ``poll`` run the same jobs as the scheduler
and Celery (``runtime.jobs``) on the targets and credential given here, with a progress
bar and a summary; ``traps`` listens for traps. The options shared by discover and poll
name the targets and the credential."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from servicegraph.bootstrap import Services
from servicegraph.cli.common import (
    EXIT_USAGE,
    JsonOption,
    err,
    fail,
    open_services,
    out,
    print_json,
)
from servicegraph.cmdb.context import change_context
from servicegraph.collectors.snmp.credentials import (
    Credential,
    CredentialError,
    CredentialSet,
    Secret,
)
from servicegraph.collectors.snmp.discovery import DeviceResult, DiscoveryOptions, RunReport
from servicegraph.collectors.snmp.session import SessionOptions
from servicegraph.collectors.snmp.targets import Target
from servicegraph.events.device import MonitoringEvent

if TYPE_CHECKING:
    from servicegraph.collectors.snmp.poller import PollSample

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


# -- options of discover and poll ------------------------------------------------------

SnmpTargets = Annotated[
    list[str] | None,
    typer.Argument(
        help="IP addresses, names, HOST:PORT or CIDR ranges to sweep "
        "[default: the snmp.targets setting]."
    ),
]
CommunityOption = Annotated[
    str | None,
    typer.Option(
        envvar="SERVICEGRAPH_SNMP_COMMUNITY",
        help="SNMPv1/v2c community (the variable keeps it out of the process list).",
    ),
]
VersionOption = Annotated[
    str | None, typer.Option("--snmp-version", help="1, 2c or 3 [default: 2c; 3 with --v3-user].")
]
V3UserOption = Annotated[str | None, typer.Option("--v3-user", help="SNMPv3 user name.")]
V3AuthProtoOption = Annotated[
    str | None, typer.Option("--v3-auth-protocol", help="md5, sha, sha224 ... sha512.")
]
V3AuthKeyOption = Annotated[
    str | None, typer.Option("--v3-auth-key", envvar="SERVICEGRAPH_SNMP_AUTH_KEY")
]
V3PrivProtoOption = Annotated[
    str | None, typer.Option("--v3-priv-protocol", help="des, 3des, aes, aes192, aes256 ...")
]
V3PrivKeyOption = Annotated[
    str | None, typer.Option("--v3-priv-key", envvar="SERVICEGRAPH_SNMP_PRIV_KEY")
]
V3ContextOption = Annotated[str, typer.Option("--v3-context", help="SNMPv3 context name.")]
SnmpPortOption = Annotated[
    int | None, typer.Option("--port", min=1, max=65535, help="Agent UDP port [default: 161].")
]


def _snmp_setup(
    services: Services, targets: list[str] | None, port: int | None, **credential: Any
) -> tuple[list[Target], CredentialSet]:
    """The targets (given, or the snmp.targets setting) and the credentials: the one of the
    command line first, then the settings' rules; or exit 2."""
    from servicegraph.collectors.snmp.targets import TargetError, parse_targets

    snmp = services.settings.snmp
    try:
        given = cli_credential(**credential)
        credentials = snmp.credential_set(default=given)
        expressions = targets or snmp.targets
        if not expressions:
            fail("give targets, or list the inventory in the snmp.targets setting", EXIT_USAGE)
        found = parse_targets(
            expressions,
            default_port=port or snmp.port,
            max_sweep_hosts=snmp.max_sweep_hosts,
            credential=given,
        )
    except (CredentialError, TargetError) as exc:
        fail(str(exc), EXIT_USAGE)
    return found, credentials


def discover(
    targets: SnmpTargets = None,
    community: CommunityOption = None,
    snmp_version: VersionOption = None,
    v3_user: V3UserOption = None,
    v3_auth_protocol: V3AuthProtoOption = None,
    v3_auth_key: V3AuthKeyOption = None,
    v3_priv_protocol: V3PrivProtoOption = None,
    v3_priv_key: V3PrivKeyOption = None,
    v3_context: V3ContextOption = "",
    port: SnmpPortOption = None,
    crawl_depth: Annotated[
        int | None, typer.Option(min=0, help="Follow LLDP/CDP neighbours this many steps.")
    ] = None,
    allow_subnet: Annotated[
        list[str] | None, typer.Option(help="A subnet crawling may enter (repeatable).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Devices at once.")] = None,
    timeout: Annotated[float | None, typer.Option(min=0.01, help="Seconds per answer.")] = None,
    retries: Annotated[int | None, typer.Option(min=0)] = None,
    max_repetitions: Annotated[int | None, typer.Option(min=1, max=1000)] = None,
    complete: Annotated[
        bool | None,
        typer.Option(
            "--complete/--partial",
            help="Whether this run is the whole SNMP inventory, so that what it misses counts "
            "towards staleness [default: complete without TARGETs, partial with].",
        ),
    ] = None,
    metrics_file: Annotated[
        Path | None, typer.Option(help="Write the run's Prometheus metrics to this file.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Discover devices over SNMP into the graph: system, interfaces, hardware, addresses
    and LLDP/CDP links; prints a summary."""
    with open_services() as services:
        found, credentials = _snmp_setup(
            services,
            targets,
            port,
            community=community,
            version=snmp_version,
            user=v3_user,
            auth_protocol=v3_auth_protocol,
            auth_key=v3_auth_key,
            priv_protocol=v3_priv_protocol,
            priv_key=v3_priv_key,
            context=v3_context,
        )
        options, session = _discovery_options(
            services,
            allow_subnet,
            concurrency,
            crawl_depth,
            port,
            timeout,
            retries,
            max_repetitions,
        )
        _run_discovery(
            services,
            found,
            credentials,
            options,
            session,
            complete=complete if complete is not None else not targets,
            metrics_file=metrics_file,
            as_json=as_json,
        )


def _run_discovery(
    services: Services,
    found: list[Target],
    credentials: CredentialSet,
    options: DiscoveryOptions,
    session: SessionOptions,
    *,
    complete: bool,
    metrics_file: Path | None,
    as_json: bool,
) -> None:
    """The discovery job on the command line's targets, with a progress bar; then its
    report saved, its metrics written if asked, and its summary printed."""
    from prometheus_client import CollectorRegistry, write_to_textfile

    from servicegraph.collectors.snmp.discovery import save_report
    from servicegraph.collectors.snmp.metrics import SnmpMetrics
    from servicegraph.runtime import jobs

    registry = CollectorRegistry()
    progress = DiscoveryProgress(err, len(found), enabled=not as_json)
    with progress.shown(), change_context(actor="snmp-discovery"):
        report = jobs.discovery_run(
            services,
            found,
            credentials=credentials,
            session_options=session,
            options=options,
            complete=complete,
            snmp_metrics=SnmpMetrics(registry),
            on_result=progress.update,
        )
    if report is None:  # the targets named no address
        fail("no device answered")
    path = save_report(report, services.settings.data_dir / "snmp" / "runs")
    if metrics_file is not None:
        write_to_textfile(str(metrics_file), registry)
    _print_discovery(report, path, as_json)


def _print_discovery(report: RunReport, path: Path, as_json: bool) -> None:
    """The run's summary (or JSON) and where its report is; exit 1 if no device answered."""
    if as_json:
        print_json({**report.to_dict(), "report_file": str(path)})
    else:
        for table in summary(report):
            out.print(table)
        err.print(f"run report: {path}", highlight=False)
    if not any(r.snapshot for r in report.results):
        fail("no device answered")


def _discovery_options(
    services: Services,
    allow_subnet: list[str] | None,
    concurrency: int | None,
    crawl_depth: int | None,
    port: int | None,
    timeout: float | None,
    retries: int | None,
    max_repetitions: int | None,
) -> tuple[DiscoveryOptions, SessionOptions]:
    """The settings' discovery and session options with the command line's, or exit 2."""
    from servicegraph.collectors.snmp.credentials import parse_subnets

    snmp = services.settings.snmp
    try:
        subnets = parse_subnets(allow_subnet, item="--allow-subnet") if allow_subnet else None
        options = snmp.discovery_options(
            concurrency=concurrency,
            crawl_depth=crawl_depth,
            allowed_subnets=subnets,
            default_port=port,
        )
        session = snmp.session_options(
            timeout=timeout, retries=retries, max_repetitions=max_repetitions
        )
    except (CredentialError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)
    return options, session


def poll(
    targets: SnmpTargets = None,
    community: CommunityOption = None,
    snmp_version: VersionOption = None,
    v3_user: V3UserOption = None,
    v3_auth_protocol: V3AuthProtoOption = None,
    v3_auth_key: V3AuthKeyOption = None,
    v3_priv_protocol: V3PrivProtoOption = None,
    v3_priv_key: V3PrivKeyOption = None,
    v3_context: V3ContextOption = "",
    port: SnmpPortOption = None,
    interval: Annotated[
        float | None, typer.Option(min=0.01, help="Seconds between polls [default: 60].")
    ] = None,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many polls.")] = None,
    ingest: Annotated[
        bool, typer.Option(help="Hand events to correlation (the durable inbox).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Events as JSON lines.")] = False,
) -> None:
    """Poll devices (sysUpTime, interface status) and report changes as events: interface
    down/up, restarts, devices that stop answering."""
    from servicegraph.runtime import jobs

    with open_services() as services:
        found, credentials = _snmp_setup(
            services,
            targets,
            port,
            community=community,
            version=snmp_version,
            user=v3_user,
            auth_protocol=v3_auth_protocol,
            auth_key=v3_auth_key,
            priv_protocol=v3_priv_protocol,
            priv_key=v3_priv_key,
            context=v3_context,
        )
        # Each poll is a cycle of the poll job, compared with the poll state that the
        # scheduled cycles share; with --no-ingest, with this command's own memory instead,
        # so that what correlation was not told is still news to the next scheduled cycle.
        samples: dict[tuple[str, int], PollSample] | None = None if ingest else {}
        try:
            rounds = 0
            while count is None or rounds < count:
                if rounds:
                    time.sleep(interval or services.settings.snmp.poll_interval)
                jobs.poll(
                    services,
                    found,
                    credentials=credentials,
                    samples=samples,
                    ingest=ingest,
                    on_events=lambda events: print_events(events, out, as_json=as_json),
                )
                rounds += 1
        except KeyboardInterrupt:
            err.print("stopped")


def traps(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: 0.0.0.0].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="UDP port [default: 1162].")
    ] = None,
    community: Annotated[
        list[str] | None,
        typer.Option(
            envvar="SERVICEGRAPH_SNMP_TRAP_COMMUNITY",
            help="Accepted v1/v2c community (repeatable) [default: snmp.trap_communities].",
        ),
    ] = None,
    ingest: Annotated[
        bool, typer.Option(help="Hand events to correlation (the durable inbox).")
    ] = True,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on 127.0.0.1:PORT.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Events as JSON lines.")] = False,
) -> None:
    """Receive SNMP traps (v1, v2c, v3) and turn them into events: linkDown/linkUp,
    cold/warm start, authentication failures and enterprise traps."""
    import asyncio

    from prometheus_client import CollectorRegistry, start_http_server

    from servicegraph.cmdb.model import utcnow
    from servicegraph.collectors.snmp.metrics import SnmpMetrics
    from servicegraph.collectors.snmp.traps import TrapReceiver, TrapReceiverError

    with open_services() as services:
        snmp = services.settings.snmp
        try:
            users = snmp.trap_user_list()
        except CredentialError as exc:
            fail(str(exc), EXIT_USAGE)
        communities = (
            [Secret(c) for c in community]
            if community
            else [Secret(c.get_secret_value()) for c in snmp.trap_communities]
        )
        registry = CollectorRegistry()
        if metrics_port is not None:
            start_http_server(metrics_port, addr="127.0.0.1", registry=registry)

        def on_event(event: Any) -> None:
            print_events([event], out, as_json=as_json)
            if ingest:
                services.correlator.ingest([event.to_event(utcnow())])

        async def run() -> None:
            receiver = TrapReceiver(
                on_event,
                host=host or snmp.trap_host,
                port=snmp.trap_port if port is None else port,
                communities=communities,
                users=users,
                metrics=SnmpMetrics(registry),
            )
            await receiver.start()
            err.print(f"listening for traps on udp {receiver.host}:{receiver.port}")
            try:
                await asyncio.Event().wait()
            finally:
                await receiver.stop()

        try:
            asyncio.run(run())
        except TrapReceiverError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            err.print("stopped")


# -- output ----------------------------------------------------------------------------


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
