"""The production store: Neo4j (a server, a cluster or Aura) through the official driver."""

from servicegraph.storage.neo4j.store import Neo4jGraphStore

__all__ = ["Neo4jGraphStore"]
