#!/usr/bin/env python
"""The convolution-ops benchmark: an alias of `python scripts/bench.py --only ops`.

    python scripts/bench_ops.py            # full run
    python scripts/bench_ops.py --quick    # small shapes, few rounds (a smoke test)

Any other option of scripts/bench.py passes through (--rounds, --out, --xla-flags, --no-torch).
"""

from __future__ import annotations

import os
import runpy
import sys

if __name__ == "__main__":
    bench = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench.py"))
    sys.exit(bench["main"](["--only", "ops"] + sys.argv[1:]))
