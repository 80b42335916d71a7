"""The poller's memory between cycles: the last sample of every device (the port).

A poll cycle that runs as a job (a Celery task in any worker, on any host, or the
embedded scheduler) starts in a process that did not see the previous cycle; changes (an
interface went down, a device restarted) are found by comparing with the samples kept in
the store. ``PollStateStore.cycle`` hands them out to one cycle at a time, whichever
process or host runs it, and keeps what the cycle leaves. The codec here is shared by
every adapter: no credentials are in a sample.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

from servicegraph.collectors.snmp.poller import PollSample

Key = tuple[str, int]  # host, port


class PollStateStore(Protocol):
    def cycle(self) -> AbstractContextManager[dict[Key, PollSample]]:
        """The samples of the last cycle, for this cycle alone: another cycle (another
        process or host) waits until this one ends, or until its lease (``lease_s``)
        expires if it died. What the mapping holds when the block ends is kept; a block
        that raises keeps the previous samples. Raises StoreError when the state cannot be
        read or kept, or another cycle holds it for longer than the wait allows."""


def sample_to_json(sample: PollSample) -> str:
    return json.dumps(
        {
            "at": sample.at.isoformat(),
            "reachable": sample.reachable,
            "uptime_ticks": sample.uptime_ticks,
            "sys_name": sample.sys_name,
            "status": {str(k): list(v) for k, v in sample.status.items()},
            "names": {str(k): v for k, v in sample.names.items()},
            "error": sample.error,
        },
        separators=(",", ":"),
    )


def sample_from_json(text: str) -> PollSample:
    data: dict[str, Any] = json.loads(text)
    return PollSample(
        at=dt.datetime.fromisoformat(data["at"]),
        reachable=bool(data["reachable"]),
        uptime_ticks=data.get("uptime_ticks"),
        sys_name=data.get("sys_name"),
        status={int(k): (v[0], v[1]) for k, v in (data.get("status") or {}).items()},
        names={int(k): v for k, v in (data.get("names") or {}).items()},
        error=data.get("error"),
    )


def sorted_samples(samples: dict[Key, PollSample]) -> Iterator[tuple[str, int, str]]:
    """Rows to keep: (host, port, sample as JSON), in key order."""
    for (host, port), sample in sorted(samples.items()):
        yield host, port, sample_to_json(sample)
