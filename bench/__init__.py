"""Benchmarks: each compares against the reference in the same run and writes bench/results/<name>.json."""
