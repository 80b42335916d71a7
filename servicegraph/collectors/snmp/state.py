"""The poller's memory between cycles: the last sample of every device, in a file.

A poll cycle that runs as a job (a Celery task in any worker, or the embedded scheduler)
starts in a process that did not see the previous cycle; changes (an interface went down,
a device restarted) are found by comparing with the sample kept here. An exclusive file
lock keeps two cycles from interleaving.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from servicegraph.collectors.snmp.poller import PollSample

Key = tuple[str, int]


def _sample_to_json(sample: PollSample) -> dict[str, Any]:
    return {
        "at": sample.at.isoformat(),
        "reachable": sample.reachable,
        "uptime_ticks": sample.uptime_ticks,
        "sys_name": sample.sys_name,
        "status": {str(k): list(v) for k, v in sample.status.items()},
        "names": {str(k): v for k, v in sample.names.items()},
        "error": sample.error,
    }


def _sample_from_json(data: dict[str, Any]) -> PollSample:
    return PollSample(
        at=dt.datetime.fromisoformat(data["at"]),
        reachable=bool(data["reachable"]),
        uptime_ticks=data.get("uptime_ticks"),
        sys_name=data.get("sys_name"),
        status={int(k): (v[0], v[1]) for k, v in (data.get("status") or {}).items()},
        names={int(k): v for k, v in (data.get("names") or {}).items()},
        error=data.get("error"),
    )


class PollState:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[Key, PollSample]]:
        """The samples, for one cycle; written back (atomically) when the block ends."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            samples = self._load()
            yield samples
            self._save(samples)

    def _load(self) -> dict[Key, PollSample]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # unreadable: the next cycle starts afresh rather than failing forever
        samples: dict[Key, PollSample] = {}
        for entry in raw.get("devices", []):
            samples[(entry["host"], int(entry["port"]))] = _sample_from_json(entry["sample"])
        return samples

    def _save(self, samples: dict[Key, PollSample]) -> None:
        document = {
            "devices": [
                {"host": host, "port": port, "sample": _sample_to_json(sample)}
                for (host, port), sample in sorted(samples.items())
            ]
        }
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(document))
        os.replace(temporary, self.path)
