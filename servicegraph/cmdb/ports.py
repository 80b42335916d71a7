"""The store port: every storage backend implements these two protocols.

Operations are coarse and batch-shaped (a list of CIs, a set of ids) because the callers
are bulk reconcilers and graph analyses; a round trip per item would make Neo4j and SQLite
equally slow.

Errors: adapters raise ``StoreUnavailable`` when the backend cannot be reached or opened,
``SchemaTooNew`` when the data was written by a newer release, and ``StoreError`` for other
backend failures, always chained (``raise ... from exc``) to the driver's exception. Bad
input is the services' job to reject before it reaches a store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from servicegraph.cmdb.identifiers import Identifier
from servicegraph.cmdb.model import (
    ConfigurationItem,
    Conflict,
    HistoryEntry,
    Relationship,
    RelationshipKey,
    SourceSighting,
)

Direction = Literal["out", "in", "both"]


@dataclass(frozen=True)
class StoreCapabilities:
    """Optional behaviour a backend may or may not offer."""

    # Several processes may write at once without external coordination.
    concurrent_writers: bool
    # The backend can evaluate variable-length traversals itself (Cypher); otherwise the
    # services traverse an in-memory projection.
    native_traversal: bool


@dataclass(frozen=True)
class CIQuery:
    """Filters for listing CIs; ``after`` is the id cursor of the previous page."""

    ci_class: str | None = None
    name_contains: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    stale: bool | None = None
    include_merged: bool = False
    limit: int = 100
    after: str | None = None


@dataclass(frozen=True, slots=True)
class EdgeChange:
    """A relationship as the impact projection needs it; ``removed`` drops it."""

    from_id: str
    type: str
    to_id: str
    redundancy_group: str | None
    min_healthy: int | None
    removed: bool


@dataclass(frozen=True)
class GraphDelta:
    """Everything impact analysis needs that changed after a change sequence number."""

    seq: int
    # id -> class of every CI created or changed (merged CIs included, with their survivor)
    cis: dict[str, tuple[str, str | None]]
    edges: list[EdgeChange]
    # cluster id -> its min_healthy attribute (None when unset)
    cluster_min_healthy: dict[str, int | None]


# -- export and restore: the records beside CIs, relationships, history and conflicts ----


@dataclass(frozen=True, slots=True)
class SourceKey:
    """A source's own key for a CI (what ``GraphWriter.set_keys`` stores)."""

    source: str
    key: str
    ci_id: str


@dataclass(frozen=True, slots=True)
class CISighting:
    ci_id: str
    sighting: SourceSighting


@dataclass(frozen=True, slots=True)
class RelationshipSighting:
    key: RelationshipKey
    sighting: SourceSighting


@dataclass(frozen=True, slots=True)
class SourceSweep:
    """The last complete run a source swept (replays of it count no missed run)."""

    source: str
    run_id: str


class GraphSnapshot(Protocol):
    """A consistent, read-only view of everything a store holds, for export.

    Each method streams its records; a snapshot is valid only inside the ``with`` block of
    ``GraphStore.snapshot``. CIs come ordered by id, relationships by key, history by
    ``seq`` and conflicts by id; the order of the other records is unspecified."""

    def change_seq(self) -> int: ...

    def cis(self) -> Iterator[ConfigurationItem]:
        """Every CI, merged ones included, with its identifiers."""

    def source_keys(self) -> Iterator[SourceKey]: ...

    def ci_sightings(self) -> Iterator[CISighting]: ...

    def relationships(self) -> Iterator[Relationship]:
        """Every relationship, removed ones included."""

    def relationship_sightings(self) -> Iterator[RelationshipSighting]: ...

    def source_sweeps(self) -> Iterator[SourceSweep]: ...

    def history(self) -> Iterator[HistoryEntry]:
        """Every history entry with its ``seq``."""

    def conflicts(self) -> Iterator[Conflict]:
        """Every conflict with its ``id``."""


class GraphWriter(Protocol):
    """One atomic unit of work. Writers are serialised: what a writer reads stays true until
    it commits, so identification cannot race another process creating the same CI."""

    def lookup_identifiers(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        """The CI id holding each identifier that is held."""

    def lookup_keys(self, source: str, keys: Iterable[str]) -> dict[str, str]:
        """The CI id each of ``source``'s own keys was mapped to."""

    def load_cis(self, ids: Iterable[str]) -> dict[str, ConfigurationItem]:
        """The CIs (merged ones included) among ``ids``; unknown ids are absent."""

    def load_relationships(
        self, keys: Iterable[RelationshipKey]
    ) -> dict[RelationshipKey, Relationship]:
        """Relationships (removed ones included) among ``keys``."""

    def relationships_of(self, ci_ids: Iterable[str]) -> list[Relationship]:
        """Current (not removed) relationships with either end in ``ci_ids``."""

    def insert_cis(self, cis: Sequence[ConfigurationItem]) -> None:
        """Create CIs with their identifiers. Ids and identifiers must be new."""

    def update_cis(self, cis: Sequence[ConfigurationItem]) -> None:
        """Replace stored CIs (not their identifiers) by these versions."""

    def add_identifiers(self, rows: Sequence[tuple[Identifier, str]]) -> None:
        """Attach identifiers to CIs. An identifier held by another CI raises StoreError."""

    def remove_identifiers(self, identifiers: Sequence[Identifier]) -> None: ...

    def move_keys_and_sightings(self, from_ci: str, to_ci: str) -> None:
        """Repoint every source key and sighting of ``from_ci`` to ``to_ci`` (for merges);
        where both have a sighting by one source, ``to_ci``'s is kept."""

    def set_keys(self, source: str, rows: Sequence[tuple[str, str]]) -> None:
        """Map ``source``'s keys to CI ids (insert or replace)."""

    def save_relationships(
        self, new: Sequence[Relationship], changed: Sequence[Relationship]
    ) -> None: ...

    def record_sightings(
        self,
        source: str,
        run_id: str,
        at: dt.datetime,
        ci_ids: Iterable[str],
        relationship_keys: Iterable[RelationshipKey],
    ) -> tuple[list[str], list[RelationshipKey]]:
        """Note that ``source`` reported these items in ``run_id``; reset missed runs.

        Returns the CIs and relationships that were stale for this source before."""

    def record_first_sightings(
        self,
        source: str,
        run_id: str,
        at: dt.datetime,
        ci_ids: Iterable[str],
        relationship_keys: Iterable[RelationshipKey],
    ) -> None:
        """``record_sightings`` for items that have no sighting yet (a run's own new CIs
        and the relationships that end at one): none can have been stale. A store may
        write them without looking for one first, and refuse one that has a sighting."""

    def sweep_unseen(
        self, source: str, run_id: str, stale_after: int
    ) -> tuple[list[str], list[RelationshipKey]]:
        """Count a missed run for every item ``source`` reported before but not in
        ``run_id``. Returns the CIs and the relationships that now are stale for every
        source that ever reported them. Sweeping the run a source swept last again (a
        replayed run) counts nothing and returns nothing."""

    def sweep_unseen_part(
        self, source: str, run_id: str, stale_after: int, limit: int | None
    ) -> tuple[list[str], list[RelationshipKey], bool]:
        """``sweep_unseen`` in parts, each in its own unit, for a sweep too big for one
        transaction: counts the missed run of at most ``limit`` items (None: all) that no
        earlier part of this run's sweep counted, and returns what became stale, as
        ``sweep_unseen`` does, and whether the sweep is finished. Call it with the same
        run until it is. Once finished, the same run again counts nothing. A store that
        holds a sweep of any size in one unit may finish it in the first part."""

    def expire_sightings(
        self, before: dt.datetime, limit: int | None = None
    ) -> tuple[list[str], list[RelationshipKey], bool]:
        """Mark stale the sightings last seen before ``before`` (a source that stopped
        reporting altogether), at most ``limit`` of them (None: all), so that an expiry of
        any size runs in units of bounded size. Returns the CIs and relationships that
        became stale for every source that ever reported them, and whether no such
        sighting is left. Call it in new units until it is. A store that holds an expiry of
        any size in one unit may finish it in the first call."""

    def append_history(self, entries: Sequence[HistoryEntry]) -> None: ...

    def add_conflicts(self, conflicts: Sequence[Conflict]) -> None: ...

    # Restoring an export into an empty store. CIs, keys and relationships go through
    # ``insert_cis``, ``set_keys`` and ``save_relationships``, which keep ids and times;
    # these keep what the ordinary writes assign themselves.

    def restore_sightings(
        self, cis: Sequence[CISighting], relationships: Sequence[RelationshipSighting]
    ) -> None:
        """Store sightings exactly as given (times, runs, missed runs, staleness)."""

    def restore_source_sweeps(self, sweeps: Sequence[SourceSweep]) -> None: ...

    def restore_history(self, entries: Sequence[HistoryEntry]) -> None:
        """Store entries with their own ``seq`` (which must be new); later entries are
        numbered after the highest. Order by ``seq`` is thereby kept across stores."""

    def restore_conflicts(self, conflicts: Sequence[Conflict]) -> None:
        """Store conflicts with their own ``id`` (which must be new); later ones are
        numbered after the highest."""

    def restore_change_seq(self, seq: int) -> None:
        """Raise the change sequence to at least ``seq`` (it never goes down)."""


@dataclass(frozen=True, slots=True)
class CISummary:
    """What incident titles and impact need of a CI, without reading all of it."""

    name: str
    criticality: Any  # the ``criticality`` attribute: 1 (highest) .. 5; None when unset
    # a business service's SLA: its ``sla_tier`` and ``service_hours`` attributes, which
    # choose the policy and calendar of the monitoring incidents that impact it
    sla_tier: Any = None
    service_hours: Any = None


class GraphStore(Protocol):
    capabilities: StoreCapabilities

    def migrate(self) -> None:
        """Create or upgrade the schema; safe to run concurrently and repeatedly."""

    def close(self) -> None: ...

    def ping(self) -> None:
        """Raise StoreUnavailable unless the backend answers."""

    def write(self) -> AbstractContextManager[GraphWriter]:
        """A unit of work: committed when the block exits normally, rolled back otherwise."""

    def get_cis(self, ids: Iterable[str]) -> dict[str, ConfigurationItem]:
        """The CIs among ``ids`` (merged ones included); unknown ids are absent."""

    def summaries(self, ids: Iterable[str]) -> dict[str, CISummary]:
        """Name and criticality of the CIs among ``ids``, as ``get_cis`` would give them
        (merged ones included, unknown ids absent), at a fraction of its cost: the
        correlator asks for every new root and business service in a storm."""

    def resolve_identifiers(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        """The CI id holding each (normalised) identifier that is held."""

    def resolve_keys(self, keys: Iterable[str], source: str | None = None) -> dict[str, set[str]]:
        """For each source key (of ``source``, or of any source), the CI ids it maps to."""

    def find_cis(self, query: CIQuery) -> list[ConfigurationItem]:
        """CIs matching ``query`` ordered by id, at most ``query.limit``."""

    def relationships(
        self,
        ci_ids: Iterable[str],
        *,
        direction: Direction = "both",
        types: Iterable[str] | None = None,
        include_removed: bool = False,
    ) -> list[Relationship]:
        """Relationships leaving (``out``), entering (``in``) or touching these CIs."""

    def history(
        self,
        ci_ids: Iterable[str],
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[HistoryEntry]:
        """History of these CIs (entries where they are either end), ordered by ``seq``."""

    def merged_into(self, ci_id: str) -> list[str]:
        """Ids of CIs that were merged into ``ci_id``, directly or transitively."""

    def sightings(self, ci_id: str) -> list[SourceSighting]:
        """Per source: when it first and last reported the CI, and missed runs."""

    def conflicts(self, *, limit: int = 1000) -> list[Conflict]:
        """Recorded reconciliation conflicts, newest first."""

    def change_seq(self) -> int:
        """A number that grows with every committed change to CIs or relationships."""

    def graph_delta(self, since_seq: int) -> GraphDelta:
        """Relationships and cluster sizes changed after ``since_seq`` (0: everything)."""

    def counts(self) -> dict[str, int]:
        """Numbers of CIs, relationships and history entries, for health and stats."""

    def snapshot(self) -> AbstractContextManager[GraphSnapshot]:
        """A consistent view of the whole store for export. Writers may be held back
        while it is open (on Neo4j they are: it holds the write lock)."""
