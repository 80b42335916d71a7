"""The committed SDL (schema.graphql) is the schema the code builds: CI fails on drift."""

from __future__ import annotations

import difflib
from pathlib import Path

from typer.testing import CliRunner

from servicegraph.cli import app
from servicegraph.graphql.schema import build_schema, sdl

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_schema_graphql_is_up_to_date() -> None:
    committed = SCHEMA_FILE.read_text()
    current = sdl()
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            current.splitlines(keepends=True),
            "schema.graphql (committed)",
            "schema (from the code)",
        )
    )
    assert committed == current, (
        "schema.graphql is out of date; run `servicegraph graphql-schema -o schema.graphql` "
        f"and commit it:\n{diff}"
    )


def test_the_cli_exports_and_checks_the_schema(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "schema.graphql"
    assert runner.invoke(app, ["graphql-schema", "-o", str(target)]).exit_code == 0
    assert target.read_text() == sdl()
    assert runner.invoke(app, ["graphql-schema", "-o", str(target), "--check"]).exit_code == 0
    target.write_text(target.read_text().replace("type CI {", "type CI {\n  extra: Int"))
    stale = runner.invoke(app, ["graphql-schema", "-o", str(target), "--check"])
    assert stale.exit_code == 1 and "out of date" in stale.output
    printed = runner.invoke(app, ["graphql-schema"])
    assert printed.stdout == sdl()


def test_the_readme_examples_are_valid_graphql() -> None:
    from graphql import DocumentNode, parse, validate

    readme = (SCHEMA_FILE.parent / "README.md").read_text()
    blocks = readme.split("```graphql\n")[1:]
    assert len(blocks) >= 2
    schema = build_schema()._schema
    for block in blocks:
        document = parse(block.split("```", 1)[0])
        for definition in document.definitions:
            errors = validate(schema, DocumentNode(definitions=(definition,)))
            assert not errors, (block, errors)
