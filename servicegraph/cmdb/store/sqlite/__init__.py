"""The embedded store: one SQLite file in WAL mode, shared safely by several processes."""

from servicegraph.cmdb.store.sqlite.store import SqliteGraphStore

__all__ = ["SqliteGraphStore"]
