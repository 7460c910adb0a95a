"""Pooling forward+backward on the CPU: each route jaxcnn.ops can take, beside lax.reduce_window (what
nn.max_pool and nn.avg_pool run).

    python -m benchmarks.pooling [--rounds 15]

Max pooling: the route ops.max_pool takes, the native kernel (jaxcnn.ops.native.pool) called directly, the
reshape/argmax route over non-overlapping tiles (jaxcnn.ops.pooling._max_over_tiles) and reduce_window;
average pooling: ops.avg_pool's route, the native kernel and reduce_window. Interleaved rounds; per-round
speed-ups over reduce_window (> 1: faster than reduce_window). The constants of jaxcnn.ops.pooling's routing
(NATIVE_MAX_TILES_MIN_CHANNELS, native average pooling only for overlapping windows) come from this.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks.timing import calibrate, calling_variant, fmt_ms, fmt_paired, interleaved, paired, summary, warm_up
from jaxcnn import ops
from jaxcnn.ops import native, pooling

SHAPES = (  # (label, NHWC input, window, stride)
    ("LeNet-5 S2 2x2/2", (128, 28, 28, 6), 2, 2),
    ("LeNet-5 S4 2x2/2", (128, 10, 10, 16), 2, 2),
    ("LeNet-5 S2 at batch 1024", (1024, 28, 28, 6), 2, 2),
    ("FashionCNN pool1 2x2/2", (128, 28, 28, 32), 2, 2),
    ("FashionCNN pool2 2x2/2", (128, 14, 14, 64), 2, 2),
    ("small, 64 maps 2x2/2", (8, 10, 10, 64), 2, 2),
    ("DenseNet-BC transition 2x2/2", (64, 32, 32, 120), 2, 2),
    ("keras_cifar_cnn pool1 2x2/2", (128, 30, 30, 32), 2, 2),
    ("VGG-like 2x2/2", (16, 112, 112, 128), 2, 2),
    ("overlapping 3x3/2 (control)", (16, 56, 56, 64), 3, 2),
)


def _reference(x, window, stride):
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, (1, window, window, 1),
                             (1, stride, stride, 1), "VALID")


def _reference_avg(x, window, stride):
    return lax.reduce_window(x, np.array(0.0, x.dtype), lax.add, (1, window, window, 1),
                             (1, stride, stride, 1), "VALID") / (window * window)


def _tiles(x, window):
    h, w = (x.shape[1] // window) * window, (x.shape[2] // window) * window
    return pooling._max_over_tiles(x[:, :h, :w], (window, window))


def _variant(name, pool, x):
    """Forward and backward of `pool` on x (the gradient of sum(sin(pool(x))))."""
    return calling_variant(name, jax.jit(jax.grad(lambda v: jnp.sum(jnp.sin(pool(v))))), (x,))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    print(f"backend {jax.default_backend()}; max pooling fwd+bwd, median ms (min..max) over {args.rounds} rounds")
    native._load()  # the kernels are called directly below, beside the route ops takes
    for label, shape, window, stride in SHAPES:
        x = jax.random.normal(jax.random.key(0), shape)
        w = pooling._native_window((1, window, window, 1), (1, stride, stride, 1), ((0, 0),) * 4)
        vs = [_variant("ops", lambda v: ops.max_pool(v, window, stride), x),
              _variant("native", lambda v: pooling.native_pool().max_pool(v, w), x),
              _variant("reduce_window", lambda v: _reference(v, window, stride), x)]
        if window == stride:
            vs.append(_variant("tiles", lambda v: _tiles(v, window), x))
        vs += [_variant("avg ops", lambda v: ops.avg_pool(v, window, stride), x),
               _variant("avg native", lambda v: pooling.native_pool().avg_pool(v, w), x),
               _variant("avg reduce_window", lambda v: _reference_avg(v, window, stride), x)]
        warm_up(vs)
        interleaved(vs, args.rounds, calibrate(vs, 0.25))
        t = {v.name: v.times for v in vs}
        over = lambda name, ref="reduce_window": fmt_paired(paired(t[name], t[ref]))  # noqa: E731
        line = (f"  {label:28s} {shape}: max, reduce_window {fmt_ms(summary(t['reduce_window']))}; "
                f"speed-up over it: ops {over('ops')}, native {over('native')}")
        if "tiles" in t:
            line += f", tiles {over('tiles')}"
        line += (f" | avg, reduce_window {fmt_ms(summary(t['avg reduce_window']))}; ops "
                 f"{over('avg ops', 'avg reduce_window')}, native {over('avg native', 'avg reduce_window')}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
