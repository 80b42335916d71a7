"""The configuration graph: CI classes, relationships, the store port, reconciliation,
history, and impact analysis."""
