"""What can come out differently on an accelerator, checked against the CPU in the same process.

The "accelerator" is `jax.devices()[0]`: a GPU or TPU where one is present (scripts/gpu_check.sh runs this
file there), the CPU itself in the normal test suite. The reference is computed on `jax.devices("cpu")`,
in float32 at full precision (`jax.default_matmul_precision("float32")`). Checked:

* every op in `jaxcnn.ops` that computes (convolution in both semantics, transpose, im2col, pooling, LRN,
  unpooling, SPP, RoI pooling): forward and vector-Jacobian product, in float32 at full precision (tight),
  float32 at the default precision (what training uses: TF32 on recent NVIDIA GPUs) and bfloat16;
* every model family's outputs and parameter gradients (one forward and backward in training mode:
  BatchNorm on batch statistics, dropout with one key, so the same mask on both devices), at small widths
  and inputs, in float32 and with the model's `dtype=bfloat16` (parameters float32);
* the parallel modes `none`, `pmap` and `mesh` of `jaxcnn.train` on the devices present;
* that the CPU-only routes jaxcnn picks with `lax.platform_dependent` (`ops.max_pool`'s reshape/argmax route
  for tiled windows; jaxcnn's native CPU convolutions, FFI custom calls named `jaxcnn_*`) are not what the
  accelerator compiles, both in the compiled HLO on the device and in modules lowered for GPU and TPU
  (the latter needs no accelerator, so it means as much in the CPU suite).

Errors are relative: ||got - want|| / ||want|| (METHOD: float32 far under 1e-3; TF32 near 3e-4; bfloat16
operands 1e-3 to 1e-2), and NaN never passes. In the CPU suite the float32 comparisons of models would compare
the CPU with itself, so those are skipped there; the ops' float32 checks take a float64 reference on the CPU
instead (XLA's own ops: jaxcnn's native kernels and routes are float32 only), and the bfloat16 ones compare
with the float32 reference within fixed bounds. JAXCNN_GPU_CHECK_SMOKE=1 (scripts/gpu_check.sh --cpu-smoke) keeps
two families and a few ops.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

import jaxcnn
from jaxcnn import ops
from jaxcnn.models import get_spec

ACCEL = jax.devices()[0]
CPU = jax.devices("cpu")[0]
ON_CPU = ACCEL.platform == "cpu"
SMOKE = os.environ.get("JAXCNN_GPU_CHECK_SMOKE", "") == "1"
FULL = "float32"  # jax.default_matmul_precision: no TF32 / bf16 passes for float32 operands
SAME_COMPUTATION = ("the accelerator is the CPU here: float32 on it against the float32 CPU reference is the "
                    "same computation; the bfloat16 check and the ops' checks still run")

# Relative-error bounds ||got - want|| / ||want||.
OP_TOL = {"f32_full": 1e-5, "f32": 3e-3, "bf16": 2e-2}
MODEL_TOL = {"outputs": 1e-4, "grads": 1e-3}  # float32 at full precision on both sides
# bfloat16 models against the float32 reference: through a dozen layers the error is large and model-dependent
# (measured on the CPU, eval-mode logits 2e-3..6e-3, gradients 2e-2..0.3, where BatchNorm's backward on small batches
# cancels; SegNet 0.13 and 0.6, its unpooling moving values where bf16 rounding changes which element of a window
# is the maximum). So the bound is 3x what bfloat16 gives on the CPU for the same model and inputs, at least
# BF16_FLOOR and never more than BF16_CAP (beyond it the result is garbage whatever the CPU does).
BF16_FLOOR = {"outputs": 2e-2, "grads": 5e-2}
BF16_CAP = {"outputs": 0.5, "grads": 1.0}
# In the CPU suite there is no second device to measure bfloat16 against, so the bound is fixed: outputs within
# 2e-2 (bfloat16's 2^-8 through a dozen layers; the cheap families measure 3.5e-3..8.5e-3) and gradients within
# 0.3 (they measure 4.7e-3..0.16; BatchNorm's backward on batches of 4 cancels). Zero gradients (error 1.0) or
# gradients at half their size (0.5) fail.
BF16_CPU_BOUND = {"outputs": 2e-2, "grads": 0.3}
# jaxcnn's CPU custom calls as compiled HLO (custom_call_target="jaxcnn_conv_fwd") and as lowered StableHLO
# (stablehlo.custom_call @jaxcnn_conv_fwd) print them.
CPU_ONLY_TARGET = re.compile(r'(?:custom_call_target="|custom_call @)(jaxcnn_[A-Za-z0-9_]*)')


# ---------------------------------------------------------------- helpers


def run_on(device, fn, *args, precision=None):
    """fn(*args) jitted for `device` (args committed there): (host outputs, compiled HLO text)."""
    args = jax.device_put(args, device)
    if precision:
        with jax.default_matmul_precision(precision):
            compiled = jax.jit(fn).lower(*args).compile()
    else:
        compiled = jax.jit(fn).lower(*args).compile()
    return jax.device_get(compiled(*args)), compiled.as_text()


def rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    if not np.isfinite(got).all():
        return float("inf")
    den = np.linalg.norm(want)
    return float(np.linalg.norm(got - want) / (den if den > 0 else 1.0))


def tree_err(got, want) -> tuple[float, str]:
    """The relative error of the whole tree (leaves concatenated) and a line naming the worst leaves."""
    g = jax.tree_util.tree_leaves_with_path(got)
    w = jax.tree_util.tree_leaves(want)
    assert len(g) == len(w)
    if not g:
        return 0.0, ""
    flat_g = np.concatenate([np.ravel(np.asarray(x, np.float64)) for _, x in g])
    flat_w = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in w])
    per_leaf = sorted(((rel_err(x, y), jax.tree_util.keystr(p)) for (p, x), y in zip(g, w)), reverse=True)
    worst = ", ".join(f"{name} {e:.1e}" for e, name in per_leaf[:3])
    return rel_err(flat_g, flat_w), worst


def cpu_only_targets(hlo_text: str) -> set[str]:
    return set(CPU_ONLY_TARGET.findall(hlo_text))


def native_enabled() -> bool:
    """Whether jaxcnn's native CPU convolutions (jaxcnn.ops.native, where present) are switched on."""
    try:
        from jaxcnn.ops import native
    except ImportError:
        return False
    return getattr(native, "status", lambda: "")() == "enabled"


def check_no_cpu_route(hlo_text: str) -> None:
    """On an accelerator no jaxcnn_* CPU custom call may be compiled in; on the CPU they are there exactly
    when the native convolutions are on (so the check can see them at all)."""
    found = cpu_only_targets(hlo_text)
    if not ON_CPU:
        assert not found, f"CPU-only custom calls compiled for {ACCEL.platform}: {sorted(found)}"
    elif not native_enabled():
        assert not found, f"jaxcnn custom calls although the native convolutions are off: {sorted(found)}"


def rng_arrays(seed: int, *shapes, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(s).astype(dtype) for s in shapes)


def to_bf16_values(*arrays):
    """The arrays rounded to bfloat16 and back to float32: the same values for both sides."""
    return tuple(np.asarray(jnp.asarray(a, jnp.bfloat16).astype(jnp.float32)) for a in arrays)


# ---------------------------------------------------------------- ops

BOXES = np.array([[0, 0, 0, 11, 11], [1, 2, 3, 9, 7], [1, 5, 0, 11, 6]], np.float32)


@dataclasses.dataclass(frozen=True)
class OpCase:
    name: str
    fn: object  # (*float arrays) -> array or tuple of arrays
    shapes: tuple  # the float arguments' shapes (differentiated)
    smoke: bool = False


def _unpool_roundtrip(x):
    pooled, idx = ops.max_pool_with_argmax(x, 2)
    return ops.max_unpool(pooled, idx, x.shape)


X, W, WG = (2, 12, 12, 8), (3, 3, 8, 16), (3, 3, 4, 16)
OP_CASES = [
    OpCase("cross_correlate_same", lambda x, w: ops.cross_correlate(x, w, padding="SAME"), (X, W), smoke=True),
    OpCase("cross_correlate_s2_g2", lambda x, w: ops.cross_correlate(x, w, stride=2, padding=1, groups=2), (X, WG)),
    OpCase("cross_correlate_dilated", lambda x, w: ops.cross_correlate(x, w, dilation=2, padding="SAME"), (X, W)),
    OpCase("convolve_valid", lambda x, w: ops.convolve(x, w), (X, W), smoke=True),
    OpCase("convolve_s2_g2", lambda x, w: ops.convolve(x, w, stride=2, padding=((1, 0), (0, 1)), groups=2), (X, WG)),
    OpCase("conv_transpose_s2", lambda y, w: ops.conv_transpose(y, w, stride=2, padding="SAME"),
           ((2, 6, 6, 16), W), smoke=True),
    OpCase("conv_transpose_s2_sized", lambda y, w: ops.conv_transpose(y, w, stride=2, padding=1, output_size=(12, 12)),
           ((2, 6, 6, 16), W)),
    OpCase("conv_im2col", lambda x, w: ops.conv_im2col(x, w, stride=2, padding=1), (X, W)),
    OpCase("max_pool_2x2", lambda x: ops.max_pool(x, 2), (X,), smoke=True),  # the CPU's tile route
    OpCase("max_pool_2x2_odd", lambda x: ops.max_pool(x, 2), ((2, 13, 11, 8),)),
    OpCase("max_pool_3x3_s2", lambda x: ops.max_pool(x, 3, 2), (X,)),
    OpCase("max_pool_3x3_same", lambda x: ops.max_pool(x, 3, 1, "SAME"), (X,)),
    OpCase("avg_pool_3x3_s2_pad", lambda x: ops.avg_pool(x, 3, 2, 1), (X,)),
    OpCase("avg_pool_exclude_pad", lambda x: ops.avg_pool(x, 3, 2, 1, count_include_pad=False), (X,)),
    OpCase("global_avg_pool", lambda x: ops.global_avg_pool(x), (X,)),
    OpCase("local_response_norm", lambda x: ops.local_response_norm(x * 10.0), (X,)),
    OpCase("max_unpool", _unpool_roundtrip, (X,)),
    OpCase("spatial_pyramid_pool_max", lambda x: ops.spatial_pyramid_pool(x, (1, 2, 4), "max"), ((2, 13, 10, 8),)),
    OpCase("spatial_pyramid_pool_avg", lambda x: ops.spatial_pyramid_pool(x, (1, 2, 3), "avg"), ((2, 13, 10, 8),)),
    OpCase("roi_pool", lambda x: ops.roi_pool(x, jnp.asarray(BOXES), (3, 3), spatial_scale=1.0), (X,)),
]
if SMOKE:
    OP_CASES = [c for c in OP_CASES if c.smoke]


def _vjp_fn(fn, n_args):
    """(*args, cotangent) -> (outputs, input cotangents)."""
    def f(*a):
        out, vjp = jax.vjp(fn, *a[:n_args])
        return out, vjp(a[n_args])
    return f


def _op_inputs(case: OpCase, seed: int, bf16: bool):
    args = rng_arrays(seed, *case.shapes)
    if bf16:
        args = to_bf16_values(*args)
    out = jax.eval_shape(case.fn, *[jax.ShapeDtypeStruct(a.shape, jnp.float32) for a in args])
    ct = rng_arrays(seed + 1, out.shape)[0]
    return args, (to_bf16_values(ct)[0] if bf16 else ct)


def _float64_on_cpu(fn, *args):
    """fn(*args) in float64 on the CPU: XLA's own ops (jaxcnn's native CPU kernels and routes are float32
    only), so in the CPU suite an independent reference for the float32 computation."""
    with jax.enable_x64(True):
        out, _ = run_on(CPU, fn, *[np.asarray(a, np.float64) for a in args])
    return jax.tree_util.tree_map(np.asarray, out)


@functools.lru_cache(maxsize=None)
def _op_reference(name: str, bf16: bool):
    """The reference: float32 at full precision on the CPU; in the CPU suite, where that would be the
    computation under test itself, float64 on the CPU (the bf16 mode keeps the float32 reference)."""
    case = next(c for c in OP_CASES if c.name == name)
    args, ct = _op_inputs(case, 0, bf16)
    if ON_CPU and not bf16:
        return args, ct, _float64_on_cpu(_vjp_fn(case.fn, len(args)), *args, ct)
    out, _ = run_on(CPU, _vjp_fn(case.fn, len(args)), *args, ct, precision=FULL)
    return args, ct, out


@pytest.mark.parametrize("mode", ["f32_full", "f32", "bf16"])
@pytest.mark.parametrize("case", OP_CASES, ids=lambda c: c.name)
def test_op_matches_cpu(case, mode, record_property):
    """Forward and VJP of the op on the accelerator against the float32 CPU reference (bf16: the same
    bf16-rounded inputs, computed in bf16 there); in the CPU suite the float32 modes against float64."""
    bf16 = mode == "bf16"
    args, ct, (want, want_grads) = _op_reference(case.name, bf16)
    if bf16:
        args, ct = tuple(a.astype(jnp.bfloat16) for a in args), ct.astype(jnp.bfloat16)
    (got, got_grads), hlo = run_on(ACCEL, _vjp_fn(case.fn, len(args)), *args, ct,
                                   precision=FULL if mode == "f32_full" else None)
    want_dtype = jnp.bfloat16 if bf16 else jnp.float32
    assert got.dtype == want_dtype, f"{case.name} returned {got.dtype} for {want_dtype} inputs"
    tol = OP_TOL[mode]
    err = rel_err(got, want)
    grad_errs = [rel_err(g, w) for g, w in zip(got_grads, want_grads)]
    record_property("rel_err", f"forward {err:.2e}, gradients {', '.join(f'{e:.2e}' for e in grad_errs)}")
    assert err <= tol, f"{case.name} {mode} forward: relative error {err:.2e} > {tol:.0e} on {ACCEL.device_kind}"
    for i, (g, err) in enumerate(zip(got_grads, grad_errs)):
        assert g.dtype == want_dtype
        assert err <= tol, (f"{case.name} {mode} gradient of argument {i}: relative error {err:.2e} > {tol:.0e} "
                            f"on {ACCEL.device_kind}")
    check_no_cpu_route(hlo)


def test_max_pool_indices_match_cpu():
    # Integer outputs must be equal, not close (the first maximum of each window, row-major).
    # In the CPU suite the reference is the same values in float64 (XLA's generic route, not the CPU's).
    x = to_bf16_values(*rng_arrays(3, X))[0]  # bf16-rounded values in float32: ties happen
    pool = lambda x: ops.max_pool_with_argmax(x, 2)  # noqa: E731
    want = _float64_on_cpu(pool, x)[1] if ON_CPU else run_on(CPU, pool, x)[0][1]
    (_, got), _ = run_on(ACCEL, pool, x)
    assert len(np.unique(x)) < x.size  # there are ties to break
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- CPU-only routes

def _max_pool_loss(x):
    return jnp.sum(ops.max_pool(x, 2) * jnp.arange(6, dtype=x.dtype)[:, None])


def _generic_max_pool_loss(x):
    # What ops.max_pool's default (non-CPU) branch is: lax.reduce_window, whose gradient is select_and_scatter.
    y = lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return jnp.sum(y * jnp.arange(6, dtype=x.dtype)[:, None])


def test_max_pool_route_matches_the_platform():
    """Lowered for the accelerator's platform, ops.max_pool's 2x2/2 pool is reduce_window (gradient
    select_and_scatter) everywhere but on the CPU, which takes the reshape/argmax route."""
    x = jax.device_put(jnp.asarray(rng_arrays(5, (2, 12, 12, 8))[0]), ACCEL)
    fwd = jax.jit(lambda x: ops.max_pool(x, 2)).lower(x).as_text()
    bwd = jax.jit(jax.grad(_max_pool_loss)).lower(x).as_text()
    generic = "reduce_window" in fwd and "select_and_scatter" in bwd
    if ON_CPU:
        assert not generic, "the CPU lowered max_pool's 2x2 pool as reduce_window: its CPU route was not taken"
    else:
        assert generic, f"on {ACCEL.platform} max_pool's 2x2 pool was not lowered as reduce_window/select_and_scatter"


def _opcodes(hlo_text: str) -> collections.Counter:
    """Histogram of the HLO instructions' opcodes, leaving out the bookkeeping ones."""
    skip = {"parameter", "constant", "tuple", "get-tuple-element", "bitcast", "copy", "copy-start", "copy-done"}
    ops_ = re.findall(r"=\s*[^=]*?\s([a-z][a-z0-9-]*)\(", hlo_text)
    return collections.Counter(o for o in ops_ if o not in skip)


def test_max_pool_compiles_like_reduce_window_on_the_accelerator():
    """The compiled program of max_pool's gradient on the accelerator is the generic reduce_window's
    (opcode for opcode); on the CPU it is not (the CPU route is taken)."""
    x = rng_arrays(6, (6, 12, 12, 8))[0]
    _, ours = run_on(ACCEL, jax.grad(_max_pool_loss), x)
    _, generic = run_on(ACCEL, jax.grad(_generic_max_pool_loss), x)
    if ON_CPU:
        assert _opcodes(ours) != _opcodes(generic)
    else:
        assert _opcodes(ours) == _opcodes(generic), (
            f"max_pool's gradient on {ACCEL.platform} is not reduce_window's: {dict(_opcodes(ours))} vs "
            f"{dict(_opcodes(generic))}")
        check_no_cpu_route(ours)


@functools.lru_cache(maxsize=None)
def _small_train_step(name, overrides, input_shape, batch=4):
    """(strategy "none", abstract TrainState, abstract batch, abstract key): jaxcnn's train step as
    scripts/train.py builds it, for lowering and compiling without initialising anything."""
    from jaxcnn.data import augment
    from jaxcnn.train import create_train_state, make_strategy

    model = jaxcnn.create_model(name, **dict(overrides))
    tx = optax.sgd(0.01, momentum=0.9)
    strategy = make_strategy("none", preprocess=augment.make_preprocess())
    state = jax.eval_shape(lambda k: create_train_state(model, tx, k, input_shape), jax.random.key(0))
    data = {"image": jax.ShapeDtypeStruct((batch, *input_shape), jnp.float32),
            "label": jax.ShapeDtypeStruct((batch,), jnp.int32)}
    return strategy, state, data, jax.ShapeDtypeStruct((2,), jnp.uint32)


@pytest.mark.parametrize("platform", ["cuda"] if SMOKE else ["cuda", "rocm", "tpu"])
def test_routes_lowered_for_an_accelerator_platform(platform):
    """Lowered for GPU or TPU (no such device needed), max_pool is reduce_window and no jaxcnn CPU custom call
    is in the module, for the ops and for a whole train step (convolutions, 2x2 pools, BatchNorm)."""
    x = jnp.asarray(rng_arrays(8, (2, 12, 12, 8))[0])
    w = jnp.asarray(rng_arrays(9, (3, 3, 8, 16))[0])
    lower = lambda f, *a: jax.jit(f).trace(*a).lower(lowering_platforms=(platform,)).as_text()  # noqa: E731
    assert "reduce_window" in lower(lambda x: ops.max_pool(x, 2), x)
    assert "select_and_scatter" in lower(jax.grad(_max_pool_loss), x)
    conv = lower(jax.grad(lambda x, w: jnp.sum(ops.cross_correlate(x, w, padding="SAME") ** 2), (0, 1)), x, w)
    assert "convolution" in conv and not cpu_only_targets(conv)
    strategy, state, data, key = _small_train_step("fashion_cnn_tiny", (), (28, 28, 1))
    step = lower(strategy.train, state, data, key)
    assert "reduce_window" in step and "convolution" in step
    assert not cpu_only_targets(step), f"CPU custom calls lowered for {platform}: {cpu_only_targets(step)}"
    if native_enabled():  # the control: lowered for the CPU, the same step has them, and the search finds them
        on_cpu = jax.jit(strategy.train).trace(state, data, key).lower(lowering_platforms=("cpu",)).as_text()
        assert cpu_only_targets(on_cpu) >= {"jaxcnn_conv_fwd"}


@pytest.mark.parametrize("name, overrides, input_shape", [
    ("fashion_cnn_tiny", (), (28, 28, 1)),
    ("resnet50", (("stage_sizes", (1, 1, 1, 1)), ("base_width", 8), ("num_classes", 10)), (64, 64, 3)),
][:1 if SMOKE else 2])
def test_train_step_compiled_on_the_accelerator_has_no_cpu_route(name, overrides, input_shape):
    """jaxcnn's whole train step (strategy "none", on the default device: the accelerator) compiled there."""
    strategy, state, data, key = _small_train_step(name, overrides, input_shape)
    hlo = strategy.train.lower(state, data, key).compile().as_text()
    check_no_cpu_route(hlo)
    if ON_CPU and native_enabled():
        assert cpu_only_targets(hlo), "native CPU convolutions are on but none was compiled in"


# ---------------------------------------------------------------- models


@dataclasses.dataclass(frozen=True)
class ModelCase:
    family: str
    name: str
    overrides: tuple  # (field, value) pairs
    input_shape: tuple
    batch: int = 4
    boxes: bool = False  # Fast R-CNN: regions of interest as the second argument

    @property
    def id(self) -> str:
        return self.name if not self.overrides else f"{self.name}_small"


MODEL_CASES = [
    ModelCase("LeNet5", "lenet5", (), (32, 32, 1)),
    ModelCase("AlexNet", "alexnet", (("widths", (8, 16, 16, 16, 16)), ("fc_features", (32, 32)),
                                     ("image_size", 67), ("num_classes", 10)), (67, 67, 3)),
    ModelCase("VGG", "vgg11_bn", (("widths", (4, 8, 8, 16, 16)), ("fc_features", (16, 16)), ("image_size", 32),
                                  ("num_classes", 10)), (32, 32, 3)),
    ModelCase("SmallCNN", "keras_cifar_cnn", (), (32, 32, 3)),
    ModelCase("FashionCNN", "fashion_cnn_tiny", (), (28, 28, 1)),
    ModelCase("GoogLeNet", "googlenet", (("width", 0.125), ("num_classes", 10)), (224, 224, 3), batch=2),
    ModelCase("ResNet", "resnet20", (("stage_sizes", (1, 1, 1)),), (32, 32, 3)),
    ModelCase("ResNet", "resnet50", (("stage_sizes", (1, 1, 1, 1)), ("base_width", 8), ("num_classes", 10)),
              (64, 64, 3)),
    ModelCase("DenseNet", "densenet_bc_100_12", (("block_sizes", (2, 2, 2)),), (32, 32, 3)),
    ModelCase("NASNet", "nasnet_a_cifar", (("num_blocks", 1), ("penultimate_filters", 96), ("stem_filters", 12),
                                           ("num_classes", 3)), (32, 32, 3)),
    ModelCase("FCN", "fcn8s", (("num_classes", 3),), (16, 16, 3), batch=2),
    ModelCase("SegNet", "segnet_small", (), (32, 32, 3)),
    ModelCase("SPPNet", "spp_net", (("stage_sizes", (1, 1)), ("widths", (4, 8)), ("hidden", 16), ("num_classes", 3)),
              (20, 20, 3)),
    ModelCase("FastRCNN", "fast_rcnn", (("stage_sizes", (1, 1)), ("widths", (4, 8)), ("hidden", 16),
                                        ("num_classes", 3), ("roi_size", 2), ("spatial_scale", 0.5)),
              (16, 16, 3), boxes=True),
    ModelCase("YOLOv1", "yolov1_tiny", (), (112, 112, 3), batch=2),
]


def _families() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in jaxcnn.list_models():
        out.setdefault(get_spec(name).module.__name__, []).append(name)
    return out


def _fallback_cases(max_macs: float = 3e8):
    """A family registered after this file was written: its cheapest registered variant at its own input,
    batch 1, if that is small enough to check (else the family is reported by the coverage test)."""
    covered = {c.family for c in MODEL_CASES}
    cases, uncovered = [], []
    for family, names in sorted(_families().items()):
        if family in covered:
            continue
        cost = sorted((jaxcnn.summary(n).total_macs, n) for n in names)
        if cost and cost[0][0] <= max_macs:
            cases.append(ModelCase(family, cost[0][1], (), tuple(get_spec(cost[0][1]).input_shape), batch=1))
        else:
            uncovered.append(family)
    return cases, uncovered


_EXTRA, UNCOVERED = _fallback_cases()
MODEL_CASES = MODEL_CASES + _EXTRA
if SMOKE:
    MODEL_CASES = [c for c in MODEL_CASES if c.name in ("fashion_cnn_tiny", "keras_cifar_cnn")]


# The bfloat16 model cases the CPU suite runs (each under 30 s there; the others take up to 150 s each).
CPU_SUITE_BF16 = ("lenet5", "fashion_cnn_tiny", "keras_cifar_cnn", "resnet20_small", "yolov1_tiny",
                  "fast_rcnn_small", "spp_net_small")


# Under pytest-xdist with --dist loadgroup (scripts/gpu_check.sh), a model's tests share one worker and so its
# cached CPU reference.
MODEL_PARAMS = [pytest.param(c, id=c.id, marks=pytest.mark.xdist_group(c.id)) for c in MODEL_CASES]


def test_every_family_is_checked():
    assert not UNCOVERED, (f"model families without a small case in tests/test_accelerator.py: {UNCOVERED}; "
                           "add a ModelCase with small widths and input")


def _model(case: ModelCase, dtype: str):
    extra = {"dtype": jnp.bfloat16} if dtype == "bf16" else {}
    return jaxcnn.create_model(case.name, **dict(case.overrides), **extra)


def _model_step(model, n_extra: int):
    """(variables, x, cotangents, key, *extra) -> (outputs, parameter gradients of <outputs, cotangents>),
    one forward and backward in training mode: BatchNorm on batch statistics, dropout with `key`."""
    def step(variables, x, ct, key, *extra):
        rest = {k: v for k, v in variables.items() if k != "params"}

        def loss(params):
            out, _ = model.apply({"params": params, **rest}, x, *extra, train=True, rngs={"dropout": key},
                                 mutable=["batch_stats", "intermediates"])
            value = sum(jnp.vdot(o.astype(jnp.float32), c) for o, c in
                        zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(ct)))
            return value, out

        (_, outputs), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"])
        return outputs, grads
    return step


@functools.lru_cache(maxsize=None)
def _model_reference(case: ModelCase):
    """Inputs, float32 variables (initialised on the CPU) and the float32 CPU outputs and gradients."""
    model = _model(case, "f32")
    x, = rng_arrays(11, (case.batch, *case.input_shape))
    extra = (_boxes_for(case),) if case.boxes else ()
    with jax.default_device(CPU):
        variables = jax.jit(model.init)({"params": jax.random.key(0), "dropout": jax.random.key(1)},
                                        jnp.asarray(x[:1]), *extra)
        out_shapes = jax.eval_shape(lambda v, x, *e: model.apply(v, x, *e), variables, jnp.asarray(x), *extra)
        key = jax.random.key(2)
    variables = jax.device_get(variables)
    rng = np.random.default_rng(12)
    ct = jax.tree_util.tree_map(lambda s: rng.standard_normal(s.shape).astype(np.float32), out_shapes)
    (outputs, grads), _ = run_on(CPU, _model_step(model, len(extra)), variables, x, ct, key, *extra, precision=FULL)
    return x, variables, ct, key, extra, outputs, grads


def _boxes_for(case: ModelCase):
    h, w = case.input_shape[:2]
    return np.array([[0, 0, 0, w - 1, h - 1], [1, 2, 2, w // 2, h // 2], [min(1, case.batch - 1), 4, 3, w - 2, h - 5]],
                    np.float32)


def _model_errors(case: ModelCase, dtype: str, device) -> tuple[dict, dict, str]:
    """Relative errors {"outputs", "grads"} of the model in `dtype` on `device` against the float32 CPU
    reference, a line naming the worst gradient leaves, and the compiled HLO."""
    x, variables, ct, key, extra, want_out, want_grads = _model_reference(case)
    (got_out, got_grads), hlo = run_on(device, _model_step(_model(case, dtype), len(extra)), variables, x, ct, key,
                                       *extra, precision=FULL if dtype == "f32" else None)
    for leaf in jax.tree_util.tree_leaves(got_grads):
        assert leaf.dtype == jnp.float32, "parameter gradients must stay float32 (the parameters are float32)"
    out_err, _ = tree_err(got_out, want_out)
    grad_err, worst = tree_err(got_grads, want_grads)
    return {"outputs": out_err, "grads": grad_err}, worst, hlo


@functools.lru_cache(maxsize=None)
def _cpu_bf16_errors(case: ModelCase) -> dict:
    return _model_errors(case, "bf16", CPU)[0]


@pytest.mark.parametrize("case", MODEL_PARAMS)
def test_model_f32_matches_cpu(case, record_property):
    """Outputs and parameter gradients in float32 at full precision: the accelerator computes the same
    function as the CPU up to float32 rounding."""
    if ON_CPU:
        pytest.skip(SAME_COMPUTATION)
    errors, worst, hlo = _model_errors(case, "f32", ACCEL)
    record_property("rel_err", ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
    for part, err in errors.items():
        assert err <= MODEL_TOL[part], (f"{case.id} float32 {part}: relative error {err:.2e} > "
                                        f"{MODEL_TOL[part]:.0e} on {ACCEL.device_kind}"
                                        + (f"; worst leaves: {worst}" if part == "grads" else ""))
    check_no_cpu_route(hlo)


@pytest.mark.parametrize("case", MODEL_PARAMS)
def test_model_bf16_matches_cpu(case, record_property):
    """The model with dtype=bfloat16 (parameters float32) against the float32 reference, within 3x the error
    of bfloat16 on the CPU (in the CPU suite: within BF16_CPU_BOUND)."""
    if ON_CPU and case.id not in CPU_SUITE_BF16:
        pytest.skip(f"{case.id}: 20-150 s on two CPU cores; the CPU suite keeps {len(CPU_SUITE_BF16)} cheap families "
                    "(BatchNorm, dropout, regions and grids among them), scripts/gpu_check.sh runs them all")
    errors, worst, hlo = _model_errors(case, "bf16", ACCEL)
    cpu = errors if ON_CPU else _cpu_bf16_errors(case)
    record_property("rel_err", ", ".join(f"{k} {v:.2e} (CPU bf16 {cpu[k]:.2e})" for k, v in errors.items()))
    for part, err in errors.items():
        bound = BF16_CPU_BOUND[part] if ON_CPU else min(BF16_CAP[part], max(BF16_FLOOR[part], 3 * cpu[part]))
        assert err <= bound, (f"{case.id} bfloat16 {part}: relative error {err:.2e} > {bound:.1e} on "
                              f"{ACCEL.device_kind} (bfloat16 on the CPU: {cpu[part]:.2e})"
                              + (f"; worst leaves: {worst}" if part == "grads" else ""))
    check_no_cpu_route(hlo)


# ---------------------------------------------------------------- parallel modes


def _parallel_setup(mode: str, n: int, steps: int):
    from jaxcnn.data import augment, synthetic
    from jaxcnn.train import create_train_state
    from jaxcnn.train.parallel import PMAP_AXIS

    batch = 16 if 16 % n == 0 else 2 * n
    data = synthetic((12, 12, 1), num_classes=10, size=batch * steps, seed=3)
    pre = augment.make_preprocess(mean=(0.5,), std=(0.25,))
    # Under pmap BatchNorm averages its statistics over the device axis; the one-device reference has no axis.
    model = jaxcnn.create_model("fashion_cnn_tiny", bn_axis_name=PMAP_AXIS if mode == "pmap" else None)
    tx = optax.sgd(0.1, momentum=0.9)
    with jax.default_device(CPU):
        state = jax.device_get(create_train_state(model, tx, jax.random.key(0), (12, 12, 1)))
    key = np.asarray(jax.random.key_data(jax.random.key(1)))
    batches = [{"image": data.images[s * batch:(s + 1) * batch], "label": data.labels[s * batch:(s + 1) * batch]}
               for s in range(steps)]
    return pre, state, batches, key


@functools.lru_cache(maxsize=None)
def _parallel_reference(n: int, steps: int = 3):
    """The plain jitted train step on the CPU, over the global batches the modes split over n devices."""
    from jaxcnn.train import train_step

    pre, state, batches, key = _parallel_setup("none", n, steps)
    with jax.default_matmul_precision(FULL):
        step = jax.jit(functools.partial(train_step, preprocess=pre))
        state = jax.device_put(state, CPU)
        for b in batches:
            state, _ = step(state, jax.device_put(b, CPU), key)
    return jax.device_get(state.arrays())


def _parallel_run(mode: str, n: int, steps: int = 3):
    """`steps` steps under `mode` on the default devices, compiled once: (host arrays, compiled HLO text)."""
    from jaxcnn.train import make_strategy

    pre, state, batches, key = _parallel_setup(mode, n, steps)
    with jax.default_matmul_precision(FULL):
        strategy = make_strategy(mode, preprocess=pre)
        state = strategy.put_state(state)
        compiled = None
        for b in batches:
            b = strategy.put_batch(b)
            if compiled is None:
                compiled = strategy.train.lower(state, b, key).compile()
            state, _ = compiled(state, b, key)
    return strategy.get_state(state).arrays(), compiled.as_text()


@pytest.mark.parametrize("mode", ["mesh"] if SMOKE else ["none", "pmap", "mesh"])
def test_parallel_mode_on_the_accelerator_matches_cpu(mode):
    """Three SGD steps of a BatchNorm net under `mode` on the devices present equal the plain step on the
    CPU (parameters and BatchNorm statistics), so the strategies run there and average correctly."""
    if mode == "none" and ON_CPU:
        pytest.skip("the accelerator is the CPU here: parallel='none' on it is the reference computation itself")
    n = len(jax.local_devices()) if mode == "pmap" else (1 if mode == "none" else jax.device_count())
    want = _parallel_reference(n)
    got, hlo = _parallel_run(mode, n)
    assert int(got["step"]) == int(want["step"]) == 3
    for part in ("params", "batch_stats"):
        err, worst = tree_err(got[part], want[part])
        assert err <= 1e-4, f"{mode} on {n} x {ACCEL.device_kind}: {part} differ by {err:.2e} ({worst})"
    check_no_cpu_route(hlo)
