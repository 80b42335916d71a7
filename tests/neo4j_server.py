"""A live Neo4j Community 5.26 for the tests and benchmarks (``tools/neo4j/``).

``NEO4J_URI`` (with ``NEO4J_USER``, ``NEO4J_PASSWORD``, ``NEO4J_DATABASE``) names a server
to use instead; EVERY TEST THAT USES IT EMPTIES THE DATABASE, so name a scratch one.
Otherwise, with Java and Maven present, ``Neo4jServer.start`` builds the launcher once
(Maven Central, cached in ~/.m2) and starts the embedded engine with its Bolt connector on
a free port of 127.0.0.1, and its standard input tied to this process: a test run that
dies, even by ``kill -9``, takes its server with it.

Measured here: the first build downloads ~120 MB (about 1 min), later builds are skipped;
a start on a new home takes about 11 s, a restart on the same home about 6 s.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import free_port

LAUNCHER = Path(__file__).resolve().parent.parent / "tools" / "neo4j" / "run"
PASSWORD = "servicegraph-test"
START_TIMEOUT = 120.0  # seconds; the first start of a cold JVM on a loaded 2-core machine
READY = "servicegraph-neo4j ready "


@dataclass(frozen=True)
class Neo4jAddress:
    """Where a Neo4j answers, and as whom to log in."""

    uri: str
    user: str = "neo4j"
    password: str = PASSWORD
    database: str = "neo4j"

    def store_settings(self) -> dict[str, Any]:
        """Keyword arguments of ``Neo4jGraphStore`` (after the URI)."""
        return {"user": self.user, "password": self.password, "database": self.database}

    def settings(self) -> dict[str, Any]:
        """Keyword arguments of ``Settings`` for a process that runs on this Neo4j."""
        return {
            "store": "neo4j",
            "neo4j_uri": self.uri,
            "neo4j_user": self.user,
            "neo4j_password": self.password,
            "neo4j_database": self.database,
        }

    def environment(self) -> dict[str, str]:
        """The service's settings for a process that runs on this Neo4j."""
        return {
            "SERVICEGRAPH_STORE": "neo4j",
            "SERVICEGRAPH_NEO4J_URI": self.uri,
            "SERVICEGRAPH_NEO4J_USER": self.user,
            "SERVICEGRAPH_NEO4J_PASSWORD": self.password,
            "SERVICEGRAPH_NEO4J_DATABASE": self.database,
        }


def address_from_environment() -> Neo4jAddress | None:
    uri = os.environ.get("NEO4J_URI", "")
    if not uri:
        return None
    return Neo4jAddress(
        uri=uri,
        user=os.environ.get("NEO4J_USER", "neo4j"),
        password=os.environ.get("NEO4J_PASSWORD", ""),
        database=os.environ.get("NEO4J_DATABASE", "neo4j"),
    )


def launcher_unavailable() -> str | None:
    """Why this machine cannot start the launcher, or None."""
    for program, hint in (("java", "a JDK 17+"), ("mvn", "Maven")):
        if shutil.which(program) is None:
            return (
                f"{program} not found: the Neo4j tests start tools/neo4j/run, which needs "
                f"{hint} (apt-get install openjdk-17-jdk-headless maven), or set NEO4J_URI "
                "to a scratch Neo4j 5.26+ server"
            )
    return None


def build_launcher() -> None:
    """Build tools/neo4j once (a no-op when it is up to date)."""
    done = subprocess.run(
        [str(LAUNCHER), "--build-only"], capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(f"building tools/neo4j failed:\n{done.stdout}\n{done.stderr}")


@dataclass
class Neo4jServer:
    """One launcher process; ``stop`` and ``start`` again keep its data and port (the
    fault tests stop it mid-run and bring it back)."""

    home: Path
    port: int = field(default_factory=free_port)
    page_cache_mb: int = 512
    transaction_max_mb: int = 0
    heap: str = "1g"
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)

    @property
    def address(self) -> Neo4jAddress:
        return Neo4jAddress(uri=f"neo4j://127.0.0.1:{self.port}")

    def start(self) -> Neo4jAddress:
        build_launcher()
        self.home.mkdir(parents=True, exist_ok=True)
        self.output = []
        command = [
            str(LAUNCHER),
            "--home",
            str(self.home),
            "--port",
            str(self.port),
            "--password",
            PASSWORD,
            "--page-cache-mb",
            str(self.page_cache_mb),
            "--transaction-max-mb",
            str(self.transaction_max_mb),
            "--exit-on-eof",
        ]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "NEO4J_HEAP": self.heap},
        )
        ready = threading.Event()
        threading.Thread(target=self._read_output, args=(ready,), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = "".join(self.output[-30:])
                raise RuntimeError(f"Neo4j did not start on port {self.port}:\n{tail}")
        return self.address

    def _read_output(self, ready: threading.Event) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith(READY):
                ready.set()

    def stop(self, timeout: float = 60.0) -> None:
        """Close its input (the launcher shuts down cleanly), then SIGKILL if it hangs."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def kill(self) -> None:
        """As a crash: SIGKILL, no shutdown."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None
