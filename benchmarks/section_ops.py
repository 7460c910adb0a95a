"""Section `ops`: the convolution ops side by side (what scripts/bench_ops.py measured).

Forward and forward+backward of
  * convolve vs cross_correlate (the kernel flip should be free: ratio >= 0.98),
  * conv_im2col vs cross_correlate, with the extra memory im2col needs,
  * conv_transpose,
  * torch.nn.functional.conv2d fwd+bwd (input and weight requiring grad) beside cross_correlate,
on VGG-, GoogLeNet- and AlexNet-like layers and ResNet-20's three stages.
Images NHWC, kernels HWIO (torch: NCHW / OIHW, the same values).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import ops
from benchmarks.steps import pick_memory_format, torch_available
from benchmarks.timing import Variant, calibrate, calling_variant, fmt_ms, interleaved, ratio, summary, warm_up

FULL = (
    ("3x3 SAME s1 (VGG-like)", (16, 56, 56, 64), (3, 3, 64, 64), 1, "SAME"),
    ("5x5 SAME s1 (GoogLeNet 5x5)", (16, 14, 14, 16), (5, 5, 16, 48), 1, "SAME"),
    ("11x11 s4 (AlexNet conv1)", (8, 227, 227, 3), (11, 11, 3, 96), 4, "VALID"),
    ("ResNet-20 stage 1", (128, 32, 32, 16), (3, 3, 16, 16), 1, "SAME"),
    ("ResNet-20 stage 2", (128, 16, 16, 32), (3, 3, 32, 32), 1, "SAME"),
    ("ResNet-20 stage 3", (128, 8, 8, 64), (3, 3, 64, 64), 1, "SAME"),
    # VGG-11 at 64x64, batch 32: its second, fourth and fifth stages.
    ("VGG-11 conv2 32x32 64->128", (32, 32, 32, 64), (3, 3, 64, 128), 1, "SAME"),
    ("VGG-11 conv4 8x8 512", (32, 8, 8, 512), (3, 3, 512, 512), 1, "SAME"),
    ("VGG-11 conv5 4x4 512", (32, 4, 4, 512), (3, 3, 512, 512), 1, "SAME"),
    # ResNet-50 at 224, batch 16: the stem, and the 1x1 reductions and expansions of the first stage.
    ("ResNet-50 stem 7x7 s2", (16, 224, 224, 3), (7, 7, 3, 64), 2, ((3, 3), (3, 3))),
    ("ResNet-50 1x1 256->64", (16, 56, 56, 256), (1, 1, 256, 64), 1, "VALID"),
    ("ResNet-50 1x1 64->256", (16, 56, 56, 64), (1, 1, 64, 256), 1, "VALID"),
)
QUICK = (
    ("3x3 SAME s1", (4, 16, 16, 8), (3, 3, 8, 16), 1, "SAME"),
    ("ResNet-20 stage 3 (batch 8)", (8, 8, 8, 64), (3, 3, 64, 64), 1, "SAME"),
)


def build(x, w, stride, padding):
    """{name: Variant} of the JAX ops, forward and forward+backward."""
    y_shape = jax.eval_shape(lambda x, w: ops.cross_correlate(x, w, stride=stride, padding=padding), x, w).shape
    fwd = {
        "cross_correlate": lambda x, w: ops.cross_correlate(x, w, stride=stride, padding=padding),
        "convolve": lambda x, w: ops.convolve(x, w, stride=stride, padding=padding),
        "conv_im2col": lambda x, w: ops.conv_im2col(x, w, stride=stride, padding=padding),
    }
    variants = []
    for name, f in fwd.items():
        variants.append(calling_variant(f"{name} fwd", jax.jit(f), (x, w)))
        loss = lambda x, w, f=f: jnp.sum(f(x, w) ** 2)
        variants.append(calling_variant(f"{name} fwd+bwd", jax.jit(jax.value_and_grad(loss, argnums=(0, 1))), (x, w)))
    y = jnp.ones(y_shape, x.dtype)
    tr = lambda y, w: ops.conv_transpose(y, w, stride=stride, padding=padding, output_size=x.shape[1:3])
    variants.append(calling_variant("conv_transpose fwd", jax.jit(tr), (y, w)))
    variants.append(calling_variant("conv_transpose fwd+bwd", jax.jit(
        jax.value_and_grad(lambda y, w: jnp.sum(tr(y, w) ** 2), argnums=(0, 1))), (y, w)))
    return variants


def torch_conv_variant(x, w, stride, padding, channels_last: bool) -> Variant:
    """conv2d forward + backward to input and weight of sum(y**2), as cross_correlate fwd+bwd."""
    import torch
    import torch.nn.functional as F

    from benchmarks.steps import torch_device, torch_sync

    (pt, pb), (pl, pr) = ops.conv.explicit_padding(padding, x.shape[1:3], w.shape[:2], (stride, stride), (1, 1))
    xt = torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2))).to(torch_device())
    wt = torch.from_numpy(np.ascontiguousarray(np.asarray(w).transpose(3, 2, 0, 1))).to(torch_device())
    if channels_last:
        xt, wt = xt.contiguous(memory_format=torch.channels_last), wt.contiguous(memory_format=torch.channels_last)
    xt.requires_grad_(True)
    wt.requires_grad_(True)
    sym = pt == pb and pl == pr

    def run(n):
        for _ in range(n):
            inp = xt if sym else F.pad(xt, (pl, pr, pt, pb))  # torch pads symmetrically only
            y = F.conv2d(inp, wt, stride=stride, padding=(pt, pl) if sym else 0)
            torch.autograd.grad((y * y).sum(), (xt, wt))
        torch_sync()

    return Variant("torch conv2d fwd+bwd", run, note="channels_last" if channels_last else "contiguous")


def xla_temp_bytes(f, args):
    try:
        m = jax.jit(f).lower(*args).compile().memory_analysis()
    except Exception:  # not every backend reports it
        return None
    return None if m is None else getattr(m, "temp_size_in_bytes", None)


def run(ctx) -> dict:
    configs = QUICK if ctx.quick else FULL
    rounds = ctx.rounds or (3 if ctx.quick else 15)
    target = 0.02 if ctx.quick else 0.25
    dtype = jnp.float32
    torch_ok = False
    notes = []
    if not ctx.no_torch:
        torch, why = torch_available()
        torch_ok = torch is not None
        if not torch_ok:
            notes.append(why)
            print(f"  {why}")
    rows = []
    for label, xs, ws, stride, padding in configs:
        kx, kw = jax.random.split(jax.random.key(0))
        x = jax.random.normal(kx, xs, dtype)
        w = jax.random.normal(kw, ws, dtype)
        print(f"\n== ops {label}: x {xs}, w {ws}, stride {stride}, padding {padding}", flush=True)
        variants = build(x, w, stride, padding)
        warm_up(variants)
        row = {"label": label, "x": list(xs), "w": list(ws), "stride": stride, "padding": padding}
        if torch_ok:
            tv, trial = pick_memory_format(functools.partial(torch_conv_variant, x, w, stride, padding),
                                           1 if ctx.quick else 3)
            variants.append(tv)
            row["torch_format"] = tv.note
            row["torch_format_trial_ms"] = {k: 1e3 * v for k, v in trial.items()}
        reps = calibrate(variants, target)
        interleaved(variants, rounds, reps)
        row["reps"], row["rounds"] = reps, rounds
        row["variants"] = {v.name: summary(v.times) for v in variants}
        for n, s in row["variants"].items():
            print(f"  {n:24s} {fmt_ms(s)}")
        V = row["variants"]
        # "A/B" = A's median time / B's (the convention of the ops benchmark since it began).
        over = lambda a, b: ratio(V[b], V[a])
        row["ratios"] = {}
        for mode in ("fwd", "fwd+bwd"):
            row["ratios"][f"cross_correlate/convolve {mode}"] = over(f"cross_correlate {mode}", f"convolve {mode}")
            row["ratios"][f"cross_correlate/conv_im2col {mode}"] = over(f"cross_correlate {mode}",
                                                                         f"conv_im2col {mode}")
        if "torch conv2d fwd+bwd" in V:
            row["ratios"]["cross_correlate/torch fwd+bwd"] = over("cross_correlate fwd+bwd", "torch conv2d fwd+bwd")
        for k, v in row["ratios"].items():
            print(f"  ratio {k:36s} {v:.3f}")
        oh, ow = jax.eval_shape(lambda x, w: ops.cross_correlate(x, w, stride=stride, padding=padding),
                                x, w).shape[1:3]
        col = xs[0] * oh * ow * ws[0] * ws[1] * ws[2] * jnp.dtype(dtype).itemsize
        row["im2col_bytes"] = int(col)
        row["im2col_over_input"] = col / (x.size * jnp.dtype(dtype).itemsize)
        row["xla_temp_bytes_fwd"] = {
            name: xla_temp_bytes(lambda x, w, f=f: f(x, w, stride=stride, padding=padding), (x, w))
            for name, f in (("cross_correlate", ops.cross_correlate), ("conv_im2col", ops.conv_im2col))}
        print(f"  im2col column matrix {col / 2**20:.2f} MiB ({row['im2col_over_input']:.1f}x the input); "
              f"XLA temp fwd: " + ", ".join(f"{k} {_mib(v)}" for k, v in row["xla_temp_bytes_fwd"].items()))
        rows.append(row)
    return {"rows": rows, "notes": notes, "rounds": rounds, "dtype": "float32"}


def _mib(b):
    return "n/a" if b is None else f"{b / 2**20:.2f} MiB"


def _r(v):
    return "—" if v is None else f"{v:.3f}"


def markdown(data) -> list[str]:
    lines = ["Median ms per call (min..max over rounds), float32. A ratio A/B is A's median ms / B's: the flip "
             "is free when cross_correlate/convolve >= 0.98; cross_correlate/torch > 1 means torch's conv2d is "
             "faster.", ""]
    for r in data["rows"]:
        lines.append(f"**{r['label']}**: x {tuple(r['x'])}, w {tuple(r['w'])}, stride {r['stride']}, "
                     f"padding {r['padding']}" + (f"; torch {r['torch_format']}" if "torch_format" in r else ""))
        lines += ["", "| variant | ms |", "|---|--:|"]
        lines += [f"| {n} | {fmt_ms(s)} |" for n, s in r["variants"].items()]
        lines += ["", "| ratio | value |", "|---|--:|"]
        lines += [f"| {k} | {_r(v)} |" for k, v in r["ratios"].items()]
        temp = r["xla_temp_bytes_fwd"]
        lines += ["", f"im2col column matrix {r['im2col_bytes'] / 2**20:.2f} MiB ({r['im2col_over_input']:.1f}x the "
                      f"input); XLA temp memory fwd: cross_correlate {_mib(temp['cross_correlate'])}, "
                      f"conv_im2col {_mib(temp['conv_im2col'])}.", ""]
    return lines
