"""Every catalogue of Cypher statements the Neo4j adapter runs (see ``catalogue.py``)."""

from __future__ import annotations

from servicegraph.storage.neo4j import cypher, schema
from servicegraph.storage.neo4j.catalogue import Catalogue, Statement

CATALOGUES: tuple[Catalogue, ...] = (
    cypher.CATALOGUE,
    *(part.CATALOGUE for part in schema.DESK_PARTS),
)


def qualified(catalogue: Catalogue, statement: Statement) -> str:
    """A statement's name across catalogues: the graph's keep their bare names."""
    if catalogue is cypher.CATALOGUE:
        return statement.name
    return f"{catalogue.name}:{statement.name}"


def all_statements() -> dict[str, tuple[Catalogue, Statement]]:
    """Every statement by qualified name, with the catalogue that declares it."""
    found: dict[str, tuple[Catalogue, Statement]] = {}
    for catalogue in CATALOGUES:
        for statement in catalogue.statements.values():
            found[qualified(catalogue, statement)] = (catalogue, statement)
    return found
