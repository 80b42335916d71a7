"""The command line on a damaged or read-only data directory, and how it draws paths; each
command runs as a real process, as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from servicegraph.bootstrap import bootstrap
from servicegraph.cmdb.importer import read_files
from servicegraph.config import Settings
from servicegraph.ticketing.ports import IncidentFilter
from tests.support import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _env(data_dir: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SERVICEGRAPH_")},
        "SERVICEGRAPH_DATA_DIR": str(data_dir),
        "COLUMNS": "400",  # rich wraps nothing: one message is one line
    }


def cli(
    data_dir: Path, *args: str, prefix: tuple[str, ...] = (), timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "servicegraph.cli", *args],
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def small_site(data_dir: Path) -> None:
    """A store holding examples/small-site.json, closed (its log checkpointed away)."""
    services = bootstrap(Settings(data_dir=data_dir))
    try:
        services.reconciler.apply(
            read_files([EXAMPLES / "small-site.json"], services.classes, source="import")
        )
    finally:
        services.close()


# -- a corrupt database file ---------------------------------------------------------------


def _corrupt_table(path: Path, table: str) -> None:
    """Overwrite the root page of ``table`` (not the file header) with garbage."""
    with sqlite3.connect(path) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
    conn.close()
    assert root > 1
    with path.open("r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\xde\xad\xbe\xef" * (page_size // 4))


@pytest.fixture
def corrupt(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    small_site(data_dir)
    db = data_dir / "servicegraph.sqlite3"
    assert not db.with_name(db.name + "-wal").exists()  # all in the main file
    _corrupt_table(db, "ci")
    with sqlite3.connect(db) as conn, pytest.raises(sqlite3.DatabaseError, match="malformed"):
        conn.execute("SELECT * FROM ci").fetchall()
    conn.close()
    return data_dir


def _one_clear_line(proc: subprocess.CompletedProcess[str], db: Path) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert f"the database file {db} is corrupt" in errors[0]
    assert "malformed" in errors[0] and "--from-export" in errors[0]


@pytest.mark.parametrize(
    "command",
    [
        ("stats",),
        ("show", "core-1"),
        ("impact", "dist-1"),
        ("export", "EXPORT"),
        ("import", str(EXAMPLES / "small-site.json")),
    ],
)
def test_a_corrupt_database_is_one_line_not_a_traceback(
    corrupt: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    args = [str(tmp_path / "out.jsonl") if a == "EXPORT" else a for a in command]
    proc = cli(corrupt, *args)
    _one_clear_line(proc, corrupt / "servicegraph.sqlite3")
    assert proc.stdout == ""


def _with_incidents(data_dir: Path) -> None:
    """small_site, with an incident on db-1 and an unmapped alert, closed."""
    import datetime as dt

    from servicegraph.events.model import Event, EventStatus, Severity

    small_site(data_dir)
    services = bootstrap(Settings(data_dir=data_dir))
    now = dt.datetime.now(dt.UTC)
    try:
        services.correlator.ingest(
            [
                Event("t", name, EventStatus.FIRING, Severity.MAJOR, now, name, name, labels)
                for name, labels in (("Down", {"ci_id": "db-1"}), ("Odd", {"host": "nowhere"}))
            ]
        )
        services.correlator.drain()
        assert (
            services.tickets.find_incidents(IncidentFilter()) and services.tickets.unmapped_alerts()
        )
    finally:
        services.close()


@pytest.mark.parametrize(
    ("table", "command"), [("incident", ("incidents",)), ("alert", ("unmapped",))]
)
def test_a_corrupt_incident_table_is_one_line_not_a_traceback(
    tmp_path: Path, table: str, command: tuple[str, ...]
) -> None:
    data_dir = tmp_path / "data"
    _with_incidents(data_dir)
    _corrupt_table(data_dir / "servicegraph.sqlite3", table)
    proc = cli(data_dir, *command)
    _one_clear_line(proc, data_dir / "servicegraph.sqlite3")


def test_serve_refuses_to_start_on_a_corrupt_database(corrupt: Path) -> None:
    proc = cli(corrupt, "serve", "--port", str(free_port()), timeout=60)
    _one_clear_line(proc, corrupt / "servicegraph.sqlite3")


# -- a read-only data directory --------------------------------------------------------------

READ_ONLY_COMMANDS: list[tuple[str, ...]] = [
    ("stats", "--json"),
    ("show", "core-1", "--json"),
    ("impact", "dist-1", "dist-2", "--json"),
    ("impact", "dist-1", "dist-2"),
    ("deps", "web-shop", "--json"),
    ("spof", "web-shop", "--json"),
    ("history", "db-1", "--json"),
    ("as-of", "db-1", "2999-01-01T00:00:00Z"),
    ("conflicts", "--json"),
    ("incidents", "--json"),
    ("problems", "--json"),
    ("unmapped", "--json"),
    ("inbox", "--json"),
]


def _unprivileged() -> tuple[str, ...]:
    """How to run a command without the power to ignore file modes.

    As root, chmod stops nothing: root's CAP_DAC_OVERRIDE writes to a 0444 file in a 0555
    directory. Running as ``nobody`` instead fails earlier, on the interpreter itself
    (the venv's python lives under /root, mode 0700). So the command runs as root with an
    empty capability bounding set (``setpriv``): the same uid, which may read what it owns,
    but the kernel applies the mode bits to it as to anyone, so every attempt to create a
    -wal or -shm file, migrate or checkpoint fails with EACCES, as for an unprivileged user
    on a read-only directory.
    """
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop CAP_DAC_OVERRIDE")
    return (setpriv, "--bounding-set=-all", "--inh-caps=-all", "--")


def _listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """``directory`` and its files read-only (0555 / 0444) for the block."""
    files = [p for p in directory.iterdir() if p.is_file()]
    for p in files:
        p.chmod(0o444)
    directory.chmod(0o555)
    try:
        yield
    finally:
        directory.chmod(0o755)
        for p in files:
            p.chmod(0o644)


def test_read_only_commands_work_on_a_read_only_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    small_site(data_dir)
    prefix = _unprivileged()
    before = _listing(data_dir)
    with read_only(data_dir):
        probe = cli(data_dir, "import", str(EXAMPLES / "small-site.json"), prefix=prefix)
        assert probe.returncode == 1, "the directory is not read-only for the command"
        assert "Traceback" not in probe.stderr
        for command in READ_ONLY_COMMANDS:
            proc = cli(data_dir, *command, prefix=prefix)
            assert proc.returncode == 0, (command, proc.stderr)
            assert "Traceback" not in proc.stderr
        export = tmp_path / "export.jsonl"
        proc = cli(data_dir, "export", str(export), prefix=prefix)
        assert proc.returncode == 0, proc.stderr
        stats = json.loads(cli(data_dir, "stats", "--json", prefix=prefix).stdout)
    assert stats["cis"] == 12 and stats["relationships"] == 14
    assert export.stat().st_size > 0
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o755
    assert _listing(data_dir) == before  # no -wal, no -shm, not a byte changed
    # a writable directory again: everything as before
    assert cli(data_dir, "import", str(EXAMPLES / "small-site.json")).returncode == 0


def test_read_only_commands_leave_a_writable_data_dir_as_before(tmp_path: Path) -> None:
    """On a directory they may write, the commands that only read leave no -wal or -shm
    file behind, as before they opened files read-only."""
    data_dir = tmp_path / "data"
    small_site(data_dir)
    names = sorted(p.name for p in data_dir.iterdir())
    for command in (("stats",), ("show", "core-1"), ("inbox",), ("impact", "dist-1")):
        proc = cli(data_dir, *command)
        assert proc.returncode == 0, proc.stderr
        assert sorted(p.name for p in data_dir.iterdir()) == names, command


def test_a_read_only_reader_sees_what_a_running_writer_committed(tmp_path: Path) -> None:
    """A writer still has the file open (its log not checkpointed): the read-only command
    must read through the log, not the main file alone."""
    data_dir = tmp_path / "data"
    small_site(data_dir)
    prefix = _unprivileged()
    writer = bootstrap(Settings(data_dir=data_dir))
    try:
        extra = tmp_path / "extra.json"
        extra.write_text(json.dumps({"cis": [{"key": "new-1", "class": "server"}]}))
        writer.reconciler.apply(read_files([extra], writer.classes, source="import"))
        assert (data_dir / "servicegraph.sqlite3-wal").stat().st_size > 0
        with read_only(data_dir):
            proc = cli(data_dir, "stats", "--json", prefix=prefix)
            assert proc.returncode == 0, proc.stderr
            assert json.loads(proc.stdout)["cis"] == 13
            shown = cli(data_dir, "show", "new-1", "--json", prefix=prefix)
            assert shown.returncode == 0, shown.stderr
    finally:
        writer.close()


# -- impact paths read as the stored relationships ------------------------------------------


def test_impact_paths_read_as_the_stored_relationships(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    site = tmp_path / "site.json"
    site.write_text(
        json.dumps(
            {
                "cis": [
                    {"key": "h1", "class": "server", "name": "h1"},
                    {"key": "vm1", "class": "virtual_machine", "name": "vm1"},
                    {"key": "app", "class": "application", "name": "app"},
                    {"key": "c1", "class": "cluster", "name": "c1"},
                    {"key": "db", "class": "database", "name": "db"},
                ],
                "relationships": [
                    {"from": "vm1", "type": "HOSTED_ON", "to": "h1"},
                    {"from": "app", "type": "RUNS_ON", "to": "vm1"},
                    {"from": "h1", "type": "MEMBER_OF", "to": "c1"},
                    {"from": "db", "type": "RUNS_ON", "to": "c1"},
                ],
            }
        )
    )
    assert cli(data_dir, "import", str(site)).returncode == 0
    impact = cli(data_dir, "impact", "h1")
    assert impact.returncode == 0, impact.stderr
    out = impact.stdout
    # failure spreads h1 -> vm1 -> app: the stored arrows point back along that walk
    assert "h1 <-HOSTED_ON- vm1 <-RUNS_ON- app" in out
    # MEMBER_OF is stored in the direction failure spreads (member to cluster)
    assert "h1 -MEMBER_OF-> c1 <-RUNS_ON- db" in out
    assert "-HOSTED_ON-> vm1" not in out
    deps = cli(data_dir, "deps", "app")
    assert deps.returncode == 0, deps.stderr
    # deps walks from the needing side down: the stored arrows point along the walk
    assert "app -RUNS_ON-> vm1 -HOSTED_ON-> h1" in deps.stdout
