"""Real SQLite files for the contract suites' SQLite subclasses: a damaged one, for the
contracts' failure cases."""

from __future__ import annotations

import os
from pathlib import Path

HEADER = 4096  # SQLite's default page size: the first page holds the header and schema


def damage(path: Path) -> None:
    """Overwrite every page of a closed (checkpointed) SQLite file but the first with
    garbage: the file still opens, and every read of a table finds it malformed."""
    wal = path.with_name(f"{path.name}-wal")
    assert not wal.exists() or wal.stat().st_size == 0, f"{path} is open or not checkpointed"
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.seek(HEADER)
        handle.write(os.urandom(max(size - HEADER, 8 * HEADER)))
