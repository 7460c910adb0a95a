"""The command line of scripts/bench.py. Imports nothing heavy: XLA_FLAGS must
be final before JAX is imported, and `--xla-flags` changes it."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

SECTIONS = ("train", "ops", "compile", "memory", "parallel", "gpu")

DESCRIPTION = """jaxcnn's benchmark suite.

    python scripts/bench.py                       # every section (tens of minutes on a CPU)
    python scripts/bench.py --quick               # tiny shapes, 2-3 rounds: a smoke test (~1-2 min)
    python scripts/bench.py --only train,memory   # a subset

Sections: train (train-step images/s: jaxcnn vs plain Flax vs PyTorch), ops
(convolution ops fwd and fwd+bwd, im2col memory, a torch conv column),
compile (cold and warm-cache compile of a ResNet-50 train step, fresh
processes), memory (XLA's memory_analysis of each train step, jaxcnn vs plain
Flax), parallel (none vs pmap vs mesh on 2 simulated CPU devices), gpu
(ResNet-50 224x224 batch 256 in bf16 and f32 on a GPU/TPU: images/s and MFU;
skipped on a CPU, where --quick checks it with a ResNet-20).

Every section times its variants in one process, in interleaved rounds (each
variant once per round, in a balanced order: benchmarks.timing) after a
warm-up, and reports the median, the spread (min..max) and the ratios. Results go to OUT/RESULTS.md and
OUT/results.json (OUT: benchmarks/, or benchmarks/quick/ with --quick); a run
of some sections replaces those sections and keeps the others.
"""


def parse_sections(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown section(s) {unknown or text!r}; choose from {', '.join(SECTIONS)} "
                                         "(comma-separated).")
    return [s for s in SECTIONS if s in names]  # run in the canonical order


def bounded_int(low: int, high: int):
    """An argparse type: an int in low..high, else the one-line usage error naming the flag."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer; give one in {low}..{high}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range; give an integer in {low}..{high}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/bench.py", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny shapes, 2-3 rounds: check that the script works")
    p.add_argument("--only", type=parse_sections, default=list(SECTIONS), metavar="SECTION[,..]",
                   help=f"run these sections only ({', '.join(SECTIONS)})")
    p.add_argument("--models", default=None, metavar="NAME[,..]",
                   help="train/memory sections: only these models (lenet5, keras_cifar_cnn, resnet20, vgg11, resnet50)")
    p.add_argument("--rounds", type=bounded_int(1, 1000), default=None,
                   help="interleaved rounds per section, 1..1000 (default 10; quick 3); 0 is refused, not read as "
                        "the default")
    p.add_argument("--out", default=None, help="directory for RESULTS.md and results.json "
                                               "(default benchmarks/, or benchmarks/quick/ with --quick)")
    p.add_argument("--xla-flags", default="", metavar='"FLAGS"',
                   help='appended to XLA_FLAGS before JAX is imported; write --xla-flags="--xla_..." (with "=")')
    p.add_argument("--no-torch", action="store_true", help="leave out the PyTorch columns")
    p.add_argument("--torch-threads", type=bounded_int(1, max(4, 2 * (os.cpu_count() or 1))), default=None,
                   help="torch.set_num_threads (default: os.cpu_count(), with --quick 1; fewer on an "
                        "oversubscribed machine, where OpenMP barriers stall)")
    # Hidden child modes (fresh processes for the compile and parallel sections).
    p.add_argument("--_compile-child", dest="compile_child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_parallel-child", dest="parallel_child", default=None, help=argparse.SUPPRESS)
    return p


def apply_xla_flags(extra: str) -> str:
    """Append `extra` to XLA_FLAGS (before JAX is imported); returns the flags in effect."""
    if extra:
        if "jax" in sys.modules:
            raise RuntimeError("--xla-flags must be applied before jax is imported")
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + extra).strip()
    return os.environ.get("XLA_FLAGS", "")


def command_line(argv) -> str:
    return "python scripts/bench.py" + "".join(" " + shlex.quote(a) for a in argv)
