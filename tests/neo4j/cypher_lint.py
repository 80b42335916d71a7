"""Runs servicegraph's Cypher through Neo4j's own front-end (tools/cypher-lint)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from servicegraph.storage.neo4j.catalogues import CATALOGUES, all_statements

TOOL = Path(__file__).resolve().parents[2] / "tools" / "cypher-lint"
VERSIONS = ("CYPHER 5", "CYPHER 25")
SETUP_HINT = "install Node.js 20+ and run `npm ci --prefix tools/cypher-lint` (`.ci/run` does)"


class LintUnavailable(RuntimeError):
    """Node or the pinned linter is missing: a setup problem, never a reason to skip."""


# Neo4j's own signatures of the built-ins whose arguments the front-end checks against
# the schema (it knows the others itself); a function not listed is declared without any.
_SIGNATURES: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "datetime": (
        "datetime(input = DEFAULT_TEMPORAL_ARGUMENT :: ANY) :: ZONED DATETIME",
        [
            {
                "name": "input",
                "type": "ANY",
                "description": "",
                "isDeprecated": False,
                "default": "DefaultParameterValue{value=DEFAULT_TEMPORAL_ARGUMENT, type=ANY}",
            }
        ],
    ),
}


def _function(name: str) -> dict[str, Any]:
    signature, arguments = _SIGNATURES.get(name, (f"{name}()", []))
    return {
        "name": name,
        "category": "",
        "description": "",
        "isBuiltIn": True,
        "argumentDescription": arguments,
        "returnDescription": "",
        "signature": signature,
        "aggregating": name == "count",
        "isDeprecated": False,
    }


def _procedure(name: str, arguments: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    signature = ", ".join(f"{arg} :: {kind}" for arg, kind in arguments)
    return {
        "name": name,
        "description": "",
        "mode": "READ",
        "worksOnSystem": False,
        "argumentDescription": [
            {"name": arg, "description": "", "type": kind, "isDeprecated": False}
            for arg, kind in arguments
        ],
        "returnDescription": [],
        "signature": f"{name}({signature})",
        "admin": False,
        "option": {"deprecated": False},
    }


def _union(values: Iterable[Iterable[str]]) -> list[str]:
    return sorted({v for group in values for v in group})


def db_schema() -> dict[str, Any]:
    """What the linter is told the database holds: exactly what the catalogues declare
    (``servicegraph.storage.neo4j.catalogues``), together."""
    functions = _union(c.functions for c in CATALOGUES)
    procedures = {p: args for c in CATALOGUES for p, args in c.procedures.items()}
    return {
        "labels": _union(c.labels for c in CATALOGUES),
        "relationshipTypes": _union(c.relationship_types for c in CATALOGUES),
        "propertyKeys": _union(c.property_keys for c in CATALOGUES),
        "functions": {v: {f: _function(f) for f in functions} for v in VERSIONS},
        "procedures": {
            v: {p: _procedure(p, args) for p, args in procedures.items()} for v in VERSIONS
        },
    }


def lint(queries: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Lint ``{name: (text, parameters)}`` in one Node process."""
    node = shutil.which("node")
    if node is None:
        raise LintUnavailable(f"`node` is not on PATH; {SETUP_HINT}")
    if not (TOOL / "node_modules" / "@neo4j-cypher" / "language-support").is_dir():
        raise LintUnavailable(f"{TOOL}/node_modules is missing; {SETUP_HINT}")
    payload = {
        "schema": db_schema(),
        "versions": list(VERSIONS),
        "queries": {name: {"text": t, "parameters": p} for name, (t, p) in queries.items()},
    }
    proc = subprocess.run(
        [node, str(TOOL / "lint.mjs")],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise LintUnavailable(f"cypher-lint failed ({proc.returncode}): {proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def statement_queries() -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        name: (s.text, {p: c.parameters[p] for p in sorted(s.parameters)})
        for name, (c, s) in all_statements().items()
    }
