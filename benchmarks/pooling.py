"""Max pooling forward+backward: jaxcnn.ops.max_pool against lax.reduce_window (what nn.max_pool runs).

    python -m benchmarks.pooling [--rounds 15]

Non-overlapping windows take ops.max_pool's reshape/argmax route on a CPU; overlapping ones are
reduce_window in both, a control that should read 1.0. Interleaved rounds, per-round ratios
(reduce_window's time / max_pool's: > 1 means max_pool is faster).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks.timing import Variant, calibrate, fmt_ms, fmt_paired, interleaved, paired, summary, warm_up
from jaxcnn import ops

SHAPES = (  # (label, NHWC input, window, stride)
    ("FashionCNN pool1 2x2/2", (128, 28, 28, 32), 2, 2),
    ("keras_cifar_cnn pool1 2x2/2", (128, 30, 30, 32), 2, 2),
    ("VGG-like 2x2/2", (16, 112, 112, 128), 2, 2),
    ("overlapping 3x3/2 (control)", (16, 56, 56, 64), 3, 2),
)


def _reference(x, window, stride):
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, (1, window, window, 1),
                             (1, stride, stride, 1), "VALID")


def _variant(name, pool, x):
    step = jax.jit(jax.grad(lambda v: jnp.sum(jnp.sin(pool(v)))))

    def run(n):
        for _ in range(n):
            out = step(x)
        jax.block_until_ready(out)

    return Variant(name, run)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    print(f"backend {jax.default_backend()}; max pooling fwd+bwd, median ms (min..max) over {args.rounds} rounds")
    for label, shape, window, stride in SHAPES:
        x = jax.random.normal(jax.random.key(0), shape)
        vs = [_variant("ops.max_pool", lambda v: ops.max_pool(v, window, stride), x),
              _variant("reduce_window", lambda v: _reference(v, window, stride), x)]
        warm_up(vs)
        interleaved(vs, args.rounds, calibrate(vs, 0.25))
        print(f"  {label:30s} {shape}: max_pool {fmt_ms(summary(vs[0].times))}, reduce_window "
              f"{fmt_ms(summary(vs[1].times))}; speed-up per round {fmt_paired(paired(vs[0].times, vs[1].times))}")


if __name__ == "__main__":
    main()
