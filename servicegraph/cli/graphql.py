"""The GraphQL schema on the command line: print it, or check the committed SDL (CI)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from servicegraph.cli.common import EXIT_USAGE, fail


def graphql_schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the SDL here instead of stdout.")
    ] = None,
    check: Annotated[
        bool, typer.Option(help="Exit 1 if --output differs from the schema (for CI).")
    ] = False,
) -> None:
    """Print the GraphQL schema (SDL), as committed in schema.graphql."""
    from servicegraph.graphql.schema import sdl

    text = sdl()
    if check:
        if output is None:
            fail("--check needs --output FILE", EXIT_USAGE)
        current = output.read_text() if output.exists() else ""
        if current != text:
            fail(f"{output} is out of date: run `servicegraph graphql-schema -o {output}`")
        return
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
