"""The ``servicegraph`` command line (``python -m servicegraph.cli``)."""

from servicegraph.cli.main import app, main

__all__ = ["app", "main"]
