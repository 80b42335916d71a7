"""The HTTP entry point's parts that are not FastAPI routes: what every request passes
before the app reads it (``gate``), and what ``/healthz`` checks (``health``)."""
