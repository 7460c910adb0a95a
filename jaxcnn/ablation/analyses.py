"""The analyses an ablation reports beside its table: per-layer gradient norms
at initialisation (skip connections), the first layer's kernels, the twin
check of convolution against cross-correlation, how much local response
normalisation normalises, and the seeds' arithmetic read off the real
models. Kernels are HWIO, images NHWC.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.ablation.stats import NOT_REPRODUCED, REPRODUCED
from jaxcnn.layers import LRN
from jaxcnn.models import create_model, summary
from jaxcnn.ops.normalization import channel_square_sum
from jaxcnn.train.tasks import cross_entropy


def flip_kernels(params):
    """Every 4-D (HWIO) kernel flipped on its two spatial axes; dense kernels and biases untouched.
    A "convolution" net with these weights computes what the "cross_correlation" net does."""
    return jax.tree_util.tree_map(lambda w: jnp.flip(w, (0, 1)) if w.ndim == 4 else w, params)


def conv_layers(module, input_shape) -> list[str]:
    """Paths ('stage1/block0/conv1') of the layers with a 4-D kernel, in the order the forward pass calls them."""
    rows = summary(module, tuple(input_shape)).rows
    return [r.name for r in rows if r.params and "conv" in r.layer_type.lower()]


def _get_path(tree, path: str):
    for part in path.split("/"):
        tree = tree[part]
    return tree


def grad_norms_at_init(model, input_shape, images, labels, key) -> list[tuple[str, float]]:
    """(layer path, ||dL/dW|| of its kernel) for every convolution at initialisation, in forward order,
    on one training batch (images NHWC, already preprocessed)."""
    variables = model.init({"params": key, "dropout": key}, jnp.zeros((1, *input_shape)), train=False)
    params = variables["params"]
    rest = {k: v for k, v in variables.items() if k != "params"}

    def loss(p):
        logits, _ = model.apply({"params": p, **rest}, images, train=True, rngs={"dropout": key},
                                mutable=["batch_stats", "intermediates"])
        return cross_entropy(logits, labels, logits.shape[-1])

    grads = jax.jit(jax.grad(loss))(params)
    out = []
    for path in conv_layers(model, input_shape):
        g = _get_path(grads, path)
        k = g["kernel"] if "kernel" in g else next(v for v in g.values() if getattr(v, "ndim", 0) == 4)
        out.append((path, float(jnp.linalg.norm(k))))
    return out


def first_kernel(params, module, input_shape) -> np.ndarray:
    """The first convolution's kernel (HWIO) as numpy."""
    g = _get_path(params, conv_layers(module, input_shape)[0])
    return np.asarray(g["kernel"] if "kernel" in g else next(v for v in g.values() if v.ndim == 4))


def fact_inception4a_5x5() -> dict:
    """Seed 001's arithmetic from the real model: multiply-adds of GoogLeNet's inception 4a 5x5 branch
    (input 14x14x480, 48 maps) without and with its 16-map 1x1 reduction, and the whole net's totals at 224."""
    out = {}
    for b in (True, False):
        s = summary(create_model("googlenet", bottleneck=b), (224, 224, 3))
        branch = sum(r.macs for r in s.rows if r.name in ("inception4a/branch3_reduce", "inception4a/branch3"))
        key = "with_1x1" if b else "without_1x1"
        out[key] = {"inception4a_5x5_branch_macs": branch, "googlenet_224_params": s.trainable_params,
                    "googlenet_224_macs": s.total_macs}
    return out


def fact_vgg_stack() -> dict:
    """Weights per (input, output) channel pair of each stage's stack (two 3x3: 18; one 5x5: 25) and VGG-16's
    totals at 224 under both kernel plans, from the models' own kernels and summaries."""
    out = {}
    for plan in ("3x3", "large"):
        m = create_model("minivgg", kernel_plan=plan)
        params = jax.eval_shape(m.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
        per_pair = {}
        for name in conv_layers(m, (32, 32, 3)):
            k = params[name]["kernel"].shape
            stage = name.split("_")[0]
            per_pair[stage] = per_pair.get(stage, 0) + k[0] * k[1]
        s = summary(create_model("vgg16", kernel_plan=plan), (224, 224, 3))
        out[plan] = {"weights_per_channel_pair_per_stage": per_pair, "vgg16_224_params": s.trainable_params,
                     "vgg16_224_macs": s.total_macs}
    return out


FACTS = {"inception4a_5x5": fact_inception4a_5x5, "vgg_stack": fact_vgg_stack}


def lrn_data_term(model, variables, images) -> dict:
    """How much each LRN layer of `model` normalises on `images`: b = a / (k + alpha * S) ** beta, with S the
    sum of a^2 over the `size` neighbouring channels. Per LRN layer (by name, in forward order), over its
    positive inputs a: the share of the data term in the denominator, alpha * S / k (median, 99th percentile,
    max), and the factor b / a it applies (min, median, max). Where alpha * S / k is ~0 everywhere the layer
    is the fixed scale k ** -beta, not a normalisation."""
    seen = {}

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, LRN) and context.method_name == "__call__":
            seen[context.module.name] = (context.module, np.asarray(args[0]))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        model.apply(variables, images)
    out = {}
    for name, (layer, a) in seen.items():
        s = np.asarray(channel_square_sum(a, layer.size), np.float64)
        share = layer.alpha * s / layer.k
        factor = (layer.k + layer.alpha * s) ** -layer.beta
        pos = a > 0
        out[name] = {"share_median": float(np.median(share[pos])), "share_p99": float(np.percentile(share[pos], 99)),
                     "share_max": float(share[pos].max()), "factor_min": float(factor[pos].min()),
                     "factor_median": float(np.median(factor[pos])), "factor_max": float(factor[pos].max()),
                     "fixed_scale": float(layer.k ** -layer.beta), "responses": int(pos.sum())}
    return out


def twin_report(state_a, state_b, images) -> dict:
    """What convolution vs cross-correlation can fail: arm B ("convolution") started from arm A's initial
    kernels flipped. After training,

    kernel_max_diff: max |W_A - flip(W_B)| over every HWIO kernel, relative to max |W_A| (the same function
      learned up to the flip: float rounding, growing slowly with the steps);
    logits_max_diff: max |logits of A - logits of B's weights flipped, run as A (A's conv_mode)| on `images`
      (preprocessed NHWC), relative to max |logits of A|;
    argmax_agreement: the fraction of `images` on which those two predict the same class.
    """
    def variables(state, params):
        return {"params": params, **({"batch_stats": state.batch_stats} if state.batch_stats else {})}

    flipped_b = flip_kernels(state_b.params)
    ka = [w for w in jax.tree_util.tree_leaves(state_a.params) if w.ndim == 4]
    kb = [w for w in jax.tree_util.tree_leaves(flipped_b) if w.ndim == 4]
    scale = max(float(jnp.max(jnp.abs(w))) for w in ka)
    kernel_diff = max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(ka, kb)) / scale
    la = state_a.apply_fn(variables(state_a, state_a.params), images, train=False)
    lb = state_a.apply_fn(variables(state_b, flipped_b), images, train=False)
    return {"kernel_max_diff": kernel_diff,
            "logits_max_diff": float(jnp.max(jnp.abs(la - lb)) / jnp.max(jnp.abs(la))),
            "argmax_agreement": float(jnp.mean(jnp.argmax(la, -1) == jnp.argmax(lb, -1)))}


TWIN_TOLERANCE = 1e-4  # relative: float32 rounding of two orders of the same sums, over a few thousand steps


def twin_claim(reports: dict, first: str, second: str) -> dict:
    """The twin check as a row beside the claims (a check: it holds by construction, so it is not counted in the
    family of claims; jaxcnn.ablation.family): reproduced when, for every seed, the learned kernels are flips of each
    other and the predictions agree (relative differences below TWIN_TOLERANCE, every argmax equal)."""
    worst = {k: max(r[k] for r in reports.values()) for k in ("kernel_max_diff", "logits_max_diff")}
    agree = min(r["argmax_agreement"] for r in reports.values())
    ok = worst["kernel_max_diff"] < TWIN_TOLERANCE and worst["logits_max_diff"] < TWIN_TOLERANCE and agree == 1.0
    return {"claim": f"twin: {second} trained from {first}'s flipped kernels learns their flips and predicts "
                     f"the same (relative difference < {TWIN_TOLERANCE:g})",
            # a check, not a paired difference: no mean or interval; the worst relative differences on their own
            "difference": {"mean": None, "low": None, "high": None, "n": len(reports), "std": None},
            "worst": {**worst, "argmax_agreement": agree},
            "display": f"max relative difference: kernels {worst['kernel_max_diff']:.1e}, logits "
                       f"{worst['logits_max_diff']:.1e}; argmax agreement {agree:.4f}",
            "verdict": REPRODUCED if ok else NOT_REPRODUCED}
