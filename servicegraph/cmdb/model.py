"""The records of the configuration graph: CIs, relationships, history and conflicts."""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from servicegraph.cmdb.identifiers import Identifier

JsonValue = Any


class Lifecycle(enum.StrEnum):
    PLANNED = "planned"
    ACTIVE = "active"
    RETIRED = "retired"


class OperationalState(enum.StrEnum):
    UP = "up"
    DOWN = "down"
    DEGRADED = "degraded"
    UNKNOWN = "unknown"


class HistoryKind(enum.StrEnum):
    CREATED = "created"
    ATTRIBUTE = "attribute"
    NAME = "name"
    LIFECYCLE = "lifecycle"
    OPERATIONAL_STATE = "operational_state"
    IDENTIFIER_ADDED = "identifier_added"
    IDENTIFIER_REMOVED = "identifier_removed"
    RELATIONSHIP_ADDED = "relationship_added"
    RELATIONSHIP_REMOVED = "relationship_removed"
    RELATIONSHIP_ATTRIBUTE = "relationship_attribute"
    RELATIONSHIP_STALE = "relationship_stale"
    RELATIONSHIP_FRESH = "relationship_fresh"
    STALE = "stale"
    FRESH = "fresh"
    MERGED_INTO = "merged_into"
    MERGED_FROM = "merged_from"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id(prefix: str) -> str:
    """``<prefix>-`` and 16 random hex digits: the ids of CIs, incidents, problems and
    changes (64 random bits; cheaper than a UUID when a storm opens thousands)."""
    return f"{prefix}-{secrets.token_hex(8)}"


def new_ci_id() -> str:
    return new_id("ci")


@dataclass(frozen=True, slots=True)
class ConfigurationItem:
    id: str
    ci_class: str
    name: str
    attributes: Mapping[str, JsonValue]
    identifiers: tuple[Identifier, ...] = ()
    lifecycle: Lifecycle = Lifecycle.ACTIVE
    operational_state: OperationalState = OperationalState.UNKNOWN
    stale: bool = False
    merged_into: str | None = None
    created_at: dt.datetime = field(default_factory=utcnow)
    updated_at: dt.datetime = field(default_factory=utcnow)
    version: int = 1
    # Which source last set each attribute (and "name"): the basis of source precedence.
    attribute_sources: Mapping[str, str] = field(default_factory=dict)

    def identifier(self, kind: str) -> str | None:
        return next((value for k, value in self.identifiers if k == kind), None)


RelationshipKey = tuple[str, str, str]  # (from_id, type, to_id)


@dataclass(frozen=True, slots=True)
class Relationship:
    from_id: str
    type: str
    to_id: str
    attributes: Mapping[str, JsonValue] = field(default_factory=dict)
    created_at: dt.datetime = field(default_factory=utcnow)
    updated_at: dt.datetime = field(default_factory=utcnow)
    removed: bool = False
    stale: bool = False

    @property
    def key(self) -> RelationshipKey:
        return (self.from_id, self.type, self.to_id)


@dataclass(frozen=True, slots=True)
class SourceSighting:
    """When a source last reported a CI or relationship, and how many runs it has missed."""

    source: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    last_run: str | None
    missed_runs: int = 0
    stale: bool = False


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One recorded change. Relationship changes carry the other end and the type."""

    at: dt.datetime
    ci_id: str
    kind: HistoryKind
    field: str | None = None
    old: JsonValue = None
    new: JsonValue = None
    source: str | None = None
    actor: str | None = None
    run_id: str | None = None
    other_ci_id: str | None = None
    seq: int = 0  # assigned by the store; orders entries with equal timestamps


class ConflictKind(enum.StrEnum):
    # An identifier the observation carries already belongs to a different CI.
    IDENTIFIER_CLAIMED = "identifier_claimed"
    # Two observations in one batch claim the same identifier but are different items.
    DUPLICATE_IN_BATCH = "duplicate_in_batch"
    # The observation's class differs from the class of the CI it matched.
    CLASS_MISMATCH = "class_mismatch"
    # A relationship whose end is a record that was not applied because of a conflict.
    ENDPOINT_SKIPPED = "endpoint_skipped"
    # A record a partial import left out because it is invalid (the detail says why).
    INVALID_RECORD = "invalid_record"


@dataclass(frozen=True, slots=True)
class Conflict:
    kind: ConflictKind
    source: str
    item: str  # the observation (key, id or file:line)
    identifier: Identifier | None
    ci_id: str | None  # the CI the observation matched or would create
    other_ci_id: str | None  # the CI already holding the identifier
    detail: str
    detected_at: dt.datetime = field(default_factory=utcnow)
    run_id: str | None = None
    id: int = 0

    def __str__(self) -> str:
        ident = f" {self.identifier[0]}={self.identifier[1]}" if self.identifier else ""
        return f"{self.item}: {self.kind}{ident}: {self.detail}"


@dataclass(frozen=True, slots=True)
class CIState:
    """A CI as it was at one moment: attributes and the relationships it had then."""

    ci: ConfigurationItem
    relationships: tuple[Relationship, ...]
    at: dt.datetime
