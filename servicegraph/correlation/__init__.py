"""Correlation: monitoring events -> deduplicated alerts -> incidents with a topology root cause."""
