"""Running servicegraph: the API server (with correlation and the periodic jobs embedded)
and, with a broker, the Celery worker and beat scheduler."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Annotated, Any

import typer

from servicegraph.access.redaction import redact_uri
from servicegraph.cli.common import err, fail, open_services
from servicegraph.config import Settings


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [default: 8000].")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, max=64, help="API processes, for more webhook throughput [default: 1]."
        ),
    ] = None,
) -> None:
    """Run the API (health at /healthz) on the embedded store; no server software needed."""
    import uvicorn

    from servicegraph.http.app import create_app

    with open_services() as services:
        settings = services.settings
        if settings.embedded_worker_process is None:
            # correlation on a core of its own, when there is a second one
            settings.embedded_worker_process = (os.cpu_count() or 1) > 1
        bind_host = host or settings.api_host
        processes = workers or settings.api_workers
        bind_port = port or settings.api_port
        # A store that cannot be read (a corrupt file) fails here, in one line, instead of
        # in the app's startup with a traceback: the topology reads every CI and
        # relationship. One process keeps it (the app finds it loaded); with several, each
        # loads its own and this one only reads.
        if processes == 1:
            services.impact.refresh()
        else:
            services.store.graph_delta(0)
        err.print(
            f"servicegraph on http://{bind_host}:{bind_port} ({_setup(settings, processes)})",
            highlight=False,
            soft_wrap=True,  # one line, whatever the terminal's width
        )
        if processes == 1:
            uvicorn.run(create_app(services), host=bind_host, port=bind_port, log_level="info")
            return
        _serve_processes(settings, processes, bind_host, bind_port)


def _setup(settings: Settings, processes: int) -> str:
    """The store, where correlation runs and the number of API processes, for the banner."""
    if settings.broker_url:
        correlation = "by Celery workers"
    elif not settings.embedded_worker:
        correlation = "off (embedded_worker is false)"
    else:
        where = "a child process" if settings.embedded_worker_process else "a thread"
        correlation = f"in {where}"
    store = str(settings.sqlite_file)
    if settings.store == "neo4j":
        store = redact_uri(settings.neo4j_uri)
    text = f"store: {settings.store}, {store}; correlation {correlation}"
    return text + (f"; {processes} API processes" if processes > 1 else "")


def _serve_processes(settings: Settings, processes: int, host: str, port: int) -> None:
    """Several API processes: uvicorn starts each from the environment, and one of them,
    elected through a lock file, runs the correlation worker and the periodic jobs."""
    import uvicorn

    os.environ["SERVICEGRAPH_API_WORKERS"] = str(processes)
    os.environ["SERVICEGRAPH_EMBEDDED_WORKER_PROCESS"] = str(
        bool(settings.embedded_worker_process)
    ).lower()
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # /metrics sums all processes
        metrics_dir = tempfile.mkdtemp(prefix="servicegraph-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "servicegraph.http.app:app_from_environment",
            factory=True,
            workers=processes,
            host=host,
            port=port,
            log_level="info",
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _celery_app() -> Any:
    from servicegraph import tasks

    try:
        return tasks.configure(Settings())
    except ValueError as exc:
        fail(str(exc))


def worker(
    queues: Annotated[
        str, typer.Option(help="Comma-separated queues to consume.")
    ] = "correlate,collect,default",
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Worker processes.")
    ] = 1,
    loglevel: Annotated[str, typer.Option()] = "INFO",
) -> None:
    """Run a Celery worker on the configured broker (SERVICEGRAPH_BROKER_URL)."""
    celery_app = _celery_app()
    celery_app.worker_main(
        ["worker", "-Q", queues, "-c", str(concurrency), f"--loglevel={loglevel}", "-E"]
    )


def beat(loglevel: Annotated[str, typer.Option()] = "INFO") -> None:
    """Run the Celery beat scheduler: enqueues the periodic jobs of the `schedule` setting."""
    celery_app = _celery_app()
    schedule_file = Settings().data_dir / "celerybeat-schedule"
    schedule_file.parent.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", f"--loglevel={loglevel}", "-s", str(schedule_file)])
