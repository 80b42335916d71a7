"""The embedded store: one SQLite file in WAL mode, shared safely by several processes."""

from servicegraph.storage.sqlite.store import SqliteGraphStore

__all__ = ["SqliteGraphStore"]
