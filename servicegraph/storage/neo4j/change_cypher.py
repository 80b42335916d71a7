"""The Cypher of changes with their approvals, tasks and CIs, freeze windows, SLA clocks
and escalations (a catalogue: see ``catalogue.py``)."""

from __future__ import annotations

from typing import Any

from servicegraph.storage.neo4j.catalogue import Catalogue, Statement

LABELS: tuple[str, ...] = ()
RELATIONSHIP_TYPES: tuple[str, ...] = ()
PROPERTY_KEYS: tuple[str, ...] = ()
FUNCTIONS: tuple[str, ...] = ()
PARAMETERS: dict[str, Any] = {}

CATALOGUE = Catalogue(
    "changes",
    labels=LABELS,
    relationship_types=RELATIONSHIP_TYPES,
    property_keys=PROPERTY_KEYS,
    parameters=PARAMETERS,
    functions=FUNCTIONS,
)
_statement = CATALOGUE.statement

# Constraints and indexes (each CREATE ... IF NOT EXISTS), the write locks and the
# counters this part needs; ``schema.py`` creates them all in the desk's migration.
SCHEMA: tuple[Statement, ...] = ()
LOCKS: tuple[str, ...] = ()
SEQUENCES: tuple[str, ...] = ()
