"""Every Cypher statement of the Neo4j adapter through Neo4j's own parser and semantic
analysis (``@neo4j-cypher/language-support``, pinned in tools/cypher-lint), for Cypher 5
(Neo4j 5 LTS) and Cypher 25 (Neo4j 2025.x, Aura): no errors, no warnings, against the
labels, relationship types, property keys, functions, procedures and parameters that
``cypher.py`` declares.

No Neo4j server is needed. Node.js and the pinned package are: when they are missing this
module fails with a message saying how to install them; it never skips.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from servicegraph.cmdb.relationships import BUILTIN_TYPES
from servicegraph.storage.neo4j import cypher, schema
from servicegraph.storage.neo4j.catalogues import all_statements
from tests.neo4j.cypher_lint import TOOL, VERSIONS, LintUnavailable, lint, statement_queries

PINNED = "2.0.0-next.38"
STATEMENTS = all_statements()


@pytest.fixture(scope="module")
def linted() -> dict[str, Any]:
    try:
        return lint(statement_queries())
    except LintUnavailable as exc:
        pytest.fail(f"cannot lint Cypher: {exc}", pytrace=False)


def test_the_pinned_linter_ran(linted: dict[str, Any]) -> None:
    assert linted["package"] == PINNED
    assert tuple(linted["versions"]) == VERSIONS
    assert set(linted["results"]) == set(STATEMENTS)


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_statement_is_clean(linted: dict[str, Any], name: str) -> None:
    problems = [
        f"{version} {d['severity']} {d['line']}:{d['column']} {d['message']}"
        for version, diagnostics in linted["results"][name].items()
        for d in diagnostics
    ]
    assert problems == [], f"{name}: {STATEMENTS[name][1].text}"


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_statement_uses_every_parameter_it_declares(name: str) -> None:
    statement = STATEMENTS[name][1]
    used = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", statement.text))
    # the linter reports parameters used but not declared; this is the other direction
    assert used == set(statement.parameters)


def test_linter_reports_what_it_should() -> None:
    """The gate is real: broken statements do produce diagnostics."""
    queries = {
        "syntax": ("MATCH (c:CI RETURN c", {}),
        "undeclared_parameter": ("MATCH (c:CI {id: $nope}) RETURN c.id AS id", {}),
        "unknown_label": ("MATCH (c:Device) RETURN c.id AS id", {}),
        "unknown_type": ("MATCH (:CI)-[r:USES]->(:CI) RETURN count(r) AS n", {}),
        "unknown_property": ("MATCH (c:CI) RETURN c.colour AS colour", {}),
        "unknown_function": ("MATCH (c:CI) RETURN toUpper(c.name) AS name", {}),
        "deprecated": ("CALL { MATCH (c:CI) RETURN c } RETURN c.id AS id", {}),
    }
    try:
        results = lint(queries)["results"]
    except LintUnavailable as exc:
        pytest.fail(f"cannot lint Cypher: {exc}", pytrace=False)
    for name in queries:
        for version in VERSIONS:
            assert results[name][version], f"{name} passed under {version}"


def test_relationship_types_are_the_built_in_ones() -> None:
    assert set(cypher.RELATIONSHIP_TYPES) == {t.name for t in BUILTIN_TYPES}


def test_per_type_statements_cover_every_type() -> None:
    assert set(cypher.SAVE_RELATIONSHIPS) == set(cypher.RELATIONSHIP_TYPES)


def test_migrations_are_numbered_in_order() -> None:
    assert [m.version for m in schema.MIGRATIONS] == list(range(1, len(schema.MIGRATIONS) + 1))
    for migration in schema.MIGRATIONS:
        for statement in migration.schema:
            assert "IF NOT EXISTS" in statement.text  # safe to run concurrently and again
        for statement, params in migration.data:
            assert set(params) == set(statement.parameters)


def test_package_lock_pins_the_version() -> None:
    package = json.loads((TOOL / "package.json").read_text())
    lock = json.loads((TOOL / "package-lock.json").read_text())
    assert package["dependencies"]["@neo4j-cypher/language-support"] == PINNED
    locked = lock["packages"]["node_modules/@neo4j-cypher/language-support"]
    assert locked["version"] == PINNED
    assert locked["integrity"].startswith("sha512-")


def test_ci_installs_the_linter() -> None:
    script = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "npm ci" in script and "tools/cypher-lint" in script
