"""The export of a Neo4j graph (``Neo4jGraphStore.snapshot``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import neo4j
from neo4j import Transaction
from neo4j.exceptions import (
    DriverError,
    Neo4jError,
)

from servicegraph.cmdb.errors import CmdbError
from servicegraph.cmdb.model import (
    ConfigurationItem,
    Conflict,
    HistoryEntry,
    Relationship,
)
from servicegraph.cmdb.ports import (
    CISighting,
    RelationshipSighting,
    SourceKey,
    SourceSweep,
)
from servicegraph.storage.neo4j import cypher
from servicegraph.storage.neo4j.catalogue import Statement
from servicegraph.storage.neo4j.records import (
    T,
    read_change_seq,
    run,
    to_ci,
    to_conflict,
    to_history_entry,
    to_relationship,
    to_sighting,
)

ErrorOf = Callable[[Exception, str], CmdbError]  # the store's translation of driver errors


# -- export ----------------------------------------------------------------------------


class Neo4jSnapshot:
    """What ``Neo4jGraphStore.snapshot`` yields: every record, streamed from one
    transaction that holds the write lock."""

    def __init__(self, tx: Transaction, *, error: ErrorOf) -> None:
        self._error = error  # the store's translation of driver errors
        self._tx = tx

    def _stream(self, statement: Statement, convert: Callable[[neo4j.Record], T]) -> Iterator[T]:
        try:
            for record in run(self._tx, statement):
                yield convert(record)
        except (Neo4jError, DriverError) as exc:
            raise self._error(exc, f"exporting ({statement.name})") from exc

    def change_seq(self) -> int:
        try:
            return read_change_seq(self._tx)
        except (Neo4jError, DriverError) as exc:
            raise self._error(exc, "exporting the change sequence") from exc

    def cis(self) -> Iterator[ConfigurationItem]:
        return self._stream(cypher.DUMP_CIS, to_ci)

    def source_keys(self) -> Iterator[SourceKey]:
        return self._stream(
            cypher.DUMP_SOURCE_KEYS, lambda r: SourceKey(r["source"], r["key"], r["ci_id"])
        )

    def ci_sightings(self) -> Iterator[CISighting]:
        return self._stream(
            cypher.DUMP_CI_SIGHTINGS, lambda r: CISighting(r["ci_id"], to_sighting(r))
        )

    def relationships(self) -> Iterator[Relationship]:
        return self._stream(cypher.DUMP_RELATIONSHIPS, to_relationship)

    def relationship_sightings(self) -> Iterator[RelationshipSighting]:
        return self._stream(
            cypher.DUMP_RELATIONSHIP_SIGHTINGS,
            lambda r: RelationshipSighting((r["from_id"], r["type"], r["to_id"]), to_sighting(r)),
        )

    def source_sweeps(self) -> Iterator[SourceSweep]:
        return self._stream(
            cypher.DUMP_SOURCE_SWEEPS, lambda r: SourceSweep(r["source"], r["run_id"])
        )

    def history(self) -> Iterator[HistoryEntry]:
        return self._stream(cypher.DUMP_HISTORY, to_history_entry)

    def conflicts(self) -> Iterator[Conflict]:
        return self._stream(cypher.DUMP_CONFLICTS, to_conflict)
