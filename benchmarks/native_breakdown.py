"""What each family of native CPU kernels buys in a whole train step.

`python -m benchmarks.native_breakdown --models resnet20,resnet50,vgg11 --rounds 7`
times jaxcnn's train step (the one `scripts/bench.py --only train` times, same
cases and batches) with every native kernel on, then with one family at a
time switched off (JAXCNN_NATIVE_CONV / _BN / _POOL / _DENSE / _BIAS = 0, read when the step is
traced), then BatchNorm and pooling together (the native convolutions alone),
then all off (XLA's convolutions, BatchNorm, pooling, dense products and bias gradients), beside PyTorch's
twin in its faster memory format, all in interleaved rounds. Prints median ms
per step and, per round, each variant's time over the all-native step's: what
switching that family off costs. The allocator tuning of
`jaxcnn.runtime.configure()` is per process: run it again with
JAXCNN_MALLOC_TUNING=0 to see the steps without it.
"""

from __future__ import annotations

import argparse
import os
import statistics

import jaxcnn.runtime

jaxcnn.runtime.configure()  # jaxcnn's XLA:CPU flags and allocator tuning, as every entry point applies them

from benchmarks import steps  # noqa: E402
from benchmarks.timing import calibrate, interleaved, warm_up  # noqa: E402
from jaxcnn.ops import native  # noqa: E402

# Beyond bench.py's cases: the skip ablation's deepest arm (ResNet-56 at half width on 28x28x1, batch 128).
EXTRA_CASES = {"resnet56_half": steps.TrainCase("resnet56", (28, 28, 1), 128, {"base_width": 8, "num_classes": 10})}

CONFIGS = {
    "native": {},
    "conv off": {"conv": "0"},
    "bn off": {"batch_norm": "0"},
    "pool off": {"pool": "0"},
    "dense off": {"dense": "0"},
    "bias off": {"bias": "0"},
    "bn+pool off": {"batch_norm": "0", "pool": "0"},  # the native convolutions alone (before BatchNorm and pooling)
    "all off": {"conv": "0", "batch_norm": "0", "pool": "0", "dense": "0", "bias": "0"},
}


def variant_with(case, batch, switches: dict, name: str):
    """jaxcnn's step for `case`, traced (and compiled, by one untimed step) with `switches` set."""
    old = {k: os.environ.get(native.SWITCHES[k]) for k in native.SWITCHES}
    os.environ.update({native.SWITCHES[k]: switches.get(k, "1") for k in native.SWITCHES})
    try:
        v = steps.jaxcnn_variant(case, batch)
        v.name = name
        warm_up([v])
        return v
    finally:
        for k, value in old.items():
            os.environ.pop(native.SWITCHES[k], None) if value is None else os.environ.__setitem__(native.SWITCHES[k], value)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet20,resnet50,vgg11",
                   help=f"bench.py's train cases, or {', '.join(EXTRA_CASES)}")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    torch, why = (None, "--no-torch") if args.no_torch else steps.torch_available()
    if torch is not None:
        steps.torch_setup_threads()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    extra = [EXTRA_CASES[m] for m in names if m in EXTRA_CASES]
    rest = ",".join(m for m in names if m not in EXTRA_CASES)
    for case in (steps.select_cases(False, rest) if rest else ()) + tuple(extra):
        print(f"\n== {case.label}", flush=True)
        batch = steps.make_batch(case, getattr(steps.jaxcnn_parts(case)[0], "num_classes", 10))
        variants = [variant_with(case, batch, sw, name) for name, sw in CONFIGS.items()]
        if torch is not None:
            try:
                tv, _ = steps.torch_variant(case, batch)
                variants.append(tv)
            except ValueError as e:  # no PyTorch twin for these fields
                print(f"  no PyTorch column: {e}")
        reps = calibrate(variants, 1.0)
        interleaved(variants, args.rounds, reps)
        base = variants[0].times
        for v in variants:
            per_round = [t / b for t, b in zip(v.times, base)]
            print(f"  {v.name:9s} {1e3 * statistics.median(v.times):9.2f} ms  x{statistics.median(per_round):.3f} of "
                  f"native per round ({min(per_round):.3f}-{max(per_round):.3f}) {v.note}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
