"""Fast R-CNN's truncated SVD (Girshick 2015, sec. 3.1) at the paper's size: the fc6 and fc7 of VGG16 applied
to R regions, dense against factorised, on this machine's CPU.

    python -m benchmarks.truncated_svd [--rois 256] [--rounds 9]

The head as jaxcnn.models.detection.FastRCNN runs it: fc6 (25,088 -> 4,096) and fc7 (4,096 -> 4,096), each
followed by ReLU, on a batch of R pooled 7x7x512 regions; the factorised head is FastRCNN(svd_ranks=(1024,
256))'s (fc6_svd 25,088 -> 1,024 without bias, fc6 1,024 -> 4,096; fc7_svd 4,096 -> 256, fc7 256 -> 4,096),
built from the same weights by truncated_svd_params. The paper reports the fully connected layers at nearly
half of a detection's time with 2,000 regions, and over 30% less detection time with the factorisation.
Interleaved rounds; the per-round speed-up of the factorised head over the dense one (> 1: faster), and the
multiply-adds of each (arithmetic: R * (25088*4096 + 4096*4096) against R * (25088*1024 + 1024*4096 +
4096*256 + 256*4096)).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import calling_variant, fmt_ms, fmt_paired, interleaved, paired, summary, warm_up
from jaxcnn.models.detection import truncated_svd_params

POOL5 = 7 * 7 * 512  # VGG16's pooled region
HIDDEN = 4096
RANKS = (1024, 256)  # the paper's


def head(params, x, ranks=()):
    """fc6, fc7 with ReLU as FastRCNN applies them (kernels (in, out)); with ranks, the two-layer form."""
    for name in ("fc6", "fc7"):
        if ranks:
            x = x @ params[f"{name}_svd"]["kernel"]
        x = jax.nn.relu(x @ params[name]["kernel"] + params[name]["bias"])
    return x


def macs(rois: int, ranks=()) -> int:
    if not ranks:
        return rois * (POOL5 * HIDDEN + HIDDEN * HIDDEN)
    k6, k7 = ranks
    return rois * (POOL5 * k6 + k6 * HIDDEN + HIDDEN * k7 + k7 * HIDDEN)


def _variant(name, params, x, ranks):
    return calling_variant(name, jax.jit(lambda p, v: head(p, v, ranks)), (params, x), items=x.shape[0])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rois", type=int, default=256, help="regions per call (the paper: about 2,000 per image)")
    p.add_argument("--rounds", type=int, default=9)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    dense = {n: {"kernel": (rng.standard_normal((i, HIDDEN)) / np.sqrt(i)).astype(np.float32),
                 "bias": np.zeros(HIDDEN, np.float32)} for n, i in (("fc6", POOL5), ("fc7", HIDDEN))}
    svd = truncated_svd_params(dense, RANKS)
    x = jnp.asarray(np.maximum(rng.standard_normal((args.rois, POOL5)), 0).astype(np.float32))
    put = lambda t: jax.tree_util.tree_map(jnp.asarray, t)  # noqa: E731
    variants = [_variant("dense fc6/fc7", put(dense), x, ()), _variant(f"SVD {RANKS}", put(svd), x, RANKS)]
    warm_up(variants)
    interleaved(variants, args.rounds, reps=1)
    print(f"VGG16 fc6/fc7 on {args.rois} regions, {jax.devices()[0].platform}, {args.rounds} interleaved rounds")
    for v, r in zip(variants, ((), RANKS)):
        s = summary(v.times)
        print(f"  {v.name:<22} {fmt_ms(s)} per call, {macs(args.rois, r) / 1e9:.2f} G multiply-adds, "
              f"{1e3 * s['median_s'] / args.rois:.3f} ms per region")
    print(f"  speed-up of SVD over dense, per round: {fmt_paired(paired(variants[1].times, variants[0].times))}; "
          f"multiply-adds {macs(args.rois) / macs(args.rois, RANKS):.2f}x fewer")


if __name__ == "__main__":
    main()
