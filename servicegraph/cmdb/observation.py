"""Observations: what one source says about CIs and relationships at one moment.

Collectors and importers produce them; reconciliation turns them into graph changes. They
are plain data, so a collector's ``transform`` step can be tested without a store.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from servicegraph.cmdb.model import Lifecycle, OperationalState, utcnow


@dataclass(frozen=True, slots=True)
class CIRef:
    """How an observation points at a CI: by CMDB id, by the source's own key, or by an
    identifier. Exactly one of the three is set."""

    ci_id: str | None = None
    key: str | None = None
    identifier: tuple[str, str] | None = None  # (kind, raw value)

    def __str__(self) -> str:
        if self.ci_id is not None:
            return f"id:{self.ci_id}"
        if self.key is not None:
            return self.key
        assert self.identifier is not None
        return f"{self.identifier[0]}:{self.identifier[1]}"


@dataclass(frozen=True, slots=True)
class CIObservation:
    ci_class: str
    name: str | None = None
    identifiers: Mapping[str, str | list[str]] = field(default_factory=dict)
    attributes: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None  # the source's own key, stable across its runs
    ci_id: str | None = None  # set when the source already knows the CMDB id
    lifecycle: Lifecycle | None = None
    operational_state: OperationalState | None = None
    origin: str | None = None  # where it came from, for error messages (file:line)

    @property
    def label(self) -> str:
        if self.origin:
            return self.origin
        return self.key or self.ci_id or self.name or "<unnamed>"


@dataclass(frozen=True, slots=True)
class RelationshipObservation:
    type: str
    from_ref: CIRef
    to_ref: CIRef
    attributes: Mapping[str, Any] = field(default_factory=dict)
    origin: str | None = None

    @property
    def label(self) -> str:
        return self.origin or f"{self.from_ref} -{self.type}-> {self.to_ref}"


@dataclass(frozen=True)
class ObservationBatch:
    """Everything one source run reports.

    ``complete`` says the batch is the source's whole view (a full discovery or an ERP
    export): only then do items it did not report count a missed run towards staleness.
    """

    source: str
    cis: list[CIObservation] = field(default_factory=list)
    relationships: list[RelationshipObservation] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    observed_at: dt.datetime = field(default_factory=utcnow)
    complete: bool = False
