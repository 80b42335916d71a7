"""A catalogue of Cypher statements and the schema they may use, as data.

The configuration graph's statements live in ``cypher.py``; the desk's (tickets, inbox,
directory, tokens, poll state, outbox, reports) each in a ``*_cypher.py`` module of their
own with a ``CATALOGUE``. ``catalogues.py`` lists them all, and the Cypher lint
(``tests/neo4j/test_cypher_lint.py``) runs every statement of every catalogue through
Neo4j's own parser and semantic analysis against the union of what they declare: a
statement that names an undeclared label, relationship type, property key, function or
parameter fails that test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Statement:
    """One Cypher statement and the parameters it takes (exactly these, no others)."""

    name: str
    text: str
    parameters: frozenset[str] = field(default_factory=frozenset)


@dataclass
class Catalogue:
    """The statements of one part of the adapter and the schema they use.

    ``parameters`` maps every parameter name to an example value of its type (what the
    linter is told); ``procedures`` maps a procedure name to its (argument, Cypher type)
    pairs.
    """

    name: str
    labels: tuple[str, ...]
    relationship_types: tuple[str, ...]
    property_keys: tuple[str, ...]
    parameters: Mapping[str, Any]
    functions: tuple[str, ...] = ()
    procedures: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    statements: dict[str, Statement] = field(default_factory=dict)

    def statement(self, name: str, text: str, *parameters: str) -> Statement:
        """Declare a statement; its whitespace is folded so that logs show one line."""
        if name in self.statements:
            raise ValueError(f"{self.name}: statement {name} declared twice")
        unknown = set(parameters) - set(self.parameters)
        if unknown:
            raise ValueError(f"{self.name}: {name}: undeclared parameters {sorted(unknown)}")
        statement = Statement(name, " ".join(text.split()), frozenset(parameters))
        self.statements[name] = statement
        return statement
