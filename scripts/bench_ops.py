"""Benchmark the convolution ops side by side.

    python scripts/bench_ops.py            # full run
    python scripts/bench_ops.py --quick    # small shapes, few rounds (a smoke test)

Measures forward and forward+backward time of
  * convolve vs cross_correlate (the kernel flip should be free: ratio >= 0.98),
  * conv_im2col vs cross_correlate, with the extra memory im2col needs,
  * conv_transpose,
in one process, in interleaved rounds (every variant once per round, in a
rotating order), and reports the median and the spread (min..max) per variant.
Images NHWC, kernels HWIO.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from jaxcnn import ops


def build(x, w, stride, padding):
    y_shape = jax.eval_shape(lambda x, w: ops.cross_correlate(x, w, stride=stride, padding=padding), x, w).shape
    fwd = {
        "cross_correlate": lambda x, w: ops.cross_correlate(x, w, stride=stride, padding=padding),
        "convolve": lambda x, w: ops.convolve(x, w, stride=stride, padding=padding),
        "conv_im2col": lambda x, w: ops.conv_im2col(x, w, stride=stride, padding=padding),
    }
    cases = {}
    for name, f in fwd.items():
        cases[f"{name} fwd"] = (jax.jit(f), (x, w))
        loss = lambda x, w, f=f: jnp.sum(f(x, w) ** 2)
        cases[f"{name} fwd+bwd"] = (jax.jit(jax.value_and_grad(loss, argnums=(0, 1))), (x, w))
    y = jnp.ones(y_shape, x.dtype)
    tr = lambda y, w: ops.conv_transpose(y, w, stride=stride, padding=padding, output_size=x.shape[1:3])
    cases["conv_transpose fwd"] = (jax.jit(tr), (y, w))
    cases["conv_transpose fwd+bwd"] = (
        jax.jit(jax.value_and_grad(lambda y, w: jnp.sum(tr(y, w) ** 2), argnums=(0, 1))), (y, w))
    return cases


def time_rounds(cases, rounds, reps):
    for f, args in cases.values():  # compile and warm up
        jax.block_until_ready(f(*args))
    names = list(cases)
    times = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            f, args = cases[n]
            t0 = time.perf_counter()
            for _ in range(reps):
                out = f(*args)
            jax.block_until_ready(out)
            times[n].append((time.perf_counter() - t0) / reps)
    return times


def memory(f, args):
    try:
        m = jax.jit(f).lower(*args).compile().memory_analysis()
    except Exception:  # not every backend reports it
        return None
    if m is None:
        return None
    return getattr(m, "temp_size_in_bytes", None)


def fmt_ms(ts):
    return f"{1e3 * statistics.median(ts):9.3f} ms  ({1e3 * min(ts):.3f}..{1e3 * max(ts):.3f})"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small shapes and few rounds, to check the script works")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = p.parse_args()
    dtype = jnp.dtype(args.dtype)
    if args.quick:
        configs = [("3x3 SAME s1", (4, 16, 16, 8), (3, 3, 8, 16), 1, "SAME")]
        rounds, reps = args.rounds or 3, 2
    else:
        configs = [
            ("3x3 SAME s1 (VGG-like)", (16, 56, 56, 64), (3, 3, 64, 64), 1, "SAME"),
            ("5x5 SAME s1 (GoogLeNet 5x5)", (16, 14, 14, 16), (5, 5, 16, 48), 1, "SAME"),
            ("11x11 s4 (AlexNet conv1)", (8, 227, 227, 3), (11, 11, 3, 96), 4, "VALID"),
        ]
        rounds, reps = args.rounds or 15, 5
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), dtype {dtype}, "
          f"{rounds} interleaved rounds x {reps} calls; median (min..max) per call")
    for label, xs, ws, stride, padding in configs:
        kx, kw = jax.random.split(jax.random.key(0))
        x = jax.random.normal(kx, xs, dtype)
        w = jax.random.normal(kw, ws, dtype)
        print(f"\n== {label}: x {xs}, w {ws}, stride {stride}, padding {padding}")
        times = time_rounds(build(x, w, stride, padding), rounds, reps)
        for n, ts in times.items():
            print(f"  {n:24s} {fmt_ms(ts)}")
        for mode in ("fwd", "fwd+bwd"):
            xc = statistics.median(times[f"cross_correlate {mode}"])
            print(f"  ratio cross_correlate/convolve {mode:8s} {xc / statistics.median(times[f'convolve {mode}']):.3f}"
                  "  (flip free: >= 0.98)")
            print(f"  ratio cross_correlate/conv_im2col {mode:7s} {xc / statistics.median(times[f'conv_im2col {mode}']):.3f}")
        oh, ow = jax.eval_shape(lambda x, w: ops.cross_correlate(x, w, stride=stride, padding=padding), x, w).shape[1:3]
        col_bytes = xs[0] * oh * ow * ws[0] * ws[1] * ws[2] * dtype.itemsize
        print(f"  im2col column matrix: {xs[0]}*{oh}*{ow} x {ws[0]}*{ws[1]}*{ws[2]} = {col_bytes / 2**20:.2f} MiB "
              f"({col_bytes / (x.size * dtype.itemsize):.1f}x the input)")
        for name, f in (("cross_correlate", ops.cross_correlate), ("conv_im2col", ops.conv_im2col)):
            tmp = memory(lambda x, w, f=f: f(x, w, stride=stride, padding=padding), (x, w))
            shown = "n/a" if tmp is None else f"{tmp / 2**20:.2f} MiB"
            print(f"  XLA temp memory, {name:16s} fwd: {shown}")


if __name__ == "__main__":
    main()
