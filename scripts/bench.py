#!/usr/bin/env python
"""jaxcnn's benchmark suite (sections train, ops, compile, memory, parallel).

    python scripts/bench.py                  # everything; writes benchmarks/RESULTS.md and results.json
    python scripts/bench.py --quick          # tiny shapes, 2-3 rounds (a smoke test; writes benchmarks/quick/)
    python scripts/bench.py --only ops,train # a subset
    python scripts/bench.py --help           # every option

The code lives in benchmarks/; see benchmarks/README.md.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.cli import apply_xla_flags, build_parser, command_line  # noqa: E402  (imports no JAX)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    apply_xla_flags(args.xla_flags)  # before JAX is imported anywhere
    import jaxcnn.runtime

    jaxcnn.runtime.configure()  # jaxcnn's XLA:CPU flags, as every entry point applies them
    if args.compile_child:  # fresh processes of the compile and parallel sections
        from benchmarks.section_compile import child

        return child(args.compile_child) or 0
    if args.parallel_child:
        from benchmarks.section_parallel import child

        return child(args.parallel_child) or 0
    from benchmarks.main import main as run

    return run(args, command_line(argv))


if __name__ == "__main__":
    sys.exit(main())
