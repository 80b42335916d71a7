"""Reproducible performance scripts and the data generators they use (see README.md)."""
