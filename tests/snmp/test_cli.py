"""The SNMP commands of the CLI: discover (with crawling, summary, report, metrics), poll
and traps."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from servicegraph.cli import app
from tests.snmp.conftest import TOPOLOGY_HOSTS
from tests.snmp.simulator import REPO, Simulator, free_udp_port
from tests.support import require_executable


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SERVICEGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SERVICEGRAPH_CONFIG", raising=False)
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> tuple[str, str]:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, result.output + result.stderr
    return result.stdout, result.stderr


def test_discover_crawls_from_a_seed_and_reports(
    cli: CliRunner, simulator: Simulator, tmp_path: Path
) -> None:
    metrics = tmp_path / "snmp.prom"
    out, _ = run(
        cli,
        "discover",
        f"{TOPOLOGY_HOSTS['core']}:{simulator.port}",
        "--community",
        "public",
        "--port",
        str(simulator.port),
        "--crawl-depth",
        "2",
        "--allow-subnet",
        "127.0.0.0/29",
        "--metrics-file",
        str(metrics),
        "--json",
    )
    report = json.loads(out)
    assert (report["devices"], report["placeholders"], report["links"]) == (5, 1, 8)
    assert report["interfaces"] == 5 + 5 + 5 + 7 + 7
    assert report["outcomes"] == {"ok": 5}
    assert report["complete"] is False  # targets were given: not the whole inventory
    assert Path(report["report_file"]).is_file()
    assert 'servicegraph_snmp_device_results_total{outcome="ok"} 5.0' in metrics.read_text()

    shown, _ = run(cli, "show", "serial_number:SGACC0002", "--json")
    assert json.loads(shown)["ci"]["name"] == "acc2"


def test_discover_prints_a_summary_with_the_failures_and_no_secret(
    cli: CliRunner, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVICEGRAPH_SNMP_COMMUNITY", "s3cret-community-99")
    out, err = run(
        cli,
        "discover",
        f"127.0.0.1:{simulator.port}",
        "--timeout",
        "0.2",
        "--retries",
        "0",
        code=1,
    )
    assert "devices" in out and "timeout" in out
    assert "no device answered" in err
    assert "s3cret" not in out + err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["10.0.0.1", "--crawl-depth", "1", "--community", "c"], "allowed subnets"),
        (["--community", "c"], "give targets"),
        (["10.0.0.0/8", "--community", "c"], "sweep limit"),
        (["10.0.0.1", "--v3-user", "u", "--community", "c"], "--community is for SNMPv1"),
    ],
)
def test_discover_usage_errors(cli: CliRunner, args: list[str], message: str) -> None:
    _, err = run(cli, "discover", *args, code=2)
    assert message in err


def test_poll_reports_nothing_for_a_steady_device(cli: CliRunner, simulator: Simulator) -> None:
    out, _ = run(
        cli,
        "poll",
        f"127.0.0.1:{simulator.port}",
        "--community",
        "acc1",
        "--count",
        "2",
        "--interval",
        "0.1",
        "--json",
        "--no-ingest",
    )
    assert out == ""


def test_poll_compares_with_the_poll_state_the_jobs_share(
    cli: CliRunner, simulator: Simulator
) -> None:
    from servicegraph.bootstrap import bootstrap
    from servicegraph.config import Settings

    def poll(community: str, *extra: str) -> list[dict[str, object]]:
        args = ["poll", f"127.0.0.1:{simulator.port}", "--community", community, "--json"]
        out, _ = run(cli, *args, "--count", "1", *extra)
        return [json.loads(line) for line in out.splitlines()]

    def kept() -> list[tuple[str, int]]:
        services = bootstrap(Settings())
        try:
            with services.poll_state.cycle() as samples:
                return sorted(samples)
        finally:
            services.close()

    assert poll("acc1", "--no-ingest") == []  # first sight: nothing is news
    assert kept() == [], "without ingest, the command keeps its own memory"
    assert poll("acc1") == []  # first sight for the poll state too
    assert kept() == [("127.0.0.1", simulator.port)]
    # another invocation, as the next scheduled cycle would be: the device restarted and a
    # port went down since the last cycle
    kinds = sorted(str(e["kind"]) for e in poll("acc1-rebooted"))
    assert kinds == ["device_restarted", "interface_down"]
    received = json.loads(run(cli, "inbox", "--json")[0])
    assert sorted(str(e["name"]) for e in received) == kinds  # handed to correlation


def test_the_traps_command_prints_events(tmp_path: Path) -> None:
    snmptrap = require_executable("snmptrap", install_hint="apt-get install snmp")
    port = free_udp_port()
    env = {
        **os.environ,
        "SERVICEGRAPH_DATA_DIR": str(tmp_path / "data"),
        "SERVICEGRAPH_SNMP_TRAP_COMMUNITY": "trap-secret-7",
        "MIBS": "",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "servicegraph.cli",
            "traps",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--json",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stderr is not None and process.stdout is not None
        deadline = time.monotonic() + 30
        banner = b""
        while b"listening" not in banner and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stderr], [], [], 0.5)
            if ready:
                banner += os.read(process.stderr.fileno(), 4096)
            assert process.poll() is None, banner.decode()
        assert b"listening" in banner
        subprocess.run(
            [
                snmptrap,
                "-v2c",
                "-c",
                "trap-secret-7",
                f"127.0.0.1:{port}",
                "",
                "1.3.6.1.6.3.1.1.5.1",
            ],
            check=True,
            env=env,
            timeout=10,
        )
        ready, _, _ = select.select([process.stdout], [], [], 10)
        assert ready, "no event printed within 10 s"
        event = json.loads(process.stdout.readline())
        assert (event["kind"], event["labels"]["management_ip"]) == (
            "device_restarted",
            "127.0.0.1",
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_traps_command_refuses_a_port_in_use(cli: CliRunner) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        _, err = run(
            cli, "traps", "--host", "127.0.0.1", "--port", str(port), "--community", "c", code=1
        )
    assert f"cannot listen on udp 127.0.0.1:{port}" in err
