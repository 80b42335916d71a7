"""Adapters of every port, one folder per backend: ``sqlite/`` (the embedded default, files
under DATA_DIR) and ``neo4j/`` (production). Only here are database drivers imported;
``bootstrap`` chooses among them."""
