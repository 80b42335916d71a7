"""Start real SNMP agents for tests and benchmarks: snmpsim, serving real device recordings
(from the ``snmpsim-data`` package) and our own, on loopback addresses.

A recording is selected by community (``add_community``) or by the endpoint the request
arrives at (``add_endpoint``: endpoint N of the command line serves
``DATA/<md5("public")>/1.3.6.1.6.1.1.N.snmprec`` under community ``public``). The latter
needs the pysnmp 7 shim in ``snmpsim_shim``. Waits are bounded; a responder that does not
come up fails with its log.
"""

from __future__ import annotations

import asyncio
import bz2
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from hashlib import md5
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PUBLIC_DIR = md5(b"public").hexdigest()
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)


def snmpsim_data_dir() -> Path:
    import snmpsim_data

    return Path(snmpsim_data.__file__).resolve().parent / "data"


def recording(name: str) -> Path:
    """A recording of snmpsim-data by its path without extension, e.g.
    ``network/switch/cisco-c3560``."""
    base = snmpsim_data_dir() / name
    for candidate in (
        base.with_name(base.name + ".snmprec"),
        base.with_name(base.name + ".snmprec.bz2"),
    ):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"no recording {name} in {snmpsim_data_dir()}")


def copy_recording(source: Path, target: Path) -> Path:
    """Copy, decompressing .bz2 (snmpsim seeks in the file; bz2 makes that slow). A copy
    newer than its source is kept: snmpsim rebuilds the index of a file that changed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    if source.suffix == ".bz2":
        with bz2.open(source, "rb") as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        shutil.copyfile(source, target)
    return target


def read_snmprec(path: Path) -> dict[tuple[int, ...], tuple[str, str]]:
    """OID -> (tag, raw value) of a recording, as the tests' source of expected values."""
    opener = bz2.open if path.suffix == ".bz2" else open
    result: dict[tuple[int, ...], tuple[str, str]] = {}
    with opener(path, "rt", encoding="latin-1") as f:  # type: ignore[operator]
        for line in f:
            if line.startswith("#") or line.count("|") < 2:
                continue
            oid, tag, value = line.rstrip("\n").split("|", 2)
            result[tuple(int(x) for x in oid.split("."))] = (tag, value)
    return result


def snmprec_text(tag_value: tuple[str, str]) -> str:
    tag, value = tag_value
    raw = bytes.fromhex(value) if tag.endswith("x") else value.encode("latin-1")
    return raw.decode("utf-8", errors="replace").replace("\x00", "").strip()


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class V3User:
    user: str = "sgtest"
    auth_proto: str = "SHA"
    auth_key: str = "sg-auth-key-1"
    priv_proto: str = "AES"
    priv_key: str = "sg-priv-key-1"


class Simulator:
    """One snmpsim responder process."""

    def __init__(
        self,
        root: Path,
        hosts: tuple[str, ...] = ("127.0.0.1",),
        *,
        port: int | None = None,
        v3: V3User | None = None,
        max_open: int = 1000,
        max_var_binds: int = 64,
    ) -> None:
        self.root = root
        self.data = root / "data"
        self.cache = root / "cache"
        self.hosts = hosts
        self.port = port or free_udp_port(hosts[0])
        self.v3 = v3
        self.max_open = max_open
        self.max_var_binds = max_var_binds
        self.process: subprocess.Popen[bytes] | None = None
        self.communities: list[str] = []
        self.endpoint_files: dict[int, Path] = {}
        self.data.mkdir(parents=True, exist_ok=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        # snmpsim needs at least a "public" file for endpoint selection to have a community
        self._public = self.data / "public.snmprec"

    def add_community(self, community: str, source: Path) -> Path:
        self.communities.append(community)
        return copy_recording(source, self.data / f"{community}.snmprec")

    def add_endpoint(self, index: int, source: Path) -> Path:
        """Serve ``source`` on the ``index``-th host of ``hosts`` under community public."""
        path = copy_recording(source, self.data / PUBLIC_DIR / f"1.3.6.1.6.1.1.{index}.snmprec")
        self.endpoint_files[index] = path
        return path

    @property
    def log_file(self) -> Path:
        return self.root / "snmpsim.log"

    def start(self, *, ready_timeout: float = 90.0) -> None:
        if not self._public.exists():
            self._public.write_text("1.3.6.1.2.1.1.5.0|4|public\n")
        args = [
            sys.executable,
            "-m",
            "tests.snmp.snmpsim_shim",
            f"--data-dir={self.data}",
            f"--cache-dir={self.cache}",
            f"--logging-method=file:{self.log_file}",
            "--log-level=error",
            f"--max-var-binds={self.max_var_binds}",
            *(f"--agent-udpv4-endpoint={host}:{self.port}" for host in self.hosts),
        ]
        if self.v3 is not None:
            args += [
                f"--v3-user={self.v3.user}",
                f"--v3-auth-key={self.v3.auth_key}",
                f"--v3-auth-proto={self.v3.auth_proto}",
                f"--v3-priv-key={self.v3.priv_key}",
                f"--v3-priv-proto={self.v3.priv_proto}",
            ]
        env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true", "SNMPSIM_MAX_OPEN": str(self.max_open)}
        self.process = subprocess.Popen(
            args,
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "stderr.txt").open("wb"),
        )
        try:
            asyncio.run(self._warm_up(ready_timeout))
        except BaseException:
            self.stop()
            raise

    async def _warm_up(self, ready_timeout: float) -> None:
        """Wait until every recording answers: the first request to a file builds its
        index, which takes about a second per 35,000 OIDs."""
        from servicegraph.collectors.snmp.credentials import Credential, Secret
        from servicegraph.collectors.snmp.fast_session import FastSession
        from servicegraph.collectors.snmp.session import SessionOptions, SnmpError

        checks = [(self.hosts[0], c) for c in self.communities] + [
            (self.hosts[i], "public") for i in self.endpoint_files
        ]
        if not checks:
            checks = [(self.hosts[0], "public")]
        deadline = time.monotonic() + ready_timeout
        options = SessionOptions(timeout=1.0, retries=0)
        for host, community in checks:
            session = FastSession(
                host, self.port, Credential("warm-up", "2c", community=Secret(community)), options
            )
            try:
                while True:
                    if self.process is not None and self.process.poll() is not None:
                        raise RuntimeError(f"snmpsim exited: {self.diagnostics()}")
                    try:
                        if SYS_NAME in await session.get([SYS_NAME]):
                            break
                    except SnmpError:
                        pass
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"snmpsim did not answer {community}@{host}:{self.port} within "
                            f"{ready_timeout:g}s: {self.diagnostics()}"
                        )
                    await asyncio.sleep(0.2)
            finally:
                await session.close()

    def diagnostics(self) -> str:
        parts = []
        for path in (self.root / "stderr.txt", self.log_file):
            if path.exists():
                parts.append(path.read_text(errors="replace")[-2000:])
        return "\n".join(parts) or "(no output)"

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
