"""Benchmarks for acllm on public data sets (see docs/BENCHMARKS.md). Not shipped in the package."""
