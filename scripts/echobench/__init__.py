"""Shared code of the benchmark scripts (scripts/bench, scripts/compare, bench/*)."""
