"""The two ports of an ERP connector: a feed the sync reads assets from, and a target
write-back sends what the CMDB knows better to. Files, HTTP and Tryton implement them
(``files``, ``http_feed``, ``tryton``); ``open_feed`` and ``open_target`` pick by kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from servicegraph.collectors.erp.records import FeedRead
from servicegraph.collectors.erp.spec import ErpSource

# (records read so far, the total when known): the CLI draws its progress bar from it;
# a feed's last call is (n, n), when the whole feed is read
Progress = Callable[[int, int | None], None]


class Feed(Protocol):
    def read(self, progress: Progress | None = None) -> FeedRead:
        """Every record the feed lists now; raises FeedError when it cannot be read."""
        ...


@dataclass(frozen=True, slots=True)
class WriteBackRow:
    """What one ERP record should hold: its key (the feed's ERP id) and field -> value."""

    key: str
    values: Mapping[str, Any]


class WriteBackTarget(Protocol):
    def current(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """What the ERP holds now in the write-back fields, by key (absent: not in the ERP
        or, for a file, not exported yet)."""
        ...

    def write(self, rows: Sequence[WriteBackRow]) -> int:
        """Write the rows (only those that differ are given); returns how many were written.
        Raises FeedError when the ERP refuses or cannot be reached."""
        ...


def open_feed(source: ErpSource) -> Feed:
    if source.kind == "http":
        from servicegraph.collectors.erp.http_feed import HttpFeed

        return HttpFeed(source)
    if source.kind == "tryton":
        from servicegraph.collectors.erp.tryton import TrytonFeed

        return TrytonFeed(source)
    from servicegraph.collectors.erp.files import FileFeed

    return FileFeed(source)


def open_target(source: ErpSource) -> WriteBackTarget:
    if source.kind == "tryton":
        from servicegraph.collectors.erp.tryton import TrytonTarget

        return TrytonTarget(source)
    from servicegraph.collectors.erp.files import FileTarget

    return FileTarget(source)
