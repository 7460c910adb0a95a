"""jaxcnn's benchmark suite: `python scripts/bench.py` (see benchmarks/README.md).

The modules here import JAX at the top, so import them only after XLA_FLAGS is
final (scripts/bench.py parses its arguments with `benchmarks.cli` first).
"""
