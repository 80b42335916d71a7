"""Helpers for tests that need real external programs (Alertmanager, net-snmp, Node) or
talk to servers they start.

On a developer's machine a missing program skips the test with the reason; in CI
(``SG_REQUIRE_EXTERNAL=1``, set by .ci/run) it fails, so that a broken install can never
pass as a green run.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from typing import NoReturn

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Until ``check`` holds (a server not answering yet counts as not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def require_executable(*names: str, install_hint: str) -> str:
    """The path of the first of ``names`` found on PATH, else skip (or fail in CI)."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    missing_external(f"{' / '.join(names)} not found; {install_hint}")


def missing_external(reason: str) -> NoReturn:
    """Skip for a missing program, server or distribution; fail in CI."""
    if os.environ.get("SG_REQUIRE_EXTERNAL") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def events_correlated(metrics_page: str, *, required: bool = True) -> float:
    """``servicegraph_events_correlated_total`` on a ``/metrics`` page. A multi-process
    page shows a counter only once some process counted: ``required=False`` reads it as 0."""
    for line in metrics_page.splitlines():
        if line.startswith("servicegraph_events_correlated_total "):
            return float(line.split()[1])
    if required:
        raise AssertionError("no servicegraph_events_correlated_total in /metrics")
    return 0.0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie answers kill(0) too
        return stat.read().split(")")[1].split()[0] != "Z"
