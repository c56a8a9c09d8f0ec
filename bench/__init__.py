"""Benchmarks: `make bench` (python -m bench). Results print as a table and land in bench/results/."""
