"""Helpers for tests that need real external programs (Alertmanager, net-snmp, Node).

On a developer's machine a missing program skips the test with the reason; in CI
(``SG_REQUIRE_EXTERNAL=1``, set by .ci/run) it fails, so that a broken install can never
pass as a green run.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_executable(*names: str, install_hint: str) -> str:
    """The path of the first of ``names`` found on PATH, else skip (or fail in CI)."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    message = f"{' / '.join(names)} not found; {install_hint}"
    if os.environ.get("SG_REQUIRE_EXTERNAL") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
