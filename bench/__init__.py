"""Benchmarks: `python -m bench.run` (or `make bench`) runs every `bench/bench_*.py`.

Each module exposes `run(quick: bool = False) -> dict` of metrics; see
`bench.common` for the metric format and the shared cluster and load tools.
"""
