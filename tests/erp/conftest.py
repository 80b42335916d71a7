"""The real Tryton ERP the asset sync tests talk to (tests/erp/tryton_fixture.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.erp.tryton_fixture import TrytonServer, tryton_available
from tests.support import missing_external


@pytest.fixture(scope="session")
def tryton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrytonServer]:
    """A trytond on 127.0.0.1 with the seeded company, for the whole session: tests add
    their own assets with distinct codes and never count the whole table.

    Missing Tryton skips, as tests.support.require_executable does for programs (this
    is a Python distribution, not a program on PATH), and fails under
    SG_REQUIRE_EXTERNAL=1."""
    reason = tryton_available()
    if reason is not None:
        missing_external(reason)
    server = TrytonServer()
    server.start(tmp_path_factory.mktemp("tryton"))
    try:
        yield server
    finally:
        server.stop()
