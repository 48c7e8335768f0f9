"""Benchmarks of the platform against a bare DuckDB script and a pandas baseline (GitHub issue #7)."""
