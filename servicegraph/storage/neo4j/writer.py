"""The graph's unit of work on Neo4j (``Neo4jGraphStore.write``): one explicit
transaction that holds the write lock (see ``store``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import neo4j
from neo4j import Transaction
from neo4j.exceptions import (
    DriverError,
    Neo4jError,
)

from servicegraph.cmdb.errors import CmdbError, StoreError, StoreUnavailable
from servicegraph.cmdb.identifiers import Identifier
from servicegraph.cmdb.model import (
    ConfigurationItem,
    Conflict,
    HistoryEntry,
    Relationship,
    RelationshipKey,
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
    INT64,
    T,
    batches,
    ci_properties,
    conflict_row,
    history_row,
    load_cis,
    lookup_identifiers,
    rel_key_row,
    relationship_row,
    relationships_of,
    run,
    sighting_row,
    to_neo4j_time,
    to_relationship,
    unique,
)

ErrorOf = Callable[[Exception, str], CmdbError]  # the store's translation of driver errors


def _part_budget(limit: int | None) -> int:
    """The ``LIMIT`` of a bounded part: ``limit``, or no bound (LIMIT takes an integer,
    not null)."""
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
    return INT64[1] if limit is None else limit


# -- the unit of work ------------------------------------------------------------------


class Neo4jWriter:
    """The unit of work handed out by ``Neo4jGraphStore.write``: one explicit transaction
    that holds the write lock. Reads see this unit's own writes."""

    def __init__(self, tx: Transaction, *, batch_size: int, error: ErrorOf) -> None:
        self._error = error  # the store's translation of driver errors
        self._tx = tx
        self._size = batch_size
        self._seq: int | None = None

    def _do(self, action: str, work: Callable[[], T]) -> T:
        try:
            return work()
        except (Neo4jError, DriverError) as exc:
            raise self._error(exc, action) from exc

    def _advance(self, sequence: str, count: int) -> int:
        record = run(self._tx, cypher.ADVANCE_SEQUENCE, name=sequence, count=count).single()
        if record is None:
            raise StoreUnavailable("the Neo4j database has no servicegraph schema; run migrations")
        return int(record["value"])

    def _raise_sequence(self, sequence: str, value: int) -> None:
        run(self._tx, cypher.RAISE_SEQUENCE, name=sequence, value=value).consume()

    @property
    def seq(self) -> int:
        """This unit's change sequence number, taken on first use."""
        if self._seq is None:
            self._seq = self._do(
                "advancing the change sequence", lambda: self._advance(cypher.SEQUENCE_CHANGE, 1)
            )
        return self._seq

    # -- reads ---------------------------------------------------------------------------

    def lookup_identifiers(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        wanted = unique(identifiers)
        return self._do(
            "looking up identifiers", lambda: lookup_identifiers(self._tx, wanted, self._size)
        )

    def lookup_keys(self, source: str, keys: Iterable[str]) -> dict[str, str]:
        wanted = unique(keys)

        def work() -> dict[str, str]:
            result: dict[str, str] = {}
            for batch in batches(wanted, self._size):
                for r in run(self._tx, cypher.LOOKUP_KEYS, source=source, keys=list(batch)):
                    result[r["key"]] = r["ci_id"]
            return result

        return self._do("looking up source keys", work)

    def load_cis(self, ids: Iterable[str]) -> dict[str, ConfigurationItem]:
        wanted = unique(ids)
        return self._do("loading CIs", lambda: load_cis(self._tx, wanted, self._size))

    def load_relationships(
        self, keys: Iterable[RelationshipKey]
    ) -> dict[RelationshipKey, Relationship]:
        wanted = unique(keys)

        def work() -> dict[RelationshipKey, Relationship]:
            result: dict[RelationshipKey, Relationship] = {}
            for batch in batches(wanted, self._size):
                rows = [rel_key_row(k) for k in batch]
                for r in run(self._tx, cypher.LOAD_RELATIONSHIPS, rows=rows):
                    rel = to_relationship(r)
                    result[rel.key] = rel
            return result

        return self._do("loading relationships", work)

    def relationships_of(self, ci_ids: Iterable[str]) -> list[Relationship]:
        ids = unique(ci_ids)
        return self._do(
            "loading relationships",
            lambda: relationships_of(self._tx, ids, "both", None, False, self._size),
        )

    # -- CIs and identifiers -------------------------------------------------------------

    def insert_cis(self, cis: Sequence[ConfigurationItem]) -> None:
        if not cis:
            return
        seq = self.seq
        rows = [{"props": ci_properties(ci, seq)} for ci in cis]

        def work() -> None:
            for batch in batches(rows, self._size):
                run(self._tx, cypher.INSERT_CIS, rows=list(batch)).consume()

        self._do("creating CIs (is the CI id new?)", work)
        self.add_identifiers([(ident, ci.id) for ci in cis for ident in ci.identifiers])

    def update_cis(self, cis: Sequence[ConfigurationItem]) -> None:
        if not cis:
            return
        seq = self.seq
        rows = [{"props": ci_properties(ci, seq)} for ci in cis]

        def work() -> None:
            for batch in batches(rows, self._size):
                run(self._tx, cypher.UPDATE_CIS, rows=list(batch)).consume()

        self._do("updating CIs", work)

    def add_identifiers(self, rows: Sequence[tuple[Identifier, str]]) -> None:
        if not rows:
            return
        wanted = [ident for ident, _ in rows]
        twice = (
            sorted({i for i in wanted if wanted.count(i) > 1})
            if len(set(wanted)) < len(wanted)
            else []
        )
        if twice:
            raise StoreError(f"identifiers given twice in one batch: {twice}")
        held = self.lookup_identifiers(wanted)
        if held:
            shown = ", ".join(f"{k}={v} (held by {ci})" for (k, v), ci in sorted(held.items()))
            raise StoreError(f"identifier already held by another CI: {shown}")
        params = [{"kind": k, "value": v, "ci_id": ci_id} for (k, v), ci_id in rows]

        def work() -> None:
            for batch in batches(params, self._size):
                run(self._tx, cypher.CREATE_IDENTIFIERS, rows=list(batch)).consume()

        self._do("adding identifiers", work)

    def remove_identifiers(self, identifiers: Sequence[Identifier]) -> None:
        params = [{"kind": k, "value": v} for k, v in identifiers]

        def work() -> None:
            for batch in batches(params, self._size):
                run(self._tx, cypher.DELETE_IDENTIFIERS, rows=list(batch)).consume()

        self._do("removing identifiers", work)

    def move_keys_and_sightings(self, from_ci: str, to_ci: str) -> None:
        def work() -> None:
            moves = (cypher.MOVE_KEYS, cypher.DROP_SHADOWED_SIGHTINGS, cypher.MOVE_SIGHTINGS)
            for statement in moves:
                run(self._tx, statement, from_ci=from_ci, to_ci=to_ci).consume()

        self._do("moving source keys and sightings", work)

    def set_keys(self, source: str, rows: Sequence[tuple[str, str]]) -> None:
        params = [{"key": key, "ci_id": ci_id} for key, ci_id in rows]

        def work() -> None:
            for batch in batches(params, self._size):
                run(self._tx, cypher.SET_KEYS, source=source, rows=list(batch)).consume()

        self._do("setting source keys", work)

    # -- relationships -------------------------------------------------------------------

    def save_relationships(
        self, new: Sequence[Relationship], changed: Sequence[Relationship]
    ) -> None:
        if not new and not changed:
            return
        by_type: dict[str, list[Relationship]] = {}
        for rel in (*new, *changed):
            if rel.type not in cypher.SAVE_RELATIONSHIPS:
                raise StoreError(
                    f"relationship type '{rel.type}' is not one of "
                    f"{', '.join(cypher.RELATIONSHIP_TYPES)}"
                )
            by_type.setdefault(rel.type, []).append(rel)
        seq = self.seq

        def work() -> None:
            for rel_type, rels in by_type.items():
                statement = cypher.SAVE_RELATIONSHIPS[rel_type]
                for batch in batches(rels, self._size):
                    rows = [relationship_row(r) for r in batch]
                    record = run(self._tx, statement, rows=rows, change_seq=seq).single()
                    saved = int(record["saved"]) if record else 0
                    if saved != len(rows):
                        ends = unique(i for r in batch for i in (r.from_id, r.to_id))
                        missing = sorted(set(ends) - set(load_cis(self._tx, ends, self._size)))
                        raise StoreError(
                            f"relationships name CIs that do not exist: {', '.join(missing)}"
                        )

        self._do("saving relationships", work)

    # -- sightings and staleness ---------------------------------------------------------

    def record_sightings(
        self,
        source: str,
        run_id: str,
        at: dt.datetime,
        ci_ids: Iterable[str],
        relationship_keys: Iterable[RelationshipKey],
    ) -> tuple[list[str], list[RelationshipKey]]:
        ids = unique(ci_ids)
        keys = unique(relationship_keys)
        when = to_neo4j_time(at)

        def work() -> tuple[list[str], list[RelationshipKey]]:
            was_stale_cis: list[str] = []
            for batch in batches(ids, self._size):
                for r in run(
                    self._tx,
                    cypher.RECORD_CI_SIGHTINGS,
                    ids=list(batch),
                    source=source,
                    at=when,
                    run_id=run_id,
                ):
                    if r["was_stale"]:
                        was_stale_cis.append(r["ci_id"])
            was_stale_rels: list[RelationshipKey] = []
            for key_batch in batches(keys, self._size):
                for r in run(
                    self._tx,
                    cypher.RECORD_RELATIONSHIP_SIGHTINGS,
                    rows=[rel_key_row(k) for k in key_batch],
                    source=source,
                    at=when,
                    run_id=run_id,
                ):
                    if r["was_stale"]:
                        was_stale_rels.append((r["from_id"], r["type"], r["to_id"]))
            return was_stale_cis, was_stale_rels

        return self._do("recording sightings", work)

    def record_first_sightings(
        self,
        source: str,
        run_id: str,
        at: dt.datetime,
        ci_ids: Iterable[str],
        relationship_keys: Iterable[RelationshipKey],
    ) -> None:
        ids = unique(ci_ids)
        keys = unique(relationship_keys)
        params = {"source": source, "at": to_neo4j_time(at), "run_id": run_id}

        def work() -> None:
            for batch in batches(ids, self._size):
                run(self._tx, cypher.FIRST_CI_SIGHTINGS, ids=list(batch), **params).consume()
            for key_batch in batches(keys, self._size):
                rows = [rel_key_row(k) for k in key_batch]
                run(self._tx, cypher.FIRST_RELATIONSHIP_SIGHTINGS, rows=rows, **params).consume()

        self._do("recording first sightings (has an item one already?)", work)

    def sweep_unseen(
        self, source: str, run_id: str, stale_after: int
    ) -> tuple[list[str], list[RelationshipKey]]:
        stale_cis, stale_rels, _ = self.sweep_unseen_part(source, run_id, stale_after, None)
        return stale_cis, stale_rels

    def sweep_unseen_part(
        self, source: str, run_id: str, stale_after: int, limit: int | None
    ) -> tuple[list[str], list[RelationshipKey], bool]:
        budget = _part_budget(limit)

        def work() -> tuple[list[str], list[RelationshipKey], bool]:
            record = run(self._tx, cypher.CLAIM_SWEEP, source=source, run_id=run_id).single()
            if record is not None and record["previous"] == run_id and record["previous_done"]:
                return [], [], True  # a replayed run counts once
            params = {
                "source": source,
                "run_id": run_id,
                "stale_after": stale_after,
                "sweep": record["sweep"] if record is not None else 1,
            }
            swept, swept_rels, done = self._part(
                cypher.SWEEP_CI_SIGHTINGS, cypher.SWEEP_RELATIONSHIP_SIGHTINGS, budget, params
            )
            if done:
                run(self._tx, cypher.FINISH_SWEEP, source=source).consume()
            stale_cis, stale_rels = self._stale_everywhere(
                [r["ci_id"] for r in swept if r["newly_stale"]],
                [
                    rel_key_row((r["from_id"], r["type"], r["to_id"]))
                    for r in swept_rels
                    if r["newly_stale"]
                ],
            )
            return stale_cis, stale_rels, done

        return self._do("sweeping unseen items", work)

    def expire_sightings(
        self, before: dt.datetime, limit: int | None = None
    ) -> tuple[list[str], list[RelationshipKey], bool]:
        budget = _part_budget(limit)
        params = {"before": to_neo4j_time(before)}

        def work() -> tuple[list[str], list[RelationshipKey], bool]:
            expired, expired_rels, finished = self._part(
                cypher.EXPIRE_CI_SIGHTINGS, cypher.EXPIRE_RELATIONSHIP_SIGHTINGS, budget, params
            )
            # a CI two sources stopped reporting has two sightings: check it once
            stale_cis, stale_rels = self._stale_everywhere(
                unique(r["ci_id"] for r in expired),
                [
                    rel_key_row(k)
                    for k in unique((r["from_id"], r["type"], r["to_id"]) for r in expired_rels)
                ],
            )
            return stale_cis, stale_rels, finished

        return self._do("expiring old sightings", work)

    def _part(
        self,
        ci_statement: Statement,
        relationship_statement: Statement,
        budget: int,
        params: dict[str, Any],
    ) -> tuple[list[neo4j.Record], list[neo4j.Record], bool]:
        """One part of a bounded sweep or expiry (inside the caller's transaction): up to
        ``budget`` CI sightings, then relationship sightings with what is left of it, and
        whether the work is finished (both came back short)."""
        cis = list(run(self._tx, ci_statement, **params, limit=budget))
        left = budget - len(cis)
        rels = list(run(self._tx, relationship_statement, **params, limit=left)) if left else []
        return cis, rels, left > 0 and len(rels) < left

    def _stale_everywhere(
        self, ci_ids: list[str], relationship_rows: list[dict[str, str]]
    ) -> tuple[list[str], list[RelationshipKey]]:
        """Those of the given CIs and relationships that no source reports any more (inside
        the caller's transaction)."""
        stale_cis: list[str] = []
        for batch in batches(ci_ids, self._size):
            stale_cis.extend(
                r["ci_id"] for r in run(self._tx, cypher.STALE_EVERYWHERE_CIS, ids=list(batch))
            )
        stale_rels: list[RelationshipKey] = []
        for rows in batches(relationship_rows, self._size):
            stale_rels.extend(
                (r["from_id"], r["type"], r["to_id"])
                for r in run(self._tx, cypher.STALE_EVERYWHERE_RELATIONSHIPS, rows=list(rows))
            )
        return stale_cis, stale_rels

    # -- history and conflicts -----------------------------------------------------------

    def append_history(self, entries: Sequence[HistoryEntry]) -> None:
        if not entries:
            return
        self.seq  # noqa: B018 - history is a change: advance the sequence

        def work() -> None:
            last = self._advance(cypher.SEQUENCE_HISTORY, len(entries))
            first = last - len(entries) + 1
            rows = [history_row(e, first + i) for i, e in enumerate(entries)]
            for batch in batches(rows, self._size):
                run(self._tx, cypher.CREATE_HISTORY, rows=list(batch)).consume()

        self._do("appending history", work)

    def add_conflicts(self, conflicts: Sequence[Conflict]) -> None:
        if not conflicts:
            return

        def work() -> None:
            last = self._advance(cypher.SEQUENCE_CONFLICT, len(conflicts))
            first = last - len(conflicts) + 1
            rows = [conflict_row(c, first + i) for i, c in enumerate(conflicts)]
            for batch in batches(rows, self._size):
                run(self._tx, cypher.CREATE_CONFLICTS, rows=list(batch)).consume()

        self._do("recording conflicts", work)

    # -- restore -------------------------------------------------------------------------

    def restore_source_keys(self, keys: Sequence[SourceKey]) -> None:
        by_source: dict[str, list[tuple[str, str]]] = {}
        for k in keys:
            by_source.setdefault(k.source, []).append((k.key, k.ci_id))
        for source, rows in by_source.items():
            self.set_keys(source, rows)

    def restore_sightings(
        self, cis: Sequence[CISighting], relationships: Sequence[RelationshipSighting]
    ) -> None:
        ci_rows = [{"ci_id": s.ci_id, **sighting_row(s.sighting)} for s in cis]
        rel_rows = [{**rel_key_row(s.key), **sighting_row(s.sighting)} for s in relationships]

        def work() -> None:
            for batch in batches(ci_rows, self._size):
                run(self._tx, cypher.RESTORE_CI_SIGHTINGS, rows=list(batch)).consume()
            for batch in batches(rel_rows, self._size):
                run(self._tx, cypher.RESTORE_RELATIONSHIP_SIGHTINGS, rows=list(batch)).consume()

        self._do("restoring sightings", work)

    def restore_source_sweeps(self, sweeps: Sequence[SourceSweep]) -> None:
        rows = [{"source": s.source, "run_id": s.run_id} for s in sweeps]
        self._do(
            "restoring source sweeps",
            lambda: run(self._tx, cypher.RESTORE_SOURCE_SWEEPS, rows=rows).consume(),
        )

    def restore_history(self, entries: Sequence[HistoryEntry]) -> None:
        if not entries:
            return
        self.seq  # noqa: B018 - history is a change: advance the sequence
        rows = [history_row(e, e.seq) for e in entries]

        def work() -> None:
            for batch in batches(rows, self._size):
                run(self._tx, cypher.CREATE_HISTORY, rows=list(batch)).consume()
            self._raise_sequence(cypher.SEQUENCE_HISTORY, max(e.seq for e in entries))

        self._do("restoring history (are the seqs new?)", work)

    def restore_conflicts(self, conflicts: Sequence[Conflict]) -> None:
        if not conflicts:
            return
        rows = [conflict_row(c, c.id) for c in conflicts]

        def work() -> None:
            for batch in batches(rows, self._size):
                run(self._tx, cypher.CREATE_CONFLICTS, rows=list(batch)).consume()
            self._raise_sequence(cypher.SEQUENCE_CONFLICT, max(c.id for c in conflicts))

        self._do("restoring conflicts (are the ids new?)", work)

    def restore_change_seq(self, seq: int) -> None:
        self._do(
            "restoring the change sequence",
            lambda: self._raise_sequence(cypher.SEQUENCE_CHANGE, seq),
        )
